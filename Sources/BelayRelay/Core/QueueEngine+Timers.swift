import BelaySodium
import BelayWire

/// Timed releases (TSET): who may aim a body at a queue, and the share of the queue's quota a
/// held body takes until it is released or cancelled.
extension QueueEngine {
    func timerSet(
        _ r: CoreRequest, _ set: RelayCommand.TimerSet, _ senderProofs: [[UInt8]?], _ replacesProof: [UInt8]?,
        _ tx: any QueueTransaction, _ ctx: inout BatchContext
    ) throws {
        // What the new timer would hold per target queue.
        var adding: [Int64: (queue: QueueState, bodies: Int, bytes: Int)] = [:]
        for (i, entry) in set.entries.enumerated() {
            guard let q = try lookup(sender: entry.sender, tx) else { return ctx.reply(r, .error(.noQueue)) }
            // Only a secured queue whose sender key this connection has proven: nobody can aim
            // bodies at a queue they could not SEND to under its owner's key.
            guard let key = q.senderKey, i < senderProofs.count, let proof = senderProofs[i], Sodium.constantTimeEquals(proof, key)
            else { return ctx.reply(r, .error(.auth)) }
            adding[q.rowId, default: (q, 0, 0)].bodies += 1
            adding[q.rowId]!.bytes += entry.body.count
        }
        // A TSET retried after its reply was lost carries the same fresh timer key: it gets the
        // timer its first attempt made, and nothing changes (not even the timer it replaced,
        // which that attempt already cancelled). Aimed anywhere else, the key is someone's
        // mistake or an attack, and is refused.
        if let (id, existing) = try tx.timer(key: set.timerKey) {
            let held = Set(try tx.timerEntrySizes(timer: existing.rowId).map(\.queue))
            guard held == Set(adding.keys) else { return ctx.reply(r, .error(.auth)) }
            // No proof is granted: the public key is all this request shows, and a connection
            // that wants to act on the timer proves its private key like any other.
            return ctx.reply(r, .timer(id: id, deadline: existing.deadline))
        }
        var replaced: TimerRow?
        var freeing: [Int64: (bodies: Int, bytes: Int)] = [:]
        if let old = set.replaces {
            guard let row = try tx.timer(id: old) else { return ctx.reply(r, .error(.noTimer)) }
            guard let replacesProof, Sodium.constantTimeEquals(row.key, replacesProof) else { return ctx.reply(r, .error(.auth)) }
            replaced = row
            for entry in try tx.timerEntrySizes(timer: row.rowId) {
                freeing[entry.queue, default: (0, 0)].bodies += 1
                freeing[entry.queue]!.bytes += entry.length
            }
        }
        guard replaced != nil || timerCount < limits.maxTimers else { return ctx.reply(r, .error(.limit)) }
        for (row, add) in adding {
            let freed = freeing[row] ?? (0, 0)
            let q = add.queue
            guard q.heldBodies - freed.bodies + add.bodies <= limits.maxTimerBodiesPerQueue else { return ctx.reply(r, .error(.limit)) }
            // Held bytes may stay where they were (a renewal), but may not grow past the quota.
            let after = q.bytes + q.heldBytes - freed.bytes + add.bytes
            guard after <= queueByteLimit || add.bytes <= freed.bytes else { return ctx.reply(r, .error(.quota)) }
        }
        let growth = adding.values.reduce(0) { $0 + $1.bytes } - freeing.values.reduce(0) { $0 + $1.bytes }
        // A re-arm that holds no more than the timer it replaces goes through even on a full
        // disk: refusing it would leave the old timer to fire a false alarm.
        guard canGrow(by: growth) || (replaced != nil && growth <= 0) else { return ctx.reply(r, .error(.storeFull)) }

        var id: EntityID
        repeat { id = EntityID.random(random) } while try tx.timer(id: id) != nil
        if let replaced { try deleteTimer(replaced.rowId, tx, &ctx) }
        let deadline = clock.now() + UInt64(set.delay)
        try tx.insertTimer(
            id: id, key: set.timerKey, deadline: deadline,
            entries: set.entries.map { (queue: bySender[$0.sender]!.rowId, body: $0.body) })
        for (_, add) in adding {
            add.queue.heldBodies += add.bodies
            add.queue.heldBytes += add.bytes
            storedBytes += add.bytes
        }
        timerCount += 1
        ctx.reply(r, .timer(id: id, deadline: deadline), grant: (Proof(role: .timer, entity: id), set.timerKey))
    }

    /// Deletes a timer that has not fired and gives back the quota its bodies held.
    func deleteTimer(_ rowId: Int64, _ tx: any QueueTransaction, _ ctx: inout BatchContext) throws {
        for entry in try tx.timerEntrySizes(timer: rowId) {
            guard let q = try lookup(row: entry.queue, tx) else { continue }
            q.heldBodies -= 1
            q.heldBytes -= entry.length
            storedBytes -= entry.length
        }
        try tx.deleteTimer(timer: rowId)
        timerCount -= 1
        ctx.deletedSomething = true
    }
}
