import ArgumentParser
import BelayClient
import BelayE2E
import BelaySodium
import Foundation

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create your identity and encrypted local state.",
        discussion: """
            The passphrase is read from the terminal without echo (twice), or from BELAY_PASSPHRASE. It \
            protects your keys, contacts and messages with Argon2id; there is no way to recover it.

            Examples:
              belay init
              BELAY_HOME=/tmp/alice BELAY_PASSPHRASE=... belay init
            """)

    @OptionGroup var state: StateOptions
    @Flag(name: .long, help: "Store the state without a passphrase (anyone who can read the files can read everything).")
    var noPassphrase = false

    func run() async throws {
        try await guarded {
            let home = state.resolvedHome
            guard !Agent.exists(home: home) else { throw ClientError.stateExists(home) }
            var passphrase: [UInt8]?
            if noPassphrase {
                Terminal.note("WARNING: no passphrase. Your keys, contacts and messages are stored so that anyone who can read \(home) can read them all.")
            } else if let env = ProcessInfo.processInfo.environment["BELAY_PASSPHRASE"] {
                passphrase = Array(env.utf8)
            } else {
                guard let first = Terminal.secret(prompt: "New passphrase: ") else { throw ClientError.passphraseRequired }
                guard let second = Terminal.secret(prompt: "Repeat passphrase: ") else { throw ClientError.passphraseRequired }
                guard first == second else { throw ClientError.invalidInput("the two passphrases differ; nothing was created") }
                passphrase = first
            }
            if let p = passphrase, p.isEmpty { throw ClientError.invalidInput("the passphrase is empty; use --no-passphrase if you mean that") }
            defer { if passphrase != nil { Sodium.wipe(&passphrase!) } }
            _ = try Agent.initialise(home: home, passphrase: passphrase)
            print("Created your Belay identity in \(home)")
        }
    }
}

struct ContactsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contacts", abstract: "List your contacts and pending invitations.",
        discussion: "Examples:\n  belay contacts\n  belay contacts --json")

    @OptionGroup var state: StateOptions
    @Flag(help: "One JSON object per line.") var json = false

    func run() async throws {
        try await guarded {
            let agent = try state.open()
            let (contacts, invitations) = try agent.contacts()
            if json {
                contacts.forEach { JSONLines.print($0) }
                return
            }
            if contacts.isEmpty { print("No contacts yet. `belay invite --relay ADDRESS` makes an invitation.") }
            for c in contacts {
                var flags: [String] = [c.verified ? "verified" : "not verified"]
                if !c.canSend { flags.append("waiting for their first message") }
                if c.pendingSends > 0 { flags.append("\(c.pendingSends) unsent") }
                print("\(c.name)  (\(flags.joined(separator: ", ")))")
            }
            if !invitations.isEmpty { print("\(invitations.count) invitation(s) not yet accepted") }
        }
    }
}

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Show the safety number to compare with a contact, and mark them verified.",
        discussion: """
            Compare the 60 digits with your contact in person or on a call you trust. If they match, run \
            again with --confirm. A verified contact whose identity changes is a hard stop.

            Examples:
              belay verify Sam
              belay verify Sam --confirm
            """)

    @OptionGroup var state: StateOptions
    @Argument(help: "The contact's name.") var name: String
    @Flag(help: "Mark the contact verified (after the numbers matched).") var confirm = false

    func run() async throws {
        try await guarded {
            let agent = try state.open()
            let (number, verified) = try agent.safetyNumber(name)
            print(SafetyNumber.grouped(number))
            if confirm {
                try agent.markVerified(name)
                print("\(name) is now verified.")
            } else {
                print(verified ? "\(name) is verified." : "Not verified. If the numbers match, run: belay verify \(name) --confirm")
            }
        }
    }
}

struct ForgetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget", abstract: "Delete a contact, their queue at the relay, and your history with them.",
        discussion: "Example:\n  belay forget Sam")

    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Argument(help: "The contact's name.") var name: String

    func run() async throws {
        try await guarded {
            try await state.open(through: network).forget(name)
        }
    }
}

struct WipeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wipe", abstract: "Destroy all local state: identity, contacts, messages.",
        discussion: "Asks you to type `wipe` unless --yes is given.\n\nExamples:\n  belay wipe\n  belay wipe --yes")

    @OptionGroup var state: StateOptions
    @Flag(help: "Do not ask for confirmation (for scripts).") var yes = false

    func run() async throws {
        try await guarded {
            let home = state.resolvedHome
            guard Agent.exists(home: home) else { throw ClientError.noState(home) }
            if !yes, !Terminal.confirm("This destroys your Belay identity and every message in \(home). Type `wipe` to go on: ", expect: "wipe") {
                throw ClientError.notConfirmed
            }
            try Agent.wipe(home: home)
            print("Wiped \(home)")
        }
    }
}
