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
    private let connections: ConnectionRegistry
    private let logger: Logger

    private init(core: RelayCore, serverChannel: Channel, connections: ConnectionRegistry, logger: Logger) throws {
        self.core = core
        self.serverChannel = serverChannel
        self.connections = connections
        self.logger = logger
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

    /// Opens the store's core, binds, and starts accepting.
    public static func start(
        configuration: RelayConfiguration,
        relayKey: X25519.KeyPair,
        store: RelayStore,
        group: EventLoopGroup,
        clock: RelayClock = SystemClock(),
        random: RandomSource = SystemRandom(),
        automaticSweeps: Bool = true,
        logger: Logger
    ) async throws -> RelayServer {
        let core = try RelayCore(store: store, limits: CoreLimits(configuration), clock: clock, random: random,
                                 sweepInterval: automaticSweeps ? configuration.sweepIntervalSeconds : nil, logger: logger)
        core.start()
        let settings = ConnectionSettings(configuration)
        let connections = ConnectionRegistry(limit: configuration.maxConnections)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(.autoRead, value: true)
            .childChannelInitializer { channel in
                guard connections.admit(channel) else {
                    // At the connection limit: close without a word (docs/PROTOCOL.md §3.3).
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in connections.remove(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectionHandler(core: core, settings: settings, relayStatic: relayKey,
                                          eventLoop: channel.eventLoop, logger: logger))
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.bind(host: configuration.listen.host, port: configuration.listen.port).get()
        } catch {
            await core.shutdown()
            throw ServerError.bind(configuration.listen.description, error)
        }
        return try RelayServer(core: core, serverChannel: channel, connections: connections, logger: logger)
    }

    public var connectionCount: Int { connections.count }

    /// Graceful stop: no new connections, everything submitted is committed and answered, then
    /// every connection is closed and the WAL checkpointed.
    public func shutdown() async {
        try? await serverChannel.close()
        await core.shutdown()
        for channel in connections.all() {
            // Queued behind the replies the core has just handed to the channel's event loop.
            try? await channel.close()
        }
    }
}

/// Live connections, for the connection limit and for closing them all at shutdown.
final class ConnectionRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: Channel]>([:])
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    func admit(_ channel: Channel) -> Bool {
        channels.withLock { channels in
            guard channels.count < limit else { return false }
            channels[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    func remove(_ channel: Channel) {
        _ = channels.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    var count: Int { channels.withLock { $0.count } }

    func all() -> [Channel] { channels.withLock { Array($0.values) } }
}
