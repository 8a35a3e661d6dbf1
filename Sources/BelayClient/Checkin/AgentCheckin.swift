import BelayE2E
import BelaySodium
import BelayWire
import Foundation

extension Agent {
    /// Most contacts one check-in alerts.
    public static let maxCheckinContacts = 16
    /// Longest note, in bytes: it must fit one alert with room to spare.
    public static let maxNoteLength = 4000
    static let codeLabel = Array("belay check-in code v1".utf8)

    func codeTag(_ code: [UInt8]) throws -> Data {
        let vault = try store.requireVault()
        return Data(try vault.indexKey.withUnsafeBytes { k in try HMACSHA256.authenticate(key: k, message: Self.codeLabel + code) }.unprotectedCopy())
    }

    public func checkinStatus() throws -> CheckinStatus {
        guard let r = try read({ db in try store.checkin(db) }) else { return CheckinStatus(armed: false) }
        return status(r)
    }

    func status(_ r: CheckinRecord) -> CheckinStatus {
        CheckinStatus(armed: true, every: r.every, grace: r.grace, due: r.lastCheckin + r.every, alertAt: r.lastCheckin + r.every + r.grace,
                      lastCheckin: r.lastCheckin, contacts: r.targets.map(\.contact), note: r.note, codes: r.checkinCode != nil)
    }

    /// Arms (or re-arms) a check-in: announces a fresh alert key to each contact, then deposits
    /// each contact's alert at its relay as a timed release. A re-arm replaces each contact's
    /// timer atomically and cancels the timers of contacts no longer chosen only afterwards.
    /// `unverified` is called with the chosen contacts whose safety number has not been
    /// compared, before anything is sent: it may warn, ask, or throw to stop.
    public func armCheckin(every: UInt64, grace: UInt64, to rawNames: [String], note: String,
                           codes: (checkin: [UInt8], duress: [UInt8])?,
                           unverified: ([String]) throws -> Void = { _ in }) async throws -> CheckinStatus {
        let delay = every + grace
        guard delay >= 60, delay <= DurationText.maxSeconds else {
            throw ClientError.invalidInput("--every plus --grace must be between 60 seconds and 400 days")
        }
        guard note.utf8.count <= Self.maxNoteLength else { throw ClientError.invalidInput("the note is longer than \(Self.maxNoteLength) bytes") }
        let names = try rawNames.map(Self.validate(name:))
        guard !names.isEmpty else { throw ClientError.invalidInput("name at least one contact with --to") }
        guard names.count <= Self.maxCheckinContacts else { throw ClientError.invalidInput("at most \(Self.maxCheckinContacts) contacts") }
        guard Set(names.map { $0.lowercased() }).count == names.count else { throw ClientError.invalidInput("a contact is named twice") }
        if let codes {
            guard !codes.checkin.isEmpty, !codes.duress.isEmpty else { throw ClientError.invalidInput("the codes must not be empty") }
            guard codes.checkin != codes.duress else { throw ClientError.invalidInput("the check-in code and the duress code must differ") }
        }
        let (contacts, existing) = try read { db in (try store.contacts(db), try store.checkin(db)) }
        var chosen: [ContactRecord] = []
        for name in names {
            guard let c = contacts.first(where: { $0.record.name.lowercased() == name.lowercased() })?.record else { throw ClientError.unknownContact(name) }
            guard !c.awaitingHello else { throw ClientError.notYetPaired(name) }
            chosen.append(c)
        }
        let notVerified = chosen.filter { !$0.verified }.map(\.name)
        if !notVerified.isEmpty { try unverified(notVerified) }
        let at = now()
        let pool = RelayPool(group: group)
        defer { Task { [pool] in await pool.closeAll() } }
        // The record starts with the timers that exist now and is saved as each new one is
        // deposited and each old one cancelled: a failure part-way leaves no timer unknown to
        // this device, so none can fire later without `checkin ok` or `disarm` reaching it.
        var record = CheckinRecord(every: every, grace: grace, note: note, armedAt: at, lastCheckin: at, targets: existing?.targets ?? [],
                                   checkinCode: nil, duressCode: nil)
        if let codes {
            record.checkinCode = try codeTag(codes.checkin)
            record.duressCode = try codeTag(codes.duress)
        } else if let existing {
            (record.checkinCode, record.duressCode) = (existing.checkinCode, existing.duressCode)
        }
        var armed: [String] = []
        for (i, contact) in chosen.enumerated() {
            do {
                let key = AlertKey.generate()
                try await send(to: contact.name, kind: .alertKey, body: key.announcement, history: nil, pool: pool)
                let old = record.targets.first { $0.identity == contact.identity }
                let alert = AlertMessage(reason: .missed, note: note, lastCheckin: at, id: Hex.encode(SystemRandom().bytes(16)))
                let target = try await deposit(alert, for: contact, key: key, delay: UInt32(delay), replacing: old, pool: pool).target
                record.targets.removeAll { $0.identity == contact.identity }
                record.targets.append(target)
                try write { [record] db in try store.setCheckin(record, db) }
                armed.append(contact.name)
            } catch let error as ClientError where !armed.isEmpty || existing != nil {
                throw ClientError.checkinPartlyArmed(armed: armed, missing: chosen[i...].map(\.name), cause: error.description)
            }
        }
        let kept = Set(chosen.map(\.identity))
        for old in record.targets where !kept.contains(old.identity) {
            try await cancel(old, contacts: contacts.map(\.record), pool: pool)
            record.targets.removeAll { $0.identity == old.identity }
            try write { [record] db in try store.setCheckin(record, db) }
        }
        await pool.closeAll()
        return status(record)
    }

