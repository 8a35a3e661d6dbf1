import BelayE2E
import BelaySodium
import Testing

@Suite struct RatchetTests {
    @Test func messagesFlowBothWaysAcrossManyTurns() throws {
        var p = try Peers.pair()
        #expect(try p.open(p.seal("hello", fromB: true), atB: false) == "hello")
        for turn in 0..<20 {
            let fromB = turn % 2 == 1
            for i in 0..<3 {
                let text = "turn \(turn) message \(i)"
                #expect(try p.open(p.seal(text, fromB: fromB), atB: !fromB) == text)
            }
        }
    }

    @Test func theInviterCannotSendBeforeTheAcceptorHasSpoken() throws {
        let p = try Peers.pair()
        #expect(!p.a.canSend)
        #expect(p.b.canSend)
    }

    @Test func outOfOrderMessagesDecryptFromSkippedKeys() throws {
        var p = try Peers.pair()
        let m = try (0..<5).map { try p.seal("m\($0)", fromB: true) }
        #expect(try p.open(m[4], atB: false) == "m4")
        #expect(try p.open(m[1], atB: false) == "m1")
        #expect(try p.open(m[0], atB: false) == "m0")
        #expect(try p.open(m[3], atB: false) == "m3")
        #expect(try p.open(m[2], atB: false) == "m2")
    }

    @Test func aReplayedMessageIsRejectedAndChangesNothing() throws {
        var p = try Peers.pair()
        let m = try p.seal("once", fromB: true)
        #expect(try p.open(m, atB: false) == "once")
        let before = try p.a.serialized().unprotectedCopy()
        #expect(throws: E2EError.messageRejected) { try p.open(m, atB: false) }
        #expect(try p.a.serialized().unprotectedCopy() == before)
    }

    @Test func aMessageReflectedBackToItsSenderIsRejected() throws {
        var p = try Peers.pair()
        _ = try p.open(p.seal("hi", fromB: true), atB: false)
        let mine = try p.seal("from a", fromB: false)
        // A's own message fed back to A: the associated data names A as sender, so it fails.
        #expect(throws: E2EError.messageRejected) { try p.open(mine, atB: false) }
        #expect(try p.open(mine, atB: true) == "from a")
    }

    @Test func alteredBytesAnywhereAreRejected() throws {
        var p = try Peers.pair()
        let m = try p.seal("integrity", fromB: true)
        for i in stride(from: 1, to: m.count, by: 7) {
            var bad = m
            bad[i] ^= 0x01
            var copy = p.a
            #expect(throws: (any Error).self) { try Envelope.open(bad, with: &copy) }
        }
        #expect(try p.open(m, atB: false) == "integrity")
    }

    @Test func aJumpBeyondMaxSkipIsRefusedAndTheStoreOfSkippedKeysIsBounded() throws {
        var p = try Peers.pair()
        var last: [UInt8] = []
        for i in 0...(Ratchet.maxSkip + 1) { last = try p.seal("m\(i)", fromB: true) }
        #expect(throws: E2EError.tooFarAhead(Ratchet.maxSkip + 1)) { try p.open(last, atB: false) }
        // Exactly maxSkip ahead is allowed; only maxStoredSkipped of the skipped keys are kept.
        var q = try Peers.pair()
        var messages: [[UInt8]] = []
        for i in 0...Ratchet.maxSkip { messages.append(try q.seal("m\(i)", fromB: true)) }
        #expect(try q.open(messages[Ratchet.maxSkip], atB: false) == "m\(Ratchet.maxSkip)")
        let kept = try Ratchet(serialized: q.a.serialized())
        _ = kept
        #expect(throws: E2EError.messageRejected) { try q.open(messages[0], atB: false) }  // forgotten
        #expect(try q.open(messages[Ratchet.maxSkip - 1], atB: false) == "m\(Ratchet.maxSkip - 1)")
    }

    /// Forward secrecy: a copy of a party's whole state taken now cannot decrypt messages it
    /// already received, because their keys are deleted and chain keys only run forward.
    @Test func stateStolenLaterCannotReadEarlierMessages() throws {
        var p = try Peers.pair()
        var recorded: [[UInt8]] = []
        for i in 0..<10 {
            let m = try p.seal("secret \(i)", fromB: i % 3 == 0)
            recorded.append(m)
            _ = try p.open(m, atB: i % 3 != 0)
        }
        let stolenA = p.a
        let stolenB = p.b
        for m in recorded {
            var a = stolenA
            var b = stolenB
            #expect((try? Envelope.open(m, with: &a)) == nil)
            #expect((try? Envelope.open(m, with: &b)) == nil)
        }
    }

    /// Post-compromise security: someone who copied A's state (a passive attacker who then sees
    /// every message B sends to A) can read what B sends only until A has answered under a ratchet
    /// key generated after the copy; from then on the copy reads nothing.
    @Test func aCompromiseHealsOnceBothSidesHaveSteppedWithFreshKeys() throws {
        var p = try Peers.pair()
        _ = try p.open(p.seal("setup", fromB: true), atB: false)
        var attacker = p.a  // a full copy of A's state
        func attackerReads(_ m: [UInt8]) -> Bool { (try? Envelope.open(m, with: &attacker)) != nil }

        let a1 = try p.seal("a1", fromB: false)  // A's current key, which the copy holds
        #expect(try p.open(a1, atB: true) == "a1")
        let b1 = try p.seal("b1", fromB: true)  // B's fresh key, but agreed with A's known one
        #expect(try p.open(b1, atB: false) == "b1")
        #expect(attackerReads(b1))  // not healed yet: this is the window the specification describes
        let a2 = try p.seal("a2", fromB: false)  // A steps with a key generated after the copy
        #expect(try p.open(a2, atB: true) == "a2")
        let b2 = try p.seal("b2", fromB: true)
        #expect(try p.open(b2, atB: false) == "b2")
        #expect(!attackerReads(b2))
    }

    @Test func theSerialisedStateRoundTripsAndKeepsWorking() throws {
        var p = try Peers.pair()
        let m = try (0..<4).map { try p.seal("m\($0)", fromB: true) }
        _ = try p.open(m[3], atB: false)  // three keys skipped
        p.a = try Ratchet(serialized: p.a.serialized())
        #expect(try p.open(m[1], atB: false) == "m1")
        #expect(try p.open(p.seal("back", fromB: false), atB: true) == "back")
        #expect(throws: E2EError.self) { try Ratchet(serialized: SecureBytes(copying: [1, 2, 3])) }
    }

    /// States stored before version 2 have no public sending key (it was recomputed on every
    /// restore): they still open, keep working, and are saved back in the new form.
    @Test func aVersionOneStateStillRestores() throws {
        var p = try Peers.pair()
        _ = try p.open(p.seal("setup", fromB: true), atB: false)
        let current = try p.a.serialized().unprotectedCopy()
        #expect(current[0] == 2)
        // Version byte, root key (32), secret sending key (32), then the public key (32) that
        // version 1 did not have.
        let old = [1] + current[1..<65] + current[97...]
        p.a = try Ratchet(serialized: SecureBytes(copying: old))
        #expect(try p.a.serialized().unprotectedCopy() == current)
        #expect(try p.open(p.seal("after", fromB: false), atB: true) == "after")
        #expect(try p.open(p.seal("reply", fromB: true), atB: false) == "reply")
    }
}
