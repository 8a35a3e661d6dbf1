import ArgumentParser
import BelayClient
import Foundation

/// What a contact named in someone's check-in runs: consent, stepping down, acknowledging an
/// alert, and seeing whom they watch over.
struct AgreeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agree", abstract: "Agree to be alerted by NAME's check-in.",
        discussion: "Examples:\n  belay checkin agree Alex")

    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Argument(help: "Whose check-in.") var name: String

    func run() async throws {
        try await guarded {
            try await state.open(through: network).answerCheckin(name, agree: true)
            print("\(name) was told you agree. Keep `belay read --watch` running, or read often, so an alert reaches you.")
        }
    }
}

struct DeclineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decline", abstract: "Decline, or step down from, NAME's check-in.",
        discussion: "You are still alerted until they re-arm without you.\n\nExamples:\n  belay checkin decline Alex")

    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Argument(help: "Whose check-in.") var name: String

    func run() async throws {
        try await guarded {
            try await state.open(through: network).answerCheckin(name, agree: false)
            print("\(name) was told you decline. Until they re-arm without you, their alerts still reach you.")
        }
    }
}

struct AckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ack", abstract: "Acknowledge NAME's alert: you are acting on it.",
        discussion: """
            Tells NAME (unless they are under duress) and the other contacts of the check-in, and stops \
            later escalation tiers from being alerted.

            Examples:
              belay checkin ack Alex
              belay checkin ack Alex --note 'calling the lawyer now'
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Argument(help: "Whose alert.") var name: String
    @Option(help: "What you are doing, for the others.") var note: String = ""

    func run() async throws {
        try await guarded {
            let result = try await state.open(through: network).acknowledge(name, note: note)
            print(
                "Acknowledged." + (result.told.isEmpty ? "" : " Told: \(result.told.joined(separator: ", ")).")
                    + (result.cancelledTiers > 0 ? " Later tiers will not be alerted." : ""))
            for failure in result.failures { Terminal.note(failure) }
            if !result.failures.isEmpty { throw ExitCode(4) }
        }
    }
}

struct WatchingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watching", abstract: "List the check-ins that would alert you.",
        discussion: "Examples:\n  belay checkin watching\n  belay checkin watching --json")

    @OptionGroup var state: StateOptions
    @Flag(help: "One JSON object per line.") var json = false

    func run() async throws {
        try await guarded {
            let list = try state.open().watching()
            if json { return list.forEach { JSONLines.print($0) } }
            guard !list.isEmpty else { return print("No check-in names you.") }
            for w in list {
                let tier = w.tier == 0 ? "" : " (tier \(w.tier + 1))"
                print(
                    "\(w.contact)\(tier): \(w.state); alert due \(AlertTime.format(w.dueAt / 1000)); every \(DurationText.describe(w.every)); "
                        + "you \(w.answer == "none" ? "have not answered" : w.answer). Plan: \(w.plan.isEmpty ? "(no note)" : w.plan)")
            }
        }
    }
}