    /// Checks in. With the duress code it does everything a normal check-in does, writes the
    /// same local state, returns the same status, and also sends every contact an alert at once.
    public func checkIn(note newNote: String?, code: [UInt8]?) async throws -> CheckinStatus {
        guard var record = try read({ db in try store.checkin(db) }) else {
            throw ClientError.invalidInput("no check-in is armed; `belay checkin arm` sets one")
        }
        var duress = false
        if let expected = record.checkinCode, let duressTag = record.duressCode {
            guard let code, !code.isEmpty else { throw ClientError.checkinCodeRequired }
            let tag = try codeTag(code)
            let isNormal = Sodium.constantTimeEquals([UInt8](tag), [UInt8](expected))
            duress = Sodium.constantTimeEquals([UInt8](tag), [UInt8](duressTag))
            guard isNormal || duress else { throw ClientError.wrongCheckinCode }
        }
        if let newNote {
            guard newNote.utf8.count <= Self.maxNoteLength else { throw ClientError.invalidInput("the note is longer than \(Self.maxNoteLength) bytes") }
            record.note = newNote
        }
        let contacts = try read { db in try store.contacts(db).map(\.record) }
        let at = now()
        let previous = record.lastCheckin
        let pool = RelayPool(group: group)
        defer { Task { [pool] in await pool.closeAll() } }
        var targets: [CheckinRecord.Target] = []
        var fired: UInt64?
        var lost: [String] = []
        for target in record.targets {
            guard let contact = contacts.first(where: { $0.identity == target.identity }) else {
                throw ClientError.invalidInput("\(target.contact), a contact of this check-in, was forgotten; re-arm with `belay checkin arm`")
            }
            let key = try AlertKey(announcement: [UInt8](target.alertKey))
            let alert = AlertMessage(reason: .missed, note: record.note, lastCheckin: at, id: Hex.encode(SystemRandom().bytes(16)))
            let (renewed, oldTimerGone) = try await deposit(alert, for: contact, key: key, delay: UInt32(record.every + record.grace),
                                                            replacing: target, pool: pool)
            targets.append(renewed)
            // Saved at once: the old timer is gone at the relay, so the record must name the new
            // one before anything else can fail.
            var progress = record
            progress.targets = targets + record.targets.dropFirst(targets.count)
            try write { [progress] db in try store.setCheckin(progress, db) }
            if oldTimerGone {
                // Past the deadline this device computed (not the relay's word for it), the relay
                // has released the timer: the alert went out. Before it, the relay lost or deleted
                // a timer it should still hold.
                let deadline = record.lastCheckin + record.every + record.grace
                if at >= deadline { fired = min(fired ?? deadline, deadline) } else { lost.append(target.contact) }
            }
            let outlet = try OutletKeys(contact.outlet)
            let connection = try await pool.connection(outlet.relay, lane: outlet.senderId)
            if duress {
                let now = AlertMessage(reason: .duress, note: record.note, lastCheckin: previous, id: Hex.encode(SystemRandom().bytes(16)))
                let body = try Alerts.seal(try alertContent(now), key: key, sender: identity.publicIdentity,
                                           receiver: PublicIdentity(bytes: [UInt8](contact.identity)))
                // Not queued locally: nothing may remain on this device that a normal check-in
                // would not leave. If the relay fails here, the deposit above already failed too.
                _ = try? await connection.send(to: outlet.senderId, body: body)
            } else {
                // The same round trip as the duress path's SEND, so the two take the same time.
                _ = try? await connection.call(.ping)
            }
        }
        record.targets = targets
        record.lastCheckin = at
        try write { [record] db in try store.setCheckin(record, db) }
        await pool.closeAll()
        var result = status(record)
        result.alertsWentOutAt = fired
        result.timersLostBeforeDeadline = lost
        return result
    }

