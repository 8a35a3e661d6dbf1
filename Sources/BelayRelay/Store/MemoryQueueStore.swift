import BelayWire
import Synchronization

/// `QueueStore` in memory, for tests and in-process harnesses: the same semantics as the
/// databases (all of a transaction or none of it, ids unique, cascades), without files or
/// fsyncs. Nothing survives the process.
public final class MemoryQueueStore: QueueStore {
    private let tables = Mutex(MemoryTables())
    public let location = "memory"

    public init() {}

    public func nextGeneration(floor: UInt32) throws -> UInt32 {
        try tables.withLock { t in
            let next = max(UInt64(t.generation) + 1, UInt64(floor))
            guard next < UInt64(GenerationExhausted.maxGeneration) else { throw GenerationExhausted(location: location, current: Int64(t.generation)) }
            t.generation = UInt32(next)
            return t.generation
        }
    }

    public func durableState() throws -> DurableState {
        tables.withLock { t in
            var held: [Int64: DurableState.Held] = [:]
            for timer in t.timers.values {
                for entry in timer.entries {
                    held[entry.queue, default: .init(bodies: 0, bytes: 0)].bodies += 1
                    held[entry.queue]!.bytes += entry.body.count
                }
            }
            return DurableState(queues: t.queues.keys.compactMap { t.row($0) }, held: held, timers: t.timers.count)
        }
    }

    /// A copy of the tables is changed and put in place only if `body` returns.
    public func transaction(_ body: (any QueueTransaction) throws -> Void) throws {
        try tables.withLock { t in
            let tx = MemoryTransaction(t)
            try body(tx)
            t = tx.tables
        }
    }

    public func forgetDeleted() throws {}
    public func isOutOfSpace(_ error: Error) -> Bool { false }
    public func close() throws {}
}

struct MemoryTables {
    struct Queue {
        var recipientId: EntityID
        var senderId: EntityID
        var recipientKey: [UInt8]
        var senderKey: [UInt8]?
        /// Oldest first: seqs only grow within a queue.
        var messages: [(seq: UInt64, expiresAt: UInt64, body: [UInt8])] = []
    }

    struct Timer {
        var id: EntityID
        var key: [UInt8]
        var deadline: UInt64
        var entries: [(queue: Int64, body: [UInt8])]
    }

    var generation: UInt32 = 0
    var queues: [Int64: Queue] = [:]
    var lastQueueRow: Int64 = 0
    var timers: [Int64: Timer] = [:]
    var lastTimerRow: Int64 = 0
    var memberTokens: [Int64: MemberTokenRow] = [:]
    var lastTokenRow: Int64 = 0

    func row(_ id: Int64) -> QueueRow? {
        guard let q = queues[id] else { return nil }
        return QueueRow(
            rowId: id, recipientId: q.recipientId, senderId: q.senderId, recipientKey: q.recipientKey, senderKey: q.senderKey,
            count: q.messages.count, bytes: q.messages.reduce(0) { $0 + $1.body.count }, oldestExpiry: q.messages.first?.expiresAt)
    }
}

/// One transaction's working copy of the tables.
final class MemoryTransaction: QueueTransaction {
    struct Conflict: Error, CustomStringConvertible {
        var description: String
    }

    var tables: MemoryTables

    init(_ tables: MemoryTables) {
        self.tables = tables
    }

    func insertQueue(recipientId: EntityID, senderId: EntityID, recipientKey: [UInt8]) throws -> Int64 {
        guard !tables.queues.values.contains(where: { $0.recipientId == recipientId || $0.senderId == senderId }) else {
            throw Conflict(description: "a queue id is taken")
        }
        tables.lastQueueRow += 1
        tables.queues[tables.lastQueueRow] = .init(recipientId: recipientId, senderId: senderId, recipientKey: recipientKey)
        return tables.lastQueueRow
    }

    func setSenderKey(queue: Int64, key: [UInt8]) throws {
        tables.queues[queue]?.senderKey = key
    }

    func deleteQueue(queue: Int64) throws -> Int {
        tables.queues[queue] = nil
        var emptied = 0
        for (row, timer) in tables.timers where timer.entries.contains(where: { $0.queue == queue }) {
            let left = timer.entries.filter { $0.queue != queue }
            if left.isEmpty {
                tables.timers[row] = nil
                emptied += 1
            } else {
                tables.timers[row]!.entries = left
            }
        }
        return emptied
    }

    func queueRow(id: Int64) throws -> QueueRow? { tables.row(id) }

