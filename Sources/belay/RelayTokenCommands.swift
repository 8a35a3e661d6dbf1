import ArgumentParser
import BelayClient
import Foundation

/// `belay relay token set|clear|list`: the organisation tokens kept per relay.
struct RelaySettingsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay", abstract: "A relay's signed policy, and the organisation tokens this client keeps for relays.",
        subcommands: [RelayInfoCommand.self, RelayTokenCommand.self])
}

struct RelayTokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Keep or forget the organisation token for a relay.",
        discussion: """
            A relay run for an organisation may create queues only for its members: its operator gives each \
            member a token (`belayd token add`). Kept for a relay, it is sent whenever this client creates a \
            queue there (invitations, accepting, groups, introductions). It is stored encrypted with the rest \
            of the state. `belay invite --token` and `belay accept --token` keep it too. `set` without a token \
            asks for it, so that it stays out of the shell's history.

            Examples:
              belay relay token set 'belay://relay.example.org:7700/#KEY'
              belay relay token clear 'belay://relay.example.org:7700/#KEY'
              belay relay token list
            """,
        subcommands: [Set.self, Clear.self, List.self])

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Keep a token for a relay (from the argument, BELAY_TOKEN, or a prompt without echo).")

        @OptionGroup var state: StateOptions
        @Argument(help: "The relay's address, belay://HOST:PORT/#KEY.") var relay: String
        @Argument(help: "The token; omit it to be asked (it then stays out of the shell's history).") var token: String?

        func run() async throws {
            try await guarded {
                let address = try parseRelay(relay)
                let agent = try state.open()
                guard
                    let value = token
                        ?? Terminal.secret(environment: "BELAY_TOKEN", prompt: "Organisation token: ").map({ String(decoding: $0, as: UTF8.self) })
                else { throw ClientError.invalidInput("no token given: pass it, set BELAY_TOKEN, or run this at a terminal") }
                try agent.setRelayToken(value, for: address)
                Terminal.note("kept the token for \(address.host):\(address.port); queues created there present it")
            }
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forget the token kept for a relay.")

        @OptionGroup var state: StateOptions
        @Argument(help: "The relay's address, belay://HOST:PORT/#KEY.") var relay: String

        func run() async throws {
            try await guarded {
                let address = try parseRelay(relay)
                let had = try state.open().clearRelayToken(for: address)
                Terminal.note(had ? "forgot the token for \(address.host):\(address.port)" : "no token was kept for \(address.host):\(address.port)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the relays a token is kept for (never the tokens).")

        @OptionGroup var state: StateOptions

        func run() async throws {
            try await guarded {
                let relays = try state.open().relaysWithTokens()
                if relays.isEmpty { Terminal.note("no relay tokens kept") }
                relays.forEach { print($0) }
            }
        }
    }
}
