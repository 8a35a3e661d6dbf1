import BelayE2E
import BelayRelay
import BelaySodium
import Foundation
import Testing

@testable import BelayClient

/// Groups over pairwise ratchets, against an in-process relay and clients sharing its manual clock.
@Suite struct GroupTests {
    typealias World = CheckinTests.World

    /// Everyone here connects from 127.0.0.1, and a group makes many pairings at once: the
    /// per-source handshake and creation limits are for strangers, not for this test.
    static func roomy(_ c: inout RelayConfiguration) {
        c.handshakeRatePerSource = 100_000
        c.handshakeBurstPerSource = 100_000
        c.creationRatePerSource = 100_000
        c.creationBurstPerSource = 100_000
    }

    /// Everyone reads, a few rounds, so that joins are confirmed, states spread and the
    /// members' pairings through the group complete. Returns each person's events.
    @discardableResult
    static func settle(_ w: World, _ names: [String], rounds: Int = 4) async throws -> [String: [ReadEvent]] {
        var all: [String: [ReadEvent]] = [:]
        for _ in 0..<rounds {
            for n in names { all[n, default: []] += try await w.person(n).read() }
        }
        return all
    }

    /// alice (admin) with bob and carol, who are not paired with each other at first.
    static func threeInAGroup(roster: Bool = false, store: TestStore? = nil) async throws -> World {
        let w = try await World(store: store, GroupTests.roomy)
        try await w.pair("alice", "bob")
        try await w.pair("alice", "carol")
        try await w.person("alice").createGroup("circle", members: ["bob", "carol"], roster: roster)
        for n in ["bob", "carol"] {
            let invited = try await w.person(n).read()
            #expect(invited.contains { $0.kind == .group && $0.text.contains("invited you") }, "\(n)")
            try await w.person(n).joinGroup("circle")
        }
        try await settle(w, ["alice", "bob", "carol"])
        return w
    }

    @Test func threeMembersSeeTheSameListAndEachOthersMessages() async throws {
        let w = try await Self.threeInAGroup()
        // bob and carol were paired through the group.
        #expect(try w.person("bob").contacts().contacts.map(\.name).sorted() == ["alice", "carol"])
        #expect(try w.person("carol").contacts().contacts.map(\.name).sorted() == ["alice", "bob"])
        let lists = try ["alice", "bob", "carol"].map { n in try w.person(n).groupMembers("circle").map { "\($0.status) \($0.admin)" }.sorted() }
        #expect(lists[0] == lists[1] && lists[1] == lists[2])
        #expect(lists[0] == ["joined false", "joined false", "joined true"])
        let versions = try ["alice", "bob", "carol"].map { try w.person($0).groups().first?.version }
        #expect(Set(versions).count == 1)

        let outcome = try await w.person("bob").groupSend("circle", text: "meeting at 7")
        #expect(outcome.sent == ["alice", "carol"] && outcome.waitingForPairing.isEmpty)
        for n in ["alice", "carol"] {
            let got = try await w.person(n).read().filter { $0.kind == .group && $0.contact == "bob" }
            #expect(got.map(\.text) == ["meeting at 7"], "\(n)")
            #expect(got.first?.group == "circle")
        }
        #expect(try w.person("carol").groupHistory("circle").map(\.text) == ["bob: meeting at 7"])
        await w.finish()
    }

