import BelaySodium
import BelayWire
import NIOCore

/// What an attacker's connection does at each step; called on the connection's event loop.
protocol RawNoiseDelegate: AnyObject {
    func established(_ connection: RawNoiseHandler)
    func received(_ reply: RelayReply?, on connection: RawNoiseHandler)
    /// After each read from the socket: the moment to send more.
    func readComplete(_ connection: RawNoiseHandler)
    func closed(_ connection: RawNoiseHandler)
}

/// A bare Belay client for the attacks, written from the protocol rather than reusing
/// BelayClient's handler: it must run on a socket bound to another source address and send
/// commands the real client never would. Noise NK message 1, then bundles out and
/// replies in (docs/PROTOCOL.md §2); no request matching, no timeouts.
/// Built in the channel initializer: it lives on the channel's event loop alone.
final class RawNoiseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Opcode 0x7f is not a command (docs/PROTOCOL.md §3.1): the relay answers UNKNOWN_COMMAND.
    static let unknownOpcode: UInt8 = 0x7f

    private enum State {
        case handshaking(HandshakeState)
        case established(NoiseTransport)
        case closed
    }

    // Event-loop confined.
    private var state: State
    private var decoder = FrameDecoder()
    private var outbox = Outbox()
    private var scratch = ByteBufferAllocator().buffer(capacity: 64)
    private var context: ChannelHandlerContext?
    private var nextRequestId: UInt32 = 1
    private let delegate: RawNoiseDelegate

    init(relayKey: [UInt8], delegate: RawNoiseDelegate) throws {
        state = .handshaking(try HandshakeState(pattern: .NK, initiator: true, prologue: WireHandshake.prologue, remoteStatic: relayKey))
        self.delegate = delegate
    }

    /// The connection's event loop, once the handler is in a pipeline.
    var eventLoop: EventLoop? { context?.eventLoop }

    var isEstablished: Bool {
        if case .established = state { return true }
        return false
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { open(context) }
    }

    /// The context holds this handler: keeping it would keep every closed channel alive.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        open(context)
        context.fireChannelActive()
    }

    private var opened = false
    private func open(_ context: ChannelHandlerContext) {
        guard !opened, case .handshaking(var handshake) = state else { return }
        opened = true
        do {
            var message = try handshake.writeMessage(payload: WireHandshake.clientPayload())
            WireHandshake.maskKey(of: &message)
            state = .handshaking(handshake)
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: message)), promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        decoder.append(unwrapInboundIn(data))
        while true {
            switch state {
            case .closed:
                return
            case var .handshaking(handshake):
                guard let message = decoder.nextRaw(count: WireHandshake.messageLength) else { return }
                var bytes = Array(message.readableBytesView)
                WireHandshake.unmaskKey(of: &bytes)
                guard let payload = try? handshake.readMessage(bytes), case .accepted = try? WireHandshake.answer(in: payload),
                    let transport = try? handshake.transport()
                else { return context.close(promise: nil) }
                state = .established(transport)
                delegate.established(self)
            case var .established(transport):
                let opened: ByteBuffer??
                do {
                    opened = try decoder.nextFrame(opening: &transport, allocator: context.channel.allocator)
                } catch {
                    opened = nil
                }
                guard let plaintext = opened else { return context.close(promise: nil) }
                state = .established(transport)
                guard let plaintext else { return }
                guard let entries = try? Bundle.entries(of: plaintext) else { return context.close(promise: nil) }
                for entry in entries { delegate.received(try? RelayCodec.decodeReply(entry).reply, on: self) }
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate.readComplete(self)
        flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        state = .closed
        delegate.closed(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    /// Queues a command with the next request id; `flush` (or the end of the read) sends it.
    func add(_ command: RelayCommand) {
        scratch.clear()
        RelayCodec.encode(command, requestId: takeRequestId(), into: &scratch)
        add(entry: scratch)
    }

    /// Queues a command with an opcode the relay does not know and an empty body.
    func addUnknownCommand() {
        scratch.clear()
        scratch.writeInteger(Self.unknownOpcode)
        scratch.writeInteger(takeRequestId())
        add(entry: scratch)
    }

    /// Seals whatever is queued into transport frames and writes them.
    func flush() {
        guard let context, case .established(var transport) = state else { return }
        do {
            try outbox.seal(with: &transport)
        } catch {
            return context.close(promise: nil)
        }
        state = .established(transport)
        if let frames = outbox.takeFrames() { context.writeAndFlush(wrapOutboundOut(frames), promise: nil) }
    }

    func close() { context?.close(promise: nil) }

    private func add(entry: ByteBuffer) {
        guard let context, case .established(var transport) = state else { return }
        do {
            try outbox.add(entry, sealingWith: &transport)
        } catch {
            return context.close(promise: nil)
        }
        state = .established(transport)
    }

    private func takeRequestId() -> UInt32 {
        defer { nextRequestId = nextRequestId == UInt32.max ? 1 : nextRequestId + 1 }
        return nextRequestId
    }
}

/// The first bytes a real client sends: one Noise NK message 1, recorded once so
/// that a flood can replay them. The relay cannot tell a replay from a new client: each costs it
/// a fresh ephemeral key and two DH operations.
enum RecordedOpening {
    static func make(relayKey: [UInt8]) throws -> [UInt8] {
        var handshake = try HandshakeState(pattern: .NK, initiator: true, prologue: WireHandshake.prologue, remoteStatic: relayKey)
        var message = try handshake.writeMessage(payload: WireHandshake.clientPayload())
        WireHandshake.maskKey(of: &message)
        return message
    }
}
