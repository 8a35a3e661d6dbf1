import BelaySodium

/// The Double Ratchet (Signal specification, revision 1, 2016-11-20) over X25519, with
/// HKDF-SHA256 for the root chain, HMAC-SHA256 for the symmetric chains and
/// XChaCha20-Poly1305 for messages. A value type: `decrypt` works on a copy and the caller keeps
/// the new state only when the message authenticated, so a forged message changes nothing.
public struct Ratchet: Sendable {
    /// Most message keys derived in one step for a message that is ahead of its chain.
    public static let maxSkip = 2000
    /// Most skipped keys kept for late messages; the oldest are forgotten first.
    public static let maxStoredSkipped = 1000
    static let headerLength = 32 + 4 + 4
    /// The storage form's version (RatchetState.swift); 1 is still read.
    static let stateVersion: UInt8 = 2
    static let stateVersionWithoutPublicKey: UInt8 = 1
    /// A stored state's length without skipped keys, at most: version, root key, the sending key
    /// pair, three optional keys, three counters, both identities and the skipped count.
    static let fixedStateLength = 1 + 32 + 64 + 3 * 33 + 12 + 128 + 2
    static let skippedKeyLength = 32 + 4 + 32

    struct SkippedKey: Sendable {
        let ratchetKey: [UInt8]
        let index: UInt32
        let messageKey: SecureBytes
    }

    private(set) var rootKey: SecureBytes
    private(set) var sendingKey: X25519.KeyPair
    private(set) var remoteKey: [UInt8]?
    private(set) var sendChain: SecureBytes?
    private(set) var receiveChain: SecureBytes?
    private(set) var sendCount: UInt32 = 0
    private(set) var receiveCount: UInt32 = 0
    private(set) var previousSendCount: UInt32 = 0
    private(set) var skipped: [SkippedKey] = []
    public let local: PublicIdentity
    public let remote: PublicIdentity

    /// The side that sends first (the acceptor of an invitation): it knows the other side's
    /// initial ratchet key and starts a sending chain at once.
    public static func initiator(
        rootKey: SecureBytes, remoteRatchetKey: [UInt8], local: PublicIdentity, remote: PublicIdentity,
        random: some RandomSource = SystemRandom()
    ) throws -> Ratchet {
        let ours = try X25519.KeyPair.generate(random: random)
        var r = Ratchet(rootKey: rootKey, sendingKey: ours, local: local, remote: remote)
        r.remoteKey = remoteRatchetKey
        let (root, chain) = try kdfRoot(rootKey, ours.sharedSecret(with: remoteRatchetKey))
        r.rootKey = root
        r.sendChain = chain
        return r
    }

    /// The side whose ratchet key the initiator used (the inviter, with its one-time key).
    public static func responder(rootKey: SecureBytes, ownRatchetKey: X25519.KeyPair, local: PublicIdentity, remote: PublicIdentity) -> Ratchet {
        Ratchet(rootKey: rootKey, sendingKey: ownRatchetKey, local: local, remote: remote)
    }

    private init(rootKey: SecureBytes, sendingKey: X25519.KeyPair, local: PublicIdentity, remote: PublicIdentity) {
        self.rootKey = rootKey
        self.sendingKey = sendingKey
        self.local = local
        self.remote = remote
    }

    init(
        restoring root: SecureBytes, _ sending: X25519.KeyPair, _ remoteKey: [UInt8]?, _ send: SecureBytes?, _ receive: SecureBytes?,
        _ counts: (UInt32, UInt32, UInt32), _ local: PublicIdentity, _ remote: PublicIdentity, _ skipped: [SkippedKey]
    ) {
        self.init(rootKey: root, sendingKey: sending, local: local, remote: remote)
        self.remoteKey = remoteKey
        sendChain = send
        receiveChain = receive
        (sendCount, receiveCount, previousSendCount) = counts
        self.skipped = skipped
    }

    /// Both identities in the order sender, receiver: a message reflected back to its sender
    /// is checked against the reverse order and fails to authenticate.
    private func associatedData(sending: Bool, _ extra: [UInt8]) -> [UInt8] {
        Label.ratchetAD + (sending ? local.bytes + remote.bytes : remote.bytes + local.bytes) + extra
    }

    /// Whether this side can send yet: the responder can only after its first received message.
    public var canSend: Bool { sendChain != nil }

    /// Encrypts `plaintext`; `extra` is bound as associated data (the envelope's kind byte).
    public mutating func encrypt(_ plaintext: [UInt8], extra: [UInt8] = [], random: some RandomSource = SystemRandom()) throws -> [UInt8] {
        guard let chain = sendChain else { throw E2EError.messageRejected }
        let (messageKey, next) = try Self.kdfChain(chain)
        var header = ByteWriter()
        header.put(sendingKey.publicKey)
        header.u32(previousSendCount)
        header.u32(sendCount)
        let (key, nonce) = try Self.expand(messageKey)
        let sealed = try XChaChaPoly.seal(key: key, nonce: nonce, plaintext: plaintext, ad: associatedData(sending: true, extra + header.bytes))
        sendChain = next
        guard sendCount < UInt32.max else { throw E2EError.tooFarAhead(Int(sendCount)) }
        sendCount += 1
        return header.bytes + sealed
    }