    func insertMessage(queue: Int64, seq: UInt64, expiresAt: UInt64, body: [UInt8]) throws -> UInt64 {
        guard tables.queues[queue] != nil else { throw Conflict(description: "no queue \(queue)") }
        if let last = tables.queues[queue]!.messages.last, last.seq >= seq { throw Conflict(description: "seq \(seq) is not new") }
        tables.queues[queue]!.messages.append((seq, expiresAt, body))
        return seq
    }

    func deleteMessage(queue: Int64, seq: UInt64) throws -> Int? {
        guard let i = tables.queues[queue]?.messages.firstIndex(where: { $0.seq == seq }) else { return nil }
        return tables.queues[queue]!.messages.remove(at: i).body.count
    }

    func deleteKnownMessage(queue: Int64, seq: UInt64) throws -> Bool {
        try deleteMessage(queue: queue, seq: seq) != nil
    }

    func messages(queue: Int64, after seq: UInt64, limit: Int) throws -> [(UInt64, [UInt8])] {
        (tables.queues[queue]?.messages ?? []).lazy.filter { $0.seq > seq }.prefix(limit).map { ($0.seq, $0.body) }
    }

    func oldestMessages(queue: Int64, limit: Int) throws -> [StoredMessage] {
        (tables.queues[queue]?.messages ?? []).prefix(limit).map { StoredMessage(seq: $0.seq, expiresAt: $0.expiresAt, length: $0.body.count) }
    }

    func timer(id: EntityID) throws -> TimerRow? {
        tables.timers.first { $0.value.id == id }.map { TimerRow(rowId: $0.key, key: $0.value.key, deadline: $0.value.deadline) }
    }

    func timer(key: [UInt8]) throws -> (id: EntityID, row: TimerRow)? {
        tables.timers.first { $0.value.key == key }.map { ($0.value.id, TimerRow(rowId: $0.key, key: $0.value.key, deadline: $0.value.deadline)) }
    }

    func insertTimer(id: EntityID, key: [UInt8], deadline: UInt64, entries: [(queue: Int64, body: [UInt8])]) throws {
        guard try timer(id: id) == nil else { throw Conflict(description: "timer id is taken") }
        tables.lastTimerRow += 1
        tables.timers[tables.lastTimerRow] = .init(id: id, key: key, deadline: deadline, entries: entries)
    }

    func setTimerDeadline(timer: Int64, deadline: UInt64) throws {
        tables.timers[timer]?.deadline = deadline
    }

    func deleteTimer(timer: Int64) throws {
        tables.timers[timer] = nil
    }

    func dueTimers(now: UInt64, limit: Int) throws -> [Int64] {
        tables.timers.filter { $0.value.deadline <= now }.sorted { ($0.value.deadline, $0.key) < ($1.value.deadline, $1.key) }
            .prefix(limit).map(\.key)
    }

    func timerEntrySizes(timer: Int64) throws -> [(queue: Int64, length: Int)] {
        (tables.timers[timer]?.entries ?? []).map { ($0.queue, $0.body.count) }
    }

    func timerEntries(timer: Int64) throws -> [(queue: Int64, body: [UInt8])] {
        tables.timers[timer]?.entries ?? []
    }

    func memberToken(hash: [UInt8]) throws -> MemberTokenRow? {
        tables.memberTokens.values.first { $0.hash == hash }
    }

    func spendMemberToken(id: Int64) throws -> Bool {
        guard let t = tables.memberTokens[id], t.used < t.quota else { return false }
        tables.memberTokens[id]!.used += 1
        return true
    }

    func insertMemberToken(hash: [UInt8], label: String?, quota: Int) throws -> Int64 {
        if let label, tables.memberTokens.values.contains(where: { $0.label == label }) { throw MemberTokenError.labelTaken(label) }
        guard !tables.memberTokens.values.contains(where: { $0.hash == hash }) else { throw Conflict(description: "a token hash is taken") }
        tables.lastTokenRow += 1
        tables.memberTokens[tables.lastTokenRow] = MemberTokenRow(id: tables.lastTokenRow, hash: hash, label: label, quota: quota, used: 0)
        return tables.lastTokenRow
    }

    func memberTokens() throws -> [MemberTokenRow] {
        tables.memberTokens.values.sorted { $0.id < $1.id }
    }

    func deleteMemberToken(id: Int64) throws -> Bool {
        tables.memberTokens.removeValue(forKey: id) != nil
    }
}
