import BelayWire
import NIOCore
import NIOPosix

extension RelayConnection {
    /// Every byte on the wire and each relay connection's only TCP connection go to the proxy.
    /// The relay's host is sent as the proxy is to find it (`SOCKS5Address`: a name stays a
    /// name), and the Noise handshake starts only once the proxy says the tunnel is up:
    /// `ClientHandler` is added then, behind the SOCKS handler, which then leaves.
    static func connectThroughProxy(
        to address: RelayAddress, proxy: ProxyURL, authentication: SOCKS5Client.Authentication, eventLoop: EventLoop,
        connectTimeout: TimeAmount, tunnelTimeout: TimeAmount, localAddress: SocketAddress?,
        makeHandler: @escaping @Sendable () -> ClientHandler
    ) async throws(RelayClientError) -> (Channel, NIOLoopBound<ClientHandler>) {
        let request: SOCKS5Client.Request
        guard let port = UInt16(exactly: address.port), port > 0 else { throw .cannotConnect("its port is not from 1 to 65535; check the address") }
        do {
            request = try SOCKS5Client.Request(target: SOCKS5Address(host: address.host), port: port, authentication: authentication)
        } catch {
            throw .cannotConnect(error.description)
        }
        let tunnel = eventLoop.makePromise(of: Void.self)
        let channel: Channel
        do {
            channel =
                try await bootstrap(eventLoop: eventLoop, connectTimeout: connectTimeout, localAddress: localAddress)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(SOCKSHandler(request: request, tunnel: tunnel, timeLimit: tunnelTimeout))
                    }
                }
                .connect(host: proxy.host, port: proxy.port).get()
        } catch {
            tunnel.fail(error)
            throw .proxyUnreachable(proxy: proxy.description, why: ConnectFailure.describe(error, peer: .proxy))
        }
        do {
            try await tunnel.futureResult.get()
            return try await eventLoop.submit {
                // The tunnel closed before the handshake could start: as if the relay hung up.
                guard channel.isActive else { throw RelayClientError.handshakeRejected }
                let handler = makeHandler()
                let pipeline = channel.pipeline.syncOperations
                try pipeline.addHandler(handler)
                // Passes on what the relay sent since the proxy's reply, if anything.
                pipeline.removeHandler(try pipeline.handler(type: SOCKSHandler.self), promise: nil)
                return (channel, NIOLoopBound(handler, eventLoop: eventLoop))
            }.get()
        } catch {
            try? await channel.close()
            throw RelayClientError(error, proxy: proxy)
        }
    }
}

extension RelayClientError {
    /// What a failed tunnel means to the person: a proxy they must fix, or a relay the proxy
    /// could not reach (the same advice as for a direct connection).
    init(_ error: Error, proxy: ProxyURL) {
        switch error {
        case let error as RelayClientError:
            self = error
        case let SOCKS5Error.connectFailed(code):
            self = .cannotConnect("the proxy could not reach it: \(code)")
        case SOCKS5Error.timedOut(.connectReply):
            self = .cannotConnect("the proxy did not reach it in time; over Tor, try again in a minute")
        case let error as SOCKS5Error:
            self = .proxyUnreachable(proxy: proxy.description, why: error.description)
        default:
            self = .proxyUnreachable(proxy: proxy.description, why: ConnectFailure.describe(error, peer: .proxy))
        }
    }
}
