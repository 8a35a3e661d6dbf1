import BelayWire

@testable import BelayRelay

/// A transaction that passes every operation to another: tests subclass it to fail or stop at
/// one operation.
class ForwardingTransaction: QueueTransaction {
    let inner: any QueueTransaction
    init(_ inner: any QueueTransaction) { self.inner = inner }

    func insertQueue(recipientId: EntityID, senderId: EntityID, recipientKey: [UInt8]) throws -> Int64 {
        try inner.insertQueue(recipientId: recipientId, senderId: senderId, recipientKey: recipientKey)
    }
    func setSenderKey(queue: Int64, key: [UInt8]) throws { try inner.setSenderKey(queue: queue, key: key) }
    func deleteQueue(queue: Int64) throws -> Int { try inner.deleteQueue(queue: queue) }
    func queueRow(id: Int64) throws -> QueueRow? { try inner.queueRow(id: id) }
    func queueRow(recipient: EntityID) throws -> QueueRow? { try inner.queueRow(recipient: recipient) }
    func queueRow(sender: EntityID) throws -> QueueRow? { try inner.queueRow(sender: sender) }
    func insertMessage(queue: Int64, seq: UInt64, expiresAt: UInt64, body: [UInt8]) throws -> UInt64 {
        try inner.insertMessage(queue: queue, seq: seq, expiresAt: expiresAt, body: body)
    }
    func deleteMessage(queue: Int64, seq: UInt64) throws -> Int? { try inner.deleteMessage(queue: queue, seq: seq) }
    func deleteKnownMessage(queue: Int64, seq: UInt64) throws -> Bool { try inner.deleteKnownMessage(queue: queue, seq: seq) }
    func messages(queue: Int64, after seq: UInt64, limit: Int) throws -> [(UInt64, [UInt8])] {
        try inner.messages(queue: queue, after: seq, limit: limit)
    }
    func oldestMessages(queue: Int64, limit: Int) throws -> [StoredMessage] { try inner.oldestMessages(queue: queue, limit: limit) }
    func timer(id: EntityID) throws -> TimerRow? { try inner.timer(id: id) }
    func timer(key: [UInt8]) throws -> (id: EntityID, row: TimerRow)? { try inner.timer(key: key) }
    func insertTimer(id: EntityID, key: [UInt8], deadline: UInt64, entries: [(queue: Int64, body: [UInt8])]) throws {
        try inner.insertTimer(id: id, key: key, deadline: deadline, entries: entries)
    }
    func setTimerDeadline(timer: Int64, deadline: UInt64) throws { try inner.setTimerDeadline(timer: timer, deadline: deadline) }
    func deleteTimer(timer: Int64) throws { try inner.deleteTimer(timer: timer) }
    func dueTimers(now: UInt64, limit: Int) throws -> [Int64] { try inner.dueTimers(now: now, limit: limit) }
    func timerEntrySizes(timer: Int64) throws -> [(queue: Int64, length: Int)] { try inner.timerEntrySizes(timer: timer) }
    func timerEntries(timer: Int64) throws -> [(queue: Int64, body: [UInt8])] { try inner.timerEntries(timer: timer) }
    func claimSubscription(queue: Int64) throws { try inner.claimSubscription(queue: queue) }
    func lockQueues(_ rows: [Int64]) throws { try inner.lockQueues(rows) }
    func memberToken(hash: [UInt8]) throws -> MemberTokenRow? { try inner.memberToken(hash: hash) }
    func spendMemberToken(id: Int64) throws -> Bool { try inner.spendMemberToken(id: id) }
    func insertMemberToken(hash: [UInt8], label: String?, quota: Int) throws -> Int64 {
        try inner.insertMemberToken(hash: hash, label: label, quota: quota)
    }
    func memberTokens() throws -> [MemberTokenRow] { try inner.memberTokens() }
    func deleteMemberToken(id: Int64) throws -> Bool { try inner.deleteMemberToken(id: id) }
}
