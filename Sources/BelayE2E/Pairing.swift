import BelaySodium

/// The secrets an inviter keeps until its invitation is answered or withdrawn.
public struct PendingInvitation: Sendable {
    public let invitation: Invitation
    public let oneTimeKey: X25519.KeyPair
    public let pqKey: PQKEM.KeyPair

    public init(invitation: Invitation, oneTimeKey: X25519.KeyPair, pqKey: PQKEM.KeyPair) {
        self.invitation = invitation
        self.oneTimeKey = oneTimeKey
        self.pqKey = pqKey
    }
}

/// What the acceptor tells the inviter, inside the sealed confirmation.
public struct Confirmation: Sendable {
    public let acceptor: PublicIdentity
    /// Where the inviter writes to reach the acceptor.
    public let replyQueue: QueueRef
    /// The Ed25519 seed the inviter proves to the acceptor's relay when it writes there; the
    /// acceptor secured its queue with this key's public half before sending.
    public let replySenderSeed: SecureBytes
    /// The public key the inviter secures its own queue with, so only the acceptor writes there.
    public let inviterQueueSenderKey: [UInt8]
}

/// Pairing by invitation: an X3DH-style key agreement (Signal's X3DH, revision 1, with the
/// invitation's one-time key in the place of the signed prekey), hybrid with ML-KEM-768 as in
/// Signal's PQXDH: the root key depends on three X25519 outputs and the ML-KEM secret together.
public enum Pairing {
    /// Builds the confirmation body (without the envelope's kind byte) and the acceptor's ratchet.
    public static func accept(
        _ invitation: Invitation, identity: Identity, replyQueue: QueueRef, replySenderSeed: SecureBytes,
        inviterQueueSenderKey: [UInt8], random: some RandomSource = SystemRandom()
    ) throws -> (body: [UInt8], ratchet: Ratchet) {
        let ephemeral = try X25519.KeyPair.generate(random: random)
        let (ciphertext, pqSecret) = try PQKEM.encapsulate(to: invitation.pqKey)
        let transcript = try transcriptHash(invitation, ephemeral: ephemeral.publicKey, ciphertext: ciphertext)

        var inner = ByteWriter()
        defer { inner.wipe() }
        inner.put(identity.publicIdentity.bytes)
        replyQueue.write(to: &inner)
        inner.put(replySenderSeed.unprotectedCopy())
        inner.put(inviterQueueSenderKey)
        inner.put(try identity.signing.sign(Label.confirmationSignature + transcript + inner.bytes))

        let envelopeKey = try envelopeKey(try ephemeral.sharedSecret(with: invitation.oneTimeKey), pqSecret, transcript)
        let nonce = random.bytes(XChaChaPoly.nonceLength)
        let header = ephemeral.publicKey + ciphertext
        let sealed = try XChaChaPoly.seal(key: envelopeKey, nonce: nonce, plaintext: inner.bytes, ad: Label.pairingEnvelope + header)

        let root = try rootKey(
            [
                try identity.agreement.sharedSecret(with: invitation.oneTimeKey),
                try ephemeral.sharedSecret(with: invitation.inviter.agreement),
                try ephemeral.sharedSecret(with: invitation.oneTimeKey),
            ],
            pqSecret, transcript, acceptor: identity.publicIdentity)
        let ratchet = try Ratchet.initiator(
            rootKey: root, remoteRatchetKey: invitation.oneTimeKey,
            local: identity.publicIdentity, remote: invitation.inviter, random: random)
        return (header + nonce + sealed, ratchet)
    }

