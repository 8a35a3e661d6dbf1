import BelayE2E
import BelaySodium
import BelayWire
import Foundation
import GRDB

/// The person's side of a check-in at the relays: deposits, notices and cancellations, each
/// recorded as soon as it is done.
extension Agent {
    /// What one command enters: the tag of the code typed (zeros without codes), and the key
    /// the codes open.
    struct CodeEntry {
        var tag = CheckinNotice.noTag
        var key: SecureBytes?
    }

    /// One command's deposits and notices: for each target of `plan` (later tiers first), a fresh
    /// alert under a fresh key deposited in place of its timer, then its notice. Normal and duress
    /// check-ins run exactly this, in the same order with the same sizes; only the code tag inside
    /// the notices differs. Arming stops at the first failure (`checkinPartlyArmed`); a check-in
    /// renews every contact it can and then says whom it could not (`checkinPartlyRenewed`).
    func renew(
        _ record: inout CheckinRecord, plan: [CheckinRecord.Target], entry: CodeEntry, contacts: [ContactRecord], pool: RelayPool,
        arming: Bool
    ) async throws {
        record.counter = (record.counter ?? 0) + 1
        try saveCheckin(record, key: entry.key)
        let members = plan.compactMap { t in member(t, contacts: contacts) }
        var done: [String] = []
        var failed: [(String, ClientError)] = []
        for (i, planned) in plan.enumerated() {
            guard let contact = contacts.first(where: { $0.identity == planned.identity }) else { continue }
            var sent = false
            var before: CheckinRecord.Target?
            do {
                try await completePending(&record, contact: contact, key: entry.key, pool: pool)
                before = record.targets.first { $0.identity == planned.identity }
                let tier = planned.tier ?? 0
                let alertKey = AlertKey.generate()
                let delay = record.delay(tier: tier)
                var alert = AlertMessage(reason: .missed, note: record.note, lastCheckin: record.lastCheckin, id: Hex.encode(SystemRandom().bytes(16)))
                alert.checkin = record.id.map { Hex.encode([UInt8]($0)) }
                alert.counter = record.counter
                alert.alertAt = record.lastCheckin + delay
                let windows = record.tierAfter ?? []
                alert.escalatedAfter = tier > 0 && tier - 1 < windows.count ? windows[tier - 1] : nil
                let old = record.targets.first { $0.identity == contact.identity }
                // The new timer key is recorded before the TSET: after a crash in between, the
                // next command finishes that TSET (idempotent under the same key) instead of
                // leaving a timer this device does not know.
                let seed = Data(SystemRandom().bytes(Ed25519.seedLength))
                var target = planned
                target.authority = old?.authority ?? planned.authority
                target.contact = contact.name
                (target.timerId, target.timerSeed, target.deadline) = (old?.timerId ?? Data(), old?.timerSeed ?? Data(), old?.deadline ?? 0)
                target.pendingSeed = seed
                record.targets.removeAll { $0.identity == contact.identity }
                record.targets.append(target)
                try saveCheckin(record, key: entry.key)
                let (deposited, gone) = try await deposit(
                    alert, for: contact, key: alertKey, seed: seed, delay: UInt32(delay),
                    replacing: old?.timerId.isEmpty == false ? old : nil, pool: pool, sent: &sent)
                (target.timerId, target.timerSeed, target.deadline, target.pendingSeed) = (deposited.timerId, seed, deposited.deadline, nil)
                target.dueAt = record.lastCheckin + delay
                if gone { record.noteGone(old ?? planned, at: record.lastCheckin) }
                var notice = CheckinNotice(
                    state: .armed, codeTag: entry.tag, tagChain: (record.tagChain ?? []).map { [UInt8]($0) },
                    authority: record.authorityPublicKey,
                    checkin: [UInt8](record.id ?? Data()), counter: record.counter ?? 0, alertAt: record.lastCheckin + delay,
                    every: record.every, grace: record.grace, lastCheckin: record.lastCheckin, tier: UInt8(tier),
                    escalateAfter: tier < (record.tierAfter ?? []).count ? record.tierAfter![tier] : 0,
                    note: record.note, alertKey: alertKey.announcement, circleKey: [UInt8](record.circleKey ?? Data()),
                    circle: members.filter { $0.identity != [UInt8](contact.identity) },
                    cancels: cancels(after: tier, record: record, contacts: contacts))
                notice.tagBox = [UInt8](target.tagBox ?? Data())
                target.tagBox = nil
                try record.sign(&notice, for: &target)
                record.targets.removeAll { $0.identity == contact.identity }
                record.targets.append(target)
                // The timer and the notice with its key are recorded in one transaction: the
                // notice then leaves (now, or with the next command) before anything later.
                let contactId = try enqueueInTransaction(record, key: entry.key, notice: notice, to: contact.identity)
                try await flush(contact: contactId, pool: pool)
                done.append(contact.name)
            } catch let error as ClientError {
                if !sent, record.targets.first(where: { $0.identity == planned.identity })?.pendingSeed != nil {
                    // The TSET never left: nothing new can exist at the relay, so the contact is
                    // back where it was before this command.
                    record.targets.removeAll { $0.identity == planned.identity }
                    if let before { record.targets.append(before) }
                    try saveCheckin(record, key: entry.key)
                }
                if arming, !done.isEmpty || !planned.timerId.isEmpty {
                    throw ClientError.checkinPartlyArmed(armed: done, missing: plan[i...].map(\.contact), cause: error.description)
                }
                if arming { throw error }
                failed.append((contact.name, error))
            }
        }
        if let (_, first) = failed.first {
            throw done.isEmpty ? first : ClientError.checkinPartlyRenewed(renewed: done, missing: failed.map(\.0), cause: first.description)
        }
    }

