import BelaySodium
import Logging
import NIOCore

/// One client connection on its channel: feeds what happens to a `ConnectionStateMachine` and
/// does what it answers (write, hand commands to the core, read, run timers, close). Replies
/// from the core arrive through the connection's `ConnectionSink`. Not Sendable: everything here
/// runs on the channel's event loop.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let core: RelayCore
    private let eventLoop: EventLoop
    private let logger: Logger
    /// Tells the admission table the handshake is done (the connection no longer counts
    /// against the handshaking limits).
    private let onEstablished: @Sendable () -> Void
    /// The connection as the core knows it, from the first command to the disconnect.
    private let sink: ConnectionSink
    private var machine: ConnectionStateMachine
    private var context: ChannelHandlerContext?
    private var timers: [ConnectionTimer: Scheduled<Void>] = [:]

    init(
        core: RelayCore, settings: ConnectionSettings, relayStatic: X25519.KeyPair, eventLoop: EventLoop, logger: Logger,
        onEstablished: @escaping @Sendable () -> Void = {}, mayCreate: @escaping @Sendable () -> Bool = { true }
    ) {
        self.core = core
        self.eventLoop = eventLoop
        self.logger = logger
        self.onEstablished = onEstablished
        sink = ConnectionSink(eventLoop: eventLoop)
        machine = ConnectionStateMachine(settings: settings, relayStatic: relayStatic, mayCreate: mayCreate)
    }

    // MARK: Events in

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        sink.attach(self)
        if context.channel.isActive { perform(machine.channelActive(now: eventLoop.now)) }
    }

    /// The context holds this handler, so keeping it past removal would be a cycle that keeps
    /// the whole channel (its buffers included) alive after the connection has closed.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        cancelTimers()
    }

    func channelActive(context: ChannelHandlerContext) {
        perform(machine.channelActive(now: eventLoop.now))
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        perform(machine.channelInactive())
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        perform(machine.errorCaught())
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        perform(machine.bytesReceived(unwrapInboundIn(data), now: eventLoop.now))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        perform(machine.readComplete())
    }

    func read(context: ChannelHandlerContext) {
        perform(machine.readRequested(writable: context.channel.isWritable))
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        perform(machine.writabilityChanged(writable: context.channel.isWritable))
        context.fireChannelWritabilityChanged()
    }

    /// From the core, through the sink, on this event loop.
    func receive(_ outcomes: [CoreOutcome]) {
        guard let context else { return }
        perform(machine.outcomesReceived(outcomes, now: eventLoop.now, writable: context.channel.isWritable))
    }

    private func timerFired(_ timer: ConnectionTimer) {
        timers[timer] = nil
        guard let context else { return }
        switch timer {
        case .handshakeTimeout: perform(machine.handshakeTimerFired())
        case .idleCheck: perform(machine.idleCheckFired(now: eventLoop.now))
        case .rateHold: perform(machine.rateHoldEnded(now: eventLoop.now, writable: context.channel.isWritable))
        case .pushRelease: perform(machine.pushReleaseFired(now: eventLoop.now))
        }
    }

    // MARK: Actions out

    private func perform(_ actions: [ConnectionAction]) {
        for action in actions {
            switch action {
            case let .write(bytes):
                context?.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
            case let .submit(requestId, command):
                core.submit(CoreRequest(sink: sink, requestId: requestId, command: command))
            case .read:
                context?.read()
            case .established:
                onEstablished()
            case let .schedule(timer, delay):
                timers[timer]?.cancel()
                timers[timer] = eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
                    self?.timerFired(timer)
                }
            case let .cancel(timer):
                timers.removeValue(forKey: timer)?.cancel()
            case let .close(reason):
                // Never the client's address.
                logger.debug("closing connection", metadata: ["reason": "\(reason)"])
                cancelTimers()
                context?.close(promise: nil)
            }
        }
    }

    private func cancelTimers() {
        for timer in timers.values { timer.cancel() }
        timers = [:]
    }
}
