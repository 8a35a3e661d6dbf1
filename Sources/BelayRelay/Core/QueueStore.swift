import BelayWire

/// What the relay's queue semantics need from durable storage: one transaction per batch, and
/// inside it the few row operations the commands are made of. The semantics (`QueueEngine`)
/// know nothing of SQL; SQLite (`RelayStore`), PostgreSQL (`PostgresQueueStore`) and memory
/// (`MemoryQueueStore`, for tests) implement it.
///
/// A store is used by one thread at a time (the core's), so it needs no locks of its own.
public protocol QueueStore: AnyObject, Sendable {
    /// Where the data lives, for messages to the operator (a path, or a server without password).
    var location: String { get }
    /// The file whose file system holds the data, for the disk reserve; nil when the data is
    /// not on a local file system (a database server), which then manages its own space.
    var localFile: String? { get }
    /// Whether other relay frontends may change the same data between this frontend's
    /// transactions (PostgreSQL with several frontends). If so, the core cannot trust what it
    /// remembers of a queue and re-reads it where a stale copy would matter.
    var shared: Bool { get }

    /// Advances and returns the start generation (the high half of every `seq`), at least `floor`.
    func nextGeneration(floor: UInt32) throws -> UInt32
    /// Everything the core's counters are rebuilt from. Reads only.
    func durableState() throws -> DurableState
    /// Runs `body` in one transaction that is durable once this returns; nothing of it stays if
    /// `body` throws.
    func transaction(_ body: (any QueueTransaction) throws -> Void) throws
    /// After deletions: make sure deleted bodies do not linger (SQLite: truncate the WAL).
    func forgetDeleted() throws
    /// Whether `error` means the storage has run out of space (as opposed to any other failure).
    func isOutOfSpace(_ error: Error) -> Bool
    /// Whether the same batch may succeed if run again (a deadlock between frontends).
    func isRetryable(_ error: Error) -> Bool
    /// The queues another frontend changed since the last call (shared stores); empty otherwise.
    func takeChangedQueues() -> ChangedQueues
    /// Called (on any thread) when another frontend has changed something, so the core runs a
    /// batch to take it in.
    func onChange(_ handler: @escaping @Sendable () -> Void)
    func close() throws
}

extension QueueStore {
    public var localFile: String? { nil }
    public var shared: Bool { false }
    public func takeChangedQueues() -> ChangedQueues { ChangedQueues() }
    public func isRetryable(_ error: Error) -> Bool { false }
    public func onChange(_ handler: @escaping @Sendable () -> Void) {}
}

/// A queue another frontend deleted while this one still knew it: the command that named it
/// gets NO_QUEUE, and the rest of the batch goes on.
public struct QueueGone: Error, Sendable {
    public var queue: Int64
    public init(queue: Int64) { self.queue = queue }
}

/// Queues that other frontends touched, as told by the database (shared stores only).
public struct ChangedQueues: Sendable {
    /// Queues with new messages, by row.
    public var messages: Set<Int64> = []
    /// Queues created, deleted or secured elsewhere, by row: to be re-read.
    public var rows: Set<Int64> = []
    /// Queues whose subscription another frontend took, by row.
    public var subscribedElsewhere: Set<Int64> = []
    /// Notifications may have been missed (the listening connection was lost): re-read every queue.
    public var everything = false
    public var isEmpty: Bool { messages.isEmpty && rows.isEmpty && subscribedElsewhere.isEmpty && !everything }
    public init() {}
}

/// The row operations of one batch. Every method runs inside the transaction that
/// `QueueStore.transaction` opened. Member tokens' operations are in `MemberTokenTransaction`.
public protocol QueueTransaction: MemberTokenTransaction {
    func insertQueue(recipientId: EntityID, senderId: EntityID, recipientKey: [UInt8]) throws -> Int64
    func setSenderKey(queue: Int64, key: [UInt8]) throws
    /// Deletes a queue, its messages and the timer bodies aimed at it; returns how many timers
    /// were left with no body and deleted with it.
    func deleteQueue(queue: Int64) throws -> Int
    /// One queue as stored now, for shared stores (nil when it is gone).
    func queueRow(id: Int64) throws -> QueueRow?
    func queueRow(recipient: EntityID) throws -> QueueRow?
    func queueRow(sender: EntityID) throws -> QueueRow?

