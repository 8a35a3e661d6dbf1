import BelayE2E
import BelaySodium
import BelayWire
import Foundation

/// The person's side of a check-in at the relays: deposits, notices and cancellations, each
/// recorded as soon as it is done.
extension Agent {
    /// One command's deposits and notices: for each target of `plan` (later tiers first), a fresh
    /// alert under a fresh key deposited in place of its timer, then its notice. The record is
    /// saved after each deposit. Normal and duress check-ins run exactly this, in the same order
    /// with the same sizes; only the notices' encrypted flag differs.
    func renew(_ record: inout CheckinRecord, plan: [CheckinRecord.Target], duress: Bool, contacts: [ContactRecord], pool: RelayPool,
               arming: Bool, key: SecureBytes?) async throws {
        record.counter = (record.counter ?? 0) + 1
        try saveCheckin(record, key: key)
        let members = plan.compactMap { t in member(t, contacts: contacts) }
        var done: [String] = []
        for (i, planned) in plan.enumerated() {
            guard let contact = contacts.first(where: { $0.identity == planned.identity }) else { continue }
            do {
                let tier = planned.tier ?? 0
                let alertKey = AlertKey.generate()
                let delay = record.delay(tier: tier)
                var alert = AlertMessage(reason: .missed, note: record.note, lastCheckin: record.lastCheckin, id: Hex.encode(SystemRandom().bytes(16)))
                alert.checkin = record.id.map { Hex.encode([UInt8]($0)) }
                alert.counter = record.counter
                alert.alertAt = record.lastCheckin + delay
                alert.escalatedAfter = tier > 0 ? record.tierAfter?[tier - 1] : nil
                let old = planned.timerId.isEmpty ? nil : planned
                let (deposited, gone) = try await deposit(alert, for: contact, key: alertKey, delay: UInt32(delay), replacing: old, pool: pool)
                var target = planned
                (target.contact, target.timerId, target.timerSeed, target.deadline) = (contact.name, deposited.timerId, deposited.timerSeed, deposited.deadline)
                target.dueAt = record.lastCheckin + delay
                record.targets.removeAll { $0.identity == contact.identity }
                record.targets.append(target)
                if gone {
                    // Past the deadline this device computed (not the relay's word for it), a
                    // timer that is gone was released: the alert went out. Before it, the relay
                    // lost or deleted it. Kept in the record until a check-in reports it.
                    let due = planned.dueAt ?? (planned.deadline)
                    if record.lastCheckin >= due {
                        record.firedAt = min(record.firedAt ?? due, due)
                    } else {
                        record.lostTimers = (record.lostTimers ?? []) + [contact.name]
                    }
                }
                // Saved at once: the old timer is gone at the relay, so the record must name the
                // new one before anything else can fail.
                try saveCheckin(record, key: key)
                let cancels = record.targets.filter { ($0.tier ?? 0) > tier }.compactMap { t -> CheckinNotice.Cancel? in
                    guard let c = contacts.first(where: { $0.identity == t.identity }) else { return nil }
                    return CheckinNotice.Cancel(relay: c.outlet.relay, timerId: [UInt8](t.timerId), timerSeed: [UInt8](t.timerSeed))
                }
                let notice = CheckinNotice(state: .armed, duress: duress, checkin: [UInt8](record.id ?? Data()), counter: record.counter ?? 0,
                                           alertAt: record.lastCheckin + delay, every: record.every, grace: record.grace,
                                           lastCheckin: record.lastCheckin, tier: UInt8(tier),
                                           escalateAfter: tier < (record.tierAfter ?? []).count ? record.tierAfter![tier] : 0,
                                           note: record.note, alertKey: alertKey.announcement, circleKey: [UInt8](record.circleKey ?? Data()),
                                           circle: members.filter { $0.identity != [UInt8](contact.identity) }, cancels: cancels)
                try await send(to: contact.name, kind: .checkin, body: notice.encoded(), history: nil, pool: pool)
                done.append(contact.name)
            } catch let error as ClientError where arming && (!done.isEmpty || !planned.timerId.isEmpty) {
                throw ClientError.checkinPartlyArmed(armed: done, missing: plan[i...].map(\.contact), cause: error.description)
            }
        }
    }

