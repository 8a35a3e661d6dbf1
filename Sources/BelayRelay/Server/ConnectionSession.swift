import BelaySodium
import BelayWire
import NIOCore

extension ConnectionStateMachine {
    /// Everything an established connection holds: its Noise session, the keys it has proven,
    /// its allowances and what it owes the client.
    struct Session {
        /// Whether frames already read are processed: after a rate refusal they wait for the
        /// pause to end like the bytes still in the socket.
        enum Intake: Equatable {
            case open
            case pausedForRate
        }

        var transport: NoiseTransport
        var proofs: [Proof: [UInt8]] = [:]
        /// AUTH commands waiting for the stored key, by request id.
        var pendingAuth: [UInt32: RelayCommand.Auth] = [:]
        /// NEW and TSET commands so far, against the per-connection caps.
        var queuesCreated = 0
        var timersSet = 0
        /// Proofs of work accepted on this connection: each pays for one command.
        var workPaid: Set<[UInt8]> = []
        var rate: TokenBucket
        /// Commands refused for the rate since the bucket was last full.
        var refusals = 0
        var intake = Intake.open
        var backlog = CoreBacklog()
        /// When the last complete frame arrived, for the idle timeout.
        var lastFrame: NIODeadline
        /// Replies waiting to leave: sealed at the end of each batch (docs/PROTOCOL.md §2.4), one write.
        var outbox: Outbox
        /// Pushes waiting out their delivery jitter.
        var held = HeldPushes()
        /// The policy as signed for this session, once asked for.
        var policyReply: RelayReply?

        init(transport: NoiseTransport, settings: ConnectionSettings, lastFrame: NIODeadline, allocator: ByteBufferAllocator) {
            self.transport = transport
            self.lastFrame = lastFrame
            rate = TokenBucket(perSecond: Double(settings.rateLimitPerSecond), burst: Double(settings.rateBurst))
            outbox = Outbox(allocator: allocator)
        }

        /// One decrypted transport frame: handles each command of its bundle, stopping at the
        /// first reason to close.
        mutating func receive(
            plaintext: ByteBuffer, now: NIODeadline, settings: ConnectionSettings, mayCreate: () -> Bool,
            actions: inout [ConnectionAction]
        ) -> CloseReason? {
            let commands: [ByteBuffer]
            do {
                commands = try Bundle.entries(of: plaintext)
            } catch {
                return .malformedBundle(error)
            }
            for command in commands {
                if let reason = handle(command, now: now, settings: settings, mayCreate: mayCreate, actions: &actions) {
                    return reason
                }
            }
            return nil
        }

        /// How pushes are delayed: not at all when `delay` is zero.
        struct Jitter {
            var delay: TimeAmount
            var now: NIODeadline
            var random: RandomSource
        }

        /// What the core sent back for this connection, in order; pushes are held for their
        /// jitter behind any still held, replies leave at once.
        mutating func apply(_ outcomes: [CoreOutcome], maxProofs: Int, jitter: Jitter) -> CloseReason? {
            var delayed: [RelayReply] = []
            defer {
                if held.hasRoom(for: delayed.count) {
                    held.hold(delayed, now: jitter.now, jitter: jitter.delay, random: jitter.random)
                } else {
                    // Over the cap: everything held leaves now, then these, in order.
                    for push in held.due(now: .distantFuture) + delayed { _ = reply(0, push) }
                }
            }
            for outcome in outcomes {
                let failure: CloseReason?
                switch outcome {
                case let .reply(requestId, r, grant):
                    backlog.answered()
                    if let (proof, key) = grant, proofs.count < maxProofs { proofs[proof] = key }
                    failure = reply(requestId, r)
                case let .push(r):
                    if jitter.delay > .zero {
                        delayed.append(r)
                        continue
                    }
                    failure = reply(0, r)
                case let .key(requestId, proof, result):
                    backlog.answered()
                    guard let auth = pendingAuth.removeValue(forKey: requestId) else { continue }
                    failure = reply(requestId, verify(auth, proof, result))
                }
                if let failure { return failure }
            }
            return nil
        }

        /// AUTH: the signature must be over this session's handshake hash, by the stored key.
        private mutating func verify(_ auth: RelayCommand.Auth, _ proof: Proof, _ result: Result<[UInt8], RelayErrorCode>) -> RelayReply {
            switch result {
            case let .success(key):
                guard
                    AuthProof.verify(
                        signature: auth.signature, publicKey: key, sessionHash: transport.handshakeHash, role: proof.role,
                        entity: proof.entity)
                else { return .error(.auth) }
                proofs[proof] = key
                return .ok
            case let .failure(code):
                return .error(code)
            }
        }

        /// Adds a reply to the outbox; it is encrypted when the bundle is full or the read or
        /// batch ends.
        mutating func reply(_ requestId: UInt32, _ reply: RelayReply) -> CloseReason? {
            do {
                try outbox.add(sealingWith: &transport) { RelayCodec.encode(reply, requestId: requestId, into: &$0) }
                return nil
            } catch {
                return .cannotEncrypt("\(error)")
            }
        }

        /// Encrypts the waiting replies, in as few frames as hold them.
        mutating func seal() -> CloseReason? {
            do {
                try outbox.seal(with: &transport)
                return nil
            } catch {
                return .cannotEncrypt("\(error)")
            }
        }
    }
}
