import BelayE2E
import BelaySodium
import BelayWire
import Foundation
import GRDB

/// What `belay introductions` lists.
public struct IntroductionSummary: Sendable, Codable, Equatable {
    public var id: String
    /// "offered" (waiting for your answer), "accepted", "declined", "withdrawn", "paired", or for
    /// introductions you made, "waiting" or "done".
    public var state: String
    /// Who introduced you, or for your own introductions, the two people.
    public var from: String
    public var note: String
    public var createdAt: UInt64
}

/// Warm introductions (`belay introduce A B`): a referral or a buddy assignment. The introducer
/// carries one invitation between two of its contacts once both have said yes; the relay sees an
/// ordinary pairing (docs/GROUPS.md).
extension Agent {
    /// Offers waiting for an answer that a client keeps; more are refused, so a contact cannot
    /// fill the state with offers.
    static let maxOpenOffers = 32
    static let maxOpenOffersPerIntroducer = 8

    public func introduce(_ a: String, _ b: String, note: String) async throws -> String {
        guard note.utf8.count <= IntroductionMessage.maxNoteLength else {
            throw ClientError.invalidInput("the note may be at most \(IntroductionMessage.maxNoteLength) bytes")
        }
        let id = SystemRandom().bytes(IntroductionMessage.idLength)
        let ids: [Int64] = try write { db in
            guard var first = try store.contact(named: a, db) else { throw ClientError.unknownContact(a) }
            guard var second = try store.contact(named: b, db) else { throw ClientError.unknownContact(b) }
            guard first.id != second.id else { throw ClientError.invalidInput("introduce two different people") }
            for row in [first, second] where row.record.awaitingHello { throw ClientError.notYetPaired(row.record.name) }
            try queue([(.introduction, IntroductionMessage.offer(id: id, note: note, first: true).encoded(), nil)], for: &first, db)
            try queue([(.introduction, IntroductionMessage.offer(id: id, note: note, first: false).encoded(), nil)], for: &second, db)
            try store.saveIntroduction(
                nil,
                IntroRecord(
                    id: Data(id), note: note, createdAt: now(),
                    role: .introducer(
                        .init(
                            a: first.record.identity, b: second.record.identity, aAnswer: nil, bAnswer: nil, invitation: nil, completed: false))), db)
            return [first.id, second.id]
        }
        let failed = await flushEach(ids)
        if !failed.isEmpty { throw ClientError.relayUnreachable(relay: "a contact's relay", why: "the offer is queued", queued: failed.count) }
        return Hex.encode(id)
    }

    public func introductions() throws -> [IntroductionSummary] {
        try read { db in
            let contacts = try contactsByIdentity(db)
            return try store.introductions(db).map { row in
                let r = row.record
                switch r.role {
                case let .introducer(i):
                    let names = [i.a, i.b].map { displayName($0, state: nil, contacts: contacts) }.joined(separator: " and ")
                    return IntroductionSummary(
                        id: Hex.encode([UInt8](r.id)), state: i.completed ? "done" : "waiting", from: "you: " + names,
                        note: r.note, createdAt: r.createdAt)
                case let .side(s):
                    let waiting = try store.invitations(db).contains { $0.record.text == s.ownInvitation }
                    let paired = s.paired || (s.ownInvitation != nil && !waiting)
                    let state = paired ? "paired" : s.withdrawn ? "withdrawn" : s.accepted.map { $0 ? "accepted" : "declined" } ?? "offered"
                    return IntroductionSummary(
                        id: Hex.encode([UInt8](r.id)), state: state, from: displayName(s.introducer, state: nil, contacts: contacts),
                        note: r.note, createdAt: r.createdAt)
                }
            }
        }
    }

    /// Answers an offer. Accepting as the first side makes the invitation the introducer will
    /// pass on; the second side's client pairs with it when it arrives.
    public func answerIntroduction(_ idText: String, accept: Bool, name: String? = nil) async throws {
        let name = try name.map(Self.validate(name:))
        let (row, side, introducer) = try read { db -> (ClientStore.Row<IntroRecord>, IntroRecord.Side, ClientStore.Row<ContactRecord>) in
            let prefix = idText.lowercased()
            let found = try store.introductions(db).filter { Hex.encode([UInt8]($0.record.id)).hasPrefix(prefix) && prefix.count >= 6 }
            guard found.count == 1, case let .side(side) = found[0].record.role, side.accepted == nil, !side.withdrawn else {
                throw ClientError.unknownIntroduction(idText)
            }
            guard let introducer = try contactsByIdentity(db)[side.introducer] else { throw ClientError.unknownIntroduction(idText) }
            return (found[0], side, introducer)
        }
        var invitation = ""
        if accept, side.first {
            let relay = try RelayAddress(parsing: introducer.record.inbox.relay)
            let placeholder = try read { db in try freeContactName(name ?? "via-\(introducer.record.name)", db) }
            invitation = try await invite(relay: relay, name: placeholder, lifetime: nil, expecting: nil)
        }
        try write { db in
            var updated = side
            updated.accepted = accept
            updated.name = name
            updated.ownInvitation = invitation.isEmpty ? nil : invitation
            var record = row.record
            record.role = .side(updated)
            try store.saveIntroduction(row, record, db)
            guard var contact = try store.contact(id: introducer.id, db) else { throw ClientError.unknownContact(introducer.record.name) }
            try queue(
                [(.introduction, IntroductionMessage.answer(id: [UInt8](row.record.id), accept: accept, invitation: invitation).encoded(), nil)],
                for: &contact, db)
        }
        _ = await flushEach([introducer.id])
    }

