import BelayWire
import NIOCore

extension ConnectionStateMachine.Session {
    /// The policy signed for this session, made at the first INFO and kept: one signature per
    /// connection, whatever a client asks, cheaper than the handshake that preceded it.
    mutating func signedPolicy(_ settings: ConnectionSettings) -> RelayReply {
        if let policyReply { return policyReply }
        guard let (document, signer) = settings.policy,
            let policy = try? RelayPolicy(decoding: document),
            let signature = try? policy.signature(by: signer, sessionHash: transport.handshakeHash)
        else { return .error(.unknownCommand) }
        let signed = RelayReply.policy(document: document, signature: signature)
        policyReply = signed
        return signed
    }

    /// Timer delays a TSET or TRENEW may ask for (docs/PROTOCOL.md §3).
    static let delayRange = WireLimits.minTimerDelaySeconds...WireLimits.maxTimerDelaySeconds

    /// One command of a bundle: answered here (PING, malformed, unauthorised, rate, limits) or
    /// handed to the core with the keys this connection has proven.
    mutating func handle(
        _ entry: ByteBuffer, now: NIODeadline, settings: ConnectionSettings, mayCreate: () -> Bool,
        actions: inout [ConnectionAction]
    ) -> CloseReason? {
        // Every well-framed entry counts against the rate, unknown and malformed ones too. A
        // client that let its bucket refill completely has stopped flooding: its count restarts.
        if refusals > 0, rate.isFull(now: now) { refusals = 0 }
        guard rate.take(now: now) else {
            refusals += 1
            if refusals >= ConnectionStateMachine.maxRefusals { return .ignoredRate }
            if intake == .open {
                intake = .pausedForRate
                actions.append(.schedule(.rateHold, in: ConnectionStateMachine.rateHold(settings)))
            }
            return reply(RelayCodec.peekRequestId(entry), .error(.rate))
        }
        let requestId: UInt32
        let command: RelayCommand
        do {
            (requestId, command) = try RelayCodec.decodeCommand(entry)
        } catch {
            let code = (error as? RelayCodec.DecodeError)?.code ?? .malformed
            return reply(RelayCodec.peekRequestId(entry), .error(code))
        }

        func proof(_ role: AuthRole, _ id: EntityID) -> [UInt8]? { proofs[Proof(role: role, entity: id)] }
        func submit(_ command: CoreCommand) -> CloseReason? {
            backlog.submitted(bodyBytes: Self.bodyBytes(of: command))
            actions.append(.submit(requestId: requestId, command))
            return nil
        }

        switch command {
        case .ping:
            return reply(requestId, .pong)
        case .info:
            return reply(requestId, signedPolicy(settings))
        case let .new(n):
            guard queuesCreated < settings.maxQueuesPerConnection else { return reply(requestId, .error(.limit)) }
            queuesCreated += 1
            switch creationPass(for: command, token: n.token, work: n.work, queue: true, settings: settings) {
            case let .refused(refusal):
                return reply(requestId, refusal)
            case let .memberToken(check):
                return submit(.create(recipientKey: n.recipientKey, memberToken: check))
            case .paid:
                return submit(.create(recipientKey: n.recipientKey))
            case .open:
                guard mayCreate() else { return reply(requestId, .error(.rate)) }
                return submit(.create(recipientKey: n.recipientKey))
            }
        case let .auth(a):
            guard proofs.count + pendingAuth.count < settings.maxProofsPerConnection else { return reply(requestId, .error(.limit)) }
            pendingAuth[requestId] = a
            return submit(.lookupKey(Proof(role: a.role, entity: a.entity)))
        case let .key(recipient, senderKey):
            guard let p = proof(.recipient, recipient) else { return reply(requestId, .error(.auth)) }
            return submit(.secure(recipient: recipient, proven: p, senderKey: senderKey))
        case let .send(sender, body):
            return submit(.send(sender: sender, proven: proof(.sender, sender), body: body))
        case let .subscribe(recipient):
            guard let p = proof(.recipient, recipient) else { return reply(requestId, .error(.auth)) }
            return submit(.subscribe(recipient: recipient, proven: p))
        case let .ack(recipient, seq):
            guard let p = proof(.recipient, recipient) else { return reply(requestId, .error(.auth)) }
            return submit(.ack(recipient: recipient, proven: p, seq: seq))
        case let .get(recipient):
            guard let p = proof(.recipient, recipient) else { return reply(requestId, .error(.auth)) }
            return submit(.get(recipient: recipient, proven: p))
        case let .delete(recipient):
            guard let p = proof(.recipient, recipient) else { return reply(requestId, .error(.auth)) }
            return submit(.delete(recipient: recipient, proven: p))
        case let .timerSet(set):
            guard Self.delayRange.contains(set.delay) else { return reply(requestId, .error(.delay)) }
            guard timersSet < settings.maxTimersPerConnection else { return reply(requestId, .error(.limit)) }
            timersSet += 1
            // A renewal (replacing a timer) adds nothing to the relay's tables. A new timer draws on
            // the source's creation rate only once every target's sender key is proven here, so
            // a client sharing an address cannot drain it with TSETs that would be refused anyway.
            guard set.entries.allSatisfy({ proof(.sender, $0.sender) != nil }) else { return reply(requestId, .error(.auth)) }
            var memberToken: MemberTokenCheck?
            if set.replaces == nil {
                switch creationPass(for: command, token: set.token, work: set.work, queue: false, settings: settings) {
                case let .refused(refusal): return reply(requestId, refusal)
                case let .memberToken(check): memberToken = check
                case .paid: break
                case .open: guard mayCreate() else { return reply(requestId, .error(.rate)) }
                }
            }
            var replacesProof: [UInt8]?
            if let old = set.replaces {
                guard let p = proof(.timer, old) else { return reply(requestId, .error(.auth)) }
                replacesProof = p
            }
            let senderProofs = set.entries.map { proof(.sender, $0.sender) }
            return submit(.timerSet(set, senderProofs: senderProofs, replacesProof: replacesProof, memberToken: memberToken))
        case let .timerRenew(timer, delay):
            guard Self.delayRange.contains(delay) else { return reply(requestId, .error(.delay)) }
            guard let p = proof(.timer, timer) else { return reply(requestId, .error(.auth)) }
            return submit(.timerRenew(timer: timer, proven: p, delay: delay))
        case let .timerCancel(timer):
            guard let p = proof(.timer, timer) else { return reply(requestId, .error(.auth)) }
            return submit(.timerCancel(timer: timer, proven: p))
        }
    }

    /// Body bytes a command keeps in memory until the core answers it.
    private static func bodyBytes(of command: CoreCommand) -> Int {
        switch command {
        case let .send(_, _, body): body.count
        case let .timerSet(set, _, _, _): set.entries.reduce(0) { $0 + $1.body.count }
        default: 0
        }
    }
}
