import BelaySodium
import BelayTestSupport
import BelayWire
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import BelayClient
@testable import BelayRelay

/// What a connection costs once it is gone, and how much it may ask while it lives: on an
/// embedded loop, so nothing depends on timing.
@Suite struct ConnectionLifetimeTests {
    final class Relay {
        let core: RelayCore
        let store: RelayStore
        let key: X25519.KeyPair
        let directory: String
        let config: RelayConfiguration
        let logger = Logger(label: "lifetime-test") { _ in SwiftLogNoOpLogHandler() }

        init(_ configure: (inout RelayConfiguration) -> Void = { _ in }) throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("belay-lifetime-\(UUID().uuidString)").path
            let state = RelayStateDirectory(path: directory)
            (key, _) = try state.initialise()
            store = try RelayStore(path: state.databasePath)
            var c = RelayConfiguration()
            c.diskReserveBytes = 0
            configure(&c)
            config = c
            core = try RelayCore(store: store, limits: CoreLimits(c), clock: ManualClock(), sweepInterval: nil, logger: logger)
            core.start()
        }

        /// A connection on its own embedded channel, with a weak reference to its handler. With
        /// `reads`, a handler in front counts the reads the connection asks of the socket.
        func connection(reads: ReadCounter? = nil) throws -> (EmbeddedChannel, () -> ConnectionHandler?) {
            let loop = EmbeddedEventLoop()
            var handler: ConnectionHandler? = ConnectionHandler(
                core: core, settings: ConnectionSettings(config), relayStatic: key,
                eventLoop: loop, logger: logger)
            weak let weakHandler = handler
            let channel = EmbeddedChannel(loop: loop)
            if let reads { try channel.pipeline.syncOperations.addHandler(reads) }
            try channel.pipeline.syncOperations.addHandler(handler!)
            handler = nil
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            return (channel, { weakHandler })
        }

        func finish() async {
            await core.shutdown()
            try? store.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// Counts the reads that reach the socket end of the pipeline.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var count = 0
        func read(context: ChannelHandlerContext) {
            count += 1
            context.read()
        }
    }

    static func sealed(_ entries: [ByteBuffer], _ session: inout RawSession, _ channel: EmbeddedChannel) throws -> ByteBuffer {
        var bundle = channel.allocator.buffer(capacity: 65_536)
        for entry in entries { Bundle.append(entry, to: &bundle) }
        return try session.frame(bundle: bundle)
    }

    static func command(_ command: RelayCommand, id: UInt32, _ channel: EmbeddedChannel) -> ByteBuffer {
        var entry = channel.allocator.buffer(capacity: 64)
        RelayCodec.encode(command, requestId: id, into: &entry)
        return entry
    }

