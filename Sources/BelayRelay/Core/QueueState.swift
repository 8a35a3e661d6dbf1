import BelayWire

/// One queue as the core keeps it in memory: keys for authorisation, counters for quota, the
/// next sequence number, and at most one subscription.
final class QueueState {
    let rowId: Int64
    let recipientId: EntityID
    let senderId: EntityID
    var recipientKey: [UInt8]
    var senderKey: [UInt8]?
    var count: Int
    var bytes: Int
    /// Timer bodies aimed at this queue and their bytes: held against its quota until they
    /// are released into it or cancelled.
    var heldBodies = 0
    var heldBytes = 0
    /// No stored message of this queue expires before this (Unix seconds); nil when it is empty.
    /// A lower bound: acknowledgements do not raise it, the expiry sweep does.
    var oldestExpiry: UInt64?
    /// The low half of the next `seq` in this start generation.
    var nextCounter: UInt32 = 1
    var subscription: Subscription?

    convenience init(_ row: QueueRow) {
        self.init(
            rowId: row.rowId, recipientId: row.recipientId, senderId: row.senderId, recipientKey: row.recipientKey,
            senderKey: row.senderKey, count: row.count, bytes: row.bytes)
        oldestExpiry = row.oldestExpiry
    }

    init(rowId: Int64, recipientId: EntityID, senderId: EntityID, recipientKey: [UInt8], senderKey: [UInt8]?, count: Int, bytes: Int) {
        self.rowId = rowId
        self.recipientId = recipientId
        self.senderId = senderId
        self.recipientKey = recipientKey
        self.senderKey = senderKey
        self.count = count
        self.bytes = bytes
    }
}

/// Delivery state of a subscribed queue. Invariant: every stored message is either in
/// `inFlight` (pushed, not yet acknowledged) or has `seq > cursor` (not yet pushed).
final class Subscription {
    let sink: CoreSink
    /// Pushed and not yet acknowledged, oldest first, with body lengths for the quota.
    var inFlight: [(seq: UInt64, length: Int)] = []
    var cursor: UInt64 = 0

    init(sink: CoreSink) {
        self.sink = sink
    }
}

/// What one batch accumulates before its commit: outcomes per connection, queues whose
/// subscription may push, and the bodies inserted in this batch (so pushing them needs no read).
struct BatchContext {
    var outcomes: [ObjectIdentifier: (sink: CoreSink, items: [CoreOutcome])] = [:]
    var dirty: [Int64: QueueState] = [:]
    var recent: [Int64: [(seq: UInt64, body: [UInt8])]] = [:]
    var deletedSomething = false
    /// What the batch did, for the metrics (recorded only once it commits): counted as replies
    /// are made, so that recording costs no pass over the batch.
    var counts = RelayMetrics.Batch()

    mutating func add(_ outcome: CoreOutcome, for sink: CoreSink) {
        let id = ObjectIdentifier(sink)
        if outcomes[id] == nil {
            outcomes[id] = (sink, [outcome])
        } else {
            outcomes[id]!.items.append(outcome)
        }
    }

    mutating func reply(_ request: CoreRequest, _ reply: RelayReply, grant: (Proof, [UInt8])? = nil) {
        switch (request.command, reply) {
        case (.send, .ok): counts.messagesIn += 1
        case (.ack, .ok): counts.acknowledgements += 1
        case (.timerSet, .timer): counts.timersSet += 1
        case (_, .message): counts.messagesOut += 1
        case let (_, .error(code)) where Int(code.rawValue) < counts.errors.count: counts.errors[Int(code.rawValue)] += 1
        default: break
        }
        add(.reply(requestId: request.requestId, reply, grant: grant), for: request.sink)
    }
}
