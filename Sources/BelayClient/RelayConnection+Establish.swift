import BelaySodium
import BelayWire
import NIOCore
import NIOPosix

extension RelayConnection {
    /// Connects and completes the handshake. `onPush` receives MSG and END pushes on the
    /// connection's event loop. `route` says whether to go through a SOCKS5 proxy (a fresh
    /// isolation username and password each time). `localAddress` picks the source address
    /// (tests use it to stand on another host of 127.0.0.0/8).
    public static func connect(
        to address: RelayAddress,
        group: EventLoopGroup,
        route: RelayRoute = .direct,
        connectTimeout: TimeAmount = .seconds(10),
        requestTimeout: TimeAmount = .seconds(30),
        localAddress: SocketAddress? = nil,
        onPush: @escaping @Sendable (RelayReply) -> Void = { _ in }
    ) async throws -> RelayConnection {
        try await establish(
            to: address, group: group, route: route, connectTimeout: connectTimeout, requestTimeout: requestTimeout, localAddress: localAddress,
            onPushes: { for reply in $0 { onPush(reply) } })
    }

    /// `connect`, but `onPushes` receives the pushes of one read from the socket together (what
    /// the relay pushed at once), in order: the agent records those together.
    static func establish(
        to address: RelayAddress,
        group: EventLoopGroup,
        route: RelayRoute = .direct,
        connectTimeout: TimeAmount = .seconds(10),
        requestTimeout: TimeAmount = .seconds(30),
        tunnelTimeout: TimeAmount = RelayRoute.tunnelTimeout,
        localAddress: SocketAddress? = nil,
        onPushes: @escaping @Sendable ([RelayReply]) -> Void
    ) async throws -> RelayConnection {
        let eventLoop = group.next()
        return try await handshake(
            with: address, on: eventLoop, connectTimeout: connectTimeout, requestTimeout: requestTimeout, onPushes: onPushes
        ) { makeHandler in
            switch route {
            case let .socks5(proxy):
                return try await connectThroughProxy(
                    to: address, proxy: proxy, authentication: proxy.authentication(random: SystemRandom()), eventLoop: eventLoop,
                    connectTimeout: connectTimeout, tunnelTimeout: tunnelTimeout, localAddress: localAddress, makeHandler: makeHandler)
            case .direct:
                // A direct connection would look the onion name up in the DNS, and fail.
                guard !address.isOnion else { throw RelayClientError.onionNeedsProxy }
                return try await connectDirectly(
                    to: address, eventLoop: eventLoop, connectTimeout: connectTimeout, localAddress: localAddress, makeHandler: makeHandler)
            }
        }
    }

    /// `establish` over a channel that is already connected to the relay by other means than
    /// TCP: tests join a client to an in-process relay in memory this way. The client's handler
    /// is added to `channel` and the handshake waited for exactly as over a socket; a channel
    /// that has closed by then is a relay that hung up (`handshakeRejected`).
    package static func establish(
        over channel: Channel,
        to address: RelayAddress,
        connectTimeout: TimeAmount = .seconds(10),
        requestTimeout: TimeAmount = .seconds(30),
        onPushes: @escaping @Sendable ([RelayReply]) -> Void
    ) async throws -> RelayConnection {
        try await handshake(
            with: address, on: channel.eventLoop, connectTimeout: connectTimeout, requestTimeout: requestTimeout, onPushes: onPushes
        ) { makeHandler in
            try await channel.eventLoop.submit {
                guard channel.isActive else { throw RelayClientError.handshakeRejected }
                let handler = makeHandler()
                try channel.pipeline.syncOperations.addHandler(handler)
                return (channel, NIOLoopBound(handler, eventLoop: channel.eventLoop))
            }.get()
        }
    }

    /// What every way of connecting shares: `open` gets the channel to the relay and adds the
    /// handler it is given (made on the channel's event loop, where it stays), which starts the
    /// handshake once the channel is active; this waits for the relay's answer within
    /// `connectTimeout`.
    private static func handshake(
        with address: RelayAddress, on eventLoop: EventLoop, connectTimeout: TimeAmount, requestTimeout: TimeAmount,
        onPushes: @escaping @Sendable ([RelayReply]) -> Void,
        open: (_ makeHandler: @escaping @Sendable () -> ClientHandler) async throws -> (Channel, NIOLoopBound<ClientHandler>)
    ) async throws -> RelayConnection {
        let handshakeDone = eventLoop.makePromise(of: [UInt8].self)
        let handshake = try HandshakeState(pattern: .NK, initiator: true, prologue: WireHandshake.prologue, remoteStatic: address.publicKey)
        let makeHandler: @Sendable () -> ClientHandler = {
            ClientHandler(handshake: handshake, handshakeDone: handshakeDone, onPush: onPushes)
        }
        let channel: Channel
        let handler: NIOLoopBound<ClientHandler>
        do {
            (channel, handler) = try await open(makeHandler)
        } catch {
            handshakeDone.fail(error)
            throw error
        }
        // A relay whose key differs from the address cannot read message 1 and stays silent
        // until its own handshake timeout (docs/PROTOCOL.md §2.1), as an overloaded one may.
        let timeout = eventLoop.scheduleTask(in: connectTimeout) {
            handshakeDone.fail(RelayClientError.handshakeRejected)
            channel.close(promise: nil)
        }
        do {
            let hash = try await handshakeDone.futureResult.get()
            timeout.cancel()
            return RelayConnection(address: address, sessionHash: hash, channel: channel, handler: handler, requestTimeout: requestTimeout)
        } catch {
            timeout.cancel()
            try? await channel.close()
            throw error
        }
    }

    /// The TCP side of every relay connection, direct or to a proxy.
    static func bootstrap(eventLoop: EventLoop, connectTimeout: TimeAmount, localAddress: SocketAddress?) -> ClientBootstrap {
        var bootstrap = ClientBootstrap(group: eventLoop).connectTimeout(connectTimeout).channelOption(.socketOption(.tcp_nodelay), value: 1)
        if let localAddress { bootstrap = bootstrap.bind(to: localAddress) }
        return bootstrap
    }

    private static func connectDirectly(
        to address: RelayAddress, eventLoop: EventLoop, connectTimeout: TimeAmount, localAddress: SocketAddress?,
        makeHandler: @escaping @Sendable () -> ClientHandler
    ) async throws(RelayClientError) -> (Channel, NIOLoopBound<ClientHandler>) {
        let added = eventLoop.makePromise(of: NIOLoopBound<ClientHandler>.self)
        let channel: Channel
        do {
            channel =
                try await bootstrap(eventLoop: eventLoop, connectTimeout: connectTimeout, localAddress: localAddress)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = makeHandler()
                        try channel.pipeline.syncOperations.addHandler(handler)
                        added.succeed(NIOLoopBound(handler, eventLoop: channel.eventLoop))
                    }
                }
                .connect(host: address.host, port: address.port).get()
        } catch {
            let why = ConnectFailure.describe(error)
            added.fail(RelayClientError.cannotConnect(why))
            throw .cannotConnect(why)
        }
        do {
            return (channel, try await added.futureResult.get())
        } catch {
            try? await channel.close()
            throw .cannotConnect(ConnectFailure.describe(error))
        }
    }
}
