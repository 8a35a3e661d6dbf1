import BelayE2E
import BelaySodium
import BelayWire
import Foundation
import GRDB

extension Agent {
    /// Fingerprints of opened messages kept per contact to recognise a second copy of one.
    static let maxRecentMessagesPerContact = 64

    /// Seals `text` for `name`, saves it in the outbox in the same transaction as the advanced
    /// ratchet, then delivers it. If the relay cannot be reached, the message stays queued.
    public func send(to name: String, text: String) async throws {
        try await send(to: name, kind: .text, body: Array(text.utf8), history: text)
    }

    /// Sends several texts in order with one transaction and one relay connection.
    public func send(to name: String, texts: [String]) async throws {
        try await send(to: name, items: texts.map { (Content.Kind.text, Array($0.utf8), $0) })
    }

    /// Seals any content kind; `history` is what the person's own history records (nil: nothing).
    func send(to name: String, kind: Content.Kind, body: [UInt8], history text: String?, pool: RelayPool? = nil) async throws {
        try await send(to: name, items: [(kind, body, text)], pool: pool)
    }

    /// Seals each item with the advanced ratchet, queues it in the outbox and records it, all in
    /// one transaction, then delivers the outbox.
    private func send(to name: String, items: [(kind: Content.Kind, body: [UInt8], history: String?)], pool: RelayPool? = nil) async throws {
        for item in items where item.body.count > Envelope.maxContentLength {
            throw ClientError.invalidInput(E2EError.messageTooLong(item.body.count).description)
        }
        let contactId: Int64 = try write { db in
            guard var row = try store.contact(named: name, db) else { throw ClientError.unknownContact(name) }
            guard !row.record.awaitingHello else { throw ClientError.notYetPaired(name) }
            try queue(items, for: &row, db)
            return row.id
        }
        try await flush(contact: contactId, pool: pool)
    }

    /// Seals each item with the contact's advanced ratchet, queues it in the outbox and records
    /// it in the history if it has a text, inside the caller's transaction, and saves the contact.
    func queue(
        _ items: [(kind: Content.Kind, body: [UInt8], history: String?)], for row: inout ClientStore.Row<ContactRecord>,
        _ db: Database
    ) throws {
        var ratchet = try Ratchet(serialized: SecureBytes(copying: [UInt8](row.record.ratchet)))
        for item in items {
            let sequence = row.record.sentSequence + 1
            let sentAt = now() * 1000
            let sealed = try Envelope.seal(Content(kind: item.kind, sequence: sequence, sentAt: sentAt, body: item.body), with: &ratchet)
            row.record.sentSequence = sequence
            try store.enqueue(PendingSend(body: Data(sealed), createdAt: now()), contact: row.id, db)
            if let text = item.history {
                try store.appendHistory(
                    HistoryEntry(
                        direction: .outgoing, kind: item.kind == .alert ? "alert" : "text", sequence: sequence,
                        sentAt: sentAt, receivedAt: 0, text: text), contact: row.id, db)
            }
        }
        row.record.ratchet = Data(try ratchet.serialized().unprotectedCopy())
        try store.updateContact(row, db)
    }

    /// Delivers everything in a contact's outbox, oldest first; each is deleted once the relay
    /// says OK. On a connection failure the rest stay queued and the error says how many.
    func flush(contact id: Int64, pool existing: RelayPool? = nil) async throws {
        guard let pool = existing else { return try await withRelayPool { try await flush(contact: id, pool: $0) } }
        let (row, pending) = try read { db in (try store.contact(id: id, db), try store.pending(contact: id, db)) }
        guard let record = row?.record, !pending.isEmpty else { return }
        let outlet = try OutletKeys(record.outlet)
        var remaining = pending.count
        let connection: RelayConnection
        do { connection = try await pool.connection(outlet.relay, lane: outlet.senderId) } catch ClientError.relayUnreachable(let relay, let why, _) {
            throw ClientError.relayUnreachable(relay: relay, why: why, queued: remaining)
        }
        var proven = true
        do {
            try await pool.authorise(.sender, outlet.senderId, key: outlet.key, on: connection)
        } catch RelayClientError.relay(.auth) {
            // Not secured yet (the inviter secures its queue when it reads our confirmation):
            // an unsecured queue accepts SEND without a proof.
            proven = false
        } catch let error as RelayClientError {
            throw Self.relayError(error, connection.address, queued: remaining)
        }
        for (index, item) in pending.enumerated() {
            if index > 0, let hook = beforeFollowingSend { await hook(index) }
            do {
                do {
                    try await connection.send(to: outlet.senderId, body: [UInt8](item.record.body))
                } catch RelayClientError.relay(.auth) where !proven {
                    // The inviter read our confirmation and secured its queue with our key
                    // between two of our sends. Prove the key and send again; if the queue was
                    // secured with someone else's key, the proof fails with AUTH as before.
                    try await pool.authorise(.sender, outlet.senderId, key: outlet.key, on: connection)
                    proven = true
                    try await connection.send(to: outlet.senderId, body: [UInt8](item.record.body))
                }
            } catch let error as RelayClientError {
                throw Self.relayError(error, connection.address, queued: remaining)
            }
            try write { db in try store.removePending(item.id, db) }
            remaining -= 1
        }
    }

