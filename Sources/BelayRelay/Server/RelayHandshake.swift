import BelaySodium
import BelayWire
import NIOCore

/// The relay's half of Noise NK (docs/PROTOCOL.md §2.3): message 1 in, message 2 out, both with
/// empty payloads. The prologue is the preamble, so the version is bound into the handshake.
enum RelayHandshake {
    /// NK messages with empty payloads: a 32-byte ephemeral key and a 16-byte tag.
    static let messageLength = 48

    /// The reply frame and the session, or nil for anything but a valid message 1 to `relayStatic`.
    static func respond(
        to frame: ByteBuffer, relayStatic: X25519.KeyPair, prologue: [UInt8] = Preamble.prologue, allocator: ByteBufferAllocator
    ) -> (reply: ByteBuffer, transport: NoiseTransport)? {
        guard frame.readableBytes == messageLength else { return nil }
        do {
            var handshake = try HandshakeState(pattern: .NK, initiator: false, prologue: prologue, localStatic: relayStatic)
            let payload = try handshake.readMessage(Array(frame.readableBytesView))
            guard payload.isEmpty else { return nil }
            let message = try handshake.writeMessage()
            var reply = allocator.buffer(capacity: WireLimits.frameHeaderLength + message.count)
            FrameDecoder.writeFrame(message, into: &reply)
            return (reply, try handshake.transport())
        } catch {
            return nil
        }
    }
}
