import BelaySodium
import BelayTestSupport
import BelayWire
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import BelayRelay

/// The handshake and idle timeouts, on an embedded event loop whose clock only moves when the
/// test moves it: no real time passes, so the outcome cannot depend on how busy the machine is.
@Suite struct ConnectionTimeoutTests {
    final class Fixture {
        let loop = EmbeddedEventLoop()
        let channel: EmbeddedChannel
        let core: RelayCore
        let store: RelayStore
        let key: X25519.KeyPair
        let directory: String
        let settings: ConnectionSettings

        init(handshake: TimeAmount, idle: TimeAmount) throws {
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
            let handler = ConnectionHandler(core: core, settings: settings, relayStatic: key, eventLoop: loop, logger: logger)
            channel = EmbeddedChannel(handler: handler, loop: loop)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        func feed(_ bytes: [UInt8]) throws {
            var b = channel.allocator.buffer(capacity: bytes.count)
            b.writeBytes(bytes)
            try channel.writeInbound(b)
        }

        /// Runs the client half of NK and returns once the relay has answered message 1.
        func completeHandshake() throws {
            var session = try RawSession(relayKey: key.publicKey)
            try channel.writeInbound(try session.helloBuffer())
            try session.establish(try #require(try channel.readOutbound(as: ByteBuffer.self)))
        }

        func finish() async {
            _ = try? channel.finish()
            await core.shutdown()
            try? store.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    @Test func aHandshakeThatNeverCompletesIsCutAtTheTimeoutAndNotBefore() async throws {
        let f = try Fixture(handshake: .seconds(10), idle: .seconds(300))
        try f.feed([UInt8](repeating: 3, count: 40))  // stalls inside message 1
        f.loop.advanceTime(by: .milliseconds(9_999))
        #expect(f.channel.isActive)
        f.loop.advanceTime(by: .milliseconds(1))
        #expect(!f.channel.isActive)
        #expect(try f.channel.readOutbound(as: ByteBuffer.self) == nil)  // closed without a word
        await f.finish()
    }

    @Test func aCompletedHandshakeIsNotCutByTheHandshakeTimeout() async throws {
        let f = try Fixture(handshake: .seconds(10), idle: .seconds(300))
        try f.completeHandshake()
        f.loop.advanceTime(by: .seconds(60))
        #expect(f.channel.isActive)
        await f.finish()
    }

    @Test func aSessionStalledInsideAFrameIsCutByTheIdleTimeout() async throws {
        let f = try Fixture(handshake: .seconds(10), idle: .seconds(300))
        try f.completeHandshake()
        try f.feed([0, 100, 1])  // a transport frame that never finishes
        f.loop.advanceTime(by: .seconds(299))
        #expect(f.channel.isActive)
        // The idle check runs every quarter of the timeout, so it notices within 75 s after.
        f.loop.advanceTime(by: .seconds(1 + 75))
        #expect(!f.channel.isActive)
        await f.finish()
    }
}
