import BelaySodium
import BelayWire
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The listening socket and the connections it accepted, around one `RelayCore`.
public final class RelayServer: Sendable {
    public let core: RelayCore
    public let localAddress: SocketAddress
    private let serverChannel: Channel
    /// Builds every connection's pipeline; holds the registry of live connections.
    private let initializer: ConnectionInitializer
    private let logger: Logger
    private let report: RepeatedTask

    private var connections: ConnectionRegistry { initializer.connections }

    private init(core: RelayCore, serverChannel: Channel, initializer: ConnectionInitializer, logger: Logger) throws {
        self.core = core
        self.serverChannel = serverChannel
        self.initializer = initializer
        self.logger = logger
        let connections = initializer.connections
        // Once a minute, and only when something was turned away: counts, never addresses.
        report = serverChannel.eventLoop.scheduleRepeatedTask(
            initialDelay: Self.admissionReportInterval,
            delay: Self.admissionReportInterval
        ) { _ in
            guard let c = connections.newSinceLastReport() else { return }
            logger.notice(
                "connections turned away",
                metadata: [
                    "refused": "\(c.refused)", "evicted": "\(c.evicted)", "open": "\(c.open)", "handshaking": "\(c.handshaking)",
                ])
        }
        guard let address = serverChannel.localAddress else { throw ServerError.noLocalAddress }
        self.localAddress = address
    }

    public enum ServerError: Error, CustomStringConvertible {
        case noLocalAddress
        case bind(String, Error)

        public var description: String {
            switch self {
            case .noLocalAddress: "the listening socket has no address"
            case let .bind(where_, e): "cannot listen on \(where_): \(e). Is another belayd running, or is the address wrong?"
            }
        }
    }

    public var port: Int { localAddress.port ?? 0 }

    static let admissionReportInterval = TimeAmount.seconds(60)

    /// Opens the store's core, binds, and starts accepting.
    public static func start(
        configuration: RelayConfiguration,
        relayKey: X25519.KeyPair,
        policyKey: Ed25519.SigningKey? = nil,
        store: any QueueStore,
        group: EventLoopGroup,
        acceptGroup: EventLoopGroup? = nil,
        clock: RelayClock = SystemClock(),
        random: RandomSource = SystemRandom(),
        automaticSweeps: Bool = true,
        admissionClock: @escaping @Sendable () -> NIODeadline = { .now() },
        observeConnection: (@Sendable (Channel) throws -> Void)? = nil,
        replays: HandshakeReplayCache = HandshakeReplayCache(),
        metrics: RelayMetrics = .disabled,
        logger: Logger
    ) async throws -> RelayServer {
        let core = try RelayCore(
            store: store, limits: CoreLimits(configuration), clock: clock, random: random,
            sweepInterval: automaticSweeps ? configuration.sweepIntervalSeconds : nil, logger: logger, metrics: metrics)
        core.start()
        // A relay started without a policy key of its own (tests) signs with a fresh one.
        let signer = try policyKey ?? Ed25519.SigningKey.generate()
        let policy = configuration.policy(relayKey: relayKey.publicKey, policyKey: signer.publicKey, issuedAt: clock.now())
        let settings = ConnectionSettings(configuration, policy: (policy.encoded(), signer), replays: replays)
        let connections = ConnectionRegistry(limits: AdmissionLimits(configuration), now: admissionClock, metrics: metrics)
        let initializer = ConnectionInitializer(
            core: core, settings: settings, relayKey: relayKey, connections: connections, observe: observeConnection, logger: logger)
        let bootstrap = ServerBootstrap(group: acceptGroup ?? group, childGroup: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AdmissionHandler(registry: connections))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(.autoRead, value: true)
            // Admitted by the AdmissionHandler on the listening socket.
            .childChannelInitializer { channel in initializer.initialize(channel) }
        let channel: Channel
        do {
            channel = try await bootstrap.bind(host: configuration.listen.host, port: configuration.listen.port).get()
        } catch {
            await core.shutdown()
            throw ServerError.bind(configuration.listen.description, error)
        }
        return try RelayServer(core: core, serverChannel: channel, initializer: initializer, logger: logger)
    }

    /// Serves a connection on `channel`, which did not come from the listening socket: tests
    /// join a client to the relay in memory this way. It is admitted and built exactly as an
    /// accepted socket is (the same limits, settings, core and observer), and counted among the
    /// connections `shutdown` closes. Refused, or if its pipeline cannot be built, it is closed.
    /// `channel` is registered and not yet active, as an accepted socket is at that point.
    package func serve(_ channel: Channel) async {
        guard connections.admitUntilClosed(channel) else {
            try? await channel.close()
            return
        }
        let initializer = self.initializer
        do {
            try await channel.eventLoop.flatSubmit { initializer.initialize(channel) }.get()
        } catch {
            try? await channel.close()
        }
    }

    public var connectionCount: Int { connections.count }

    /// Open, handshaking, refused and evicted connections so far: aggregate, for logs and tests.
    public var admissionCounts: (open: Int, handshaking: Int, refused: Int, evicted: Int) {
        let c = connections.counts()
        return (c.open, c.handshaking, c.refused, c.evicted)
    }

    /// Graceful stop: no new connections, everything submitted is committed and answered, then
    /// every connection is closed and the WAL checkpointed.
    public func shutdown() async {
        report.cancel()
        try? await serverChannel.close()
        await core.shutdown()
        for channel in connections.all() {
            // Queued behind the replies the core has just handed to the channel's event loop.
            try? await channel.close()
        }
    }
}