    @Test func anInvitedMemberReceivesNothingUntilTheyJoin() async throws {
        let w = try await World(GroupTests.roomy)
        try await w.pair("alice", "bob")
        try await w.pair("alice", "carol")
        try await w.person("alice").createGroup("circle", members: ["bob", "carol"])
        _ = try await w.person("bob").read()
        try await w.person("bob").joinGroup("circle")
        try await Self.settle(w, ["alice", "bob"])
        _ = try await w.person("bob").groupSend("circle", text: "hello group")
        // carol has not joined: she gets the invitation and nothing else, not even who is in it.
        let carol = try await w.person("carol").read()
        #expect(!carol.contains { $0.text.contains("hello group") })
        #expect(!carol.contains { $0.text.contains("bob") })
        #expect(try w.person("carol").groups().first?.status == "invited")
        #expect(throws: ClientError.self) { try w.person("carol").groupMembers("circle") }
        #expect(try w.person("carol").read { db in try w.person("carol").store.group(named: "circle", db)?.record.hasState } == false)
        // Once she joins and alice confirms it, she learns the members.
        try await w.person("carol").joinGroup("circle")
        _ = try await w.person("alice").read()
        let confirmed = try await w.person("carol").read()
        #expect(confirmed.contains { $0.text.contains("confirmed you") && $0.text.contains("bob") })
        #expect(try w.person("carol").groupMembers("circle").count == 3)
        await w.finish()
    }

    @Test func aRemovedMemberGetsNothingAfterAndTheirMessagesAreRefused() async throws {
        let w = try await Self.threeInAGroup()
        try await w.person("alice").removeFromGroup("circle", member: "carol")
        let carolSees = try await w.person("carol").read()
        #expect(carolSees.contains { $0.text.contains("removed you") })
        #expect(try w.person("carol").groups().first?.status == "removed")
        _ = try await w.person("bob").read()
        let outcome = try await w.person("bob").groupSend("circle", text: "after the removal")
        #expect(outcome.sent == ["alice"])
        #expect(try await w.person("carol").read().filter { $0.text.contains("after the removal") }.isEmpty)
        // carol's own client refuses to send; a modified one that does is refused by the others.
        await #expect(throws: ClientError.self) { _ = try await w.person("carol").groupSend("circle", text: "still here") }
        let state = try GroupState(decoding: [UInt8](try w.person("carol").read { db in try w.person("carol").store.group(named: "circle", db)!.record.state }))
        for n in ["alice", "bob"] {
            try await w.person("carol").send(
                to: n, kind: .group, body: GroupMessage.text(group: state.id, version: state.version, text: "let me back").encoded(),
                history: nil)
            let seen = try await w.person(n).read()
            #expect(!seen.contains { $0.kind == .group && $0.text == "let me back" }, "\(n)")
            #expect(seen.contains { $0.kind == .warning && $0.text.contains("refused") }, "\(n)")
        }
        await w.finish()
    }

    @Test func onlyAnAdminCanChangeWhoIsInTheGroup() async throws {
        let w = try await Self.threeInAGroup()
        let bob = try w.person("bob")
        let current = try GroupState(decoding: [UInt8](try bob.read { db in try bob.store.group(named: "circle", db)!.record.state }))
        // bob is not an admin: a successor he signs removing carol, or making himself admin, is refused.
        let forged = try bob.successor(of: current) { s in
            s.members.removeAll { $0.identity != bob.publicIdentity && !$0.isAdmin }
        }
        try await bob.send(to: "carol", kind: .group, body: GroupMessage.state(forged).encoded(), history: nil)
        let carolSees = try await w.person("carol").read()
        #expect(carolSees.contains { $0.kind == .security && $0.text.contains("not signed by an admin") })
        #expect(try w.person("carol").groups().first?.status == "joined")
        #expect(try w.person("carol").groupMembers("circle").count == 3)
        // An old state sent again (a replay) changes nothing.
        try await bob.send(to: "carol", kind: .group, body: GroupMessage.state(current).encoded(), history: nil)
        _ = try await w.person("carol").read()
        #expect(try w.person("carol").groups().first?.version == current.version)
        await w.finish()
    }

