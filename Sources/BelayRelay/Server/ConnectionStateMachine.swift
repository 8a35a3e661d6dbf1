import BelaySodium
import BelayWire
import NIOCore

/// One client connection without a channel: Noise NK as responder, then sealed frames of
/// bundles of commands (docs/PROTOCOL.md §2). Events go in (bytes read, the core's outcomes, a timer, the
/// pipeline asking for a read), actions come out; `ConnectionHandler` performs them. Time comes
/// from the caller, so tests drive it by hand.
struct ConnectionStateMachine {
    enum State {
        /// The channel is not yet active: no timer runs and bytes wait in the decoder.
        case unstarted
        /// Waiting for Noise NK message 1 (§2.1). `since` is when the connection became
        /// active, which the idle timeout counts from until the first transport frame.
        case awaitingHandshake(since: NIODeadline)
        /// Message 1 did not decrypt. Whatever else comes is read and dropped until the
        /// handshake timeout closes the connection: closing at once, after exactly one
        /// message's worth of bytes, would tell a prober what it has found.
        case refused(since: NIODeadline)
        case established(Session)
        /// The machine asked the channel to close and waits for it to go inactive, when the core
        /// must forget the connection.
        case closing(CloseReason)
        /// Absorbing: every event yields no action.
        case closed
        /// Only inside a method, while a session is changed in place: its buffers and tables then
        /// have one owner and are not copied on write. Never seen between events.
        case modifying
    }

    /// Whether the pipeline asked for a read that the connection has not passed on to the socket.
    enum ReadDemand: Equatable {
        case passedOn
        case held
    }

    /// A client that ignores RATE keeps costing the relay a decryption per command: after this
    /// many refused commands, with no full refill of its bucket in between, the connection is
    /// closed (docs/PROTOCOL.md §2.4).
    static let maxRefusals = 256
    /// Once a command is refused for the rate, the connection stops reading for at least this
    /// long (and until the bucket could pay for a full bundle), so a client that ignores RATE
    /// is slowed by TCP instead of drawing one error reply per command.
    static let minRateHold = TimeAmount.milliseconds(10)
    static let maxRateHold = TimeAmount.seconds(1)
    /// The idle check runs this often (a quarter of the idle timeout), but not more often than
    /// every `minIdleCheck`.
    static let idleChecksPerTimeout: Int64 = 4
    static let minIdleCheck = TimeAmount.milliseconds(10)

    private(set) var state = State.unstarted
    private(set) var readDemand = ReadDemand.passedOn
    private var decoder: FrameDecoder
    private let settings: ConnectionSettings
    private let relayStatic: X25519.KeyPair
    /// Asks the admission table whether this connection's source may create another queue or
    /// timer (the per-source creation rate).
    private let mayCreate: () -> Bool
    private let allocator: ByteBufferAllocator
    /// Masks the handshake key and draws the delivery jitter; tests inject a seeded one.
    private let random: RandomSource

    init(
        settings: ConnectionSettings, relayStatic: X25519.KeyPair, mayCreate: @escaping () -> Bool,
        allocator: ByteBufferAllocator = ByteBufferAllocator(), random: RandomSource = SystemRandom()
    ) {
        self.settings = settings
        self.relayStatic = relayStatic
        self.mayCreate = mayCreate
        self.allocator = allocator
        self.random = random
        decoder = FrameDecoder(allocator: allocator)
    }

    static func rateHold(_ settings: ConnectionSettings) -> TimeAmount {
        let refill = TimeAmount.nanoseconds(
            Int64(1e9 * Double(WireLimits.maxBundleEntries) / Double(max(1, settings.rateLimitPerSecond))))
        return min(max(refill, minRateHold), maxRateHold)
    }

    var idleCheckInterval: TimeAmount {
        max(.nanoseconds(settings.idleTimeout.nanoseconds / Self.idleChecksPerTimeout), Self.minIdleCheck)
    }

    // MARK: Events

    /// The channel is active (or the handler joined an active one): the timers start.
    mutating func channelActive(now: NIODeadline) -> [ConnectionAction] {
        guard case .unstarted = state else { return [] }
        state = .awaitingHandshake(since: now)
        var actions: [ConnectionAction] = [
            .schedule(.handshakeTimeout, in: settings.handshakeTimeout), .schedule(.idleCheck, in: settings.idleTimeout),
        ]
        processInput(now: now, into: &actions)
        return actions
    }