    /// Sends whatever earlier commands left queued, for every contact. Errors are returned, not
    /// thrown: reading must not fail because some other contact's relay is down.
    func flushAll(pool: RelayPool) async -> [ReadEvent] {
        guard let ids = try? read({ db in try Int64.fetchAll(db, sql: "SELECT DISTINCT contact_id FROM outbox") }) else { return [] }
        var events: [ReadEvent] = []
        for id in ids {
            do { try await flush(contact: id, pool: pool) } catch {
                events.append(ReadEvent(kind: .warning, contact: nil, text: "\(error)"))
            }
        }
        return events
    }

    /// Fetches, decrypts, records and acknowledges every waiting message (from one contact, or
    /// all), and completes pairings whose confirmations have arrived.
    public func read(from name: String? = nil) async throws -> [ReadEvent] {
        let pool = RelayPool(group: group)
        var events = await flushAll(pool: pool)
        let (contacts, invitations) = try read { db in (try store.contacts(db), try store.invitations(db)) }
        if let name, !contacts.contains(where: { Names.same($0.record.name, name) }) {
            await pool.closeAll()
            throw ClientError.unknownContact(name)
        }
        var firstError: ClientError?
        let selected = contacts.filter { c in name.map { Names.same(c.record.name, $0) } ?? true }
        var inboxes: [(Inbox, Bool)] = selected.map { ($0.record.inbox, false) }
        let (live, expired) = (invitations.filter { !isExpired($0.record) }, invitations.filter { isExpired($0.record) })
        if name == nil { inboxes += live.map { ($0.record.inbox, true) } }
        if name == nil { await withdraw(expired, pool: pool) }
        for (inbox, _) in inboxes {
            do {
                let keys = try InboxKeys(inbox)
                let connection = try await pool.connection(inbox.relay, lane: keys.recipientId)
                try await pool.authorise(.recipient, keys.recipientId, key: keys.key, on: connection)
                while let delivery = try await connection.getMessage(keys.recipientId) {
                    // A relay that answers with another queue's message is not followed.
                    guard delivery.recipient == keys.recipientId else {
                        events.append(Self.wrongQueueEvent)
                        break
                    }
                    events += try await process(delivery, connection: connection)
                    try await connection.acknowledge(keys.recipientId, seq: delivery.seq)
                }
            } catch let error as ClientError {
                firstError = firstError ?? error
            } catch let error as RelayClientError {
                if case .relay(.noQueue) = error {
                    events.append(ReadEvent(kind: .warning, contact: nil, text: "a queue no longer exists at its relay"))
                } else {
                    firstError = firstError ?? .relayUnreachable(relay: inbox.relay, why: error.reason, queued: 0)
                }
            }
        }
        // Groups: pairings between members, held messages, and anything queued while reading.
        events += await groupFollowUps(pool: pool)
        events += await flushAll(pool: pool)
        events += (try? requestEscalations()) ?? []
        await pool.closeAll()
        // Overdue check-ins are judged after the deliveries: an alert or notice that just
        // arrived settles them.
        events += (try? overdueEvents(reminders: false)) ?? []
        events.sort { $0.kind.urgency < $1.kind.urgency }
        if let firstError, events.isEmpty { throw firstError }
        if let firstError { events.append(ReadEvent(kind: .warning, contact: nil, text: firstError.description)) }
        return events
    }

    static let wrongQueueEvent = ReadEvent(
        kind: .security, contact: nil,
        text: "the relay answered with a message for another queue; it was ignored (a faulty or hostile relay)")
    static let backwardsNote = "the relay's message numbers went backwards (restored from a backup?); delivered all the same"

    /// An invitation past its expiry (with a day's grace for a reply already in flight).
    func isExpired(_ i: InvitationRecord) -> Bool {
        i.expires != 0 && now() >= i.expires + Self.invitationReplyGrace
    }

