import BelaySodium
import BelayWire

/// What each command means: authorisation against the keys the connection proved, quotas,
/// and the store operations it is made of.
extension QueueEngine {
    func process(_ r: CoreRequest, _ tx: any QueueTransaction, _ ctx: inout BatchContext) throws {
        switch r.command {
        case let .create(recipientKey, memberToken):
            try create(r, recipientKey, memberToken, tx, &ctx)
        case let .lookupKey(proof):
            ctx.add(.key(requestId: r.requestId, proof, try lookupKey(proof, tx)), for: r.sink)
        case let .secure(recipient, proven, senderKey):
            guard let q = try recipientQueue(recipient, proven, r, tx, &ctx) else { return }
            if let existing = q.senderKey {
                ctx.reply(r, Sodium.constantTimeEquals(existing, senderKey) ? .ok : .error(.conflict))
            } else {
                try tx.setSenderKey(queue: q.rowId, key: senderKey)
                q.senderKey = senderKey
                ctx.reply(r, .ok)
            }
        case let .send(sender, proven, body):
            guard let q = try lookup(sender: sender, tx) else { return ctx.reply(r, .error(.noQueue)) }
            // Another frontend may have secured the queue since this one read it.
            if store.shared, q.senderKey == nil, let fresh = try tx.queueRow(id: q.rowId) { q.senderKey = fresh.senderKey }
            if let key = q.senderKey, !(proven.map { Sodium.constantTimeEquals($0, key) } ?? false) {
                return ctx.reply(r, .error(.auth))
            }
            // Counted only once the sender is authorised: on a secured queue nobody but the
            // holder of its sender key can use up its rate.
            let (allowed, charged) = sendRate.take(queue: q.rowId, now: clock.now())
            if charged { sendCharges.append(q.rowId) }
            guard allowed else { return ctx.reply(r, .error(.rate)) }
            guard q.count < limits.maxQueueMessages, q.bytes + q.heldBytes + body.count <= queueByteLimit else {
                return ctx.reply(r, .error(.quota))
            }
            guard canGrow(by: body.count) else { return ctx.reply(r, .error(.storeFull)) }
            do {
                guard try append(body, to: q, tx, &ctx) else { return ctx.reply(r, .error(.quota)) }
            } catch is QueueGone {
                forget(q)
                return ctx.reply(r, .error(.noQueue))
            }
            ctx.reply(r, .ok)
        case let .subscribe(recipient, proven):
            guard let q = try recipientQueue(recipient, proven, r, tx, &ctx) else { return }
            // One subscriber per queue across frontends: taking it here ends it elsewhere.
            if store.shared { try tx.claimSubscription(queue: q.rowId) }
            subscribe(q, r, &ctx)
        case let .ack(recipient, proven, seq):
            guard let q = try recipientQueue(recipient, proven, r, tx, &ctx) else { return }
            let length: Int
            if let pushed = q.subscription?.inFlight.first(where: { $0.seq == seq }) {
                guard try tx.deleteKnownMessage(queue: q.rowId, seq: seq) else { return ctx.reply(r, .error(.noMessage)) }
                length = pushed.length
            } else {
                guard let stored = try tx.deleteMessage(queue: q.rowId, seq: seq) else { return ctx.reply(r, .error(.noMessage)) }
                length = stored
            }
            removeMessage(q, seq: seq, length: length, &ctx)
            ctx.reply(r, .ok)
        case let .get(recipient, proven):
            guard let q = try recipientQueue(recipient, proven, r, tx, &ctx) else { return }
            if let (seq, body) = try tx.messages(queue: q.rowId, after: 0, limit: 1).first {
                ctx.reply(r, .message(.init(recipient: recipient, seq: seq, body: body)))
            } else {
                ctx.reply(r, .noMessage)
            }
        case let .delete(recipient, proven):
            guard let q = try recipientQueue(recipient, proven, r, tx, &ctx) else { return }
            // A timer whose only targets were this queue goes too, or it would hold a place in
            // `max_timers` until its deadline.
            timerCount -= try tx.deleteQueue(queue: q.rowId)
            // Should this batch roll back, the queue comes back: it must keep its seq counter.
            retiredCounters[q.rowId] = q.nextCounter
            noteSubscriptionChange(q)
            if let sub = q.subscription {
                if sub.sink !== r.sink { ctx.add(.push(.end(recipient: recipient)), for: sub.sink) }
                subscriptionsBySink[ObjectIdentifier(sub.sink)]?.remove(recipient)
            }
            forget(q)
            // Its messages go, and so do the timer bodies aimed at it (foreign key cascade).
            storedBytes -= q.bytes + q.heldBytes
            ctx.dirty[q.rowId] = nil
            ctx.recent[q.rowId] = nil
            ctx.deletedSomething = true
            ctx.reply(r, .ok)
        case let .timerSet(set, senderProofs, replacesProof, memberToken):
            if let check = memberToken, try storedMemberToken(check, tx) == nil { return ctx.reply(r, check.refusal) }
            try timerSet(r, set, senderProofs, replacesProof, tx, &ctx)
        case let .timerRenew(timer, proven, delay):
            guard let row = try tx.timer(id: timer) else { return ctx.reply(r, .error(.noTimer)) }
            guard Sodium.constantTimeEquals(row.key, proven) else { return ctx.reply(r, .error(.auth)) }
            let deadline = clock.now() + UInt64(delay)
            try tx.setTimerDeadline(timer: row.rowId, deadline: deadline)
            ctx.reply(r, .timer(id: timer, deadline: deadline))
        case let .timerCancel(timer, proven):
            guard let row = try tx.timer(id: timer) else { return ctx.reply(r, .error(.noTimer)) }
            guard Sodium.constantTimeEquals(row.key, proven) else { return ctx.reply(r, .error(.auth)) }
            try deleteTimer(row.rowId, tx, &ctx)
            ctx.reply(r, .ok)
        case .disconnect:
            forgetSubscriptions(of: r.sink)
        }
    }

