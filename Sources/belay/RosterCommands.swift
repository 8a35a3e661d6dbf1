import ArgumentParser
import BelayClient
import Foundation

/// `belay roster …`, `belay request` and `belay claim`: peer supporters on call.
struct RosterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roster", abstract: "On-call rosters: create, go on or off duty, see who is on duty.",
        discussion: """
            A roster is a group with duty. Members join and leave it as any group (`belay group join`, \
            `belay group leave`). A request (`belay request`) reaches the members on duty first, then \
            everyone, then the coordinator, until someone claims it (`belay claim`). See docs/GROUPS.md.
            """,
        subcommands: [Create.self, Duty.self, Status.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a roster with some of your contacts; each is asked to join.",
            discussion: """
                The coordinator gets a request last, if nobody else has claimed it (default: you).

                Examples:
                  belay roster create peer-support --members Sam,Alex,Jo --coordinator Jo
                """)
        @OptionGroup var state: StateOptions
        @OptionGroup var network: ProxyOptions
        @Argument(help: "The roster's name.") var name: String
        @Option(help: "Contacts to invite, comma-separated.") var members: String
        @Option(help: "Who gets requests last (a member, or 'me').") var coordinator: String?

        func run() async throws {
            try await guarded {
                try await state.open(through: network).createGroup(name, members: splitNames(members), roster: true, coordinator: coordinator)
                print("Created the roster \(name). Each member is asked; nothing reaches them until they run `belay group join \(name)`.")
            }
        }
    }

    struct Duty: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Go on or off duty; the other members see it.",
            discussion:
                "Examples:\n  belay roster duty peer-support --on --until 8h\n  belay roster duty peer-support --on --until 23:00\n  belay roster duty peer-support --off"
        )
        @OptionGroup var state: StateOptions
        @OptionGroup var network: ProxyOptions
        @Argument(help: "The roster.") var name: String
        @Flag(name: .customLong("on"), help: "Go on duty.") var on = false
        @Flag(name: .customLong("off"), help: "Go off duty.") var off = false
        @Option(help: "With --on: until when, a duration (8h) or a clock time today or tomorrow (23:00).") var until: String?

        func run() async throws {
            try await guarded {
                guard on != off else { throw ClientError.invalidInput("say --on or --off") }
                guard until == nil || on else { throw ClientError.invalidInput("--until goes with --on") }
                let end = try until.map { try parseUntil($0) }
                try await state.open(through: network).setDuty(name, on: on, until: end)
                print(
                    on
                        ? "You are on duty for \(name)" + (end.map { " until \(timeFormatter.string(from: Date(timeIntervalSince1970: Double($0))))" } ?? "")
                            + "."
                        : "You are off duty for \(name).")
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Who is on the roster and who is on duty.", discussion: "Examples:\n  belay roster status peer-support --json")
        @OptionGroup var state: StateOptions
        @Argument(help: "The roster.") var name: String
        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            try await guarded {
                let members = try state.open().groupMembers(name)
                if json { return members.forEach { JSONLines.print($0) } }
                for m in members {
                    let duty =
                        m.onDuty
                        ? "ON DUTY" + (m.dutyUntil.map { " until " + timeFormatter.string(from: Date(timeIntervalSince1970: Double($0))) } ?? "") : "off duty"
                    print("\(m.name)\(m.coordinator ? " (coordinator)" : "")  \(m.status == "joined" ? duty : m.status)")
                }
            }
        }
    }
}

/// "8h" from now, or "23:00" today (tomorrow if already past), in Unix seconds.
func parseUntil(_ text: String, now: Date = Date()) throws -> UInt64 {
    let parts = text.split(separator: ":")
    if parts.count == 2, let h = Int(parts[0]), let m = Int(parts[1]), (0..<24).contains(h), (0..<60).contains(m) {
        var when = Calendar.current.date(bySettingHour: h, minute: m, second: 0, of: now) ?? now
        if when <= now { when = when.addingTimeInterval(24 * 3600) }
        return UInt64(when.timeIntervalSince1970)
    }
    return UInt64(now.timeIntervalSince1970) + (try DurationText.seconds(text))
}

struct RequestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request", abstract: "Ask a roster for support; it escalates until someone claims it.",
        discussion: """
            It reaches the members on duty at once (everyone, if nobody is on duty). If nobody claims it \
            within --claim-within, it goes to every member, then to the coordinator. The later steps are \
            deposited at the relays now, so they happen even if this device is switched off or lost.

            Examples:
              belay request peer-support 'rough shift, could someone call me?'
              belay request peer-support 'need to talk tonight' --claim-within 30m
            """)
    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Argument(help: "The roster.") var roster: String
    @Argument(help: "What you need, or - to read it from standard input.") var message: String
    @Option(help: "How long each step waits for a claim before the next (1m to 7d).") var claimWithin: String = "10m"
    @Flag(help: "Tell everyone who took it (by default only you are told).") var nameClaimer = false
    @Flag(help: "Print a JSON line with the request id.") var json = false

    func run() async throws {
        try await guarded {
            let window = try DurationText.seconds(claimWithin)
            let outcome = try await state.open(through: network).request(
                roster: roster, text: try messageText(message), claimWithin: window, nameClaimer: nameClaimer)
            if json {
                return JSONLines.print(RequestLine(id: outcome.id, first: outcome.first, escalatesAt: outcome.escalatesAt, unreachable: outcome.unreachable))
            }
            print("Asked \(outcome.first.joined(separator: ", ")). Request \(outcome.id.prefix(8)).")
            for at in outcome.escalatesAt {
                print("If nobody takes it, it goes further at \(timeFormatter.string(from: Date(timeIntervalSince1970: Double(at)))).")
            }
            if !outcome.unreachable.isEmpty { Terminal.note("could not reach \(outcome.unreachable.joined(separator: ", ")) yet") }
        }
    }

    struct RequestLine: Codable {
        var id: String
        var first: [String]
        var escalatesAt: [UInt64]
        var unreachable: [String]
    }
}

struct ClaimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "claim", abstract: "Take a request for support; exactly one supporter's claim wins.",
        discussion: """
            The requester is told it is you, escalation stops, and the others who saw it are told it is taken. \
            If someone else was first, nothing changes and the exit code is 8.

            Examples:
              belay claim 3f9a1c2b
            """)
    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Argument(help: "The request id from `belay read` (at least 6 characters).") var id: String

    func run() async throws {
        try await guarded {
            let outcome = try await state.open(through: network).claim(id)
            print(
                "It is yours: \(outcome.requester) asked \"\(outcome.text)\". They have been told you are on it; reach them with `belay send \(outcome.requester) …`."
            )
        }
    }
}
