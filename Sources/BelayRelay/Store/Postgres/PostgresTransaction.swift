import BelayWire
import Logging
import NIOCore
import PostgresNIO

/// `QueueTransaction` on PostgreSQL: one statement per operation, on the writer connection,
/// inside the BEGIN that `PostgresQueueStore.transaction` sent, except for the two that a
/// relay batch repeats most: messages stored into the queues the batch locked, and deletions of
/// acknowledged messages, each held and sent in one statement for the batch. It notes which
/// queues it touched, for the other frontends.
final class PostgresTransaction: QueueTransaction {
    let connection: PostgresConnection
    let logger: Logger
    /// `KIND:ROW` notifications to send with the commit.
    private(set) var notes = Set<String>()
    /// Acknowledged messages not deleted yet: one statement deletes them all before anything
    /// reads messages and before the commit, instead of one round trip each.
    private var pendingDeletes: (queues: [Int64], seqs: [Int64]) = ([], [])
    /// The last seq of each queue this batch has locked, read under the lock: no other frontend
    /// can store into them before this commit, so a SEND into one gets its seq here and its row
    /// in one INSERT of the whole batch's messages instead of a round trip each.
    private var lockedLastSeq: [Int64: Int64] = [:]
    private var pendingInserts = PendingInserts()

    init(connection: PostgresConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    func run(_ query: PostgresQuery) throws -> PostgresQueryResult {
        try flushPending()
        return try connection.query(query, logger: logger).waitBounded()
    }

    /// A statement of the caller's own (tests).
    func execute(_ sql: String) throws {
        _ = try run(PostgresQuery(unsafeSQL: sql))
    }

    /// A count of the caller's own (tests).
    func count(_ sql: String) throws -> Int {
        Int(try run(PostgresQuery(unsafeSQL: sql)).first?.decode(Int64.self) ?? 0)
    }

    /// Runs the batched inserts, then the batched deletes: before any other statement (which
    /// may read messages) and before the commit.
    func flushPending() throws {
        try flushInserts()
        try flushDeletes()
    }

    /// One statement, one round trip: the INSERT runs as a data-modifying CTE of the UPDATE.
    private func flushInserts() throws {
        guard !pendingInserts.isEmpty else { return }
        let p = pendingInserts
        pendingInserts = PendingInserts()
        let (queues, lastSeqs) = p.lastSeqs
        _ = try connection.query(
            """
            WITH stored AS (
                INSERT INTO message(queue_id, seq, expires_at, body)
                SELECT * FROM unnest(\(p.queues)::BIGINT[], \(p.seqs)::BIGINT[], \(p.expiries)::BIGINT[], \(p.bodies)::BYTEA[]))
            UPDATE queue q SET last_seq = GREATEST(q.last_seq, u.s) FROM unnest(\(queues)::BIGINT[], \(lastSeqs)::BIGINT[]) AS u(id, s)
            WHERE q.id = u.id
            """, logger: logger
        ).waitBounded()
    }

    private func flushDeletes() throws {
        guard !pendingDeletes.queues.isEmpty else { return }
        let (queues, seqs) = pendingDeletes
        pendingDeletes = ([], [])
        _ = try connection.query(
            """
            DELETE FROM message m USING unnest(\(queues)::BIGINT[], \(seqs)::BIGINT[]) AS d(q, s) WHERE m.queue_id = d.q AND m.seq = d.s
            """, logger: logger
        ).waitBounded()
    }

    static func bytes(_ b: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: b) }

    func insertQueue(recipientId: EntityID, senderId: EntityID, recipientKey: [UInt8]) throws -> Int64 {
        let rows = try run(
            """
            INSERT INTO queue(recipient_id, sender_id, recipient_key)
            VALUES (\(Self.bytes(recipientId.bytes)), \(Self.bytes(senderId.bytes)), \(Self.bytes(recipientKey))) RETURNING id
            """)
        guard let id = try rows.first?.decode(Int64.self) else { throw PostgresStoreError.unexpected("no queue id") }
        notes.insert("q:\(id)")
        return id
    }

    func setSenderKey(queue: Int64, key: [UInt8]) throws {
        _ = try run("UPDATE queue SET sender_key = \(Self.bytes(key)) WHERE id = \(queue)")
        notes.insert("q:\(queue)")
    }

    func deleteQueue(queue: Int64) throws -> Int {
        var timers: [Int64] = []
        for row in try run("SELECT DISTINCT timer_id FROM timer_entry WHERE queue_id = \(queue)") {
            timers.append(try row.decode(Int64.self))
        }
        _ = try run("DELETE FROM queue WHERE id = \(queue)")
        lockedLastSeq[queue] = nil  // a SEND into it later in the batch finds it gone
        notes.insert("q:\(queue)")
        guard !timers.isEmpty else { return 0 }
        let emptied = try run(
            """
            DELETE FROM timer t WHERE t.id = ANY(\(timers)) AND NOT EXISTS (SELECT 1 FROM timer_entry e WHERE e.timer_id = t.id) RETURNING t.id
            """)
        return Array(emptied).count
    }

