import BelaySodium
import BelayTestSupport
import BelayWire
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import BelayClient
@testable import BelayRelay

/// What a connection costs once it is gone, and how much it may ask while it lives: on a
/// testing loop whose time moves only when the test moves it, so nothing depends on timing.
/// The core answers from its own thread through the loop's `execute`, which the loop runs at
/// once; a test that needs those answers in waits with `core.barrier()` and then `loop.run()`.
@Suite struct ConnectionLifetimeTests {
    final class Relay {
        let core: RelayCore
        let store: RelayStore
        let key: X25519.KeyPair
        let directory: String
        let config: RelayConfiguration
        let logger = Logger(label: "lifetime-test") { _ in SwiftLogNoOpLogHandler() }

        /// `startingCore: false` leaves the core's thread for the test to start: until then
        /// everything submitted waits for it, as for a core that has fallen behind.
        init(startingCore: Bool = true, _ configure: (inout RelayConfiguration) -> Void = { _ in }) throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("belay-lifetime-\(UUID().uuidString)").path
            let state = RelayStateDirectory(path: directory)
            (key, _) = try state.initialise()
            store = try RelayStore(path: state.databasePath)
            var c = RelayConfiguration()
            c.diskReserveBytes = 0
            configure(&c)
            config = c
            core = try RelayCore(store: store, limits: CoreLimits(c), clock: ManualClock(), sweepInterval: nil, logger: logger)
            if startingCore { core.start() }
        }

        /// An active connection on a testing loop of its own, and a watch on its handler that
        /// does not keep it. With `reads`, a handler in front counts the reads the connection
        /// asks of the socket.
        func connection(reads: ReadCounter? = nil) async throws -> (NIOAsyncTestingChannel, Freed<ConnectionHandler>) {
            let loop = NIOAsyncTestingEventLoop()
            let freed = Freed<ConnectionHandler>(loop: loop)
            let channel = try await NIOAsyncTestingChannel(loop: loop) { [core, config, key, logger] channel in
                let handler = ConnectionHandler(
                    core: core, settings: ConnectionSettings(config), relayStatic: key, eventLoop: loop, logger: logger)
                freed.watch(handler)
                if let reads { try channel.pipeline.syncOperations.addHandler(reads) }
                try channel.pipeline.syncOperations.addHandler(handler)
            }
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
            return (channel, freed)
        }

        /// Closes `channel` if it is open, runs what the close leaves on its loop and shuts
        /// the loop down.
        func close(_ channel: NIOAsyncTestingChannel) async {
            _ = try? await channel.finish(acceptAlreadyClosed: true)
            await channel.testingEventLoop.shutdownGracefully()
        }

        func finish() async {
            await core.shutdown()
            try? store.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// Counts the reads that reach the socket end of the pipeline. Sendable so the test can
    /// read the count between its awaits, off the loop.
    final class ReadCounter: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = ByteBuffer
        private let reads = Mutex(0)
        var count: Int { reads.withLock { $0 } }
        func read(context: ChannelHandlerContext) {
            reads.withLock { $0 += 1 }
            context.read()
        }
    }

    /// Whether a handler has been freed, without keeping it alive: the reference is weak and
    /// lives on the handler's loop, where `isFreed` reads it.
    struct Freed<Handler: AnyObject>: Sendable {
        private struct Reference {
            weak var handler: Handler?
        }
        let loop: NIOAsyncTestingEventLoop
        private let reference: NIOLoopBoundBox<Reference?>

        init(loop: NIOAsyncTestingEventLoop) {
            self.loop = loop
            reference = .makeEmptyBox(eventLoop: loop)
        }

        /// On the loop, when the handler is made.
        func watch(_ handler: Handler) {
            reference.value = Reference(handler: handler)
        }

        /// False if nothing was watched.
        var isFreed: Bool {
            get async throws { try await loop.submit { [reference] in reference.value.map { $0.handler == nil } ?? false }.get() }
        }
    }

