import BelaySodium
import BelayWire
import Foundation

/// Where to write to a queue: its relay and its sender id.
public struct QueueRef: Sendable, Equatable, Hashable {
    public let relay: RelayAddress
    public let senderId: EntityID

    public init(relay: RelayAddress, senderId: EntityID) {
        self.relay = relay
        self.senderId = senderId
    }

    func write(to w: inout ByteWriter) {
        w.bytes16(Array(relay.description.utf8))
        w.put(senderId.bytes)
    }

    static func read(from r: inout ByteReader, _ field: String) throws -> QueueRef {
        let text = try r.bytes16("\(field) relay", maximum: RelayAddress.maxLength)
        guard let string = String(bytes: text, encoding: .utf8), let relay = try? RelayAddress(parsing: string) else {
            throw E2EError.malformed("\(field) relay address")
        }
        guard let id = EntityID(bytes: try r.take(EntityID.length, "\(field) sender id")) else { throw E2EError.malformed(field) }
        return QueueRef(relay: relay, senderId: id)
    }
}

/// A one-time invitation: everything an acceptor needs to reach the inviter and agree a key
/// with them, signed by the inviter's identity. It travels out of band (read aloud, pasted, QR).
public struct Invitation: Sendable, Equatable {
    public static let version: UInt8 = 1
    public static let textPrefix = "belay-invite:"
    /// A little over the encoded size (about 1,400 bytes, 1,900 characters); longer text is
    /// refused before decoding.
    public static let maxTextLength = 4096

    public let queue: QueueRef
    public let inviter: PublicIdentity
    public let oneTimeKey: [UInt8]
    public let pqKey: [UInt8]
    /// Unix seconds after which the inviter will not complete the pairing; 0 for no expiry.
    public let expires: UInt64
    public let signature: [UInt8]

    /// The bytes the signature covers, which are also the transcript the pairing binds to.
    var signedBytes: [UInt8] {
        var w = ByteWriter()
        w.u8(Self.version)
        w.u64(expires)
        queue.write(to: &w)
        w.put(inviter.bytes)
        w.put(oneTimeKey)
        w.put(pqKey)
        return w.bytes
    }

    public static func make(queue: QueueRef, identity: Identity, oneTimeKey: [UInt8], pqKey: [UInt8], expires: UInt64) throws -> Invitation {
        let unsigned = Invitation(queue: queue, inviter: identity.publicIdentity, oneTimeKey: oneTimeKey, pqKey: pqKey, expires: expires, signature: [])
        let signature = try identity.signing.sign(Label.invitationSignature + unsigned.signedBytes)
        return Invitation(queue: queue, inviter: unsigned.inviter, oneTimeKey: oneTimeKey, pqKey: pqKey, expires: expires, signature: signature)
    }

    private init(queue: QueueRef, inviter: PublicIdentity, oneTimeKey: [UInt8], pqKey: [UInt8], expires: UInt64, signature: [UInt8]) {
        self.queue = queue
        self.inviter = inviter
        self.oneTimeKey = oneTimeKey
        self.pqKey = pqKey
        self.expires = expires
        self.signature = signature
    }

    public var text: String { Self.textPrefix + Base64URL.encode(signedBytes + signature) }

    /// Parses and verifies an invitation. `now` is Unix seconds, for the expiry.
    public init(text: String, now: UInt64) throws {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.utf8.count <= Self.maxTextLength else { throw E2EError.malformed("invitation (too long)") }
        guard trimmed.hasPrefix(Self.textPrefix), let raw = Base64URL.decode(String(trimmed.dropFirst(Self.textPrefix.count))) else {
            throw E2EError.malformed("invitation (it should start with \(Self.textPrefix))")
        }
        var r = ByteReader(raw)
        let version = try r.u8("invitation version")
        guard version == Self.version else { throw E2EError.unsupportedVersion(version) }
        let expires = try r.u64("invitation expiry")
        let queue = try QueueRef.read(from: &r, "invitation queue")
        let inviter = try PublicIdentity(bytes: r.take(PublicIdentity.length, "invitation identity"))
        let oneTime = try r.take(X25519.keyLength, "invitation one-time key")
        let pq = try r.take(PQKEM.publicKeyLength, "invitation ML-KEM key")
        let signature = try r.take(Ed25519.signatureLength, "invitation signature")
        try r.expectEnd("invitation")
        self.init(queue: queue, inviter: inviter, oneTimeKey: oneTime, pqKey: pq, expires: expires, signature: signature)
        guard Ed25519.verify(signature: signature, message: Label.invitationSignature + signedBytes, publicKey: inviter.signing) else {
            throw E2EError.invitationForged
        }
        if expires != 0, now >= expires { throw E2EError.invitationExpired }
    }
}
