import BelayClient
import BelaySodium
import BelayWire
import NIOCore
import NIOEmbedded
import Testing

/// The client against stand-ins that are not Belay relays, each joined to it in memory: an
/// impostor without the key, a relay of a later version, and one that never answers. The
/// link's time moves only when a test moves it, so a request timeout is met exactly.
@Suite struct StandInRelayTests {
    /// A client joined to a stand-in relay whose pipeline `standIn` builds, on a link of its own.
    final class StandIn: Sendable {
        let clientLoop = NIOAsyncTestingEventLoop()
        let relayLoop = NIOAsyncTestingEventLoop()
        let key: X25519.KeyPair
        var address: RelayAddress { RelayAddress(host: "127.0.0.1", port: 7707, publicKey: key.publicKey) }

        init(key: X25519.KeyPair) {
            self.key = key
        }

        func connect(requestTimeout: TimeAmount = .seconds(30), standIn: @escaping @Sendable () -> any ChannelHandler) async throws -> RelayConnection {
            let pair = try await MemoryLink.pair(
                clientLoop: clientLoop, serverLoop: relayLoop, source: try SocketAddress(ipAddress: "127.0.0.1", port: 40_000),
                destination: try SocketAddress(ipAddress: "127.0.0.1", port: 7707))
            try await relayLoop.submit { try pair.server.pipeline.syncOperations.addHandler(standIn()) }.get()
            try await MemoryLink.activate(pair)
            return try await RelayConnection.establish(over: pair.client, to: address, requestTimeout: requestTimeout, onPushes: { _ in })
        }

        func finish() async {
            await relayLoop.shutdownGracefully()
            await clientLoop.shutdownGracefully()
        }
    }

    /// Answers any message 1 with a well-formed but forged message 2.
    final class Impostor: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        var seen = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            seen += unwrapInboundIn(data).readableBytes
            guard seen >= WireHandshake.messageLength else { return }
            seen = -1_000_000
            // A fresh ephemeral key and a sealed payload's worth of bytes: the right size, but
            // not sealed under es.
            guard let ephemeral = try? X25519.KeyPair.generate().publicKey else { return }
            var reply = context.channel.allocator.buffer(capacity: WireHandshake.messageLength)
            reply.writeBytes(ephemeral + [UInt8](repeating: 0x5a, count: WireHandshake.messageLength - ephemeral.count))
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
        }
    }

    @Test func anImpostorThatAnswersWithoutTheKeyIsCalledOut() async throws {
        let link = StandIn(key: try X25519.KeyPair.generate())
        await #expect(throws: RelayClientError.keyMismatch) { try await link.connect { Impostor() } }
        await link.finish()
    }

    /// Answers message 1 as the relay with `key` would, with `payload`; then nothing more.
    final class Responder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let key: X25519.KeyPair
        let payload: [UInt8]
        let closeAfter: Bool
        /// Fulfilled at each read after the handshake (a frame from the client), in order.
        var arrivals: [EventLoopPromise<Void>]
        var buffered: [UInt8] = []
        var answered = false

        init(key: X25519.KeyPair, payload: [UInt8], closeAfter: Bool, arrivals: [EventLoopPromise<Void>] = []) {
            self.key = key
            self.payload = payload
            self.closeAfter = closeAfter
            self.arrivals = arrivals
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if answered {
                if !arrivals.isEmpty { arrivals.removeFirst().succeed() }
                return
            }
            buffered += unwrapInboundIn(data).readableBytesView
            guard buffered.count >= WireHandshake.messageLength else { return }
            answered = true
            var message1 = Array(buffered.prefix(WireHandshake.messageLength))
            WireHandshake.unmaskKey(of: &message1)
            guard var responder = try? HandshakeState(pattern: .NK, initiator: false, prologue: WireHandshake.prologue, localStatic: key),
                (try? responder.readMessage(message1)) != nil,
                let message2 = try? responder.writeMessage(payload: payload)
            else { return }
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: message2)), promise: nil)
            if closeAfter { context.close(promise: nil) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            for arrival in arrivals { arrival.fail(ChannelError.ioOnClosedChannel) }
            arrivals = []
            context.fireChannelInactive()
        }
    }

    /// A relay of a later protocol version completes the handshake, says in message 2 that it
    /// does not speak the client's version, and closes (§2.1). The client says which version
    /// the relay speaks, rather than reporting a wrong key or a dead relay: the answer came
    /// inside the handshake, under the pinned key.
    @Test func aClientToldAnotherVersionSaysWhichOne() async throws {
        let key = try X25519.KeyPair.generate()
        let link = StandIn(key: key)
        await #expect(throws: RelayClientError.versionMismatch(relayVersion: 6)) {
            try await link.connect { Responder(key: key, payload: WireHandshake.relayPayload(.unsupported(relayVersion: 6)), closeAfter: true) }
        }
        #expect(
            RelayClientError.versionMismatch(relayVersion: 6).description
                == "the relay speaks protocol version 6; this client speaks 5; relay and clients upgrade together (docs/OPERATIONS.md)")
        await link.finish()
    }

    /// A relay that completes a genuine handshake and then never answers a command: each
    /// request fails at its timeout, and the connection stays usable.
    @Test func aRelayThatNeverAnswersTimesOutInsteadOfHanging() async throws {
        let key = try X25519.KeyPair.generate()
        let link = StandIn(key: key)
        let arrivals = [link.relayLoop.makePromise(of: Void.self), link.relayLoop.makePromise(of: Void.self)]
        let accepted = WireHandshake.relayPayload(.accepted(version: WireHandshake.currentVersion))
        let client = try await link.connect(requestTimeout: .milliseconds(100)) {
            Responder(key: key, payload: accepted, closeAfter: false, arrivals: arrivals)
        }
        for (arrival, command) in zip(arrivals, [RelayCommand.ping, .get(recipient: EntityID.random())]) {
            let request = Task { try await client.call(command) }
            // The command has reached the relay, so the client's timer for it is set.
            try await arrival.futureResult.get()
            await link.clientLoop.advanceTime(by: .milliseconds(100))
            await #expect(throws: RelayClientError.timeout) { try await request.value }
        }
        #expect(client.channel.isActive)
        await client.close()
        await link.finish()
    }
}
