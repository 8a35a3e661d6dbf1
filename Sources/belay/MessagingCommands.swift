import ArgumentParser
import BelayClient
import BelayWire
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

struct InviteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invite", abstract: "Make a one-time invitation for someone to pair with you.",
        discussion: """
            Prints one line to pass to the other person out of band (in person, or a channel you trust), and \
            a QR code when the output is a terminal. It works once.

            Examples:
              belay invite --relay 'belay://relay.example.org:7700/#KEY' --name Sam
              belay invite --relay 'belay://relay.example.org:7700/#KEY' --expires 2d
              belay invite --relay 'belay://relay.example.org:7700/#KEY' --token TOKEN
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Option(help: "Your relay's address, belay://HOST:PORT/#KEY.") var relay: String
    @Option(help: "What to call this person once they accept.") var name: String?
    @Option(help: "How long the invitation stays valid, e.g. 30m, 6h, 2d (default 7d, at most 30d).") var expires: String?
    @Option(help: "The organisation token the relay's operator gave you; kept for this relay once accepted.") var token: String?

    func run() async throws {
        try await guarded {
            let address = try parseRelay(relay)
            let lifetime = try expires.map(DurationText.seconds)
            let agent = try state.open(through: network)
            announceNewRelays(agent)
            let text = try await agent.invite(relay: address, name: name, lifetime: lifetime, token: token)
            print(text)
            if Terminal.stdoutIsTerminal, let qr = QRCode.render(text) {
                let width = qr.prefix(while: { $0 != "\n" }).count
                if let columns = Terminal.columns, columns < width {
                    Terminal.note("widen the terminal to \(width) columns to show the invitation as a QR code")
                } else {
                    print(qr)
                }
            }
        }
    }
}

struct AcceptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accept", abstract: "Pair with the person who gave you an invitation.",
        discussion: """
            You can send to them at once; they finish pairing when they next run `belay read`. Messages to \
            you go to your own queue: on --relay if given, else on their relay.

            Examples:
              belay accept 'belay-invite:AQAA…' --name Alex
              belay accept "$(cat invitation.txt)" --name Alex --relay 'belay://our.relay:7700/#KEY'
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Argument(help: "The invitation text (belay-invite:…).") var invitation: String
    @Option(help: "What to call this person.") var name: String
    @Option(help: "The relay for your own receiving queue (default: theirs).") var relay: String?
    @Option(help: "The organisation token for the relay of your queue; kept for that relay once accepted.") var token: String?

    func run() async throws {
        try await guarded {
            let address = try relay.map(parseRelay)
            let agent = try state.open(through: network)
            announceNewRelays(agent)
            let outcome = try await agent.accept(invitation, name: name, relay: address, token: token)
            if let error = outcome.deliveryError {
                Terminal.note("paired with \(name), but the reply is not delivered yet: \(error)")
                if let hint = error.hint { Terminal.hint(hint) }
                throw ExitCode(error.exitCode)
            }
            print("Paired with \(name). Compare safety numbers with `belay verify \(name)`.")
        }
    }
}

struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send", abstract: "Send a message to a contact.",
        discussion: """
            Prints nothing on success (or a JSON line with --json). If the relay cannot be reached the \
            message is kept and sent by the next `belay send` or `belay read`.

            With --jitter (or $BELAY_SEND_JITTER), the message is queued at once and sent after a random \
            wait up to that long, so that when it leaves says less about when it was written; the \
            command returns once it has been sent.

            Examples:
              belay send Sam 'at the courthouse, all fine'
              echo 'long report' | belay send Sam -
              belay send Sam 'arrived' --jitter 2m
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Argument(help: "The contact's name.") var name: String
    @Argument(help: "The message, or - to read it from standard input.") var message: String
    @Flag(help: "Print a JSON line on success.") var json = false
    @Flag(help: "Send even though the contact recently checked in under duress (scripts need this).") var force = false
    @Option(help: "Wait a random time up to this before sending, e.g. 30s or 2m, at most 10m (default $BELAY_SEND_JITTER, else none).")
    var jitter: String?

    func run() async throws {
        try await guarded {
            let jitterText = jitter ?? ProcessInfo.processInfo.environment["BELAY_SEND_JITTER"].flatMap { $0.isEmpty ? nil : $0 }
            let wait = try jitterText.map(DurationText.seconds) ?? 0
            guard wait <= UInt64(Agent.maxSendJitter.nanoseconds / 1_000_000_000) else {
                throw ClientError.invalidInput("--jitter is at most 10m")
            }
            var text = message
            if message == "-" {
                let data = FileHandle.standardInput.readData(ofLength: 64 * 1024)
                text = String(decoding: data, as: UTF8.self)
                if text.hasSuffix("\n") { text.removeLast() }
            }
            guard !text.isEmpty else { throw ClientError.invalidInput("the message is empty") }
            let agent = try state.open(through: network)
            agent.sendJitter = .seconds(Int64(wait))
            if !force, try agent.underDuress(name) {
                // A reply lands on the coerced person's device, in front of whoever coerces them.
                guard Terminal.isInteractive else { throw ClientError.contactUnderDuress(name) }
                Terminal.note("\(name) checked in under duress recently: whatever you send appears on their device, which someone may be watching.")
                guard Terminal.confirm("Send anyway? Type yes to continue: ", expect: "yes") else { throw ClientError.notConfirmed }
            }
            try await agent.send(to: name, text: text)
            if json { JSONLines.print(["sent": name]) }
        }
    }
}

struct ReadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read", abstract: "Fetch, decrypt and show new messages.",
        discussion: """
            Check-in alerts come first and are marked ALERT. With --json, one object per line with a "kind" \
            field: message, alert, overdue, ack, paired, warning, security, checkin, group, request, claimed, \
            escalated, introduction, or (with --watch) status.

            Examples:
              belay read
              belay read --from Sam
              belay read --watch --json | my-alert-script
              belay read --watch --on-alert 'notify-send "Belay alert"'
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Option(help: "Only this contact.") var from: String?
    @Flag(help: "Stay connected and print messages as they arrive, until interrupted.") var watch = false
    @Flag(help: "One JSON object per line.") var json = false
    @Option(
        help: ArgumentHelp(
            "With --watch: run COMMAND (through /bin/sh) for every alert, overdue, ack or security event, with the event as JSON on its standard input.",
            valueName: "command")) var onAlert: String?

    func run() async throws {
        try await guarded {
            let agent = try state.open(through: network)
            guard onAlert == nil || watch else { throw ClientError.invalidInput("--on-alert works with --watch") }
            if watch {
                signal(SIGINT) { _ in Glibc.exit(0) }
                signal(SIGTERM) { _ in Glibc.exit(0) }
                // An --on-alert command that exits before reading its input must not end the watch.
                signal(SIGPIPE, SIG_IGN)
                let json = self.json
                let hook = onAlert
                let earlier = try agent.unshown(from: from)
                earlier.forEach { show($0, json: json) }
                if let hook { earlier.forEach { AlertHook.run(hook, for: $0) } }
                fflush(nil)
                try agent.markShown(earlier)
                try await agent.watch(from: from) { events in
                    for e in events { show(e, json: json) }
                    if let hook { events.forEach { AlertHook.run(hook, for: $0) } }
                    fflush(nil)
                    do { try agent.markShown(events) } catch { Terminal.error("\(error)") }
                }
                return
            }
            let earlier = try agent.unshown(from: from)
            let events = try await agent.read(from: from)
            let all = (earlier + events).sorted { $0.kind.urgency < $1.kind.urgency }
            if all.isEmpty, !json { Terminal.note("no new messages") }
            for e in all { show(e, json: json) }
            fflush(nil)
            try agent.markShown(all)
            if events.contains(where: { $0.kind == .security }) { throw ExitCode(ClientError.identityChanged(name: "", verified: true).exitCode) }
        }
    }
}

func show(_ e: ReadEvent, json: Bool) {
    if json { return JSONLines.print(e) }
    let who = e.contact ?? "belay"
    let time = e.sentAt > 0 ? timeFormatter.string(from: Date(timeIntervalSince1970: Double(e.sentAt) / 1000)) + " " : ""
    let notes = e.notes.isEmpty ? "" : "  [" + e.notes.joined(separator: "; ") + "]"
    switch e.kind {
    case .alert: print("!!! ALERT from \(who) \(time)!!!\n\(e.text)\(notes)")
    case .message: print("\(time)\(who): \(e.text)\(notes)")
    case .paired: print("* \(who) \(e.text)")
    case .warning: print("warning (\(who)): \(e.text)")
    case .security: print("SECURITY (\(who)): \(e.text)")
    case .checkin, .ack: print("* \(e.text)\(notes)")
    case .overdue: print("!!! OVERDUE: \(who) !!!\n\(e.text)\(notes)")
    // Connection news is not a message: one line on stderr per change.
    case .status: Terminal.note(e.text)
    case .group: print("\(time)[\(e.group ?? "group")] \(e.contact.map { "\($0): " } ?? "* ")\(e.text)\(notes)")
    case .request: print("!!! REQUEST for support on \(e.roster ?? "a roster") from \(e.from ?? who) \(time)!!!\n\(e.text)\(notes)")
    case .claimed, .escalated: print("* [\(e.roster ?? "roster")] \(e.text)\(notes)")
    case .introduction: print("* \(e.text)\(notes)")
    }
}

let timeFormatter: DateFormatter = {
    let f = DateFormatter()
    f.dateFormat = "yyyy-MM-dd HH:mm"
    return f
}()

func parseRelay(_ text: String) throws -> RelayAddress {
    do { return try RelayAddress(parsing: text) } catch {
        throw ClientError.invalidInput("\"\(text)\" is not a relay address: \(error)")
    }
}
