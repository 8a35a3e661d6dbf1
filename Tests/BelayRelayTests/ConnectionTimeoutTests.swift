import BelaySodium
import BelayTestSupport
import BelayWire
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import BelayRelay

/// The handshake and idle timeouts, on a testing event loop whose clock only moves when the
/// test moves it: no real time passes, so the outcome cannot depend on how busy the machine is.
@Suite struct ConnectionTimeoutTests {
    final class Fixture {
        let loop = NIOAsyncTestingEventLoop()
        let channel: NIOAsyncTestingChannel
        let core: RelayCore
        let store: RelayStore
        let key: X25519.KeyPair
        let directory: String
        let settings: ConnectionSettings

        init(handshake: TimeAmount, idle: TimeAmount) async throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("belay-timeout-\(UUID().uuidString)").path
            let state = RelayStateDirectory(path: directory)
            (key, _) = try state.initialise()
            store = try RelayStore(path: state.databasePath)
            var config = RelayConfiguration()
            config.handshakeTimeoutSeconds = Double(handshake.nanoseconds) / 1e9
            config.idleTimeoutSeconds = Double(idle.nanoseconds) / 1e9
            settings = ConnectionSettings(config)
            let logger = Logger(label: "timeout-test") { _ in SwiftLogNoOpLogHandler() }
            core = try RelayCore(store: store, limits: CoreLimits(config), clock: ManualClock(), sweepInterval: nil, logger: logger)
            core.start()
            // The handler lives on the loop, so it is made there.
            channel = try await NIOAsyncTestingChannel(loop: loop) { [core, settings, key, loop] channel in
                try channel.pipeline.syncOperations.addHandler(
                    ConnectionHandler(core: core, settings: settings, relayStatic: key, eventLoop: loop, logger: logger))
            }
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        }

        func feed(_ bytes: [UInt8]) async throws {
            try await channel.writeInbound(channel.allocator.buffer(bytes: bytes))
        }

        /// Runs the client half of NK and returns once the relay has answered message 1.
        func completeHandshake() async throws {
            var session = try RawSession(relayKey: key.publicKey)
            try await channel.writeInbound(try session.helloBuffer())
            try session.establish(try #require(try await channel.readOutbound(as: ByteBuffer.self)))
        }

        func finish() async {
            _ = try? await channel.finish(acceptAlreadyClosed: true)
            await loop.shutdownGracefully()
            await core.shutdown()
            try? store.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    @Test func aHandshakeThatNeverCompletesIsCutAtTheTimeoutAndNotBefore() async throws {
        let f = try await Fixture(handshake: .seconds(10), idle: .seconds(300))
        try await f.feed([UInt8](repeating: 3, count: 40))  // stalls inside message 1
        await f.loop.advanceTime(by: .milliseconds(9_999))
        #expect(f.channel.isActive)
        await f.loop.advanceTime(by: .milliseconds(1))
        #expect(!f.channel.isActive)
        #expect(try await f.channel.readOutbound(as: ByteBuffer.self) == nil)  // closed without a word
        await f.finish()
    }

    @Test func aCompletedHandshakeIsNotCutByTheHandshakeTimeout() async throws {
        let f = try await Fixture(handshake: .seconds(10), idle: .seconds(300))
        try await f.completeHandshake()
        await f.loop.advanceTime(by: .seconds(60))
        #expect(f.channel.isActive)
        await f.finish()
    }

    @Test func aSessionStalledInsideAFrameIsCutByTheIdleTimeout() async throws {
        let f = try await Fixture(handshake: .seconds(10), idle: .seconds(300))
        try await f.completeHandshake()
        try await f.feed([0, 100, 1])  // a transport frame that never finishes
        await f.loop.advanceTime(by: .seconds(299))
        #expect(f.channel.isActive)
        // The idle check runs every quarter of the timeout, so it notices within 75 s after.
        await f.loop.advanceTime(by: .seconds(1 + 75))
        #expect(!f.channel.isActive)
        await f.finish()
    }
}
