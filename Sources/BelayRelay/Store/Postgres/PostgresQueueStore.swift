import BelayWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

/// `QueueStore` on PostgreSQL, which several relay frontends may share. A commit returns once
/// the server has made it durable (`synchronous_commit = on`, set per connection). Frontends
/// learn of each other's changes through LISTEN/NOTIFY on `belay_changes`: a queue created,
/// secured or deleted (`q`), messages stored (`m`), a subscription taken (`s`); each payload is
/// `FRONTEND:KIND:ROW`, and a frontend ignores its own.
///
/// The core calls it from its one thread and waits on each statement; the connections run on
/// an event loop of the store's own.
public final class PostgresQueueStore: QueueStore {
    public let server: PostgresLocation
    public let shared = true
    public var location: String { server.description }
    let logger: Logger
    /// Names this frontend in notifications (random per start).
    let frontend: String
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let connections = Mutex<(writer: PostgresConnection?, listener: PostgresConnection?)>((nil, nil))
    private let changes = Mutex(ChangedQueues())
    private let changeHandler = Mutex<(@Sendable () -> Void)?>(nil)

    /// The notification channel.
    static let channel = "belay_changes"
    /// How long a connection attempt may take before the store reports the server unreachable.
    static let connectTimeout = TimeAmount.seconds(10)

    public init(_ server: PostgresLocation, logger: Logger) throws {
        self.server = server
        self.logger = logger
        frontend = (0..<4).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.joined()
        do {
            let writer = try connect()
            connections.withLock { $0.writer = writer }
            try PostgresSchema.migrate(writer, logger: logger)
            try startListening()
        } catch {
            try? close()
            throw PostgresStoreError.unreachable(server.description, "\(error)")
        }
    }

    deinit {
        try? close()
    }

    private func connect() throws -> PostgresConnection {
        var configuration = PostgresConnection.Configuration(
            host: server.host, port: server.port, username: server.user, password: server.password, database: server.database,
            tls: server.tls == .require ? .require(try NIOSSLContext(configuration: .makeClientConfiguration())) : .disable)
        configuration.options.connectTimeout = Self.connectTimeout
        let connection = try PostgresConnection.connect(on: group.next(), configuration: configuration, id: 1, logger: logger).wait()
        do {
            // Durable before OK, whatever the server's default.
            _ = try connection.query("SET synchronous_commit = on", logger: logger).wait()
        } catch {
            try? connection.close().wait()
            throw error
        }
        return connection
    }

    /// The writer, reconnected if the server went away (a failover, a restart).
    func writer() throws -> PostgresConnection {
        if let c = connections.withLock({ $0.writer }), !c.isClosed { return c }
        let c = try connect()
        connections.withLock { $0.writer = c }
        return c
    }

    private func startListening() throws {
        let listener = try connect()
        connections.withLock { $0.listener = listener }
        let me = frontend
        listener.addListener(channel: Self.channel) { [weak self] _, note in
            self?.received(note.payload, from: me)
        }
        _ = try listener.query("LISTEN belay_changes", logger: logger).wait()
        // Notifications sent while nobody listened are lost: whoever listens anew re-reads all.
        listener.closeFuture.whenComplete { [weak self] _ in self?.listenerLost() }
    }

    private func received(_ payload: String, from me: String) {
        let parts = payload.split(separator: ":")
        guard parts.count == 3, parts[0] != me, let row = Int64(parts[2]) else { return }
        changes.withLock { c in
            switch parts[1] {
            case "m": c.messages.insert(row)
            case "q": c.rows.insert(row)
            case "s": c.subscribedElsewhere.insert(row)
            default: return
            }
        }
        changeHandler.withLock { $0 }?()
    }

    private func listenerLost() {
        guard connections.withLock({ $0.listener != nil }) else { return }  // closed on purpose
        changes.withLock { $0.everything = true }
        logger.warning("lost the PostgreSQL notification connection; reconnecting and re-reading every queue")
        group.next().scheduleTask(in: .seconds(1)) { [weak self] in
            guard let self else { return }
            do {
                try self.startListening()
                self.changeHandler.withLock { $0 }?()
            } catch {
                self.listenerLost()
            }
        }
    }

    public func onChange(_ handler: @escaping @Sendable () -> Void) {
        changeHandler.withLock { $0 = handler }
    }

    public func takeChangedQueues() -> ChangedQueues {
        changes.withLock { c in
            defer { c = ChangedQueues() }
            return c
        }
    }

    public func nextGeneration(floor: UInt32) throws -> UInt32 {
        let c = try writer()
        let rows = try c.query(
            """
            INSERT INTO relay_meta(name, value) VALUES ('generation', \(Int64(max(floor, 1))))
            ON CONFLICT (name) DO UPDATE SET value = GREATEST(relay_meta.value + 1, excluded.value) RETURNING value
            """, logger: logger
        ).wait()
        guard let next = try rows.first?.decode(Int64.self) else { throw PostgresStoreError.unexpected("no generation") }
        guard next < Int64(GenerationExhausted.maxGeneration) else { throw GenerationExhausted(location: location, current: next) }
        return UInt32(next)
    }

    public func durableState() throws -> DurableState {
        let c = try writer()
        let queues = try PostgresTransaction.queueRows(c, logger: logger, where: nil)
        var held: [Int64: DurableState.Held] = [:]
        for row in try c.query("SELECT queue_id, count(*), sum(length(body)) FROM timer_entry GROUP BY queue_id", logger: logger).wait() {
            let (queue, count, bytes) = try row.decode((Int64, Int64, Int64).self)
            held[queue] = .init(bodies: Int(count), bytes: Int(bytes))
        }
        let timers = try c.query("SELECT count(*) FROM timer", logger: logger).wait().first?.decode(Int64.self) ?? 0
        return DurableState(queues: queues, held: held, timers: Int(timers))
    }

    public func transaction(_ body: (any QueueTransaction) throws -> Void) throws {
        let c = try writer()
        _ = try c.query("BEGIN", logger: logger).wait()
        do {
            let tx = PostgresTransaction(connection: c, logger: logger)
            try body(tx)
            try tx.flushDeletes()
            if !tx.notes.isEmpty {
                let payloads = tx.notes.map { "\(frontend):\($0)" }
                _ = try c.query("SELECT pg_notify('belay_changes', n) FROM unnest(\(payloads)::text[]) AS n", logger: logger).wait()
            }
            _ = try c.query("COMMIT", logger: logger).wait()
        } catch {
            _ = try? c.query("ROLLBACK", logger: logger).wait()
            throw error
        }
    }

    /// PostgreSQL has no `secure_delete`: see docs/OPERATIONS.md for what the operator does.
    public func forgetDeleted() throws {}

    public func isOutOfSpace(_ error: Error) -> Bool {
        (error as? PSQLError)?.serverInfo?[.sqlState] == "53100"  // disk_full
    }

    private let closed = Mutex(false)

    public func close() throws {
        guard
            !closed.withLock({ c in
                defer { c = true }
                return c
            })
        else { return }
        let (writer, listener) = connections.withLock { c in
            defer { c = (nil, nil) }
            return c
        }
        try? writer?.close().wait()
        try? listener?.close().wait()
        try group.syncShutdownGracefully()
    }
}

public enum PostgresStoreError: Error, CustomStringConvertible {
    case unreachable(String, String)
    case unexpected(String)

    public var description: String {
        switch self {
        case let .unreachable(server, why):
            "cannot use the PostgreSQL store at \(server): \(why). Is the server running, and may this user connect to that database?"
        case let .unexpected(why): "PostgreSQL answered something unexpected: \(why)"
        }
    }
}
