import BelayE2E
import BelaySodium
import BelayWire

/// Two people paired through a real invitation and confirmation, entirely in memory.
struct Peers {
    let inviter: Identity
    let acceptor: Identity
    var a: Ratchet  // inviter
    var b: Ratchet  // acceptor
    var nextSequence: [Bool: UInt64] = [true: 1, false: 1]

    static func queue() -> QueueRef {
        QueueRef(relay: RelayAddress(host: "relay.example", port: 7700, publicKey: [UInt8](repeating: 9, count: 32)), senderId: EntityID.random())
    }

    static func pendingInvitation(_ inviter: Identity, expires: UInt64 = 0) throws -> PendingInvitation {
        let oneTime = try X25519.KeyPair.generate()
        let pq = try PQKEM.KeyPair.generate()
        let invitation = try Invitation.make(queue: queue(), identity: inviter, oneTimeKey: oneTime.publicKey, pqKey: pq.publicKey, expires: expires)
        return PendingInvitation(invitation: invitation, oneTimeKey: oneTime, pqKey: pq)
    }

    static func pair() throws -> Peers {
        let inviter = try Identity.generate()
        let acceptor = try Identity.generate()
        let pending = try pendingInvitation(inviter)
        let received = try Invitation(text: pending.invitation.text, now: 1)
        let (body, b) = try Pairing.accept(
            received, identity: acceptor, replyQueue: queue(), replySenderSeed: SecureBytes.random(count: 32),
            inviterQueueSenderKey: Ed25519.SigningKey.generate().publicKey)
        let (_, a) = try Pairing.complete(body, pending: pending, identity: inviter)
        return Peers(inviter: inviter, acceptor: acceptor, a: a, b: b)
    }

    /// Seals a text message from the acceptor (`fromB`) or the inviter.
    mutating func seal(_ text: String, fromB: Bool) throws -> [UInt8] {
        let seq = nextSequence[fromB]!
        nextSequence[fromB] = seq + 1
        let content = Content(kind: .text, sequence: seq, sentAt: 0, body: Array(text.utf8))
        return fromB ? try Envelope.seal(content, with: &b) : try Envelope.seal(content, with: &a)
    }

    mutating func open(_ body: [UInt8], atB: Bool) throws -> String {
        let c = atB ? try Envelope.open(body, with: &b) : try Envelope.open(body, with: &a)
        return String(decoding: c.body, as: UTF8.self)
    }
}
