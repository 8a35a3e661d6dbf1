import BelayE2E
import BelaySodium
import BelayWire
import Foundation
import GRDB

/// Recording what a relay delivered: a batch of deliveries from one queue (what the relay
/// pushed at once) in one transaction. The caller acknowledges them only after this returns,
/// so everything that must survive a crash is committed first: a crash before the commit
/// leaves the old ratchet and every delivery still at the relay; one after it leaves deliveries
/// the relay sends again, which are recognised (`recentMessages`) and recorded once.
extension Agent {
    /// Handles one delivered body on whichever queue it arrived.
    func process(_ delivery: RelayReply.Delivery, connection: RelayConnection) async throws -> [ReadEvent] {
        try await process([delivery], connection: connection)
    }

    /// Handles deliveries from one queue, in order. A contact's messages are recorded in one
    /// transaction, with its ratchet restored and saved once; replies on an invitation's queue
    /// complete the pairing one at a time (after which the queue is the new contact's).
    func process(_ deliveries: [RelayReply.Delivery], connection: RelayConnection) async throws -> [ReadEvent] {
        guard let queue = deliveries.first?.recipient else { return [] }
        precondition(deliveries.allSatisfy { $0.recipient == queue }, "a batch of deliveries from more than one queue")
        let rid = Data(queue.bytes)
        var events: [ReadEvent] = []
        var rest = deliveries[...]
        while let first = rest.first {
            if let id = try read({ db in try store.contactId(inbox: rid, db) }) {
                let batch = Array(rest)
                return try events
                    + write { db in
                        guard var contact = try OpenContact(id: id, store, db) else { return [] }
                        var recorded: [ReadEvent] = []
                        for delivery in batch {
                            recorded += try receive(delivery, into: &contact, db)
                            // Deleted while its messages were recorded: the rest have nowhere to go.
                            if contact.isGone { break }
                        }
                        try contact.save(store, db)
                        if !contact.isGone { try store.trimHistory(contact: id, db) }
                        if let hook = beforeCommittingDeliveries { try hook(batch.count) }
                        return recorded
                    }
            }
            let invitations = try read { db in try store.invitations(db) }
            if let invitation = invitations.first(where: { $0.record.inbox.recipientId == rid }) {
                events += try await completePairing(first.body, relaySeq: first.seq, invitation: invitation, connection: connection)
            }
            rest = rest.dropFirst()
        }
        return events
    }

    /// Records one delivery to a contact's queue inside the batch's transaction.
    private func receive(_ delivery: RelayReply.Delivery, into contact: inout OpenContact, _ db: Database) throws -> [ReadEvent] {
        // The relay's `seq` is not trusted: duplicates are recognised end to end (the ratchet,
        // the fingerprints of recent envelopes, alert ids), and nothing about a delivery is
        // recorded before it authenticates. A `seq` that goes backwards (a relay restored from
        // a backup) is reported, and the message is still opened.
        let name = contact.record.name
        let previousSeq = contact.record.lastRelaySeq
        let backwards = previousSeq != 0 && delivery.seq < previousSeq
        if (try? Envelope.kind(of: delivery.body)) == .alert {
            return try processAlert(delivery.body, contact: &contact.row, relaySeq: delivery.seq, db)
        }
        let fingerprint = Data(try BLAKE2b.hash(delivery.body, outputLength: 16))
        let content: Content
        do {
            guard try Envelope.kind(of: delivery.body) == .message else {
                // A confirmation on a paired contact's queue: the acceptor's own retry (the same
                // bytes) passes quietly; another one is someone else using the same invitation.
                guard try Envelope.kind(of: delivery.body) == .confirmation,
                    contact.record.recentMessages?.contains(fingerprint) != true
                else { return [] }
                return [
                    ReadEvent(
                        kind: .security, contact: name,
                        text: "an unexpected reply to the invitation that \(name) accepted arrived: someone else may have tried to use it "
                            + "(intercepted or shared), or the relay made it up; it cannot be checked, and it was refused. \(name) is still "
                            + "paired: compare safety numbers with `belay verify \(name)`")
                ]
            }
            if contact.record.recentMessages?.contains(fingerprint) == true {
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
            content = try contact.withRatchet { ratchet in try Envelope.open(delivery.body, with: &ratchet) }
        } catch let error as E2EError {
            return [ReadEvent(kind: .warning, contact: name, text: "a message was rejected and dropped: \(error)")]
        }
        var notes: [String] = []
        let expected = contact.record.receivedSequence + 1
        // Sequence 0 is a body sealed ahead and released later by the relay (a roster request's
        // later tier): outside the numbering, so that one never released leaves no gap.
        if content.sequence != 0 {
            if content.sequence > expected {
                notes.append("\(content.sequence - expected) earlier message(s) missing")
            } else if content.sequence < expected {
                notes.append("arrived late (out of order)")
            }
            contact.row.record.receivedSequence = max(contact.record.receivedSequence, content.sequence)
        }
        contact.row.record.lastRelaySeq = delivery.seq
        if backwards { notes.append(Self.backwardsNote) }
        contact.row.record.recentMessages = Array(((contact.record.recentMessages ?? []) + [fingerprint]).suffix(Self.maxRecentMessagesPerContact))
        let received = now() * 1000
        var event: ReadEvent
        switch content.kind {
        case .hello:
            contact.row.record.awaitingHello = false
            event = ReadEvent(kind: .paired, contact: name, text: "paired: you can now send messages")
        case .text:
            event = ReadEvent(
                kind: .message, contact: name, text: String(decoding: content.body, as: UTF8.self),
                sentAt: content.sentAt, receivedAt: received, sequence: content.sequence, notes: notes)
        case .alert:
            guard let alert = alertEvent(content, contact: &contact.row.record, received: received) else {
                return [ReadEvent(kind: .warning, contact: name, text: "an alert was delivered again and not shown twice")]
            }
            event = alert
            event.sequence = content.sequence
            event.notes = notes
        case .checkin:
            var events = noticeEvents(content, contact: &contact.row.record, received: received)
            for i in events.indices where events[i].kind == .alert {
                events[i].historyId = try store.appendHistory(
                    HistoryEntry(
                        direction: .incoming, kind: "alert", sequence: content.sequence,
                        sentAt: content.sentAt, receivedAt: received, text: events[i].text,
                        shown: false), contact: contact.id, db, trimming: false)
            }
            return events
        case .answer:
            return try answerEvents(content, from: contact.record, db)
        case .group:
            // Group and introduction handling opens contacts itself, this one included (a reply
            // to it advances its ratchet): it gets the saved record, and the batch goes on from
            // what it leaves.
            return try contact.handOver(store, db) { record in
                try groupEvents(content, from: record, notes: notes, received: received, db)
            }
        case .introduction:
            return try contact.handOver(store, db) { record in try introductionEvents(content, from: record, db) }
        }
        if content.kind == .text || content.kind == .alert {
            event.historyId = try store.appendHistory(
                HistoryEntry(
                    direction: .incoming, kind: content.kind == .alert ? "alert" : "text",
                    sequence: content.sequence, sentAt: content.sentAt, receivedAt: received,
                    text: event.text, shown: false), contact: contact.id, db, trimming: false)
        }
        return [event]
    }
}
