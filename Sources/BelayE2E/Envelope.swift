import BelaySodium

/// What a conversation carries, inside the ratchet's encryption.
public struct Content: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case text = 1
        /// A check-in alert (docs/CHECKINS.md).
        case alert = 2
        /// The acceptor's first message, sent with the confirmation: it gives the inviter its
        /// first receiving chain, and with it the ability to send.
        case hello = 3
        /// A check-in notice: armed, checked in (perhaps under duress) or ended (`CheckinNotice`).
        case checkin = 5
        /// A contact's agree, decline or acknowledgement (`CheckinAnswer`); between contacts, a
        /// signed `CircleAck` sealed under the circle key.
        case answer = 6
        /// Membership, messages, duty and requests of a group or roster (`GroupMessage`).
        case group = 7
        /// A warm introduction between two contacts (`IntroductionMessage`).
        case introduction = 8
    }

    public var kind: Kind
    /// Per direction, from 1, one more for each message: gaps, reordering and duplicates show.
    public var sequence: UInt64
    /// Milliseconds since the Unix epoch on the sender's clock.
    public var sentAt: UInt64
    public var body: [UInt8]

    public init(kind: Kind, sequence: UInt64, sentAt: UInt64, body: [UInt8]) {
        self.kind = kind
        self.sequence = sequence
        self.sentAt = sentAt
        self.body = body
    }
}

/// The body a client hands the relay: one kind byte, then a pairing confirmation or a ratchet
/// message whose plaintext is padded to one of a few sizes (docs/PROTOCOL.md §8.3).
public enum Envelope {
    public enum Kind: UInt8, Sendable {
        case confirmation = 1
        case message = 2
        /// A check-in alert sealed under an alert key (§8.5).
        case alert = 3
    }

    /// Padded plaintext sizes. The relay sees only which one a message used.
    public static let buckets = [256, 1024, 4096, 16000]
    static let contentOverhead = 1 + 8 + 8 + 2
    /// The longest body a message may carry (the largest bucket less the fields and one byte of
    /// padding); `belay send` refuses longer text.
    public static let maxContentLength = 16000 - contentOverhead - 1

    public static func kind(of body: [UInt8]) throws -> Kind {
        guard let first = body.first, let kind = Kind(rawValue: first) else { throw E2EError.malformed("message kind") }
        return kind
    }

    public static func seal(_ content: Content, with ratchet: inout Ratchet, random: some RandomSource = SystemRandom()) throws -> [UInt8] {
        var padded = try padded(content)
        defer { Sodium.wipe(&padded) }
        let kind = [Kind.message.rawValue]
        return kind + (try ratchet.encrypt(padded, extra: kind, random: random))
    }

    public static func open(_ body: [UInt8], with ratchet: inout Ratchet, random: some RandomSource = SystemRandom()) throws -> Content {
        guard try kind(of: body) == .message else { throw E2EError.malformed("message kind") }
        guard buckets.contains(body.count - 1 - Ratchet.headerLength - XChaChaPoly.tagLength) else { throw E2EError.malformed("message size") }
        var candidate = ratchet
        var padded = try candidate.decrypt(Array(body.dropFirst()), extra: [Kind.message.rawValue], random: random)
        defer { Sodium.wipe(&padded) }
        let content = try unpadded(padded)
        ratchet = candidate
        return content
    }

    /// The content's fields, padded to the smallest bucket that holds them.
    static func padded(_ content: Content) throws -> [UInt8] {
        guard content.body.count <= maxContentLength else { throw E2EError.messageTooLong(content.body.count) }
        var w = ByteWriter()
        defer { w.wipe() }
        w.u8(content.kind.rawValue)
        w.u64(content.sequence)
        w.u64(content.sentAt)
        w.bytes16(content.body)
        let bucket = buckets.first { $0 > w.bytes.count }!
        return pad(w.bytes, to: bucket)
    }

    static func unpadded(_ padded: [UInt8]) throws -> Content {
        guard buckets.contains(padded.count) else { throw E2EError.malformed("message size") }
        var plain = try unpad(padded)
        defer { Sodium.wipe(&plain) }
        var r = ByteReader(plain)
        guard let kind = Content.Kind(rawValue: try r.u8("content kind")) else { throw E2EError.malformed("content kind") }
        let content = Content(
            kind: kind, sequence: try r.u64("content sequence"), sentAt: try r.u64("content time"),
            body: try r.bytes16("content body", maximum: maxContentLength))
        try r.expectEnd("content")
        return content
    }

    public static func confirmation(_ body: [UInt8]) -> [UInt8] { [Kind.confirmation.rawValue] + body }

    // ISO/IEC 7816-4 padding (0x80, then zeros), byte for byte what libsodium's `sodium_pad`
    // makes with the bucket as block size (a test compares the two). Not through libsodium:
    // `sodium_pad` and `sodium_unpad` walk the whole block in constant time, and with 4 KiB
    // buckets that was a third of the ratchet path. Padding is removed only after the AEAD has
    // authenticated the plaintext, so the time it takes tells nothing that anyone could choose.

    /// `fields` (shorter than `size`) padded to exactly `size` bytes.
    static func pad(_ fields: [UInt8], to size: Int) -> [UInt8] {
        precondition(fields.count < size, "padding needs at least one byte")
        var out = [UInt8](repeating: 0, count: size)
        fields.withUnsafeBytes { source in out.withUnsafeMutableBytes { $0.copyMemory(from: source) } }
        out[fields.count] = 0x80
        return out
    }

    /// What `pad` was given: everything before the last non-zero byte, which must be 0x80.
    static func unpad(_ padded: [UInt8]) throws -> [UInt8] {
        let end = padded.withUnsafeBufferPointer { bytes in
            var i = bytes.count - 1
            while i >= 0, bytes[i] == 0 { i -= 1 }
            return i
        }
        guard end >= 0, padded[end] == 0x80 else { throw E2EError.malformed("padding") }
        return Array(padded[..<end])
    }
}
