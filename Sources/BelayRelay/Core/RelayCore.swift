import BelaySodium
import BelayWire
import Foundation
import GRDB
import Logging
import NIOCore

/// The single owner of all queue, subscription and timer state. It runs on one dedicated thread:
/// connections submit requests from their event loops, the core takes everything waiting,
/// executes it in one transaction, commits durably, and only then hands out the replies
/// (group commit). One thread means no locks around state and a total order of commands.
public final class RelayCore: @unchecked Sendable {
    // Shared between threads, guarded by `condition`.
    private let condition = NSCondition()
    private var inbox: [Job] = []
    private var accepting = true
    private var stopRequested = false
    private var stopped: CheckedContinuation<Void, Never>?
    private var hasStopped = false

    // Owned by the core thread once `start()` has run.
    let store: RelayStore
    let limits: CoreLimits
    let clock: RelayClock
    let random: RandomSource
    let logger: Logger
    let metrics: RelayMetrics
    private let sweepInterval: Double?
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
    let reserve: DiskReserve
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
    /// Queues that received messages outside a batch with delivery (timers released alone):
    /// the next batch pushes to their subscribers.
    var pendingDelivery: Set<Int64> = []
    /// The subscription each queue had before the current attempt changed it (nil: none).
    var subscriptionUndo: [EntityID: CoreSink?] = [:]
    /// Subscriptions to put back once a failed transaction's state has been reloaded.
    var reattach: [EntityID: CoreSink] = [:]
    /// The store's prepared hot-path statements, valid inside `runBatch`'s transaction.
    var hot: HotStatements!

    enum Job {
        case request(CoreRequest)
        case sweep(@Sendable () -> Void)
        case barrier(@Sendable () -> Void)
        /// Runs on the core thread between batches (tests compare memory with the store).
        case inspect(@Sendable (RelayCore) -> Void)
    }

    /// `sweepInterval: nil` turns off automatic sweeps; tests then call `sweep()` themselves.
    public init(
        store: RelayStore, limits: CoreLimits, clock: RelayClock, random: RandomSource = SystemRandom(),
        sweepInterval: Double?, logger: Logger, metrics: RelayMetrics = .disabled
    ) throws {
        self.metrics = metrics
        self.store = store
        self.limits = limits
        self.clock = clock
        self.random = random
        self.sweepInterval = sweepInterval
        self.logger = logger
        reserve = DiskReserve(path: store.path + ".reserve", size: limits.diskReserveBytes)
        do {
            try reserve.ensure()
            generation = try store.nextGeneration(floor: Self.generationFloor(now: clock.now()))
        } catch let error as RelayStore.GenerationExhausted {
            throw error
        } catch  where RelayStore.isDiskFull(error) || DiskReserve.isNearlyFull(at: store.path) || error is DiskFullError {
            throw DiskFullError(path: store.path, availableBytes: DiskReserve.availableBytes(at: store.path), neededBytes: 2 * limits.diskReserveBytes)
        }
        try loadState()
        queuesAtStart = byRecipient.count
    }

    /// Seconds since 2025-01-01 UTC: a generation at least this large is newer than any a
    /// restored copy of the database can hold, and stays below 2^31 (so every `seq` fits in
    /// SQLite's signed 64-bit integers and sorts correctly) until about 2093.
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
        let (rows, held, timers) = (durable.queues, durable.held, durable.timers)
        var recipients: [EntityID: QueueState] = [:]
        var senders: [EntityID: QueueState] = [:]
        var queues: [Int64: QueueState] = [:]
        var bytes = 0
        for row in rows {
            let q = QueueState(
                rowId: row.rowId, recipientId: row.recipientId, senderId: row.senderId,
                recipientKey: row.recipientKey, senderKey: row.senderKey, count: row.count, bytes: row.bytes)
            q.oldestExpiry = row.oldestExpiry
            q.nextCounter = counters[row.rowId] ?? 1
            let h = held[row.rowId] ?? (0, 0)
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
        timerCount = timers
    }