    /// After a rate refusal the connection stops reading from its socket (TCP then slows the
    /// client) until the bucket could pay for a bundle, instead of answering RATE forever.
    @Test func aRateRefusalPausesReadingUntilTheBucketRefills() async throws {
        let relay = try Relay {
            $0.rateLimitPerSecond = 64
            $0.rateBurst = 2
        }
        let reads = ReadCounter()
        let (channel, _) = try relay.connection(reads: reads)
        var session = try Self.handshake(channel, relayKey: relay.key.publicKey)
        let pings = (1...3).map { Self.command(.ping, id: UInt32($0), channel) }
        try channel.writeInbound(try Self.sealed(pings, &session, channel))  // the third is refused
        let before = reads.count
        channel.read()
        #expect(reads.count == before)  // held
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(999))
        #expect(reads.count == before)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))  // 64 tokens at 64 a second
        #expect(reads.count == before + 1)
        _ = try? channel.finish()
        await relay.finish()
    }

    /// Bodies waiting for the core count in bytes: past a megabyte the connection stops reading.
    @Test func pendingBodiesAreBoundedInBytes() async throws {
        let relay = try Relay()
        let reads = ReadCounter()
        let (channel, _) = try relay.connection(reads: reads)
        var session = try Self.handshake(channel, relayKey: relay.key.publicKey)
        let body = [UInt8](repeating: 1, count: WireLimits.maxBodyLength)
        var id: UInt32 = 1
        while id * UInt32(body.count) <= UInt32(CoreBacklog.maxBytes) {
            let sends = (0..<3).map { _ in
                defer { id += 1 }
                return Self.command(.send(sender: EntityID.random(), body: body), id: id, channel)
            }
            try channel.writeInbound(try Self.sealed(sends, &session, channel))
        }
        let before = reads.count
        channel.read()
        #expect(reads.count == before)  // held: over a megabyte is with the core
        // The core answers (NO_QUEUE); the replies arrive on the loop and reading resumes.
        await relay.core.barrier()
        channel.embeddedEventLoop.run()
        #expect(reads.count == before + 1)
        _ = try? channel.finish()
        await relay.finish()
    }

    static func feed(_ channel: EmbeddedChannel, _ bytes: [UInt8]) throws {
        var b = channel.allocator.buffer(capacity: bytes.count)
        b.writeBytes(bytes)
        try channel.writeInbound(b)
    }

    static func handshake(_ channel: EmbeddedChannel, relayKey: [UInt8]) throws -> RawSession {
        var session = try RawSession(relayKey: relayKey)
        try channel.writeInbound(try session.helloBuffer())
        try session.establish(try #require(try channel.readOutbound(as: ByteBuffer.self)))
        return session
    }

    /// The leak of issue 8: the handler kept its context, the context its handler, and the
    /// pair the whole channel. Once closed (and the core has forgotten it), it must be freed.
    @Test(arguments: ["garbage", "handshake", "idle"])
    func aClosedConnectionIsFreed(_ how: String) async throws {
        let relay = try Relay()
        var (channel, handler): (EmbeddedChannel?, () -> ConnectionHandler?) = try relay.connection()
        switch how {
        case "garbage": try Self.feed(channel!, [UInt8](repeating: 0x41, count: 4096))
        case "handshake": _ = try Self.handshake(channel!, relayKey: relay.key.publicKey)
        default: break
        }
        _ = try? await channel!.close().get()
        _ = try? channel!.finish()
        channel!.embeddedEventLoop.run()  // the tasks a close leaves on the loop, as a real loop runs them
        channel = nil  // as the server drops a channel once it has closed
        // The core has processed the disconnect, and the batch that carried it has ended.
        await relay.core.barrier()
        await relay.core.barrier()  // the core has processed the disconnect and let go of it
        #expect(handler() == nil)
        await relay.finish()
    }

    @Test func aClosedClientConnectionIsFreed() throws {
        let loop = EmbeddedEventLoop()
        let relayKey = try X25519.KeyPair.generate()
        var handler: ClientHandler? = try ClientHandler(relayKey: relayKey.publicKey, handshakeDone: loop.makePromise(), onPush: { _ in })
        weak let weakHandler = handler
        var channel: EmbeddedChannel? = EmbeddedChannel(handler: handler!, loop: loop)
        handler = nil
        try channel!.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        _ = try? channel!.close().wait()
        _ = try? channel!.finish()
        loop.run()
        channel = nil
        #expect(weakHandler == nil)
    }

    /// Unknown commands cost a token each like any other. Past the burst they get RATE, the
    /// connection is paused (frames already read wait too), and after `maxRefusals` refused
    /// commands it is closed. Time is the embedded loop's.
    @Test func unknownCommandsAreMeteredPausedAndAConnectionIgnoringRateIsClosed() async throws {
        let relay = try Relay {
            $0.rateLimitPerSecond = 1
            $0.rateBurst = 10
        }
        let (channel, _) = try relay.connection()
        var session = try Self.handshake(channel, relayKey: relay.key.publicKey)
        var id: UInt32 = 1
        func flood() throws {
            let unknown = (0..<WireLimits.maxBundleEntries).map { _ in
                var entry = channel.allocator.buffer(capacity: 8)
                entry.writeInteger(UInt8(0x70))
                entry.writeInteger(id)
                id += 1
                return entry
            }
            try channel.writeInbound(try Self.sealed(unknown, &session, channel))
        }
        func answered() throws -> [RelayReply] {
            var replies: [RelayReply] = []
            while let out = try channel.readOutbound(as: ByteBuffer.self) {
                replies += try session.replies(out).map(\.reply)
            }
            return replies
        }
        try flood()
        var replies = try answered()
        #expect(replies.count == 64)
        #expect(replies.prefix(10).allSatisfy { $0 == .error(.unknownCommand) })
        #expect(replies.dropFirst(10).allSatisfy { $0 == .error(.rate) })
        // Paused: a frame sent now is not even decrypted until the pause ends (1 s at 1 a second).
        try flood()
        #expect(try answered().isEmpty)
        var rounds = 0
        while channel.isActive, rounds < 10 {
            channel.embeddedEventLoop.advanceTime(by: .seconds(1))
            replies += try answered()
            if channel.isActive { try flood() }
            rounds += 1
        }
        #expect(!channel.isActive)
        let refused = replies.filter { $0 == .error(.rate) }.count
        #expect(refused < ConnectionStateMachine.maxRefusals)
        #expect(refused >= ConnectionStateMachine.maxRefusals - WireLimits.maxBundleEntries)
        #expect(replies.allSatisfy { $0 == .error(.rate) || $0 == .error(.unknownCommand) })
        _ = try? channel.finish()
        await relay.finish()
    }
}
