import BelaySodium
import NIOCore
import Synchronization
import Testing

@testable import BelayClient

/// Client-side timing (issue 12): a send that waits a random moment, with the message safe in
/// the outbox meanwhile, and keep-alives that never run in lockstep.
@Suite struct TimingTests {
    @Test func aJitteredSendWaitsARandomTimeWithTheMessageAlreadyQueued() async throws {
        let w = try await CheckinTests.world()
        try await w.pair("alice", "bob")
        let alice = try w.person("alice")
        let bob = try w.person("bob")
        let waits = Waits()
        alice.random = SeededRandom(seed: 4)
        alice.sendJitter = .seconds(30)
        alice.pause = { [alice] delay in
            // While it waits, the message is durable in the outbox: a crash now loses nothing.
            let queued = (try? alice.read { db in try alice.store.pendingCount(db) }) ?? -1
            waits.add(delay, queued: queued)
        }
        try await alice.send(to: "bob", text: "one")
        try await alice.send(to: "bob", text: "two")
        let recorded = waits.all
        #expect(recorded.count == 2)
        #expect(recorded.allSatisfy { $0.delay >= .zero && $0.delay <= .seconds(30) && $0.queued == 1 })
        #expect(recorded[0].delay != recorded[1].delay)
        #expect(try await bob.read().compactMap(\.text) == ["one", "two"])

        alice.sendJitter = .zero
        try await alice.send(to: "bob", text: "three")
        #expect(waits.all.count == 2)  // no jitter, no wait
        alice.sendJitter = .seconds(86_400)
        #expect(alice.sendJitter == Agent.maxSendJitter)
        await w.finish()
    }

    @Test func keepAlivesStartAtRandomPhasesAndDrift() {
        let random = SeededRandom(seed: 5)
        let period = TimeAmount.seconds(60)
        let firsts = (0..<8).map { _ in Timing.firstKeepAlive(period: period, random: random) }
        #expect(Set(firsts).count == 8)
        #expect(firsts.allSatisfy { $0 >= .zero && $0 <= period })
        let nexts = (0..<200).map { _ in Timing.nextKeepAlive(period: period, random: random) }
        #expect(nexts.allSatisfy { $0 >= .seconds(30) && $0 <= .seconds(90) })
        #expect(nexts.min()! < .seconds(40) && nexts.max()! > .seconds(80))
    }

    final class Waits: Sendable {
        private let items = Mutex<[(delay: TimeAmount, queued: Int)]>([])
        func add(_ delay: TimeAmount, queued: Int) { items.withLock { $0.append((delay, queued)) } }
        var all: [(delay: TimeAmount, queued: Int)] { items.withLock { $0 } }
    }
}