    /// Deletes expired invitations: their queue at the relay, then their one-time secrets.
    /// Best effort at the relay; the secrets go regardless, so the invitation cannot be used.
    func withdraw(_ expired: [ClientStore.Row<InvitationRecord>], pool: RelayPool) async {
        for row in expired {
            if let keys = try? InboxKeys(row.record.inbox), let connection = try? await pool.connection(row.record.inbox.relay, lane: keys.recipientId) {
                try? await pool.authorise(.recipient, keys.recipientId, key: keys.key, on: connection)
                try? await connection.deleteQueue(keys.recipientId)
            }
            try? write { db in try store.deleteInvitation(row.id, db) }
        }
    }

    /// Handles one delivered body on whichever queue it arrived. The caller acknowledges it
    /// afterwards; everything that must survive a crash is committed before this returns.
    func process(_ delivery: RelayReply.Delivery, connection: RelayConnection) async throws -> [ReadEvent] {
        let rid = Data(delivery.recipient.bytes)
        guard var row = try read({ db in try store.contact(inbox: rid, db) }) else {
            let invitations = try read { db in try store.invitations(db) }
            guard let invitation = invitations.first(where: { $0.record.inbox.recipientId == rid }) else { return [] }
            return try await completePairing(delivery.body, relaySeq: delivery.seq, invitation: invitation, connection: connection)
        }
        // The relay's `seq` is not trusted: duplicates are recognised end to end (the ratchet,
        // the fingerprints of recent envelopes, alert ids), and nothing about a delivery is
        // recorded before it authenticates. A `seq` that goes backwards (a relay restored from
        // a backup) is reported, and the message is still opened.
        let name = row.record.name
        let previousSeq = row.record.lastRelaySeq
        let backwards = previousSeq != 0 && delivery.seq < previousSeq
        if (try? Envelope.kind(of: delivery.body)) == .alert {
            return try processAlert(delivery.body, row: row, relaySeq: delivery.seq)
        }
        var ratchet = try Ratchet(serialized: SecureBytes(copying: [UInt8](row.record.ratchet)))
        let fingerprint = Data(try BLAKE2b.hash(delivery.body, outputLength: 16))
        let content: Content
        do {
            guard try Envelope.kind(of: delivery.body) == .message else {
                // A confirmation on a paired contact's queue: the acceptor's own retry (the same
                // bytes) passes quietly; another one is someone else using the same invitation.
                guard try Envelope.kind(of: delivery.body) == .confirmation,
                    row.record.recentMessages?.contains(fingerprint) != true
                else { return [] }
                return [
                    ReadEvent(
                        kind: .security, contact: name,
                        text: "an unexpected reply to the invitation that \(name) accepted arrived: someone else may have tried to use it "
                            + "(intercepted or shared), or the relay made it up; it cannot be checked, and it was refused. \(name) is still "
                            + "paired: compare safety numbers with `belay verify \(name)`")
                ]
            }
            if row.record.recentMessages?.contains(fingerprint) == true {
                // These exact bytes were authenticated before, so its key is used up and the
                // ratchet would refuse it like a forgery. Redelivered under a `seq` already
                // seen (an interrupted read), it is passed over quietly; under a new one the
                // relay has replayed it, and the person is told.
                if delivery.seq <= previousSeq { return [] }
                return [
                    ReadEvent(
                        kind: .warning, contact: name,
                        text: "a message already received arrived again (resent after an interruption, or replayed by the relay) and was ignored")
                ]
            }
            content = try Envelope.open(delivery.body, with: &ratchet)
        } catch let error as E2EError {
            try write { db in try store.updateContact(row, db) }
            return [ReadEvent(kind: .warning, contact: name, text: "a message was rejected and dropped: \(error)")]
        }
        var notes: [String] = []
        let expected = row.record.receivedSequence + 1
        // Sequence 0 is a body sealed ahead and released later by the relay (a roster request's
        // later tier): outside the numbering, so that one never released leaves no gap.
        if content.sequence != 0 {
            if content.sequence > expected {
                notes.append("\(content.sequence - expected) earlier message(s) missing")
            } else if content.sequence < expected {
                notes.append("arrived late (out of order)")
            }
            row.record.receivedSequence = max(row.record.receivedSequence, content.sequence)
        }
        row.record.lastRelaySeq = delivery.seq
        if backwards { notes.append(Self.backwardsNote) }
        row.record.recentMessages = Array(((row.record.recentMessages ?? []) + [fingerprint]).suffix(Self.maxRecentMessagesPerContact))
        row.record.ratchet = Data(try ratchet.serialized().unprotectedCopy())
        let received = now() * 1000
        var event: ReadEvent
        switch content.kind {
        case .hello:
            row.record.awaitingHello = false
            event = ReadEvent(kind: .paired, contact: name, text: "paired: you can now send messages")
        case .text:
            let text = String(decoding: content.body, as: UTF8.self)
            event = ReadEvent(
                kind: .message, contact: name, text: text,
                sentAt: content.sentAt, receivedAt: received, sequence: content.sequence, notes: notes)
        case .alert:
            guard let alert = alertEvent(content, contact: &row.record, received: received) else {
                try write { [row] db in try store.updateContact(row, db) }
                return [ReadEvent(kind: .warning, contact: name, text: "an alert was delivered again and not shown twice")]
            }
            event = alert
            event.sequence = content.sequence
            event.notes = notes
        case .checkin:
            var events = noticeEvents(content, contact: &row.record, received: received)
            let record = row
            try write { db in
                try store.updateContact(record, db)
                for i in events.indices where events[i].kind == .alert {
                    events[i].historyId = try store.appendHistory(
                        HistoryEntry(
                            direction: .incoming, kind: "alert", sequence: content.sequence,
                            sentAt: content.sentAt, receivedAt: received, text: events[i].text,
                            shown: false), contact: record.id, db)
                }
            }
            return events
        case .answer:
            let record = row
            try write { db in try store.updateContact(record, db) }
            return try answerEvents(content, from: record.record)
        case .group:
            let record = row
            return try write { db in
                try store.updateContact(record, db)
                return try groupEvents(content, from: record.record, notes: notes, received: received, db)
            }
        case .introduction:
            let record = row
            return try write { db in
                try store.updateContact(record, db)
                return try introductionEvents(content, from: record.record, db)
            }
        }
        let record = row
        let recordsHistory = content.kind == .text || content.kind == .alert
        event.historyId = try write { db in
            try store.updateContact(record, db)
            guard recordsHistory else { return nil }
            return try store.appendHistory(
                HistoryEntry(
                    direction: .incoming, kind: content.kind == .alert ? "alert" : "text",
                    sequence: content.sequence, sentAt: content.sentAt, receivedAt: received,
                    text: event.text, shown: false), contact: record.id, db)
        }
        return [event]
    }

