import BelayClient
import Foundation

/// `read --watch --on-alert COMMAND`: runs COMMAND through /bin/sh for every alert or security
/// event, with the event's JSON line on its standard input, never on its command line (where
/// other users could read it in the process list). A script can then ring a phone or send a
/// text. The watcher does not wait for it.
enum AlertHook {
    /// A hook still running after this long is stopped, and the person told.
    static let timeout: TimeInterval = 30
    static let kinds: Set<ReadEvent.Kind> = [.alert, .security]

    static func run(_ command: String, for event: ReadEvent) {
        guard kinds.contains(event.kind) else { return }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let input = Pipe()
        process.standardInput = input
        process.terminationHandler = { p in
            if p.terminationReason == .exit, p.terminationStatus != 0 {
                Terminal.error("--on-alert: the command exited with status \(p.terminationStatus)")
            }
        }
        do {
            try process.run()
        } catch {
            return Terminal.error("--on-alert: cannot run the command: \(error.localizedDescription)")
        }
        input.fileHandleForWriting.write(Data((JSONLines.line(event) + "\n").utf8))
        try? input.fileHandleForWriting.close()
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
            guard process.isRunning else { return }
            process.terminate()
            Terminal.error("--on-alert: the command was still running after \(Int(timeout)) s and was stopped")
        }
    }
}
