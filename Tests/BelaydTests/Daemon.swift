import BelayWire
import Foundation
import Synchronization
import Testing

/// A real `belayd run` process on a loopback port the system picks.
final class Daemon: @unchecked Sendable {
    let process: Process
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
        let process = Process()
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

    private init(process: Process, address: RelayAddress, stderrPath: String) {
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

extension Process {
    /// Waits for the process to exit without blocking a thread. Swift's cooperative pool has one
    /// thread per core, two here: a test that blocked one in `waitUntilExit` (or a blocking read)
    /// while another did the same stalled every other test in the run, long enough for relays to
    /// close their idle connections. Call after `run()`.
    func exited() async {
        let once = ResumeOnce()
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            terminationHandler = { _ in once.run { c.resume() } }
            if !isRunning { once.run { c.resume() } }
        }
    }
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

/// Foundation's `Process.run()` on Linux is not safe to call from several threads at once (two
/// concurrent launches once crashed in its memcpy of the arguments and environment), and these
/// tests launch processes from parallel tests: one launch at a time.
private let launchLock = NSLock()

extension Process {
    func launchOneAtATime() throws {
        launchLock.lock()
        defer { launchLock.unlock() }
        try run()
    }
}
