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

/// Collects pushes (MSG, END) as they arrive so a test can await the next ones.
final class PushInbox: Sendable {
    private let state = Mutex<(items: [RelayReply], waiters: [(Int, CheckedContinuation<[RelayReply], Never>)])>(([], []))

    var handler: @Sendable (RelayReply) -> Void { { [self] reply in self.append(reply) } }

    func append(_ reply: RelayReply) {
        let ready: [(CheckedContinuation<[RelayReply], Never>, [RelayReply])] = state.withLock { s in
            s.items.append(reply)
            var out: [(CheckedContinuation<[RelayReply], Never>, [RelayReply])] = []
            s.waiters.removeAll { (count, c) in
                guard s.items.count >= count else { return false }
                out.append((c, Array(s.items.prefix(count))))
                return true
            }
            return out
        }
        for (c, items) in ready { c.resume(returning: items) }
    }

    /// Waits until at least `count` pushes have arrived and returns the first `count`.
    func first(_ count: Int) async -> [RelayReply] {
        await withCheckedContinuation { c in
            let items: [RelayReply]? = state.withLock { s in
                if s.items.count >= count { return Array(s.items.prefix(count)) }
                s.waiters.append((count, c))
                return nil
            }
            if let items { c.resume(returning: items) }
        }
    }

    var all: [RelayReply] { state.withLock { $0.items } }
}

/// A swift-log handler that keeps every formatted line, to check what the relay would log.
final class LogCapture: LogHandler, @unchecked Sendable {
    private let lines = Mutex<[String]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let text = "\(event.level) \(event.message) \(event.metadata ?? [:]) \(metadata) \(event.error.map { "\($0)" } ?? "")"
        lines.withLock { $0.append(text) }
    }

    var all: [String] { lines.withLock { $0 } }
}

extension RelayReply {
    var delivery: Delivery? {
        if case let .message(d) = self { return d }
        return nil
    }
}

/// A queue created by `owner` with a sender key set, the common starting point.
struct SecuredQueue {
    let recipient: EntityID
    let sender: EntityID
    let recipientKey: Ed25519.SigningKey
    let senderKey: Ed25519.SigningKey

    static func make(on owner: RelayConnection) async throws -> SecuredQueue {
        let rk = try Ed25519.SigningKey.generate()
        let sk = try Ed25519.SigningKey.generate()
        let (r, s) = try await owner.createQueue(recipientKey: rk)
        try await owner.secure(recipient: r, senderKey: sk.publicKey)
        return SecuredQueue(recipient: r, sender: s, recipientKey: rk, senderKey: sk)
    }

    /// A new connection that has proven this queue's sender key.
    func sender(on relay: RelayHarness) async throws -> RelayConnection {
        let c = try await relay.connect()
        try await c.authorise(.sender, sender, key: senderKey)
        return c
    }
}
