import BelayE2E
import BelaySodium
import BelayWire
import Foundation

extension Agent {
    /// Most contacts one check-in alerts, over all its tiers.
    public static let maxCheckinContacts = CheckinNotice.maxCircle
    /// Most escalation tiers after the first.
    public static let maxEscalationTiers = 3
    /// Longest note, in bytes: it must fit one alert with room to spare.
    public static let maxNoteLength = 4000

    public func checkinStatus() throws -> CheckinStatus {
        guard let r = try read({ db in try store.checkin(db) }) else { return CheckinStatus(armed: false) }
        return status(r)
    }

    func status(_ r: CheckinRecord) -> CheckinStatus {
        let firstTier = r.targets.filter { ($0.tier ?? 0) == 0 }
        // The earliest deadline any contact's timer still holds: after a partial re-arm, a
        // contact can keep an older, earlier one.
        let alertAt = (firstTier.isEmpty ? r.targets : firstTier).map(\.deadline).min() ?? (r.lastCheckin + r.every + r.grace)
        return CheckinStatus(
            armed: true, every: r.every, grace: r.grace, due: r.lastCheckin + r.every, alertAt: alertAt,
            lastCheckin: r.lastCheckin, contacts: r.targets.map(\.contact), note: r.note, codes: r.codeSlots != nil,
            answers: r.targets.map {
                CheckinStatus.Answer(
                    contact: $0.contact, tier: $0.tier ?? 0, answer: $0.answer ?? "none",
                    ackedAt: $0.ackedAt, ackNote: $0.ackNote)
            },
            tierAfter: r.tierAfter ?? [], spent: r.codeSlots != nil && isSpent(r))
    }

