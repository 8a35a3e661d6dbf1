import BelaySodium

/// A key set aside for check-in alerts to one contact: announced to them through the ratchet at
/// arming, then used to seal alerts deposited at the relay. An alert opens with it however far
/// the ratchet has moved since (docs/PROTOCOL.md §8.5).
public struct AlertKey: Sendable, Equatable {
    public static let idLength = 16
    public let id: [UInt8]
    public let key: [UInt8]

    public init(id: [UInt8], key: [UInt8]) {
        self.id = id
        self.key = key
    }

    public static func generate(random: some RandomSource = SystemRandom()) -> AlertKey {
        AlertKey(id: random.bytes(idLength), key: random.bytes(XChaChaPoly.keyLength))
    }

    /// The body of the ratchet message that announces the key.
    public var announcement: [UInt8] { id + key }

    public init(announcement: [UInt8]) throws {
        guard announcement.count == Self.idLength + XChaChaPoly.keyLength else { throw E2EError.malformed("alert key") }
        self.init(id: Array(announcement.prefix(Self.idLength)), key: Array(announcement.suffix(XChaChaPoly.keyLength)))
    }
}

public enum Alerts {
    public static let label = Array("belay alert v1".utf8)

    /// `0x03 | key id (16) | nonce (24) | XChaCha20-Poly1305(padded content)`: the same total size
    /// as a ratchet message of the same bucket, so the relay cannot tell an alert from a message.
    public static func seal(
        _ content: Content, key: AlertKey, sender: PublicIdentity, receiver: PublicIdentity,
        label: [UInt8] = Alerts.label, random: some RandomSource = SystemRandom()
    ) throws -> [UInt8] {
        var padded = try Envelope.padded(content)
        defer { Sodium.wipe(&padded) }
        let nonce = random.bytes(XChaChaPoly.nonceLength)
        let kind = [Envelope.Kind.alert.rawValue]
        let secret = try SecureBytes(copying: key.key)
        let sealed = try XChaChaPoly.seal(
            key: secret, nonce: nonce, plaintext: padded,
            ad: label + kind + key.id + sender.bytes + receiver.bytes)
        return kind + key.id + nonce + sealed
    }

    /// The id of the key an alert body was sealed with, to find it among the stored keys.
    public static func keyId(of body: [UInt8]) throws -> [UInt8] {
        guard body.count > 1 + AlertKey.idLength, body[0] == Envelope.Kind.alert.rawValue else { throw E2EError.malformed("alert") }
        return Array(body[1...AlertKey.idLength])
    }

    public static func open(
        _ body: [UInt8], key: AlertKey, sender: PublicIdentity, receiver: PublicIdentity,
        label: [UInt8] = Alerts.label
    ) throws -> Content {
        var r = ByteReader(body)
        guard try r.u8("alert kind") == Envelope.Kind.alert.rawValue else { throw E2EError.malformed("alert kind") }
        let id = try r.take(AlertKey.idLength, "alert key id")
        let nonce = try r.take(XChaChaPoly.nonceLength, "alert nonce")
        let sealed = try r.take(r.remaining, "alert body")
        guard Sodium.constantTimeEquals(id, key.id) else { throw E2EError.messageRejected }
        let secret = try SecureBytes(copying: key.key)
        guard
            var padded = try? XChaChaPoly.open(
                key: secret, nonce: nonce, ciphertext: sealed,
                ad: label + [Envelope.Kind.alert.rawValue] + id + sender.bytes + receiver.bytes)
        else {
            throw E2EError.messageRejected
        }
        defer { Sodium.wipe(&padded) }
        return try Envelope.unpadded(padded)
    }
}
