import Foundation
import Testing

/// Inputs that once crashed (or broke) a parser under `make fuzz`, kept in
/// Tests/Fuzz/crashers/TARGET/ and replayed through `belay-fuzz` built normally: each must now
/// be handled, with a clear error or a value, and the process exit 0.
@Suite struct FuzzRegressionTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz/crashers")

    @Test func everyKeptCrasherIsHandled() async throws {
        let targets = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).sorted()
        #expect(targets.contains("address") && targets.contains("config"))
        for target in targets {
            let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder.appendingPathComponent(target).path).sorted()
            #expect(!files.isEmpty)
            let process = TestProcess()
            process.executableURL = URL(fileURLWithPath: try Daemon.builtExecutable("belay-fuzz"))
            process.arguments = [target] + files.map { Self.folder.appendingPathComponent(target).appendingPathComponent($0).path }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.launchOneAtATime()
            await process.exited()
            #expect(process.terminationStatus == 0, "\(target): \(files)")
        }
    }
}