    /// Finishes a TSET that a crash interrupted: sent again under the recorded key (the relay
    /// answers with the timer if the first attempt made it), so the device knows its timer.
    func completePending(_ record: inout CheckinRecord, contact: ContactRecord, key: SecureBytes?, pool: RelayPool) async throws {
        guard let i = record.targets.firstIndex(where: { $0.identity == contact.identity }), let seed = record.targets[i].pendingSeed else { return }
        let old = record.targets[i]
        if try await timerExists(old, contact: contact, pool: pool) {
            // The timer the interrupted TSET would have replaced is still there: that TSET never
            // landed, so there is nothing to finish.
            record.targets[i].pendingSeed = nil
            return try saveCheckin(record, key: key)
        }
        let alert = AlertMessage(reason: .missed, note: record.note, lastCheckin: record.lastCheckin, id: Hex.encode(SystemRandom().bytes(16)))
        var sent = false
        let (deposited, _) = try await deposit(
            alert, for: contact, key: AlertKey.generate(), seed: seed,
            delay: UInt32(record.delay(tier: old.tier ?? 0)), replacing: old.timerId.isEmpty ? nil : old,
            pool: pool, retrying: true, sent: &sent)
        (record.targets[i].timerId, record.targets[i].timerSeed, record.targets[i].deadline) = (deposited.timerId, seed, deposited.deadline)
        record.targets[i].pendingSeed = nil
        try saveCheckin(record, key: key)
    }

