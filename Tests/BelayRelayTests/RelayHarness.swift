import BelayClient
import BelayRelay
import BelaySodium
import BelayTestSupport
import BelayWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Which store a harness relay keeps its queues in. Most tests use memory (no files, no fsyncs);
/// `BELAY_RELAY_TEST_STORE=postgres` (which `make test` runs too) puts those on a throwaway
/// PostgreSQL database instead. Tests that restart the relay or act on its database file, as a
/// hostile operator would, ask for `.sqlite`.
enum TestStore: String, Sendable {
    case memory, sqlite, postgres

    static let configured: TestStore = ProcessInfo.processInfo.environment["BELAY_RELAY_TEST_STORE"].flatMap(TestStore.init) ?? .memory
}

/// A real relay on loopback TCP, in this process, with an injected clock and no automatic
/// sweeps: tests move time and call `sweep()` themselves. Admission's rate buckets read the
/// same clock, so they refill only when a test advances it.
final class RelayHarness: Sendable {
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

    var address: RelayAddress { RelayAddress(host: "127.0.0.1", port: server.port, publicKey: key.publicKey) }

    /// `directory`, `port` and `clock` restart a relay where an earlier one left off.
    static func start(
        store kind: TestStore? = nil, in parent: String? = nil, directory existing: String? = nil, port: Int = 0, clock existingClock: ManualClock? = nil,
        _ configure: (inout RelayConfiguration) -> Void = { _ in },
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
            observeConnection: observe, replays: replays, logger: logger)
        return RelayHarness(
            server: server, queueStore: store, clock: clock, key: key, directory: directory, group: group, logs: logs, replays: replays)
    }

    private init(
        server: RelayServer, queueStore: any QueueStore, clock: ManualClock, key: X25519.KeyPair, directory: String,
        group: MultiThreadedEventLoopGroup, logs: LogCapture, replays: HandshakeReplayCache
    ) {
        self.replays = replays
        self.server = server
        self.queueStore = queueStore
        self.clock = clock
        self.key = key
        self.directory = directory
        self.group = group
        self.logs = logs
    }

    func connect(from source: String? = nil, onPush: @escaping @Sendable (RelayReply) -> Void = { _ in }) async throws -> RelayConnection {
        let local = try source.map { try SocketAddress(ipAddress: $0, port: 0) }
        return try await RelayConnection.connect(to: address, group: group, localAddress: local, onPush: onPush)
    }

    func stop() async {
        await server.shutdown()
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
