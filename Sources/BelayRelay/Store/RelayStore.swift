import BelayWire
import Foundation
import GRDB
import GRDBSQLite

/// The relay's SQLite database: durable (`synchronous=FULL`, WAL), forgetful (`secure_delete`,
/// WAL truncated after deletions). Only the core thread uses it, one transaction per batch.
/// (`@unchecked`: GRDB's queue serialises every access; `hot` is touched only inside it.)
/// `@unchecked`: GRDB's `DatabaseQueue` serialises every access, and the prepared `hot`
/// statements are touched only inside it; a `Mutex` around them cannot be expressed, because the
/// statements belong to the non-Sendable `Database` that GRDB hands to its closures.
public final class RelayStore: QueueStore, @unchecked Sendable {
    public enum Error: Swift.Error, CustomStringConvertible {
        case open(path: String, underlying: Swift.Error)
        case notWAL(String)

        public var description: String {
            switch self {
            case let .open(path, e): "cannot open the relay database at \(path): \(e)"
            case let .notWAL(mode): "the database refused WAL mode (journal_mode is \(mode)); is it on a network file system?"
            }
        }
    }

    /// How long a transaction waits for another process's write lock (`belayd token`).
    package static let busyTimeoutSeconds: TimeInterval = 5
    /// Pages of WAL between automatic passive checkpoints.
    static let walAutocheckpointPages = 1_000

    let database: DatabaseQueue
    public let path: String
    /// Prepared on first use by the core thread; finalised in `close()`.
    private var hot: HotStatements?

    public init(path: String) throws {
        self.path = path
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.label = "belayd.store"
        // `belayd token` writes to the same database while the relay runs: whichever comes
        // second waits for the other's short transaction instead of failing.
        configuration.busyMode = .timeout(Self.busyTimeoutSeconds)
        configuration.prepareDatabase { db in
            // FULL: a commit returns only after the WAL is fsynced, so an acknowledged send
            // survives a power cut. secure_delete: freed cells are overwritten with zeros.
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA secure_delete = ON")
            // SQLite's default automatic checkpoint, made explicit: a passive checkpoint each
            // time the WAL reaches 1,000 pages (4 MiB) keeps the WAL small, so the sweep's
            // TRUNCATE each second has little left to copy and frees little (measured: a 4 ms
            // stall, against 28 ms when the WAL grew to 20,000 pages). See docs/PERFORMANCE.md.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(Self.walAutocheckpointPages)")
        }
        do {
            database = try DatabaseQueue(path: path, configuration: configuration)
            let mode = try database.writeWithoutTransaction { db in
                try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") ?? "?"
            }
            guard mode.lowercased() == "wal" else { throw Error.notWAL(mode) }
            try Schema.migrator().migrate(database)
        } catch let e as Error {
            throw e
        } catch  where Self.isDiskFull(error) || DiskReserve.isNearlyFull(at: path) {
            throw DiskFullError(path: path, availableBytes: DiskReserve.availableBytes(at: path), neededBytes: 0)
        } catch {
            throw Error.open(path: path, underlying: error)
        }
    }

    public var location: String { path }
    public var localFile: String? { path }

    /// Runs `body` in one IMMEDIATE transaction; commits if it returns, rolls back if it throws.
    public func transaction(_ body: (any QueueTransaction) throws -> Void) throws {
        try database.writeWithoutTransaction { db in
            if hot == nil { hot = try HotStatements(db) }
            let statements = hot!
            try db.inTransaction(.immediate) {
                try body(SQLiteTransaction(db: db, hot: statements))
                return .commit
            }
        }
    }

    public func forgetDeleted() throws { try checkpoint() }

    public func isOutOfSpace(_ error: Swift.Error) -> Bool { Self.isDiskFull(error) }

    /// Copies the WAL into the database and truncates it, so deleted ciphertext does not linger.
    public func checkpoint() throws {
        try database.writeWithoutTransaction { db in
            _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
    }

    public func integrityCheck() throws -> String {
        try database.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "" }
    }

    public func close() throws {
        database.writeWithoutTransaction { _ in
            hot?.finalize()
            hot = nil
        }
        try database.close()
    }

    // MARK: Start-up

    /// Advances and returns the start generation, the high half of every new `seq`: one more
    /// than the stored one, and at least `floor` (the clock's seconds), so that a database
    /// restored from an older copy still never hands out a `seq` it handed out before.
    public func nextGeneration(floor: UInt32 = 0) throws -> UInt32 {
        try database.write { db in
            let current = try Int64.fetchOne(db, sql: "SELECT value FROM relay_meta WHERE name = 'generation'") ?? 0
            let next = max(current + 1, Int64(floor))
            // A seq is generation << 32 | counter, stored as a signed 64-bit integer: a
            // generation of 2^31 or more would sort below every earlier seq.
            guard next < Int64(GenerationExhausted.maxGeneration) else { throw GenerationExhausted(location: path, current: current) }
            try db.execute(
                sql: "INSERT INTO relay_meta(name, value) VALUES ('generation', ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                arguments: [next])
            return UInt32(truncatingIfNeeded: next)
        }
    }

    func loadQueues() throws -> [QueueRow] {
        try database.read { db in
            var stats: [Int64: (Int, Int, Int64)] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT queue_id, count(*), sum(length(body)), min(expires_at) FROM message GROUP BY queue_id") {
                stats[row[0]] = (row[1], row[2], row[3])
            }
            return try Row.fetchAll(db, sql: "SELECT id, recipient_id, sender_id, recipient_key, sender_key FROM queue").compactMap { row in
                let rowId: Int64 = row[0]
                guard let r = EntityID(bytes: (row[1] as Data)), let s = EntityID(bytes: (row[2] as Data)) else { return nil }
                let senderKey: Data? = row[4]
                let (count, bytes, oldest) = stats[rowId] ?? (0, 0, 0)
                return QueueRow(
                    rowId: rowId, recipientId: r, senderId: s, recipientKey: [UInt8](row[3] as Data),
                    senderKey: senderKey.map { [UInt8]($0) }, count: count, bytes: bytes,
                    oldestExpiry: count > 0 ? UInt64(clamping: oldest) : nil)
            }
        }
    }

    public func durableState() throws -> DurableState {
        DurableState(queues: try loadQueues(), held: try loadHeld(), timers: try timerCount())
    }

    /// Timer bodies held for each queue: their count and bytes, which count against its quota.
    func loadHeld() throws -> [Int64: DurableState.Held] {
        try database.read { db in
            var held: [Int64: DurableState.Held] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT queue_id, count(*), sum(length(body)) FROM timer_entry GROUP BY queue_id") {
                held[row[0]] = .init(bodies: row[1], bytes: row[2])
            }
            return held
        }
    }

    /// Whether `error` says the file system is full (SQLITE_FULL), as opposed to any other failure.
    static func isDiskFull(_ error: Swift.Error) -> Bool {
        if let e = error as? DatabaseError { return e.resultCode == .SQLITE_FULL }
        if let e = error as? HotStatements.Failure { return e.code & 0xff == SQLITE_FULL }
        return false
    }

    func timerCount() throws -> Int {
        try database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM timer") ?? 0 }
    }
}