    @Test func leavingNeedsNoPermissionAndRetiringDeletesHistory() async throws {
        let w = try await Self.threeInAGroup()
        _ = try await w.person("alice").groupSend("circle", text: "welcome")
        try await Self.settle(w, ["alice", "bob", "carol"], rounds: 1)
        #expect(try w.person("carol").groupHistory("circle").count == 1)
        try await w.person("bob").leaveGroup("circle")
        let after = try await Self.settle(w, ["alice", "carol"], rounds: 2)
        #expect(after["carol"]?.contains { $0.text.contains("bob left") || $0.text.contains("bob is no longer in") } == true)
        #expect(try w.person("carol").groupMembers("circle").map(\.name).sorted() == ["alice", "you"])
        try await w.person("alice").retireGroup("circle")
        let carol = try await w.person("carol").read()
        #expect(carol.contains { $0.text.contains("ended circle") })
        #expect(try w.person("carol").groupHistory("circle").isEmpty)
        #expect(try w.person("carol").groups().first?.status == "retired")
        await w.finish()
    }
}

extension GroupTests {
    /// An invitation made for one member, carried by an admin, is refused when anyone else answers
    /// it (the carrier pairing in the member's place), and still works for the member.
    @Test func anInvitationForAMemberAnsweredBySomeoneElseIsRefused() async throws {
        let w = try await World(GroupTests.roomy)
        let carol = try w.person("carol")
        let text = try await w.person("bob").invite(
            relay: w.relay.address, name: "carol", lifetime: nil,
            expecting: Data(carol.publicIdentity.bytes))
        _ = try await w.person("alice").accept(text, name: "bob", relay: nil)
        let refused = try await w.person("bob").read()
        #expect(refused.contains { $0.kind == .security && $0.text.contains("answered by someone else") })
        #expect(try w.person("bob").contacts().contacts.isEmpty)
        _ = try await carol.accept(text, name: "bob", relay: nil)
        let paired = try await w.person("bob").read()
        #expect(paired.contains { $0.kind == .paired && $0.contact == "carol" })
        #expect(try w.person("bob").contacts().contacts.map(\.name) == ["carol"])
        await w.finish()
    }
}

extension GroupTests {
    /// What a device keeps of a group it is no longer in can be deleted; an unanswered invitation
    /// forgotten is declined, and the admin drops the invitee.
    @Test func aGroupNoLongerInIsForgottenAndAnInvitationDeclined() async throws {
        let w = try await Self.threeInAGroup()
        _ = try await w.person("alice").groupSend("circle", text: "before")
        _ = try await w.person("carol").read()
        await #expect(throws: ClientError.self) { try await w.person("carol").forgetGroup("circle") }  // still in it
        try await w.person("carol").leaveGroup("circle")
        try await w.person("carol").forgetGroup("circle")
        #expect(try w.person("carol").groups().isEmpty)
        #expect(throws: ClientError.unknownGroup("circle")) { try w.person("carol").groupHistory("circle") }

        try await w.pair("alice", "dave")
        try await w.person("alice").addToGroup("circle", member: "dave")
        _ = try await w.person("dave").read()
        try await w.person("dave").forgetGroup("circle")
        _ = try await w.person("alice").read()
        #expect(try w.person("alice").groupMembers("circle").map(\.name).sorted() == ["bob", "you"])
        await w.finish()
    }
}

extension GroupTests {
    /// Someone added later, and someone removed and added again, end up paired with the others
    /// and hearing them.
    @Test func aLateMemberAndAReAddedMemberJoinFully() async throws {
        let w = try await Self.threeInAGroup()
        try await w.pair("alice", "dave")
        try await w.person("alice").addToGroup("circle", member: "dave")
        _ = try await w.person("dave").read()
        try await w.person("dave").joinGroup("circle")
        try await Self.settle(w, ["alice", "bob", "carol", "dave"])
        #expect(try w.person("dave").contacts().contacts.map(\.name).sorted() == ["alice", "bob", "carol"])
        _ = try await w.person("bob").groupSend("circle", text: "welcome dave")
        #expect(try await w.person("dave").read().contains { $0.kind == .group && $0.text == "welcome dave" && $0.contact == "bob" })

        try await w.person("alice").removeFromGroup("circle", member: "carol")
        try await Self.settle(w, ["bob", "carol", "dave"], rounds: 1)
        try await w.person("alice").addToGroup("circle", member: "carol")
        _ = try await w.person("carol").read()
        try await w.person("carol").joinGroup("circle")
        try await Self.settle(w, ["alice", "bob", "carol", "dave"])
        #expect(try w.person("carol").groups().first?.status == "joined")
        _ = try await w.person("dave").groupSend("circle", text: "glad you are back")
        #expect(try await w.person("carol").read().contains { $0.kind == .group && $0.text == "glad you are back" })
        let lists = try ["alice", "bob", "carol", "dave"].map { try w.person($0).groupMembers("circle").count }
        #expect(lists == [4, 4, 4, 4])
        await w.finish()
    }
}