    /// Queues in the database when the core started (read before its thread runs).
    public private(set) var queuesAtStart = 0

    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "belayd-core"
        thread.start()
    }

    /// Hands a request to the core. After shutdown has begun, answers UNAVAILABLE at once.
    public func submit(_ request: CoreRequest) {
        condition.lock()
        guard accepting else {
            condition.unlock()
            if case .disconnect = request.command { return }
            request.sink.hopAndReceive([.reply(requestId: request.requestId, .error(.unavailable))])
            return
        }
        inbox.append(.request(request))
        condition.signal()
        condition.unlock()
    }

    /// Fires due timers and expires old messages now, returning once the results are handed out.
    public func sweep() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            enqueue(.sweep { c.resume() }) { c.resume() }
        }
    }

    /// Returns once everything submitted before it has been committed and handed out.
    public func barrier() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            enqueue(.barrier { c.resume() }) { c.resume() }
        }
    }

    /// Runs `body` on the core thread between batches and returns its result.
    func inspect<T: Sendable>(_ body: @escaping @Sendable (RelayCore) -> T) async -> T {
        await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in
            enqueue(.inspect { core in c.resume(returning: body(core)) }) { c.resume(returning: body(self)) }
        }
    }

    private func enqueue(_ job: Job, ifStopped: () -> Void) {
        condition.lock()
        if hasStopped || stopRequested {
            condition.unlock()
            ifStopped()
            return
        }
        inbox.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Stops taking requests, commits and answers everything already submitted, checkpoints the
    /// WAL and returns. Safe to call more than once.
    public func shutdown() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            condition.lock()
            if hasStopped {
                condition.unlock()
                c.resume()
                return
            }
            accepting = false
            stopRequested = true
            stopped = c
            condition.signal()
            condition.unlock()
        }
    }

    // MARK: The core thread

    private func run() {
        var nextSweep = sweepInterval.map { _ in Date() }  // sweep at once: timers due while we were down
        while true {
            condition.lock()
            while inbox.isEmpty && !stopRequested {
                if let deadline = nextSweep {
                    if !condition.wait(until: deadline) { break }
                } else {
                    condition.wait()
                }
            }
            let take = min(inbox.count, CoreTuning.maxBatch)
            let jobs = Array(inbox.prefix(take))
            inbox.removeFirst(take)
            let finishing = stopRequested && inbox.isEmpty
            condition.unlock()

            var requests: [CoreRequest] = []
            var completions: [@Sendable () -> Void] = []
            var sweepNow = false
            if let deadline = nextSweep, Date() >= deadline {
                sweepNow = true
            }
            for job in jobs {
                switch job {
                case let .request(r): requests.append(r)
                case let .sweep(done):
                    sweepNow = true
                    completions.append(done)
                case let .barrier(done): completions.append(done)
                case let .inspect(look): completions.append { look(self) }
                }
            }
            let moreToSweep = runBatch(requests, sweep: sweepNow)
            if sweepNow, let interval = sweepInterval {
                nextSweep = moreToSweep ? Date() : Date().addingTimeInterval(interval)
            }
            if sweepNow { checkpointIfNeeded() }
            for done in completions { done() }
            if finishing { break }
        }
        checkpointIfNeeded()
        condition.lock()
        hasStopped = true
        let c = stopped
        stopped = nil
        // Anything that raced in after the last batch gets its answer too.
        let late = inbox
        inbox = []
        condition.unlock()
        for job in late {
            switch job {
            case let .request(r):
                if case .disconnect = r.command { continue }
                r.sink.hopAndReceive([.reply(requestId: r.requestId, .error(.unavailable))])
            case let .sweep(done), let .barrier(done): done()
            case .inspect: break
            }
        }
        c?.resume()
    }

    func checkpointIfNeeded() {
        guard deletedSinceCheckpoint else { return }
        do {
            try store.checkpoint()
            deletedSinceCheckpoint = false
        } catch {
            logger.warning("WAL checkpoint failed; deleted messages may linger in the WAL until the next one", metadata: ["error": "\(error)"])
        }
    }

    /// One transaction for the whole batch; replies leave only after it commits. Returns whether a
    /// sweep stopped at its bound and wants to run again.
    private func runBatch(_ requests: [CoreRequest], sweep: Bool) -> Bool {
        guard !requests.isEmpty || sweep else { return false }
        if sweep { checkStorage() }
        var ctx = BatchContext()
        var more = false
        if needsReload {
            // The last recovery could not read the database: nothing runs on state that may
            // not match it.
            guard recoverAfterFailedTransaction(&ctx) else {
                answerUnavailable(requests, StateNotReloaded(), &ctx)
                handOut(ctx.outcomes)
                return false
            }
        }
        if sweep, storage == .full { releaseTimersWhileFull() }
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            more = try attempt(requests, sweep: sweep, releaseTimers: storage == .normal, &ctx)
        } catch {
            ctx = BatchContext()
            if !recoverAfterFailedTransaction(&ctx) {
                answerUnavailable(requests, error, &ctx)
            } else if RelayStore.isDiskFull(error) {
                // Run the batch again refusing growth, so the acknowledgements and deletions in
                // it can commit. The first time, the reserve is freed for them. Due timers wait
                // (their bodies need new pages) while expiry and deletions go on; in full mode
                // their release is tried again once a minute, and they fire once space returns.
                if storage == .normal {
                    enterFullMode()
                    nextTimerTryWhileFull = clock.now() + Self.timerRetryWhileFullSeconds
                }
                do {
                    more = try attempt(requests, sweep: sweep, releaseTimers: false, &ctx)
                } catch {
                    _ = recoverAfterFailedTransaction(&ctx)
                    answerUnavailable(requests, error, &ctx)
                }
            } else {
                answerUnavailable(requests, error, &ctx)
            }
        }
        // A rolled-back DEL can no longer bring its queue back once the state matches the store.
        if !needsReload { retiredCounters.removeAll(keepingCapacity: true) }
        if ctx.deletedSomething { deletedSinceCheckpoint = true }
        // Counted before the replies go out: whoever sees a reply sees it counted.
        record(requests, ctx, since: started)
        handOut(ctx.outcomes)
        return more
    }

    /// Counts what a batch did, from its requests and the outcomes it handed out: a batch that
    /// rolled back handed out only refusals, so nothing it undid is counted.
    private func record(_ requests: [CoreRequest], _ ctx: BatchContext, since started: UInt64) {
        guard metrics.enabled else { return }
        var b = RelayMetrics.Batch()
        b.commands = requests.count
        b.nanoseconds = Int64(DispatchTime.now().uptimeNanoseconds &- started)
        (b.timersFired, b.messagesIn, b.messagesOut, b.acknowledgements, b.timersSet, b.errors) =
            (ctx.timersFired, ctx.messagesIn, ctx.messagesOut, ctx.acknowledgements, ctx.timersSet, ctx.errors)
        metrics.record(b, queues: byRecipient.count, timers: timerCount)
    }

    /// In full mode, releasing a due timer needs pages the disk may not have; try once a minute.
    static let timerRetryWhileFullSeconds: UInt64 = 60

    struct StateNotReloaded: Error, CustomStringConvertible {
        var description: String { "the relay state could not be reloaded from the database after a failed transaction" }
    }

    private func attempt(_ requests: [CoreRequest], sweep: Bool, releaseTimers: Bool, _ ctx: inout BatchContext) throws -> Bool {
        var more = false
        var batch = ctx
        subscriptionUndo = [:]
        try store.transaction { db, hot in
            self.hot = hot
            for request in requests {
                try process(request, db, &batch)
            }
            for row in pendingDelivery { if let q = byRow[row] { batch.dirty[row] = q } }
            if sweep {
                let moreTimers = releaseTimers ? try releaseDueTimers(db, &batch) : false
                let moreExpiry = try expireMessages(db, &batch)
                more = moreTimers || moreExpiry
            }
            try deliver(db, &batch)
        }
        ctx = batch
        pendingDelivery.removeAll()
        subscriptionUndo = [:]
        return more
    }

    /// After a transaction that failed for a reason other than a newly full disk, or twice.
    private func answerUnavailable(_ requests: [CoreRequest], _ error: Error, _ ctx: inout BatchContext) {
        // Once a minute at most: a store that keeps failing must not fill the disk with its log.
        let now = clock.now()
        if now >= nextFailureLog {
            logger.error("store transaction failed; answering UNAVAILABLE", metadata: ["error": "\(error)"])
            nextFailureLog = now + 60
        }
        for request in requests {
            switch request.command {
            case .disconnect: forgetSubscriptions(of: request.sink)
            // AUTH waits for a `.key` outcome; a plain reply would leave it pending.
            case let .lookupKey(proof): ctx.add(.key(requestId: request.requestId, proof, .failure(.unavailable)), for: request.sink)
            default: ctx.reply(request, .error(.unavailable))
            }
        }
    }

    /// While the disk is full, due timers are released in a transaction of their own, without
    /// delivery: if it fails, only counters changed, and they are re-read in place, so no
    /// subscription ends. Once a minute at most.
    private func releaseTimersWhileFull() {
        guard clock.now() >= nextTimerTryWhileFull else { return }
        nextTimerTryWhileFull = clock.now() + Self.timerRetryWhileFullSeconds
        var ctx = BatchContext()
        do {
            try store.transaction { db, hot in
                self.hot = hot
                _ = try releaseDueTimers(db, &ctx)
            }
            for (_, q) in ctx.dirty { pendingDelivery.insert(q.rowId) }
            if ctx.deletedSomething { deletedSinceCheckpoint = true }
        } catch {
            do {
                try refreshCounters()
            } catch {
                needsReload = true
            }
        }
    }

    /// Re-reads every counter into the existing queue objects (reads only), keeping their
    /// subscriptions: for a rolled-back transaction that changed counters and nothing else.
    private func refreshCounters() throws {
        let durable = try store.durableState()
        let (rows, held, timers) = (durable.queues, durable.held, durable.timers)
        var bytes = 0
        for row in rows {
            guard let q = byRow[row.rowId] else { continue }
            let h = held[row.rowId] ?? (0, 0)
            q.count = row.count
            q.bytes = row.bytes
            q.oldestExpiry = row.oldestExpiry
            q.heldBodies = h.bodies
            q.heldBytes = h.bytes
            bytes += row.bytes + h.bytes
        }
        storedBytes = bytes
        timerCount = timers
    }

    /// One hop per event loop: waking a loop costs a system call and a context switch, and a
    /// batch typically carries outcomes for every connection.
    private func handOut(_ outcomes: [ObjectIdentifier: (sink: CoreSink, items: [CoreOutcome])]) {
        var byLoop: [ObjectIdentifier: (loop: EventLoop, work: [(CoreSink, [CoreOutcome])])] = [:]
        for (_, entry) in outcomes {
            let loop = entry.sink.eventLoop
            byLoop[ObjectIdentifier(loop), default: (loop, [])].work.append((entry.sink, entry.items))
        }
        for (_, group) in byLoop {
            let work = group.work
            group.loop.execute {
                for (sink, items) in work { sink.receive(items) }
            }
        }
    }

    /// After a rollback the in-memory counters may be ahead of the database: rebuild them from
    /// it (reads only). Subscriptions are put back as they were before the failed attempt, each
    /// starting again from its oldest stored message (what was pushed and not acknowledged may
    /// arrive twice, which clients recognise), so no client is told to go away. Returns whether
    /// the state now matches the store; if not, the next batch tries again first.
    @discardableResult
    private func recoverAfterFailedTransaction(_ ctx: inout BatchContext) -> Bool {
        if !needsReload {
            reattach = [:]
            for q in byRecipient.values { if let sub = q.subscription { reattach[q.recipientId] = sub.sink } }
            for (recipient, before) in subscriptionUndo { reattach[recipient] = before }
        }
        subscriptionUndo = [:]
        for q in byRecipient.values { q.subscription = nil }
        subscriptionsBySink = [:]
        do {
            try loadState()
            needsReload = false
            for (recipient, sink) in reattach {
                guard let q = byRecipient[recipient] else {
                    ctx.add(.push(.end(recipient: recipient)), for: sink)
                    continue
                }
                q.subscription = Subscription(sink: sink)
                subscriptionsBySink[ObjectIdentifier(sink), default: []].insert(recipient)
                pendingDelivery.insert(q.rowId)
            }
            reattach = [:]
            return true
        } catch {
            needsReload = true
            logger.critical(
                "cannot reload relay state after a failed transaction; answering UNAVAILABLE until it can",
                metadata: ["error": "\(error)"])
            return false
        }
    }
}