    mutating func bytesReceived(_ bytes: ByteBuffer, now: NIODeadline) -> [ConnectionAction] {
        switch state {
        case .closing, .closed: return []
        default: break
        }
        decoder.append(bytes)
        var actions: [ConnectionAction] = []
        processInput(now: now, into: &actions)
        return actions
    }

    /// The socket has no more for now: the replies gathered during the read leave as one write.
    mutating func readComplete() -> [ConnectionAction] {
        var actions: [ConnectionAction] = []
        flush(into: &actions)
        return actions
    }

    /// Replies and pushes from the core, one batch's worth: they leave as one write (pushes
    /// after their jitter, if `delivery_jitter` is on), and reading resumes if the backlog has
    /// drained.
    mutating func outcomesReceived(_ outcomes: [CoreOutcome], now: NIODeadline, writable: Bool) -> [ConnectionAction] {
        guard var session = takeSession() else { return [] }
        var actions: [ConnectionAction] = []
        let wasHolding = !session.held.isEmpty
        let jitter = Session.Jitter(delay: settings.deliveryJitter, now: now, random: random)
        if let reason = session.apply(outcomes, maxProofs: settings.maxProofsPerConnection, jitter: jitter) {
            close(reason, into: &actions)
            return actions
        }
        if !wasHolding, let next = session.held.nextRelease { actions.append(.schedule(.pushRelease, in: next - now)) }
        state = .established(consume session)
        flush(into: &actions)
        resumeReading(writable: writable, into: &actions)
        return actions
    }

    /// The held pushes that are due leave now; the timer is set again for the next.
    mutating func pushReleaseFired(now: NIODeadline) -> [ConnectionAction] {
        guard var session = takeSession() else { return [] }
        var actions: [ConnectionAction] = []
        for push in session.held.due(now: now) {
            if let reason = session.reply(0, push) {
                close(reason, into: &actions)
                return actions
            }
        }
        if let next = session.held.nextRelease { actions.append(.schedule(.pushRelease, in: max(next - now, .zero))) }
        state = .established(consume session)
        flush(into: &actions)
        return actions
    }

    /// The pipeline asks for more bytes: passed on unless the core is behind, a rate pause is
    /// on or the channel cannot take more writes.
    mutating func readRequested(writable: Bool) -> [ConnectionAction] {
        switch state {
        case .closing, .closed: return []
        default: break
        }
        guard mayRead(writable: writable, afterHold: false) else {
            readDemand = .held
            return []
        }
        readDemand = .passedOn
        return [.read]
    }

    mutating func writabilityChanged(writable: Bool) -> [ConnectionAction] {
        var actions: [ConnectionAction] = []
        resumeReading(writable: writable, into: &actions)
        return actions
    }

    mutating func handshakeTimerFired() -> [ConnectionAction] {
        var actions: [ConnectionAction] = []
        switch state {
        case .awaitingHandshake:
            close(.handshakeTimeout, into: &actions)
            return actions
        case .refused:
            close(.handshakeFailed, into: &actions)
            return actions
        default:
            return []
        }
    }

    /// Closes a connection that has sent no complete frame for the idle timeout, or looks again later.
    mutating func idleCheckFired(now: NIODeadline) -> [ConnectionAction] {
        let last: NIODeadline
        switch state {
        case let .awaitingHandshake(since), let .refused(since): last = since
        case let .established(session): last = session.lastFrame
        case .unstarted, .closing, .closed, .modifying: return []
        }
        guard now - last >= settings.idleTimeout else { return [.schedule(.idleCheck, in: idleCheckInterval)] }
        var actions: [ConnectionAction] = []
        close(.idleTimeout, into: &actions)
        return actions
    }

    /// The pause after a rate refusal is over: frames already read are handled, then the socket.
    mutating func rateHoldEnded(now: NIODeadline, writable: Bool) -> [ConnectionAction] {
        guard var session = takeSession() else { return [] }
        guard session.intake == .pausedForRate else {
            state = .established(consume session)
            return []
        }
        session.intake = .open
        state = .established(consume session)
        var actions: [ConnectionAction] = []
        processInput(now: now, into: &actions)
        flush(into: &actions)
        resumeReading(writable: writable, into: &actions)
        return actions
    }

    /// I/O errors (resets, broken pipes) are the client's business.
    mutating func errorCaught() -> [ConnectionAction] {
        switch state {
        case .closing, .closed: return []
        default: break
        }
        var actions: [ConnectionAction] = []
        close(.ioError, into: &actions)
        return actions
    }

