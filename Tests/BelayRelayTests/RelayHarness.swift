import BelayClient
import BelayRelay
import BelaySodium
import BelayTestSupport
import BelayWire
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing

/// Which store a harness relay keeps its queues in. Most tests use memory (no files, no fsyncs);
/// `BELAY_RELAY_TEST_STORE=postgres` (which `make test` runs too) puts those on a throwaway
/// PostgreSQL database instead. Tests that restart the relay or act on its database file, as a
/// hostile operator would, ask for `.sqlite`.
enum TestStore: String, Sendable {
    case memory, sqlite, postgres

    static let configured: TestStore = ProcessInfo.processInfo.environment["BELAY_RELAY_TEST_STORE"].flatMap(TestStore.init) ?? .memory
}

/// A real relay in this process, with an injected clock and no automatic sweeps: tests move
/// time and call `sweep()` themselves. Admission's rate buckets read the same clock, so they
/// refill only when a test advances it.
///
/// Clients reach it in memory by default (`Transport.link`): each connection is a pair of
/// channels joined by a `MemoryLink`, the relay's end served by the relay exactly as an accepted
/// socket is. Their event loops' time (timeouts, the per-connection rate bucket, push jitter)
/// moves only with `advanceLinks`. A relay started with `.tcp` is reached over loopback TCP,
/// for what only sockets show: source addresses, the listening socket's limits, raw sockets and
/// proxies. Either way the relay also listens on loopback, and its address names that port.
final class RelayHarness: Sendable {
    enum Transport: Sendable {
        case link, tcp
    }

    let server: RelayServer
    let queueStore: any QueueStore
    /// The SQLite store, for tests that act on its file (they start the relay with `.sqlite`).
    var store: RelayStore {
        guard let s = queueStore as? RelayStore else { preconditionFailure("this test needs its relay started with store: .sqlite") }
        return s
    }
    let clock: ManualClock
    let key: X25519.KeyPair
    let directory: String
    let group: MultiThreadedEventLoopGroup
    let logs: LogCapture
    /// The message 1s this relay has answered; a second relay given it acts as the same relay.
    let replays: HandshakeReplayCache
    let transport: Transport
    /// The event loops of the relay's and the clients' ends of every link.
    let relayLoop = NIOAsyncTestingEventLoop()
    let clientLoop = NIOAsyncTestingEventLoop()
    /// The clients' ends of the links, closed at `stop`; and whether the relay still serves.
    private let links = Mutex<(clients: [NIOAsyncTestingChannel], serving: Bool)>(([], true))

    var address: RelayAddress { RelayAddress(host: "127.0.0.1", port: server.port, publicKey: key.publicKey) }

    /// `directory`, `port` and `clock` restart a relay where an earlier one left off.
    static func start(
        store kind: TestStore? = nil, in parent: String? = nil, directory existing: String? = nil, port: Int = 0, clock existingClock: ManualClock? = nil,
        transport: Transport = .link, _ configure: (inout RelayConfiguration) -> Void = { _ in },
        observe: (@Sendable (Channel) throws -> Void)? = nil, replays: HandshakeReplayCache = HandshakeReplayCache()
    ) async throws -> RelayHarness {
        var config = RelayConfiguration()
        config.listen = HostPort(host: "127.0.0.1", port: port)
        config.diskReserveBytes = 1 << 20  // a small reserve: tests start many relays
        configure(&config)
        let directory =
            existing
            ?? (parent.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory)
            .appendingPathComponent("belay-test-\(UUID().uuidString)").path
        let state = RelayStateDirectory(path: directory)
        let (key, _) = try state.initialise()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let clock = existingClock ?? ManualClock()
        let logs = LogCapture()
        var logger = Logger(label: "belayd-test") { _ in logs }
        logger.logLevel = config.logLevel
        let store: any QueueStore =
            switch kind ?? (existing == nil ? TestStore.configured : .sqlite) {
            case .memory: MemoryQueueStore()
            case .sqlite: try RelayStore(path: state.databasePath)
            case .postgres: try PostgresQueueStore(try await PostgresCluster.shared.freshDatabase(), logger: logger)
            }
        let server = try await RelayServer.start(
            configuration: config, relayKey: key, store: store, group: group,
            clock: clock, automaticSweeps: false,
            admissionClock: { .uptimeNanoseconds(clock.now() * 1_000_000_000) },
            observeConnection: Self.guarding(transport, observe), replays: replays, logger: logger)
        let relay = RelayHarness(
            server: server, queueStore: store, clock: clock, key: key, directory: directory, group: group, logs: logs, replays: replays,
            transport: transport)
        MemoryNetwork.register(relay)
        return relay
    }