    func recipientQueue(_ id: EntityID, _ proven: [UInt8], _ r: CoreRequest, _ tx: any QueueTransaction, _ ctx: inout BatchContext) throws -> QueueState? {
        guard let q = try lookup(recipient: id, tx) else {
            ctx.reply(r, .error(.noQueue))
            return nil
        }
        guard Sodium.constantTimeEquals(q.recipientKey, proven) else {
            ctx.reply(r, .error(.auth))
            return nil
        }
        return q
    }

    private func create(
        _ r: CoreRequest, _ recipientKey: [UInt8], _ memberToken: MemberTokenCheck?, _ tx: any QueueTransaction, _ ctx: inout BatchContext
    ) throws {
        guard byRecipient.count < limits.maxQueues else { return ctx.reply(r, .error(.limit)) }
        guard canGrow(by: 0) else { return ctx.reply(r, .error(.storeFull)) }
        // Read at every NEW, in this batch's transaction: a token added or revoked by
        // `belayd token` counts from the next NEW on, without a restart. The spend rolls back
        // with the batch if it fails.
        if let check = memberToken {
            guard let token = try storedMemberToken(check, tx), try tx.spendMemberToken(id: token.id) else { return ctx.reply(r, check.refusal) }
        }
        var recipientId: EntityID
        var senderId: EntityID
        repeat {
            recipientId = EntityID.random(random)
            senderId = EntityID.random(random)
        } while byRecipient[recipientId] != nil || bySender[senderId] != nil || recipientId == senderId
        let rowId = try tx.insertQueue(recipientId: recipientId, senderId: senderId, recipientKey: recipientKey)
        let q = QueueState(
            rowId: rowId, recipientId: recipientId, senderId: senderId, recipientKey: recipientKey,
            senderKey: nil, count: 0, bytes: 0)
        byRecipient[recipientId] = q
        bySender[senderId] = q
        byRow[rowId] = q
        ctx.reply(r, .ids(recipient: recipientId, sender: senderId), grant: (Proof(role: .recipient, entity: recipientId), recipientKey))
    }

    /// The stored member token `check` names, compared in constant time, or nil.
    func storedMemberToken(_ check: MemberTokenCheck, _ tx: any QueueTransaction) throws -> MemberTokenRow? {
        guard let token = try tx.memberToken(hash: check.hash), Sodium.constantTimeEquals(token.hash, check.hash) else { return nil }
        return token
    }

    private func lookupKey(_ proof: Proof, _ tx: any QueueTransaction) throws -> Result<[UInt8], RelayErrorCode> {
        switch proof.role {
        case .recipient:
            guard let q = try lookup(recipient: proof.entity, tx) else { return .failure(.noQueue) }
            return .success(q.recipientKey)
        case .sender:
            guard let q = try lookup(sender: proof.entity, tx) else { return .failure(.noQueue) }
            // An unsecured queue has no sender key to prove.
            guard let key = q.senderKey else { return .failure(.auth) }
            return .success(key)
        case .timer:
            guard let row = try tx.timer(id: proof.entity) else { return .failure(.noTimer) }
            return .success(row.key)
        }
    }
}