    /// The channel is gone, closed by either side: the core forgets the connection's subscriptions.
    mutating func channelInactive() -> [ConnectionAction] {
        if case .closed = state { return [] }
        state = .closed
        decoder = FrameDecoder(allocator: allocator)
        return [.submit(requestId: 0, .disconnect)]
    }

    // MARK: Inside

    /// Feeds what the decoder holds to the current state until it needs more bytes, a rate
    /// pause stops it, or the connection closes.
    private mutating func processInput(now: NIODeadline, into actions: inout [ConnectionAction]) {
        while true {
            switch state {
            case .unstarted, .closing, .closed:
                return
            case .modifying:
                preconditionFailure("a connection's state was left modifying")
            case .refused:
                decoder.discard()
                return
            case let .awaitingHandshake(since):
                guard let message = decoder.nextRaw(count: WireHandshake.messageLength) else { return }
                switch RelayHandshake.respond(
                    to: message, relayStatic: relayStatic, replays: settings.replays, random: random, allocator: allocator)
                {
                case nil:
                    decoder.discard()
                    state = .refused(since: since)
                    return
                case let .unsupported(reply, clientVersion):
                    // Said inside the encrypted channel, so the client can name both versions.
                    actions.append(.write(reply))
                    return close(.unsupportedVersion(clientVersion), into: &actions)
                case let .established(reply, transport):
                    actions.append(.write(reply))
                    actions.append(.cancel(.handshakeTimeout))
                    actions.append(.established)
                    state = .established(Session(transport: transport, settings: settings, lastFrame: since, allocator: allocator))
                }
            case .established:
                var session = takeSession()!
                guard session.intake == .open else {
                    state = .established(consume session)
                    return
                }
                let plaintext: ByteBuffer
                do throws(FrameDecoder.Error) {
                    guard let next = try decoder.nextFrame(opening: &session.transport, allocator: allocator) else {
                        state = .established(consume session)
                        return
                    }
                    plaintext = next
                } catch {
                    switch error {
                    case .decryptionFailed: return close(.decryptionFailed, into: &actions)
                    case let .notABucket(length): return close(.frameNotABucket(length), into: &actions)
                    }
                }
                session.lastFrame = now
                let failure = session.receive(plaintext: plaintext, now: now, settings: settings, mayCreate: mayCreate, actions: &actions)
                if let failure { return close(failure, into: &actions) }
                state = .established(consume session)
            }
        }
    }

    /// Seals the replies gathered so far and hands out the frames.
    private mutating func flush(into actions: inout [ConnectionAction]) {
        guard var session = takeSession() else { return }
        if let reason = session.seal() { return close(reason, into: &actions) }
        let frames = session.outbox.takeFrames()
        state = .established(consume session)
        if let frames { actions.append(.write(frames)) }
    }

    /// Whether a read may go to the socket now. Reading stops when the backlog is full and
    /// starts again only once it has halved, so a busy connection does not flap.
    private func mayRead(writable: Bool, afterHold: Bool) -> Bool {
        switch state {
        case .unstarted, .awaitingHandshake, .refused:
            return writable
        case let .established(session):
            let backlogAllows = afterHold ? session.backlog.hasDrained : !session.backlog.isFull
            return writable && session.intake == .open && backlogAllows
        case .closing, .closed, .modifying:
            return false
        }
    }

    /// Moves an established session out, leaving `.modifying` in its place; nil, and the state
    /// untouched, in any other state. A move and not a copy: copying a session retains each of
    /// its buffers and tables, and its owner would then copy them again on the first write.
    private mutating func takeSession() -> Session? {
        guard case .established = state else { return nil }
        var taken = State.modifying
        swap(&taken, &state)
        guard case .established(let session) = consume taken else { preconditionFailure("the state changed under a swap") }
        return session
    }

    private mutating func resumeReading(writable: Bool, into actions: inout [ConnectionAction]) {
        guard readDemand == .held, mayRead(writable: writable, afterHold: true) else { return }
        readDemand = .passedOn
        actions.append(.read)
    }

    private mutating func close(_ reason: CloseReason, into actions: inout [ConnectionAction]) {
        state = .closing(reason)
        decoder = FrameDecoder(allocator: allocator)
        actions.append(.close(reason))
    }
}