    static func queueRows(_ c: PostgresConnection, logger: Logger, where id: Int64?) throws -> [QueueRow] {
        let query: PostgresQuery =
            id.map {
                """
                SELECT q.id, q.recipient_id, q.sender_id, q.recipient_key, q.sender_key,
                       count(m.seq), coalesce(sum(length(m.body)), 0)::BIGINT, min(m.expires_at)
                FROM queue q LEFT JOIN message m ON m.queue_id = q.id WHERE q.id = \($0) GROUP BY q.id
                """
            }
                ?? """
                SELECT q.id, q.recipient_id, q.sender_id, q.recipient_key, q.sender_key,
                       count(m.seq), coalesce(sum(length(m.body)), 0)::BIGINT, min(m.expires_at)
                FROM queue q LEFT JOIN message m ON m.queue_id = q.id GROUP BY q.id
                """
        var out: [QueueRow] = []
        for row in try c.query(query, logger: logger).waitBounded() {
            let (rowId, r, s, rk, sk, count, bytes, oldest) = try row.decode(
                (Int64, ByteBuffer, ByteBuffer, ByteBuffer, ByteBuffer?, Int64, Int64, Int64?).self)
            guard let recipient = EntityID(bytes: Array(r.readableBytesView)), let sender = EntityID(bytes: Array(s.readableBytesView)) else {
                continue
            }
            out.append(
                QueueRow(
                    rowId: rowId, recipientId: recipient, senderId: sender, recipientKey: Array(rk.readableBytesView),
                    senderKey: sk.map { Array($0.readableBytesView) }, count: Int(count), bytes: Int(bytes),
                    oldestExpiry: oldest.map { UInt64(clamping: $0) }))
        }
        return out
    }

    func queueRow(id: Int64) throws -> QueueRow? {
        // Its counts read the queue's messages: what this batch holds for it goes first (and
        // only then, or every SEND of a shared store that looks a queue up would cost a flush).
        if pendingInserts.touches(queue: id) || pendingDeletes.queues.contains(id) { try flushPending() }
        return try Self.queueRows(connection, logger: logger, where: id).first
    }

    /// Messages stored in this transaction and not yet sent to the server (tests).
    var heldMessages: Int { pendingInserts.count }

    func queueRow(recipient: EntityID) throws -> QueueRow? {
        guard let id = try run("SELECT id FROM queue WHERE recipient_id = \(Self.bytes(recipient.bytes))").first?.decode(Int64.self)
        else { return nil }
        return try queueRow(id: id)
    }

    func queueRow(sender: EntityID) throws -> QueueRow? {
        guard let id = try run("SELECT id FROM queue WHERE sender_id = \(Self.bytes(sender.bytes))").first?.decode(Int64.self)
        else { return nil }
        return try queueRow(id: id)
    }

    /// The queue's row lock, taken by the UPDATE and held to the commit, orders messages of one
    /// queue across frontends: each gets a seq after every one committed before it.
    func insertMessage(queue: Int64, seq: UInt64, expiresAt: UInt64, body: [UInt8]) throws -> UInt64 {
        if let last = lockedLastSeq[queue] {
            // What the statement below would store, worked out under the same lock.
            guard last < Int64.max else { throw PostgresStoreError.unexpected("queue \(queue) has run out of seqs") }
            let stored = max(last + 1, Int64(bitPattern: seq))
            lockedLastSeq[queue] = stored
            pendingInserts.append(queue: queue, seq: stored, expiresAt: Int64(clamping: expiresAt), body: Self.bytes(body))
            notes.insert("m:\(queue)")
            if pendingInserts.isFull { try flushInserts() }
            return UInt64(bitPattern: stored)
        }
        // A queue this batch did not lock (one adopted from another frontend, or a timer's):
        // its own round trip. No read of messages: pending deletes and inserts may wait.
        let rows = try connection.query(
            """
            WITH s AS (UPDATE queue SET last_seq = GREATEST(last_seq + 1, \(Int64(bitPattern: seq))) WHERE id = \(queue) RETURNING last_seq)
            INSERT INTO message(queue_id, seq, expires_at, body)
            SELECT \(queue), last_seq, \(Int64(clamping: expiresAt)), \(Self.bytes(body)) FROM s RETURNING seq
            """, logger: logger
        ).waitBounded()
        guard let stored = try rows.first?.decode(Int64.self) else { throw QueueGone(queue: queue) }
        notes.insert("m:\(queue)")
        return UInt64(bitPattern: stored)
    }

    func deleteMessage(queue: Int64, seq: UInt64) throws -> Int? {
        try run("DELETE FROM message WHERE queue_id = \(queue) AND seq = \(Int64(bitPattern: seq)) RETURNING length(body)")
            .first.map { Int(try $0.decode(Int32.self)) }
    }

    /// The caller knows the message is stored (it pushed it, or just read it): the delete is
    /// batched. Another frontend may have deleted it already, which changes nothing.
    func deleteKnownMessage(queue: Int64, seq: UInt64) throws -> Bool {
        pendingDeletes.queues.append(queue)
        pendingDeletes.seqs.append(Int64(bitPattern: seq))
        return true
    }

