import BelayClient
import BelayRelay
import BelaySodium
import BelayWire
import NIOCore
import NIOPosix
import Testing

/// Raw TCP peers that misbehave. Each gets its documented outcome, and a well-behaved client
/// on the same relay keeps working throughout.
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
        func bytes(_ count: Int, on loop: EventLoop) -> EventLoopFuture<[UInt8]> {
            let p = loop.makePromise(of: [UInt8].self)
            waiters.append((count, p))
            return p.futureResult
        }
        func channelInactive(context: ChannelHandlerContext) {
            for w in waiters { w.promise.succeed(received) }
            closed.succeed(received)
        }
    }

    static func raw(_ relay: RelayHarness, from source: String? = nil) async throws -> (Channel, EventLoopFuture<[UInt8]>) {
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

    @Test func randomBytesAreClosedWithoutAReply() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let (ch, closed) = try await Self.raw(relay)
            try await Self.send(ch, (0..<200).map { _ in UInt8.random(in: 0...255, using: &rng) })
            #expect(try await closed.get().isEmpty)
        }
        try await Self.healthy(relay)
        await relay.stop()
    }

    @Test func garbageAfterAValidPreambleClosesTheConnection() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let (ch, closed) = try await Self.raw(relay)
        try await Self.send(ch, Preamble.bytes() + [0, 48] + [UInt8](repeating: 7, count: 48))
        #expect(try await closed.get().isEmpty)
        let (ch2, closed2) = try await Self.raw(relay)
        try await Self.send(ch2, Preamble.bytes() + [0, 0])  // zero-length frame
        #expect(try await closed2.get().isEmpty)
        try await Self.healthy(relay)
        await relay.stop()
    }

    @Test func anotherVersionIsToldOursAndClosed() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let (ch, closed) = try await Self.raw(relay)
        try await Self.send(ch, Preamble.bytes(version: 7))
        #expect(try await closed.get() == Preamble.bytes())
        await relay.stop()
    }

    @Test func aWrongRelayKeyIsRefusedByTheClient() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let wrong = RelayAddress(host: "127.0.0.1", port: relay.server.port, publicKey: try X25519.KeyPair.generate().publicKey)
        // The relay cannot read message 1 sealed to another key and hangs up.
        await #expect(throws: RelayClientError.handshakeRejected) { try await RelayConnection.connect(to: wrong, group: relay.group) }
        try await Self.healthy(relay)
        await relay.stop()
    }

    /// A raw session: the preamble and handshake done by hand, for sending transport messages
    /// the client library would never build.
    static func rawSession(_ relay: RelayHarness, from source: String? = nil) async throws -> (Channel, RawPeer, NoiseTransport, EventLoopFuture<[UInt8]>) {
        var handshake = try HandshakeState(pattern: .NK, initiator: true, prologue: Preamble.prologue, remoteStatic: relay.key.publicKey)
        var hello = ByteBufferAllocator().buffer(capacity: 64)
        hello.writeBytes(Preamble.bytes())
        FrameDecoder.writeFrame(try handshake.writeMessage(), into: &hello)
        let (ch, closed) = try await raw(relay, from: source)
        let peer = try await ch.pipeline.handler(type: RawPeer.self).get()
        let message2 = try await ch.eventLoop.submit { peer.bytes(2 + 48, on: ch.eventLoop) }.get()
        try await send(ch, Array(hello.readableBytesView))
        _ = try handshake.readMessage(Array(try await message2.get().dropFirst(2)))
        return (ch, peer, try handshake.transport(), closed)
    }

    /// Several commands in one transport message are answered in order, as if sent one by one;
    /// a bundle whose entry runs past its end closes that connection and no other.
    @Test func bundlesAreAnsweredInOrderAndAMalformedOneClosesTheConnection() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let (ch, peer, session, _) = try await Self.rawSession(relay)
        var transport = session
        var bundle = ByteBufferAllocator().buffer(capacity: 64)
        for (id, opcode) in [(5, 0x01), (6, 0x70), (7, 0x01)] as [(UInt32, UInt8)] {
            var entry = ByteBufferAllocator().buffer(capacity: 8)
            entry.writeInteger(opcode)
            entry.writeInteger(id)
            Bundle.append(entry, to: &bundle)
        }
        var frame = ByteBufferAllocator().buffer(capacity: 64)
        try transport.writeFrame(plaintext: bundle, into: &frame)
        // One bundle back: PONG 5, ERR 6 unknown command, PONG 7 (5, 7 and 5 bytes, each behind a
        // 2-byte length), in a frame with its 2-byte length and 16-byte tag.
        let answer = try await ch.eventLoop.submit { peer.bytes(2 + 48 + 2 + 2 + 5 + 2 + 7 + 2 + 5 + 16, on: ch.eventLoop) }.get()
        try await Self.send(ch, Array(frame.readableBytesView))
        var sealed = ByteBufferAllocator().buffer(capacity: 64)
        sealed.writeBytes(try await answer.get().dropFirst(2 + 48 + 2))
        let replies = try Bundle.entries(of: transport.open(frame: sealed)).map { try RelayCodec.decodeReply($0) }
        #expect(replies.map(\.requestId) == [5, 6, 7])
        #expect(replies.map(\.reply) == [.pong, .error(.unknownCommand), .pong])
        try await ch.close()

        let (bad, _, badSession, badClosed) = try await Self.rawSession(relay)
        var transportCopy = badSession
        var truncated = ByteBufferAllocator().buffer(capacity: 16)
        truncated.writeInteger(UInt16(9))  // promises 9 bytes, carries 5
        truncated.writeInteger(UInt8(0x01))
        truncated.writeInteger(UInt32(8))
        var badFrame = ByteBufferAllocator().buffer(capacity: 64)
        try transportCopy.writeFrame(plaintext: truncated, into: &badFrame)
        try await Self.send(bad, Array(badFrame.readableBytesView))
        #expect(try await badClosed.get().count == 2 + 48)  // closed, nothing answered
        try await Self.healthy(relay)
        await relay.stop()
    }

    /// More replies than one bundle may hold leave in several bundles, in order.
    @Test func manyRepliesAreSplitIntoBundlesOfAtMostTheLimit() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let (ch, peer, session, _) = try await Self.rawSession(relay)
        var transport = session
        let count = 3 * WireLimits.maxBundleEntries + 10
        var frames = ByteBufferAllocator().buffer(capacity: 4096)
        var bundle = ByteBufferAllocator().buffer(capacity: 1024)
        var entries = 0
        for id in 1...UInt32(count) {
            var ping = ByteBufferAllocator().buffer(capacity: 8)
            RelayCodec.encode(.ping, requestId: id, into: &ping)
            if !Bundle.fits(ping.readableBytes, in: bundle, entries: entries) {
                try transport.writeFrame(plaintext: bundle, into: &frames)
                bundle.clear()
                entries = 0
            }
            Bundle.append(ping, to: &bundle)
            entries += 1
        }
        try transport.writeFrame(plaintext: bundle, into: &frames)
        // Every PONG is 2 + 5 bytes inside a bundle; each bundle adds a 2-byte frame length and
        // a 16-byte tag. At least ceil(count / limit) bundles: wait for the bytes of exactly that.
        let bundles = (count + WireLimits.maxBundleEntries - 1) / WireLimits.maxBundleEntries
        let expected = 2 + 48 + count * (2 + 5) + bundles * (2 + 16)
        let answer = try await ch.eventLoop.submit { peer.bytes(expected, on: ch.eventLoop) }.get()
        try await Self.send(ch, Array(frames.readableBytesView))
        var decoder = FrameDecoder()
        decoder.append(Array(try await answer.get().dropFirst(2 + 48)))
        var ids: [UInt32] = []
        var sizes: [Int] = []
        while let frame = try decoder.nextFrame() {
            let replies = try Bundle.entries(of: transport.open(frame: frame))
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
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        // A genuine session, recorded byte for byte: preamble, message 1, then one PING frame.
        var handshake = try HandshakeState(pattern: .NK, initiator: true, prologue: Preamble.prologue, remoteStatic: relay.key.publicKey)
        var recorded = ByteBufferAllocator().buffer(capacity: 0)
        recorded.writeBytes(Preamble.bytes())
        FrameDecoder.writeFrame(try handshake.writeMessage(), into: &recorded)
        let (ch, closed) = try await Self.raw(relay)
        let peer = try await ch.pipeline.handler(type: RawPeer.self).get()
        let message2Future = try await ch.eventLoop.submit { peer.bytes(2 + 48, on: ch.eventLoop) }.get()
        try await Self.send(ch, Array(recorded.readableBytesView))
        let message2 = try await message2Future.get()
        _ = try handshake.readMessage(Array(message2.dropFirst(2)))
        var transport = try handshake.transport()
        var ping = ByteBufferAllocator().buffer(capacity: 16)
        RelayCodec.encode(.ping, requestId: 1, into: &ping)
        var bundle = ByteBufferAllocator().buffer(capacity: 16)
        Bundle.append(ping, to: &bundle)
        var pingFrame = ByteBufferAllocator().buffer(capacity: 64)
        try transport.writeFrame(plaintext: bundle, into: &pingFrame)
        // PONG: a 2-byte frame length, then a bundle of one (a 2-byte entry length and 5 bytes
        // of reply) and a 16-byte tag.
        let pongFuture = try await ch.eventLoop.submit { peer.bytes(2 + 48 + 2 + 2 + 5 + 16, on: ch.eventLoop) }.get()
        try await Self.send(ch, Array(pingFrame.readableBytesView))
        let pong = try await pongFuture.get().dropFirst(2 + 48 + 2)
        var pongBuffer = ByteBufferAllocator().buffer(capacity: 32)
        pongBuffer.writeBytes(pong)
        let replies = try Bundle.entries(of: transport.open(frame: pongBuffer))
        #expect(replies.count == 1)
        #expect(try RelayCodec.decodeReply(replies[0]).reply == .pong)
        try await ch.close()
        _ = try await closed.get()

        // Replaying the recording on a new connection: the relay answers message 1 with a fresh
        // message 2, but the recorded frame was sealed under the old session's keys, so it fails
        // to decrypt and the relay closes without answering it.
        let (replay, replayClosed) = try await Self.raw(relay)
        try await Self.send(replay, Array(recorded.readableBytesView) + Array(pingFrame.readableBytesView))
        let answer = try await replayClosed.get()
        #expect(answer.count == 2 + 48)
        #expect(answer != message2)
        try await Self.healthy(relay)
        await relay.stop()
    }

    @Test func connectionsBeyondTheLimitAreClosedAndOthersKeepWorking() async throws {
        let relay = try await RelayHarness.start { $0.maxConnections = 2 }
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

    /// Answers any preamble and message 1 with a well-formed but forged message 2.
    final class Impostor: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        var seen = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            seen += unwrapInboundIn(data).readableBytes
            guard seen >= Preamble.length + 2 + 48 else { return }
            seen = -1_000_000
            // A fresh ephemeral key and a 16-byte "tag": the right size, but not sealed under es.
            guard let ephemeral = try? X25519.KeyPair.generate().publicKey else { return }
            var reply = context.channel.allocator.buffer(capacity: 50)
            FrameDecoder.writeFrame(ephemeral + [UInt8](repeating: 0x5a, count: 16), into: &reply)
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
        }
    }

    @Test func anImpostorThatAnswersWithoutTheKeyIsCalledOut() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(Impostor()) } }
            .bind(host: "127.0.0.1", port: 0).get()
        let pinned = RelayAddress(host: "127.0.0.1", port: server.localAddress!.port!, publicKey: try X25519.KeyPair.generate().publicKey)
        await #expect(throws: RelayClientError.keyMismatch) { try await RelayConnection.connect(to: pinned, group: group) }
        try await server.close()
        try await group.shutdownGracefully()
    }

    /// A relay of protocol version 1: answers any preamble with its own and closes (§2.1).
    final class VersionOneRelay: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var reply = context.channel.allocator.buffer(capacity: Preamble.length)
            reply.writeBytes(Preamble.bytes(version: 1))
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
            context.close(promise: nil)
        }
    }

    /// After the bump to version 2, a client that meets a version-1 relay says so, rather than
    /// reporting a wrong key or a dead relay.
    @Test func aClientToldAnotherVersionSaysWhichOne() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(VersionOneRelay()) } }
            .bind(host: "127.0.0.1", port: 0).get()
        let address = RelayAddress(host: "127.0.0.1", port: server.localAddress!.port!, publicKey: try X25519.KeyPair.generate().publicKey)
        await #expect(throws: RelayClientError.versionMismatch(relayVersion: 1)) { try await RelayConnection.connect(to: address, group: group) }
        #expect(RelayClientError.versionMismatch(relayVersion: 1).description == "the relay speaks protocol version 1; this client speaks 4")
        try await server.close()
        try await group.shutdownGracefully()
    }

    /// Completes a genuine NK handshake as responder, then never answers a command.
    final class SilentRelay: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let key: X25519.KeyPair
        var buffered: [UInt8] = []
        var answered = false
        init(key: X25519.KeyPair) { self.key = key }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            buffered += unwrapInboundIn(data).readableBytesView
            guard !answered, buffered.count >= Preamble.length + 2 + 48 else { return }
            answered = true
            let message1 = Array(buffered[(Preamble.length + 2)..<(Preamble.length + 2 + 48)])
            guard var responder = try? HandshakeState(pattern: .NK, initiator: false, prologue: Preamble.prologue, localStatic: key),
                (try? responder.readMessage(message1)) != nil,
                let message2 = try? responder.writeMessage()
            else { return }
            var reply = context.channel.allocator.buffer(capacity: 50)
            FrameDecoder.writeFrame(message2, into: &reply)
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
        }
    }

    @Test func aRelayThatNeverAnswersTimesOutInsteadOfHanging() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let key = try X25519.KeyPair.generate()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(SilentRelay(key: key)) } }
            .bind(host: "127.0.0.1", port: 0).get()
        let address = RelayAddress(host: "127.0.0.1", port: server.localAddress!.port!, publicKey: key.publicKey)
        let client = try await RelayConnection.connect(to: address, group: group, requestTimeout: .milliseconds(100))
        await #expect(throws: RelayClientError.timeout) { try await client.ping() }
        // The connection itself is still usable: a later command times out the same way.
        await #expect(throws: RelayClientError.timeout) { try await client.call(.get(recipient: EntityID.random())) }
        await client.close()
        try await server.close()
        try await group.shutdownGracefully()
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
