import BelayWire
import NIOCore

/// A connection as the core sees it: something to hand outcomes to, on its event loop. After
/// each commit the core makes one hop per event loop, not one per connection, and there calls
/// `receive` once per connection with everything for it, in order.
public protocol CoreSink: AnyObject, Sendable {
    var eventLoop: EventLoop { get }
    /// Called on `eventLoop`.
    func receive(_ outcomes: [CoreOutcome])
}

extension CoreSink {
    /// `receive` from any thread, for the rare answers outside a batch.
    func hopAndReceive(_ outcomes: [CoreOutcome]) {
        eventLoop.execute { self.receive(outcomes) }
    }
}

/// A key the connection has proven (AUTH) or was granted by creating the entity.
public struct Proof: Hashable, Sendable {
    public var role: AuthRole
    public var entity: EntityID
    public init(role: AuthRole, entity: EntityID) {
        self.role = role
        self.entity = entity
    }
}

/// What a connection asks of the core. Authorisation inputs are the keys the connection has
/// proven; the core compares them with the entity's current key.
public enum CoreCommand: Sendable {
    /// `memberToken`: the member token the NEW presented, to check against the store and count
    /// against its quota; nil when the connection already let it through.
    case create(recipientKey: [UInt8], memberToken: MemberTokenCheck? = nil)
    case lookupKey(Proof)
    case secure(recipient: EntityID, proven: [UInt8], senderKey: [UInt8])
    case send(sender: EntityID, proven: [UInt8]?, body: [UInt8])
    case subscribe(recipient: EntityID, proven: [UInt8])
    case ack(recipient: EntityID, proven: [UInt8], seq: UInt64)
    case get(recipient: EntityID, proven: [UInt8])
    case delete(recipient: EntityID, proven: [UInt8])
    /// `memberToken`: for a new timer on a relay that asks for proof of work, the member token
    /// that spares it (checked, not counted: the quota is of queues).
    case timerSet(RelayCommand.TimerSet, senderProofs: [[UInt8]?], replacesProof: [UInt8]?, memberToken: MemberTokenCheck? = nil)
    case timerRenew(timer: EntityID, proven: [UInt8], delay: UInt32)
    case timerCancel(timer: EntityID, proven: [UInt8])
    /// The connection closed: forget its subscriptions.
    case disconnect
}

public struct CoreRequest: Sendable {
    public var sink: CoreSink
    public var requestId: UInt32
    public var command: CoreCommand
    public init(sink: CoreSink, requestId: UInt32, command: CoreCommand) {
        self.sink = sink
        self.requestId = requestId
        self.command = command
    }
}

public enum CoreOutcome: Sendable {
    /// The reply to a command; `grant` is a key the connection now holds for a new entity.
    case reply(requestId: UInt32, RelayReply, grant: (Proof, [UInt8])? = nil)
    /// A relay-initiated MSG or END (request id 0).
    case push(RelayReply)
    /// The stored key for an AUTH, for the connection to check the signature against.
    case key(requestId: UInt32, Proof, Result<[UInt8], RelayErrorCode>)
}

/// The limits the core enforces, taken from the configuration.
public struct CoreLimits: Sendable {
    public var messageTTLSeconds: UInt64
    public var maxQueueMessages: Int
    public var maxQueueBytes: Int
    public var maxQueues: Int
    public var maxTimers: Int
    public var maxSubscriptionsPerConnection: Int
    public var maxTimerBodiesPerQueue: Int
    public var maxStoreBytes: Int
    public var pressureQueueBytes: Int
    public var diskReserveBytes: Int
    public var sendRatePerQueue: Int
    public var sendBurstPerQueue: Int

    public init(_ c: RelayConfiguration) {
        messageTTLSeconds = c.messageTTLSeconds
        maxQueueMessages = c.maxQueueMessages
        maxQueueBytes = c.maxQueueBytes
        maxQueues = c.maxQueues
        maxTimers = c.maxTimers
        maxSubscriptionsPerConnection = c.maxSubscriptionsPerConnection
        maxTimerBodiesPerQueue = c.maxTimerBodiesPerQueue
        maxStoreBytes = c.maxStoreBytes
        pressureQueueBytes = c.pressureQueueBytes
        diskReserveBytes = c.diskReserveBytes
        sendRatePerQueue = c.sendRatePerQueue
        sendBurstPerQueue = c.sendBurstPerQueue
    }
}

/// Batching bounds: how much one transaction may carry, and how much one sweep may do, so that
/// one commit never holds replies back for long.
enum CoreTuning {
    static let maxBatch = 4_096
    static let maxTimersPerSweep = 1_000
    static let maxExpiriesPerSweep = 10_000
}