    /// Stores a body with at least `seq`; returns the `seq` it was stored with (a shared store
    /// may need a larger one, to stay after what other frontends stored in that queue).
    func insertMessage(queue: Int64, seq: UInt64, expiresAt: UInt64, body: [UInt8]) throws -> UInt64
    /// Deletes one message; its body length, or nil if it was not stored.
    func deleteMessage(queue: Int64, seq: UInt64) throws -> Int?
    /// Deletes a message whose length the caller knows; whether it was stored.
    func deleteKnownMessage(queue: Int64, seq: UInt64) throws -> Bool
    /// Messages after `seq`, oldest first.
    func messages(queue: Int64, after seq: UInt64, limit: Int) throws -> [(UInt64, [UInt8])]
    /// The oldest messages' seq, expiry and length, oldest first.
    func oldestMessages(queue: Int64, limit: Int) throws -> [StoredMessage]

    func timer(id: EntityID) throws -> TimerRow?
    /// The timer held under `key`, with its id: a TSET retried after a lost reply names it.
    func timer(key: [UInt8]) throws -> (id: EntityID, row: TimerRow)?
    func insertTimer(id: EntityID, key: [UInt8], deadline: UInt64, entries: [(queue: Int64, body: [UInt8])]) throws
    func setTimerDeadline(timer: Int64, deadline: UInt64) throws
    func deleteTimer(timer: Int64) throws
    /// Due timers, earliest first. In a shared store each is locked for this transaction and
    /// skipped by the others, so a timer fires once whichever frontend sweeps.
    func dueTimers(now: UInt64, limit: Int) throws -> [Int64]
    /// The queue and body length of each entry of a timer, for the quota it holds.
    func timerEntrySizes(timer: Int64) throws -> [(queue: Int64, length: Int)]
    /// The entries of a timer in order.
    func timerEntries(timer: Int64) throws -> [(queue: Int64, body: [UInt8])]

    /// A shared store records which frontend holds a queue's subscription, so that taking it on
    /// one frontend ends it on the other. No-op elsewhere.
    func claimSubscription(queue: Int64) throws
    /// A shared store locks these queues, in this (ascending) order, before the batch touches
    /// them, so two frontends' batches never wait for each other in a circle. No-op elsewhere.
    func lockQueues(_ rows: [Int64]) throws
}

extension QueueTransaction {
    public func queueRow(id: Int64) throws -> QueueRow? { nil }
    public func queueRow(recipient: EntityID) throws -> QueueRow? { nil }
    public func queueRow(sender: EntityID) throws -> QueueRow? { nil }
    public func claimSubscription(queue: Int64) throws {}
    public func lockQueues(_ rows: [Int64]) throws {}
}

public struct StoredMessage: Sendable {
    public var seq: UInt64
    public var expiresAt: UInt64
    public var length: Int
    public init(seq: UInt64, expiresAt: UInt64, length: Int) {
        self.seq = seq
        self.expiresAt = expiresAt
        self.length = length
    }
}

public struct TimerRow: Sendable {
    public var rowId: Int64
    public var key: [UInt8]
    public var deadline: UInt64
    public init(rowId: Int64, key: [UInt8], deadline: UInt64) {
        self.rowId = rowId
        self.key = key
        self.deadline = deadline
    }
}

/// One queue with the counters the core keeps for it.
public struct QueueRow: Sendable {
    public var rowId: Int64
    public var recipientId: EntityID
    public var senderId: EntityID
    public var recipientKey: [UInt8]
    public var senderKey: [UInt8]?
    public var count: Int
    public var bytes: Int
    public var oldestExpiry: UInt64?
    public init(
        rowId: Int64, recipientId: EntityID, senderId: EntityID, recipientKey: [UInt8], senderKey: [UInt8]?, count: Int, bytes: Int,
        oldestExpiry: UInt64?
    ) {
        self.rowId = rowId
        self.recipientId = recipientId
        self.senderId = senderId
        self.recipientKey = recipientKey
        self.senderKey = senderKey
        self.count = count
        self.bytes = bytes
        self.oldestExpiry = oldestExpiry
    }
}

/// Everything the core's counters are rebuilt from: queues with their message counts and
/// bytes, timer bodies held per queue, and the number of timers.
public struct DurableState: Sendable {
    public var queues: [QueueRow]
    public var held: [Int64: Held]
    public var timers: Int
    public init(queues: [QueueRow], held: [Int64: Held], timers: Int) {
        self.queues = queues
        self.held = held
        self.timers = timers
    }

    public struct Held: Sendable, Equatable {
        public var bodies: Int
        public var bytes: Int
        public init(bodies: Int, bytes: Int) {
            self.bodies = bodies
            self.bytes = bytes
        }
    }
}
