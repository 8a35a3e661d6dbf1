import BelayWire
import GRDB

/// `QueueTransaction` on SQLite: the hot path (insert, delete, read for delivery) through the
/// prepared `HotStatements`, everything else through GRDB's cached statements (`Queries`).
struct SQLiteTransaction: QueueTransaction {
    let db: Database
    let hot: HotStatements

    func insertQueue(recipientId: EntityID, senderId: EntityID, recipientKey: [UInt8]) throws -> Int64 {
        try Queries.insertQueue(db, recipientId: recipientId, senderId: senderId, recipientKey: recipientKey)
    }

    func setSenderKey(queue: Int64, key: [UInt8]) throws {
        try Queries.setSenderKey(db, queue: queue, key: key)
    }

    func deleteQueue(queue: Int64) throws -> Int {
        try Queries.deleteQueue(db, queue: queue)
    }

    func insertMessage(queue: Int64, seq: UInt64, expiresAt: UInt64, body: [UInt8]) throws -> UInt64 {
        try hot.insertMessage(queue: queue, seq: seq, expiresAt: expiresAt, body: body)
        return seq
    }

    func deleteMessage(queue: Int64, seq: UInt64) throws -> Int? {
        try hot.deleteMessage(queue: queue, seq: seq)
    }

    func deleteKnownMessage(queue: Int64, seq: UInt64) throws -> Bool {
        try hot.deleteKnownMessage(queue: queue, seq: seq)
    }

    func messages(queue: Int64, after seq: UInt64, limit: Int) throws -> [(UInt64, [UInt8])] {
        try hot.messages(queue: queue, after: seq, limit: limit)
    }

    func oldestMessages(queue: Int64, limit: Int) throws -> [StoredMessage] {
        try Queries.oldestMessages(db, queue: queue, limit: limit)
    }

    func timer(id: EntityID) throws -> TimerRow? {
        try Queries.timer(db, id: id)
    }

    func timer(key: [UInt8]) throws -> (id: EntityID, row: TimerRow)? {
        try Queries.timer(db, key: key)
    }

    func insertTimer(id: EntityID, key: [UInt8], deadline: UInt64, entries: [(queue: Int64, body: [UInt8])]) throws {
        try Queries.insertTimer(db, id: id, key: key, deadline: deadline, entries: entries)
    }

    func setTimerDeadline(timer: Int64, deadline: UInt64) throws {
        try Queries.setTimerDeadline(db, rowId: timer, deadline: deadline)
    }

    func deleteTimer(timer: Int64) throws {
        try Queries.deleteTimer(db, rowId: timer)
    }

    func dueTimers(now: UInt64, limit: Int) throws -> [Int64] {
        try Queries.dueTimers(db, now: now, limit: limit)
    }

    func timerEntrySizes(timer: Int64) throws -> [(queue: Int64, length: Int)] {
        try Queries.timerEntrySizes(db, timer: timer)
    }

    func timerEntries(timer: Int64) throws -> [(queue: Int64, body: [UInt8])] {
        try Queries.timerEntries(db, timer: timer)
    }
}
