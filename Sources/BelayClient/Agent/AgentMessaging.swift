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
        let jitter = sendJitter
        if jitter > .zero { await pause(Timing.uniform(upTo: jitter, random: random)) }
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
                        sentAt: sentAt, receivedAt: 0, text: text), contact: row.id, db, trimming: false)
            }
        }
        if items.contains(where: { $0.history != nil }) { try store.trimHistory(contact: row.id, db) }
        row.record.ratchet = Data(try ratchet.serialized().unprotectedCopy())
        try store.updateContact(row, db)
    }

    /// Most outbox messages sent before waiting for the relay's answers. They leave in one
    /// transport message, the relay commits them together, and they are deleted from the outbox
    /// in one transaction. A crash between the relay's OK and that transaction sends them again
    /// later, and the receiver recognises each as a second copy while it is among the
    /// `maxRecentMessagesPerContact` fingerprints it keeps, so this stays well below that.
    static let sendWindow = 16

    /// Delivers everything in a contact's outbox, oldest first, a window at a time; each is
    /// deleted once the relay says OK. On a failure the rest stay queued and the error says how
    /// many.
    func flush(contact id: Int64, pool existing: RelayPool? = nil) async throws {
        guard let pool = existing else { return try await withRelayPool { try await flush(contact: id, pool: $0) } }
        let (row, pending) = try read { db in (try store.contact(id: id, db), try store.pending(contact: id, db)) }
        guard let record = row?.record, !pending.isEmpty else { return }
        let outlet = try OutletKeys(record.outlet)
        var remaining = pending.count
        let connection: RelayConnection
        do { connection = try await pool.connection(outlet.relay, lane: outlet.senderId) } catch let error as ClientError {
            throw error.keeping(remaining)
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
        var index = 0
        while index < pending.count {
            if index > 0, let hook = beforeFollowingSend { await hook(index) }
            // One at a time until the queue is known to be secured, so that AUTH can only be
            // the answer to the first send after the inviter secured it.
            let window = Array(pending[index..<min(index + (proven ? Self.sendWindow : 1), pending.count)])
            let sends = window.map { RelayCommand.send(sender: outlet.senderId, body: [UInt8]($0.record.body)) }
            var replies: [RelayReply]
            do {
                replies = try await connection.pipeline(sends)
                if !proven, replies.first == .error(.auth) {
                    // The inviter read our confirmation and secured its queue with our key
                    // between two of our sends. Prove the key and send again; if the queue was
                    // secured with someone else's key, the proof fails with AUTH as before.
                    try await pool.authorise(.sender, outlet.senderId, key: outlet.key, on: connection)
                    proven = true
                    replies = try await connection.pipeline(sends)
                }
            } catch let error as RelayClientError {
                throw Self.relayError(error, connection.address, queued: remaining)
            }
            let delivered = zip(window, replies).filter { $0.1 == .ok }.map(\.0.id)
            if !delivered.isEmpty { try write { db in for id in delivered { try store.removePending(id, db) } } }
            remaining -= delivered.count
            if let refused = replies.first(where: { $0 != .ok }) {
                // Those after a refused one may have gone through (a queue with room for a
                // smaller message): they are delivered, and the refused one stays queued.
                let error: RelayClientError = if case let .error(code) = refused { .relay(code) } else { .unexpectedReply("\(refused)") }
                throw Self.relayError(error, connection.address, queued: remaining)
            }
            index += window.count
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
    /// all), and completes pairings whose confirmations have arrived. Messages are recorded a
    /// relay batch at a time, one transaction each, and acknowledged after it commits.
    public func read(from name: String? = nil) async throws -> [ReadEvent] {
        let pushes = PushedReplies()
        let pool = RelayPool(connector: relayConnector, onPush: { lane, replies in pushes.add(replies, for: lane) })
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
                try await drain(keys, on: connection, pushes: pushes, into: &events)
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
