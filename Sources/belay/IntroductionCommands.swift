import ArgumentParser
import BelayClient
import Foundation

/// Warm referrals and buddy assignments.
struct IntroduceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "introduce", abstract: "Offer two of your contacts to each other (a referral, or a buddy pairing).",
        discussion: """
            Each sees only your note until both accept; then they are paired with each other, and the relay \
            sees an ordinary pairing.

            Examples:
              belay introduce Sam Dr-Lee --note 'Sam, Dr Lee is the trauma counsellor I mentioned'
            """)
    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Argument(help: "The first contact.") var first: String
    @Argument(help: "The second contact.") var second: String
    @Option(help: "What you tell both of them.") var note: String = ""

    func run() async throws {
        try await guarded {
            let id = try await state.open(through: network).introduce(first, second, note: note)
            print("Offered \(first) and \(second) to each other (introduction \(id.prefix(8))). They are paired once both accept.")
        }
    }
}

struct IntroductionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "introductions", abstract: "List introductions offered to you, and those you made.",
        discussion: "Examples:\n  belay introductions\n  belay introductions --json")
    @OptionGroup var state: StateOptions
    @Flag(help: "One JSON object per line.") var json = false

    func run() async throws {
        try await guarded {
            let list = try state.open().introductions()
            if json { return list.forEach { JSONLines.print($0) } }
            if list.isEmpty { Terminal.note("no introductions") }
            for i in list { print("\(i.id.prefix(8))  \(i.state)  from \(i.from)\(i.note.isEmpty ? "" : ": \(i.note)")") }
        }
    }
}

struct IntroductionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "introduction", abstract: "Accept or decline an introduction offered to you.",
        subcommands: [Accept.self, Decline.self])

    struct Accept: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Accept: once the other person accepts too, you are paired.",
            discussion: "Examples:\n  belay introduction accept 3f9a1c2b\n  belay introduction accept 3f9a1c2b --name Lee")
        @OptionGroup var state: StateOptions
        @OptionGroup var network: ProxyOptions
        @Argument(help: "The introduction id (at least 6 characters).") var id: String
        @Option(help: "What to call them (default: the introducer's name for them).") var name: String?

        func run() async throws {
            try await guarded {
                try await state.open(through: network).answerIntroduction(id, accept: true, name: name)
                print("Accepted. You are paired once the other person accepts too; `belay read` shows it.")
            }
        }
    }

    struct Decline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decline: nobody learns who you are.", discussion: "Examples:\n  belay introduction decline 3f9a1c2b")
        @OptionGroup var state: StateOptions
        @OptionGroup var network: ProxyOptions
        @Argument(help: "The introduction id.") var id: String

        func run() async throws {
            try await guarded {
                try await state.open(through: network).answerIntroduction(id, accept: false)
                print("Declined. The introducer is told; the other person only that it will not go ahead.")
            }
        }
    }
}