extension NSCondition {
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}

// MARK: - Commands

extension RelayCore {
    private func process(_ r: CoreRequest, _ db: Database, _ ctx: inout BatchContext) throws {
        switch r.command {
        case let .create(recipientKey):
            try create(r, recipientKey, db, &ctx)
        case let .lookupKey(proof):
            ctx.add(.key(requestId: r.requestId, proof, try lookupKey(proof, db)), for: r.sink)
        case let .secure(recipient, proven, senderKey):
            guard let q = try recipientQueue(recipient, proven, r, &ctx) else { return }
            if let existing = q.senderKey {
                ctx.reply(r, Sodium.constantTimeEquals(existing, senderKey) ? .ok : .error(.conflict))
            } else {
                try Queries.setSenderKey(db, queue: q.rowId, key: senderKey)
                q.senderKey = senderKey
                ctx.reply(r, .ok)
            }
        case let .send(sender, proven, body):
            guard let q = bySender[sender] else { return ctx.reply(r, .error(.noQueue)) }
            if let key = q.senderKey, !(proven.map { Sodium.constantTimeEquals($0, key) } ?? false) {
                return ctx.reply(r, .error(.auth))
            }
            guard q.count < limits.maxQueueMessages, q.bytes + q.heldBytes + body.count <= queueByteLimit else {
                return ctx.reply(r, .error(.quota))
            }
            guard canGrow(by: body.count) else { return ctx.reply(r, .error(.storeFull)) }
            guard try append(body, to: q, db, &ctx) else { return ctx.reply(r, .error(.quota)) }
            ctx.reply(r, .ok)
        case let .subscribe(recipient, proven):
            guard let q = try recipientQueue(recipient, proven, r, &ctx) else { return }
            subscribe(q, r, &ctx)
        case let .ack(recipient, proven, seq):
            guard let q = try recipientQueue(recipient, proven, r, &ctx) else { return }
            let length: Int
            if let pushed = q.subscription?.inFlight.first(where: { $0.seq == seq }) {
                guard try hot.deleteKnownMessage(queue: q.rowId, seq: seq) else { return ctx.reply(r, .error(.noMessage)) }
                length = pushed.length
            } else {
                guard let stored = try hot.deleteMessage(queue: q.rowId, seq: seq) else { return ctx.reply(r, .error(.noMessage)) }
                length = stored
            }
            removeMessage(q, seq: seq, length: length, &ctx)
            ctx.reply(r, .ok)
        case let .get(recipient, proven):
            guard let q = try recipientQueue(recipient, proven, r, &ctx) else { return }
            if let (seq, body) = try hot.messages(queue: q.rowId, after: 0, limit: 1).first {
                ctx.reply(r, .message(.init(recipient: recipient, seq: seq, body: body)))
            } else {
                ctx.reply(r, .noMessage)
            }
        case let .delete(recipient, proven):
            guard let q = try recipientQueue(recipient, proven, r, &ctx) else { return }
            // A timer whose only targets were this queue goes too, or it would hold a place in
            // `max_timers` until its deadline.
            timerCount -= try Queries.deleteQueue(db, queue: q.rowId)
            // Should this batch roll back, the queue comes back: it must keep its seq counter.
            retiredCounters[q.rowId] = q.nextCounter
            noteSubscriptionChange(q)
            if let sub = q.subscription {
                if sub.sink !== r.sink { ctx.add(.push(.end(recipient: recipient)), for: sub.sink) }
                subscriptionsBySink[ObjectIdentifier(sub.sink)]?.remove(recipient)
            }
            byRecipient[q.recipientId] = nil
            bySender[q.senderId] = nil
            byRow[q.rowId] = nil
            // Its messages go, and so do the timer bodies aimed at it (foreign key cascade).
            storedBytes -= q.bytes + q.heldBytes
            ctx.dirty[q.rowId] = nil
            ctx.recent[q.rowId] = nil
            ctx.deletedSomething = true
            ctx.reply(r, .ok)
        case let .timerSet(set, senderProofs, replacesProof):
            try timerSet(r, set, senderProofs, replacesProof, db, &ctx)
        case let .timerRenew(timer, proven, delay):
            guard let row = try Queries.timer(db, id: timer) else { return ctx.reply(r, .error(.noTimer)) }
            guard Sodium.constantTimeEquals(row.key, proven) else { return ctx.reply(r, .error(.auth)) }
            let deadline = clock.now() + UInt64(delay)
            try Queries.setTimerDeadline(db, rowId: row.rowId, deadline: deadline)
            ctx.reply(r, .timer(id: timer, deadline: deadline))
        case let .timerCancel(timer, proven):
            guard let row = try Queries.timer(db, id: timer) else { return ctx.reply(r, .error(.noTimer)) }
            guard Sodium.constantTimeEquals(row.key, proven) else { return ctx.reply(r, .error(.auth)) }
            try deleteTimer(row.rowId, db, &ctx)
            ctx.reply(r, .ok)
        case .disconnect:
            forgetSubscriptions(of: r.sink)
        }
    }

