import ArgumentParser
import BelayClient
import Foundation

struct CheckinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkin",
        abstract: "\"I'm safe\" check-ins that alert your chosen contacts if you miss one.",
        discussion: """
            Arming deposits an end-to-end encrypted alert for each contact at their relay. If you do not \
            check in before the deadline plus the grace period, the relay delivers the alerts, even if \
            this device is gone. See docs/CHECKINS.md.

            Examples:
              belay checkin arm --every 6h --grace 30m --to Sam,Ana --note 'at the courthouse with A.'
              belay checkin ok
              belay checkin status
            """,
        subcommands: [
            ArmCommand.self, OkCommand.self, StatusCommand.self, DisarmCommand.self, AlertCommand.self,
            AgreeCommand.self, DeclineCommand.self, AckCommand.self, WatchingCommand.self,
        ])
}

struct ArmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "arm", abstract: "Arm (or re-arm) a check-in.",
        discussion: """
            Durations are a number and s, m, h or d. With --codes you are asked, twice each, for a \
            check-in code and a duress code of at least 8 characters (scripts: BELAY_CHECKIN_CODE and \
            BELAY_DURESS_CODE); `belay checkin ok` then asks for a code, and the duress code checks in \
            visibly as usual while alerting your contacts at once. Re-arming a check-in with codes asks \
            for the current code first (BELAY_CHECKIN_CODE); new codes then come from \
            BELAY_NEW_CHECKIN_CODE and BELAY_NEW_DURESS_CODE in scripts. --then NAMES --after DURATION adds an escalation tier: alerted \
            that long after the earlier tiers, unless one of them acknowledges first (repeat both for more).

            Examples:
              belay checkin arm --every 6h --grace 30m --to Sam --note 'meeting a source at the café'
              belay checkin arm --every 2d --grace 6h --to Sam,Ana --codes
              belay checkin arm --every 6h --grace 30m --to Sam,Ana --then Lee --after 30m
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Option(help: "How often you will check in, e.g. 90m, 6h, 2d.") var every: String
    @Option(help: "How long after a missed check-in the alerts go out, e.g. 30m.") var grace: String
    @Option(help: "The contacts to alert, separated by commas.") var to: String
    @Option(help: "Your plan, shown to them if you miss a check-in.") var note: String = ""
    @Flag(help: "Set a check-in code and a duress code.") var codes = false
    @Flag(help: "Arm even if a contact's safety number has not been compared (scripts need this).") var allowUnverified = false
    @Option(help: "An escalation tier: contacts alerted if nobody before them acknowledges (repeatable).") var then: [String] = []
    @Option(help: "How long after the previous tier's alert the --then tier is alerted (one per --then).") var after: [String] = []

    func run() async throws {
        try await guarded {
            let every = try DurationText.seconds(self.every)
            let grace = try DurationText.seconds(self.grace)
            let names = commaList(to)
            guard then.count == after.count else { throw ClientError.invalidInput("give one --after for each --then") }
            let tiers = try zip(then, after).map { (names: commaList($0), after: try DurationText.seconds($1)) }
            let allow = allowUnverified
            let agent = try state.open(through: network)
            let current = try agent.checkinStatus()
            // Re-arming a check-in that has codes needs one of them first: its timer keys are
            // sealed under them (not once every alert has gone out: then it may be replaced).
            let code = current.codes && !current.spent ? try askCode(prompt: "Current check-in code: ") : nil
            var pair: (checkin: [UInt8], duress: [UInt8])?
            if codes {
                let changing = current.codes
                pair = (
                    try newCode(changing ? "BELAY_NEW_CHECKIN_CODE" : "BELAY_CHECKIN_CODE", changing ? "New check-in code" : "Check-in code"),
                    try newCode(changing ? "BELAY_NEW_DURESS_CODE" : "BELAY_DURESS_CODE", changing ? "New duress code" : "Duress code")
                )
            }
            let status = try await agent.armCheckin(
                every: every, grace: grace, to: names, then: tiers, note: note, codes: pair,
                code: code
            ) { unverified in
                guard !allow else { return }
                // An intercepted invitation is how a stranger would take a place in someone's
                // safety circle: say so, and ask a person; a script must say it means it.
                guard Terminal.isInteractive else { throw ClientError.unverifiedContacts(unverified) }
                Terminal.note(
                    "\(unverified.joined(separator: ", ")) \(unverified.count == 1 ? "is" : "are") not verified: an intercepted "
                        + "invitation could have put someone else in their place. `belay verify NAME` compares safety numbers.")
                guard Terminal.confirm("Arm anyway? Type yes to continue: ", expect: "yes") else { throw ClientError.notConfirmed }
            }
            if let firedAt = status.alertsWentOutAt {
                Terminal.note("your earlier check-in's alerts went out at \(AlertTime.format(firedAt)); let those contacts know you are safe")
            }
            if !status.timersLostBeforeDeadline.isEmpty {
                Terminal.note(
                    "the relay no longer held the earlier timer for \(status.timersLostBeforeDeadline.joined(separator: ", ")) "
                        + "before its deadline; it has been set again. Tell them: their relay lost or deleted it")
            }
            let first = status.answers.filter { $0.tier == 0 }.map(\.contact)
            print(
                "Check-in armed for \(first.joined(separator: ", ")). Check in at least every \(DurationText.describe(status.every)); "
                    + "they are alerted \(DurationText.describe(status.grace)) after a missed check-in.")
            for (i, after) in status.tierAfter.enumerated() {
                let tier = status.answers.filter { $0.tier == i + 1 }.map(\.contact)
                print(
                    "If nobody acknowledges within \(DurationText.describe(after)), \(tier.joined(separator: ", ")) \(tier.count == 1 ? "is" : "are") alerted next."
                )
            }
        }
    }
}

struct OkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ok", abstract: "Check in: you are safe.",
        discussion: """
            If the check-in has codes, asks for the code without echo (or reads BELAY_CHECKIN_CODE).

            Examples:
              belay checkin ok
              belay checkin ok --note 'moved to the second address'
            """)

    /// Exit status of a check-in made after the alerts went out (docs/CLI.md).
    static let alertsAlreadySent: Int32 = 7

    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Option(help: "Replace the note your contacts will see if you miss a later check-in.") var note: String?

    func run() async throws {
        try await guarded {
            let agent = try state.open(through: network)
            let code = try agent.checkinStatus().codes ? try askCode() : nil
            let status = try await agent.checkIn(note: note, code: code)
            if !status.timersLostBeforeDeadline.isEmpty {
                Terminal.note(
                    "the relay no longer held the check-in timer for \(status.timersLostBeforeDeadline.joined(separator: ", ")) "
                        + "before its deadline; it has been set again. Tell them: their relay lost or deleted it")
            }
            if let firedAt = status.alertsWentOutAt {
                // Not "Checked in": the people who were told must hear from you.
                print(
                    "Too late: your alerts went out at \(AlertTime.format(firedAt)); your contacts have been told. "
                        + "The check-in is armed again from now (next due within \(DurationText.describe(status.every))). "
                        + "Let them know you are safe.")
                throw ExitCode(Self.alertsAlreadySent)
            }
            // The same words, byte for byte, whichever code was entered (docs/CHECKINS.md).
            print("Checked in. Next check-in due within \(DurationText.describe(status.every)).")
        }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show whether a check-in is armed, and when the next is due.",
        discussion: "Examples:\n  belay checkin status\n  belay checkin status --json")

    @OptionGroup var state: StateOptions
    @Flag(help: "One JSON object.") var json = false

    func run() async throws {
        try await guarded {
            let s = try state.open().checkinStatus()
            if json { return JSONLines.print(s) }
            guard s.armed else { return print("No check-in is armed.") }
            let now = UInt64(Date().timeIntervalSince1970)
            let since = now > s.lastCheckin ? now - s.lastCheckin : 0
            print("Armed for \(s.contacts.joined(separator: ", ")): every \(DurationText.describe(s.every)), grace \(DurationText.describe(s.grace)).")
            print("Last check-in \(DurationText.describe(since)) ago; next due \(AlertTime.format(s.due)); alerts go out at \(AlertTime.format(s.alertAt)).")
            if !s.note.isEmpty { print("Note: \(s.note)") }
            for a in s.answers {
                let tier = a.tier == 0 ? "" : " (tier \(a.tier + 1), alerted \(DurationText.describe(s.tierAfter.prefix(a.tier).reduce(0, +))) later)"
                let acked =
                    a.ackedAt.map { " · acknowledged your alert at \(AlertTime.format($0))" + (a.ackNote.map { $0.isEmpty ? "" : ": \($0)" } ?? "") } ?? ""
                print("  \(a.contact)\(tier): \(a.answer == "none" ? "has not answered yet" : a.answer)\(acked)")
            }
        }
    }
}

struct DisarmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disarm", abstract: "Cancel the check-in at the relay.",
        discussion: """
            Each contact is told that the check-in ended, so that they do not wait for it. With codes set, \
            asks for the code.

            Examples:
              belay checkin disarm
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Flag(help: ArgumentHelp("Accepted for older scripts: contacts are always told.", visibility: .hidden)) var notify = false

    func run() async throws {
        try await guarded {
            let agent = try state.open(through: network)
            let code = try agent.checkinStatus().codes ? try askCode() : nil
            try await agent.disarmCheckin(code: code)
            print("Check-in disarmed.")
        }
    }
}

