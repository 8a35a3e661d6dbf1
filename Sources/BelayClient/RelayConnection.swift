import BelaySodium
import BelayWire
import NIOCore
import NIOPosix
import Synchronization

/// A Noise-protected connection to one relay, pinned to the key in its address.
///
/// `request` is the fast path (an EventLoopFuture, for pipelining); the async methods below are
/// what applications use, and they turn an ERR reply into `RelayClientError.relay`.
public final class RelayConnection: Sendable {
    public let address: RelayAddress
    /// The Noise handshake hash that AUTH signatures cover.
    public let sessionHash: [UInt8]
    public let channel: Channel
    /// The channel's handler, which only its event loop may touch.
    private let handler: NIOLoopBound<ClientHandler>
    public let requestTimeout: TimeAmount
    /// The proof of work this relay asked for on this connection (0: none yet), so that the
    /// next NEW or TSET is paid before it is sent instead of after a refusal.
    let workBits = Mutex<UInt8>(0)

    /// Made once the handshake is done (`establish`).
    init(
        address: RelayAddress, sessionHash: [UInt8], channel: Channel, handler: NIOLoopBound<ClientHandler>, requestTimeout: TimeAmount
    ) {
        self.address = address
        self.sessionHash = sessionHash
        self.channel = channel
        self.handler = handler
        self.requestTimeout = requestTimeout
    }

    /// Sends one command; the future holds the relay's reply, ERR included. No timeout: the
    /// pipelining fast path.
    public func request(_ command: RelayCommand) -> EventLoopFuture<RelayReply> {
        dispatch(command, timeout: nil)
    }

    /// Sends one command and waits for its reply, at most `requestTimeout`; ERR becomes
    /// `RelayClientError.relay`.
    @discardableResult
    public func call(_ command: RelayCommand) async throws -> RelayReply {
        let reply = try await dispatch(command, timeout: requestTimeout).get()
        if case let .error(code) = reply { throw RelayClientError.relay(code) }
        return reply
    }

    /// Sends `commands` together (sealed together, in one write) and waits for
    /// every reply, each within `requestTimeout`. Replies come back in order, ERR included; only
    /// a connection that fails or times out throws.
    public func pipeline(_ commands: [RelayCommand]) async throws -> [RelayReply] {
        let requests = commands.map { ($0, channel.eventLoop.makePromise(of: RelayReply.self)) }
        let handler = self.handler
        let timeout = requestTimeout
        if channel.eventLoop.inEventLoop {
            handler.value.send(requests, timeout: timeout)
        } else {
            channel.eventLoop.execute { handler.value.send(requests, timeout: timeout) }
        }
        var replies: [RelayReply] = []
        replies.reserveCapacity(requests.count)
        for (_, promise) in requests { replies.append(try await promise.futureResult.get()) }
        return replies
    }

    private func dispatch(_ command: RelayCommand, timeout: TimeAmount?) -> EventLoopFuture<RelayReply> {
        let promise = channel.eventLoop.makePromise(of: RelayReply.self)
        if channel.eventLoop.inEventLoop {
            handler.value.send(command, promise: promise, timeout: timeout)
        } else {
            let handler = self.handler
            channel.eventLoop.execute { handler.value.send(command, promise: promise, timeout: timeout) }
        }
        return promise.futureResult
    }

    public func close() async {
        try? await channel.close()
    }

    // MARK: Commands

    public func ping() async throws {
        try expectOK(await call(.ping), pong: true)
    }

    /// Creates a queue owned by `recipientKey`; returns its recipient and sender ids. Pays the
    /// relay's proof of work if it asks for one (`callPaying`).
    public func createQueue(recipientKey: Ed25519.SigningKey, token: [UInt8] = []) async throws -> (recipient: EntityID, sender: EntityID) {
        let reply = try await callPaying(.new(.init(recipientKey: recipientKey.publicKey, token: token)))
        guard case let .ids(r, s) = reply else { throw RelayClientError.unexpectedReply("\(reply)") }
        return (r, s)
    }

    /// Proves `key` for an entity on this connection (docs/PROTOCOL.md §3.1 AUTH).
    public func authorise(_ role: AuthRole, _ entity: EntityID, key: Ed25519.SigningKey) async throws {
        let signature = try AuthProof.sign(key: key, sessionHash: sessionHash, role: role, entity: entity)
        try expectOK(await call(.auth(.init(role: role, entity: entity, signature: signature))))
    }

    public func secure(recipient: EntityID, senderKey: [UInt8]) async throws {
        try expectOK(await call(.key(recipient: recipient, senderKey: senderKey)))
    }

    public func send(to sender: EntityID, body: [UInt8]) async throws {
        try expectOK(await call(.send(sender: sender, body: body)))
    }

