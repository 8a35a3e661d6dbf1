import BelaySodium
import BelayWire
import Foundation
import Logging

/// The relay's queue semantics: every command's meaning, quotas, subscriptions and delivery,
/// timers and expiry, over a `QueueStore` it reaches only through `QueueTransaction`. It keeps
/// in memory what it needs to answer without reading (keys, counters, subscriptions), and
/// rebuilds it from the store after a failure. Not thread-safe: `RelayCore` runs it on one
/// thread, and tests may drive it directly with a `MemoryQueueStore`.
final class QueueEngine {
    let store: any QueueStore
    let limits: CoreLimits
    let clock: RelayClock
    let random: RandomSource
    let logger: Logger
    let metrics: RelayMetrics
    var generation: UInt32 = 0
    var byRecipient: [EntityID: QueueState] = [:]
    var bySender: [EntityID: QueueState] = [:]
    var byRow: [Int64: QueueState] = [:]
    var subscriptionsBySink: [ObjectIdentifier: Set<EntityID>] = [:]
    var timerCount = 0
    /// Bytes of message and timer bodies held, against `maxStoreBytes`.
    var storedBytes = 0
    /// Whether the disk has filled (growth refused until space returns).
    var storage = StorageMode.normal
    /// Space kept free beside a local database, so deletions can commit on a full disk.
    let reserve: DiskReserve?
    var deletedSinceCheckpoint = false
    /// Seq counters of queues deleted since start: a rollback can bring a queue back, and it
    /// must not then hand out a seq again.
    var retiredCounters: [Int64: UInt32] = [:]
    /// Set when a recovery could not read the database.
    var needsReload = false
    /// While the disk is full, when to try releasing due timers again.
    var nextTimerTryWhileFull: UInt64 = 0
    /// When the next store failure may be logged.
    var nextFailureLog: UInt64 = 0
    /// Queues that received messages outside a batch with delivery (timers released alone, or
    /// messages stored by another frontend): the next batch pushes to their subscribers.
    var pendingDelivery: Set<Int64> = []
    /// The subscription each queue had before the current attempt changed it (nil: none).
    var subscriptionUndo: [EntityID: CoreSink?] = [:]
    /// Subscriptions to put back once a failed transaction's state has been reloaded.
    var reattach: [EntityID: CoreSink] = [:]
    /// With a shared store, when to re-read every counter next.
    var nextSharedRefresh: UInt64 = 0
    /// SENDs per queue (`send_rate_per_queue`), and the queues charged in the current attempt,
    /// given back if its transaction rolls back.
    var sendRate: SendRateTable
    var sendCharges: [Int64] = []
    /// Queues in the store when the engine started.
    private(set) var queuesAtStart = 0

    init(
        store: any QueueStore, limits: CoreLimits, clock: RelayClock, random: RandomSource = SystemRandom(), logger: Logger,
        metrics: RelayMetrics = .disabled
    ) throws {
        self.store = store
        self.limits = limits
        self.clock = clock
        self.random = random
        self.logger = logger
        self.metrics = metrics
        sendRate = SendRateTable(perSecond: limits.sendRatePerQueue, burst: limits.sendBurstPerQueue)
        reserve = store.localFile.map { DiskReserve(path: $0 + ".reserve", size: limits.diskReserveBytes) }
        do {
            try reserve?.ensure()
            generation = try store.nextGeneration(floor: Self.generationFloor(now: clock.now()))
        } catch let error as GenerationExhausted {
            throw error
        } catch {
            if let file = store.localFile, store.isOutOfSpace(error) || DiskReserve.isNearlyFull(at: file) || error is DiskFullError {
                throw DiskFullError(path: file, availableBytes: DiskReserve.availableBytes(at: file), neededBytes: 2 * limits.diskReserveBytes)
            }
            throw error
        }
        try loadState()
        queuesAtStart = byRecipient.count
    }

    /// Seconds since 2025-01-01 UTC: a generation at least this large is newer than any a
    /// restored copy of the database can hold, and stays below 2^31 (so every `seq` fits in
    /// a signed 64-bit integer and sorts correctly) until about 2093.
    static let generationEpoch: UInt64 = 1_735_689_600

    static func generationFloor(now: UInt64) -> UInt32 {
        UInt32(clamping: now > generationEpoch ? now - generationEpoch : 0)
    }

    /// Rebuilds every counter from what is durable. Only reads, so it works on a full disk.
    /// Each queue keeps the `seq` counter it had, so no `seq` is handed out twice.
    /// Reads everything first and replaces the in-memory state only once every read has
    /// succeeded: a failed reload leaves the state (and its seq counters) as it was.
    func loadState() throws {
        let counters = byRow.mapValues(\.nextCounter).merging(retiredCounters) { max($0, $1) }
        let durable = try store.durableState()
        var recipients: [EntityID: QueueState] = [:]
        var senders: [EntityID: QueueState] = [:]
        var queues: [Int64: QueueState] = [:]
        var bytes = 0
        for row in durable.queues {
            let q = QueueState(row)
            q.nextCounter = counters[row.rowId] ?? 1
            let h = durable.held[row.rowId] ?? .init(bodies: 0, bytes: 0)
            q.heldBodies = h.bodies
            q.heldBytes = h.bytes
            bytes += row.bytes + h.bytes
            recipients[q.recipientId] = q
            senders[q.senderId] = q
            queues[q.rowId] = q
        }
        byRecipient = recipients
        bySender = senders
        byRow = queues
        storedBytes = bytes
        timerCount = durable.timers
    }

    /// Re-reads every counter into the existing queue objects (reads only), keeping their
    /// subscriptions: for a rolled-back transaction that changed counters and nothing else.
    func refreshCounters() throws {
        let durable = try store.durableState()
        var bytes = 0
        for row in durable.queues {
            guard let q = byRow[row.rowId] else { continue }
            let h = durable.held[row.rowId] ?? .init(bodies: 0, bytes: 0)
            q.count = row.count
            q.bytes = row.bytes
            q.oldestExpiry = row.oldestExpiry
            q.heldBodies = h.bodies
            q.heldBytes = h.bytes
            bytes += row.bytes + h.bytes
        }
        storedBytes = bytes
        timerCount = durable.timers
    }

    func checkpointIfNeeded() {
        guard deletedSinceCheckpoint else { return }
        do {
            try store.forgetDeleted()
            deletedSinceCheckpoint = false
        } catch {
            logger.warning("WAL checkpoint failed; deleted messages may linger in the WAL until the next one", metadata: ["error": "\(error)"])
        }
    }
}

/// The store says the relay has started about 2^31 times, or its clock was once set far
/// into the future (the generation follows the clock). Either way a new seq could repeat.
public struct GenerationExhausted: Swift.Error, CustomStringConvertible {
    var location: String
    var current: Int64
    public var description: String {
        "the relay database \(location) has used up its start generations (at \(current)); was the clock once set far ahead? "
            + "Move the database aside and start with a new one (clients re-pair), or restore a copy from before."
    }

    /// The highest start generation: a seq is generation << 32 | counter, stored as a signed
    /// 64-bit integer, and a generation of 2^31 or more would sort below every earlier seq.
    static let maxGeneration: UInt32 = 1 << 31
}
