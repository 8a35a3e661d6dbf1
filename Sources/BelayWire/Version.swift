/// The Belay release, shown by `--version` of both executables.
public enum BelayVersion {
    public static let string = "0.1.0"
}