    /// A relay reached in memory refuses TCP connections and says so: a test that goes around
    /// its link fails instead of passing over TCP unnoticed.
    private static func guarding(
        _ transport: Transport, _ observe: (@Sendable (Channel) throws -> Void)?
    ) -> (@Sendable (Channel) throws -> Void)? {
        guard transport == .link else { return observe }
        return { channel in
            if !(channel is NIOAsyncTestingChannel) {
                Issue.record("a TCP connection to a relay started for in-memory links; start it with transport: .tcp")
                throw ChannelError.operationUnsupported
            }
            try observe?(channel)
        }
    }

    private init(
        server: RelayServer, queueStore: any QueueStore, clock: ManualClock, key: X25519.KeyPair, directory: String,
        group: MultiThreadedEventLoopGroup, logs: LogCapture, replays: HandshakeReplayCache, transport: Transport
    ) {
        self.replays = replays
        self.server = server
        self.queueStore = queueStore
        self.clock = clock
        self.key = key
        self.directory = directory
        self.group = group
        self.logs = logs
        self.transport = transport
    }

    enum HarnessError: Error {
        case sourceNeedsTCP
    }

    /// A client connection by the relay's transport. `source` (another host of 127.0.0.0/8)
    /// needs `.tcp`: the in-memory link has no source addresses of its own.
    func connect(from source: String? = nil, onPush: @escaping @Sendable (RelayReply) -> Void = { _ in }) async throws -> RelayConnection {
        switch transport {
        case .link:
            guard source == nil else { throw HarnessError.sourceNeedsTCP }
            return try await linkConnection(onPushes: { for reply in $0 { onPush(reply) } })
        case .tcp:
            let local = try source.map { try SocketAddress(ipAddress: $0, port: 0) }
            return try await RelayConnection.connect(to: address, group: group, localAddress: local, onPush: onPush)
        }
    }

    /// A client connection over a new link, its handshake complete.
    func linkConnection(onPushes: @escaping @Sendable ([RelayReply]) -> Void) async throws -> RelayConnection {
        try await RelayConnection.establish(over: try await openLink(), to: address, onPushes: onPushes)
    }

    /// The client's channel of a new link, active, its handshake not started: `prepare` adds the
    /// client's handlers before the relay can say anything. A relay that has stopped serving is
    /// not there, as a closed listening socket is not.
    func openLink(prepare: @escaping @Sendable (Channel) throws -> Void = { _ in }) async throws -> NIOAsyncTestingChannel {
        guard links.withLock({ $0.serving }) else { throw RelayClientError.cannotConnect("nothing is listening at that address (is the relay running?)") }
        let pair = try await MemoryLink.pair(
            clientLoop: clientLoop, serverLoop: relayLoop, source: try SocketAddress(ipAddress: "127.0.0.1", port: 40_000),
            destination: try SocketAddress(ipAddress: "127.0.0.1", port: server.port))
        try await clientLoop.submit { try prepare(pair.client) }.get()
        links.withLock { $0.clients.append(pair.client) }
        await server.serve(pair.server)
        try await MemoryLink.activate(pair)
        return pair.client
    }

    /// Moves the time of every link's event loops (both ends), running the timers that come
    /// due: the relay's handshake and idle timeouts, its rate pauses and push jitter, the
    /// client's request and connect timeouts. The relay's own clock is `clock`, apart.
    func advanceLinks(by amount: TimeAmount) async {
        await relayLoop.advanceTime(by: amount)
        await clientLoop.advanceTime(by: amount)
    }

    /// The relay goes away (its core, its connections, its listening socket), but the harness's
    /// event loops stay: people's clients may share them. `stop` after this finishes the rest.
    func stopServing() async {
        let wasServing = links.withLock { l in
            defer { l.serving = false }
            return l.serving
        }
        guard wasServing else { return }
        MemoryNetwork.unregister(self)
        await server.shutdown()
    }

    func stop() async {
        await stopServing()
        // The relay has closed its ends; a client end whose relay end was never served is closed here.
        for client in links.withLock({ $0.clients }) { try? await client.close() }
        await relayLoop.shutdownGracefully()
        await clientLoop.shutdownGracefully()
        try? queueStore.close()
        try? await group.shutdownGracefully()
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Every byte of the database file and its WAL.
    func databaseBytes() throws -> [UInt8] {
        var all = [UInt8]()
        for suffix in ["", "-wal", "-shm"] {
            if let d = FileManager.default.contents(atPath: directory + "/relay.db" + suffix) { all += d }
        }
        return all
    }
}
