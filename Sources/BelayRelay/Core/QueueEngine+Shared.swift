import BelayWire

/// With several frontends on one store, what another frontend changed: queues created, secured
/// or deleted there, messages stored there for a queue subscribed here, and subscriptions taken
/// there. The store tells (PostgreSQL: LISTEN/NOTIFY); the engine re-reads the rows named.
extension QueueEngine {
    func apply(_ changes: ChangedQueues, _ tx: any QueueTransaction, _ ctx: inout BatchContext) throws {
        if changes.everything {
            // Notifications may have been missed: every counter again, and every subscription
            // looks for what it has not pushed.
            try refreshCounters()
            for q in byRow.values where q.subscription != nil { ctx.dirty[q.rowId] = q }
        }
        for row in changes.rows.union(changes.messages) {
            try reload(row: row, tx, &ctx)
        }
        for row in changes.subscribedElsewhere {
            guard let q = byRow[row], let sub = q.subscription else { continue }
            // The recipient subscribed through another frontend: this one lets go, as a
            // second SUB on one relay would make it.
            ctx.add(.push(.end(recipient: q.recipientId)), for: sub.sink)
            subscriptionsBySink[ObjectIdentifier(sub.sink)]?.remove(q.recipientId)
            noteSubscriptionChange(q)
            q.subscription = nil
        }
    }

    /// With a shared store, what other frontends acknowledged, expired, set, fired or cancelled
    /// changes no counter here until it is read again: every counter is re-read this often
    /// (a sweep's worth of reading, so not at every sweep).
    static let sharedRefreshSeconds: UInt64 = 10

    func refreshSharedCountersIfDue() {
        guard store.shared, clock.now() >= nextSharedRefresh else { return }
        nextSharedRefresh = clock.now() + Self.sharedRefreshSeconds
        do {
            try refreshCounters()
        } catch {
            logger.warning("could not re-read the shared store's counters", metadata: ["error": "\(error)"])
        }
    }

    /// Brings one queue up to date with the store: gone, new, or changed counters and keys.
    private func reload(row: Int64, _ tx: any QueueTransaction, _ ctx: inout BatchContext) throws {
        guard let fresh = try tx.queueRow(id: row) else {
            guard let q = byRow[row] else { return }
            if let sub = q.subscription {
                ctx.add(.push(.end(recipient: q.recipientId)), for: sub.sink)
                subscriptionsBySink[ObjectIdentifier(sub.sink)]?.remove(q.recipientId)
            }
            forget(q)
            return
        }
        let q = adopt(fresh)
        q.count = fresh.count
        q.bytes = fresh.bytes
        q.oldestExpiry = fresh.oldestExpiry
        q.senderKey = fresh.senderKey
        if q.subscription != nil { ctx.dirty[q.rowId] = q }
    }

    /// The queue a shared store holds under this row, added to what this frontend knows.
    @discardableResult
    func adopt(_ row: QueueRow) -> QueueState {
        if let q = byRow[row.rowId] { return q }
        let q = QueueState(row)
        byRecipient[q.recipientId] = q
        bySender[q.senderId] = q
        byRow[q.rowId] = q
        return q
    }

    func forget(_ q: QueueState) {
        byRecipient[q.recipientId] = nil
        bySender[q.senderId] = nil
        byRow[q.rowId] = nil
        sendRate.forget(queue: q.rowId)
    }

    /// The rows of the queues these requests name that this frontend knows, ascending: locked
    /// first, in one order on every frontend. (A queue not known yet is locked when it is used;
    /// a circle through one of those is a deadlock the database breaks, and the batch runs again.)
    func queuesTouched(by requests: [CoreRequest]) -> [Int64] {
        var rows = Set<Int64>()
        for r in requests {
            switch r.command {
            case let .send(sender, _, _): if let q = bySender[sender] { rows.insert(q.rowId) }
            case let .secure(recipient, _, _), let .subscribe(recipient, _), let .ack(recipient, _, _), let .get(recipient, _),
                let .delete(recipient, _):
                if let q = byRecipient[recipient] { rows.insert(q.rowId) }
            case let .timerSet(set, _, _, _): for e in set.entries { if let q = bySender[e.sender] { rows.insert(q.rowId) } }
            case .create, .lookupKey, .timerRenew, .timerCancel, .disconnect: break
            }
        }
        return rows.sorted()
    }

    /// In a shared store, a queue this frontend has not seen yet may have been made by another.
    func lookup(recipient: EntityID, _ tx: any QueueTransaction) throws -> QueueState? {
        if let q = byRecipient[recipient] { return q }
        guard store.shared, let row = try tx.queueRow(recipient: recipient) else { return nil }
        return adopt(row)
    }

    func lookup(sender: EntityID, _ tx: any QueueTransaction) throws -> QueueState? {
        if let q = bySender[sender] { return q }
        guard store.shared, let row = try tx.queueRow(sender: sender) else { return nil }
        return adopt(row)
    }

    func lookup(row: Int64, _ tx: any QueueTransaction) throws -> QueueState? {
        if let q = byRow[row] { return q }
        guard store.shared, let fresh = try tx.queueRow(id: row) else { return nil }
        return adopt(fresh)
    }
}
