#if !BELAY_FUZZ
    import Foundation

    /// Without libFuzzer: replays files through a target (`belay-fuzz TARGET FILE…`), exit 0 if
    /// every one returned. Tests run the kept crashers this way.
    @main
    enum Replay {
        static func main() {
            let arguments = Array(CommandLine.arguments.dropFirst())
            guard let target = arguments.first else {
                print("usage: belay-fuzz TARGET FILE…  (targets: \(FuzzTargets.names.joined(separator: ", ")))")
                exit(64)
            }
            for file in arguments.dropFirst() {
                guard let data = FileManager.default.contents(atPath: file) else {
                    FileHandle.standardError.write(Data("belay-fuzz: cannot read \(file)\n".utf8))
                    exit(66)
                }
                FuzzTargets.run(target, [UInt8](data))
            }
        }
    }
#endif
