import BelaySodium
import BelayWire
import NIOCore

/// The client's half of a relay connection built from BelayWire alone, for tests that write
/// bytes a real client would (or would not) send: NK message 1, message 2, sealed frames.
public struct RawSession {
    public enum Failure: Error {
        case notEstablished
        case unexpected(WireHandshake.Answer)
    }

    public var handshake: HandshakeState
    public var transport: NoiseTransport?
    private var decoder = FrameDecoder()
    private let version: UInt16

    public init(relayKey: [UInt8], version: UInt16 = WireHandshake.currentVersion) throws {
        handshake = try HandshakeState(pattern: .NK, initiator: true, prologue: WireHandshake.prologue, remoteStatic: relayKey)
        self.version = version
    }

    /// NK message 1 with its key masked, as a client's first write.
    public mutating func hello(random: RandomSource = SystemRandom()) throws -> [UInt8] {
        var message = try handshake.writeMessage(payload: WireHandshake.clientPayload(version: version))
        WireHandshake.maskKey(of: &message, random: random)
        return message
    }

    public mutating func helloBuffer() throws -> ByteBuffer { ByteBuffer(bytes: try hello()) }

    /// Reads NK message 2 from the front of `bytes` and returns what the relay answered; the
    /// session is established if it accepted. Bytes after the message are kept for `replies`.
    @discardableResult
    public mutating func finish(_ bytes: ByteBuffer) throws -> WireHandshake.Answer {
        decoder.append(bytes)
        guard let message = decoder.nextRaw(count: WireHandshake.messageLength) else { throw Failure.notEstablished }
        var m = Array(message.readableBytesView)
        WireHandshake.unmaskKey(of: &m)
        let answer = try WireHandshake.answer(in: try handshake.readMessage(m))
        if case .accepted = answer { transport = try handshake.transport() }
        return answer
    }

    /// Like `finish`, but an answer other than "accepted" is an error.
    public mutating func establish(_ bytes: ByteBuffer) throws {
        let answer = try finish(bytes)
        guard case .accepted = answer else { throw Failure.unexpected(answer) }
    }

    /// One sealed frame carrying `commands` as one bundle.
    public mutating func frame(_ commands: [(UInt32, RelayCommand)]) throws -> ByteBuffer {
        var bundle = ByteBuffer()
        for (id, command) in commands {
            var entry = ByteBuffer()
            RelayCodec.encode(command, requestId: id, into: &entry)
            Bundle.append(entry, to: &bundle)
        }
        return try frame(bundle: bundle)
    }

    /// One sealed frame carrying `bundle` as given (padded to its bucket if it is not yet).
    public mutating func frame(bundle: ByteBuffer) throws -> ByteBuffer {
        guard var t = transport else { throw Failure.notEstablished }
        var out = ByteBuffer()
        try t.writeFrame(plaintext: bundle, into: &out)
        transport = t
        return out
    }

    /// Every reply in the complete frames of `bytes` (and of bytes given before), in order.
    public mutating func replies(_ bytes: ByteBuffer) throws -> [(requestId: UInt32, reply: RelayReply)] {
        guard var t = transport else { throw Failure.notEstablished }
        defer { transport = t }
        decoder.append(bytes)
        var out: [(requestId: UInt32, reply: RelayReply)] = []
        while let plaintext = try decoder.nextFrame(opening: &t) {
            for entry in try Bundle.entries(of: plaintext) { out.append(try RelayCodec.decodeReply(entry)) }
        }
        return out
    }
}
