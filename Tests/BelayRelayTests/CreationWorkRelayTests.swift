import BelayClient
import BelayRelay
import BelaySodium
import BelayWire
import Foundation
import Testing

/// `creation_pow_bits`: on an open relay, NEW and a TSET that makes a new timer cost a proof of
/// work bound to the connection's session and the command, unless a token spares it. The work
/// asked of tests is small (8 to 10 bits: a few hundred to a few thousand hashes), and no test
/// waits on a clock.
@Suite struct CreationWorkRelayTests {
    static func key() throws -> [UInt8] { try Ed25519.SigningKey.generate().publicKey }

    /// The stranger sends NEW without work, or with guesses, and gets WORK each time; from the
    /// same address a client that pays is served, beyond the address's creation burst (which
    /// the stranger's refusals did not touch and paid creations do not draw on).
    @Test func aStrangerWhoDoesNotPayCreatesNothingWhileAClientThatPaysIsServed() async throws {
        let relay = try await RelayHarness.start {
            $0.creationWorkBits = 10
            $0.creationRatePerSource = 1
            $0.creationBurstPerSource = 1
        }
        defer { relay.remove() }
        let stranger = try await relay.connect()
        // No work, and eight guesses picked to miss (one in 1,024 would solve, and be served:
        // that is what the work is worth).
        var commands = [RelayCommand.new(.init(recipientKey: try Self.key()))]
        var work: UInt64 = 0
        while commands.count < 9 {
            let guess = RelayCommand.new(.init(recipientKey: try Self.key(), work: work))
            let challenge = try CreationWork.challenge(sessionHash: stranger.sessionHash, command: guess)
            if CreationWork.leadingZeroBits(try CreationWork.proof(challenge: challenge, work: work)) < 10 { commands.append(guess) }
            work += 1
        }
        #expect(try await stranger.pipeline(commands) == Array(repeating: .workRequired(bits: 10), count: 9))
        let person = try await relay.connect()
        for _ in 0..<3 { _ = try await person.createQueue(recipientKey: try .generate()) }
        await relay.stop()
    }

    @Test func aSolutionPaysForOneCommandOnOneConnection() async throws {
        let relay = try await RelayHarness.start { $0.creationWorkBits = 8 }
        defer { relay.remove() }
        let first = try await relay.connect()
        let command = RelayCommand.new(.init(recipientKey: try Self.key()))
        let challenge = try CreationWork.challenge(sessionHash: first.sessionHash, command: command)
        let work = try #require(try CreationWork.search(challenge: challenge, bits: 8, from: 0, count: 1 << 20))
        guard case var .new(paid) = command else { throw CancellationError() }
        paid.work = work
        #expect(try await first.pipeline([.new(paid)]).first.map { if case .ids = $0 { true } else { false } } == true)
        // The same solution again on this connection, on another connection (another session),
        // or for another command: WORK each time.
        #expect(try await first.pipeline([.new(paid)]) == [.workRequired(bits: 8)])
        let second = try await relay.connect()
        #expect(try await second.pipeline([.new(paid)]) == [.workRequired(bits: 8)])
        var other = paid
        other.recipientKey = try Self.key()
        #expect(try await first.pipeline([.new(other)]) == [.workRequired(bits: 8)])
        await relay.stop()
    }

    /// A member token spares the work, for NEW and for a new timer; a token the relay does not
    /// know is answered with the work it would take instead. (20 bits: nothing here solves.)
    @Test func aValidTokenSparesTheWork() async throws {
        let relay = try await RelayHarness.start { $0.creationWorkBits = 20 }
        defer { relay.remove() }
        let (_, member) = try relay.withTokenAdmin { try $0.add(label: "m", quota: 5) }
        let c = try await relay.connect()
        #expect(try await c.pipeline([.new(.init(recipientKey: try Self.key(), token: Array("unknown".utf8)))]) == [.workRequired(bits: 20)])
        let replies = try await c.pipeline([.new(.init(recipientKey: try Self.key(), token: Array(member.utf8)))])
        guard case let .ids(r, s) = replies.first else { throw CancellationError() }
        let sk = try Ed25519.SigningKey.generate()
        try await c.secure(recipient: r, senderKey: sk.publicKey)
        try await c.authorise(.sender, s, key: sk)
        let entry = RelayCommand.TimerSet.Entry(sender: s, body: [1])
        #expect(try await c.pipeline([.timerSet(.init(timerKey: try Self.key(), delay: 600, entries: [entry]))]) == [.workRequired(bits: 20)])
        let timer = try await c.pipeline([.timerSet(.init(timerKey: try Self.key(), delay: 600, entries: [entry], token: Array(member.utf8)))])
        guard case .timer = timer.first else { throw CancellationError() }
        // A revoked token spares nothing from the next command on.
        _ = try relay.withTokenAdmin { try $0.revoke("m") }
        #expect(
            try await c.pipeline([.timerSet(.init(timerKey: try Self.key(), delay: 600, entries: [entry], token: Array(member.utf8)))])
                == [.workRequired(bits: 20)])
        await relay.stop()
    }

    /// A renewal (TSET replacing a timer) adds nothing to the relay's tables and needs no work;
    /// the client pays for new timers by itself.
    @Test func newTimersArePaidForAndRenewalsAreFree() async throws {
        let relay = try await RelayHarness.start { $0.creationWorkBits = 8 }
        defer { relay.remove() }
        let owner = try await relay.connect()
        let q = try await SecuredQueue.make(on: owner)
        let depositor = try await q.sender(on: relay)
        let entry = RelayCommand.TimerSet.Entry(sender: q.sender, body: [1])
        let timerKey = try Ed25519.SigningKey.generate()
        let (id, _) = try await depositor.setTimer(.init(timerKey: timerKey.publicKey, delay: 600, entries: [entry]))
        let renewal = try await depositor.pipeline([.timerSet(.init(timerKey: try Self.key(), delay: 600, replaces: id, entries: [entry]))])
        guard case .timer = renewal.first else { throw CancellationError() }
        await relay.stop()
    }

    /// On a relay that requires tokens, NEW needs one whatever work comes with it; new timers
    /// take work (or the token).
    @Test func aRelayThatRequiresTokensTakesNoWorkForQueues() async throws {
        let relay = try await RelayHarness.start {
            $0.requireCreationToken = true
            $0.creationWorkBits = 8
        }
        defer { relay.remove() }
        let c = try await relay.connect()
        await #expect(throws: RelayClientError.relay(.token)) { try await c.createQueue(recipientKey: try .generate()) }
        await relay.stop()
    }

    /// The client end to end: pairing (NEW on both sides) and arming a check-in (TSET) on a
    /// relay that asks for work, with no more than the usual commands from the person.
    @Test func peoplePairAndArmACheckInOnARelayThatAsksForWork() async throws {
        let w = try await CheckinTests.World { $0.creationWorkBits = 8 }
        try await w.pair("alice", "bob")
        _ = try await w.person("alice").armCheckin(every: 3600, grace: 600, to: ["bob"], note: "out tonight", codes: nil)
        #expect(try w.timerCount() == 1)
        await w.finish()
    }
}
