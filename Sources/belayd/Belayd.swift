import ArgumentParser
import BelayRelay
import BelayWire
import Foundation
import Logging
import Prometheus
import ServiceLifecycle

/// belayd: the Belay relay daemon. A thin shell over BelayRelay: parse arguments, load and
/// validate the configuration, run the service.
@main
struct Belayd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "belayd",
        abstract: "The Belay relay: passes sealed messages between peers and keeps only ciphertext.",
        discussion: """
            Start with `belayd run`: on first start it creates its key and database in the state
            directory and prints the relay address that clients need, one line:
              belay://HOST:PORT/#KEY
            """,
        version: BelayVersion.string,
        subcommands: [Init.self, Run.self, Address.self, Token.self, Backup.self, Restore.self]
    )
}

struct StateOptions: ParsableArguments {
    @Option(name: .long, help: "State directory (key and database). Default: $STATE_DIRECTORY, else ~/.local/state/belayd.")
    var stateDir: String?

    @Option(name: .long, help: "Configuration file (see Config/belayd.yaml). Default: built-in defaults.")
    var config: String?

    var state: RelayStateDirectory {
        // Everything belayd creates (key, database, WAL) is for its own user only.
        umask(0o077)
        return RelayStateDirectory.resolve(stateDir)
    }

    func loadConfiguration() throws -> RelayConfiguration {
        do {
            return try ConfigLoader.load(file: config)
        } catch {
            throw Failure(message: "invalid configuration: \(error)", exitCode: .init(78))  // EX_CONFIG
        }
    }
}

/// An error that has already been worded for the person at the terminal.
struct Failure: Error, CustomStringConvertible {
    var message: String
    var exitCode: ExitCode = .failure
    var description: String { message }
}

func fail(_ error: Error) -> Never {
    let message = (error as? Failure)?.message ?? "\(error)"
    FileHandle.standardError.write(Data("belayd: \(message)\n".utf8))
    let code = (error as? Failure)?.exitCode.rawValue ?? 1
    exit(code)
}

extension Belayd {
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the state directory and the relay key; print the relay address.",
            discussion: "Never overwrites an existing key. The address is the only line written to stdout.")

        @OptionGroup var options: StateOptions

        func run() throws {
            do {
                let config = try options.loadConfiguration()
                let state = options.state
                let (_, created) = try state.initialise()
                FileHandle.standardError.write(
                    Data(
                        (created
                            ? "belayd: created a relay key in \(state.path)\n"
                            : "belayd: \(state.path) already holds a relay key; leaving it as it is\n").utf8))
                print(try state.address(host: config.advertisedHost, port: config.listen.port))
            } catch {
                fail(error)
            }
        }
    }

    struct Address: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the relay address clients use to reach and pin this relay.")

        @OptionGroup var options: StateOptions

        func run() throws {
            do {
                let config = try options.loadConfiguration()
                print(try options.state.address(host: config.advertisedHost, port: config.listen.port))
            } catch {
                fail(error)
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the relay in the foreground (initialising the state directory on first start).",
            discussion: """
                Prints the relay address on stdout once the database is open and the port is bound,
                and tells systemd READY=1. SIGTERM or SIGINT drains: no new connections, every command
                in flight is committed and answered, then it exits 0.
                """)

        @OptionGroup var options: StateOptions

        @Option(name: .long, help: "Listen on HOST:PORT, overriding the configuration (port 0 picks a free port).")
        var listen: String?

        func run() async throws {
            var config: RelayConfiguration
            let state = options.state
            do {
                config = try options.loadConfiguration()
                if let listen {
                    guard let hp = HostPort(parsing: listen) else {
                        throw Failure(message: "--listen: expected HOST:PORT, e.g. 127.0.0.1:7707", exitCode: .init(64))
                    }
                    config.listen = hp
                }
                if try state.initialise().created {
                    FileHandle.standardError.write(Data("belayd: first start: created a relay key in \(state.path)\n".utf8))
                }
            } catch {
                fail(error)
            }
            // Held until the process ends: a second relay, or a restore, on this state is refused.
            guard let lock = RelayLock(state) else {
                fail(Failure(message: "another belayd is running on \(state.path) (or its lock cannot be taken); stop it first"))
            }
            let level = config.logLevel
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let logger = Logger(label: "belayd")
            let advertisedHost = config.advertisedHost
            var clock: RelayClock = SystemClock()
            if let path = ProcessInfo.processInfo.environment[FileClock.environmentVariable] {
                // Only the process tests set this: it replaces the wall clock entirely.
                logger.warning("using the test clock in \(path) instead of the system clock; never do this in production")
                clock = FileClock(path: path)
            }
            // Metrics only when asked for, on their own listener (loopback unless told otherwise).
            var services: [any Service] = []
            var metrics = RelayMetrics.disabled
            if let listen = config.metricsListen {
                let registry = PrometheusCollectorRegistry()
                metrics = RelayMetrics(factory: PrometheusMetricsFactory(registry: registry))
                services.append(
                    MetricsServer(listen: listen, registry: registry, logger: logger) { address in
                        FileHandle.standardError.write(
                            Data("belayd: metrics at http://\(address.ipAddress ?? listen.host):\(address.port ?? 0)/metrics\n".utf8))
                    })
            }
            let service = RelayService(configuration: config, state: state, logger: logger, clock: clock, metrics: metrics) { server in
                if let address = try? state.address(host: advertisedHost, port: server.port) {
                    FileHandle.standardOutput.write(Data("\(address)\n".utf8))
                }
            }
            var groupConfig = ServiceGroupConfiguration(services: [service] + services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            groupConfig.maximumGracefulShutdownDuration = .seconds(30)
            do {
                try await ServiceGroup(configuration: groupConfig).run()
            } catch {
                fail(error)
            }
            lock.release()
        }
    }

    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy the relay's database, consistently, while it runs.",
            discussion: """
                The copy holds what the relay holds: sealed messages, timers, public keys. It does not hold the \
                relay's private key (relay.key in the state directory): keep that apart, and as carefully. \
                It copies the embedded SQLite database; a relay with `store: postgres://...` is backed up with \
                PostgreSQL's own tools (pg_basebackup or pg_dump; docs/OPERATIONS.md).

                Examples:
                  belayd backup --to /var/backups/belayd-$(date +%F).db
                """)

        @OptionGroup var options: StateOptions
        @Option(help: "The file to write (must not exist).") var to: String

        func run() throws {
            do {
                try RelayBackup.backup(options.state, to: to)
                FileHandle.standardError.write(Data("belayd: backed up \(options.state.databasePath) to \(to)\n".utf8))
            } catch {
                fail(Failure(message: "\(error)"))
            }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put a backup in place of the relay's database (the relay must be stopped).",
            discussion: """
                The backup is checked first, and the current database is replaced only once the copy is safely \
                written. Messages sent after the backup was taken are lost; clients are told when the relay's \
                message numbers look restored. The relay key in the state directory is kept.

                Examples:
                  systemctl stop belayd && belayd restore --from /var/backups/belayd-2026-11-29.db && systemctl start belayd
                """)

        @OptionGroup var options: StateOptions
        @Option(help: "The backup file.") var from: String

        func run() throws {
            do {
                try RelayBackup.restore(options.state, from: from)
                FileHandle.standardError.write(Data("belayd: restored \(options.state.databasePath) from \(from)\n".utf8))
            } catch {
                fail(Failure(message: "\(error)"))
            }
        }
    }
}
