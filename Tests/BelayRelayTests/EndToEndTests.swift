import BelayClient
import BelayRelay
import BelaySodium
import BelayWire
import NIOCore
import Testing

/// A started relay on real loopback TCP; clients speak the documented protocol through
/// BelayClient.
@Suite struct EndToEndTests {
    @Test func createSecureSendSubscribeAcknowledgeDelete() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let inbox = PushInbox()
        let owner = try await relay.connect(onPush: inbox.handler)
        let q = try await SecuredQueue.make(on: owner)

        let sender = try await relay.connect()
        // Secured: sending without proving the sender key is refused.
        await #expect(throws: RelayClientError.relay(.auth)) { try await sender.send(to: q.sender, body: [1]) }
        try await sender.authorise(.sender, q.sender, key: q.senderKey)
        for i in 1...5 { try await sender.send(to: q.sender, body: [UInt8](repeating: UInt8(i), count: 100)) }

        try await owner.subscribe(q.recipient)
        let pushed = await inbox.first(5).compactMap(\.delivery)
        #expect(pushed.map { $0.body[0] } == [1, 2, 3, 4, 5])
        #expect(pushed.allSatisfy { $0.recipient == q.recipient })
        #expect(zip(pushed, pushed.dropFirst()).allSatisfy { $0.seq < $1.seq })

        // Live delivery while subscribed.
        try await sender.send(to: q.sender, body: [6])
        #expect(await inbox.first(6)[5].delivery?.body == [6])

        for d in pushed { try await owner.acknowledge(q.recipient, seq: d.seq) }
        await #expect(throws: RelayClientError.relay(.noMessage)) { try await owner.acknowledge(q.recipient, seq: pushed[0].seq) }
        #expect(try await owner.getMessage(q.recipient)?.body == [6])

