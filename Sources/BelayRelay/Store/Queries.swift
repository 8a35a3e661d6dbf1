import BelayWire
import Foundation
import GRDB

/// The statements the core runs inside a batch transaction. Cached statements keep the hot path
/// (insert, delete) free of SQL parsing.
enum Queries {
    static func insertQueue(_ db: Database, recipientId: EntityID, senderId: EntityID, recipientKey: [UInt8]) throws -> Int64 {
        try db.cachedStatement(sql: "INSERT INTO queue(recipient_id, sender_id, recipient_key) VALUES (?, ?, ?)")
            .execute(arguments: [Data(recipientId.bytes), Data(senderId.bytes), Data(recipientKey)])
        return db.lastInsertedRowID
    }

    static func setSenderKey(_ db: Database, queue: Int64, key: [UInt8]) throws {
        try db.cachedStatement(sql: "UPDATE queue SET sender_key = ? WHERE id = ?").execute(arguments: [Data(key), queue])
    }

    /// Deletes a queue and its messages; the timer bodies aimed at it go by cascade, and so do
    /// the timers left with no body (returned, so the core can count them out).
    static func deleteQueue(_ db: Database, queue: Int64) throws -> Int {
        let timers = try Int64.fetchAll(
            db.cachedStatement(sql: "SELECT DISTINCT timer_id FROM timer_entry WHERE queue_id = ?"),
            arguments: [queue])
        try db.cachedStatement(sql: "DELETE FROM message WHERE queue_id = ?").execute(arguments: [queue])
        try db.cachedStatement(sql: "DELETE FROM queue WHERE id = ?").execute(arguments: [queue])
        var emptied = 0
        for timer in timers
        where try Int.fetchOne(
            db.cachedStatement(sql: "SELECT count(*) FROM timer_entry WHERE timer_id = ?"),
            arguments: [timer]) == 0
        {
            try deleteTimer(db, rowId: timer)
            emptied += 1
        }
        return emptied
    }

    /// The oldest messages of one queue, oldest first, through the primary key.
    static func oldestMessages(_ db: Database, queue: Int64, limit: Int) throws -> [StoredMessage] {
        try Row.fetchAll(
            db.cachedStatement(sql: "SELECT seq, expires_at, length(body) FROM message WHERE queue_id = ? ORDER BY seq LIMIT ?"),
            arguments: [queue, limit]
        ).map { row in
            StoredMessage(seq: UInt64(bitPattern: row[0] as Int64), expiresAt: UInt64(clamping: row[1] as Int64), length: row[2])
        }
    }

    // MARK: Timers

    static func timer(_ db: Database, id: EntityID) throws -> TimerRow? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT id, timer_key, deadline FROM timer WHERE timer_id = ?"),
            arguments: [Data(id.bytes)]
        ).map { row in
            TimerRow(rowId: row[0], key: [UInt8](row[1] as Data), deadline: UInt64(row[2] as Int64))
        }
    }

    /// The timer held under `key`, with its id: a TSET retried after a lost reply names it.
    static func timer(_ db: Database, key: [UInt8]) throws -> (id: EntityID, row: TimerRow)? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT id, timer_key, deadline, timer_id FROM timer WHERE timer_key = ? LIMIT 1"),
            arguments: [Data(key)]
        ).flatMap { row in
            EntityID(bytes: [UInt8](row[3] as Data)).map { id in
                (id, TimerRow(rowId: row[0], key: [UInt8](row[1] as Data), deadline: UInt64(row[2] as Int64)))
            }
        }
    }

    static func insertTimer(_ db: Database, id: EntityID, key: [UInt8], deadline: UInt64, entries: [(queue: Int64, body: [UInt8])]) throws {
        try db.cachedStatement(sql: "INSERT INTO timer(timer_id, timer_key, deadline) VALUES (?, ?, ?)")
            .execute(arguments: [Data(id.bytes), Data(key), Int64(clamping: deadline)])
        let rowId = db.lastInsertedRowID
        let statement = try db.cachedStatement(sql: "INSERT INTO timer_entry(timer_id, position, queue_id, body) VALUES (?, ?, ?, ?)")
        for (position, (queue, body)) in entries.enumerated() {
            try statement.execute(arguments: [rowId, position, queue, Data(body)])
        }
    }

    static func setTimerDeadline(_ db: Database, rowId: Int64, deadline: UInt64) throws {
        try db.cachedStatement(sql: "UPDATE timer SET deadline = ? WHERE id = ?").execute(arguments: [Int64(clamping: deadline), rowId])
    }

    static func deleteTimer(_ db: Database, rowId: Int64) throws {
        try db.cachedStatement(sql: "DELETE FROM timer WHERE id = ?").execute(arguments: [rowId])
    }

    static func dueTimers(_ db: Database, now: UInt64, limit: Int) throws -> [Int64] {
        try Int64.fetchAll(
            db, sql: "SELECT id FROM timer WHERE deadline <= ? ORDER BY deadline LIMIT ?",
            arguments: [Int64(clamping: now), limit])
    }

    /// The queue and body length of each entry of a timer, for the quota it held.
    static func timerEntrySizes(_ db: Database, timer: Int64) throws -> [(queue: Int64, length: Int)] {
        try Row.fetchAll(db.cachedStatement(sql: "SELECT queue_id, length(body) FROM timer_entry WHERE timer_id = ?"), arguments: [timer])
            .map { row in (row[0] as Int64, row[1] as Int) }
    }

    static func timerEntries(_ db: Database, timer: Int64) throws -> [(queue: Int64, body: [UInt8])] {
        try Row.fetchAll(db, sql: "SELECT queue_id, body FROM timer_entry WHERE timer_id = ? ORDER BY position", arguments: [timer])
            .map { row in (queue: row[0] as Int64, body: [UInt8](row[1] as Data)) }
    }
}