    /// Arms (or re-arms) a check-in. For each contact it deposits an alert at the contact's relay
    /// as a timed release, under a fresh alert key and a fresh timer key, replacing the timer it
    /// had in one relay transaction, and right after sends the contact a notice through the
    /// ratchet with the schedule and that key. Later tiers go first, so the earlier tiers' notices
    /// can carry the right to cancel them. Contacts no longer chosen are cancelled and told last.
    /// `unverified` is called with the chosen contacts whose safety number has not been compared,
    /// before anything is sent: it may warn, ask, or throw to stop.
    public func armCheckin(
        every: UInt64, grace: UInt64, to rawNames: [String], then tiers: [(names: [String], after: UInt64)] = [],
        note: String, codes: (checkin: [UInt8], duress: [UInt8])?, code: [UInt8]? = nil,
        unverified: ([String]) throws -> Void = { _ in }
    ) async throws -> CheckinStatus {
        let (low, high) = (DurationText.minTimerSeconds, DurationText.maxSeconds)
        guard every <= high, grace <= high, every + grace >= low, every + grace <= high else {
            throw ClientError.invalidInput("--every plus --grace must be between \(DurationText.minTimerWords) and \(DurationText.maxWords)")
        }
        guard note.utf8.count <= Self.maxNoteLength else { throw ClientError.invalidInput("the note is longer than \(Self.maxNoteLength) bytes") }
        guard tiers.count <= Self.maxEscalationTiers else { throw ClientError.invalidInput("at most \(Self.maxEscalationTiers) --then tiers") }
        let allTiers = [(names: rawNames, after: UInt64(0))] + tiers
        var named: [(name: String, tier: Int)] = []
        for (tier, group) in allTiers.enumerated() {
            let names = try group.names.map(Self.validate(name:))
            guard !names.isEmpty else {
                throw ClientError.invalidInput(tier == 0 ? "name at least one contact with --to" : "each --then names at least one contact")
            }
            guard tier == 0 || (group.after >= low && group.after <= high) else {
                throw ClientError.invalidInput("each --after must be at least \(DurationText.minTimerWords)")
            }
            named += names.map { ($0, tier) }
        }
        guard allTiers.count == tiers.count + 1, allTiers.map(\.after).reduce(every + grace, +) <= DurationText.maxSeconds else {
            throw ClientError.invalidInput("--every, --grace and every --after together must be at most \(DurationText.maxWords)")
        }
        guard named.count <= Self.maxCheckinContacts else { throw ClientError.invalidInput("at most \(Self.maxCheckinContacts) contacts in all tiers") }
        var seen: Set<String> = []
        for (name, _) in named where !seen.insert(name.lowercased()).inserted {
            throw ClientError.invalidInput("\(name) is named twice; name each contact once, in one tier")
        }
        let (contacts, existing) = try read { db in (try store.contacts(db), try store.checkin(db)) }
        var chosen: [(contact: ContactRecord, tier: Int)] = []
        for (name, tier) in named {
            guard let c = contacts.first(where: { Names.same($0.record.name, name) })?.record else { throw ClientError.unknownContact(name) }
            guard !c.awaitingHello else { throw ClientError.notYetPaired(name) }
            chosen.append((c, tier))
        }
        let notVerified = chosen.filter { !$0.contact.verified }.map(\.contact.name)
        if !notVerified.isEmpty { try unverified(notVerified) }
        // Re-arming a check-in with codes needs one: its timer keys are sealed under them.
        // A check-in whose every alert has gone out is spent: someone who lost the codes may arm
        // a new one without them (its contacts are told, as a security event, that it was
        // started without the old codes).
        var opened = existing.flatMap { isSpent($0) && code == nil ? nil : $0 }
        var entry = CodeEntry()
        var boxedTag: [UInt8]?
        if var o = opened {
            entry = try unlock(&o, code: code)
            opened = o
        }
        var record = CheckinRecord(every: every, grace: grace, note: note, armedAt: now(), lastCheckin: now(), targets: opened?.targets ?? [])
        record.id = opened?.id ?? Data(SystemRandom().bytes(CheckinNotice.idLength))
        record.counter = opened?.counter ?? 0
        record.circleKey = opened?.circleKey ?? Data(AlertKey.generate().announcement)
        record.tierAfter = tiers.map(\.after)
        if let codes {
            let made = try CodeSlots.make(checkin: codes.checkin, duress: codes.duress, limits: codeLimits)
            (record.codeSlots, entry.key) = (made.slots, made.key)
            // Contacts that hold the check-in code's tag follow the change through a link sealed
            // under the tag of the code entered now: made with the duress code, it opens for
            // nobody, and this command's notices (which carry the new tag) read as duress. The
            // device keeps the links, never a tag.
            if opened?.codeSlots != nil {
                let link = try TagChain.link(from: entry.tag, to: made.checkinTag, checkin: [UInt8](record.id ?? Data()))
                record.tagChain = Array(((opened?.tagChain ?? []) + [Data(link)]).suffix(TagChain.maxLinks))
            }
            // A contact with no tag yet (the first codes, or someone new) gets it in a sealed box
            // that only they can open, kept until their notice is queued.
            boxedTag = made.checkinTag
            entry.tag = made.checkinTag
            // A new authority signs the notices from now on; each contact is told of it in a
            // notice signed by the one it holds.
            let past = (opened?.pastAuthoritySeeds ?? []) + (opened?.authoritySeed.map { [$0] } ?? [])
            record.pastAuthoritySeeds = past.isEmpty ? nil : Array(past.suffix(CheckinRecord.maxPastAuthorities))
            record.authoritySeed = Data(try Ed25519.SigningKey.generate().seed.unprotectedCopy())
        } else {
            (record.codeSlots, record.authoritySeed, record.pastAuthoritySeeds) = (
                opened?.codeSlots, opened?.authoritySeed,
                opened?.pastAuthoritySeeds
            )
            record.tagChain = opened?.tagChain
            // Only the contacts hold the check-in code's tag: this device cannot give it to a
            // newcomer without new codes.
            let known = Set(opened?.targets.map(\.identity) ?? [])
            if record.codeSlots != nil, let newcomer = chosen.first(where: { !known.contains($0.contact.identity) }) {
                throw ClientError.invalidInput(
                    "to add \(newcomer.contact.name) to a check-in with codes, set the codes again with --codes "
                        + "(this device does not keep which code is which, so only new codes can be given to someone new)")
            }
        }
        try checkNoticeSize(note: note, contacts: chosen.count)
        // Answers already given stay with the contacts who gave them.
        // A contact already in the check-in keeps what the record knows of it (its timer, the
        // authority it holds, a pending deposit, its answer); only its name and tier change.
        var planned = chosen.map { c in
            var target =
                record.targets.first { $0.identity == c.contact.identity }
                ?? CheckinRecord.Target(
                    contact: c.contact.name, identity: c.contact.identity, timerId: Data(), timerSeed: Data(),
                    deadline: 0)
            (target.contact, target.tier) = (c.contact.name, c.tier)
            return target
        }
        if let boxedTag {
            // Every contact gets a box, those staying and those leaving (whose "ended" notice
            // also carries the new tag), and it is kept on the record's own entries too, so that
            // a contact this command fails to reach still gets it with a later notice.
            func box(_ identity: Data) throws -> Data? {
                guard let agreement = try? PublicIdentity(bytes: [UInt8](identity)).agreement else { return nil }
                return Data(try SealedBox.seal(boxedTag, to: agreement))
            }
            for i in planned.indices { planned[i].tagBox = try box(planned[i].identity) }
            for i in record.targets.indices {
                let staying = planned.first { $0.identity == record.targets[i].identity }?.tagBox
                record.targets[i].tagBox = try staying ?? box(record.targets[i].identity)
            }
        }
        planned.sort { ($0.tier ?? 0) > ($1.tier ?? 0) }
        return try await withRelayPool { pool in
            do {
                try await renew(&record, plan: planned, entry: entry, contacts: contacts.map(\.record), pool: pool, arming: true)
            } catch {
                // A first arming that armed nobody leaves no check-in behind.
                if opened == nil, record.targets.isEmpty { try saveCheckin(nil, key: nil) }
                throw error
            }
            let kept = Set(chosen.map(\.contact.identity))
            do {
                try await retire(&record, keeping: kept, entry: entry, contacts: contacts.map(\.record), pool: pool)
            } catch let error as ClientError {
                let left = record.targets.filter { !kept.contains($0.identity) }.map(\.contact)
                throw ClientError.checkinNotRemoved(armed: chosen.map(\.contact.name), stillArmed: left, cause: error.description)
            }
            return try reportGaps(&record, key: entry.key)
        }
    }