extension GroupTests {
    /// Names people have (a zero-width non-joiner in a Persian name, joiners in an emoji) work
    /// in groups end to end.
    @Test func namesWithJoinersWork() async throws {
        let w = try await World(GroupTests.roomy)
        let mina = "می\u{200C}نا"
        try await w.pair("alice", mina)
        let circle = "🏳️\u{200D}🌈 circle"
        try await w.person("alice").createGroup(circle, members: [mina])
        #expect(try w.person("alice").groups().map(\.name) == [circle])
        _ = try await w.person(mina).read()
        try await w.person(mina).joinGroup(circle)
        try await Self.settle(w, ["alice", mina], rounds: 2)
        #expect(try w.person(mina).groupMembers(circle).count == 2)
        _ = try await w.person("alice").groupSend(circle, text: "سلام")
        #expect(try await w.person(mina).read().contains { $0.kind == .group && $0.text == "سلام" })
        await w.finish()
    }

    /// Someone only invited cannot get themselves paired with members through an admin.
    @Test func anInviteeCannotPairWithMembersBeforeJoining() async throws {
        let w = try await Self.threeInAGroup()
        try await w.pair("alice", "dave")
        try await w.person("alice").addToGroup("circle", member: "dave")
        _ = try await w.person("dave").read()
        let dave = try w.person("dave")
        let group = try dave.read { db in try dave.store.group(named: "circle", db)!.record.invitation!.group }
        let invitation = try await dave.invite(relay: w.relay.address, name: "bob", lifetime: nil)
        try await dave.send(
            to: "alice", kind: .group,
            body: GroupMessage.introduce(
                group: [UInt8](group), for: try w.person("bob").publicIdentity,
                invitation: invitation
            ).encoded(), history: nil)
        try await Self.settle(w, ["alice", "bob"], rounds: 2)
        #expect(try w.person("bob").contacts().contacts.map(\.name).sorted() == ["alice", "carol"])
        await w.finish()
    }

    /// Removed before joining and added again, or a confirmation the relay lost: joining
    /// (again) ends with the member confirmed.
    @Test func aJoinAfterReAddingOrALostConfirmationIsConfirmed() async throws {
        let w = try await Self.threeInAGroup(store: .sqlite)
        try await w.pair("alice", "dave")
        try await w.person("alice").addToGroup("circle", member: "dave")
        try await w.person("alice").removeFromGroup("circle", member: "dave")
        try await w.person("alice").addToGroup("circle", member: "dave")
        _ = try await w.person("dave").read()
        try await w.person("dave").joinGroup("circle")
        _ = try await w.person("alice").read()
        // The relay loses everything waiting, alice's confirmation for dave among it.
        try HostileRelay(relay: w.relay).execute("DELETE FROM message")
        #expect(throws: ClientError.self) { try w.person("dave").groupMembers("circle") }
        try await w.person("dave").joinGroup("circle")
        _ = try await w.person("alice").read()
        _ = try await w.person("dave").read()
        #expect(try w.person("dave").groupMembers("circle").count == 4)
        #expect(try w.person("alice").groupMembers("circle").first { $0.name == "dave" }?.status == "joined")
        await w.finish()
    }
}
