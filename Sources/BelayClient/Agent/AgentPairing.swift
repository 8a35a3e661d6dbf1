import BelayE2E
import BelaySodium
import BelayWire
import Foundation

extension Agent {
    /// Longest invitation lifetime: an unanswered invitation holds one-time secrets.
    public static let maxInvitationLifetime: UInt64 = 30 * 24 * 3600
    /// An invitation without `--expires` lasts a week: long enough to reach someone, short
    /// enough that one lost in a drawer or a mailbox cannot be used much later.
    public static let defaultInvitationLifetime: UInt64 = 7 * 24 * 3600
    /// How long after its expiry an unanswered invitation's queue is kept, for a reply sent
    /// just before the expiry; after that, `read` deletes it.
    static let invitationReplyGrace: UInt64 = 24 * 3600

    /// Creates a receiving queue on `relay` and returns a one-time invitation for it. `token`:
    /// the organisation token for that relay, kept for later commands once it is accepted (nil:
    /// the one kept, if any).
    public func invite(relay: RelayAddress, name: String?, lifetime: UInt64?, token: String? = nil) async throws -> String {
        try await invite(relay: relay, name: name, lifetime: lifetime, expecting: nil, token: token, command: "invite")
    }

    /// `expecting`: the only identity allowed to answer (see `InvitationRecord.expectedIdentity`).
    /// `command`: what to suggest with `--token` if the relay wants a token (nil when this is
    /// part of another command).
    func invite(
        relay: RelayAddress, name: String?, lifetime: UInt64?, expecting: Data?, token: String? = nil, command: String? = nil
    ) async throws -> String {
        let name = try name.map(Self.validate(name:))
        _ = try token.map(Self.validate(token:))
        if let lifetime, lifetime == 0 || lifetime > Self.maxInvitationLifetime {
            throw ClientError.invalidInput("an invitation may last from 1 second to 30 days")
        }
        let lifetime = lifetime ?? Self.defaultInvitationLifetime
        let pool = RelayPool(connector: relayConnector)
        let recipientKey = try Ed25519.SigningKey.generate()
        let ids: (recipient: EntityID, sender: EntityID)
        let connection = try await pool.connection(relay)
        do {
            _ = try await checkPolicy(on: connection)
            ids = try await createQueue(on: connection, relay: relay, recipientKey: recipientKey, token: token, command: command)
        } catch let error as RelayClientError {
            await pool.closeAll()
            throw Self.relayError(error, relay)
        } catch {
            await pool.closeAll()
            throw error
        }
        await pool.closeAll()
        let oneTime = try X25519.KeyPair.generate()
        let pq = try PQKEM.KeyPair.generate()
        let created = now()
        let expires = created + lifetime
        let invitation = try Invitation.make(
            queue: QueueRef(relay: relay, senderId: ids.sender), identity: identity,
            oneTimeKey: oneTime.publicKey, pqKey: pq.publicKey, expires: expires)
        let record = InvitationRecord(
            name: name, text: invitation.text, oneTimeSecret: Data(oneTime.secretKey.unprotectedCopy()),
            pqSeed: Data(pq.seedBytes.unprotectedCopy()),
            inbox: Inbox(
                relay: relay.description, recipientId: Data(ids.recipient.bytes), senderId: Data(ids.sender.bytes),
                recipientSeed: Data(try recipientKey.seed.unprotectedCopy())),
            createdAt: created, expires: expires, expectedIdentity: expecting)
        try write { db in try store.insertInvitation(record, db) }
        return invitation.text
    }

    public struct AcceptOutcome: Sendable {
        /// Set when the contact was saved but the confirmation could not be delivered yet.
        public var deliveryError: ClientError?
    }

    /// Pairs with the inviter: a queue of our own (on `relay`, or the inviter's relay), the
    /// confirmation and the hello, then the contact is saved and can be written to at once.
    /// `token`: as for `invite`, for the relay of our own queue.
    public func accept(_ text: String, name: String, relay: RelayAddress?, token: String? = nil) async throws -> AcceptOutcome {
        try await accept(text, name: name, relay: relay, token: token, command: "accept")
    }