    func recipientQueue(_ id: EntityID, _ proven: [UInt8], _ r: CoreRequest, _ ctx: inout BatchContext) throws -> QueueState? {
        guard let q = byRecipient[id] else {
            ctx.reply(r, .error(.noQueue))
            return nil
        }
        guard Sodium.constantTimeEquals(q.recipientKey, proven) else {
            ctx.reply(r, .error(.auth))
            return nil
        }
        return q
    }

    private func create(_ r: CoreRequest, _ recipientKey: [UInt8], _ db: Database, _ ctx: inout BatchContext) throws {
        guard byRecipient.count < limits.maxQueues else { return ctx.reply(r, .error(.limit)) }
        guard canGrow(by: 0) else { return ctx.reply(r, .error(.storeFull)) }
        var recipientId: EntityID
        var senderId: EntityID
        repeat {
            recipientId = EntityID.random(random)
            senderId = EntityID.random(random)
        } while byRecipient[recipientId] != nil || bySender[senderId] != nil || recipientId == senderId
        let rowId = try Queries.insertQueue(db, recipientId: recipientId, senderId: senderId, recipientKey: recipientKey)
        let q = QueueState(
            rowId: rowId, recipientId: recipientId, senderId: senderId, recipientKey: recipientKey,
            senderKey: nil, count: 0, bytes: 0)
        byRecipient[recipientId] = q
        bySender[senderId] = q
        byRow[rowId] = q
        ctx.reply(r, .ids(recipient: recipientId, sender: senderId), grant: (Proof(role: .recipient, entity: recipientId), recipientKey))
    }