    func introductionEvents(_ content: Content, from sender: ContactRecord, _ db: Database) throws -> [ReadEvent] {
        guard let message = try? IntroductionMessage(decoding: content.body) else {
            return [ReadEvent(kind: .warning, contact: sender.name, text: "an introduction from \(sender.name) could not be read and was dropped")]
        }
        let existing = try store.introductions(db).first { $0.record.id == Data(message.id) }
        let id = Hex.encode(message.id)
        switch message {
        case let .offer(_, note, first):
            guard existing == nil else { return [] }
            let open = try store.introductions(db).compactMap { row -> IntroRecord.Side? in
                if case let .side(s) = row.record.role, s.accepted == nil, !s.withdrawn { s } else { nil }
            }
            guard open.count < Self.maxOpenOffers, open.filter({ $0.introducer == sender.identity }).count < Self.maxOpenOffersPerIntroducer else {
                return [
                    ReadEvent(
                        kind: .warning, contact: sender.name,
                        text: "\(sender.name) offered an introduction, but \(Self.maxOpenOffers) offers "
                            + "are already waiting for your answer; answer or decline some first")
                ]
            }
            try store.saveIntroduction(
                nil,
                IntroRecord(
                    id: Data(message.id), note: note, createdAt: now(),
                    role: .side(
                        .init(
                            introducer: sender.identity, first: first, accepted: nil, name: nil, withdrawn: false, paired: false))), db)
            return [
                ReadEvent(
                    kind: .introduction, contact: sender.name,
                    text: "\(sender.name) would like to introduce you to someone" + (note.isEmpty ? "" : ": \(note)"),
                    notes: ["you learn who only if you both accept: belay introduction accept \(id.prefix(8)) (or decline)"], id: id, from: sender.name)
            ]
        case let .answer(_, accept, invitation):
            guard let row = existing, case var .introducer(i) = row.record.role, !i.completed else { return [] }
            let isA = sender.identity == i.a
            guard isA || sender.identity == i.b else { return [] }
            if isA { i.aAnswer = accept } else { i.bAnswer = accept }
            if isA, accept, (try? Invitation(text: invitation, now: now()))?.inviter.bytes == [UInt8](sender.identity) { i.invitation = invitation }
            var contacts = try contactsByIdentity(db)
            var events: [ReadEvent] = []
            if !accept {
                i.completed = true
                let other = isA ? i.b : i.a
                if var row = contacts[other] { try queue([(.introduction, IntroductionMessage.withdrawn(id: message.id).encoded(), nil)], for: &row, db) }
                events.append(
                    ReadEvent(
                        kind: .introduction, contact: sender.name,
                        text: "\(sender.name) declined your introduction; the other person is told it will not go ahead", id: id))
            } else if i.aAnswer == true, i.bAnswer == true, let invitation = i.invitation, var a = contacts[i.a], var b = contacts[i.b] {
                i.completed = true
                try queue(
                    [
                        (
                            .introduction,
                            IntroductionMessage.named(
                                id: message.id, name: b.record.name,
                                identity: try PublicIdentity(bytes: [UInt8](b.record.identity))
                            ).encoded(), nil
                        )
                    ], for: &a, db)
                try queue(
                    [(.introduction, IntroductionMessage.forward(id: message.id, invitation: invitation, name: a.record.name).encoded(), nil)], for: &b, db)
                contacts[i.a] = a
                events.append(
                    ReadEvent(
                        kind: .introduction, contact: nil, text: "\(a.record.name) and \(b.record.name) both accepted your introduction; they are being paired",
                        id: id))
            }
            var record = row.record
            record.role = .introducer(i)
            try store.saveIntroduction(row, record, db)
            return events
        case let .forward(_, invitation, name):
            guard let row = existing, case var .side(s) = row.record.role, s.introducer == sender.identity, s.accepted == true, !s.first else { return [] }
            s.name = s.name ?? name
            // Paired by the follow-up after this read, as a group member's invitation is.
            s.toAccept = invitation
            var record = row.record
            record.role = .side(s)
            try store.saveIntroduction(row, record, db)
            return []
        case let .named(_, name, other):
            guard let row = existing, case var .side(s) = row.record.role, s.introducer == sender.identity, s.first else { return [] }
            s.name = s.name ?? name
            var record = row.record
            record.role = .side(s)
            try store.saveIntroduction(row, record, db)
            // Our invitation, still waiting for the other side, takes the introducer's name for them.
            if let own = s.ownInvitation, var invitation = try store.invitations(db).first(where: { $0.record.text == own }) {
                invitation.record.name = try freeContactName(s.name ?? name, db)
                // From now on only the person introduced can answer it.
                invitation.record.expectedIdentity = Data(other.bytes)
                try store.updateInvitation(invitation, db)
            }
            return []
        case .withdrawn:
            guard let row = existing, case var .side(s) = row.record.role, s.introducer == sender.identity else { return [] }
            s.withdrawn = true
            var record = row.record
            record.role = .side(s)
            try store.saveIntroduction(row, record, db)
            // Our invitation will never be passed on: expired now, so the next read deletes its
            // queue at the relay and its secrets here.
            if let own = s.ownInvitation, var invitation = try store.invitations(db).first(where: { $0.record.text == own }) {
                invitation.record.expires = 1
                try store.updateInvitation(invitation, db)
            }
            return [ReadEvent(kind: .introduction, contact: sender.name, text: "the introduction \(sender.name) offered will not go ahead", id: id)]
        }
    }
}

