import BelaySodium

/// "I am on it", from one contact of a check-in to the others (docs/PROTOCOL.md §8.5): sent on
/// the person's own queue to each of them, so it arrives even with the person's device gone.
/// Sealed under the circle key every contact holds, and signed by the acknowledging contact's
/// identity, so one contact cannot speak for another.
public struct CircleAck: Sendable, Equatable {
    static let signatureLabel = Array("belay circle ack v1".utf8)
    public static let sealLabel = Array("belay circle seal v1".utf8)

    public var answer: CheckinAnswer
    public var by: PublicIdentity
    public var signature: [UInt8]

    /// Signs `answer` for one recipient, so a copy cannot be shown to someone else as theirs.
    public static func make(_ answer: CheckinAnswer, by identity: Identity, for recipient: PublicIdentity) throws -> CircleAck {
        let signature = try identity.signing.sign(signedBytes(answer, by: identity.publicIdentity, for: recipient))
        return CircleAck(answer: answer, by: identity.publicIdentity, signature: signature)
    }

    public func verify(for recipient: PublicIdentity) -> Bool {
        Ed25519.verify(signature: signature, message: Self.signedBytes(answer, by: by, for: recipient), publicKey: by.signing)
    }

    static func signedBytes(_ answer: CheckinAnswer, by: PublicIdentity, for recipient: PublicIdentity) -> [UInt8] {
        signatureLabel + by.bytes + recipient.bytes + answer.encoded()
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.put(by.bytes)
        w.put(signature)
        w.put(answer.encoded())
        return w.bytes
    }

    public init(answer: CheckinAnswer, by: PublicIdentity, signature: [UInt8]) {
        (self.answer, self.by, self.signature) = (answer, by, signature)
    }

    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        let by = try PublicIdentity(bytes: try r.take(PublicIdentity.length, "acknowledger"))
        let signature = try r.take(Ed25519.signatureLength, "acknowledgement signature")
        self.init(answer: try CheckinAnswer(decoding: try r.take(r.remaining, "acknowledgement")), by: by, signature: signature)
    }
}