    /// Cancels the check-in's timers; with `notify`, tells each contact it has ended.
    public func disarmCheckin(notify: Bool) async throws {
        guard var record = try read({ db in try store.checkin(db) }) else {
            throw ClientError.invalidInput("no check-in is armed")
        }
        let contacts = try read { db in try store.contacts(db).map(\.record) }
        let pool = RelayPool(group: group)
        defer { Task { [pool] in await pool.closeAll() } }
        while let target = record.targets.first {
            try await cancel(target, contacts: contacts, pool: pool)
            record.targets.removeFirst()
            // Progress is saved as each timer goes, so a failure part-way can be retried.
            try write { [record] db in try store.setCheckin(record, db) }
            if notify, contacts.contains(where: { $0.identity == target.identity }) {
                try? await send(to: target.contact, text: "I have ended my check-in; no alert will come from it.")
            }
        }
        try write { db in try store.setCheckin(nil, db) }
        await pool.closeAll()
    }

    /// "I need help now": an alert to the armed check-in's contacts, or to `names`.
    public func sendHelpAlert(note: String?, to names: [String]?) async throws -> [String] {
        let record = try read { db in try store.checkin(db) }
        let recipients = names ?? record?.targets.map(\.contact) ?? []
        guard !recipients.isEmpty else { throw ClientError.invalidInput("no check-in is armed; name the contacts with --to") }
        let text = note ?? record?.note ?? ""
        guard text.utf8.count <= Self.maxNoteLength else { throw ClientError.invalidInput("the note is longer than \(Self.maxNoteLength) bytes") }
        let alert = AlertMessage(reason: .help, note: text, lastCheckin: record?.lastCheckin ?? 0, id: Hex.encode(SystemRandom().bytes(16)))
        let body = [UInt8](try JSONEncoder().encode(alert))
        var failures: [ClientError] = []
        for name in recipients {
            do { try await send(to: name, kind: .alert, body: body, history: alert.summary) } catch let error as ClientError {
                failures.append(error)
            }
        }
        if let first = failures.first { throw first }
        return recipients
    }

    func alertContent(_ alert: AlertMessage) throws -> Content {
        Content(kind: .alert, sequence: 0, sentAt: now() * 1000, body: [UInt8](try JSONEncoder().encode(alert)))
    }

    /// Seals `alert` under `key` and deposits it as the contact's timer, replacing `old` in the
    /// same relay transaction if it is still there.
    func deposit(_ alert: AlertMessage, for contact: ContactRecord, key: AlertKey, delay: UInt32, replacing old: CheckinRecord.Target?,
                 pool: RelayPool) async throws -> (target: CheckinRecord.Target, oldTimerGone: Bool) {
        let outlet = try OutletKeys(contact.outlet)
        let connection = try await pool.connection(outlet.relay, lane: outlet.senderId)
        let body = try Alerts.seal(try alertContent(alert), key: key, sender: identity.publicIdentity,
                                   receiver: PublicIdentity(bytes: [UInt8](contact.identity)))
        // A fresh timer key for every deposit: the relay treats a TSET under a key it already
        // holds as a retry of that TSET (docs/PROTOCOL.md §3.1).
        let timerKey = try Ed25519.SigningKey.generate()
        do {
            do {
                try await pool.authorise(.sender, outlet.senderId, key: outlet.key, on: connection)
            } catch RelayClientError.relay(.auth) {
                // The contact's queue is not secured yet: the relay holds timers only for secured
                // queues, so this contact cannot be alerted until they finish pairing.
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
                    // Already fired (or lost by the relay): nothing to replace; the caller says so.
                    oldTimerGone = true
                }
            }
            let (id, deadline) = try await connection.setTimer(.init(timerKey: timerKey.publicKey, delay: delay, replaces: replaces,
                                                                    entries: [.init(sender: outlet.senderId, body: body)]))
            return (CheckinRecord.Target(contact: contact.name, identity: contact.identity, alertKey: Data(key.announcement), timerId: Data(id.bytes),
                                         timerSeed: Data(try timerKey.seed.unprotectedCopy()), deadline: deadline), oldTimerGone)
        } catch let error as RelayClientError {
            throw Self.relayError(error, connection.address)
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
