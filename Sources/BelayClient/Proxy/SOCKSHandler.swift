import BelayWire
import NIOCore

/// Runs the SOCKS5 exchange on a new connection to the proxy, then makes way for the relay
/// protocol: once `tunnel` has succeeded, the caller adds `ClientHandler` behind this handler
/// and removes this one, which passes on whatever the relay sent in between.
///
/// Not NIOSOCKS's `SOCKSClientHandler` (swift-nio-extras 1.35.2): its client offers only "no
/// authentication", and queue isolation needs RFC 1929 username/password, which is what Tor
/// isolates circuits by. The exchange itself is `SOCKS5Client`, a pure state machine.
final class SOCKSHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A relay speaks only when spoken to, and its first answer is one frame: more than that
    /// before the handshake has even started is not a relay, and is not kept.
    static let maxEarlyBytes = WireLimits.frameHeaderLength + WireLimits.maxFrameLength

    private var client: SOCKS5Client
    private let tunnel: EventLoopPromise<Void>
    private let timeLimit: TimeAmount
    private var timer: Scheduled<Void>?
    /// Bytes from the relay that arrived after the proxy's reply, for the handler behind this one.
    private var early: [UInt8] = []

    init(request: SOCKS5Client.Request, tunnel: EventLoopPromise<Void>, timeLimit: TimeAmount) {
        client = SOCKS5Client(request)
        self.tunnel = tunnel
        self.timeLimit = timeLimit
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeLimit) {
            let (handler, context) = bound.value
            if let error = handler.client.timedOut() { handler.fail(error, context) }
        }
        if context.channel.isActive { act(client.start(), context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        act(client.start(), context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        act(client.receive(Array(unwrapInboundIn(data).readableBytesView)), context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let error = client.closed() { fail(error, context) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A reset or another I/O error before the tunnel is up ends the exchange like a close.
        if let failure = client.closed() { return fail(failure, context) }
        context.fireErrorCaught(error)
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        timer?.cancel()
        if !early.isEmpty {
            context.fireChannelRead(wrapInboundOut(context.channel.allocator.buffer(bytes: early)))
            context.fireChannelReadComplete()
            early = []
        }
        context.leavePipeline(removalToken: removalToken)
    }

    private func act(_ action: SOCKS5Client.Action, _ context: ChannelHandlerContext) {
        switch action {
        case let .send(bytes):
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
        case .wait:
            break
        case let .established(leftover):
            timer?.cancel()
            tunnel.succeed(())
            keep(leftover, context)
        case let .forward(bytes):
            keep(bytes, context)
        case let .fail(error):
            fail(error, context)
        }
    }

    private func keep(_ bytes: [UInt8], _ context: ChannelHandlerContext) {
        guard early.count + bytes.count <= Self.maxEarlyBytes else { return context.close(promise: nil) }
        early += bytes
    }

    private func fail(_ error: SOCKS5Error, _ context: ChannelHandlerContext) {
        timer?.cancel()
        tunnel.fail(error)
        context.close(promise: nil)
    }
}