    private func lookupKey(_ proof: Proof, _ db: Database) throws -> Result<[UInt8], RelayErrorCode> {
        switch proof.role {
        case .recipient:
            guard let q = byRecipient[proof.entity] else { return .failure(.noQueue) }
            return .success(q.recipientKey)
        case .sender:
            guard let q = bySender[proof.entity] else { return .failure(.noQueue) }
            // An unsecured queue has no sender key to prove.
            guard let key = q.senderKey else { return .failure(.auth) }
            return .success(key)
        case .timer:
            guard let row = try Queries.timer(db, id: proof.entity) else { return .failure(.noTimer) }
            return .success(row.key)
        }
    }
}

// MARK: - Messages, subscriptions, sweeps

extension RelayCore {
    /// Stores a body in a queue with the next `seq`. False only if the generation's counter is
    /// exhausted (4 billion messages to one queue in one run).
    func append(_ body: [UInt8], to q: QueueState, _ db: Database, _ ctx: inout BatchContext) throws -> Bool {
        guard q.nextCounter < UInt32.max else { return false }
        let seq = UInt64(generation) << 32 | UInt64(q.nextCounter)
        q.nextCounter += 1
        let expiresAt = clock.now() + limits.messageTTLSeconds
        try hot.insertMessage(queue: q.rowId, seq: seq, expiresAt: expiresAt, body: body)
        if q.count == 0 { q.oldestExpiry = expiresAt }
        q.count += 1
        q.bytes += body.count
        storedBytes += body.count
        ctx.recent[q.rowId, default: []].append((seq, body))
        ctx.dirty[q.rowId] = q
        return true
    }