    func accept(_ text: String, name rawName: String, relay: RelayAddress?, token: String?, command: String?) async throws -> AcceptOutcome {
        let name = try Self.validate(name: rawName)
        _ = try token.map(Self.validate(token:))
        let invitation: Invitation
        do { invitation = try Invitation(text: text, now: now()) } catch let error as E2EError {
            throw ClientError.invalidInput("this invitation cannot be used: \(error)")
        }
        guard invitation.inviter != identity.publicIdentity else { throw ClientError.invalidInput("this is your own invitation") }
        let existing = try read { db in try store.contact(named: name, db) }
        if let existing {
            if [UInt8](existing.record.identity) != invitation.inviter.bytes {
                if existing.record.verified { throw ClientError.identityChanged(name: name, verified: true) }
                // Accepting never replaces a contact: the person picks another name, or forgets
                // the old contact first, knowingly.
                throw ClientError.contactExists(name)
            }
        }

        let ownRelay = relay ?? invitation.queue.relay
        let pool = RelayPool(connector: relayConnector)
        let recipientKey = try Ed25519.SigningKey.generate()
        let replySender = try Ed25519.SigningKey.generate()
        let ids: (recipient: EntityID, sender: EntityID)
        let connection = try await pool.connection(ownRelay)
        do {
            _ = try await checkPolicy(on: connection)
            ids = try await createQueue(on: connection, relay: ownRelay, recipientKey: recipientKey, token: token, command: command)
            // Secured before anyone learns its sender id: only the inviter will hold this key.
            try await connection.secure(recipient: ids.recipient, senderKey: replySender.publicKey)
        } catch let error as RelayClientError {
            await pool.closeAll()
            throw Self.relayError(error, ownRelay)
        } catch {
            await pool.closeAll()
            throw error
        }
        await pool.closeAll()

        let ourSender = try Ed25519.SigningKey.generate()
        let (confirmation, ratchetStart) = try Pairing.accept(
            invitation, identity: identity, replyQueue: QueueRef(relay: ownRelay, senderId: ids.sender),
            replySenderSeed: try replySender.seed, inviterQueueSenderKey: ourSender.publicKey)
        var ratchet = ratchetStart
        let hello = try Envelope.seal(Content(kind: .hello, sequence: 1, sentAt: now() * 1000, body: []), with: &ratchet)
        let record = ContactRecord(
            name: name, identity: Data(invitation.inviter.bytes), verified: false, pairedAt: now(),
            ratchet: Data(try ratchet.serialized().unprotectedCopy()),
            inbox: Inbox(
                relay: ownRelay.description, recipientId: Data(ids.recipient.bytes), senderId: Data(ids.sender.bytes),
                recipientSeed: Data(try recipientKey.seed.unprotectedCopy())),
            outlet: Outlet(
                relay: invitation.queue.relay.description, senderId: Data(invitation.queue.senderId.bytes),
                senderSeed: Data(try ourSender.seed.unprotectedCopy())),
            lastRelaySeq: 0, sentSequence: 1, receivedSequence: 0, awaitingHello: false)
        let contactId = try write { db in
            // Only the same person pairing again (same identity) gets here with an existing entry.
            if let existing { try store.deleteContact(existing.id, db) }
            let id = try store.insertContact(record, db)
            try store.enqueue(PendingSend(body: Data(Envelope.confirmation(confirmation)), createdAt: now()), contact: id, db)
            try store.enqueue(PendingSend(body: Data(hello), createdAt: now()), contact: id, db)
            return id
        }
        do {
            try await flush(contact: contactId)
            return AcceptOutcome(deliveryError: nil)
        } catch ClientError.relayRefused(let why) where why == RelayErrorCode.auth.description {
            // The inviter's queue is already secured for someone else: the invitation was used.
            try write { db in try store.deleteContact(contactId, db) }
            throw ClientError.invalidInput("this invitation has already been used; ask for a new one")
        } catch let error as ClientError {
            return AcceptOutcome(deliveryError: error)
        }
    }

