import BelaySodium
import BelayWire
import NIOCore
import Testing

@testable import BelayRelay

/// How much a connection reads, and what it lets through: back-pressure from the core and the
/// socket, the rate, and authorisation.
extension ConnectionStateMachineTests {
    // MARK: Back-pressure

    @Test func readingStopsWhenTheCoreIsBehindAndResumesOnceHalfIsAnswered() throws {
        var f = try Fixture.established {
            $0.rateBurst = 10_000
            $0.rateLimitPerSecond = 10_000
        }
        let perBundle = WireLimits.maxBundleEntries
        var id: UInt32 = 0
        for _ in 0..<(CoreBacklog.maxRequests / perBundle) {
            #expect(Self.seen(f.machine.readRequested(writable: true)) == [.read])
            let commands = (0..<perBundle).map { _ in
                id += 1
                return (id, RelayCommand.send(sender: EntityID(high: 1, low: 1), body: [7]))
            }
            let (actions, _) = try f.send(commands)
            #expect(actions.count == perBundle && actions.allSatisfy { if case .submit(_, "send") = $0 { true } else { false } })
        }
        #expect(f.machine.readRequested(writable: true).isEmpty)
        #expect(f.machine.readDemand == .held)
        // Answers come back in order; at half the backlog reading is still held.
        var answered: UInt32 = 0
        func answer(_ n: Int) -> [Seen] {
            let outcomes = (0..<n).map { _ in
                answered += 1
                return CoreOutcome.reply(requestId: answered, .error(.noQueue))
            }
            return Self.seen(f.machine.outcomesReceived(outcomes, now: Self.t0, writable: true))
        }
        #expect(answer(CoreBacklog.maxRequests / 2) == [.write])
        #expect(answer(1) == [.write, .read])
        #expect(f.machine.readDemand == .passedOn)
        #expect(answer(1) == [.write])  // the read was passed on once
    }

    @Test func anUnwritableChannelHoldsReadsUntilItDrains() throws {
        var f = try Fixture.established()
        #expect(f.machine.readRequested(writable: false).isEmpty)
        #expect(f.machine.writabilityChanged(writable: false).isEmpty)
        #expect(Self.seen(f.machine.writabilityChanged(writable: true)) == [.read])
        #expect(f.machine.writabilityChanged(writable: true).isEmpty)
    }

    // MARK: Rate

    @Test func aRateRefusalPausesReadingAndFramesAlreadyRead() throws {
        var f = try Fixture.established {
            $0.rateLimitPerSecond = 64
            $0.rateBurst = 2
        }
        let (actions, replies) = try f.send([(1, .ping), (2, .ping), (3, .ping)])
        // 64 entries at 64 a second: a second's pause.
        #expect(actions == [.schedule(.rateHold, .seconds(1)), .write])
        #expect(replies.map(\.0) == [1, 2, 3])
        #expect(replies.map(\.1) == [.pong, .pong, .error(.rate)])
        #expect(f.machine.readRequested(writable: true).isEmpty)
        // A frame already read waits for the pause too.
        let (waiting, none) = try f.send([(4, .ping)], at: Self.t0 + .milliseconds(500))
        #expect(waiting.isEmpty && none.isEmpty)
        let resumed = f.machine.rateHoldEnded(now: Self.t0 + .seconds(1), writable: true)
        #expect(Self.seen(resumed) == [.write, .read])
        let late = try f.client.replies(Self.written(resumed))
        #expect(late.count == 1 && late[0].0 == 4 && late[0].1 == .pong)
    }

    @Test func aClientThatKeepsIgnoringRateIsClosed() throws {
        var f = try Fixture.established {
            $0.rateLimitPerSecond = 1
            $0.rateBurst = 1
        }
        let perBundle = WireLimits.maxBundleEntries
        var id: UInt32 = 0
        var frames = ByteBuffer()
        for _ in 0..<5 {
            var bundle = try f.client.frame(
                (0..<perBundle).map { _ in
                    id += 1
                    return (id, .ping)
                })
            frames.writeBuffer(&bundle)
        }
        // The first bundle: one token, 63 refusals, and a pause that holds back the other four.
        #expect(Self.seen(f.machine.bytesReceived(frames, now: Self.t0)) == [.schedule(.rateHold, .seconds(1))])
        // No time passes, so the bucket never refills: each pause's end lets one more bundle in.
        for _ in 0..<3 {
            let actions = f.machine.rateHoldEnded(now: Self.t0, writable: true)
            #expect(Self.seen(actions) == [.schedule(.rateHold, .seconds(1)), .write])
        }
        // 63 + 3 × 64 = 255 refusals; the next one is the 256th.
        #expect(ConnectionStateMachine.maxRefusals == 256)
        #expect(Self.seen(f.machine.rateHoldEnded(now: Self.t0, writable: true)) == [.close(.ignoredRate)])
    }

    // MARK: Authorisation

    @Test func anAuthProvesAKeyOnlyWithAValidSignatureOverThisSession() throws {
        var f = try Fixture.established()
        let recipient = EntityID.random()
        let key = try Ed25519.SigningKey.generate()
        let hash = f.client.transport!.handshakeHash
        let signature = try AuthProof.sign(key: key, sessionHash: hash, role: .recipient, entity: recipient)
        // Before a proof, GET is refused here without asking the core.
        let (refused, beforeProof) = try f.send([(1, .get(recipient: recipient))])
        #expect(refused == [.write] && beforeProof.map(\.1) == [.error(.auth)])
        // A signature by another key: refused once the core has found the stored key.
        let forged = try AuthProof.sign(key: try Ed25519.SigningKey.generate(), sessionHash: hash, role: .recipient, entity: recipient)
        let (forgedAuth, _) = try f.send([(2, .auth(.init(role: .recipient, entity: recipient, signature: forged)))])
        #expect(forgedAuth == [.submit(2, "lookupKey")])
        let proof = Proof(role: .recipient, entity: recipient)
        var outcome = f.machine.outcomesReceived([.key(requestId: 2, proof, .success(key.publicKey))], now: Self.t0, writable: true)
        #expect(try f.client.replies(Self.written(outcome)).map(\.1) == [.error(.auth)])
        // The right signature: OK, and GET now goes to the core with the proven key.
        let (auth, _) = try f.send([(3, .auth(.init(role: .recipient, entity: recipient, signature: signature)))])
        #expect(auth == [.submit(3, "lookupKey")])
        outcome = f.machine.outcomesReceived([.key(requestId: 3, proof, .success(key.publicKey))], now: Self.t0, writable: true)
        #expect(try f.client.replies(Self.written(outcome)).map(\.1) == [.ok])
        let read = f.machine.bytesReceived(try f.client.frame([(4, .get(recipient: recipient))]), now: Self.t0)
        guard case let .submit(4, .get(entity, proven)) = try #require(read.first) else { throw Unexpected() }
        #expect(entity == recipient && proven == key.publicKey)
    }

    @Test func aRefusedCreationIsAnsweredRateWithoutTheCore() throws {
        var asked = 0
        var f = try Fixture.established(mayCreate: {
            asked += 1
            return false
        })
        let (actions, replies) = try f.send([(1, .new(.init(recipientKey: [UInt8](repeating: 1, count: 32)))), (2, .ping)])
        #expect(actions == [.write])
        #expect(replies.map(\.1) == [.error(.rate), .pong])
        #expect(asked == 1)
    }
}