    func removeMessage(_ q: QueueState, seq: UInt64, length: Int, _ ctx: inout BatchContext) {
        q.count -= 1
        q.bytes -= length
        storedBytes -= length
        if q.count == 0 { q.oldestExpiry = nil }
        if let sub = q.subscription, let i = sub.inFlight.firstIndex(where: { $0.seq == seq }) {
            sub.inFlight.remove(at: i)
            ctx.dirty[q.rowId] = q
        }
        if ctx.recent[q.rowId] != nil { ctx.recent[q.rowId]!.removeAll { $0.seq == seq } }
        ctx.deletedSomething = true
    }

    /// Records, once per attempt, the subscription a queue had before the attempt changed it.
    private func noteSubscriptionChange(_ q: QueueState) {
        if subscriptionUndo.index(forKey: q.recipientId) == nil { subscriptionUndo[q.recipientId] = .some(q.subscription?.sink) }
    }

    private func subscribe(_ q: QueueState, _ r: CoreRequest, _ ctx: inout BatchContext) {
        noteSubscriptionChange(q)
        let sinkId = ObjectIdentifier(r.sink)
        if let old = q.subscription, old.sink !== r.sink {
            ctx.add(.push(.end(recipient: q.recipientId)), for: old.sink)
            subscriptionsBySink[ObjectIdentifier(old.sink)]?.remove(q.recipientId)
        }
        if q.subscription?.sink !== r.sink, (subscriptionsBySink[sinkId]?.count ?? 0) >= limits.maxSubscriptionsPerConnection {
            q.subscription = nil
            return ctx.reply(r, .error(.limit))
        }
        // A fresh subscription (or a repeated SUB) starts from the oldest stored message.
        q.subscription = Subscription(sink: r.sink)
        subscriptionsBySink[sinkId, default: []].insert(q.recipientId)
        ctx.dirty[q.rowId] = q
        ctx.reply(r, .ok)
    }

