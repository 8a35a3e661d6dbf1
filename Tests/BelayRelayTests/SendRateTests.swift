import BelayClient
import BelaySodium
import BelayWire
import Foundation
import Testing

@testable import BelayRelay

/// SENDs per queue (`send_rate_per_queue`, `send_burst_per_queue`): a flood that arrives on many
/// connections, as it would through Tor circuits, is held to the queue's rate, while a person
/// on the same address writing to their own contact is not slowed. The relay's clock stands
/// still unless the test moves it, so the buckets refill only then.
@Suite struct SendRateTests {
    static func relay() async throws -> RelayHarness {
        try await RelayHarness.start {
            $0.sendRatePerQueue = 4
            $0.sendBurstPerQueue = 10
        }
    }

    @Test func aFloodOnManyConnectionsIsHeldToTheQueueRateWhileAPersonOnTheSameAddressIsServed() async throws {
        let relay = try await Self.relay()
        defer { relay.remove() }
        // The attacker's own queue, written to from five "circuits": ten SENDs (the burst) in
        // all go through, whichever connection they come on, and the next one is RATE.
        let attackerOwner = try await relay.connect()
        let (_, target) = try await attackerOwner.createQueue(recipientKey: try .generate())
        var circuits: [RelayConnection] = []
        for _ in 0..<5 { circuits.append(try await relay.connect()) }
        var accepted = 0
        var refused = 0
        for round in 0..<3 {
            for c in circuits {
                switch try await c.pipeline([.send(sender: target, body: [UInt8(round)])]).first {
                case .ok: accepted += 1
                case .error(.rate): refused += 1
                case let other: Issue.record("unexpected \(String(describing: other))")
                }
            }
        }
        #expect(accepted == 10 && refused == 5)

        // A person on the same address (127.0.0.1) sends a full burst to their secured queue.
        let person = try await relay.connect()
        let q = try await SecuredQueue.make(on: person)
        let sender = try await q.sender(on: relay)
        for i in 0..<10 { try await sender.send(to: q.sender, body: [UInt8(i)]) }
        // The attacker cannot spend that queue's rate: without its sender key every SEND is AUTH,
        // and nothing is counted.
        for c in circuits { await #expect(throws: RelayClientError.relay(.auth)) { try await c.send(to: q.sender, body: [1]) } }
        await #expect(throws: RelayClientError.relay(.rate)) { try await sender.send(to: q.sender, body: [1]) }
        // One second on the relay's clock refills four SENDs of each queue.
        relay.clock.advance(by: 1)
        for i in 0..<4 { try await sender.send(to: q.sender, body: [UInt8(i)]) }
        await #expect(throws: RelayClientError.relay(.rate)) { try await sender.send(to: q.sender, body: [1]) }
        await relay.stop()
    }

    /// The client keeps what the relay refused and says why; the next command delivers it.
    @Test func aRefusedSendStaysQueuedAndTheClientSaysTheRelayAskedToSlowDown() async throws {
        let w = try await CheckinTests.World {
            $0.sendRatePerQueue = 3
            $0.sendBurstPerQueue = 3
        }
        try await w.pair("alice", "bob")
        await w.advance(1)
        let bob = try w.person("bob")
        await #expect(throws: ClientError.relayBusy(relay: "127.0.0.1:\(w.relay.server.port)", queued: 1)) {
            try await bob.send(to: "alice", texts: ["one", "two", "three", "four"])
        }
        #expect(ClientError.relayBusy(relay: "r", queued: 1).exitCode == 4)
        await w.advance(1)
        _ = try await bob.read()
        let texts = try await w.person("alice").read().filter { $0.kind == .message }.map(\.text)
        #expect(texts == ["one", "two", "three", "four"])
        await w.finish()
    }

    /// Memory stays bounded: past `maxTrackedQueues` a new queue is let through untracked (never
    /// refused for the table being full), and queues whose buckets have refilled are forgotten.
    @Test func theTableIsBoundedAndForgetsRefilledQueues() {
        var table = SendRateTable(perSecond: 1, burst: 1)
        let cap = Int64(SendRateTable.maxTrackedQueues)
        for queue in 0..<cap { #expect(table.take(queue: queue, now: 100) == (true, true)) }
        #expect(table.take(queue: 0, now: 100) == (false, false))
        #expect(table.take(queue: cap, now: 100) == (true, false))
        #expect(table.count == SendRateTable.maxTrackedQueues)
        // A rolled-back SEND gives its token back.
        table.refund([1])
        #expect(table.take(queue: 1, now: 100) == (true, true))
        // A second later every bucket has refilled: a newcomer prunes the table and is tracked.
        #expect(table.take(queue: cap, now: 101) == (true, true))
        #expect(table.count == 1)
        table.prune(now: 102)
        #expect(table.count == 0)
    }
}
