import BelaySodium
import BelayWire
import NIOCore

/// The client side of one relay connection: sends Noise NK message 1, checks the relay's
/// answer against the pinned key and the version it names, then matches replies to requests by
/// id. Lives on
/// its channel's event loop: `RelayConnection` reaches it through `NIOLoopBound`, and its
/// timers capture it the same way.
final class ClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case connecting(HandshakeState)
        case established(NoiseTransport)
        case failed
    }

    private var state: State
    private var decoder = FrameDecoder()
    private var pending: [UInt32: EventLoopPromise<RelayReply>] = [:]
    private var nextRequestId: UInt32 = 1
    private var context: ChannelHandlerContext?
    private var inRead = false
    /// Commands not yet handed to the channel: those sent while handling a read (the replies
    /// and pushes that trigger them arrive in bursts) leave in one bundle and one write.
    private var outbox = Outbox()
    let handshakeDone: EventLoopPromise<[UInt8]>
    /// Receives the pushes (MSG and END) of one read from the socket together, in order: what
    /// the relay pushed at once (a subscription's window) can be recorded in one transaction.
    let onPush: @Sendable ([RelayReply]) -> Void

    convenience init(relayKey: [UInt8], handshakeDone: EventLoopPromise<[UInt8]>, onPush: @escaping @Sendable ([RelayReply]) -> Void) throws {
        self.init(
            handshake: try HandshakeState(pattern: .NK, initiator: true, prologue: WireHandshake.prologue, remoteStatic: relayKey),
            handshakeDone: handshakeDone, onPush: onPush)
    }

    init(handshake: HandshakeState, handshakeDone: EventLoopPromise<[UInt8]>, onPush: @escaping @Sendable ([RelayReply]) -> Void) {
        state = .connecting(handshake)
        self.handshakeDone = handshakeDone
        self.onPush = onPush
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context) }
    }

    /// The context holds this handler: keeping it past removal is a cycle that would keep the
    /// closed channel and its buffers alive.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private var started = false
    private func start(_ context: ChannelHandlerContext) {
        guard !started, case .connecting(var handshake) = state else { return }
        started = true
        do {
            var message = try handshake.writeMessage(payload: WireHandshake.clientPayload())
            WireHandshake.maskKey(of: &message)
            state = .connecting(handshake)
            var out = context.channel.allocator.buffer(capacity: message.count)
            out.writeBytes(message)
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        } catch {
            fail(.protocolViolation("cannot start the handshake: \(error)"), context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        decoder.append(unwrapInboundIn(data))
        inRead = true
        // Pushes are handed over before the replies read with them are: whoever waits for a
        // reply then finds the pushes the relay sent alongside it (`Agent.drain` relies on it).
        var pushes: [RelayReply] = []
        var answered: [(EventLoopPromise<RelayReply>, RelayReply)] = []
        defer {
            if !pushes.isEmpty { onPush(pushes) }
            // Still inside the read: commands that the replies' callbacks send leave together at
            // its end (`channelReadComplete`).
            for (promise, reply) in answered { promise.succeed(reply) }
            inRead = false
        }
        while true {
            switch state {
            case .failed:
                return
            case .connecting(var handshake):
                guard let message = decoder.nextRaw(count: WireHandshake.messageLength) else { return }
                var bytes = Array(message.readableBytesView)
                WireHandshake.unmaskKey(of: &bytes)
                let payload: [UInt8]
                do {
                    payload = try handshake.readMessage(bytes)
                } catch {
                    return fail(.keyMismatch, context)
                }
                // Sealed under the pinned key: a bad answer here is the relay's, not an intruder's.
                let answer: WireHandshake.Answer
                do {
                    answer = try WireHandshake.answer(in: payload)
                } catch {
                    return fail(.protocolViolation("an unreadable handshake answer: \(error)"), context)
                }
                switch answer {
                case let .unsupported(v): return fail(.versionMismatch(relayVersion: v), context)
                case let .accepted(v) where v != WireHandshake.currentVersion: return fail(.versionMismatch(relayVersion: v), context)
                case .accepted: break
                }
                do {
                    let transport = try handshake.transport()
                    state = .established(transport)
                    handshakeDone.succeed(transport.handshakeHash)
                } catch {
                    return fail(.keyMismatch, context)
                }
            case .established(var transport):
                let plaintext: ByteBuffer
                do {
                    guard let next = try decoder.nextFrame(opening: &transport, allocator: context.channel.allocator) else {
                        state = .established(transport)
                        return
                    }
                    plaintext = next
                } catch {
                    return fail(.protocolViolation("a reply failed to decrypt: \(error)"), context)
                }
                state = .established(transport)
                let replies: [ByteBuffer]
                do {
                    replies = try Bundle.entries(of: plaintext)
                } catch {
                    return fail(.protocolViolation("malformed bundle: \(error)"), context)
                }
                for entry in replies {
                    let requestId: UInt32
                    let reply: RelayReply
                    do {
                        (requestId, reply) = try RelayCodec.decodeReply(entry)
                    } catch {
                        return fail(.protocolViolation("malformed reply: \(error)"), context)
                    }
                    if requestId == 0 {
                        pushes.append(reply)
                    } else if let promise = pending.removeValue(forKey: requestId) {
                        answered.append((promise, reply))
                    }
                    if case .failed = state { return }
                }
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        seal(context)
        flushOut(context)
    }

    /// Encrypts the waiting commands, in as few frames as hold them.
    private func seal(_ context: ChannelHandlerContext) {
        guard outbox.hasEntries, case .established(var transport) = state else { return }
        do {
            try outbox.seal(with: &transport)
        } catch {
            return fail(.protocolViolation("cannot encrypt: \(error)"), context)
        }
        state = .established(transport)
    }

    private func flushOut(_ context: ChannelHandlerContext) {
        guard let frames = outbox.takeFrames() else { return }
        context.writeAndFlush(wrapOutboundOut(frames), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .connecting = state {
            // NK: a relay without the pinned key cannot decrypt message 1 and hangs up, but so
            // does a relay at its connection limit; the two cannot be told apart from here.
            fail(.handshakeRejected, context)
        } else {
            fail(.connectionClosed, context)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if case .connecting = state {
            fail(.handshakeRejected, context)
        } else {
            // A reset or other I/O error on an established connection means the same to the
            // caller as an orderly close: the relay is gone and unanswered requests are unknown.
            fail(.connectionClosed, context)
        }
    }

    private func fail(_ error: RelayClientError, _ context: ChannelHandlerContext) {
        if case .failed = state { return }
        state = .failed
        handshakeDone.fail(error)
        let waiting = pending
        pending = [:]
        for (_, promise) in waiting { promise.fail(error) }
        context.close(promise: nil)
    }

    /// Sends several commands in as few transport messages as they fit in (usually one), each
    /// with its own promise; must run on the channel's event loop.
    func send(_ commands: [(RelayCommand, EventLoopPromise<RelayReply>)], timeout: TimeAmount?) {
        let deferred = inRead
        inRead = true
        for (command, promise) in commands { send(command, promise: promise, timeout: timeout) }
        inRead = deferred
        if !inRead, let context {
            seal(context)
            flushOut(context)
        }
    }

    /// Sends a command; must run on the channel's event loop. With a timeout, the request fails
    /// with `.timeout` if no reply has come by then.
    func send(_ command: RelayCommand, promise: EventLoopPromise<RelayReply>, timeout: TimeAmount? = nil) {
        guard let context, case .established(var transport) = state else {
            promise.fail(RelayClientError.connectionClosed)
            return
        }
        let requestId = nextRequestId
        nextRequestId = nextRequestId == UInt32.max ? 1 : nextRequestId + 1
        do {
            try outbox.add(sealingWith: &transport) { RelayCodec.encode(command, requestId: requestId, into: &$0) }
        } catch let Outbox.Error.entryTooLong(length) {
            // Nothing was sealed, but the transport goes back all the same: a copy of it must
            // never outlive a seal, or the next frame would reuse its nonces.
            state = .established(transport)
            promise.fail(RelayClientError.protocolViolation("command too large: \(length) bytes"))
            return
        } catch {
            promise.fail(RelayClientError.protocolViolation("cannot encrypt: \(error)"))
            return fail(.protocolViolation("cannot encrypt: \(error)"), context)
        }
        state = .established(transport)
        pending[requestId] = promise
        if let timeout {
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let timer = context.eventLoop.scheduleTask(in: timeout) {
                bound.value.pending.removeValue(forKey: requestId)?.fail(RelayClientError.timeout)
            }
            promise.futureResult.whenComplete { _ in timer.cancel() }
        }
        // Inside a read, commands triggered by replies share frames and one
        // write at the read's end.
        if !inRead {
            seal(context)
            flushOut(context)
        }
    }
}