        try await owner.deleteQueue(q.recipient)
        await #expect(throws: RelayClientError.relay(.noQueue)) { try await sender.send(to: q.sender, body: [7]) }
        await #expect(throws: RelayClientError.relay(.noQueue)) { try await owner.getMessage(q.recipient) }
        await relay.stop()
    }

    @Test func unsecuredQueueAcceptsAnyoneUntilSecured() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let owner = try await relay.connect()
        let rk = try Ed25519.SigningKey.generate()
        let (r, s) = try await owner.createQueue(recipientKey: rk)
        let stranger = try await relay.connect()
        try await stranger.send(to: s, body: Array("first contact".utf8))
        #expect(try await owner.getMessage(r)?.body == Array("first contact".utf8))
        // A sender id cannot be used to read, and a recipient id cannot be used to send.
        await #expect(throws: RelayClientError.relay(.auth)) { try await stranger.getMessage(r) }
        await #expect(throws: RelayClientError.relay(.noQueue)) { try await stranger.send(to: r, body: [1]) }
        // There is no sender key to prove yet.
        await #expect(throws: RelayClientError.relay(.auth)) { try await stranger.authorise(.sender, s, key: rk) }
        let sk = try Ed25519.SigningKey.generate()
        try await owner.secure(recipient: r, senderKey: sk.publicKey)
        try await owner.secure(recipient: r, senderKey: sk.publicKey)  // idempotent
        await #expect(throws: RelayClientError.relay(.conflict)) { try await owner.secure(recipient: r, senderKey: rk.publicKey) }
        await #expect(throws: RelayClientError.relay(.auth)) { try await stranger.send(to: s, body: [2]) }
        await relay.stop()
    }

    @Test func aRecipientKeyIsProvenOncePerConnectionAndBoundToIt() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let first = try await relay.connect()
        let q = try await SecuredQueue.make(on: first)
        let second = try await relay.connect()
        await #expect(throws: RelayClientError.relay(.auth)) { try await second.getMessage(q.recipient) }
        // The wrong key, or a proof made for another session, is refused.
        await #expect(throws: RelayClientError.relay(.auth)) { try await second.authorise(.recipient, q.recipient, key: q.senderKey) }
        let replayed = try AuthProof.sign(key: q.recipientKey, sessionHash: first.sessionHash, role: .recipient, entity: q.recipient)
        await #expect(throws: RelayClientError.relay(.auth)) {
            try await second.call(.auth(.init(role: .recipient, entity: q.recipient, signature: replayed)))
        }
        try await second.authorise(.recipient, q.recipient, key: q.recipientKey)
        #expect(try await second.getMessage(q.recipient) == nil)
        await #expect(throws: RelayClientError.relay(.noQueue)) {
            try await second.authorise(.recipient, EntityID.random(), key: q.recipientKey)
        }
        await relay.stop()
    }

    @Test func aNewSubscriberTakesOverAndTheOldOneGetsEnd() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let oldInbox = PushInbox()
        let old = try await relay.connect(onPush: oldInbox.handler)
        let q = try await SecuredQueue.make(on: old)
        try await old.subscribe(q.recipient)
        let newInbox = PushInbox()
        let new = try await relay.connect(onPush: newInbox.handler)
        try await new.authorise(.recipient, q.recipient, key: q.recipientKey)
        try await new.subscribe(q.recipient)
        #expect(await oldInbox.first(1) == [.end(recipient: q.recipient)])
        let sender = try await q.sender(on: relay)
        try await sender.send(to: q.sender, body: [42])
        #expect(await newInbox.first(1)[0].delivery?.body == [42])
        #expect(oldInbox.all.count == 1)
        await relay.stop()
    }

    @Test func theWindowHoldsBackMessagesUntilAcknowledged() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let inbox = PushInbox()
        let owner = try await relay.connect(onPush: inbox.handler)
        let q = try await SecuredQueue.make(on: owner)
        let sender = try await q.sender(on: relay)
        for i in 0..<20 { try await sender.send(to: q.sender, body: [UInt8(i)]) }
        try await owner.subscribe(q.recipient)
        let firstWindow = await inbox.first(WireLimits.subscriptionWindow)
        try await owner.call(.ping)  // anything further would have been pushed before this reply
        #expect(inbox.all.count == WireLimits.subscriptionWindow)
        try await owner.acknowledge(q.recipient, seq: firstWindow[0].delivery!.seq)
        let next = await inbox.first(WireLimits.subscriptionWindow + 1)
        #expect(next.last?.delivery?.body == [UInt8(WireLimits.subscriptionWindow)])
        await relay.stop()
    }

    @Test func quotaOverflowIsRefusedWithQuota() async throws {
        let relay = try await RelayHarness.start { $0.maxQueueMessages = 3 }
        defer { relay.remove() }
        let owner = try await relay.connect()
        let q = try await SecuredQueue.make(on: owner)
        let sender = try await q.sender(on: relay)
        for _ in 0..<3 { try await sender.send(to: q.sender, body: [1]) }
        await #expect(throws: RelayClientError.relay(.quota)) { try await sender.send(to: q.sender, body: [1]) }
        let m = try #require(try await owner.getMessage(q.recipient))
        try await owner.acknowledge(q.recipient, seq: m.seq)
        try await sender.send(to: q.sender, body: [1])
        await relay.stop()
    }

    /// Acknowledging a pushed message frees exactly its bytes of the quota: the core takes the
    /// length from its delivery record rather than from the database.
    @Test func acknowledgingPushedMessagesReturnsTheirBytesToTheQuota() async throws {
        let relay = try await RelayHarness.start { $0.maxQueueBytes = 300 }
        defer { relay.remove() }
        let inbox = PushInbox()
        let owner = try await relay.connect(onPush: inbox.handler)
        let q = try await SecuredQueue.make(on: owner)
        let sender = try await q.sender(on: relay)
        try await owner.subscribe(q.recipient)
        for round in 1...2 {
            for _ in 0..<3 { try await sender.send(to: q.sender, body: [UInt8](repeating: 7, count: 100)) }
            await #expect(throws: RelayClientError.relay(.quota)) { try await sender.send(to: q.sender, body: [1]) }
            let pushed = await inbox.first(3 * round).suffix(3).compactMap(\.delivery)
            #expect(pushed.count == 3)
            for d in pushed { try await owner.acknowledge(q.recipient, seq: d.seq) }
        }
        await #expect(throws: RelayClientError.relay(.noMessage)) { try await owner.acknowledge(q.recipient, seq: 12345) }
        await relay.stop()
    }

    @Test func creationTokensGateNewQueuesButNotSending() async throws {
        let token = "organisation-token-1234"
        let relay = try await RelayHarness.start {
            $0.creationTokenHashes = [try! BLAKE2b.hash(Array(token.utf8), outputLength: 32)]
        }
        defer { relay.remove() }
        let c = try await relay.connect()
        let rk = try Ed25519.SigningKey.generate()
        await #expect(throws: RelayClientError.relay(.token)) { try await c.createQueue(recipientKey: rk) }
        await #expect(throws: RelayClientError.relay(.token)) { try await c.createQueue(recipientKey: rk, token: Array("wrong".utf8)) }
        let (_, s) = try await c.createQueue(recipientKey: rk, token: Array(token.utf8))
        let outsider = try await relay.connect()
        try await outsider.send(to: s, body: [1])
        await relay.stop()
    }

    /// Six PINGs in one bundle against a burst of three: three PONGs, three RATEs, and the
    /// connection stays open (it is only paused; docs/PROTOCOL.md §2.4).
    @Test func rateLimitAnswersRateAndKeepsTheConnection() async throws {
        let relay = try await RelayHarness.start {
            $0.rateLimitPerSecond = 1
            $0.rateBurst = 3
        }
        defer { relay.remove() }
        let (ch, peer, raw, _) = try await HostileInputTests.rawSession(relay)
        var session = raw
        var bundle = ByteBufferAllocator().buffer(capacity: 64)
        for id in 1...6 as ClosedRange<UInt32> {
            var entry = ByteBufferAllocator().buffer(capacity: 8)
            RelayCodec.encode(.ping, requestId: id, into: &entry)
            Bundle.append(entry, to: &bundle)
        }
        let frame = try session.frame(bundle: bundle)
        // One bundle back: 3 PONGs and 3 ERRs, in one frame of the smallest bucket.
        let answer = try await ch.eventLoop.submit {
            peer.bytes(WireHandshake.messageLength + HostileInputTests.frameBytes(entries: 6, size: 7), on: ch.eventLoop)
        }.get()
        try await HostileInputTests.send(ch, Array(frame.readableBytesView))
        let replies = try session.replies(ByteBuffer(bytes: try await answer.get().dropFirst(WireHandshake.messageLength))).map(\.1)
        #expect(replies == [.pong, .pong, .pong, .error(.rate), .error(.rate), .error(.rate)])
        #expect(ch.isActive)
        try await ch.close()
        await relay.stop()
    }

    /// A frame sent during a rate pause is not read until the pause ends: a second past the
    /// refusal here (one token a second, a full bundle's worth capped at a second), on the
    /// link's time, to the millisecond.
    @Test func aFrameSentDuringARatePauseIsAnsweredWhenThePauseEnds() async throws {
        let relay = try await RelayHarness.start {
            $0.rateLimitPerSecond = 1
            $0.rateBurst = 1
        }
        defer { relay.remove() }
        let (ch, peer, raw, _) = try await HostileInputTests.rawSession(relay)
        var session = raw
        let refused = try await ch.eventLoop.submit {
            peer.bytes(WireHandshake.messageLength + HostileInputTests.frameBytes(entries: 2, size: 7), on: ch.eventLoop)
        }.get()
        try await HostileInputTests.send(ch, Array(try session.frame([(1, .ping), (2, .ping)]).readableBytesView))
        let first = try session.replies(ByteBuffer(bytes: try await refused.get().dropFirst(WireHandshake.messageLength))).map(\.1)
        #expect(first == [.pong, .error(.rate)])
        let answered = try await ch.eventLoop.submit {
            peer.bytes(WireHandshake.messageLength + 2 * HostileInputTests.frameBytes(entries: 2, size: 7), on: ch.eventLoop)
        }.get()
        try await HostileInputTests.send(ch, Array(try session.frame([(3, .ping)]).readableBytesView))
        await relay.advanceLinks(by: .milliseconds(999))
        // Whatever the relay had read by now, the core has answered and the answer has crossed.
        await relay.server.core.barrier()
        await relay.advanceLinks(by: .zero)
        #expect(try await ch.eventLoop.submit { peer.received.count }.get() == WireHandshake.messageLength + HostileInputTests.frameBytes(entries: 2, size: 7))
        await relay.advanceLinks(by: .milliseconds(1))
        let second = try await answered.get().dropFirst(WireHandshake.messageLength + HostileInputTests.frameBytes(entries: 2, size: 7))
        #expect(try session.replies(ByteBuffer(bytes: second)).map(\.1) == [.pong])
        try await ch.close()
        await relay.stop()
    }
}
