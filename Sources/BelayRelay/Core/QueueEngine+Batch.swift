import BelayWire
import Foundation

/// One batch: every command in one transaction, replies only once it commits, and what to do
/// when it does not (a full disk, a failing store).
extension QueueEngine {
    typealias Outcomes = [ObjectIdentifier: (sink: CoreSink, items: [CoreOutcome])]

    /// Runs the requests (and a sweep, if asked) in one transaction and returns the outcomes to
    /// hand out once it has committed, and whether a sweep stopped at its bound and wants to
    /// run again.
    func runBatch(_ requests: [CoreRequest], sweep: Bool) -> (outcomes: Outcomes, more: Bool) {
        let changes = store.takeChangedQueues()
        guard !requests.isEmpty || sweep || !changes.isEmpty else { return ([:], false) }
        if sweep {
            checkStorage()
            refreshSharedCountersIfDue()
            sendRate.prune(now: clock.now())
        }
        var ctx = BatchContext()
        var more = false
        if needsReload {
            // The last recovery could not read the database: nothing runs on state that may
            // not match it.
            guard recoverAfterFailedTransaction(&ctx) else {
                answerUnavailable(requests, StateNotReloaded(), &ctx)
                return (ctx.outcomes, false)
            }
        }
        if sweep, storage == .full { releaseTimersWhileFull() }
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            more = try attempt(requests, sweep: sweep, releaseTimers: storage == .normal, changes: changes, &ctx)
        } catch {
            ctx = BatchContext()
            if !recoverAfterFailedTransaction(&ctx) {
                answerUnavailable(requests, error, &ctx)
            } else if store.isOutOfSpace(error) {
                // Run the batch again refusing growth, so the acknowledgements and deletions in
                // it can commit. The first time, the reserve is freed for them. Due timers wait
                // (their bodies need new pages) while expiry and deletions go on; in full mode
                // their release is tried again once a minute, and they fire once space returns.
                if storage == .normal {
                    enterFullMode()
                    nextTimerTryWhileFull = clock.now() + Self.timerRetryWhileFullSeconds
                }
                do {
                    more = try attempt(requests, sweep: sweep, releaseTimers: false, changes: changes, &ctx)
                } catch {
                    _ = recoverAfterFailedTransaction(&ctx)
                    answerUnavailable(requests, error, &ctx)
                }
            } else if store.isRetryable(error) {
                // Two frontends' batches locked rows in opposite orders and the database broke
                // the tie: the state is reloaded, so the batch can run once more.
                do {
                    more = try attempt(requests, sweep: sweep, releaseTimers: storage == .normal, changes: changes, &ctx)
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
        return (ctx.outcomes, more)
    }

    /// In full mode, releasing a due timer needs pages the disk may not have; try once a minute.
    static let timerRetryWhileFullSeconds: UInt64 = 60

    struct StateNotReloaded: Error, CustomStringConvertible {
        var description: String { "the relay state could not be reloaded from the database after a failed transaction" }
    }

    private func attempt(
        _ requests: [CoreRequest], sweep: Bool, releaseTimers: Bool, changes: ChangedQueues, _ ctx: inout BatchContext
    ) throws -> Bool {
        var more = false
        var batch = ctx
        subscriptionUndo = [:]
        sendCharges.removeAll(keepingCapacity: true)
        do {
            try store.transaction { tx in
                if store.shared { try tx.lockQueues(queuesTouched(by: requests)) }
                if !changes.isEmpty { try apply(changes, tx, &batch) }
                for request in requests {
                    try process(request, tx, &batch)
                }
                for row in pendingDelivery { if let q = byRow[row] { batch.dirty[row] = q } }
                if sweep {
                    let moreTimers = releaseTimers ? try releaseDueTimers(tx, &batch) : false
                    let moreExpiry = try expireMessages(tx, &batch)
                    more = moreTimers || moreExpiry
                }
                try deliver(tx, &batch)
            }
        } catch {
            // Nothing of it happened: the SENDs it counted may be sent again.
            sendRate.refund(sendCharges)
            throw error
        }
        ctx = batch
        pendingDelivery.removeAll()
        subscriptionUndo = [:]
        return more
    }

    /// Counts what a batch did, from the outcomes it handed out: a batch that rolled back
    /// handed out only refusals, so nothing it undid is counted.
    private func record(_ requests: [CoreRequest], _ ctx: BatchContext, since started: UInt64) {
        guard metrics.enabled else { return }
        var b = ctx.counts
        b.commands = requests.count
        b.nanoseconds = Int64(DispatchTime.now().uptimeNanoseconds &- started)
        metrics.record(b, queues: byRecipient.count, timers: timerCount)
    }

    /// After a transaction that failed for a reason other than a newly full disk, or twice.
    func answerUnavailable(_ requests: [CoreRequest], _ error: Error, _ ctx: inout BatchContext) {
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
            try store.transaction { tx in _ = try releaseDueTimers(tx, &ctx) }
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

    /// After a rollback the in-memory counters may be ahead of the database: rebuild them from
    /// it (reads only). Subscriptions are put back as they were before the failed attempt, each
    /// starting again from its oldest stored message (what was pushed and not acknowledged may
    /// arrive twice, which clients recognise), so no client is told to go away. Returns whether
    /// the state now matches the store; if not, the next batch tries again first.
    @discardableResult
    func recoverAfterFailedTransaction(_ ctx: inout BatchContext) -> Bool {
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