    static func sealed(_ entries: [ByteBuffer], _ session: inout RawSession, _ channel: NIOAsyncTestingChannel) throws -> ByteBuffer {
        var bundle = channel.allocator.buffer(capacity: 65_536)
        for entry in entries { Bundle.append(entry, to: &bundle) }
        return try session.frame(bundle: bundle)
    }

    static func command(_ command: RelayCommand, id: UInt32, _ channel: NIOAsyncTestingChannel) -> ByteBuffer {
        var entry = channel.allocator.buffer(capacity: 64)
        RelayCodec.encode(command, requestId: id, into: &entry)
        return entry
    }

    /// The pipeline asks for a read, on the loop, as a socket channel with autoRead does.
    static func askToRead(_ channel: NIOAsyncTestingChannel) async throws {
        try await channel.testingEventLoop.executeInContext { channel.read() }
    }

    /// After a rate refusal the connection stops reading from its socket (TCP then slows the
    /// client) until the bucket could pay for a bundle, instead of answering RATE forever.
    @Test func aRateRefusalPausesReadingUntilTheBucketRefills() async throws {
        let relay = try Relay {
            $0.rateLimitPerSecond = 64
            $0.rateBurst = 2
        }
        let reads = ReadCounter()
        let (channel, _) = try await relay.connection(reads: reads)
        let loop = channel.testingEventLoop
        var session = try await Self.handshake(channel, relayKey: relay.key.publicKey)
        let pings = (1...3).map { Self.command(.ping, id: UInt32($0), channel) }
        try await channel.writeInbound(try Self.sealed(pings, &session, channel))  // the third is refused
        let before = reads.count
        try await Self.askToRead(channel)
        #expect(reads.count == before)  // held
        await loop.advanceTime(by: .milliseconds(999))
        #expect(reads.count == before)
        await loop.advanceTime(by: .milliseconds(1))  // 64 tokens at 64 a second
        #expect(reads.count == before + 1)
        await relay.close(channel)
        await relay.finish()
    }

    /// Bodies waiting for the core count in bytes: past a megabyte the connection stops reading.
    /// The core starts only once the megabyte is with it, so none is answered before.
    @Test func pendingBodiesAreBoundedInBytes() async throws {
        let relay = try Relay(startingCore: false)
        let reads = ReadCounter()
        let (channel, _) = try await relay.connection(reads: reads)
        var session = try await Self.handshake(channel, relayKey: relay.key.publicKey)
        let body = [UInt8](repeating: 1, count: WireLimits.maxBodyLength)
        var id: UInt32 = 1
        while id * UInt32(body.count) <= UInt32(CoreBacklog.maxBytes) {
            let sends = (0..<3).map { _ in
                defer { id += 1 }
                return Self.command(.send(sender: EntityID.random(), body: body), id: id, channel)
            }
            try await channel.writeInbound(try Self.sealed(sends, &session, channel))
        }
        let before = reads.count
        try await Self.askToRead(channel)
        #expect(reads.count == before)  // held: over a megabyte is with the core
        // The core answers (NO_QUEUE); the replies arrive on the loop and reading resumes.
        relay.core.start()
        await relay.core.barrier()
        await channel.testingEventLoop.run()
        #expect(reads.count == before + 1)
        await relay.close(channel)
        await relay.finish()
    }

    static func feed(_ channel: NIOAsyncTestingChannel, _ bytes: [UInt8]) async throws {
        try await channel.writeInbound(channel.allocator.buffer(bytes: bytes))
    }

