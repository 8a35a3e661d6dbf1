import BelayE2E
import BelayRelay
import Foundation
import Testing

@testable import BelayClient

/// The people a check-in names: consent, acknowledgement, escalation tiers, and the relay's
/// limits (issue 9, points 6, 8 and 9).
@Suite struct CheckinCircleTests {
    static func world(_ names: [String]) async throws -> CheckinTests.World {
        let w = try await CheckinTests.World(store: .sqlite)
        for name in names { try await w.pair("alice", name) }
        return w
    }

    static func kinds(_ events: [ReadEvent]) -> [ReadEvent.Kind] { events.map(\.kind) }

    @Test func contactsAgreeOrDeclineAndThePersonSeesEachAnswer() async throws {
        let w = try await Self.world(["bob", "carol", "dana"])
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 3600, grace: 600, to: ["bob", "carol", "dana"], note: "march", codes: nil)
        let named = try await w.person("bob").read()
        #expect(Self.kinds(named) == [.checkin])
        #expect(named.first?.text.contains("checkin agree alice") == true)
        try await w.person("bob").answerCheckin("alice", agree: true)
        _ = try await w.person("carol").read()
        try await w.person("carol").answerCheckin("alice", agree: false)
        let answers = try await alice.read()
        #expect(Self.kinds(answers) == [.checkin, .checkin])
        let status = try alice.checkinStatus()
        #expect(status.answers.map(\.answer) == ["agreed", "declined", "none"])
        // Answers survive a check-in; a contact who stepped down is not told it is overdue, but
        // still gets the alert: the person decided.
        _ = try await alice.checkIn(note: nil, code: nil)
        #expect(try alice.checkinStatus().answers.map(\.answer) == ["agreed", "declined", "none"])
        try HostileRelay(relay: w.relay).dropTimers()
        await w.advance(4200 + Agent.overdueSlack)
        #expect(Self.kinds(try await w.person("bob").read()) == [.overdue])
        #expect(try await w.person("carol").read().isEmpty)
        #expect(try w.person("carol").watching().first?.answer == "declined")
        await w.finish()
    }

    /// Without an acknowledgement the next tier is alerted `--after` the first; its alert says
    /// the earlier people did not respond.
    @Test func anUnacknowledgedAlertEscalatesToTheNextTier() async throws {
        let w = try await Self.world(["bob", "carol", "dana"])
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], then: [(["dana"], 1800)], note: "border", codes: nil)
        let named = try await w.person("dana").read()
        #expect(named.first?.text.contains("later tier") == true)
        try FileManager.default.removeItem(atPath: w.homes["alice"]!)  // the device is gone
        w.agents["alice"] = nil
        await w.advance(180)
        #expect(try await w.alerts("bob").count == 1)
        #expect(try await w.alerts("dana").isEmpty)
        await w.advance(1799)
        #expect(try await w.alerts("dana").isEmpty)
        await w.advance(1)
        let escalated = try await w.alerts("dana")
        #expect(escalated.count == 1)
        #expect(escalated.first?.text.contains("Nobody alerted before you acknowledged within 30m") == true)
        await w.finish()
    }

    /// The first acknowledgement tells the others (and the person, at their next read) and
    /// cancels the next tier, with the person's device out of reach.
    @Test func theFirstAcknowledgementTellsEveryoneAndStopsTheEscalation() async throws {
        let w = try await Self.world(["bob", "carol", "dana"])
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], then: [(["dana"], 1800)], note: "border", codes: nil)
        for name in ["bob", "carol", "dana"] { _ = try await w.person(name).read() }
        await w.advance(180)
        #expect(try await w.alerts("bob").count == 1)
        let result = try await w.person("bob").acknowledge("alice", note: "calling her lawyer")
        #expect(result.failures.isEmpty)
        #expect(result.told.sorted() == ["alice", "carol", "dana"])
        #expect(result.cancelledTiers == 1)
        let carol = try await w.person("carol").read()
        #expect(Self.kinds(carol) == [.alert, .ack])
        let ack = try #require(carol.first { $0.kind == .ack })
        #expect(ack.contact == "alice" && ack.by == "bob" && ack.text.contains("calling her lawyer"))
        #expect(try w.person("carol").watching().first?.state == "acknowledged")
        // dana is told, is never alerted, and is not told it is overdue.
        #expect(Self.kinds(try await w.person("dana").read()) == [.ack])
        await w.advance(7200)
        #expect(try await w.person("dana").read().isEmpty)
        #expect(try w.timerCount() == 0)
        let seen = try await alice.read()
        #expect(seen.contains { $0.kind == .ack && $0.by == "bob" })
        #expect(try alice.checkinStatus().answers.first { $0.contact == "bob" }?.ackNote == "calling her lawyer")
        await w.finish()
    }

    /// A signed acknowledgement cannot be made to speak for someone else, and one for another
    /// recipient is refused.
    @Test func anAcknowledgementIsBoundToItsSignerAndItsRecipient() throws {
        let bob = try Identity.generate()
        let carol = try Identity.generate()
        let mallory = try Identity.generate()
        let answer = CheckinAnswer(kind: .ack, checkin: Array(repeating: 7, count: 16), counter: 3, note: "on it")
        let ack = try CircleAck.make(answer, by: bob, for: carol.publicIdentity)
        #expect(ack.verify(for: carol.publicIdentity))
        #expect(!ack.verify(for: mallory.publicIdentity))
        var forged = ack
        forged.by = mallory.publicIdentity
        #expect(!forged.verify(for: carol.publicIdentity))
        let decoded = try CircleAck(decoding: ack.encoded())
        #expect(decoded == ack)
    }

    /// An alert nobody acknowledges is shown again by a watch every five minutes.
    @Test func anUnacknowledgedAlertIsShownAgainEveryFiveMinutes() async throws {
        let w = try await Self.world(["bob"])
        _ = try await w.person("alice").armCheckin(every: 120, grace: 60, to: ["bob"], note: "", codes: nil)
        _ = try await w.person("bob").read()
        await w.advance(180)
        #expect(try await w.alerts("bob").count == 1)
        let bob = try w.person("bob")
        #expect(try bob.overdueEvents(reminders: true).isEmpty)
        await w.advance(Agent.reminderInterval - 1)
        #expect(try bob.overdueEvents(reminders: true).isEmpty)
        await w.advance(1)
        let again = try bob.overdueEvents(reminders: true)
        #expect(Self.kinds(again) == [.alert])
        #expect(again.first?.notes.first?.contains("nobody has acknowledged") == true)
        _ = try await bob.acknowledge("alice", note: "")
        await w.advance(Agent.reminderInterval)
        #expect(try bob.overdueEvents(reminders: true).isEmpty)
        await w.finish()
    }

    /// A contact's relay that refuses the alert (here it holds as many timers as it allows) is
    /// named in a clear error, and nothing is left half-done for that contact.
    @Test func aContactWhoseRelayRefusesTheAlertIsNamed() async throws {
        let w = try await CheckinTests.World { $0.maxTimers = 1 }
        try await w.pair("alice", "bob")
        try await w.pair("dana", "bob")
        _ = try await w.person("dana").armCheckin(every: 600, grace: 60, to: ["bob"], note: "", codes: nil)
        do {
            _ = try await w.person("alice").armCheckin(every: 600, grace: 60, to: ["bob"], note: "", codes: nil)
            Issue.record("armed past the relay's limit")
        } catch let error as ClientError {
            #expect(error.description.contains("bob's relay already holds as many check-in alerts as it allows"), "\(error)")
            #expect(error.exitCode == 4)
        }
        let status = try w.person("alice").checkinStatus()
        #expect(!status.armed || status.contacts.isEmpty)
        #expect(try w.timerCount() == 1)
        await w.finish()
    }

    /// Issue 9, point 6: sixteen contacts in two tiers, at the relay's default limits: arm,
    /// re-arm and check in repeatedly, and a missed check-in still alerts everyone in order.
    @Test func sixteenContactsInTwoTiersWorkWithinTheRelaysDefaultLimits() async throws {
        let names = (1...16).map { "p\($0)" }
        let w = try await CheckinTests.World(store: .sqlite)
        for name in names {
            try await w.pair("alice", name)
            // Pairing sixteen people takes a while in life; the relay's handshake rate per
            // source (20 a second) refills on the same clock.
            await w.advance(5)
        }
        let alice = try w.person("alice")
        let first = Array(names.prefix(10))
        let second = Array(names.suffix(6))
        _ = try await alice.armCheckin(every: 600, grace: 60, to: first, then: [(second, 600)], note: "long march", codes: nil)
        #expect(try w.timerCount() == 16)
        await w.advance(300)
        _ = try await alice.armCheckin(every: 600, grace: 60, to: first, then: [(second, 600)], note: "long march, day 2", codes: nil)
        for _ in 0..<4 {
            await w.advance(500)
            _ = try await alice.checkIn(note: nil, code: nil)
        }
        #expect(try w.timerCount() == 16)
        await w.advance(660)
        for name in first { #expect(try await w.alerts(name).count == 1, "\(name)") }
        for name in second { #expect(try await w.alerts(name).isEmpty, "\(name)") }
        await w.advance(600)
        for name in second { #expect(try await w.alerts(name).count == 1, "\(name)") }
        await w.finish()
    }
}

/// Odd but honest paths a person may take (sixth review of issue 9).
@Suite struct CheckinOddPathTests {
    /// A tier is dropped while its relay is down: arming says who is still armed, and later
    /// check-ins still work (they used to crash on the shortened tier list).
    @Test func droppingATierWhoseRelayIsDownLeavesCheckInsWorking() async throws {
        let (people, relayA, relayB, alice, bob, carol) = try await CheckinLateTests.carolOnASecondRelay()
        _ = try await alice.armCheckin(every: 600, grace: 60, to: ["bob"], then: [(["carol"], 600)], note: "", codes: nil)
        _ = (try await bob.read(), try await carol.read())
        await relayB.stopServing()
        do {
            _ = try await alice.armCheckin(every: 600, grace: 60, to: ["bob"], note: "", codes: nil)
            Issue.record("re-armed without reaching carol's relay")
        } catch let ClientError.checkinNotRemoved(armed, stillArmed, _) {
            #expect(armed == ["bob"] && stillArmed == ["carol"])
        }
        await #expect(throws: ClientError.self) { _ = try await alice.checkIn(note: nil, code: nil) }  // carol's relay is still down
        #expect(try alice.checkinStatus().contacts.sorted() == ["bob", "carol"])
        await relayA.stop()
        await relayB.stop()
        relayA.remove()
        relayB.remove()
        await people.finish()
    }

    /// Someone who lost their codes can arm again once every alert has gone out.
    @Test func aSpentCheckInWithCodesCanBeReplacedWithoutThem() async throws {
        let w = try await CheckinTests.world()
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob"], note: "", codes: (Array("staple battery".utf8), Array("horse correct".utf8)))
        _ = try await w.person("bob").read()
        await #expect(throws: ClientError.checkinCodeRequired) { _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob"], note: "", codes: nil) }
        await w.advance(180 + Agent.overdueSlack)
        #expect(try alice.checkinStatus().spent)
        _ = try await alice.armCheckin(every: 600, grace: 60, to: ["bob"], note: "fresh", codes: nil)
        let events = try await w.person("bob").read()
        #expect(events.contains { $0.kind == .alert })  // the old alert went out
        #expect(events.contains { $0.kind == .checkin && $0.text.contains("named you") })
        #expect(try alice.checkinStatus().codes == false)
        await w.finish()
    }

    /// An overdue check-in acknowledged before a late alert arrives stays acknowledged.
    @Test func aLateAlertAfterAnAcknowledgedOverdueStaysAcknowledged() async throws {
        let w = try await CheckinTests.world(store: .sqlite)
        _ = try await w.person("alice").armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "", codes: nil)
        for name in ["bob", "carol"] { _ = try await w.person(name).read() }
        try HostileRelay(relay: w.relay).postponeTimers(by: 600)
        await w.advance(180 + Agent.overdueSlack)
        #expect(try await w.person("bob").read().map(\.kind) == [.overdue])
        _ = try await w.person("bob").acknowledge("alice", note: "")
        await w.advance(600)
        #expect(try await w.alerts("bob").count == 1)
        #expect(try w.person("bob").watching().first?.state == "acknowledged")
        await w.advance(Agent.reminderInterval)
        #expect(try w.person("bob").overdueEvents(reminders: true).isEmpty)
        await w.finish()
    }

    /// Another `belay` holding the store for a moment does not make a write fail: each
    /// connection tells SQLite to wait for the lock (up to `ClientStore.busyTimeout`) rather
    /// than answer "database is locked" at once.
    @Test func theStoreWaitsForAnotherProcessHoldingIt() async throws {
        let w = try await CheckinTests.world()
        let bob = try w.person("bob")
        let milliseconds = try bob.read { db in try Int.fetchOne(db, sql: "PRAGMA busy_timeout") }
        #expect(milliseconds == Int(ClientStore.busyTimeout * 1000))
        await w.finish()
    }
}
