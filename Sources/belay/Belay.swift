import ArgumentParser
import BelayClient
import BelayWire
import Foundation

/// belay: the Belay client. Every command is a thin layer over `BelayClient.Agent`.
@main
struct Belay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "belay",
        abstract: "Belay: end-to-end encrypted messaging and check-ins for people who look after each other.",
        discussion: """
            State lives in $BELAY_HOME (default ~/.local/share/belay), encrypted under your passphrase. \
            Scripts may set BELAY_PASSPHRASE. To reach relays only through Tor, set \
            BELAY_PROXY=socks5h://127.0.0.1:9050 (or pass --proxy). Exit codes: 0 ok, 1 error, 3 passphrase, 4 relay, 5 security \
            stop (an identity changed), 6 damaged local state, 7 a check-in after the alerts went out, 8 a request \
            someone else claimed first, 64 usage.
            """,
        version: "\(BelayVersion.string) (protocol \(WireHandshake.currentVersion))",
        subcommands: [
            InitCommand.self, InviteCommand.self, AcceptCommand.self, SendCommand.self, ReadCommand.self,
            ContactsCommand.self, VerifyCommand.self, ForgetCommand.self, WipeCommand.self, CheckinCommand.self,
            GroupCommand.self, RosterCommand.self, RequestCommand.self, ClaimCommand.self, IntroduceCommand.self,
            IntroductionsCommand.self, IntroductionCommand.self, RelaySettingsCommand.self,
        ]
    )
}

/// Options every command that opens the state shares.
struct StateOptions: ParsableArguments {
    @Option(name: .long, help: "Where the state lives (default $BELAY_HOME or ~/.local/share/belay).")
    var home: String?

    var resolvedHome: String { home ?? Agent.defaultHome() }

    func open() throws -> Agent {
        try Agent(home: resolvedHome, passphrase: Terminal.passphrase)
    }

    /// For commands that reach a relay: the proxy is checked before the passphrase is asked.
    func open(through network: ProxyOptions) throws -> Agent {
        let route = try network.route()
        return try Agent(home: resolvedHome, passphrase: Terminal.passphrase, route: route)
    }
}

/// The option every command that reaches a relay shares (docs/CLI.md, "Proxies and Tor").
struct ProxyOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Reach relays only through this SOCKS5 proxy, socks5h://HOST:PORT (default $BELAY_PROXY); Tor's is socks5h://127.0.0.1:9050. "
                + "Without USER:PASS@, every queue gets its own Tor circuit.",
            valueName: "url"))
    var proxy: String?

    func route() throws -> RelayRoute {
        try RelayRoute.configured(option: proxy, environment: ProcessInfo.processInfo.environment)
    }
}

/// Runs a command body, turning every error into the documented output and exit code.
func guarded(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ClientError {
        Terminal.error("\(error)")
        if let hint = error.hint { Terminal.hint(hint) }
        throw ExitCode(error.exitCode)
    } catch let error as ExitCode {
        throw error
    } catch let error as CleanExit {
        throw error
    } catch {
        Terminal.error("\(error)")
        throw ExitCode(1)
    }
}