    /// Cancels the timers of the targets not in `keeping` and sends each an ended notice, which
    /// revokes the alert key it holds; each is dropped from the record as it goes.
    func retire(_ record: inout CheckinRecord, keeping: Set<Data>, duress: Bool, contacts: [ContactRecord], pool: RelayPool,
                key: SecureBytes?) async throws {
        for target in record.targets where !keeping.contains(target.identity) {
            try await cancel(target, contacts: contacts, pool: pool)
            if contacts.contains(where: { $0.identity == target.identity }) {
                let notice = CheckinNotice(state: .ended, duress: duress, checkin: [UInt8](record.id ?? Data()), counter: record.counter ?? 0,
                                           alertAt: 0, every: record.every, grace: record.grace, lastCheckin: record.lastCheckin,
                                           tier: UInt8(target.tier ?? 0), escalateAfter: 0, note: "", alertKey: [], circleKey: [], circle: [], cancels: [])
                try await send(to: target.contact, kind: .checkin, body: notice.encoded(), history: nil, pool: pool)
            }
            record.targets.removeAll { $0.identity == target.identity }
            try saveCheckin(record, key: key)
        }
    }

    func member(_ t: CheckinRecord.Target, contacts: [ContactRecord]) -> CheckinNotice.Member? {
        guard let c = contacts.first(where: { $0.identity == t.identity }) else { return nil }
        return CheckinNotice.Member(name: t.contact, identity: [UInt8](c.identity), tier: UInt8(t.tier ?? 0), relay: c.outlet.relay,
                                    senderId: [UInt8](c.outlet.senderId), senderSeed: [UInt8](c.outlet.senderSeed))
    }

    func alertContent(_ alert: AlertMessage) throws -> Content {
        Content(kind: .alert, sequence: 0, sentAt: now() * 1000, body: [UInt8](try JSONEncoder().encode(alert)))
    }

    /// Seals `alert` under `key` and deposits it as the contact's timer under a fresh timer key,
    /// replacing `old` in the same relay transaction if it is still there. If the connection
    /// drops before the reply, the TSET is sent once more with the same key: the relay answers a
    /// repeated key with the timer the first attempt made (docs/PROTOCOL.md §3.1).
    func deposit(_ alert: AlertMessage, for contact: ContactRecord, key: AlertKey, delay: UInt32, replacing old: CheckinRecord.Target?,
                 pool: RelayPool) async throws -> (target: CheckinRecord.Target, oldTimerGone: Bool) {
        let outlet = try OutletKeys(contact.outlet)
        let body = try Alerts.seal(try alertContent(alert), key: key, sender: identity.publicIdentity,
                                   receiver: PublicIdentity(bytes: [UInt8](contact.identity)))
        // A fresh timer key for every deposit: the relay treats a TSET under a key it already
        // holds as a retry of that TSET.
        let timerKey = try Ed25519.SigningKey.generate()
        var retrying = false
        while true {
            let connection = try await pool.connection(outlet.relay, lane: outlet.senderId)
            do {
                do {
                    try await pool.authorise(.sender, outlet.senderId, key: outlet.key, on: connection)
                } catch RelayClientError.relay(.auth) {
                    // The contact's queue is not secured yet: the relay holds timers only for
                    // secured queues, so this contact cannot be alerted until they finish pairing.
                    throw ClientError.notYetPaired(contact.name)
                }
                var replaces: EntityID?
                var oldTimerGone = false
                if let old, let oldId = EntityID(bytes: old.timerId) {
                    do {
                        let oldKey = try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8](old.timerSeed)))
                        try await pool.authorise(.timer, oldId, key: oldKey, on: connection)
                        replaces = oldId
                    } catch RelayClientError.relay(.noTimer) {
                        // Already fired (or lost by the relay), or, on a retry, replaced by the
                        // first attempt: nothing to replace.
                        oldTimerGone = !retrying
                    }
                }
                let (id, deadline) = try await connection.setTimer(.init(timerKey: timerKey.publicKey, delay: delay, replaces: replaces,
                                                                        entries: [.init(sender: outlet.senderId, body: body)]))
                return (CheckinRecord.Target(contact: contact.name, identity: contact.identity, alertKey: Data(), timerId: Data(id.bytes),
                                             timerSeed: Data(try timerKey.seed.unprotectedCopy()), deadline: deadline), oldTimerGone)
            } catch let error as RelayClientError {
                if !retrying, error == .connectionClosed || error == .timeout {
                    retrying = true
                    await connection.close()
                    continue
                }
                throw Self.relayError(error, connection.address)
            }
        }
    }

    func cancel(_ target: CheckinRecord.Target, contacts: [ContactRecord], pool: RelayPool) async throws {
        guard let contact = contacts.first(where: { $0.identity == target.identity }), let id = EntityID(bytes: target.timerId) else { return }
        let outlet = try OutletKeys(contact.outlet)
        let connection = try await pool.connection(outlet.relay, lane: outlet.senderId)
        let key = try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8](target.timerSeed)))
        do {
            try await pool.authorise(.timer, id, key: key, on: connection)
            try await connection.cancelTimer(id)
        } catch RelayClientError.relay(.noTimer) {
            // Already gone.
        } catch let error as RelayClientError {
            throw Self.relayError(error, connection.address)
        }
    }
}
