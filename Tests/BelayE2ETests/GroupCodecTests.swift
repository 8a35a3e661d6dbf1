import BelayE2E
import BelaySodium
import Testing

/// The group formats (docs/PROTOCOL.md §8.6, §8.7): round trips, every truncation refused,
/// trailing bytes refused, and the rules that decide which membership change follows which.
@Suite struct GroupCodecTests {
    static func state(admin: Identity, members: [Identity]) throws -> GroupState {
        let all =
            [GroupState.Member(identity: admin.publicIdentity, name: "", role: .admin, addedAt: 1, joined: true)]
            + members.map { GroupState.Member(identity: $0.publicIdentity, name: "m", role: .member, addedAt: 1, joined: false) }
        var s = GroupState(
            id: SystemRandom().bytes(16), version: 1, previous: [UInt8](repeating: 0, count: 32), name: "circle", roster: true,
            members: all, signer: admin.publicIdentity)
        try s.sign(with: admin)
        return s
    }

    static func next(_ s: GroupState, by signer: Identity, _ change: (inout GroupState) -> Void) throws -> GroupState {
        var n = s
        change(&n)
        n.version = s.version + 1
        n.previous = try s.hash()
        n.signer = signer.publicIdentity
        try n.sign(with: signer)
        return n
    }

    static func refusesEveryTruncationAndTrailingBytes(_ bytes: [UInt8], _ decode: ([UInt8]) throws -> Void) {
        for cut in 0..<bytes.count { #expect(throws: E2EError.self) { try decode(Array(bytes.prefix(cut))) } }
        #expect(throws: E2EError.self) { try decode(bytes + [0]) }
    }

    @Test func messagesRoundTripAndRefuseTruncation() throws {
        let admin = try Identity.generate()
        let s = try Self.state(admin: admin, members: [try Identity.generate()])
        let cancel = RosterRequest.Cancel(relay: "relay.example:7700", timerId: SystemRandom().bytes(16), timerSeed: SystemRandom().bytes(32))
        let request = RosterRequest(
            group: s.id, id: SystemRandom().bytes(16), text: "call me", tier: 1, window: 600, requestedAt: 1_700_000_000,
            tiers: 3, nameClaimer: true, lock: cancel, cancels: [cancel, cancel])
        let messages: [GroupMessage] = [
            .state(s), .join(group: s.id, addedAt: 1), .leave(group: s.id), .text(group: s.id, version: 1, text: "héllo"),
            .introduce(group: s.id, for: admin.publicIdentity, invitation: "belay-invite:abc"), .duty(group: s.id, on: true, until: 42),
            .request(request), .claimed(group: s.id, request: request.id, by: admin.publicIdentity), .claimed(group: s.id, request: request.id, by: nil),
            .unclaimed(group: s.id, request: request.id), .invite(group: s.id, name: "circle", roster: true, addedAt: 3),
        ]
        for m in messages {
            #expect(try GroupMessage(decoding: m.encoded()) == m)
            Self.refusesEveryTruncationAndTrailingBytes(m.encoded()) { _ = try GroupMessage(decoding: $0) }
        }
        let intros: [IntroductionMessage] = [
            .offer(id: request.id, note: "a counsellor", first: true), .answer(id: request.id, accept: true, invitation: "x"),
            .forward(id: request.id, invitation: "y", name: "Lee"), .named(id: request.id, name: "Rae", identity: admin.publicIdentity),
            .withdrawn(id: request.id),
        ]
        for m in intros {
            #expect(try IntroductionMessage(decoding: m.encoded()) == m)
            Self.refusesEveryTruncationAndTrailingBytes(m.encoded()) { _ = try IntroductionMessage(decoding: $0) }
        }
        #expect(throws: E2EError.self) { try GroupMessage(decoding: [99]) }
        #expect(throws: E2EError.self) { try IntroductionMessage(decoding: [99] + request.id) }
    }

    @Test func aStateFollowsOnlyItsPredecessorSignedByOneOfItsAdmins() throws {
        let admin = try Identity.generate()
        let member = try Identity.generate()
        let v1 = try Self.state(admin: admin, members: [member])
        #expect(try v1.follows(nil))
        let v2 = try Self.next(v1, by: admin) { $0.members[1].joined = true }
        #expect(try v2.follows(v1))
        #expect(try !v1.follows(v2))
        // A member who is not an admin cannot sign a change, even one making themselves admin.
        let usurp = try Self.next(v1, by: member) { $0.members[1].role = .admin }
        #expect(try !usurp.follows(v1))
        // Skipping a version, or a change built on another state, does not follow.
        let v3 = try Self.next(v2, by: admin) { $0.name = "renamed" }
        #expect(try !v3.follows(v1))
        var forked = try Self.next(v1, by: admin) { $0.name = "fork" }
        forked.previous = [UInt8](repeating: 7, count: 32)
        try forked.sign(with: admin)
        #expect(try !forked.follows(v1))
        // Any altered byte breaks the signature.
        var bytes = v2.encoded()
        bytes[30] ^= 1
        #expect(try !GroupState(decoding: bytes).follows(v1))
        // A retired group takes no further change.
        let retired = try Self.next(v2, by: admin) { $0.retired = true }
        #expect(try retired.follows(v2))
        #expect(try !Self.next(retired, by: admin) { $0.retired = false }.follows(retired))
    }

    @Test func countsAndLengthsAreBounded() throws {
        let admin = try Identity.generate()
        var s = try Self.state(admin: admin, members: [])
        var bytes = s.encoded()
        // The member count byte sits after format, id, version, previous, name and flags.
        let countOffset = 1 + 16 + 8 + 32 + 2 + s.name.utf8.count + 1
        bytes[countOffset] = UInt8(GroupState.maxMembers + 1)
        #expect(throws: E2EError.malformed("group member count")) { try GroupState(decoding: bytes) }
        s.members.append(s.members[0])
        try s.sign(with: admin)
        #expect(throws: E2EError.malformed("group member")) { try GroupState(decoding: s.encoded()) }
        // Numbers that would overflow the arithmetic on them are refused where they are read.
        var huge = try Self.state(admin: admin, members: [])
        huge.version = GroupState.maxVersion + 1
        try huge.sign(with: admin)
        #expect(throws: E2EError.malformed("group version")) { try GroupState(decoding: huge.encoded()) }
        #expect(throws: E2EError.self) { try GroupMessage(decoding: GroupMessage.join(group: s.id, addedAt: .max).encoded()) }
        let cancel = RosterRequest.Cancel(relay: "r:1", timerId: [UInt8](repeating: 1, count: 16), timerSeed: [UInt8](repeating: 2, count: 32))
        for (at, window) in [(UInt64.max, UInt32(600)), (RosterRequest.maxTime + 1, 600), (1, RosterRequest.maxWindow + 1)] {
            let r = RosterRequest(
                group: s.id, id: s.id, text: "x", tier: 0, window: window, requestedAt: at, tiers: 3, nameClaimer: false,
                lock: cancel, cancels: [])
            #expect(throws: E2EError.malformed("request")) { try RosterRequest(decoding: r.encoded()) }
        }
        // A name that would move the cursor or fake a line on a terminal is refused.
        for bad in ["line\n!!! ALERT", "bell\u{7}", "rtl\u{202E}", "isolate\u{2066}x", "para\u{2029}x"] {
            #expect(throws: E2EError.self) { try GroupMessage(decoding: GroupMessage.invite(group: s.id, name: bad, roster: false, addedAt: 1).encoded()) }
        }
        // Names people have: a Persian name with a zero-width non-joiner, an emoji sequence with
        // joiners, a right-to-left mark.
        for good in ["می\u{200C}نا", "🏳️\u{200D}🌈 circle", "\u{200F}שלום"] {
            #expect(
                try GroupMessage(decoding: GroupMessage.invite(group: s.id, name: good, roster: false, addedAt: 1).encoded())
                    == .invite(group: s.id, name: good, roster: false, addedAt: 1))
        }
        let long = GroupMessage.text(group: s.id, version: 1, text: String(repeating: "a", count: GroupMessage.maxTextLength + 1))
        #expect(throws: E2EError.self) { try GroupMessage(decoding: long.encoded()) }
    }
}
