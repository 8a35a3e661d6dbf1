import BelaySodium

/// The two Noise NK messages as Belay sends them from protocol version 5 (docs/PROTOCOL.md
/// §2.1): no clear preamble, no length prefix, a fixed size each way, and the protocol version
/// inside the encrypted, authenticated payloads. The first byte a client sends is the first
/// byte of its ephemeral key.
public enum WireHandshake {
    /// The protocol version this code speaks.
    public static let currentVersion: UInt16 = 5
    /// Mixed into the handshake hash before anything else. It names the layout of the two
    /// handshake messages, which version 5 introduced, and not the protocol version proper:
    /// with the version in the prologue, a relay could not even read the payload of a client
    /// of another version, let alone answer it. Later versions that keep this layout keep it.
    public static let prologue: [UInt8] = Array("belay".utf8) + [0, 0, 5]
    /// Bytes of plaintext payload in each handshake message: the version and room to grow.
    public static let payloadLength = 16
    /// Each message: the ephemeral key, then the payload and its tag.
    public static let messageLength = X25519.keyLength + payloadLength + WireLimits.tagLength

    /// What the relay says in message 2.
    public enum Answer: Equatable, Sendable {
        /// The relay speaks the client's version; transport frames follow.
        case accepted(version: UInt16)
        /// The relay does not speak the client's version and closes after this message.
        case unsupported(relayVersion: UInt16)
    }

    public enum Error: Swift.Error, Equatable, Sendable {
        case wrongPayloadLength(Int)
        case unknownAnswer(UInt8)
    }

    /// Message 1's payload: the client's version, then zeros (ignored on receipt).
    public static func clientPayload(version: UInt16 = currentVersion) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: payloadLength)
        out[0] = UInt8(version >> 8)
        out[1] = UInt8(version & 0xff)
        return out
    }

    public static func clientVersion(in payload: [UInt8]) throws(Error) -> UInt16 {
        guard payload.count == payloadLength else { throw .wrongPayloadLength(payload.count) }
        return UInt16(payload[0]) << 8 | UInt16(payload[1])
    }

    /// Message 2's payload: the relay's version, a status byte (0 accepted, 1 unsupported),
    /// then zeros.
    public static func relayPayload(_ answer: Answer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: payloadLength)
        let (version, status): (UInt16, UInt8) =
            switch answer {
            case let .accepted(v): (v, 0)
            case let .unsupported(v): (v, 1)
            }
        out[0] = UInt8(version >> 8)
        out[1] = UInt8(version & 0xff)
        out[2] = status
        return out
    }

    public static func answer(in payload: [UInt8]) throws(Error) -> Answer {
        guard payload.count == payloadLength else { throw .wrongPayloadLength(payload.count) }
        let version = UInt16(payload[0]) << 8 | UInt16(payload[1])
        switch payload[2] {
        case 0: return .accepted(version: version)
        case 1: return .unsupported(relayVersion: version)
        case let other: throw .unknownAnswer(other)
        }
    }

    /// An X25519 public key's top bit is always clear (RFC 7748 §5), which would make every
    /// 32nd byte of a handshake predictable. The sender sets it at random; the receiver clears
    /// it before the key enters the Noise handshake (which hashes the unmasked key), and
    /// X25519 ignores it anyway. This is not Elligator: an observer of many handshakes can
    /// still test whether the keys are curve points (docs/THREAT-MODEL.md).
    public static func maskKey(of message: inout [UInt8], random: RandomSource = SystemRandom()) {
        precondition(message.count >= X25519.keyLength, "a handshake message starts with a key")
        let bit = random.bytes(1)[0] & 0x80
        message[X25519.keyLength - 1] |= bit
    }

    public static func unmaskKey(of message: inout [UInt8]) {
        guard message.count >= X25519.keyLength else { return }
        message[X25519.keyLength - 1] &= 0x7f
    }
}
