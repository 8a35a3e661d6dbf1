import BelaySodium
import BelayWire

/// Messages in and out of queues, subscriptions and pushes, timers coming due, expiry.
extension QueueEngine {
    /// Stores a body in a queue with the next `seq`. False only if the generation's counter is
    /// exhausted (4 billion messages to one queue in one run).
    func append(_ body: [UInt8], to q: QueueState, _ tx: any QueueTransaction, _ ctx: inout BatchContext) throws -> Bool {
        guard q.nextCounter < UInt32.max else { return false }
        let proposed = UInt64(generation) << 32 | UInt64(q.nextCounter)
        let expiresAt = clock.now() + limits.messageTTLSeconds
        let seq = try tx.insertMessage(queue: q.rowId, seq: proposed, expiresAt: expiresAt, body: body)
        // A shared store may have stored it later in the queue, after another frontend's messages.
        q.nextCounter = seq >> 32 == UInt64(generation) ? UInt32(truncatingIfNeeded: seq) &+ 1 : q.nextCounter &+ 1
        if q.count == 0 { q.oldestExpiry = expiresAt }
        q.count += 1
        q.bytes += body.count
        storedBytes += body.count
        ctx.recent[q.rowId, default: []].append((seq, body))
        ctx.dirty[q.rowId] = q
        return true
    }

    func removeMessage(_ q: QueueState, seq: UInt64, length: Int, _ ctx: inout BatchContext) {
        // Never below zero: with a shared store this frontend may not have counted the message.
        q.count = max(0, q.count - 1)
        q.bytes = max(0, q.bytes - length)
        storedBytes = max(0, storedBytes - length)
        if q.count == 0 { q.oldestExpiry = nil }
        if let sub = q.subscription, let i = sub.inFlight.firstIndex(where: { $0.seq == seq }) {
            sub.inFlight.remove(at: i)
            ctx.dirty[q.rowId] = q
        }
        if ctx.recent[q.rowId] != nil { ctx.recent[q.rowId]!.removeAll { $0.seq == seq } }
        ctx.deletedSomething = true
    }

    /// Records, once per attempt, the subscription a queue had before the attempt changed it.
    func noteSubscriptionChange(_ q: QueueState) {
        if subscriptionUndo.index(forKey: q.recipientId) == nil { subscriptionUndo[q.recipientId] = .some(q.subscription?.sink) }
    }

    func subscribe(_ q: QueueState, _ r: CoreRequest, _ ctx: inout BatchContext) {
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
    func deliver(_ tx: any QueueTransaction, _ ctx: inout BatchContext) throws {
        for (_, q) in ctx.dirty {
            guard let sub = q.subscription else { continue }
            let room = WireLimits.subscriptionWindow - sub.inFlight.count
            // A shared store's count may not know yet what other frontends stored: read what
            // is after the cursor (the queue's row lock makes that read complete).
            let undelivered = store.shared ? room : q.count - sub.inFlight.count
            guard room > 0, undelivered > 0 else { continue }
            let take = min(room, undelivered)
            let batch: [(UInt64, [UInt8])]
            if !store.shared, let recent = ctx.recent[q.rowId], recent.count == undelivered {
                batch = recent.prefix(take).map { ($0.seq, $0.body) }
            } else {
                batch = try tx.messages(queue: q.rowId, after: sub.cursor, limit: take)
            }
            for (seq, body) in batch {
                sub.inFlight.append((seq, body.count))
                sub.cursor = seq
                ctx.add(.push(.message(.init(recipient: q.recipientId, seq: seq, body: body))), for: sub.sink)
                ctx.counts.messagesOut += 1
            }
        }
    }

    /// Releases due timers into their queues, up to a bound; whether more are due.
    func releaseDueTimers(_ tx: any QueueTransaction, _ ctx: inout BatchContext) throws -> Bool {
        let now = clock.now()
        let due = try tx.dueTimers(now: now, limit: CoreTuning.maxTimersPerSweep)
        for timer in due {
            for (queueRow, body) in try tx.timerEntries(timer: timer) {
                guard let q = try lookup(row: queueRow, tx) else { continue }
                // The body moves from held to stored: the quota it held is now the message's.
                q.heldBodies -= 1
                q.heldBytes -= body.count
                storedBytes -= body.count
                // A released alert is not refused for quota: it must not be lost to a full queue.
                _ = try append(body, to: q, tx, &ctx)
            }
            try tx.deleteTimer(timer: timer)
            timerCount -= 1
            ctx.counts.timersFired += 1
        }
        if !due.isEmpty {
            ctx.deletedSomething = true
            logger.info("timers released", metadata: ["count": "\(due.count)"])
        }
        return due.count == CoreTuning.maxTimersPerSweep
    }

    /// Deletes expired messages, up to a bound; whether more may be waiting.
    func expireMessages(_ tx: any QueueTransaction, _ ctx: inout BatchContext) throws -> Bool {
        let now = clock.now()
        // Within a queue, messages expire in `seq` order (each expires a fixed TTL after it was
        // stored), so each queue's expired messages are a prefix of its primary key.
        var expired = 0
        for q in byRow.values where q.count > 0 && (q.oldestExpiry ?? 0) <= now {
            let room = CoreTuning.maxExpiriesPerSweep - expired
            guard room > 0 else { break }
            q.oldestExpiry = nil
            for m in try tx.oldestMessages(queue: q.rowId, limit: room) {
                guard m.expiresAt <= now else {
                    q.oldestExpiry = m.expiresAt
                    break
                }
                _ = try tx.deleteKnownMessage(queue: q.rowId, seq: m.seq)
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
