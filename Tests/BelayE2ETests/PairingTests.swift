import BelayE2E
import BelaySodium
import BelayWire
import Testing

@Suite struct PairingTests {
    @Test func anInvitationRoundTripsThroughTextAndIsSigned() throws {
        let inviter = try Identity.generate()
        let pending = try Peers.pendingInvitation(inviter, expires: 2_000)
        let text = pending.invitation.text
        #expect(text.hasPrefix("belay-invite:"))
        #expect(!text.contains("\n"))
        let parsed = try Invitation(text: "  \(text)\n", now: 1_999)
        #expect(parsed == pending.invitation)
        #expect(throws: E2EError.invitationExpired) { try Invitation(text: text, now: 2_000) }
    }

    @Test func anAlteredOrTruncatedInvitationIsRefused() throws {
        let pending = try Peers.pendingInvitation(try Identity.generate())
        var raw = try #require(Base64URL.decode(String(pending.invitation.text.dropFirst(Invitation.textPrefix.count))))
        raw[20] ^= 1
        #expect(throws: E2EError.invitationForged) { try Invitation(text: Invitation.textPrefix + Base64URL.encode(raw), now: 0) }
        for cut in [0, 1, 10, 100, raw.count - 1] {
            #expect(throws: E2EError.self) { try Invitation(text: Invitation.textPrefix + Base64URL.encode(Array(raw.prefix(cut))), now: 0) }
        }
        #expect(throws: E2EError.self) { try Invitation(text: "hello", now: 0) }
        #expect(throws: E2EError.self) { try Invitation(text: String(repeating: "a", count: 10_000), now: 0) }
    }

    @Test func bothSidesAgreeAndTheInviterLearnsTheAcceptor() throws {
        let inviter = try Identity.generate()
        let acceptor = try Identity.generate()
        let pending = try Peers.pendingInvitation(inviter)
        let reply = Peers.queue()
        let seed = try SecureBytes.random(count: 32)
        let senderKey = try Ed25519.SigningKey.generate().publicKey
        var (body, b) = try Pairing.accept(pending.invitation, identity: acceptor, replyQueue: reply, replySenderSeed: seed, inviterQueueSenderKey: senderKey)
        var (confirmation, a) = try Pairing.complete(body, pending: pending, identity: inviter)
        #expect(confirmation.acceptor == acceptor.publicIdentity)
        #expect(confirmation.replyQueue == reply)
        #expect(confirmation.replySenderSeed.constantTimeEquals(seed))
        #expect(confirmation.inviterQueueSenderKey == senderKey)
        let m = try Envelope.seal(Content(kind: .text, sequence: 1, sentAt: 5, body: [1, 2, 3]), with: &b)
        #expect(try Envelope.open(m, with: &a) == Content(kind: .text, sequence: 1, sentAt: 5, body: [1, 2, 3]))
        // The relay sees the confirmation, but not who sent it: no identity bytes in the clear.
        #expect(!contains(body, acceptor.publicIdentity.signing))
        #expect(!contains(body, acceptor.publicIdentity.agreement))
        body[body.count - 1] ^= 1
        #expect(throws: E2EError.confirmationRejected) { try Pairing.complete(body, pending: pending, identity: inviter) }
    }

    /// The hybrid: replacing the ML-KEM ciphertext (as if the X25519 parts were broken and only
    /// ML-KEM remained) makes the confirmation fail; so does answering a different invitation.
    @Test func theConfirmationDependsOnTheMLKEMSecretAndTheInvitation() throws {
        let inviter = try Identity.generate()
        let acceptor = try Identity.generate()
        let pending = try Peers.pendingInvitation(inviter)
        var (body, _) = try Pairing.accept(
            pending.invitation, identity: acceptor, replyQueue: Peers.queue(),
            replySenderSeed: SecureBytes.random(count: 32), inviterQueueSenderKey: [UInt8](repeating: 1, count: 32))
        let other = try PQKEM.encapsulate(to: pending.pqKey.publicKey).ciphertext
        body.replaceSubrange(32..<(32 + PQKEM.ciphertextLength), with: other)
        #expect(throws: E2EError.confirmationRejected) { try Pairing.complete(body, pending: pending, identity: inviter) }
        let (fresh, _) = try Pairing.accept(
            pending.invitation, identity: acceptor, replyQueue: Peers.queue(),
            replySenderSeed: SecureBytes.random(count: 32), inviterQueueSenderKey: [UInt8](repeating: 1, count: 32))
        let another = try Peers.pendingInvitation(inviter)
        #expect(throws: E2EError.confirmationRejected) { try Pairing.complete(fresh, pending: another, identity: inviter) }
    }

    @Test func plaintextIsPaddedToABucketSoLengthsCollapse() throws {
        var p = try Peers.pair()
        let sizes = try [0, 1, 200, 230].map { try p.seal(String(repeating: "x", count: $0), fromB: true).count }
        #expect(Set(sizes).count == 1)
        let big = try p.seal(String(repeating: "x", count: 2000), fromB: true).count
        #expect(big == 1 + 40 + 4096 + 16)
        var q = try Peers.pair()
        #expect(throws: E2EError.messageTooLong(Envelope.maxContentLength + 1)) {
            try q.seal(String(repeating: "x", count: Envelope.maxContentLength + 1), fromB: true)
        }
        #expect(try q.seal(String(repeating: "x", count: Envelope.maxContentLength), fromB: true).count == 1 + 40 + 16000 + 16)
    }

    @Test func safetyNumbersAgreeOnBothSidesAndDifferForOthers() throws {
        let a = try Identity.generate().publicIdentity
        let b = try Identity.generate().publicIdentity
        let c = try Identity.generate().publicIdentity
        let ab = try SafetyNumber.compute(a, b)
        #expect(ab.count == 60 && ab.allSatisfy(\.isNumber))
        #expect(try SafetyNumber.compute(b, a) == ab)
        #expect(try SafetyNumber.compute(a, c) != ab)
        #expect(SafetyNumber.grouped(ab).split(separator: " ").count == 12)
    }

    func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
    }
}
