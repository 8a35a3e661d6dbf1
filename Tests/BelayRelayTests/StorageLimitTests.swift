import BelayClient
import BelayRelay
import BelaySodium
import BelayWire
import Testing

/// Timers and queues can no longer be created anonymously without bound: TSET needs a secured
/// queue whose sender key is proven, held bodies count against quotas, and each connection may
/// create only so many queues and timers. The attacker stands on 127.0.0.3; a person on
/// 127.0.0.1 is served throughout.
@Suite struct StorageLimitTests {
    static let attacker = AbuseTests.attacker

    static func timer(_ key: Ed25519.SigningKey, to sender: EntityID, bytes: Int = 100, replacing old: EntityID? = nil)
        -> RelayCommand.TimerSet
    {
        .init(timerKey: key.publicKey, delay: 3600, replaces: old, entries: [.init(sender: sender, body: [UInt8](repeating: 7, count: bytes))])
    }

    @Test func timersAreOnlyForSecuredQueuesWhoseSenderKeyIsProven() async throws {
        let relay = try await RelayHarness.start(transport: .tcp)
        defer { relay.remove() }
        let attacker = try await relay.connect(from: Self.attacker)
        // Its own unsecured queue: the cheap target of the timer-exhaustion attack.
        let (_, openSender) = try await attacker.createQueue(recipientKey: try Ed25519.SigningKey.generate())
        let key = try Ed25519.SigningKey.generate()
        await #expect(throws: RelayClientError.relay(.auth)) { try await attacker.setTimer(Self.timer(key, to: openSender)) }
        // A secured queue, without the sender key proven on this connection.
        let owner = try await relay.connect()
        let q = try await SecuredQueue.make(on: owner)
        await #expect(throws: RelayClientError.relay(.auth)) { try await attacker.setTimer(Self.timer(key, to: q.sender)) }
        // The person who holds the sender key can.
        let person = try await q.sender(on: relay)
        _ = try await person.setTimer(Self.timer(key, to: q.sender))
        await relay.stop()
    }

    @Test func timerBodiesPerQueueAreCappedAndAReArmStillFits() async throws {
        let relay = try await RelayHarness.start { $0.maxTimerBodiesPerQueue = 3 }
        defer { relay.remove() }
        let owner = try await relay.connect()
        let q = try await SecuredQueue.make(on: owner)
        let depositor = try await q.sender(on: relay)
        var ids: [EntityID] = []
        var keys: [Ed25519.SigningKey] = []
        for _ in 0..<3 {
            let k = try Ed25519.SigningKey.generate()
            ids.append(try await depositor.setTimer(Self.timer(k, to: q.sender)).id)
            keys.append(k)
        }
        await #expect(throws: RelayClientError.relay(.limit)) { try await depositor.setTimer(Self.timer(try .generate(), to: q.sender)) }
        // Replacing one of the three (a check-in renewal) holds no more, so it goes through.
        let renewed = try await depositor.setTimer(Self.timer(try .generate(), to: q.sender, replacing: ids[0]))
        await #expect(throws: RelayClientError.relay(.limit)) { try await depositor.setTimer(Self.timer(try .generate(), to: q.sender)) }
        try await depositor.cancelTimer(renewed.id)
        _ = try await depositor.setTimer(Self.timer(try .generate(), to: q.sender))
        // Other queues are not affected.
        let other = try await SecuredQueue.make(on: owner)
        _ = try await other.sender(on: relay).setTimer(Self.timer(try .generate(), to: other.sender))
        #expect(await relay.server.core.countersMatchStore())
        await relay.stop()
    }

    @Test func heldTimerBodiesCountAgainstTheQueueQuota() async throws {
        let relay = try await RelayHarness.start { $0.maxQueueBytes = 2 * WireLimits.maxBodyLength }
        defer { relay.remove() }
        let owner = try await relay.connect()
        let q = try await SecuredQueue.make(on: owner)
        let sender = try await q.sender(on: relay)
        let big = WireLimits.maxBodyLength
        let held = try await sender.setTimer(Self.timer(try .generate(), to: q.sender, bytes: big))
        try await sender.send(to: q.sender, body: [UInt8](repeating: 1, count: big))
        await #expect(throws: RelayClientError.relay(.quota)) { try await sender.send(to: q.sender, body: [1]) }
        await #expect(throws: RelayClientError.relay(.quota)) { try await sender.setTimer(Self.timer(try .generate(), to: q.sender)) }
        try await sender.cancelTimer(held.id)
        try await sender.send(to: q.sender, body: [UInt8](repeating: 1, count: big))
        #expect(await relay.server.core.countersMatchStore())
        await relay.stop()
    }

