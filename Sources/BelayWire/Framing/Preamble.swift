/// The 8 clear bytes a client sends before the handshake (docs/PROTOCOL.md §2.1).
public enum Preamble {
    public static let length = 8
    public static let magic: [UInt8] = Array("belay".utf8) + [0]
    public static let currentVersion: UInt16 = 4

    public static func bytes(version: UInt16 = currentVersion) -> [UInt8] {
        magic + [UInt8(version >> 8), UInt8(version & 0xff)]
    }

    /// The Noise prologue is the preamble itself, so the version is bound into the handshake.
    public static var prologue: [UInt8] { bytes() }

    public enum Verdict: Equatable, Sendable {
        case accepted
        case notBelay
        case unsupportedVersion(UInt16)
    }

    public static func check(_ bytes: some Collection<UInt8>) -> Verdict {
        let b = Array(bytes)
        guard b.count == length, Array(b[0..<6]) == magic else { return .notBelay }
        let version = UInt16(b[6]) << 8 | UInt16(b[7])
        return version == currentVersion ? .accepted : .unsupportedVersion(version)
    }
}
