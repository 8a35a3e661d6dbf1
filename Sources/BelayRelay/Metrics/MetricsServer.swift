import BelayWire
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle

/// Serves `GET /metrics` in Prometheus's text format on its own listener (`metrics_listen`),
/// apart from the relay's port: scrapers never speak to the relay's protocol, and the relay's
/// port never answers HTTP. Everything else gets 404.
public struct MetricsServer: Service {
    let listen: HostPort
    let registry: PrometheusCollectorRegistry
    let logger: Logger
    /// Told the bound address (port 0 picks one).
    let onBound: @Sendable (SocketAddress) -> Void

    public init(listen: HostPort, registry: PrometheusCollectorRegistry, logger: Logger, onBound: @escaping @Sendable (SocketAddress) -> Void = { _ in }) {
        (self.listen, self.registry, self.logger, self.onBound) = (listen, registry, logger, onBound)
    }

    public func run() async throws {
        let registry = self.registry
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap { channel.pipeline.addHandler(MetricsHandler(registry: registry)) }
            }
            .bind(host: listen.host, port: listen.port).get()
        if let address = channel.localAddress {
            logger.notice("metrics served", metadata: ["listen": "\(address)"])
            onBound(address)
        }
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// One request, one response: the registry's text for `GET /metrics`, 404 otherwise.
final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: PrometheusCollectorRegistry
    private var head: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(h): head = h
        case .body: break
        case .end:
            guard let h = head else { return }
            head = nil
            let found = h.method == .GET && h.uri.split(separator: "?").first == "/metrics"
            var body = context.channel.allocator.buffer(capacity: 4096)
            if found {
                body.writeBytes(registry.emitToBuffer())
            } else {
                body.writeString("not found; metrics are at /metrics\n")
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: found ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8")
            headers.add(name: "Content-Length", value: "\(body.readableBytes)")
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: found ? .ok : .notFound, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
        }
    }
}
