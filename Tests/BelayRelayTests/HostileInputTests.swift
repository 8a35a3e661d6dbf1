import BelayClient
import BelayRelay
import BelaySodium
import BelayTestSupport
import BelayWire
import NIOCore
import NIOPosix
import Testing

/// Raw peers that misbehave, over the relay's in-memory link (or TCP, for a source address or
/// the listening socket's limit). Each gets its documented outcome, and a well-behaved client
/// on the same relay keeps working throughout. The link's time moves only when a test moves it,
/// so a timeout is observed exactly, neither early nor late.
@Suite struct HostileInputTests {
    /// A raw socket that records what the relay sends and when it closes.
    final class RawPeer: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        var received: [UInt8] = []
        let closed: EventLoopPromise<[UInt8]>
        /// Fulfilled with the first `count` bytes once that many have arrived.
        var waiters: [(count: Int, promise: EventLoopPromise<[UInt8]>)] = []
        init(_ p: EventLoopPromise<[UInt8]>) { closed = p }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received += unwrapInboundIn(data).readableBytesView
            waiters.removeAll { w in
                guard received.count >= w.count else { return false }
                w.promise.succeed(Array(received.prefix(w.count)))
                return true
            }
        }
        /// Set once the channel is gone: a waiter that comes later gets what there is at once.
        var inactive = false
        func bytes(_ count: Int, on loop: EventLoop) -> EventLoopFuture<[UInt8]> {
            if inactive || received.count >= count { return loop.makeSucceededFuture(Array(received.prefix(count))) }
            let p = loop.makePromise(of: [UInt8].self)
            waiters.append((count, p))
            return p.futureResult
        }
        func channelInactive(context: ChannelHandlerContext) {
            inactive = true
            for w in waiters { w.promise.succeed(received) }
            waiters = []
            closed.succeed(received)
        }
    }

    /// A raw client connection to `relay` by its transport, and what it has received once it closes.
    static func raw(_ relay: RelayHarness, from source: String? = nil) async throws -> (Channel, EventLoopFuture<[UInt8]>) {
        if relay.transport == .link {
            guard source == nil else { throw RelayHarness.HarnessError.sourceNeedsTCP }
            let closed = relay.clientLoop.makePromise(of: [UInt8].self)
            let peer = RawPeer(closed)
            do {
                return (try await relay.openLink { try $0.pipeline.syncOperations.addHandler(peer) }, closed.futureResult)
            } catch {
                closed.fail(error)
                throw error
            }
        }
        let loop = relay.group.next()
        let closed = loop.makePromise(of: [UInt8].self)
        let peer = RawPeer(closed)
        var bootstrap = ClientBootstrap(group: loop)
        if let source { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: source, port: 0)) }
        let channel =
            try await bootstrap
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(peer) } }
            .connect(host: "127.0.0.1", port: relay.server.port).get()
        return (channel, closed.futureResult)
    }

    static func send(_ channel: Channel, _ bytes: [UInt8]) async throws {
        var b = channel.allocator.buffer(capacity: bytes.count)
        b.writeBytes(bytes)
        try await channel.writeAndFlush(b)
    }

    static func healthy(_ relay: RelayHarness) async throws {
        let c = try await relay.connect()
        try await c.ping()
        await c.close()
    }

    /// Bytes that are not a handshake for this relay get no reply at all: they are read and
    /// dropped until the handshake timeout closes the connection, and not a moment before
    /// (a relay that hung up after 64 bytes would tell a prober what it had found).
    @Test func randomBytesAreClosedWithoutAReply() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        var rng = SystemRandomNumberGenerator()
        // Shorter than a message 1, exactly one, several messages' worth, and a well-formed
        // message 1 sealed to another relay's key.
        var wrongKey = try RawSession(relayKey: try X25519.KeyPair.generate().publicKey)
        let inputs = [10, WireHandshake.messageLength, 200, 3000].map { size in (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) } }
        var peers: [(Channel, EventLoopFuture<[UInt8]>)] = []
        for bytes in inputs + [try wrongKey.hello()] {
            let (ch, closed) = try await Self.raw(relay)
            try await Self.send(ch, bytes)
            peers.append((ch, closed))
        }
        let timeout = TimeAmount.seconds(Int64(RelayConfiguration().handshakeTimeoutSeconds))
        await relay.advanceLinks(by: timeout - .milliseconds(1))
        #expect(peers.allSatisfy { $0.0.isActive })
        await relay.advanceLinks(by: .milliseconds(1))
        for (_, closed) in peers { #expect(try await closed.get().isEmpty) }
        try await Self.healthy(relay)
        await relay.stop()
    }

    @Test func garbageAfterAValidHandshakeClosesTheConnection() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let (ch, _, _, closed) = try await Self.rawSession(relay)
        try await Self.send(ch, [UInt8](repeating: 7, count: WireLimits.frameHeaderLength + 512))
        #expect(try await closed.get().count == WireHandshake.messageLength)  // message 2, then nothing
        try await Self.healthy(relay)
        await relay.stop()
    }

    /// The relay answers a client of another version inside the handshake, naming its own, and
    /// closes; the client says which version the relay speaks.
    @Test func anotherVersionIsToldOursAndClosed() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let (ch, closed) = try await Self.raw(relay)
        var session = try RawSession(relayKey: relay.key.publicKey, version: 7)
        try await Self.send(ch, try session.hello())
        let answer = try await closed.get()
        #expect(answer.count == WireHandshake.messageLength)
        #expect(try session.finish(ByteBuffer(bytes: answer)) == .unsupported(relayVersion: WireHandshake.currentVersion))
        await relay.stop()
    }

    @Test func aWrongRelayKeyIsRefusedByTheClient() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let wrong = RelayAddress(host: "127.0.0.1", port: relay.server.port, publicKey: try X25519.KeyPair.generate().publicKey)
        // The relay cannot read message 1 sealed to another key and hangs up at its handshake
        // timeout, as it would on noise (`randomBytesAreClosedWithoutAReply`): the client, whose
        // own connect timeout is as long, reports a refused handshake.
        let link = try await relay.openLink()
        let attempt = Task { try await RelayConnection.establish(over: link, to: wrong, onPushes: { _ in }) }
        await relay.advanceLinks(by: .seconds(Int64(RelayConfiguration().handshakeTimeoutSeconds)))
        await #expect(throws: RelayClientError.handshakeRejected) { _ = try await attempt.value }
        try await Self.healthy(relay)
        await relay.stop()
    }

    /// A raw session: the handshake done by hand, for sending transport messages the client
    /// library would never build.
    static func rawSession(_ relay: RelayHarness, from source: String? = nil) async throws -> (Channel, RawPeer, RawSession, EventLoopFuture<[UInt8]>) {
        var session = try RawSession(relayKey: relay.key.publicKey)
        let (ch, closed) = try await raw(relay, from: source)
        let peer = try await ch.pipeline.handler(type: RawPeer.self).get()
        let message2 = try await ch.eventLoop.submit { peer.bytes(WireHandshake.messageLength, on: ch.eventLoop) }.get()
        try await send(ch, try session.hello())
        try session.establish(ByteBuffer(bytes: try await message2.get()))
        return (ch, peer, session, closed)
    }

    /// The bytes of one frame whose bundle holds `entries` replies of `size` bytes each.
    static func frameBytes(entries: Int, size: Int) -> Int {
        let sealed = entries * (Bundle.entryHeaderLength + size) + WireLimits.tagLength
        return WireLimits.frameHeaderLength + WireLimits.frameBodyBuckets.first { $0 >= sealed }!
    }

    /// Several commands in one transport message are answered in order, as if sent one by one;
    /// a bundle whose entry runs past its end closes that connection and no other.
    @Test func bundlesAreAnsweredInOrderAndAMalformedOneClosesTheConnection() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let (ch, peer, raw, _) = try await Self.rawSession(relay)
        var session = raw
        var bundle = ByteBufferAllocator().buffer(capacity: 64)
        for (id, opcode) in [(5, 0x01), (6, 0x70), (7, 0x01)] as [(UInt32, UInt8)] {
            var entry = ByteBufferAllocator().buffer(capacity: 8)
            entry.writeInteger(opcode)
            entry.writeInteger(id)
            Bundle.append(entry, to: &bundle)
        }
        let frame = try session.frame(bundle: bundle)
        // One bundle back: PONG 5, ERR 6 unknown command, PONG 7, in the smallest bucket.
        let answer = try await ch.eventLoop.submit {
            peer.bytes(WireHandshake.messageLength + Self.frameBytes(entries: 3, size: 7), on: ch.eventLoop)
        }.get()
        try await Self.send(ch, Array(frame.readableBytesView))
        let replies = try session.replies(ByteBuffer(bytes: try await answer.get().dropFirst(WireHandshake.messageLength)))
        #expect(replies.map(\.requestId) == [5, 6, 7])
        #expect(replies.map(\.reply) == [.pong, .error(.unknownCommand), .pong])
        try await ch.close()

        let (bad, _, rawBad, badClosed) = try await Self.rawSession(relay)
        var badSession = rawBad
        var truncated = ByteBufferAllocator().buffer(capacity: 16)
        truncated.writeInteger(UInt16(9))  // promises 9 bytes, carries 5, then padding that is not zeros
        truncated.writeInteger(UInt8(0x01))
        truncated.writeInteger(UInt32(8))
        truncated.writeRepeatingByte(0x55, count: 512 - 16 - truncated.readableBytes)
        let badFrame = try badSession.frame(bundle: truncated)
        try await Self.send(bad, Array(badFrame.readableBytesView))
        #expect(try await badClosed.get().count == WireHandshake.messageLength)  // closed, nothing answered
        try await Self.healthy(relay)
        await relay.stop()
    }

    /// More replies than one bundle may hold leave in several bundles, in order.
    @Test func manyRepliesAreSplitIntoBundlesOfAtMostTheLimit() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let (ch, peer, raw, _) = try await Self.rawSession(relay)
        var session = raw
        let count = 3 * WireLimits.maxBundleEntries + 10
        var frames = ByteBufferAllocator().buffer(capacity: 4096)
        var bundle = ByteBufferAllocator().buffer(capacity: 1024)
        var entries = 0
        for id in 1...UInt32(count) {
            var ping = ByteBufferAllocator().buffer(capacity: 8)
            RelayCodec.encode(.ping, requestId: id, into: &ping)
            if !Bundle.fits(ping.readableBytes, in: bundle, entries: entries) {
                var frame = try session.frame(bundle: bundle)
                frames.writeBuffer(&frame)
                bundle.clear()
                entries = 0
            }
            Bundle.append(ping, to: &bundle)
            entries += 1
        }
        var last = try session.frame(bundle: bundle)
        frames.writeBuffer(&last)
        // Every PONG is 2 + 5 bytes inside a bundle, and 64 of them fit the smallest bucket. At
        // least ceil(count / limit) bundles: wait for the bytes of exactly that.
        let bundles = (count + WireLimits.maxBundleEntries - 1) / WireLimits.maxBundleEntries
        let expected = WireHandshake.messageLength + bundles * Self.frameBytes(entries: WireLimits.maxBundleEntries, size: 5)
        let answer = try await ch.eventLoop.submit { peer.bytes(expected, on: ch.eventLoop) }.get()
        try await Self.send(ch, Array(frames.readableBytesView))
        var decoder = FrameDecoder()
        decoder.append(Array(try await answer.get().dropFirst(WireHandshake.messageLength)))
        var ids: [UInt32] = []
        var sizes: [Int] = []
        var transport = session.transport!
        while let frame = try decoder.nextFrame(opening: &transport) {
            let replies = try Bundle.entries(of: frame)
            sizes.append(replies.count)
            for r in replies {
                let decoded = try RelayCodec.decodeReply(r)
                #expect(decoded.reply == .pong)
                ids.append(decoded.requestId)
            }
        }
        #expect(ids == Array(1...UInt32(count)))
        #expect(sizes.allSatisfy { $0 <= WireLimits.maxBundleEntries })
        #expect(sizes.count == bundles)
        try await ch.close()
        await relay.stop()
    }

    @Test func replayedHandshakeAndFramesGetNowhere() async throws {
        // The genuine session on one relay; the replays to a second process of the same relay
        // (its key, its memory of handshakes).
        let relay = try await RelayHarness.start(store: .memory)
        defer { relay.remove() }
        // A genuine session, recorded byte for byte: message 1, then one PING frame.
        var session = try RawSession(relayKey: relay.key.publicKey)
        let recorded = try session.hello()
        let (ch, closed) = try await Self.raw(relay)
        let peer = try await ch.pipeline.handler(type: RawPeer.self).get()
        let message2Future = try await ch.eventLoop.submit { peer.bytes(WireHandshake.messageLength, on: ch.eventLoop) }.get()
        try await Self.send(ch, recorded)
        let message2 = try await message2Future.get()
        try session.establish(ByteBuffer(bytes: message2))
        let pingFrame = try session.frame([(1, .ping)])
        let pongFuture = try await ch.eventLoop.submit { peer.bytes(WireHandshake.messageLength + Self.frameBytes(entries: 1, size: 5), on: ch.eventLoop) }
            .get()
        try await Self.send(ch, Array(pingFrame.readableBytesView))
        let replies = try session.replies(ByteBuffer(bytes: try await pongFuture.get().dropFirst(WireHandshake.messageLength)))
        #expect(replies.map(\.1) == [.pong])
        try await ch.close()
        _ = try await closed.get()

        // Replaying the recording on a new connection, as a censor confirming a relay would:
        // the relay has answered that message 1 before, so it says nothing at all and closes at
        // the handshake timeout, as for noise; the recorded frame is never even read.
        let twin = try await RelayHarness.start(store: .memory, directory: relay.directory, replays: relay.replays)
        let (replay, replayClosed) = try await Self.raw(twin)
        try await Self.send(replay, recorded + Array(pingFrame.readableBytesView))
        // The same with the key's masked top bit flipped: the same key to the relay.
        var flipped = recorded
        flipped[31] ^= 0x80
        let (again, againClosed) = try await Self.raw(twin)
        try await Self.send(again, flipped)
        await twin.advanceLinks(by: .seconds(Int64(RelayConfiguration().handshakeTimeoutSeconds)))
        #expect(try await replayClosed.get().isEmpty)
        #expect(try await againClosed.get().isEmpty)
        _ = message2
        try await Self.healthy(relay)
        await twin.stop()
        await relay.stop()
    }

    @Test func connectionsBeyondTheLimitAreClosedAndOthersKeepWorking() async throws {
        // The limit is enforced on the listening socket.
        let relay = try await RelayHarness.start(transport: .tcp) { $0.maxConnections = 2 }
        defer { relay.remove() }
        let a = try await relay.connect()
        let b = try await relay.connect()
        // The third is accepted by the kernel and closed at once, before the handshake completes.
        await #expect(throws: RelayClientError.handshakeRejected) { try await relay.connect() }
        try await a.ping()
        try await b.ping()
        #expect(relay.server.connectionCount == 2)
        await relay.stop()
    }

    @Test func aWrongQueueKeyIsRefusedEverywhere() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let owner = try await relay.connect()
        let q = try await SecuredQueue.make(on: owner)
        let mallory = try await relay.connect()
        let wrong = try Ed25519.SigningKey.generate()
        await #expect(throws: RelayClientError.relay(.auth)) { try await mallory.authorise(.recipient, q.recipient, key: wrong) }
        await #expect(throws: RelayClientError.relay(.auth)) { try await mallory.authorise(.sender, q.sender, key: wrong) }
        for command: RelayCommand in [
            .subscribe(recipient: q.recipient), .get(recipient: q.recipient), .ack(recipient: q.recipient, seq: 1),
            .delete(recipient: q.recipient), .key(recipient: q.recipient, senderKey: wrong.publicKey),
            .send(sender: q.sender, body: [1]),
        ] {
            #expect(try await mallory.request(command).get() == .error(.auth), "\(command)")
        }
        try await owner.ping()
        await relay.stop()
    }
}