extension Agent {
    /// Pairs the second side of an introduction with the invitation passed on to it.
    /// How long a settled introduction (done, declined, withdrawn, paired) is listed.
    static let settledIntroductionKept: UInt64 = 30 * 24 * 3600

    func acceptIntroductions() async -> [ReadEvent] {
        guard let rows = try? read({ db in try store.introductions(db) }), !rows.isEmpty else { return [] }
        // Settled introductions go after a while: who introduced whom is not kept for ever.
        if rows.contains(where: { now() > $0.record.createdAt + Self.settledIntroductionKept }) { pruneIntroductions() }
        return await pairIntroduced()
    }

    private func pruneIntroductions() {
        try? write { db in
            let waiting = Set(try store.invitations(db).map(\.record.text))
            for row in try store.introductions(db) where now() > row.record.createdAt + Self.settledIntroductionKept {
                let settled: Bool
                switch row.record.role {
                case let .introducer(i): settled = i.completed
                // The first side is settled once its invitation was used (or withdrawn).
                case let .side(s): settled = s.paired || s.withdrawn || s.accepted == false || s.ownInvitation.map { !waiting.contains($0) } == true
                }
                // Anything, settled or not, goes after three times as long.
                if settled || now() > row.record.createdAt + 3 * Self.settledIntroductionKept { try store.deleteIntroduction(row.id, db) }
            }
        }
    }

    /// Pairs the second side of each accepted introduction with the invitation passed on to it.
    private func pairIntroduced() async -> [ReadEvent] {
        guard let rows = try? read({ db in try store.introductions(db) }) else { return [] }
        var events: [ReadEvent] = []
        for row in rows {
            guard case var .side(s) = row.record.role, let invitation = s.toAccept, !s.paired else { continue }
            do {
                let (name, introducer) = try read { db in (try freeContactName(s.name ?? "introduced", db), try contactsByIdentity(db)[s.introducer]) }
                // Our queue on our own relay (where our inbox from the introducer is).
                let relay = introducer.flatMap { try? RelayAddress(parsing: $0.record.inbox.relay) }
                let outcome = try await accept(invitation, name: name, relay: relay, token: nil, command: nil)
                // Paired even if the reply is still queued: the contact is saved, and accepting
                // again would make a second one.
                if let error = outcome.deliveryError {
                    events.append(ReadEvent(kind: .warning, contact: name, text: "paired with \(name); the reply is queued (\(error))"))
                }
                s.paired = true
                s.toAccept = nil
                var record = row.record
                record.role = .side(s)
                try write { db in try store.saveIntroduction(row, record, db) }
                events.append(ReadEvent(kind: .paired, contact: name, text: "paired with \(name) through an introduction"))
            } catch ClientError.invalidInput(let why) {
                // Used or expired: it will never work, so it is not tried again.
                s.toAccept = nil
                s.withdrawn = true
                var record = row.record
                record.role = .side(s)
                try? write { db in try store.saveIntroduction(row, record, db) }
                events.append(
                    ReadEvent(kind: .warning, contact: nil, text: "an introduction you accepted cannot be completed (\(why)); ask the introducer again"))
            } catch {
                events.append(ReadEvent(kind: .warning, contact: nil, text: "an accepted introduction is not paired yet (\(error)); the next read tries again"))
            }
        }
        return events
    }
}
