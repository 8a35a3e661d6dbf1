import BelaySodium
import BelayTestSupport
import BelayWire
import NIOCore
import Testing

@testable import BelayRelay

/// The connection's protocol without a channel, a socket or a core: bytes and outcomes go in
/// by hand, and each test checks the exact actions that come out. Time is a number the test moves.
@Suite struct ConnectionStateMachineTests {
    // MARK: Handshake

    @Test func aHandshakeFedByteByByteEstablishesTheSessionOnTheLastByte() throws {
        var f = try Fixture()
        #expect(
            Self.seen(f.machine.channelActive(now: Self.t0)) == [
                .schedule(.handshakeTimeout, .seconds(10)), .schedule(.idleCheck, .seconds(300)),
            ])
        let hello = try f.client.hello()
        for byte in hello.dropLast() {
            #expect(f.machine.bytesReceived(Self.buffer([byte]), now: Self.t0).isEmpty)
        }
        let actions = f.machine.bytesReceived(Self.buffer([hello.last!]), now: Self.t0)
        #expect(Self.seen(actions) == [.write, .cancel(.handshakeTimeout), .established])
        try f.client.establish(Self.written(actions))
        #expect(f.isEstablished)
    }

    @Test func aPingIsAnsweredAtTheEndOfTheReadAndASendGoesToTheCore() throws {
        var f = try Fixture.established()
        let body: [UInt8] = [1, 2, 3]
        let read = f.machine.bytesReceived(try f.client.frame([(1, .ping), (2, .send(sender: EntityID.random(), body: body))]), now: Self.t0)
        #expect(Self.seen(read) == [.submit(2, "send")])  // the PONG waits for the end of the read
        guard case let .submit(_, .send(_, proven, sentBody)) = read[0] else { throw Unexpected() }
        #expect(proven == nil && sentBody == body)
        let end = f.machine.readComplete()
        #expect(Self.seen(end) == [.write])
        #expect(try f.client.replies(Self.written(end)).map(\.0) == [1])
        let outcome = f.machine.outcomesReceived([.reply(requestId: 2, .ok)], now: Self.t0, writable: true)
        #expect(Self.seen(outcome) == [.write])
        let replies = try f.client.replies(Self.written(outcome))
        #expect(replies.count == 1 && replies[0].0 == 2 && replies[0].1 == .ok)
    }

    /// Bytes that are not a message 1 for this relay (a prober's, or another protocol's)
    /// get no answer and no early close: they are read and dropped until the handshake
    /// timeout, when the connection closes as if it had stalled.
    @Test func aForeignOpeningIsDroppedUntilTheHandshakeTimeout() throws {
        var f = try Fixture()
        _ = f.machine.channelActive(now: Self.t0)
        let http = Array("GET / HTTP/1.1\r\nHost: relay\r\n\r\n".utf8) + [UInt8](repeating: 0x41, count: 64)
        #expect(f.machine.bytesReceived(Self.buffer(http), now: Self.t0).isEmpty)
        #expect(f.machine.bytesReceived(Self.buffer([UInt8](repeating: 7, count: 5000)), now: Self.t0).isEmpty)
        #expect(Self.seen(f.machine.readRequested(writable: true)) == [.read])
        #expect(Self.seen(f.machine.handshakeTimerFired()) == [.close(.handshakeFailed)])
    }

    @Test func anotherVersionIsToldTheRelaysInsideTheHandshakeThenClosed() throws {
        var f = try Fixture()
        f.client = try Client(relayKey: f.relayKey.publicKey, version: WireHandshake.currentVersion + 1)
        _ = f.machine.channelActive(now: Self.t0)
        let actions = f.machine.bytesReceived(try f.client.helloBuffer(), now: Self.t0)
        #expect(Self.seen(actions) == [.write, .close(.unsupportedVersion(WireHandshake.currentVersion + 1))])
        #expect(try f.client.finish(Self.written(actions)) == .unsupported(relayVersion: WireHandshake.currentVersion))
        #expect(f.client.transport == nil)
    }

    @Test func aHandshakeForAnotherRelayKeyIsDroppedLikeNoise() throws {
        var f = try Fixture()
        f.client = try Client(relayKey: try X25519.KeyPair.generate().publicKey)
        _ = f.machine.channelActive(now: Self.t0)
        #expect(f.machine.bytesReceived(try f.client.helloBuffer(), now: Self.t0).isEmpty)
        guard case .refused = f.machine.state else { throw Unexpected() }
        #expect(Self.seen(f.machine.handshakeTimerFired()) == [.close(.handshakeFailed)])
    }

    /// A recorded message 1 replayed on another connection of the same relay is dropped like
    /// noise, so a censor cannot confirm a relay by replaying a client's opening.
    @Test func aReplayedMessageOneIsDroppedLikeNoise() throws {
        var f = try Fixture()
        let hello = try f.client.helloBuffer()
        _ = f.machine.channelActive(now: Self.t0)
        #expect(Self.seen(f.machine.bytesReceived(hello, now: Self.t0)) == [.write, .cancel(.handshakeTimeout), .established])
        var second = ConnectionStateMachine(settings: f.settings, relayStatic: f.relayKey, mayCreate: { true })
        _ = second.channelActive(now: Self.t0)
        #expect(second.bytesReceived(hello, now: Self.t0).isEmpty)
        guard case .refused = second.state else { throw Unexpected() }
        #expect(Self.seen(second.handshakeTimerFired()) == [.close(.handshakeFailed)])
    }

    @Test func aFrameBodyOutsideTheBucketsCloses() throws {
        var f = try Fixture.established()
        let header = try f.client.transport!.encrypt([0x01, 0x00])  // a sealed length of 256
        #expect(Self.seen(f.machine.bytesReceived(Self.buffer(header), now: Self.t0)) == [.close(.frameNotABucket(256))])
    }

    @Test func bytesBeforeTheChannelIsActiveWaitForIt() throws {
        var f = try Fixture()
        #expect(f.machine.bytesReceived(try f.client.helloBuffer(), now: Self.t0).isEmpty)
        let actions = f.machine.channelActive(now: Self.t0)
        #expect(
            Self.seen(actions) == [
                .schedule(.handshakeTimeout, .seconds(10)), .schedule(.idleCheck, .seconds(300)), .write, .cancel(.handshakeTimeout),
                .established,
            ])
        #expect(f.machine.channelActive(now: Self.t0).isEmpty)  // once only
    }

    // MARK: Closed is absorbing

    @Test func afterACloseOnlyTheDisconnectFollowsAndThenNothing() throws {
        var f = try Fixture.established()
        #expect(Self.seen(f.machine.errorCaught()) == [.close(.ioError)])
        // Closing: nothing but the channel going inactive does anything.
        var ping = try f.client.frame([(1, .ping)])
        #expect(f.machine.bytesReceived(ping, now: Self.t0).isEmpty)
        #expect(f.machine.readComplete().isEmpty)
        #expect(f.machine.errorCaught().isEmpty)
        #expect(f.machine.readRequested(writable: true).isEmpty)
        #expect(Self.seen(f.machine.channelInactive()) == [.submit(0, "disconnect")])
        guard case .closed = f.machine.state else { throw Unexpected() }
        ping = try f.client.frame([(2, .ping)])
        let later = Self.t0 + .seconds(1_000)
        let events: [[ConnectionAction]] = [
            f.machine.channelActive(now: later),
            f.machine.bytesReceived(ping, now: later),
            f.machine.readComplete(),
            f.machine.outcomesReceived([.reply(requestId: 3, .ok), .push(.end(recipient: EntityID.random()))], now: later, writable: true),
            f.machine.readRequested(writable: true),
            f.machine.writabilityChanged(writable: true),
            f.machine.handshakeTimerFired(),
            f.machine.idleCheckFired(now: later),
            f.machine.rateHoldEnded(now: later, writable: true),
            f.machine.pushReleaseFired(now: later),
            f.machine.errorCaught(),
            f.machine.channelInactive(),
        ]
        #expect(events.allSatisfy { $0.isEmpty })
        guard case .closed = f.machine.state else { throw Unexpected() }
    }

    @Test func aPeerThatHangsUpIsForgottenByTheCore() throws {
        var f = try Fixture()
        _ = f.machine.channelActive(now: Self.t0)
        #expect(Self.seen(f.machine.channelInactive()) == [.submit(0, "disconnect")])
        #expect(f.machine.channelInactive().isEmpty)
    }

    // MARK: Timers

    @Test func theHandshakeTimeoutClosesOnlyBeforeTheSession() throws {
        var f = try Fixture()
        _ = f.machine.channelActive(now: Self.t0)
        _ = f.machine.bytesReceived(Self.buffer(Array(try f.client.hello().prefix(20))), now: Self.t0)
        #expect(Self.seen(f.machine.handshakeTimerFired()) == [.close(.handshakeTimeout)])
        var g = try Fixture.established()
        #expect(g.machine.handshakeTimerFired().isEmpty)
        #expect(g.isEstablished)
    }

    @Test func theIdleCheckCountsFromTheLastCompleteFrame() throws {
        var f = try Fixture.established()
        _ = try f.send([(1, .ping)], at: Self.t0 + .seconds(100))
        #expect(Self.seen(f.machine.idleCheckFired(now: Self.t0 + .seconds(300))) == [.schedule(.idleCheck, .seconds(75))])
        #expect(Self.seen(f.machine.idleCheckFired(now: Self.t0 + .seconds(399))) == [.schedule(.idleCheck, .seconds(75))])
        #expect(Self.seen(f.machine.idleCheckFired(now: Self.t0 + .seconds(400))) == [.close(.idleTimeout)])
    }
}