    /// The inviter's side: opens a confirmation with the pending invitation's secrets.
    public static func complete(_ body: [UInt8], pending: PendingInvitation, identity: Identity) throws -> (Confirmation, Ratchet) {
        var r = ByteReader(body)
        let ephemeral = try r.take(X25519.keyLength, "confirmation key")
        let ciphertext = try r.take(PQKEM.ciphertextLength, "confirmation ciphertext")
        let nonce = try r.take(XChaChaPoly.nonceLength, "confirmation nonce")
        let sealed = try r.take(r.remaining, "confirmation body")
        guard let pqSecret = try? pending.pqKey.decapsulate(ciphertext),
            let transcript = try? transcriptHash(pending.invitation, ephemeral: ephemeral, ciphertext: ciphertext),
            let dh3 = try? pending.oneTimeKey.sharedSecret(with: ephemeral),
            let key = try? envelopeKey(dh3, pqSecret, transcript),
            var inner = try? XChaChaPoly.open(key: key, nonce: nonce, ciphertext: sealed, ad: Label.pairingEnvelope + ephemeral + ciphertext)
        else { throw E2EError.confirmationRejected }
        defer { Sodium.wipe(&inner) }

        var ir = ByteReader(inner)
        let acceptor = try PublicIdentity(bytes: ir.take(PublicIdentity.length, "confirmation identity"))
        let replyQueue = try QueueRef.read(from: &ir, "confirmation reply queue")
        let seed = try SecureBytes(copying: ir.take(Ed25519.seedLength, "confirmation sender key"), storage: .guarded)
        let senderKey = try ir.take(Ed25519.publicKeyLength, "confirmation queue key")
        let signed = Array(inner.prefix(ir.offset))
        let signature = try ir.take(Ed25519.signatureLength, "confirmation signature")
        try ir.expectEnd("confirmation")
        guard Ed25519.verify(signature: signature, message: Label.confirmationSignature + transcript + signed, publicKey: acceptor.signing) else {
            throw E2EError.confirmationRejected
        }
        let root = try rootKey(
            [
                try pending.oneTimeKey.sharedSecret(with: acceptor.agreement),
                try identity.agreement.sharedSecret(with: ephemeral),
                dh3,
            ],
            pqSecret, transcript, acceptor: acceptor)
        let ratchet = Ratchet.responder(rootKey: root, ownRatchetKey: pending.oneTimeKey, local: identity.publicIdentity, remote: acceptor)
        return (Confirmation(acceptor: acceptor, replyQueue: replyQueue, replySenderSeed: seed, inviterQueueSenderKey: senderKey), ratchet)
    }

    /// Binds the invitation (with the inviter's identity and keys), the acceptor's ephemeral key
    /// and the ML-KEM ciphertext.
    static func transcriptHash(_ invitation: Invitation, ephemeral: [UInt8], ciphertext: [UInt8]) throws -> [UInt8] {
        try BLAKE2b.hash(invitation.signedBytes + ephemeral + ciphertext, outputLength: 32)
    }

    /// Keys only the confirmation's outer layer, so the relay cannot read who is answering.
    static func envelopeKey(_ dh: SecureBytes, _ pq: SecureBytes, _ transcript: [UInt8]) throws -> SecureBytes {
        var ikm = dh.unprotectedCopy() + pq.unprotectedCopy()
        defer { Sodium.wipe(&ikm) }
        return try HKDFSHA256.deriveKey(salt: [UInt8](repeating: 0, count: 32), ikm: ikm, info: Label.pairingEnvelope + transcript, length: 32)
    }

    /// SK = HKDF(F || DH1 || DH2 || DH3 || SS_pq), with F = 32 × 0xFF as in X3DH §2.2.
    static func rootKey(_ dhs: [SecureBytes], _ pq: SecureBytes, _ transcript: [UInt8], acceptor: PublicIdentity) throws -> SecureBytes {
        var ikm = [UInt8](repeating: 0xff, count: 32)
        for dh in dhs { ikm += dh.unprotectedCopy() }
        ikm += pq.unprotectedCopy()
        defer { Sodium.wipe(&ikm) }
        return try HKDFSHA256.deriveKey(
            salt: [UInt8](repeating: 0, count: 32), ikm: ikm,
            info: Label.pairingSecret + transcript + acceptor.bytes, length: 32)
    }
}