    /// Completes an invitation from a confirmation that arrived on its queue. Returns the new
    /// contact's row, or an event explaining why the confirmation was refused.
    func completePairing(
        _ body: [UInt8], relaySeq: UInt64, invitation row: ClientStore.Row<InvitationRecord>,
        connection: RelayConnection
    ) async throws -> [ReadEvent] {
        let rec = row.record
        let pending: PendingInvitation
        do {
            let invitation = try Invitation(text: rec.text, now: 0)
            pending = PendingInvitation(
                invitation: invitation,
                oneTimeKey: try X25519.KeyPair(secretKey: SecureBytes(copying: [UInt8](rec.oneTimeSecret))),
                pqKey: try PQKEM.KeyPair(seed: SecureBytes(copying: [UInt8](rec.pqSeed))))
        } catch {
            throw ClientError.stateDamaged("a pending invitation is damaged")
        }
        if rec.expires != 0, now() >= rec.expires {
            return [ReadEvent(kind: .warning, contact: rec.name, text: "a reply to an expired invitation was refused")]
        }
        guard Envelope.Kind(rawValue: body.first ?? 0) == .confirmation,
            let (confirmation, ratchet) = try? Pairing.complete(Array(body.dropFirst()), pending: pending, identity: identity)
        else {
            return [ReadEvent(kind: .warning, contact: rec.name, text: "a message on an invitation's queue did not authenticate and was dropped")]
        }
        if let expected = rec.expectedIdentity, [UInt8](expected) != confirmation.acceptor.bytes {
            return [
                ReadEvent(
                    kind: .security, contact: rec.name,
                    text: "an invitation made for \(rec.name ?? "a group member") was answered by someone else (whoever carried it, "
                        + "or someone who intercepted it); it was refused, and \(rec.name ?? "they") can still answer it")
            ]
        }
        let allNames = try read { db in try store.contacts(db) }
        var name = rec.name ?? ""
        if name.isEmpty { name = Names.unique("contact", among: allNames.map(\.record.name), numberingFrom: 1) }
        var events: [ReadEvent] = []
        let existing = allNames.first { Names.same($0.record.name, name) }
        if let existing, [UInt8](existing.record.identity) != confirmation.acceptor.bytes {
            if existing.record.verified {
                return [
                    ReadEvent(
                        kind: .security, contact: name,
                        text: ClientError.identityChanged(name: name, verified: true).description + " "
                            + (ClientError.identityChanged(name: name, verified: true).hint ?? ""))
                ]
            }
            // Accepting never replaces a contact: whoever answered this invitation is kept apart
            // under a new name, and the person decides.
            let original = name
            name = Names.unique(original, among: allNames.map(\.record.name), numberingFrom: 2)
            events.append(
                ReadEvent(
                    kind: .security, contact: name,
                    text: "someone with a different identity answered an invitation named \(original); \(original) is kept as it was "
                        + "and the newcomer is \(name). If \(original) did not reset their device, the invitation may have been "
                        + "intercepted: compare safety numbers (`belay verify`) before trusting either, and `belay forget` the wrong one"))
        }
        let inbox = try InboxKeys(rec.inbox)
        do {
            try await connection.secure(recipient: inbox.recipientId, senderKey: confirmation.inviterQueueSenderKey)
        } catch let error as RelayClientError {
            throw Self.relayError(error, connection.address)
        }
        let ourSender = try Ed25519.SigningKey(seed: confirmation.replySenderSeed)
        let record = ContactRecord(
            name: name, identity: Data(confirmation.acceptor.bytes), verified: false, pairedAt: now(),
            ratchet: Data(try ratchet.serialized().unprotectedCopy()), inbox: rec.inbox,
            outlet: Outlet(
                relay: confirmation.replyQueue.relay.description, senderId: Data(confirmation.replyQueue.senderId.bytes),
                senderSeed: Data(try ourSender.seed.unprotectedCopy())),
            lastRelaySeq: relaySeq, sentSequence: 0, receivedSequence: 0, awaitingHello: true,
            // The confirmation's fingerprint: a repeat of it is the acceptor retrying, anything
            // else arriving as a confirmation is someone else with the same invitation.
            recentMessages: [Data(try BLAKE2b.hash(body, outputLength: 16))])
        try write { db in
            // The same person pairing again (same identity) takes over their own entry; anyone
            // else was given a new name above.
            if let existing, [UInt8](existing.record.identity) == confirmation.acceptor.bytes { try store.deleteContact(existing.id, db) }
            try store.insertContact(record, db)
            try store.deleteInvitation(row.id, db)
        }
        events.append(ReadEvent(kind: .paired, contact: name, text: "accepted your invitation"))
        return events
    }
}
