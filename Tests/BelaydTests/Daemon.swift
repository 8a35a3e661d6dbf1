import BelayClient
import BelayWire
import Foundation
import Synchronization
import Testing

/// A real `belayd run` process on a loopback port the system picks.
final class Daemon: @unchecked Sendable {
    let process: TestProcess
    let address: RelayAddress
    let stderrPath: String

    static var binary: String {
        get throws { try builtExecutable("belayd") }
    }

    /// An executable of this package, built beside the test bundle or in .build/debug.
    static func builtExecutable(_ name: String) throws -> String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for candidate in [beside, root.appendingPathComponent(".build/debug/\(name)").path]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        throw DaemonError("\(name) is not built; run `swift build` (make test does) before these tests")
    }

    struct DaemonError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    static func start(
        stateDir: String, environment extra: [String: String] = [:], arguments: [String] = [],
        port: Int = 0
    ) async throws -> Daemon {
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: try binary)
        process.arguments = ["run", "--state-dir", stateDir, "--listen", "127.0.0.1:\(port)"] + arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extra { env[k] = v }
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        let stderrPath = stateDir + ".stderr-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try process.launchOneAtATime()
        // The first stdout line is the address, printed once the database is open and the port bound.
        let line = await Task.detached { () -> String in
            var bytes = [UInt8]()
            while true {
                let chunk = out.fileHandleForReading.readData(ofLength: 1)
                if chunk.isEmpty || chunk.first == UInt8(ascii: "\n") { break }
                bytes += chunk
            }
            return String(decoding: bytes, as: UTF8.self)
        }.value
        guard let address = try? RelayAddress(parsing: line) else {
            process.terminate()
            let err = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            throw DaemonError("belayd did not print an address (got \(line.debugDescription)); stderr: \(err)")
        }
        return Daemon(process: process, address: address, stderrPath: stderrPath)
    }

    private init(process: TestProcess, address: RelayAddress, stderrPath: String) {
        self.process = process
        self.address = address
        self.stderrPath = stderrPath
    }

    /// Power-cut stand-in: no chance to flush, close or checkpoint.
    func kill9() async {
        kill(process.processIdentifier, SIGKILL)
        await waitForExit()
    }

    /// Graceful stop; returns the exit status.
    func terminate() async -> Int32 {
        kill(process.processIdentifier, SIGTERM)
        await waitForExit()
        return process.terminationStatus
    }

    private func waitForExit() async {
        await process.exited()
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
}

func temporaryStateDir() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("belayd-proc-\(UUID().uuidString)").path
}

/// Runs its body the first time only: a process that exits while its handler is being set
/// may report it both ways.
final class ResumeOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    func run(_ body: () -> Void) {
        lock.lock()
        let first = !done
        done = true
        lock.unlock()
        if first { body() }
    }
}

/// What the tests need of a process, in `Foundation.Process`'s words, on `ChildProcess`:
/// Foundation's `run()` crashed now and then on this toolchain (an over-read of each
/// /proc/self/fd entry, swiftlang/swift-corelibs-foundation#5472).
final class TestProcess: @unchecked Sendable {
    var executableURL: URL?
    var arguments: [String] = []
    var environment: [String: String]?
    /// A `FileHandle` or a `Pipe`, as for `Process`; nil inherits this process's.
    var standardInput: Any?
    var standardOutput: Any?
    var standardError: Any?
    private var child: ChildProcess?

    /// Starts it; the parent's copies of the pipe ends the child uses are closed, so a reader
    /// sees the end of the pipe when the child exits.
    func launchOneAtATime() throws {
        guard let path = executableURL?.path else { throw Daemon.DaemonError("no executable") }
        func descriptor(_ io: Any?, reading: Bool, default fd: Int32) -> Int32 {
            if let pipe = io as? Pipe { return reading ? pipe.fileHandleForReading.fileDescriptor : pipe.fileHandleForWriting.fileDescriptor }
            if let handle = io as? FileHandle { return handle.fileDescriptor }
            return fd
        }
        child = try ChildProcess(
            path, arguments, environment: environment ?? ProcessInfo.processInfo.environment,
            stdin: descriptor(standardInput, reading: true, default: 0), stdout: descriptor(standardOutput, reading: false, default: 1),
            stderr: descriptor(standardError, reading: false, default: 2))
        if let pipe = standardInput as? Pipe { try? pipe.fileHandleForReading.close() }
        for case let pipe as Pipe in [standardOutput, standardError] { try? pipe.fileHandleForWriting.close() }
    }

    var processIdentifier: Int32 { child?.pid ?? 0 }
    var isRunning: Bool { child?.isRunning ?? false }
    var terminationStatus: Int32 { child?.exitCode ?? 0 }
    func interrupt() { child?.signal(SIGINT) }
    func terminate() { child?.signal(SIGTERM) }

    /// Waits for it to exit without blocking a thread (the cooperative pool has one thread per
    /// core, two here).
    func exited() async { _ = await child?.exited() }
}
