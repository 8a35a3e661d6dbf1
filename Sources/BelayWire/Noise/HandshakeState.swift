import BelaySodium

/// Noise §5.3 HandshakeState for DH 25519, ChaChaPoly and SHA-256, driven by a `HandshakePattern`.
public struct HandshakeState: Sendable {
    public let pattern: HandshakePattern
    public let isInitiator: Bool
    private var symmetric: SymmetricState
    private var localStatic: X25519.KeyPair?
    private var localEphemeral: X25519.KeyPair?
    private(set) public var remoteStatic: [UInt8]?
    private var remoteEphemeral: [UInt8]?
    private var messageIndex = 0
    /// Supplies ephemeral keys; tests inject fixed ones to replay published vectors.
    private let makeEphemeral: @Sendable () throws -> X25519.KeyPair

    public init(
        pattern: HandshakePattern,
        initiator: Bool,
        prologue: [UInt8],
        localStatic: X25519.KeyPair? = nil,
        remoteStatic: [UInt8]? = nil,
        makeEphemeral: @escaping @Sendable () throws -> X25519.KeyPair = { try X25519.KeyPair.generate() }
    ) throws {
        self.pattern = pattern
        self.isInitiator = initiator
        self.localStatic = localStatic
        self.remoteStatic = remoteStatic
        self.makeEphemeral = makeEphemeral
        symmetric = try SymmetricState(protocolName: pattern.protocolName())
        try symmetric.mixHash(prologue)
        if pattern.initiatorStaticPremessage {
            try symmetric.mixHash(try initiator ? Self.require(localStatic?.publicKey, "local static") : Self.require(remoteStatic, "remote static"))
        }
        if pattern.responderStaticPremessage {
            try symmetric.mixHash(try initiator ? Self.require(remoteStatic, "remote static") : Self.require(localStatic?.publicKey, "local static"))
        }
    }

    public var isComplete: Bool { messageIndex >= pattern.messages.count }
    /// Whose turn it is to write the next handshake message.
    public var isMyTurnToWrite: Bool { (messageIndex % 2 == 0) == isInitiator }
    /// The handshake hash `h`; after completion it identifies the session (Noise §11.2).
    public var handshakeHash: [UInt8] { symmetric.handshakeHash }

    public mutating func writeMessage(payload: [UInt8] = []) throws -> [UInt8] {
        guard !isComplete else { throw NoiseError.handshakeComplete }
        guard isMyTurnToWrite else { throw NoiseError.wrongTurn }
        var out = [UInt8]()
        for token in pattern.messages[messageIndex] {
            switch token {
            case .e:
                let e = try makeEphemeral()
                localEphemeral = e
                out += e.publicKey
                try symmetric.mixHash(e.publicKey)
            case .s:
                out += try symmetric.encryptAndHash(try Self.require(localStatic?.publicKey, "local static"))
            default:
                try mixDH(token)
            }
        }
        out += try symmetric.encryptAndHash(payload)
        guard out.count <= WireLimits.maxFrameLength else { throw NoiseError.messageTooLong(out.count) }
        messageIndex += 1
        return out
    }

    public mutating func readMessage(_ message: [UInt8]) throws -> [UInt8] {
        guard !isComplete else { throw NoiseError.handshakeComplete }
        guard !isMyTurnToWrite else { throw NoiseError.wrongTurn }
        guard message.count <= WireLimits.maxFrameLength else { throw NoiseError.messageTooLong(message.count) }
        var rest = message[...]
        for token in pattern.messages[messageIndex] {
            switch token {
            case .e:
                guard rest.count >= X25519.keyLength else { throw NoiseError.messageTooShort }
                let re = Array(rest.prefix(X25519.keyLength))
                rest = rest.dropFirst(X25519.keyLength)
                remoteEphemeral = re
                try symmetric.mixHash(re)
            case .s:
                let length = X25519.keyLength + (symmetric.cipher.hasKey ? WireLimits.tagLength : 0)
                guard rest.count >= length else { throw NoiseError.messageTooShort }
                remoteStatic = try symmetric.decryptAndHash(Array(rest.prefix(length)))
                rest = rest.dropFirst(length)
            default:
                try mixDH(token)
            }
        }
        let payload = try symmetric.decryptAndHash(Array(rest))
        messageIndex += 1
        return payload
    }

    /// Split() once the last message has been written or read: (send, receive) for this side.
    public func transport() throws -> NoiseTransport {
        guard isComplete else { throw NoiseError.wrongTurn }
        let (initiatorToResponder, responderToInitiator) = try symmetric.split()
        return isInitiator
            ? NoiseTransport(send: initiatorToResponder, receive: responderToInitiator, handshakeHash: handshakeHash)
            : NoiseTransport(send: responderToInitiator, receive: initiatorToResponder, handshakeHash: handshakeHash)
    }

    private mutating func mixDH(_ token: HandshakePattern.Token) throws {
        // "es" is DH(e, rs) for the initiator and DH(s, re) for the responder; "se" the mirror.
        let local: X25519.KeyPair?
        let remote: [UInt8]?
        switch (token, isInitiator) {
        case (.ee, _): (local, remote) = (localEphemeral, remoteEphemeral)
        case (.ss, _): (local, remote) = (localStatic, remoteStatic)
        case (.es, true), (.se, false): (local, remote) = (localEphemeral, remoteStatic)
        case (.es, false), (.se, true): (local, remote) = (localStatic, remoteEphemeral)
        default: return
        }
        let pair = try Self.require(local, "local \(token)")
        let peer = try Self.require(remote, "remote \(token)")
        let shared: SecureBytes
        do {
            shared = try pair.sharedSecret(with: peer)
        } catch {
            throw NoiseError.invalidKey
        }
        try symmetric.mixKey(shared)
    }

    private static func require<T>(_ value: T?, _ what: String) throws -> T {
        guard let value else { throw NoiseError.missingKey(what) }
        return value
    }
}