    /// Decrypts a message made by `encrypt` on the other side. Throws without changing `self`
    /// if it does not authenticate (forged, reflected, or replayed after its key was used).
    public mutating func decrypt(_ message: [UInt8], extra: [UInt8] = [], random: some RandomSource = SystemRandom()) throws -> [UInt8] {
        var r = ByteReader(message)
        let theirKey = try r.take(32, "message header key")
        let previous = try r.u32("message header")
        let index = try r.u32("message header")
        let header = Array(message.prefix(Self.headerLength))
        let ciphertext = try r.take(r.remaining, "message body")
        let ad = associatedData(sending: false, extra + header)

        var next = self
        if let i = next.skipped.firstIndex(where: { $0.index == index && Sodium.constantTimeEquals($0.ratchetKey, theirKey) }) {
            let (key, nonce) = try Self.expand(next.skipped[i].messageKey)
            guard let plain = try? XChaChaPoly.open(key: key, nonce: nonce, ciphertext: ciphertext, ad: ad) else { throw E2EError.messageRejected }
            next.skipped.remove(at: i)
            self = next
            return plain
        }
        if next.remoteKey.map({ !Sodium.constantTimeEquals($0, theirKey) }) ?? true {
            try next.skip(until: previous)
            try next.step(theirKey, random: random)
        }
        try next.skip(until: index)
        guard let chain = next.receiveChain else { throw E2EError.messageRejected }
        let (messageKey, following) = try Self.kdfChain(chain)
        let (key, nonce) = try Self.expand(messageKey)
        guard let plain = try? XChaChaPoly.open(key: key, nonce: nonce, ciphertext: ciphertext, ad: ad) else { throw E2EError.messageRejected }
        next.receiveChain = following
        next.receiveCount = index &+ 1
        self = next
        return plain
    }

    private mutating func skip(until index: UInt32) throws {
        guard let chain = receiveChain, let remoteKey else { return }
        guard index >= receiveCount else { return }
        let gap = Int(index - receiveCount)
        guard gap <= Self.maxSkip else { throw E2EError.tooFarAhead(gap) }
        var current = chain
        while receiveCount < index {
            let (messageKey, next) = try Self.kdfChain(current)
            skipped.append(SkippedKey(ratchetKey: remoteKey, index: receiveCount, messageKey: messageKey))
            current = next
            receiveCount += 1
        }
        receiveChain = current
        if skipped.count > Self.maxStoredSkipped { skipped.removeFirst(skipped.count - Self.maxStoredSkipped) }
    }

    private mutating func step(_ theirKey: [UInt8], random: some RandomSource) throws {
        previousSendCount = sendCount
        sendCount = 0
        receiveCount = 0
        remoteKey = theirKey
        let (root1, receive) = try Self.kdfRoot(rootKey, sendingKey.sharedSecret(with: theirKey))
        receiveChain = receive
        sendingKey = try X25519.KeyPair.generate(random: random)
        let (root2, send) = try Self.kdfRoot(root1, sendingKey.sharedSecret(with: theirKey))
        rootKey = root2
        sendChain = send
    }

    // MARK: KDFs (Signal Double Ratchet §5.2, with our labels)

    static func kdfRoot(_ rootKey: SecureBytes, _ dh: SecureBytes) throws -> (root: SecureBytes, chain: SecureBytes) {
        let out = try rootKey.withUnsafeBytes { salt in
            try dh.withUnsafeBytes { ikm in try HKDFSHA256.deriveKey(salt: salt, ikm: ikm, info: Label.ratchetRoot, length: 64) }
        }
        return try out.withUnsafeBytes { (try SecureBytes(copying: $0[0..<32]), try SecureBytes(copying: $0[32..<64])) }
    }

    static func kdfChain(_ chain: SecureBytes) throws -> (messageKey: SecureBytes, next: SecureBytes) {
        try chain.withUnsafeBytes { key in
            (
                try HMACSHA256.authenticate(key: key, message: ChainConstant.messageKey),
                try HMACSHA256.authenticate(key: key, message: ChainConstant.chainKey)
            )
        }
    }

    /// A message key becomes an AEAD key and a nonce. Each message key is used once, so a
    /// derived nonce cannot repeat under its key.
    static func expand(_ messageKey: SecureBytes) throws -> (key: SecureBytes, nonce: [UInt8]) {
        let out = try messageKey.withUnsafeBytes { ikm in
            try HKDFSHA256.deriveKey(salt: [UInt8](repeating: 0, count: 32), ikm: ikm, info: Label.ratchetMessageKey, length: 56)
        }
        return try out.withUnsafeBytes { (try SecureBytes(copying: $0[0..<32]), Array($0[32..<56])) }
    }
}