    /// Marks messages as shown, after the caller has printed them.
    public func markShown(_ events: [ReadEvent]) throws {
        let ids = Set(events.compactMap(\.historyId))
        let groupIds = Set(events.compactMap(\.groupHistoryId))
        guard !ids.isEmpty || !groupIds.isEmpty else { return }
        try write { db in
            for g in try store.groups(db) where !groupIds.isEmpty {
                for (id, entry) in try store.groupHistory(group: g.id, db) where groupIds.contains(id) && entry.shown == false {
                    var e = entry
                    e.shown = true
                    try store.updateGroupHistory(id: id, group: g.id, e, db)
                }
            }
            for (id, contact, entry) in try store.historyRows(db) where ids.contains(id) && entry.shown == false {
                var e = entry
                e.shown = true
                try store.updateHistory(id: id, contact: contact, e, db)
            }
        }
    }

    /// Messages recorded by an earlier read that stopped before printing them (a crash, a kill),
    /// so that they are shown now rather than never.
    public func unshown(from name: String? = nil) throws -> [ReadEvent] {
        try read { db in
            let contacts = Dictionary(uniqueKeysWithValues: try store.contacts(db).map { ($0.id, $0.record.name) })
            var groupEvents: [ReadEvent] = []
            for g in try store.groups(db) where name == nil {
                for (id, e) in try store.groupHistory(group: g.id, db) where e.direction == .incoming && e.shown == false {
                    var event = ReadEvent(
                        kind: e.kind == "request" ? .request : .group, contact: nil, text: e.text, sentAt: e.sentAt,
                        receivedAt: e.receivedAt, notes: ["recorded before an interrupted read; it may have been shown once already"],
                        group: g.record.localName)
                    event.groupHistoryId = id
                    groupEvents.append(event)
                }
            }
            return try groupEvents
                + store.historyRows(db).compactMap { id, contact, e in
                    guard e.direction == .incoming, e.shown == false, let who = contacts[contact] else { return nil }
                    if let name, !Names.same(who, name) { return nil }
                    return ReadEvent(
                        kind: e.kind == "alert" ? .alert : .message, contact: who, text: e.text, sentAt: e.sentAt,
                        receivedAt: e.receivedAt, sequence: e.sequence,
                        notes: ["recorded before an interrupted read; it may have been shown once already"], historyId: id)
                }
        }
    }
}
