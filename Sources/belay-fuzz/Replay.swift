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

#if BELAY_FUZZ
    /// SwiftPM links an executable's entry point as `<module>_main`; under libFuzzer that entry
    /// hands control to libFuzzer's driver with the target above.
    @_silgen_name("LLVMFuzzerRunDriver")
    func runDriver(
        _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    @_cdecl("belay_fuzz_main")
    func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
        var count = argc
        var arguments = argv
        return runDriver(&count, &arguments) { data, size in fuzzOne(data, size) }
    }
#endif
