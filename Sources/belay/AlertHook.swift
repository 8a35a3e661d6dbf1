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
        // A pipe for the event: the hook reads it on its standard input.
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            running.withLock { $0 -= 1 }
            return Terminal.error("--on-alert: cannot make a pipe for the command")
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let child: ChildProcess
        do {
            // The hook gets no BELAY_* variable: an unattended watcher's passphrase lives there.
            child = try ChildProcess(
                "/bin/sh", ["-c", command], environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("BELAY_") },
                stdin: fds[0]
            ) { status in
                running.withLock { $0 -= 1 }
                if status != 0 { Terminal.error("--on-alert: the command exited with status \(status)") }
            }
        } catch {
            close(fds[0])
            close(fds[1])
            running.withLock { $0 -= 1 }
            return Terminal.error("--on-alert: cannot run the command: \(error)")
        }
        close(fds[0])
        // A hook that exits without reading its input must not take the watcher with it
        // (SIGPIPE is ignored while watching; a failed write is just dropped).
        let line = Array((JSONLines.line(event) + "\n").utf8)
        _ = line.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
        close(fds[1])
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
            guard child.isRunning else { return }
            child.signal(SIGTERM)
            Terminal.error("--on-alert: the command was still running after \(Int(timeout)) s and was stopped")
            DispatchQueue.global().asyncAfter(deadline: .now() + killGrace) { child.signal(SIGKILL) }
        }
    }
}