struct AlertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alert", abstract: "Send \"I need help now\" to your check-in contacts at once.",
        discussion: "Examples:\n  belay checkin alert\n  belay checkin alert --to Sam --note 'police at the door'")

    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Option(help: "What they should know.") var note: String?
    @Option(help: "Contacts to alert, separated by commas (default: the armed check-in's).") var to: String?

    func run() async throws {
        try await guarded {
            let names = to.map(commaList)
            let sent = try await state.open(through: network).sendHelpAlert(note: note, to: names)
            print("Alert sent to \(sent.joined(separator: ", ")).")
        }
    }
}

func commaList(_ text: String) -> [String] {
    text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
}

/// The check-in or duress code, without echo (or from BELAY_CHECKIN_CODE in scripts).
func askCode(prompt: String = "Check-in code: ") throws -> [UInt8] {
    guard let typed = Terminal.secret(environment: "BELAY_CHECKIN_CODE", prompt: prompt) else { throw ClientError.checkinCodeRequired }
    return typed
}

/// A code being set: from `variable` in scripts, else typed twice without echo, since a typo
/// would lock the person out of their own check-in.
func newCode(_ variable: String, _ what: String) throws -> [UInt8] {
    if let value = ProcessInfo.processInfo.environment[variable] { return Array(value.utf8) }
    guard let first = Terminal.secret(prompt: "\(what): "), let again = Terminal.secret(prompt: "\(what) again: ") else {
        throw ClientError.checkinCodeRequired
    }
    guard first == again else { throw ClientError.invalidInput("the two entries of the \(what.lowercased()) differ; nothing was changed") }
    return first
}

enum AlertTime {
    /// Local time with its zone, so it can be set beside the UTC times alerts carry.
    static func format(_ seconds: UInt64) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm zzz"
        return f.string(from: Date(timeIntervalSince1970: Double(seconds)))
    }
}