    func messages(queue: Int64, after seq: UInt64, limit: Int) throws -> [(UInt64, [UInt8])] {
        try run(
            "SELECT seq, body FROM message WHERE queue_id = \(queue) AND seq > \(Int64(bitPattern: seq)) ORDER BY seq LIMIT \(Int64(limit))"
        ).map { row in
            let (s, b) = try row.decode((Int64, ByteBuffer).self)
            return (UInt64(bitPattern: s), Array(b.readableBytesView))
        }
    }

    func oldestMessages(queue: Int64, limit: Int) throws -> [StoredMessage] {
        try run("SELECT seq, expires_at, length(body) FROM message WHERE queue_id = \(queue) ORDER BY seq LIMIT \(Int64(limit))").map { row in
            let (s, e, l) = try row.decode((Int64, Int64, Int32).self)
            return StoredMessage(seq: UInt64(bitPattern: s), expiresAt: UInt64(clamping: e), length: Int(l))
        }
    }

    private func timerRow(_ row: PostgresRow) throws -> (EntityID?, TimerRow) {
        let (rowId, id, key, deadline) = try row.decode((Int64, ByteBuffer, ByteBuffer, Int64).self)
        return (EntityID(bytes: Array(id.readableBytesView)), TimerRow(rowId: rowId, key: Array(key.readableBytesView), deadline: UInt64(clamping: deadline)))
    }

    /// Locked to the commit: a renewal or cancellation waits for a sweep that is firing the
    /// timer on another frontend, and then finds it gone (NO_TIMER) instead of answering OK for
    /// a timer that no longer exists.
    func timer(id: EntityID) throws -> TimerRow? {
        try run("SELECT id, timer_id, timer_key, deadline FROM timer WHERE timer_id = \(Self.bytes(id.bytes)) FOR UPDATE").first.map {
            try timerRow($0).1
        }
    }

    func timer(key: [UInt8]) throws -> (id: EntityID, row: TimerRow)? {
        guard let row = try run("SELECT id, timer_id, timer_key, deadline FROM timer WHERE timer_key = \(Self.bytes(key)) LIMIT 1").first
        else { return nil }
        let (id, timer) = try timerRow(row)
        return id.map { ($0, timer) }
    }

    func insertTimer(id: EntityID, key: [UInt8], deadline: UInt64, entries: [(queue: Int64, body: [UInt8])]) throws {
        let rows = try run(
            """
            INSERT INTO timer(timer_id, timer_key, deadline) VALUES (\(Self.bytes(id.bytes)), \(Self.bytes(key)), \(Int64(clamping: deadline)))
            RETURNING id
            """)
        guard let timer = try rows.first?.decode(Int64.self) else { throw PostgresStoreError.unexpected("no timer id") }
        for (position, entry) in entries.enumerated() {
            _ = try run(
                """
                INSERT INTO timer_entry(timer_id, position, queue_id, body)
                VALUES (\(timer), \(Int32(position)), \(entry.queue), \(Self.bytes(entry.body)))
                """)
        }
    }

    func setTimerDeadline(timer: Int64, deadline: UInt64) throws {
        _ = try run("UPDATE timer SET deadline = \(Int64(clamping: deadline)) WHERE id = \(timer)")
    }

    func deleteTimer(timer: Int64) throws {
        _ = try run("DELETE FROM timer WHERE id = \(timer)")
    }

    /// Locked for this transaction and skipped by every other: a timer fires once, whichever
    /// frontend sweeps first.
    func dueTimers(now: UInt64, limit: Int) throws -> [Int64] {
        try run(
            """
            SELECT id FROM timer WHERE deadline <= \(Int64(clamping: now)) ORDER BY deadline LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED
            """
        ).map { try $0.decode(Int64.self) }
    }

    func timerEntrySizes(timer: Int64) throws -> [(queue: Int64, length: Int)] {
        try run("SELECT queue_id, length(body) FROM timer_entry WHERE timer_id = \(timer)").map { row in
            let (q, l) = try row.decode((Int64, Int32).self)
            return (q, Int(l))
        }
    }

    func timerEntries(timer: Int64) throws -> [(queue: Int64, body: [UInt8])] {
        try run("SELECT queue_id, body FROM timer_entry WHERE timer_id = \(timer) ORDER BY position").map { row in
            let (q, b) = try row.decode((Int64, ByteBuffer).self)
            return (q, Array(b.readableBytesView))
        }
    }

    /// A queue missing from the answer was deleted by another frontend: a SEND into it takes
    /// the single-statement path, which finds it gone.
    func lockQueues(_ rows: [Int64]) throws {
        guard !rows.isEmpty else { return }
        for row in try run("SELECT id, last_seq FROM queue WHERE id = ANY(\(rows)) ORDER BY id FOR NO KEY UPDATE") {
            let (id, last) = try row.decode((Int64, Int64).self)
            lockedLastSeq[id] = last
        }
    }

    func claimSubscription(queue: Int64) throws {
        notes.insert("s:\(queue)")
    }
}
