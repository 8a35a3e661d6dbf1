import BelayWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

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
    /// The current listener's registration; stopped before its connection is dropped, or NIO
    /// reports its promise leaked.
    private let listening = Mutex<PostgresListenContext?>(nil)
    private let changeHandler = Mutex<(@Sendable () -> Void)?>(nil)

    /// The notification channel.
    static let channel = "belay_changes"
    /// How long a connection attempt may take before the store reports the server unreachable.
    static let connectTimeout = TimeAmount.seconds(10)
    /// The server ends a statement that runs longer, or waits longer for a lock, so that a
    /// frontend that vanished with locks held blocks the others no longer than this.
    static let statementTimeoutSeconds = 30
    static let lockTimeoutSeconds = 10
    static let idleInTransactionTimeoutSeconds = 60
    /// The core waits this long for any answer before it gives the connection up (a half-open
    /// connection after a network partition answers nothing, ever).
    static let answerTimeout = TimeAmount.seconds(45)
    /// How long to wait before connecting again to listen (microseconds; tests shorten it).
    let relistenDelay: UInt32
    public static let defaultRelistenDelay: UInt32 = 1_000_000

    /// `listening` false: no notification connection, for a tool that only runs transactions of
    /// its own (`belayd token`) and never serves queues.
    public init(_ server: PostgresLocation, logger: Logger, relistenDelay: UInt32 = defaultRelistenDelay, listening: Bool = true) throws {
        self.relistenDelay = relistenDelay
        self.server = server
        self.logger = logger
        frontend = (0..<4).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.joined()
        do {
            let writer = try connect()
            connections.withLock { $0.writer = writer }
            try PostgresSchema.migrate(writer, logger: logger)
            if listening { try startListening() }
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
        let connection = try PostgresConnection.connect(on: group.next(), configuration: configuration, id: 1, logger: logger).waitBounded()
        do {
            // Durable before OK, whatever the server's default; and bounded waits.
            for setting in [
                "SET synchronous_commit = on", "SET statement_timeout = '\(Self.statementTimeoutSeconds)s'",
                "SET lock_timeout = '\(Self.lockTimeoutSeconds)s'",
                "SET idle_in_transaction_session_timeout = '\(Self.idleInTransactionTimeoutSeconds)s'",
            ] {
                _ = try Self.bounded(connection.query(PostgresQuery(unsafeSQL: setting), logger: logger))
            }
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
        let context = listener.addListener(channel: Self.channel) { [weak self] _, note in
            self?.received(note.payload, from: me)
        }
        listening.withLock { old in
            old?.stop()
            old = context
        }
        _ = try Self.bounded(listener.query("LISTEN belay_changes", logger: logger))
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

    /// Reconnects on a thread of its own (never on the event loop, where waiting is forbidden),
    /// and once listening again has every queue re-read: notifications sent while nobody
    /// listened are lost.
    private func listenerLost() {
        // Runs on the event loop: only `connections` here (never `closed`, which the thread below
        // holds while it waits on this loop).
        guard connections.withLock({ $0.listener != nil }) else { return }  // closed on purpose
        logger.warning("lost the PostgreSQL notification connection; reconnecting and re-reading every queue")
        Thread.detachNewThread { [weak self] in
            while let self {
                usleep(self.relistenDelay)
                // Under the lock `close` takes first: the event loop is not shut down under us.
                let done: Bool = self.closed.withLock { closed in
                    guard !closed else { return true }
                    do {
                        try self.startListening()
                        self.changes.withLock { $0.everything = true }
                        return true
                    } catch {
                        self.logger.warning("cannot listen for PostgreSQL notifications yet", metadata: ["error": "\(error)"])
                        return false
                    }
                }
                if done {
                    self.changeHandler.withLock { $0 }?()
                    return
                }
            }
        }
    }

    /// Waits for a future, but not forever: past `answerTimeout` the connection is given up.
    static func bounded<T>(_ future: EventLoopFuture<T>) throws -> T {
        let promise = future.eventLoop.makePromise(of: T.self)
        future.cascade(to: promise)
        let timeout = future.eventLoop.scheduleTask(in: answerTimeout) { promise.fail(PostgresStoreError.noAnswer) }
        defer { timeout.cancel() }
        return try promise.futureResult.wait()
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
        ).waitBounded()
        guard let next = try rows.first?.decode(Int64.self) else { throw PostgresStoreError.unexpected("no generation") }
        guard next < Int64(GenerationExhausted.maxGeneration) else { throw GenerationExhausted(location: location, current: next) }
        return UInt32(next)
    }

    /// Also called inside a transaction, by the engine's re-reading of every queue, on the same
    /// connection but not through the transaction: it sees only what the transaction has sent,
    /// which is everything, since the engine re-reads before the batch's first command.
    public func durableState() throws -> DurableState {
        let c = try writer()
        let queues = try PostgresTransaction.queueRows(c, logger: logger, where: nil)
        var held: [Int64: DurableState.Held] = [:]
        for row in try c.query("SELECT queue_id, count(*), sum(length(body)) FROM timer_entry GROUP BY queue_id", logger: logger).waitBounded() {
            let (queue, count, bytes) = try row.decode((Int64, Int64, Int64).self)
            held[queue] = .init(bodies: Int(count), bytes: Int(bytes))
        }
        let timers = try c.query("SELECT count(*) FROM timer", logger: logger).waitBounded().first?.decode(Int64.self) ?? 0
        return DurableState(queues: queues, held: held, timers: Int(timers))
    }

    public func transaction(_ body: (any QueueTransaction) throws -> Void) throws {
        let c = try writer()
        _ = try c.query("BEGIN", logger: logger).waitBounded()
        do {
            let tx = PostgresTransaction(connection: c, logger: logger)
            try body(tx)
            try tx.flushPending()
            if !tx.notes.isEmpty {
                let payloads = tx.notes.map { "\(frontend):\($0)" }
                _ = try c.query("SELECT pg_notify('belay_changes', n) FROM unnest(\(payloads)::text[]) AS n", logger: logger).waitBounded()
            }
            _ = try c.query("COMMIT", logger: logger).waitBounded()
        } catch {
            if case PostgresStoreError.noAnswer = error {
                // Nothing is known of that connection: the next transaction opens another.
                try? c.close().wait()
            } else {
                _ = try? c.query("ROLLBACK", logger: logger).waitBounded()
            }
            throw error
        }
    }

    /// PostgreSQL has no `secure_delete`: see docs/OPERATIONS.md for what the operator does.
    public func forgetDeleted() throws {}

    public func isOutOfSpace(_ error: Error) -> Bool {
        (error as? PSQLError)?.serverInfo?[.sqlState] == "53100"  // disk_full
    }

    /// A deadlock (40P01) or serialization failure (40001) between frontends' transactions, or
    /// a unique key another frontend took first (23505: a TSET retried there): run again, the
    /// batch sees what the other committed.
    public func isRetryable(_ error: Error) -> Bool {
        ["40P01", "40001", "23505"].contains((error as? PSQLError)?.serverInfo?[.sqlState] ?? "")
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
        listening.withLock { c in
            c?.stop()
            c = nil
        }
        try? writer?.close().wait()
        try? listener?.close().wait()
        try group.syncShutdownGracefully()
    }
}

extension EventLoopFuture {
    /// `wait()`, but at most `PostgresQueueStore.answerTimeout`.
    func waitBounded() throws -> Value { try PostgresQueueStore.bounded(self) }
}

public enum PostgresStoreError: Error, CustomStringConvertible {
    case unreachable(String, String)
    case unexpected(String)
    case noAnswer

    public var description: String {
        switch self {
        case let .unreachable(server, why):
            "cannot use the PostgreSQL store at \(server): \(why). Is the server running, and may this user connect to that database?"
        case let .unexpected(why): "PostgreSQL answered something unexpected: \(why)"
        case .noAnswer: "PostgreSQL did not answer in \(PostgresQueueStore.answerTimeout.nanoseconds / 1_000_000_000) s; the connection is given up"
        }
    }
}