    /// Whether the relay still holds `target`'s timer (proving its key answers NO_TIMER if not).
    func timerExists(_ target: CheckinRecord.Target, contact: ContactRecord, pool: RelayPool) async throws -> Bool {
        guard let id = EntityID(bytes: target.timerId) else { return false }
        let outlet = try OutletKeys(contact.outlet)
        let connection = try await pool.connection(outlet.relay, lane: outlet.senderId)
        do {
            try await pool.authorise(.timer, id, key: Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8](target.timerSeed))), on: connection)
            return true
        } catch RelayClientError.relay(.noTimer) {
            return false
        } catch let error as RelayClientError {
            throw Self.relayError(error, connection.address)
        }
    }

    func cancels(after tier: Int, record: CheckinRecord, contacts: [ContactRecord]) -> [CheckinNotice.Cancel] {
        record.targets.filter { ($0.tier ?? 0) > tier }.compactMap { t in
            guard let c = contacts.first(where: { $0.identity == t.identity }), !t.timerId.isEmpty else { return nil }
            return CheckinNotice.Cancel(relay: c.outlet.relay, timerId: [UInt8](t.timerId), timerSeed: [UInt8](t.timerSeed))
        }
    }

    /// Saves the record and queues `notice` for the contact (advancing the ratchet) in one
    /// transaction; returns the contact's row id for the flush that follows.
    func enqueueInTransaction(_ record: CheckinRecord, key: SecureBytes?, notice: CheckinNotice, to identity: Data) throws -> Int64 {
        let stored = try record.sealedForStorage(key)
        return try write { db in
            try store.setCheckin(stored, db)
            guard var row = try store.contacts(db).first(where: { $0.record.identity == identity }) else {
                throw ClientError.invalidInput("a contact of this check-in was forgotten; re-arm with `belay checkin arm`")
            }
            try queue([(.checkin, notice.encoded(), nil)], for: &row, db)
            return row.id
        }
    }

    /// Cancels the timers of the targets not in `keeping` and sends each an ended notice, which
    /// revokes the alert key it holds; each is dropped from the record as it goes.
    func retire(_ record: inout CheckinRecord, keeping: Set<Data>, entry: CodeEntry, contacts: [ContactRecord], pool: RelayPool) async throws {
        let members = record.targets.compactMap { t in member(t, contacts: contacts) }
        for leaving in record.targets where !keeping.contains(leaving.identity) {
            if let contact = contacts.first(where: { $0.identity == leaving.identity }) {
                try await completePending(&record, contact: contact, key: entry.key, pool: pool)
            }
            guard let target = record.targets.first(where: { $0.identity == leaving.identity }) else { continue }
            try await cancel(target, contacts: contacts, pool: pool)
            if let contact = contacts.first(where: { $0.identity == target.identity }) {
                var notice = CheckinNotice(
                    state: .ended, codeTag: entry.tag, tagChain: (record.tagChain ?? []).map { [UInt8]($0) },
                    authority: record.authorityPublicKey,
                    checkin: [UInt8](record.id ?? Data()), counter: record.counter ?? 0, alertAt: 0, every: record.every,
                    grace: record.grace, lastCheckin: record.lastCheckin, tier: UInt8(target.tier ?? 0), escalateAfter: 0,
                    note: record.note, alertKey: [], circleKey: [UInt8](record.circleKey ?? Data()),
                    circle: members.filter { $0.identity != [UInt8](contact.identity) }, cancels: [])
                notice.tagBox = [UInt8](target.tagBox ?? Data())
                var signed = target
                try record.sign(&notice, for: &signed)
                record.targets.removeAll { $0.identity == target.identity }
                let contactId = try enqueueInTransaction(record, key: entry.key, notice: notice, to: contact.identity)
                try await flush(contact: contactId, pool: pool)
            } else {
                record.targets.removeAll { $0.identity == target.identity }
                try saveCheckin(record, key: entry.key)
            }
        }
    }

    func member(_ t: CheckinRecord.Target, contacts: [ContactRecord]) -> CheckinNotice.Member? {
        guard let c = contacts.first(where: { $0.identity == t.identity }) else { return nil }
        return CheckinNotice.Member(
            name: t.contact, identity: [UInt8](c.identity), tier: UInt8(t.tier ?? 0), relay: c.outlet.relay,
            senderId: [UInt8](c.outlet.senderId), senderSeed: [UInt8](c.outlet.senderSeed))
    }

    func alertContent(_ alert: AlertMessage) throws -> Content {
        Content(kind: .alert, sequence: 0, sentAt: now() * 1000, body: [UInt8](try JSONEncoder().encode(alert)))
    }

    /// Seals `alert` under `key` and deposits it as the contact's timer under the timer key from
    /// `seed`, replacing `old` in the same relay transaction if it is still there. If the
    /// connection drops before the reply, the TSET is sent once more with the same key: the relay
    /// answers a repeated key with the timer the first attempt made (docs/PROTOCOL.md §3.1).
    func deposit(
        _ alert: AlertMessage, for contact: ContactRecord, key: AlertKey, seed: Data, delay: UInt32, replacing old: CheckinRecord.Target?,
        pool: RelayPool, retrying alreadyRetrying: Bool = false, sent: inout Bool
    ) async throws -> (target: CheckinRecord.Target, oldTimerGone: Bool) {
        let body = try Alerts.seal(
            try alertContent(alert), key: key, sender: identity.publicIdentity,
            receiver: PublicIdentity(bytes: [UInt8](contact.identity)))
        return try await deposit(body: body, for: contact, seed: seed, delay: delay, replacing: old, pool: pool, retrying: alreadyRetrying, sent: &sent)
    }

    /// Deposits one sealed body as a timed release to `contact`'s queue under the timer key from
    /// `seed` (a check-in's alert, or a roster request's later tier).
    func deposit(
        body: [UInt8], for contact: ContactRecord, seed: Data, delay: UInt32, replacing old: CheckinRecord.Target?, pool: RelayPool,
        retrying alreadyRetrying: Bool = false, sent: inout Bool
    ) async throws -> (target: CheckinRecord.Target, oldTimerGone: Bool) {
        let outlet = try OutletKeys(contact.outlet)
        let timerKey = try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8](seed)))
        var retrying = alreadyRetrying
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
                sent = true
                // A token kept for the contact's relay spares a new timer the proof of work; it
                // is shown only if the relay asks for work.
                let (id, deadline) = try await connection.setTimer(
                    .init(timerKey: timerKey.publicKey, delay: delay, replaces: replaces, entries: [.init(sender: outlet.senderId, body: body)]),
                    tokenIfAsked: replaces == nil ? try keptToken(for: outlet.relay) : [])
                return (
                    CheckinRecord.Target(
                        contact: contact.name, identity: contact.identity, timerId: Data(id.bytes),
                        timerSeed: seed, deadline: deadline), oldTimerGone
                )
            } catch let error as RelayClientError {
                if !retrying, error == .connectionClosed || error == .timeout {
                    retrying = true
                    await connection.close()
                    continue
                }
                // A refusal is an answer: nothing was made, so nothing is pending.
                if case .relay = error { sent = false }
                if case let .relay(code) = error, let why = Self.timerRefusal(code, contact: contact.name) { throw ClientError.relayRefused(why) }
                throw Self.relayError(error, connection.address)
            }
        }
    }

    /// What a relay's refusal of a check-in alert means, in the words of the person arming it.
    static func timerRefusal(_ code: RelayErrorCode, contact name: String) -> String? {
        switch code {
        case .limit:
            "\(name)'s relay already holds as many check-in alerts as it allows (for their queue, for this connection, or in all); "
                + "try again later, name someone else, or ask \(name)'s relay operator"
        case .quota: "\(name)'s queue at their relay is full: they need to read their messages before an alert fits"
        case .storeFull: "\(name)'s relay is out of space; try again later, or name someone else"
        case .rate: "\(name)'s relay is limiting how fast alerts are set from your address; try again in a minute"
        default: nil
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