    @Test func eachConnectionMayCreateOnlySoManyQueuesAndTimers() async throws {
        let relay = try await RelayHarness.start(transport: .tcp) {
            $0.maxQueuesPerConnection = 3
            $0.maxTimersPerConnection = 2
        }
        defer { relay.remove() }
        let attacker = try await relay.connect(from: Self.attacker)
        for _ in 0..<3 { _ = try await attacker.createQueue(recipientKey: try .generate()) }
        await #expect(throws: RelayClientError.relay(.limit)) { try await attacker.createQueue(recipientKey: try .generate()) }
        let owner = try await relay.connect(from: "127.0.0.1")
        let q = try await SecuredQueue.make(on: owner)
        try await attacker.authorise(.sender, q.sender, key: q.senderKey)
        for _ in 0..<2 { _ = try await attacker.setTimer(Self.timer(try .generate(), to: q.sender)) }
        await #expect(throws: RelayClientError.relay(.limit)) { try await attacker.setTimer(Self.timer(try .generate(), to: q.sender)) }
        // A person on another connection is unaffected.
        let person = try await q.sender(on: relay)
        _ = try await person.setTimer(Self.timer(try .generate(), to: q.sender))
        _ = try await owner.createQueue(recipientKey: try .generate())
        await relay.stop()
    }

    @Test func totalStorageIsBoundedAndAcknowledgementsFreeIt() async throws {
        let body = [UInt8](repeating: 9, count: 10_000)
        let limit = 200_000
        let relay = try await RelayHarness.start(transport: .tcp) {
            $0.maxStoreBytes = limit
            $0.maxQueueBytes = 8 * WireLimits.maxBodyLength
        }
        defer { relay.remove() }
        let owner = try await relay.connect()
        // The attacker fills queue after queue until the relay says STORE_FULL.
        var queues: [SecuredQueue] = []
        var full = false
        while !full {
            let q = try await SecuredQueue.make(on: owner)
            queues.append(q)
            let attacker = try await relay.connect(from: Self.attacker)
            try await attacker.authorise(.sender, q.sender, key: q.senderKey)
            while true {
                do {
                    try await attacker.send(to: q.sender, body: body)
                } catch RelayClientError.relay(.storeFull) {
                    full = true
                    break
                } catch RelayClientError.relay(.quota) {
                    break
                }
            }
            await attacker.close()
        }
        #expect(queues.count > 1)
        #expect(await relay.server.core.heldBytes() <= limit)
        // A person cannot send now; once the owner drains one message, the person can.
        let theirs = try await SecuredQueue.make(on: owner)
        let person = try await theirs.sender(on: relay)
        await #expect(throws: RelayClientError.relay(.storeFull)) { try await person.send(to: theirs.sender, body: body) }
        let first = try #require(try await owner.getMessage(queues[0].recipient))
        try await owner.acknowledge(queues[0].recipient, seq: first.seq)
        try await person.send(to: theirs.sender, body: body)
        #expect(await relay.server.core.countersMatchStore())
        await relay.stop()
    }

    /// A queue deleted by its owner takes with it the timers aimed only at it: they no longer
    /// hold a place in `max_timers` until their deadline.
    @Test func deletingAQueueDeletesTheTimersLeftWithNoBody() async throws {
        let relay = try await RelayHarness.start { $0.maxTimers = 2 }
        defer { relay.remove() }
        let owner = try await relay.connect()
        let q = try await SecuredQueue.make(on: owner)
        let depositor = try await q.sender(on: relay)
        _ = try await depositor.setTimer(Self.timer(try .generate(), to: q.sender))
        _ = try await depositor.setTimer(Self.timer(try .generate(), to: q.sender))
        try await owner.deleteQueue(q.recipient)
        #expect(await relay.server.core.countersMatchStore())
        let other = try await SecuredQueue.make(on: owner)
        let person = try await other.sender(on: relay)
        for _ in 0..<2 { _ = try await person.setTimer(Self.timer(try .generate(), to: other.sender)) }
        await relay.stop()
    }

    /// Once the relay holds half its storage, each queue may hold only `pressure_queue_bytes`:
    /// whoever filled it with their own queues cannot stop a person's small queue.
    @Test func underStoragePressureLargeQueuesAreCappedAndSmallOnesGoOn() async throws {
        let body = [UInt8](repeating: 3, count: 16_000)
        let relay = try await RelayHarness.start(transport: .tcp) {
            $0.maxStoreBytes = 400_000
            $0.maxQueueBytes = 16 * WireLimits.maxBodyLength
            $0.pressureQueueBytes = 2 * WireLimits.maxBodyLength
        }
        defer { relay.remove() }
        let owner = try await relay.connect()
        let hoard = try await SecuredQueue.make(on: owner)
        let attacker = try await relay.connect(from: Self.attacker)
        try await attacker.authorise(.sender, hoard.sender, key: hoard.senderKey)
        var held = 0
        while true {
            do {
                try await attacker.send(to: hoard.sender, body: body)
                held += body.count
            } catch RelayClientError.relay(.quota) {
                break
            }
        }
        // It got past half the store before its queue was capped, and no further.
        #expect(held * 2 > 400_000 && held < 400_000)
        let theirs = try await SecuredQueue.make(on: owner)
        let person = try await theirs.sender(on: relay)
        try await person.send(to: theirs.sender, body: body)
        try await person.send(to: theirs.sender, body: body)
        await #expect(throws: RelayClientError.relay(.quota)) { try await person.send(to: theirs.sender, body: body) }
        await relay.stop()
    }
}