    static func handshake(_ channel: NIOAsyncTestingChannel, relayKey: [UInt8]) async throws -> RawSession {
        var session = try RawSession(relayKey: relayKey)
        try await channel.writeInbound(try session.helloBuffer())
        try session.establish(try #require(try await channel.readOutbound(as: ByteBuffer.self)))
        return session
    }

    /// The leak of issue 8: the handler kept its context, the context its handler, and the
    /// pair the whole channel. Once closed (and the core has forgotten it), it must be freed.
    @Test(arguments: ["garbage", "handshake", "idle"])
    func aClosedConnectionIsFreed(_ how: String) async throws {
        let relay = try Relay()
        let (opened, handler) = try await relay.connection()
        var channel: NIOAsyncTestingChannel? = opened
        switch how {
        case "garbage": try await Self.feed(channel!, [UInt8](repeating: 0x41, count: 4096))
        case "handshake": _ = try await Self.handshake(channel!, relayKey: relay.key.publicKey)
        default: break
        }
        _ = try? await channel!.close().get()
        // Runs the tasks a close leaves on the loop, as a real loop runs them.
        _ = try? await channel!.finish(acceptAlreadyClosed: true)
        channel = nil  // as the server drops a channel once it has closed
        // The core has processed the disconnect, and the batch that carried it has ended.
        await relay.core.barrier()
        await relay.core.barrier()  // the core has processed the disconnect and let go of it
        await handler.loop.run()  // and whatever it handed back has run
        #expect(try await handler.isFreed)
        await handler.loop.shutdownGracefully()
        await relay.finish()
    }

    @Test func aClosedClientConnectionIsFreed() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let relayKey = try X25519.KeyPair.generate()
        let handler = Freed<ClientHandler>(loop: loop)
        var channel: NIOAsyncTestingChannel? = try await NIOAsyncTestingChannel(loop: loop) { channel in
            let client = try ClientHandler(relayKey: relayKey.publicKey, handshakeDone: loop.makePromise(), onPush: { _ in })
            handler.watch(client)
            try channel.pipeline.syncOperations.addHandler(client)
        }
        try await channel!.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        _ = try? await channel!.close().get()
        _ = try? await channel!.finish(acceptAlreadyClosed: true)
        channel = nil
        #expect(try await handler.isFreed)
        await loop.shutdownGracefully()
    }

    /// Unknown commands cost a token each like any other. Past the burst they get RATE, the
    /// connection is paused (frames already read wait too), and after `maxRefusals` refused
    /// commands it is closed. Time is the testing loop's.
    @Test func unknownCommandsAreMeteredPausedAndAConnectionIgnoringRateIsClosed() async throws {
        let relay = try Relay {
            $0.rateLimitPerSecond = 1
            $0.rateBurst = 10
        }
        let (channel, _) = try await relay.connection()
        var session = try await Self.handshake(channel, relayKey: relay.key.publicKey)
        var id: UInt32 = 1
        func flood() async throws {
            let unknown = (0..<WireLimits.maxBundleEntries).map { _ in
                var entry = channel.allocator.buffer(capacity: 8)
                entry.writeInteger(UInt8(0x70))
                entry.writeInteger(id)
                id += 1
                return entry
            }
            try await channel.writeInbound(try Self.sealed(unknown, &session, channel))
        }
        func answered() async throws -> [RelayReply] {
            var replies: [RelayReply] = []
            while let out = try await channel.readOutbound(as: ByteBuffer.self) {
                replies += try session.replies(out).map(\.reply)
            }
            return replies
        }
        try await flood()
        var replies = try await answered()
        #expect(replies.count == 64)
        #expect(replies.prefix(10).allSatisfy { $0 == .error(.unknownCommand) })
        #expect(replies.dropFirst(10).allSatisfy { $0 == .error(.rate) })
        // Paused: a frame sent now is not even decrypted until the pause ends (1 s at 1 a second).
        try await flood()
        #expect(try await answered().isEmpty)
        var rounds = 0
        while channel.isActive, rounds < 10 {
            await channel.testingEventLoop.advanceTime(by: .seconds(1))
            replies += try await answered()
            if channel.isActive { try await flood() }
            rounds += 1
        }
        #expect(!channel.isActive)
        let refused = replies.filter { $0 == .error(.rate) }.count
        #expect(refused < ConnectionStateMachine.maxRefusals)
        #expect(refused >= ConnectionStateMachine.maxRefusals - WireLimits.maxBundleEntries)
        #expect(replies.allSatisfy { $0 == .error(.rate) || $0 == .error(.unknownCommand) })
        await relay.close(channel)
        await relay.finish()
    }
}
