import BelayClient
import BelaySodium
import BelayWire
import NIOCore
import NIOPosix
import Testing

@testable import BelayRelay

/// An attacker on 127.0.0.3 hits each connection limit while a person on 127.0.0.1 connects
/// and is served. Admission's rate buckets read the harness's manual clock, which stands still.
@Suite struct AbuseTests {
    static let attacker = "127.0.0.3"

    /// A connection the relay closes at once (before the handshake completes).
    static func expectRefused(_ relay: RelayHarness, from source: String = attacker) async {
        await #expect(throws: RelayClientError.handshakeRejected) { try await relay.connect(from: source) }
    }

    static func served(_ relay: RelayHarness) async throws {
        let c = try await relay.connect(from: "127.0.0.1")
        try await c.ping()
        await c.close()
    }

    @Test func oneSourceCannotTakeMoreThanItsShareOfConnections() async throws {
        let relay = try await RelayHarness.start(transport: .tcp) {
            $0.maxConnections = 40
            $0.maxConnectionsPerSource = 10
        }
        defer { relay.remove() }
        var held: [RelayConnection] = []
        for _ in 0..<10 { held.append(try await relay.connect(from: Self.attacker)) }
        await Self.expectRefused(relay)
        try await Self.served(relay)
        for c in held { try await c.ping() }  // the attacker's own connections keep working
        await relay.stop()
    }

    /// Slowloris at the connection limit: one source holds every slot with live sessions. A
    /// newcomer is let in and one of the attacker's connections is closed instead.
    @Test func aFullRelayEvictsFromTheHeaviestSourceNotTheNewcomer() async throws {
        let relay = try await RelayHarness.start(transport: .tcp) {
            $0.maxConnections = 12
            $0.maxConnectionsPerSource = 12
        }
        defer { relay.remove() }
        var held: [RelayConnection] = []
        for _ in 0..<12 { held.append(try await relay.connect(from: Self.attacker)) }
        try await Self.served(relay)
        #expect(relay.server.admissionCounts.evicted >= 1)
        var alive = 0
        for c in held where (try? await c.ping()) != nil { alive += 1 }
        #expect(alive == 11)
        await relay.stop()
    }

    /// Connections that never finish the handshake have a smaller limit of their own.
    @Test func stalledHandshakesCannotCrowdOutOthers() async throws {
        let relay = try await RelayHarness.start(transport: .tcp) {
            $0.maxHandshaking = 8
            $0.maxHandshakingPerSource = 8
        }
        defer { relay.remove() }
        var stalled: [(Channel, EventLoopFuture<[UInt8]>)] = []
        for _ in 0..<8 {
            let (ch, closed) = try await HostileInputTests.raw(relay, from: Self.attacker)
            try await HostileInputTests.send(ch, [UInt8](repeating: 1, count: 20))  // part of a message 1, then nothing
            stalled.append((ch, closed))
        }
        // The ninth from the same source is closed without a word.
        let (ninth, ninthClosed) = try await HostileInputTests.raw(relay, from: Self.attacker)
        #expect(try await ninthClosed.get().isEmpty)
        _ = ninth
        // A person still gets in: the oldest stalled handshake makes room.
        try await Self.served(relay)
        #expect(try await stalled[0].1.get().isEmpty)
        await relay.stop()
    }

    /// A flood of handshakes (each costs the relay a key generation and two DH) is held to the
    /// per-source rate; other sources are not slowed.
    @Test func handshakesPerSourceAreRateLimited() async throws {
        let relay = try await RelayHarness.start(transport: .tcp) {
            $0.handshakeRatePerSource = 5
            $0.handshakeBurstPerSource = 10
        }
        defer { relay.remove() }
        for _ in 0..<10 { await (try await relay.connect(from: Self.attacker)).close() }
        await Self.expectRefused(relay)
        try await Self.served(relay)
        // Two seconds on the relay's clock refill ten handshakes.
        relay.clock.advance(by: 2)
        await (try await relay.connect(from: Self.attacker)).close()
        await relay.stop()
    }

    /// Unknown commands count against the rate: a flood of them is answered for the burst and
    /// then RATE (the pause and the close are in ConnectionLifetimeTests, on virtual time), while
    /// a person on another address is served.
    @Test func anErrorFloodIsMetered() async throws {
        let relay = try await RelayHarness.start(transport: .tcp) {
            $0.rateLimitPerSecond = 1
            $0.rateBurst = 10
        }
        defer { relay.remove() }
        let (ch, peer, raw, _) = try await HostileInputTests.rawSession(relay, from: Self.attacker)
        var session = raw
        var out = ByteBufferAllocator().buffer(capacity: 8192)
        var id: UInt32 = 1
        for _ in 0..<5 {
            var bundle = ByteBufferAllocator().buffer(capacity: 1024)
            for _ in 0..<WireLimits.maxBundleEntries {
                var entry = ByteBufferAllocator().buffer(capacity: 8)
                entry.writeInteger(UInt8(0x70))  // no such command
                entry.writeInteger(id)
                id += 1
                Bundle.append(entry, to: &bundle)
            }
            var frame = try session.frame(bundle: bundle)
            out.writeBuffer(&frame)
        }
        // The first bundle's answer: 10 UNKNOWN_COMMAND (7 bytes each) and 54 RATE (7 bytes).
        let answer = try await ch.eventLoop.submit {
            peer.bytes(WireHandshake.messageLength + HostileInputTests.frameBytes(entries: 64, size: 7), on: ch.eventLoop)
        }.get()
        try await HostileInputTests.send(ch, Array(out.readableBytesView))
        let replies = try session.replies(ByteBuffer(bytes: try await answer.get().dropFirst(WireHandshake.messageLength))).map(\.1)
        #expect(replies.prefix(10).allSatisfy { $0 == .error(.unknownCommand) })
        #expect(replies.dropFirst(10).allSatisfy { $0 == .error(.rate) })
        #expect(replies.count == 64)
        try await Self.served(relay)
        // The relay closes the flood itself after 256 refusals, about four seconds of real time
        // (the pauses are on the event loop's clock): on a busy machine it may already have.
        try? await ch.close()
        await relay.stop()
    }

    /// Queues and timers created per source are rate limited across connections, so
    /// reconnecting does not reset the count; a person elsewhere still creates theirs.
    @Test func creationsPerSourceAreRateLimitedAcrossConnections() async throws {
        let relay = try await RelayHarness.start(transport: .tcp) {
            $0.creationRatePerSource = 60
            $0.creationBurstPerSource = 5
            $0.maxQueuesPerConnection = 3
        }
        defer { relay.remove() }
        var created = 0
        for _ in 0..<3 {
            let c = try await relay.connect(from: Self.attacker)
            for _ in 0..<3 where (try? await c.createQueue(recipientKey: try .generate())) != nil { created += 1 }
            await c.close()
        }
        #expect(created == 5)
        let person = try await relay.connect(from: "127.0.0.1")
        _ = try await person.createQueue(recipientKey: try .generate())
        // One second on the relay's clock refills one creation (60 a minute).
        relay.clock.advance(by: 1)
        let again = try await relay.connect(from: Self.attacker)
        _ = try await again.createQueue(recipientKey: try .generate())
        await #expect(throws: RelayClientError.relay(.rate)) { try await again.createQueue(recipientKey: try .generate()) }
        await relay.stop()
    }
}
