import NIOCore

/// Sits on the listening socket, in front of NIO's accept handler: a connection that the
/// admission table refuses is closed here, before its socket options are set, its pipeline is
/// built or it is registered with an event loop. Under a connection flood nearly every accepted
/// socket is refused, so this is the relay's cost per flooding connection.
final class AdmissionHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = Channel
    typealias InboundOut = Channel

    private let registry: ConnectionRegistry

    init(registry: ConnectionRegistry) {
        self.registry = registry
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        guard registry.admitUntilClosed(child) else {
            // Over a connection limit: close without a word (docs/PROTOCOL.md §3.3).
            child.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }
}
