import BelaySodium
import BelayWire
import Logging
import NIOCore

/// One client connection: preamble, Noise NK as responder, then commands. It decrypts and
/// parses on its event loop, answers what it can itself (PING, malformed, unauthorised, rate),
/// and hands the rest to the core. Replies from the core arrive through `receive`; each
/// batch's replies leave as one bundle (docs/PROTOCOL.md §2.4), encrypted once, in one write.
final class ConnectionHandler: ChannelDuplexHandler, CoreSink, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Commands handed to the core and not yet answered; past this the connection stops reading
    /// from its socket until the core catches up, so one client cannot fill the relay's memory.
    static let maxPendingCoreRequests = 512
    /// The same in bytes of bodies (SEND, TSET): 512 requests of 16 KiB would be 8 MiB a
    /// connection; past this much the connection stops reading too.
    static let maxPendingCoreBytes = 1 << 20
    /// Once a command is refused for the rate, the connection stops reading for at least this
    /// long (and until the bucket could pay for a full bundle), so a client that ignores RATE
    /// is slowed by TCP instead of drawing one error reply per command.
    static let minRateHold = TimeAmount.milliseconds(10)
    static let maxRateHold = TimeAmount.seconds(1)

    private enum State {
        case awaitingPreamble
        case awaitingHandshake
        case established(Session)
        case closed
    }

    private struct Session {
        var transport: NoiseTransport
        var proofs: [Proof: [UInt8]] = [:]
        var pendingAuth: [UInt32: RelayCommand.Auth] = [:]
        /// NEW and TSET commands so far, against the per-connection caps.
        var queuesCreated = 0
        var timersSet = 0
    }

    /// A client that ignores RATE keeps costing the relay a decryption per command: after this
    /// many refused commands, with no full refill of its bucket in between, the connection is
    /// closed (docs/PROTOCOL.md §2.4).
    static let maxRefusals = 256

    private let core: RelayCore
    private let settings: ConnectionSettings
    private let relayStatic: X25519.KeyPair
    let eventLoop: EventLoop
    private let logger: Logger
    /// Tells the admission table the handshake is done (the connection no longer counts
    /// against the handshaking limits).
    private let onEstablished: @Sendable () -> Void
    /// Asks the admission table whether this connection's source may create another queue or
    /// timer (the per-source creation rate).
    private let mayCreate: @Sendable () -> Bool

    // Event-loop confined from here on.
    private var state = State.awaitingPreamble
    private var decoder = FrameDecoder()
    private var context: ChannelHandlerContext?
    /// Replies waiting to leave: one bundle per batch (docs/PROTOCOL.md §2.4), one write.
    private var outbox = Outbox()
    private var scratch: ByteBuffer
    private var pendingCore = 0
    /// Body bytes of the requests with the core, in submission order (the core answers a
    /// connection's requests in order).
    private var pendingSizes: [Int] = []
    private var pendingHead = 0
    private var pendingCoreBytes = 0
    private var readHeld = false
    /// Set while reading is paused after a rate refusal.
    private var rateHold: Scheduled<Void>?
    private var rate: TokenBucket
    private var refusals = 0
    /// Read from the event loop's clock, so that tests on an embedded loop can move time.
    private var lastFrame: NIODeadline
    private var handshakeTimeout: Scheduled<Void>?
    private var idleCheck: RepeatedTask?
    /// Set once we decide to close; `state` may be temporarily `.closed` while a session is lent out.
    private var isClosing = false

    init(
        core: RelayCore, settings: ConnectionSettings, relayStatic: X25519.KeyPair, eventLoop: EventLoop, logger: Logger,
        onEstablished: @escaping @Sendable () -> Void = {}, mayCreate: @escaping @Sendable () -> Bool = { true }
    ) {
        self.core = core
        self.onEstablished = onEstablished
        self.mayCreate = mayCreate
        self.settings = settings
        self.relayStatic = relayStatic
        self.eventLoop = eventLoop
        self.logger = logger
        scratch = ByteBufferAllocator().buffer(capacity: 256)
        lastFrame = eventLoop.now
        rate = TokenBucket(perSecond: Double(settings.rateLimitPerSecond), burst: Double(settings.rateBurst))
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { armTimers(context) }
    }

    /// The context holds this handler, so keeping it past removal would be a cycle that keeps
    /// the whole channel (its buffers included) alive after the connection has closed.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        handshakeTimeout?.cancel()
        idleCheck?.cancel()
        handshakeTimeout = nil
        idleCheck = nil
        rateHold?.cancel()
        rateHold = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        armTimers(context)
        context.fireChannelActive()
    }

    private func armTimers(_ context: ChannelHandlerContext) {
        guard handshakeTimeout == nil else { return }
        handshakeTimeout = context.eventLoop.scheduleTask(in: settings.handshakeTimeout) { [weak self] in
            guard let self, case .established = self.state else {
                self?.closeQuietly("handshake timeout")
                return
            }
        }
        let idle = settings.idleTimeout
        idleCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: idle, delay: max(.nanoseconds(idle.nanoseconds / 4), .milliseconds(10))) {
            [weak self] _ in
            guard let self else { return }
            if self.eventLoop.now - self.lastFrame >= idle { self.closeQuietly("idle timeout") }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        state = .closed
        handshakeTimeout?.cancel()
        idleCheck?.cancel()
        core.submit(CoreRequest(sink: self, requestId: 0, command: .disconnect))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // I/O errors (resets, broken pipes) are the client's business; never log its address.
        closeQuietly("I/O error")
    }

    private func closeQuietly(_ reason: String) {
        guard let context else { return }
        if isClosing { return }
        isClosing = true
        logger.debug("closing connection", metadata: ["reason": "\(reason)"])
        state = .closed
        handshakeTimeout?.cancel()
        idleCheck?.cancel()
        context.close(promise: nil)
    }

    // MARK: Backpressure

    func read(context: ChannelHandlerContext) {
        if mustHoldReads(context) {
            readHeld = true
        } else {
            context.read()
        }
    }

    private func mustHoldReads(_ context: ChannelHandlerContext) -> Bool {
        pendingCore >= Self.maxPendingCoreRequests || pendingCoreBytes >= Self.maxPendingCoreBytes
            || rateHold != nil || !context.channel.isWritable
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        resumeReadingIfPossible(context)
        context.fireChannelWritabilityChanged()
    }

    private func resumeReadingIfPossible(_ context: ChannelHandlerContext) {
        if readHeld, pendingCore < Self.maxPendingCoreRequests / 2, pendingCoreBytes < Self.maxPendingCoreBytes / 2,
            rateHold == nil, context.channel.isWritable
        {
            readHeld = false
            context.read()
        }
    }

    // MARK: Inbound bytes

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        decoder.append(unwrapInboundIn(data))
        processInput(context)
    }

    /// Feeds what the decoder holds to the state machine; stops while a rate pause is on, so
    /// frames already read wait for it like those still in the socket.
    private func processInput(_ context: ChannelHandlerContext) {
        while true {
            switch state {
            case .closed:
                return
            case _ where isClosing:
                return
            case .awaitingPreamble:
                guard let raw = decoder.nextRaw(count: Preamble.length) else { return }
                switch Preamble.check(raw.readableBytesView) {
                case .accepted:
                    state = .awaitingHandshake
                case .notBelay:
                    return closeQuietly("not a Belay client")
                case .unsupportedVersion:
                    var reply = context.channel.allocator.buffer(capacity: Preamble.length)
                    reply.writeBytes(Preamble.bytes())
                    context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
                    return closeQuietly("unsupported protocol version")
                }
            case .awaitingHandshake:
                guard let frame = nextFrame() else { return }
                guard let session = respondToHandshake(frame, context) else { return closeQuietly("handshake failed") }
                handshakeTimeout?.cancel()
                state = .established(session)
                onEstablished()
            case .established:
                guard rateHold == nil, let frame = nextFrame() else { return }
                lastFrame = eventLoop.now
                handleTransportFrame(frame, context)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if outbox.hasEntries, case .established(var session) = state {
            state = .closed
            seal(&session)
            if !isClosing { state = .established(session) }
        }
        flushOut(context)
    }

    private func nextFrame() -> ByteBuffer? {
        do {
            return try decoder.nextFrame()
        } catch {
            closeQuietly("empty frame")
            return nil
        }
    }

    private func respondToHandshake(_ frame: ByteBuffer, _ context: ChannelHandlerContext) -> Session? {
        guard frame.readableBytes == HandshakeSizes.message else { return nil }
        do {
            var handshake = try HandshakeState(pattern: .NK, initiator: false, prologue: Preamble.prologue, localStatic: relayStatic)
            let payload = try handshake.readMessage(Array(frame.readableBytesView))
            guard payload.isEmpty else { return nil }
            let reply = try handshake.writeMessage()
            outbox.addFrame(reply)
            flushOut(context)
            return Session(transport: try handshake.transport())
        } catch {
            return nil
        }
    }

    private func handleTransportFrame(_ frame: ByteBuffer, _ context: ChannelHandlerContext) {
        guard case .established(var session) = state else { return }
        let plaintext: ByteBuffer
        do {
            plaintext = try session.transport.open(frame: frame, allocator: context.channel.allocator)
        } catch {
            return closeQuietly("transport decryption failed")
        }
        let commands: [ByteBuffer]
        do {
            commands = try Bundle.entries(of: plaintext)
        } catch {
            return closeQuietly("malformed bundle: \(error)")
        }
        state = .closed  // avoid a copy-on-write of the session while we mutate it
        for command in commands where !isClosing {
            handleCommand(command, &session)
        }
        if !isClosing { state = .established(session) }
    }

    // MARK: Commands

    private func handleCommand(_ entry: ByteBuffer, _ session: inout Session) {
        // Every well-framed entry counts against the rate, unknown and malformed ones too. A
        // client that let its bucket refill completely has stopped flooding: its count restarts.
        if refusals > 0, rate.isFull(now: eventLoop.now) { refusals = 0 }
        guard rate.take(now: eventLoop.now) else {
            refusals += 1
            if refusals >= Self.maxRefusals { return closeQuietly("kept sending past the rate limit") }
            holdReadsForRate()
            return reply(RelayCodec.peekRequestId(entry), .error(.rate), &session)
        }
        let requestId: UInt32
        let command: RelayCommand
        do {
            (requestId, command) = try RelayCodec.decodeCommand(entry)
        } catch {
            let code = (error as? RelayCodec.DecodeError)?.code ?? .malformed
            return reply(RelayCodec.peekRequestId(entry), .error(code), &session)
        }

        func proof(_ role: AuthRole, _ id: EntityID) -> [UInt8]? { session.proofs[Proof(role: role, entity: id)] }

        switch command {
        case .ping:
            reply(requestId, .pong, &session)
        case let .new(n):
            guard session.queuesCreated < settings.maxQueuesPerConnection else { return reply(requestId, .error(.limit), &session) }
            session.queuesCreated += 1
            guard settings.acceptsToken(n.token) else { return reply(requestId, .error(.token), &session) }
            guard mayCreate() else { return reply(requestId, .error(.rate), &session) }
            submit(requestId, .create(recipientKey: n.recipientKey))
        case let .auth(a):
            guard session.proofs.count + session.pendingAuth.count < settings.maxProofsPerConnection else {
                return reply(requestId, .error(.limit), &session)
            }
            session.pendingAuth[requestId] = a
            submit(requestId, .lookupKey(Proof(role: a.role, entity: a.entity)))
        case let .key(recipient, senderKey):
            guard let p = proof(.recipient, recipient) else { return reply(requestId, .error(.auth), &session) }
            submit(requestId, .secure(recipient: recipient, proven: p, senderKey: senderKey))
        case let .send(sender, body):
            submit(requestId, .send(sender: sender, proven: proof(.sender, sender), body: body))
        case let .subscribe(recipient):
            guard let p = proof(.recipient, recipient) else { return reply(requestId, .error(.auth), &session) }
            submit(requestId, .subscribe(recipient: recipient, proven: p))
        case let .ack(recipient, seq):
            guard let p = proof(.recipient, recipient) else { return reply(requestId, .error(.auth), &session) }
            submit(requestId, .ack(recipient: recipient, proven: p, seq: seq))
        case let .get(recipient):
            guard let p = proof(.recipient, recipient) else { return reply(requestId, .error(.auth), &session) }
            submit(requestId, .get(recipient: recipient, proven: p))
        case let .delete(recipient):
            guard let p = proof(.recipient, recipient) else { return reply(requestId, .error(.auth), &session) }
            submit(requestId, .delete(recipient: recipient, proven: p))
        case let .timerSet(set):
            guard Self.delayRange.contains(set.delay) else { return reply(requestId, .error(.delay), &session) }
            guard session.timersSet < settings.maxTimersPerConnection else { return reply(requestId, .error(.limit), &session) }
            session.timersSet += 1
            // A renewal (replacing a timer) adds nothing to the relay's tables. A new timer draws on
            // the source's creation rate only once every target's sender key is proven here, so
            // a client sharing an address cannot drain it with TSETs that would be refused anyway.
            guard set.entries.allSatisfy({ proof(.sender, $0.sender) != nil }) else { return reply(requestId, .error(.auth), &session) }
            if set.replaces == nil {
                guard mayCreate() else { return reply(requestId, .error(.rate), &session) }
            }
            var replacesProof: [UInt8]?
            if let old = set.replaces {
                guard let p = proof(.timer, old) else { return reply(requestId, .error(.auth), &session) }
                replacesProof = p
            }
            let senderProofs = set.entries.map { proof(.sender, $0.sender) }
            submit(requestId, .timerSet(set, senderProofs: senderProofs, replacesProof: replacesProof))
        case let .timerRenew(timer, delay):
            guard Self.delayRange.contains(delay) else { return reply(requestId, .error(.delay), &session) }
            guard let p = proof(.timer, timer) else { return reply(requestId, .error(.auth), &session) }
            submit(requestId, .timerRenew(timer: timer, proven: p, delay: delay))
        case let .timerCancel(timer):
            guard let p = proof(.timer, timer) else { return reply(requestId, .error(.auth), &session) }
            submit(requestId, .timerCancel(timer: timer, proven: p))
        }
    }

    static let delayRange = WireLimits.minTimerDelaySeconds...WireLimits.maxTimerDelaySeconds

    private func submit(_ requestId: UInt32, _ command: CoreCommand) {
        let size: Int
        switch command {
        case let .send(_, _, body): size = body.count
        case let .timerSet(set, _, _): size = set.entries.reduce(0) { $0 + $1.body.count }
        default: size = 0
        }
        pendingCore += 1
        pendingSizes.append(size)
        pendingCoreBytes += size
        core.submit(CoreRequest(sink: self, requestId: requestId, command: command))
    }

    /// One request came back from the core: the oldest outstanding one.
    private func answeredByCore() {
        pendingCore -= 1
        guard pendingHead < pendingSizes.count else { return }
        pendingCoreBytes -= pendingSizes[pendingHead]
        pendingHead += 1
        if pendingHead > 1_024, pendingHead * 2 > pendingSizes.count {
            pendingSizes.removeFirst(pendingHead)
            pendingHead = 0
        }
    }

    private func holdReadsForRate() {
        guard rateHold == nil else { return }
        let refill = TimeAmount.nanoseconds(Int64(1e9 * Double(WireLimits.maxBundleEntries) / Double(max(1, settings.rateLimitPerSecond))))
        let hold = min(max(refill, Self.minRateHold), Self.maxRateHold)
        rateHold = eventLoop.scheduleTask(in: hold) { [weak self] in
            guard let self else { return }
            self.rateHold = nil
            guard let context = self.context else { return }
            self.processInput(context)
            self.channelReadComplete(context: context)
            self.resumeReadingIfPossible(context)
        }
    }

    /// Adds a reply to the outbox; it is encrypted when the bundle is full or the read or batch ends.
    private func reply(_ requestId: UInt32, _ reply: RelayReply, _ session: inout Session) {
        scratch.clear()
        RelayCodec.encode(reply, requestId: requestId, into: &scratch)
        do {
            try outbox.add(scratch, sealingWith: &session.transport)
        } catch {
            closeQuietly("cannot encrypt: \(error)")
        }
    }

    private func seal(_ session: inout Session) {
        do {
            try outbox.seal(with: &session.transport)
        } catch {
            closeQuietly("cannot encrypt: \(error)")
        }
    }

    private func flushOut(_ context: ChannelHandlerContext) {
        guard let frames = outbox.takeFrames() else { return }
        context.writeAndFlush(wrapOutboundOut(frames), promise: nil)
    }

    // MARK: From the core

    func receive(_ outcomes: [CoreOutcome]) {
        eventLoop.assertInEventLoop()
        guard let context, !isClosing, case .established(var session) = state else { return }
        state = .closed
        for outcome in outcomes {
            switch outcome {
            case let .reply(requestId, r, grant):
                answeredByCore()
                if let (proof, key) = grant, session.proofs.count < settings.maxProofsPerConnection {
                    session.proofs[proof] = key
                }
                reply(requestId, r, &session)
            case let .push(r):
                reply(0, r, &session)
            case let .key(requestId, proof, result):
                answeredByCore()
                guard let auth = session.pendingAuth.removeValue(forKey: requestId) else { continue }
                switch result {
                case let .success(key):
                    if AuthProof.verify(
                        signature: auth.signature, publicKey: key, sessionHash: session.transport.handshakeHash,
                        role: proof.role, entity: proof.entity)
                    {
                        session.proofs[proof] = key
                        reply(requestId, .ok, &session)
                    } else {
                        reply(requestId, .error(.auth), &session)
                    }
                case let .failure(code):
                    reply(requestId, .error(code), &session)
                }
            }
        }
        guard !isClosing else { return }
        seal(&session)
        state = .established(session)
        flushOut(context)
        resumeReadingIfPossible(context)
    }
}

enum HandshakeSizes {
    /// NK messages with empty payloads: a 32-byte ephemeral key and a 16-byte tag.
    static let message = 48
}