    /// The status, with what renewing found and had not reported yet; then forgets it.
    func reportGaps(_ record: inout CheckinRecord, key: SecureBytes?) throws -> CheckinStatus {
        var result = status(record)
        result.alertsWentOutAt = record.firedAt
        result.timersLostBeforeDeadline = record.lostTimers ?? []
        if record.firedAt != nil || record.lostTimers != nil {
            (record.firedAt, record.lostTimers) = (nil, nil)
            try saveCheckin(record, key: key)
        }
        return result
    }

    /// Checks in. With the duress code it does everything a normal check-in does, in the same
    /// commands of the same sizes, writes the same local state and returns the same status; only
    /// the notices, inside their encryption, tell the contacts it was under duress.
    public func checkIn(note newNote: String?, code: [UInt8]?) async throws -> CheckinStatus {
        guard var record = try read({ db in try store.checkin(db) }) else {
            throw ClientError.invalidInput("no check-in is armed; `belay checkin arm` sets one")
        }
        let entry = try unlock(&record, code: code)
        if let newNote {
            guard newNote.utf8.count <= Self.maxNoteLength else { throw ClientError.invalidInput("the note is longer than \(Self.maxNoteLength) bytes") }
            try checkNoticeSize(note: newNote, contacts: record.targets.count)
            record.note = newNote
        }
        let contacts = try read { db in try store.contacts(db).map(\.record) }
        for target in record.targets where !contacts.contains(where: { $0.identity == target.identity }) {
            throw ClientError.invalidInput("\(target.contact), a contact of this check-in, was forgotten; re-arm with `belay checkin arm`")
        }
        record.lastCheckin = now()
        return try await withRelayPool { pool in
            let plan = record.targets.sorted { ($0.tier ?? 0) > ($1.tier ?? 0) }
            try await renew(&record, plan: plan, entry: entry, contacts: contacts, pool: pool, arming: false)
            return try reportGaps(&record, key: entry.key)
        }
    }

    /// Cancels the check-in's timers and tells each contact it has ended (their alert keys are
    /// revoked). With codes set it needs one; the duress code ends it the same way and tells the
    /// contacts, inside the notices, that it was under duress.
    public func disarmCheckin(code: [UInt8]? = nil) async throws {
        guard var record = try read({ db in try store.checkin(db) }) else {
            throw ClientError.invalidInput("no check-in is armed")
        }
        let entry = try unlock(&record, code: code)
        let contacts = try read { db in try store.contacts(db).map(\.record) }
        try await withRelayPool { pool in
            record.counter = (record.counter ?? 0) + 1
            try saveCheckin(record, key: entry.key)
            do {
                try await retire(&record, keeping: [], entry: entry, contacts: contacts, pool: pool)
            } catch let error as ClientError {
                throw ClientError.checkinNotRemoved(armed: [], stillArmed: record.targets.map(\.contact), cause: error.description)
            }
            try write { db in try store.setCheckin(nil, db) }
        }
    }

