import BelaySodium
import BelayWire
import NIOCore

/// The relay's half of Noise NK (docs/PROTOCOL.md §2.1): message 1 in, message 2 out, each
/// `WireHandshake.messageLength` bytes with no length prefix, the version in the payloads.
enum RelayHandshake {
    enum Outcome {
        /// The client speaks our version: send `reply`, then transport frames follow.
        case established(reply: ByteBuffer, transport: NoiseTransport)
        /// The client speaks another version: send `reply` (which says ours) and close.
        case unsupported(reply: ByteBuffer, clientVersion: UInt16)
    }

    /// What to answer to `message`, or nil for anything but a valid message 1 to `relayStatic`
    /// that this relay has not answered before (`replays`).
    static func respond(
        to message: ByteBuffer, relayStatic: X25519.KeyPair, replays: HandshakeReplayCache, random: RandomSource = SystemRandom(),
        allocator: ByteBufferAllocator
    ) -> Outcome? {
        guard message.readableBytes == WireHandshake.messageLength else { return nil }
        do {
            var handshake = try HandshakeState(pattern: .NK, initiator: false, prologue: WireHandshake.prologue, localStatic: relayStatic)
            var bytes = Array(message.readableBytesView)
            WireHandshake.unmaskKey(of: &bytes)
            let version = try WireHandshake.clientVersion(in: try handshake.readMessage(bytes))
            guard replays.firstSight(of: Array(bytes.prefix(X25519.keyLength))) else { return nil }
            let answer: WireHandshake.Answer =
                version == WireHandshake.currentVersion
                ? .accepted(version: version) : .unsupported(relayVersion: WireHandshake.currentVersion)
            var out = try handshake.writeMessage(payload: WireHandshake.relayPayload(answer))
            WireHandshake.maskKey(of: &out, random: random)
            var reply = allocator.buffer(capacity: out.count)
            reply.writeBytes(out)
            switch answer {
            case .accepted: return .established(reply: reply, transport: try handshake.transport())
            case .unsupported: return .unsupported(reply: reply, clientVersion: version)
            }
        } catch {
            return nil
        }
    }
}