    public func subscribe(_ recipient: EntityID) async throws {
        try expectOK(await call(.subscribe(recipient: recipient)))
    }

    public func acknowledge(_ recipient: EntityID, seq: UInt64) async throws {
        try expectOK(await call(.ack(recipient: recipient, seq: seq)))
    }

    public func getMessage(_ recipient: EntityID) async throws -> RelayReply.Delivery? {
        switch try await call(.get(recipient: recipient)) {
        case let .message(d): return d
        case .noMessage: return nil
        case let other: throw RelayClientError.unexpectedReply("\(other)")
        }
    }

    public func deleteQueue(_ recipient: EntityID) async throws {
        try expectOK(await call(.delete(recipient: recipient)))
    }

    /// Deposits a timed release; returns the timer id and its deadline on the relay's clock.
    /// Pays the relay's proof of work if it asks for one (`callPaying`). `tokenIfAsked` is a
    /// member token to show instead, but only to a relay that asked for work for a new timer:
    /// a token on every TSET would let a relay that logs link the member to their contacts'
    /// queues (docs/THREAT-MODEL.md).
    public func setTimer(_ set: RelayCommand.TimerSet, tokenIfAsked: [UInt8] = []) async throws -> (id: EntityID, deadline: UInt64) {
        let reply = try await callPaying(.timerSet(set), tokenIfAsked: tokenIfAsked)
        guard case let .timer(id, deadline) = reply else { throw RelayClientError.unexpectedReply("\(reply)") }
        return (id, deadline)
    }

    public func renewTimer(_ id: EntityID, delay: UInt32) async throws -> UInt64 {
        let reply = try await call(.timerRenew(timer: id, delay: delay))
        guard case let .timer(_, deadline) = reply else { throw RelayClientError.unexpectedReply("\(reply)") }
        return deadline
    }

    public func cancelTimer(_ id: EntityID) async throws {
        try expectOK(await call(.timerCancel(timer: id)))
    }

    private func expectOK(_ reply: RelayReply, pong: Bool = false) throws {
        switch (reply, pong) {
        case (.ok, false), (.pong, true): return
        default: throw RelayClientError.unexpectedReply("\(reply)")
        }
    }
}

extension RelayConnection {
    /// Candidates tried between two yields: a few milliseconds of hashing.
    static let workSlice: UInt64 = 1 << 14

    /// NEW or TSET: sent with work already paid if this connection was asked for it; if the
    /// relay answers WORK, the work is done for this session and command and the command sent
    /// once more. A second WORK (the relay asks for more, or refuses the work) is an error.
    func callPaying(_ command: RelayCommand, tokenIfAsked: [UInt8] = []) async throws -> RelayReply {
        var command = command
        let known = workBits.withLock { $0 }
        // A renewal (TSET replacing a timer) creates nothing and is never asked to pay.
        let creates = if case let .timerSet(t) = command { t.replaces == nil } else { true }
        if known > 0, creates, tokenIfAsked.isEmpty { command = try await paying(command, bits: known) }
        var reply = try await dispatch(command, timeout: requestTimeout).get()
        // Asked for work for a new timer: a member token spares it, shown only now.
        if case .workRequired = reply, creates, !tokenIfAsked.isEmpty, case var .timerSet(t) = command {
            t.token = tokenIfAsked
            command = .timerSet(t)
            reply = try await dispatch(command, timeout: requestTimeout).get()
        }
        if case let .workRequired(bits) = reply, bits != known || !tokenIfAsked.isEmpty {
            workBits.withLock { $0 = bits }
            command = try await paying(command, bits: bits)
            reply = try await dispatch(command, timeout: requestTimeout).get()
        }
        switch reply {
        case let .error(code): throw RelayClientError.relay(code)
        case let .workRequired(bits): throw RelayClientError.workRefused(bits: bits)
        default: return reply
        }
    }

    /// `command` with a work field that solves this session's puzzle with `bits` zero bits. The
    /// search yields every `workSlice` candidates and stops if the task is cancelled.
    func paying(_ command: RelayCommand, bits: UInt8) async throws -> RelayCommand {
        let challenge = try CreationWork.challenge(sessionHash: sessionHash, command: command)
        var start: UInt64 = 0
        while true {
            try Task.checkCancellation()
            if let work = try CreationWork.search(challenge: challenge, bits: Int(bits), from: start, count: Self.workSlice) {
                switch command {
                case var .new(n):
                    n.work = work
                    return .new(n)
                case var .timerSet(t):
                    t.work = work
                    return .timerSet(t)
                default:
                    return command
                }
            }
            start &+= Self.workSlice
            await Task.yield()
        }
    }
}
