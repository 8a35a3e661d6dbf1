import BelayE2E
import BelayRelay
import BelaySodium
import Foundation
import Testing

@testable import BelayClient

/// Codes that change, and a coercer with a modified client (second attacker review of issue 9).
@Suite struct CheckinCodeChangeTests {
    static let normal = Array("staple battery".utf8), duress = Array("horse correct".utf8)
    static let normal2 = Array("window pepper".utf8), duress2 = Array("violet engine".utf8)

    static func armed() async throws -> (CheckinTests.World, Agent) {
        let w = try await CheckinTests.world(store: .sqlite)
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "plan", codes: (normal, duress))
        for name in ["bob", "carol"] { _ = try await w.person(name).read() }
        return (w, alice)
    }

    static func kinds(_ events: [ReadEvent]) -> [ReadEvent.Kind] { events.map(\.kind) }

    /// New codes at a re-arm are handed over under the old authority: the contacts accept them,
    /// and from then on the new check-in code is normal and the new duress code is duress.
    @Test func newCodesAreHandedOverAndTakeEffect() async throws {
        let (w, alice) = try await Self.armed()
        _ = try await alice.armCheckin(
            every: 120, grace: 60, to: ["bob", "carol"], note: "plan 2", codes: (Self.normal2, Self.duress2),
            code: Self.normal)
        #expect(try await w.person("bob").read().isEmpty)
        await #expect(throws: ClientError.wrongCheckinCode) { _ = try await alice.checkIn(note: nil, code: Self.normal) }
        _ = try await alice.checkIn(note: nil, code: Self.normal2)
        #expect(try await w.person("bob").read().isEmpty)
        _ = try await alice.checkIn(note: nil, code: Self.duress2)
        #expect(try await w.alerts("bob").map(\.reason) == ["duress"])
        #expect(try await w.alerts("carol").map(\.reason) == ["duress"])
        // Someone new needs new codes (this device cannot give them the tag); with them, they
        // get it in a sealed box and see no false duress.
        try await w.pair("alice", "dana")
        await #expect(throws: ClientError.self) {
            _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol", "dana"], note: "plan 3", codes: nil, code: Self.normal2)
        }
        let normal3 = Array("orange lighthouse".utf8)
        let duress3 = Array("silent kettle".utf8)
        _ = try await alice.armCheckin(
            every: 120, grace: 60, to: ["bob", "carol", "dana"], note: "plan 3", codes: (normal3, duress3),
            code: Self.normal2)
        _ = try await alice.checkIn(note: nil, code: normal3)
        for name in ["bob", "carol", "dana"] { #expect(try await w.alerts(name).isEmpty, "\(name)") }
        _ = try await alice.checkIn(note: nil, code: duress3)
        for name in ["bob", "carol", "dana"] { #expect(try await w.alerts(name).map(\.reason) == ["duress"], "\(name)") }
        await w.finish()
    }

    /// alice's check-in with codes to `names`, in that order, at a relay that can lose a reply.
    static func armedBehindADropper(_ names: [String]) async throws -> (CheckinTests.World, Agent, ReplyDropper) {
        let dropper = ReplyDropper()
        let w = try await CheckinTests.world(observe: dropper.observer)
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: names, note: "plan", codes: (normal, duress))
        for name in names { _ = try await w.person(name).read() }
        return (w, alice, dropper)
    }

    /// A change of codes that reaches nobody (the relay drops the connection) is handed over by
    /// the next check-in: no false duress, and the new duress code still works.
    @Test func aCodeChangeThatFailsIsHandedOverByTheNextCheckIn() async throws {
        let (w, alice, dropper) = try await Self.armedBehindADropper(["bob", "carol"])
        dropper.arm(frame: 1)
        await #expect(throws: ClientError.self) {
            _ = try await alice.armCheckin(
                every: 120, grace: 60, to: ["bob", "carol"], note: "plan", codes: (Self.normal2, Self.duress2),
                code: Self.normal)
        }
        _ = try await alice.checkIn(note: nil, code: Self.normal2)
        for name in ["bob", "carol"] { #expect(try await w.person(name).read().isEmpty, "\(name)") }
        #expect(try alice.read { db in try alice.store.checkin(db) }?.tagChain?.count == 1)
        _ = try await alice.checkIn(note: nil, code: Self.duress2)
        #expect(try await w.alerts("bob").map(\.reason) == ["duress"])
        #expect(try await w.alerts("carol").map(\.reason) == ["duress"])
        await w.finish()
    }

    /// A change of codes that reached carol but not bob, tried again with yet newer codes (as a
    /// person would): both walk the chain to the newest code, and nobody sees a false duress.
    @Test func retryingAPartlyFailedCodeChangeRaisesNoFalseDuress() async throws {
        let (w, alice, dropper) = try await Self.armedBehindADropper(["carol", "bob"])
        dropper.arm(frame: 1, skipping: 1)  // carol's connection goes through, bob's drops
        await #expect(throws: ClientError.self) {
            _ = try await alice.armCheckin(
                every: 120, grace: 60, to: ["carol", "bob"], note: "plan", codes: (Self.normal2, Self.duress2),
                code: Self.normal)
        }
        // carol holds the new tag, bob the old one.
        func held(_ name: String) async throws -> Data? {
            let agent = try w.person(name)
            _ = try await agent.read()
            return try agent.read { db in try agent.store.contact(named: "alice", db) }?.record.watching?.checkinTag
        }
        let (carolTag, bobTag) = (try await held("carol"), try await held("bob"))
        #expect(carolTag != nil && bobTag != nil && carolTag != bobTag)
        let normal3 = Array("orange lighthouse".utf8)
        let duress3 = Array("silent kettle".utf8)
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["carol", "bob"], note: "plan", codes: (normal3, duress3), code: Self.normal2)
        for name in ["bob", "carol"] { #expect(try await w.alerts(name).isEmpty, "\(name)") }
        _ = try await alice.checkIn(note: nil, code: normal3)
        for name in ["bob", "carol"] { #expect(try await w.alerts(name).isEmpty, "\(name)") }
        _ = try await alice.checkIn(note: nil, code: duress3)
        for name in ["bob", "carol"] { #expect(try await w.alerts(name).map(\.reason) == ["duress"], "\(name)") }
        await w.finish()
    }

    /// Codes set for the first time on a check-in that had none, dropping carol and failing to
    /// reach bob: carol is told it ended (no duress), and bob gets the codes with the next
    /// check-in (no duress), after which a box sent to him is not adopted.
    @Test func firstCodesThatPartlyFailOrDropAContactRaiseNoFalseDuress() async throws {
        let dropper = ReplyDropper()
        let w = try await CheckinTests.world(observe: dropper.observer)
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "plan", codes: nil)
        for name in ["bob", "carol"] { _ = try await w.person(name).read() }
        dropper.arm(frame: 1)  // bob's connection drops: nothing reaches anyone, carol is not retired
        await #expect(throws: ClientError.self) {
            _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob"], note: "plan", codes: (Self.normal, Self.duress))
        }
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob"], note: "plan", codes: nil, code: Self.normal)
        #expect(try await w.alerts("bob").isEmpty)
        let carol = try await w.person("carol").read()
        #expect(carol.map(\.kind) == [.checkin] && carol.first?.text.contains("ended") == true)
        _ = try await alice.checkIn(note: nil, code: Self.normal)
        #expect(try await w.alerts("bob").isEmpty)
        _ = try await alice.checkIn(note: nil, code: Self.duress)
        #expect(try await w.alerts("bob").map(\.reason) == ["duress"])
        await w.finish()
    }

    /// Changing the codes under the duress code is itself a duress alert, and the codes the
    /// coercer chose do not make later check-ins look normal to the contacts.
    @Test func changingTheCodesUnderTheDuressCodeAlerts() async throws {
        let (w, alice) = try await Self.armed()
        _ = try await alice.armCheckin(
            every: 120, grace: 60, to: ["bob", "carol"], note: "plan", codes: (Self.normal2, Self.duress2),
            code: Self.duress)
        #expect(try await w.alerts("bob").map(\.reason) == ["duress"])
        #expect(try await w.alerts("carol").map(\.reason) == ["duress"])
        await w.finish()
    }

    /// A coercer holding the duress code runs a modified client: it opens the authority, but not
    /// the check-in code's tag, so whatever it signs reads as duress, even an "ended".
    @Test func aModifiedClientWithTheDuressCodeCanOnlyRaiseDuress() async throws {
        let (w, alice) = try await Self.armed()
        var record = try #require(try alice.read { db in try alice.store.checkin(db) })
        let (tag, key) = try #require(try record.codeSlots!.open(code: Self.duress))
        try record.openSeeds(key)
        let chain = (record.tagChain ?? []).map { [UInt8]($0) }
        // Its own tag; a random one; and its own tag with a forged link that hands it over as if
        // it were the check-in code's (sealed under its own tag, which no contact holds).
        let forgedLink = try TagChain.link(from: tag, to: tag, checkin: [UInt8](record.id!))
        // And its own tag in a box to bob, which he must not adopt: he already holds a tag.
        let bobKey = try PublicIdentity(bytes: [UInt8](record.targets.first { $0.contact == "bob" }!.identity)).agreement
        let box = try SealedBox.seal(tag, to: bobKey)
        for (codeTag, links, tagBox) in [
            (tag, chain, []), (SystemRandom().bytes(16), chain, []), (tag, chain + [forgedLink], []),
            (SystemRandom().bytes(16), [], []), (tag, chain, box),
        ] {
            var ended = CheckinNotice(
                state: .ended, codeTag: codeTag, tagChain: links, authority: record.authorityPublicKey,
                checkin: [UInt8](record.id!), counter: (record.counter ?? 0) + 1, alertAt: 0, every: 120, grace: 60,
                lastCheckin: 0, tier: 0, escalateAfter: 0, note: "", alertKey: [], circleKey: [], circle: [], cancels: [])
            ended.tagBox = tagBox
            record.counter = (record.counter ?? 0) + 1
            var target = record.targets[0]
            try record.sign(&ended, for: &target)
            try await alice.send(to: "bob", kind: .checkin, body: ended.encoded(), history: nil)
            let events = try await w.person("bob").read()
            #expect(events.first?.reason == "duress")
        }
        await w.finish()
    }

    /// After the deadline, an unsigned notice for the same check-in is still refused, and a
    /// genuine check-in afterwards is still accepted.
    @Test func anUnsignedNoticeIsRefusedEvenAfterTheDeadline() async throws {
        let (w, alice) = try await Self.armed()
        try HostileRelay(relay: w.relay).dropTimers()
        await w.advance(180 + Agent.overdueSlack)
        #expect(Self.kinds(try await w.person("bob").read()) == [.overdue])
        let record = try #require(try alice.read { db in try alice.store.checkin(db) })
        let forged = CheckinNotice(
            state: .armed, codeTag: CheckinNotice.noTag, tagChain: [], authority: [],
            checkin: [UInt8](record.id!), counter: UInt64.max, alertAt: UInt64(4_000_000_000), every: 120, grace: 60,
            lastCheckin: 0, tier: 0, escalateAfter: 0, note: "", alertKey: [], circleKey: [], circle: [], cancels: [])
        try await alice.send(to: "bob", kind: .checkin, body: forged.encoded(), history: nil)
        // Refused, and the check-in is still shown as overdue.
        #expect(Self.kinds(try await w.person("bob").read()).sorted { $0.rawValue < $1.rawValue } == [.overdue, .security])
        #expect(try w.person("bob").watching().first?.state == "overdue")
        _ = try await alice.checkIn(note: nil, code: Self.normal)
        let back = try await w.person("bob").read()
        #expect(back.contains { $0.kind == .checkin && $0.text.contains("checked in again") })
        await w.finish()
    }

    /// The check-in record wiped and a new one armed after the deadline: accepted as a security
    /// event, and the overdue check-in still waits for an acknowledgement.
    @Test func aNewCheckInWithoutTheCodeAfterTheDeadlineKeepsTheOldOneWaiting() async throws {
        let (w, alice) = try await Self.armed()
        try HostileRelay(relay: w.relay).dropTimers()
        await w.advance(180 + Agent.overdueSlack)
        try alice.write { db in try db.execute(sql: "DELETE FROM checkin") }
        _ = try await alice.armCheckin(every: 86_400, grace: 60, to: ["bob"], note: "nothing to see", codes: nil)
        _ = try await alice.checkIn(note: nil, code: nil)  // and a check-in of the new one after it
        let events = try await w.person("bob").read()
        #expect(events.contains { $0.kind == .security && $0.text.contains("without the code") })
        #expect(try w.person("bob").watching().first?.state == "alerted")
        await w.advance(Agent.reminderInterval)
        #expect(Self.kinds(try w.person("bob").overdueEvents(reminders: true)) == [.overdue])
        let ack = try await w.person("bob").acknowledge("alice", note: "")
        #expect(ack.failures.isEmpty)
        await w.finish()
    }

    /// An acknowledgement sent before any alert (by a contact's modified client) is refused.
    @Test func anAcknowledgementBeforeTheAlertIsRefused() async throws {
        let (w, _) = try await Self.armed()
        let bob = try w.person("bob")
        let carol = try w.person("carol")
        let row = try #require(try bob.read { db in try bob.store.contact(named: "alice", db) })
        let notice = try CheckinNotice(decoding: [UInt8](try #require(row.record.watching).notice))
        let member = try #require(notice.circle.first { $0.name == "carol" })
        let answer = CheckinAnswer(kind: .ack, checkin: notice.checkin, counter: notice.counter, note: "")
        let ack = try CircleAck.make(answer, by: bob.identity, for: PublicIdentity(bytes: member.identity))
        let body = try Alerts.seal(
            Content(kind: .answer, sequence: 0, sentAt: 0, body: ack.encoded()), key: AlertKey(announcement: notice.circleKey),
            sender: PublicIdentity(bytes: [UInt8](row.record.identity)), receiver: PublicIdentity(bytes: member.identity),
            label: CircleAck.sealLabel)
        let outlet = try OutletKeys(Outlet(relay: member.relay, senderId: Data(member.senderId), senderSeed: Data(member.senderSeed)))
        let connection = try await w.relay.connect()
        try await connection.authorise(.sender, outlet.senderId, key: outlet.key)
        try await connection.send(to: outlet.senderId, body: body)
        let events = try await carol.read()
        #expect(Self.kinds(events) == [.warning])
        #expect(try carol.watching().first?.state == "waiting")
        await w.finish()
    }

    /// The two slots are stored in random order, so their position does not say which code is which.
    @Test func theSlotOrderIsRandom() throws {
        var firstOpens = 0
        for _ in 0..<32 {
            let made = try CodeSlots.make(checkin: Self.normal, duress: Self.duress, limits: Argon2id.Limits(operations: 1, memoryBytes: 8192))
            let onlyFirst = CodeSlots(
                operations: made.slots.operations, memoryBytes: made.slots.memoryBytes,
                slots: [made.slots.slots[0], made.slots.slots[0]])
            if try onlyFirst.open(code: Self.normal) != nil { firstOpens += 1 }
        }
        #expect(firstOpens > 0 && firstOpens < 32)
    }
}