    func forgetSubscriptions(of sink: CoreSink) {
        guard let ids = subscriptionsBySink.removeValue(forKey: ObjectIdentifier(sink)) else { return }
        for id in ids {
            if let q = byRecipient[id], q.subscription?.sink === sink {
                noteSubscriptionChange(q)
                q.subscription = nil
            }
        }
    }

    /// Pushes what each touched subscription has room for, from this batch's inserts when they
    /// are all that is waiting, otherwise from the database.
    private func deliver(_ db: Database, _ ctx: inout BatchContext) throws {
        for (_, q) in ctx.dirty {
            guard let sub = q.subscription else { continue }
            let room = WireLimits.subscriptionWindow - sub.inFlight.count
            let undelivered = q.count - sub.inFlight.count
            guard room > 0, undelivered > 0 else { continue }
            let take = min(room, undelivered)
            let batch: [(UInt64, [UInt8])]
            if let recent = ctx.recent[q.rowId], recent.count == undelivered {
                batch = recent.prefix(take).map { ($0.seq, $0.body) }
            } else {
                batch = try hot.messages(queue: q.rowId, after: sub.cursor, limit: take)
            }
            for (seq, body) in batch {
                sub.inFlight.append((seq, body.count))
                sub.cursor = seq
                ctx.add(.push(.message(.init(recipient: q.recipientId, seq: seq, body: body))), for: sub.sink)
                ctx.messagesOut += 1
            }
        }
    }

    /// Releases due timers into their queues, up to a bound; whether more are due.
    private func releaseDueTimers(_ db: Database, _ ctx: inout BatchContext) throws -> Bool {
        let now = clock.now()
        let due = try Queries.dueTimers(db, now: now, limit: CoreTuning.maxTimersPerSweep)
        for timer in due {
            for (queueRow, body) in try Queries.timerEntries(db, timer: timer) {
                guard let q = byRow[queueRow] else { continue }
                // The body moves from held to stored: the quota it held is now the message's.
                q.heldBodies -= 1
                q.heldBytes -= body.count
                storedBytes -= body.count
                // A released alert is not refused for quota: it must not be lost to a full queue.
                _ = try append(body, to: q, db, &ctx)
            }
            try Queries.deleteTimer(db, rowId: timer)
            timerCount -= 1
            ctx.timersFired += 1
        }
        if !due.isEmpty {
            ctx.deletedSomething = true
            logger.info("timers released", metadata: ["count": "\(due.count)"])
        }
        return due.count == CoreTuning.maxTimersPerSweep
    }

    /// Deletes expired messages, up to a bound; whether more may be waiting.
    private func expireMessages(_ db: Database, _ ctx: inout BatchContext) throws -> Bool {
        let now = clock.now()
        // Within a queue, messages expire in `seq` order (each expires a fixed TTL after it was
        // stored), so each queue's expired messages are a prefix of its primary key.
        var expired = 0
        for q in byRow.values where q.count > 0 && (q.oldestExpiry ?? 0) <= now {
            let room = CoreTuning.maxExpiriesPerSweep - expired
            guard room > 0 else { break }
            q.oldestExpiry = nil
            for m in try Queries.oldestMessages(db, queue: q.rowId, limit: room) {
                guard m.expiresAt <= now else {
                    q.oldestExpiry = m.expiresAt
                    break
                }
                try Queries.deleteMessage(db, queue: q.rowId, seq: m.seq)
                removeMessage(q, seq: m.seq, length: m.length, &ctx)
                expired += 1
            }
        }
        if expired > 0 {
            logger.info("expired messages deleted", metadata: ["count": "\(expired)"])
        }
        return expired == CoreTuning.maxExpiriesPerSweep
    }
}
