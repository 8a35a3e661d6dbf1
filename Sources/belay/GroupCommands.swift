import ArgumentParser
import BelayClient
import Foundation

/// `belay group …`: support groups whose messages go to each member through their own pairing.
struct GroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group", abstract: "Support groups: create, invite, join, leave, send, list.",
        discussion: """
            A group's messages go to each member through your own end-to-end pairing with them; the relay \
            sees ordinary messages and never a group. Members not yet paired with each other are paired \
            through the group once both have joined. See docs/GROUPS.md.
            """,
        subcommands: [
            Create.self, Add.self, Join.self, Remove.self, Leave.self, Send.self, Members.self, List.self, History.self, Retire.self,
            Forget.self,
        ])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a group with some of your contacts; each is asked to join.",
            discussion: "You are its admin.\n\nExamples:\n  belay group create circle --members Sam,Alex,Jo")
        @OptionGroup var state: StateOptions
        @OptionGroup var network: ProxyOptions
        @Argument(help: "The group's name.") var name: String
        @Option(help: "Contacts to invite, comma-separated.") var members: String

        func run() async throws {
            try await guarded {
                try await state.open(through: network).createGroup(name, members: splitNames(members))
                print("Created \(name). Each member is asked; nothing reaches them until they run `belay group join \(name)`.")
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Invite a contact to a group you are an admin of.",
            discussion: "They are asked, and receive nothing until they join.\n\nExamples:\n  belay group add circle Rae")
        @OptionGroup var state: StateOptions
        @OptionGroup var network: ProxyOptions
        @Argument(help: "The group.") var name: String
        @Argument(help: "The contact to invite.") var member: String

        func run() async throws {
            try await guarded {
                try await state.open(through: network).addToGroup(name, member: member)
                print("\(member) is invited to \(name); they receive nothing until they run `belay group join \(name)`.")
            }
        }
    }

    struct Join: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Join a group or roster you were invited to.",
            discussion: """
                Joining consents to pairing with its members, through the group, and to receiving its messages. \
                An admin confirms it when they next read.

                Examples:
                  belay group join circle
                """)
        @OptionGroup var state: StateOptions
        @OptionGroup var network: ProxyOptions
        @Argument(help: "The group.") var name: String

        func run() async throws {
            try await guarded {
                try await state.open(through: network).joinGroup(name)
                print("Joined \(name). Its admin confirms it when they next read; members you do not know yet are paired with you as you all read.")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a member (admins only).",
            discussion: "They receive nothing sent after it, and what they send is refused.\n\nExamples:\n  belay group remove circle Rae")
        @OptionGroup var state: StateOptions
        @OptionGroup var network: ProxyOptions
        @Argument(help: "The group.") var name: String
        @Argument(help: "The member.") var member: String

        func run() async throws {
            try await guarded {
                try await state.open(through: network).removeFromGroup(name, member: member)
                print("Removed \(member) from \(name).")
            }
        }
    }

    struct Leave: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Leave a group; nobody's permission is needed.",
            discussion: "Your history of it stays on this device.\n\nExamples:\n  belay group leave circle")
        @OptionGroup var state: StateOptions
        @OptionGroup var network: ProxyOptions
        @Argument(help: "The group.") var name: String

        func run() async throws {
            try await guarded {
                try await state.open(through: network).leaveGroup(name)
                print("You left \(name).")
            }
        }
    }

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a message to everyone in a group.",
            discussion: """
                One end-to-end message per member. A member whose relay is down gets it from the outbox later; \
                one not yet paired with you gets it once the pairing completes.

                Examples:
                  belay group send circle 'meeting moved to 7pm'
                  echo 'long note' | belay group send circle -
                """)
        @OptionGroup var state: StateOptions
        @OptionGroup var network: ProxyOptions
        @Argument(help: "The group.") var name: String
        @Argument(help: "The message, or - to read it from standard input.") var message: String
        @Flag(help: "Print a JSON line with who it reached.") var json = false

        func run() async throws {
            try await guarded {
                let text = try messageText(message)
                let outcome = try await state.open(through: network).groupSend(name, text: text)
                if json { return JSONLines.print(["sent": outcome.sent, "queued": outcome.queued, "waitingForPairing": outcome.waitingForPairing]) }
                if !outcome.queued.isEmpty {
                    Terminal.note("saved for \(outcome.queued.joined(separator: ", ")) (relay unreachable); sent by the next command that reaches it")
                }
                if !outcome.waitingForPairing.isEmpty {
                    Terminal.note("held for \(outcome.waitingForPairing.joined(separator: ", ")) until their pairing with you completes")
                }
            }
        }
    }

    struct Members: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a group's members.", discussion: "Examples:\n  belay group members circle\n  belay group members circle --json")
        @OptionGroup var state: StateOptions
        @Argument(help: "The group.") var name: String
        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            try await guarded {
                let members = try state.open().groupMembers(name)
                if json { return members.forEach { JSONLines.print($0) } }
                for m in members {
                    let role = [m.admin ? "admin" : nil, m.coordinator ? "coordinator" : nil].compactMap { $0 }.joined(separator: ", ")
                    print("\(m.name)\(role.isEmpty ? "" : " (\(role))")  \(m.status)\(m.you || m.paired || m.status != "joined" ? "" : ", pairing")")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List your groups and rosters.", discussion: "Examples:\n  belay group list\n  belay group list --json")
        @OptionGroup var state: StateOptions
        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            try await guarded {
                let groups = try state.open().groups()
                if json { return groups.forEach { JSONLines.print($0) } }
                if groups.isEmpty { Terminal.note("no groups") }
                for g in groups {
                    print("\(g.name)  \(g.roster ? "roster" : "group"), \(g.members) members, \(g.status)\(g.admin ? ", you are an admin" : "")")
                }
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a group's history on this device.", discussion: "Examples:\n  belay group history circle")
        @OptionGroup var state: StateOptions
        @Argument(help: "The group.") var name: String
        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            try await guarded {
                let entries = try state.open().groupHistory(name)
                if json { return entries.forEach { JSONLines.print($0) } }
                for e in entries {
                    let time = timeFormatter.string(from: Date(timeIntervalSince1970: Double(e.sentAt) / 1000))
                    print("\(time) \(e.direction == .outgoing ? "you: " : "")\(e.text)")
                }
            }
        }
    }

    struct Forget: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete what this device keeps of a group you left, were removed from, or only were invited to.",
            discussion: "Its history and its list of members go; an invitation you had not answered is declined.\n\nExamples:\n  belay group forget circle")
        @OptionGroup var state: StateOptions
        @OptionGroup var network: ProxyOptions
        @Argument(help: "The group.") var name: String

        func run() async throws {
            try await guarded {
                try await state.open(through: network).forgetGroup(name)
                print("Forgot \(name): its history and its list are deleted from this device.")
            }
        }
    }

    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End a group for everyone (admins only); every member's client deletes its history.",
            discussion: "Examples:\n  belay group retire circle")
        @OptionGroup var state: StateOptions
        @OptionGroup var network: ProxyOptions
        @Argument(help: "The group.") var name: String

        func run() async throws {
            try await guarded {
                try await state.open(through: network).retireGroup(name)
                print("\(name) is ended. Each member's client deletes its history when it next reads.")
            }
        }
    }
}

func splitNames(_ text: String) -> [String] {
    text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
}

/// A message argument, or standard input for "-" (up to 64 KiB, one trailing newline dropped).
func messageText(_ argument: String) throws -> String {
    var text = argument
    if argument == "-" {
        text = String(decoding: FileHandle.standardInput.readData(ofLength: 64 * 1024), as: UTF8.self)
        if text.hasSuffix("\n") { text.removeLast() }
    }
    guard !text.isEmpty else { throw ClientError.invalidInput("the message is empty") }
    return text
}
