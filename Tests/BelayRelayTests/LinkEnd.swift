import NIOCore

/// One end of an in-memory connection (`MemoryLink`): the first handler of its channel's
/// pipeline, where a socket would be. What the pipeline writes and flushes arrives at the other
/// end as reads; a close arrives there as the end of the stream, after the bytes sent before
/// it, and closes that channel too (a socket channel closes at EOF unless half-closure is on).
///
/// It reads as a socket channel with autoRead does: only when the pipeline asks (`read`), and
/// the pipeline asks again after each read and once the channel is active. A handler that holds
/// back reads (the relay's rate pause, its backlog) therefore holds the peer's bytes back here,
/// as the kernel would. Not Sendable: it lives on its channel's event loop, and the other end
/// reaches it only through `NIOLoopBound` and that loop's `execute`.
final class LinkEnd: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var peer: NIOLoopBound<LinkEnd>?
    private var context: ChannelHandlerContext?
    /// Written, not yet flushed: a flush sends them together, a close drops them.
    private var unflushed: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    /// From the peer, not yet read.
    private var arrived = CircularBuffer<ByteBuffer>()
    private var peerEnded = false
    private var endSent = false
    private var readPending = false

    /// Joins this end to `peer`; on this end's event loop, before its channel is active.
    func join(_ peer: NIOLoopBound<LinkEnd>) {
        self.peer = peer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: This end's pipeline

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        // autoRead: the first read is asked for as the channel becomes active.
        context.channel.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        sendEnd()
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        unflushed.append((unwrapOutboundIn(data), promise))
    }

    func flush(context: ChannelHandlerContext) {
        guard !unflushed.isEmpty else { return }
        let writes = unflushed
        unflushed = []
        guard let peer, !endSent else {
            for (_, promise) in writes { promise?.fail(ChannelError.ioOnClosedChannel) }
            return
        }
        let buffers = writes.map(\.0)
        peer.eventLoop.execute { peer.value.receive(buffers) }
        for (_, promise) in writes { promise?.succeed() }
    }

    func read(context: ChannelHandlerContext) {
        readPending = true
        deliver()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        let dropped = unflushed
        unflushed = []
        for (_, promise) in dropped { promise?.fail(ChannelError.ioOnClosedChannel) }
        sendEnd()
        context.close(mode: mode, promise: promise)
    }

    private func sendEnd() {
        guard !endSent, let peer else { return }
        endSent = true
        peer.eventLoop.execute { peer.value.receiveEnd() }
    }

    // MARK: From the peer, on this end's event loop

    func receive(_ buffers: [ByteBuffer]) {
        guard !endSent else { return }  // closed here: a socket would drop them
        arrived.append(contentsOf: buffers)
        deliver()
    }

    func receiveEnd() {
        peerEnded = true
        deliver()
    }

    /// Hands over what has arrived if a read is pending: every buffer, then a read complete,
    /// then (autoRead) the next read is asked for through the whole pipeline. The end of the
    /// stream is seen once nothing is left to read.
    private func deliver() {
        guard readPending, let context, context.channel.isActive else { return }
        if !arrived.isEmpty {
            readPending = false
            while let buffer = arrived.popFirst(), context.channel.isActive {
                context.fireChannelRead(wrapInboundOut(buffer))
            }
            guard self.context != nil, context.channel.isActive else { return }
            context.fireChannelReadComplete()
            guard self.context != nil, context.channel.isActive else { return }
            context.channel.read()
        } else if peerEnded {
            context.close(promise: nil)
        }
    }
}