    /// "I need help now": an alert to the armed check-in's contacts, or to `names`.
    public func sendHelpAlert(note: String?, to names: [String]?) async throws -> [String] {
        let record = try read { db in try store.checkin(db) }
        let recipients = names ?? record?.targets.map(\.contact) ?? []
        guard !recipients.isEmpty else { throw ClientError.invalidInput("no check-in is armed; name the contacts with --to") }
        let text = note ?? record?.note ?? ""
        guard text.utf8.count <= Self.maxNoteLength else { throw ClientError.invalidInput("the note is longer than \(Self.maxNoteLength) bytes") }
        var alert = AlertMessage(reason: .help, note: text, lastCheckin: record?.lastCheckin ?? 0, id: Hex.encode(SystemRandom().bytes(16)))
        alert.checkin = record?.id.map { Hex.encode([UInt8]($0)) }
        alert.counter = record?.counter
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

    /// Whether every alert of the check-in has gone out, by the deadlines this device computed,
    /// with the overdue slack on top.
    func isSpent(_ r: CheckinRecord) -> Bool {
        guard !r.targets.isEmpty else { return false }
        return now() >= (r.targets.map { $0.dueAt ?? $0.deadline }.max() ?? 0) + Self.overdueSlack
    }

    /// Checks a code against the record's slots (no codes set: nothing to check), and opens the
    /// timer keys' seeds in `record`. Returns the code's tag, which the notices carry (whether it
    /// is the duress code only the contacts know), and the renewal key to seal new seeds under.
    func unlock(_ record: inout CheckinRecord, code: [UInt8]?) throws -> CodeEntry {
        guard let slots = record.codeSlots else { return CodeEntry() }
        guard let code, !code.isEmpty else { throw ClientError.checkinCodeRequired }
        guard let (tag, key) = try slots.open(code: code) else { throw ClientError.wrongCheckinCode }
        try record.openSeeds(key)
        return CodeEntry(tag: tag, key: key)
    }

    /// A notice must fit one message: refuses a note too long for this many contacts (each
    /// notice lists the others, with their relays and keys, and the later tiers' timers).
    func checkNoticeSize(note: String, contacts: Int) throws {
        let member = CheckinNotice.Member(
            name: String(repeating: "x", count: Self.maxNameLength), identity: [UInt8](repeating: 0, count: 64),
            tier: 0, relay: String(repeating: "x", count: CheckinNotice.maxRelayLength),
            senderId: [UInt8](repeating: 0, count: 16), senderSeed: [UInt8](repeating: 0, count: 32))
        let cancel = CheckinNotice.Cancel(relay: member.relay, timerId: member.senderId, timerSeed: member.senderSeed)
        var widest = CheckinNotice(
            state: .armed, codeTag: CodeEntry().tag,
            tagChain: Array(repeating: [UInt8](repeating: 0, count: TagChain.linkLength), count: TagChain.maxLinks),
            authority: [UInt8](repeating: 0, count: 32),
            checkin: [UInt8](repeating: 0, count: 16), counter: 0, alertAt: 0, every: 0, grace: 0, lastCheckin: 0, tier: 0,
            escalateAfter: 0, note: note, alertKey: [UInt8](repeating: 0, count: 48), circleKey: [UInt8](repeating: 0, count: 48),
            circle: Array(repeating: member, count: max(0, contacts - 1)), cancels: Array(repeating: cancel, count: max(0, contacts - 1)))
        widest.signature = [UInt8](repeating: 0, count: Ed25519.signatureLength)
        widest.tagBox = [UInt8](repeating: 0, count: CheckinNotice.tagLength + SealedBox.overhead)
        let spare = Envelope.maxContentLength - widest.encoded().count
        guard spare >= 0 else {
            throw ClientError.invalidInput("the note is too long for \(contacts) contacts: shorten it by \(-spare) bytes")
        }
    }

    func saveCheckin(_ record: CheckinRecord?, key: SecureBytes?) throws {
        let stored = try record.map { try $0.sealedForStorage(key) }
        try write { db in try store.setCheckin(stored, db) }
    }
}
