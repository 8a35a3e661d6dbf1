import ArgumentParser
import BelayRelay
import Foundation
import Logging

extension Belayd {
    /// `belayd token add|list|revoke`: organisation members' queue-creation tokens.
    struct Token: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Manage members' queue-creation tokens (each with a quota of queues).",
            discussion: """
                A relay with `require_creation_token: true` (or any `creation_tokens`) lets only token holders create \
                queues. Each member gets a token of their own: it can be revoked alone, and it may create a limited \
                number of queues. Only the token's hash is stored; the relay counts the queues each token created but \
                does not record which queues they are. Changes take effect at the running relay's next queue creation.

                Examples:
                  belayd token add --label alex --queues 200
                  belayd token list
                  belayd token revoke alex
                """,
            subcommands: [Add.self, List.self, Revoke.self])
    }
}

extension Belayd.Token {
    /// Opens the relay's store (the running relay's too: SQLite waits for its short transactions).
    static func withAdmin<T>(_ options: StateOptions, _ body: (MemberTokenAdmin) throws -> T) throws -> T {
        let config = try options.loadConfiguration()
        let state = options.state
        if case .sqlite = config.store { _ = try state.initialise() }
        var logger = Logger(label: "belayd-token")
        logger.logLevel = .error
        let store = try RelayStores.open(config, state: state, logger: logger, serving: false)
        defer { try? store.close() }
        return try body(MemberTokenAdmin(store: store))
    }

    static func note(_ text: String) {
        FileHandle.standardError.write(Data("belayd: \(text)\n".utf8))
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new token and print it once (only its hash is kept).",
            discussion: "The token is the only line written to stdout. Hand it to the member over a channel you trust.")

        @OptionGroup var options: StateOptions
        @Option(help: "A name for the operator's own list (a member or a device); not all digits.") var label: String?
        @Option(help: "How many queues the token may create in all (default \(MemberToken.defaultQuota)).")
        var queues: Int = MemberToken.defaultQuota

        func run() throws {
            do {
                let (id, token) = try Belayd.Token.withAdmin(options) { try $0.add(label: label, quota: queues) }
                print(token)
                Belayd.Token.note("added token \(id)\(label.map { " (\($0))" } ?? "") with a quota of \(queues) queues; it is shown only now")
                let config = try options.loadConfiguration()
                if !config.requiresCreationToken {
                    Belayd.Token.note(
                        config.creationWorkBits > 0
                            ? "note: this relay does not require tokens; this one spares its holder the proof of work"
                            : "note: this relay does not require tokens yet; set `require_creation_token: true` and restart it")
                }
            } catch {
                fail(Failure(message: "\(error)"))
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List tokens: id, label, quota and queues created (never the token).")

        @OptionGroup var options: StateOptions

        func run() throws {
            do {
                let rows = try Belayd.Token.withAdmin(options) { try $0.list() }
                guard !rows.isEmpty else { return Belayd.Token.note("no member tokens") }
                print("ID\tLABEL\tQUEUES\tUSED")
                for row in rows { print("\(row.id)\t\(row.label ?? "-")\t\(row.quota)\t\(row.used)") }
            } catch {
                fail(Failure(message: "\(error)"))
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a token: the relay refuses it from its next queue creation on.",
            discussion: "Queues the token created stay; nothing links them to it.")

        @OptionGroup var options: StateOptions
        @Argument(help: "The token's id or label (`belayd token list`).") var token: String

        func run() throws {
            do {
                let row = try Belayd.Token.withAdmin(options) { try $0.revoke(token) }
                Belayd.Token.note("revoked token \(row.id)\(row.label.map { " (\($0))" } ?? ""), which had created \(row.used) queues")
            } catch {
                fail(Failure(message: "\(error)"))
            }
        }
    }
}
