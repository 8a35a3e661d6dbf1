import BelayClient
import Foundation
import Synchronization

/// `read --watch --on-alert COMMAND`: runs COMMAND through /bin/sh for every alert or security
/// event, with the event's JSON line on its standard input, never on its command line (where
/// other users could read it in the process list). A script can then ring a phone or send a
/// text. The watcher does not wait for it.
enum AlertHook {
    /// A hook still running after this long is stopped (SIGTERM, then SIGKILL), and the person told.
    static let timeout: TimeInterval = 30
    static let killGrace: TimeInterval = 2
    /// Hooks running at once. Past this, an event runs no hook and the person is told: events
    /// forced by a hostile relay cannot fork without bound or page someone endlessly.
    static let maxRunning = 4
    static let kinds: Set<ReadEvent.Kind> = [.alert, .overdue, .ack, .security, .request, .escalated]
    private static let running = Mutex(0)

    static func run(_ command: String, for event: ReadEvent) {
        guard kinds.contains(event.kind) else { return }
        let admitted = running.withLock { n in
            guard n < maxRunning else { return false }
            n += 1
            return true
        }
        guard admitted else {
            return Terminal.error("--on-alert: \(maxRunning) commands are still running; this \(event.kind.rawValue) ran none")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        // The hook gets no BELAY_* variable: an unattended watcher's passphrase lives there.
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("BELAY_") }
        let input = Pipe()
        process.standardInput = input
        process.terminationHandler = { p in
            running.withLock { $0 -= 1 }
            if p.terminationReason == .exit, p.terminationStatus != 0 {
                Terminal.error("--on-alert: the command exited with status \(p.terminationStatus)")
            }
        }
        do {
            try process.run()
        } catch {
            running.withLock { $0 -= 1 }
            return Terminal.error("--on-alert: cannot run the command: \(error.localizedDescription)")
        }
        // A hook that exits without reading its input must not take the watcher with it.
        try? input.fileHandleForWriting.write(contentsOf: Data((JSONLines.line(event) + "\n").utf8))
        try? input.fileHandleForWriting.close()
        let pid = process.processIdentifier
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
            guard process.isRunning else { return }
            process.terminate()
            Terminal.error("--on-alert: the command was still running after \(Int(timeout)) s and was stopped")
            DispatchQueue.global().asyncAfter(deadline: .now() + killGrace) {
                if process.isRunning { kill(pid, SIGKILL) }
            }
        }
    }
}
