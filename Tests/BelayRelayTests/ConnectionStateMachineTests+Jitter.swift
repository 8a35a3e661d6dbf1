import BelaySodium
import BelayWire
import NIOCore
import Testing

@testable import BelayRelay

/// `delivery_jitter` (issue 12): pushes wait a random time, replies do not, and a queue's
/// messages keep their order. Time and randomness are the test's.
extension ConnectionStateMachineTests {
    static func message(_ seq: UInt64) -> RelayReply {
        .message(RelayReply.Delivery(recipient: EntityID(bytes: [UInt8](repeating: 1, count: 16))!, seq: seq, body: [UInt8(truncatingIfNeeded: seq)]))
    }

    @Test func withoutJitterPushesLeaveWithTheBatch() throws {
        var f = try Fixture.established()
        let actions = f.machine.outcomesReceived([.reply(requestId: 1, .ok), .push(Self.message(1))], now: Self.t0, writable: true)
        #expect(Self.seen(actions) == [.write])
        #expect(try f.client.replies(Self.written(actions)).map(\.reply) == [.ok, Self.message(1)])
    }

    @Test func jitteredPushesWaitTheirTurnInOrderWhileRepliesLeaveAtOnce() throws {
        var f = try Fixture.established { $0.deliveryJitterSeconds = 2 }
        let first = f.machine.outcomesReceived(
            [.reply(requestId: 1, .ok), .push(Self.message(1)), .push(Self.message(2))], now: Self.t0, writable: true)
        // The reply leaves now; the pushes are held and a release is scheduled within the jitter.
        guard case let .schedule(.pushRelease, delay) = first.first(where: { if case .schedule = $0 { true } else { false } }) else {
            throw Unexpected()
        }
        #expect(delay >= .zero && delay <= .seconds(2))
        #expect(try f.client.replies(Self.written(first)).map(\.reply) == [.ok])
        // A later batch's push is held behind them, whatever its own draw.
        let second = f.machine.outcomesReceived([.push(Self.message(3))], now: Self.t0 + .milliseconds(10), writable: true)
        let early = try f.client.replies(Self.written(second))
        #expect(early.isEmpty)
        var delivered: [RelayReply] = []
        var now = Self.t0
        var releases = 0
        while delivered.count < 3, now < Self.t0 + .seconds(5) {
            now = now + .milliseconds(100)
            let actions = f.machine.pushReleaseFired(now: now)
            if !actions.isEmpty { releases += 1 }
            delivered += try f.client.replies(Self.written(actions)).map(\.reply)
        }
        #expect(delivered == [Self.message(1), Self.message(2), Self.message(3)])
        #expect(now <= Self.t0 + .milliseconds(2_100))  // the last within its jitter of its batch
        #expect(releases >= 1)
    }

    /// Over many draws the delays spread across the whole jitter, not bunched at one end.
    @Test func theJitterIsSpreadOverItsRange() {
        let random = SeededRandom(seed: 9)
        let draws = (0..<2_000).map { _ in random.uniform(upTo: 1_000) }
        #expect(draws.allSatisfy { $0 <= 1_000 })
        for quarter in 0..<4 {
            let count = draws.filter { $0 >= UInt64(quarter * 250) && $0 < UInt64((quarter + 1) * 250) }.count
            #expect((400...600).contains(count), "quarter \(quarter): \(count)")
        }
    }

    /// A connection that closes drops what it held: the messages stay in the queue and come
    /// again on the next subscription, like any unacknowledged push.
    @Test func heldPushesDieWithTheConnection() throws {
        var f = try Fixture.established { $0.deliveryJitterSeconds = 1 }
        _ = f.machine.outcomesReceived([.push(Self.message(1))], now: Self.t0, writable: true)
        #expect(Self.seen(f.machine.errorCaught()) == [.close(.ioError)])
        #expect(f.machine.pushReleaseFired(now: Self.t0 + .seconds(2)).isEmpty)
    }
}

extension ConnectionStateMachineTests {
    /// Held pushes are bounded: past `HeldPushes.maxHeld`, everything held leaves at once, in
    /// order, instead of waiting in memory.
    @Test func heldPushesAreBoundedAndLeaveInOrderPastTheCap() throws {
        var f = try Fixture.established { $0.deliveryJitterSeconds = 30 }
        var seq: UInt64 = 0
        var written: [RelayReply] = []
        for _ in 0..<(HeldPushes.maxHeld / 16 + 1) {
            let batch = (0..<16).map { _ -> CoreOutcome in
                seq += 1
                return .push(Self.message(seq))
            }
            written += try f.client.replies(Self.written(f.machine.outcomesReceived(batch, now: Self.t0, writable: true))).map(\.reply)
        }
        #expect(written.count == HeldPushes.maxHeld + 16)
        #expect(written == (1...seq).map(Self.message))
    }
}
