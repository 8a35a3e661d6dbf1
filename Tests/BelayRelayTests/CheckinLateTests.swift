import BelayRelay
import Foundation
import GRDB
import Testing

@testable import BelayClient

/// A check-in that comes after the alerts went out says so instead of "Checked in", and one
/// that finds its timer gone before the deadline says the relay lost it (issue 9, point 4).
@Suite struct CheckinLateTests {
    @Test func aCheckInAfterTheAlertsWentOutSaysWhen() async throws {
        let w = try await CheckinTests.world()
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "out", codes: nil)
        await w.advance(100)
        let onTime = try await alice.checkIn(note: nil, code: nil)
        #expect(onTime.alertsWentOutAt == nil && onTime.timersLostBeforeDeadline.isEmpty)
        await w.advance(180)  // missed: the relay releases both alerts
        #expect(try await w.alerts("bob").count == 1)
        let late = try await alice.checkIn(note: nil, code: nil)
        #expect(late.alertsWentOutAt == onTime.alertAt)
        #expect(late.armed && late.alertAt == late.lastCheckin + 180)  // and it is armed again
        #expect(try w.timerCount() == 2)
        await w.finish()
    }

    @Test func aTimerTheRelayLostBeforeItsDeadlineIsReported() async throws {
        let w = try await CheckinTests.world(store: .sqlite)
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob"], note: "out", codes: nil)
        // The operator deletes the row behind the relay's back.
        let db = try HostileRelay.openBehindTheRelay(w.relay.store.path)
        try await db.write { try $0.execute(sql: "DELETE FROM timer") }
        try db.close()
        await w.advance(60)
        let status = try await alice.checkIn(note: nil, code: nil)
        #expect(status.alertsWentOutAt == nil)
        #expect(status.timersLostBeforeDeadline == ["bob"])
        await w.finish()
    }

    /// alice's check-in to bob, at a relay that can be told to lose a reply.
    static func armedBehindADropper() async throws -> (CheckinTests.World, Agent, ReplyDropper) {
        let dropper = ReplyDropper()
        let w = try await CheckinTests.world(observe: dropper.observer)
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob"], note: "retry", codes: nil)
        _ = try await w.person("bob").read()
        return (w, alice, dropper)
    }

    /// The relay does the TSET of a check-in but its reply is lost with the connection: the
    /// client sends it again with the same timer key and gets the same timer back. One timer,
    /// no "lost" report, and the alert still fires once, at the new deadline.
    @Test func aTimerSetWhoseReplyIsLostIsRetriedWithoutASecondTimer() async throws {
        let (w, alice, dropper) = try await Self.armedBehindADropper()
        await w.advance(100)
        // Frames from the client on a check-in's first connection: the handshake, AUTH of the
        // sender key, AUTH of the old timer, then the TSET, whose reply is dropped.
        dropper.arm(frame: 4)
        let status = try await alice.checkIn(note: nil, code: nil)
        #expect(status.timersLostBeforeDeadline.isEmpty && status.alertsWentOutAt == nil)
        #expect(try w.timerCount() == 1)
        #expect(try await w.person("bob").read().isEmpty)
        await w.advance(179)
        #expect(try await w.alerts("bob").isEmpty)
        await w.advance(1)
        #expect(try await w.alerts("bob").count == 1)
        await w.finish()
    }

    /// alice paired with bob on relay A and with carol, whose own queue (which alice's alerts aim
    /// at) is on relay B.
    static func carolOnASecondRelay() async throws -> (RelaySequenceTests.People, RelayHarness, RelayHarness, Agent, Agent, Agent) {
        let people = RelaySequenceTests.People()
        let relayA = try await RelayHarness.start(store: .sqlite, clock: people.clock)
        let relayB = try await RelayHarness.start(store: .sqlite, clock: people.clock)
        let alice = try people.person()
        let bob = try people.person()
        let carol = try people.person()
        _ = try await bob.accept(try await alice.invite(relay: relayA.address, name: "bob", lifetime: nil), name: "alice", relay: nil)
        _ = try await carol.accept(
            try await alice.invite(relay: relayA.address, name: "carol", lifetime: nil), name: "alice",
            relay: relayB.address)
        _ = try await alice.read()
        return (people, relayA, relayB, alice, bob, carol)
    }

    /// A late check-in that fails part-way (carol's relay down) still reports, at the next one
    /// that succeeds, that the alerts went out, and does not call carol's fired timer "lost".
    @Test func tooLateIsReportedEvenAfterACheckInThatFailedPartWay() async throws {
        let (people, relayA, first, alice, bob, carol) = try await Self.carolOnASecondRelay()
        var relayB = first
        let (directoryB, portB) = (relayB.directory, relayB.server.port)
        let armed = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "out", codes: nil)
        people.clock.advance(by: 200)
        await relayA.server.core.sweep()
        await relayB.server.core.sweep()
        await relayB.stop()
        await #expect(throws: ClientError.self) { _ = try await alice.checkIn(note: nil, code: nil) }
        relayB = try await RelayHarness.start(directory: directoryB, port: portB, clock: people.clock)
        let late = try await alice.checkIn(note: nil, code: nil)
        #expect(late.alertsWentOutAt == armed.alertAt)
        #expect(late.timersLostBeforeDeadline.isEmpty)
        let next = try await alice.checkIn(note: nil, code: nil)  // said once
        #expect(next.alertsWentOutAt == nil)
        await relayA.stop()
        await relayB.stop()
        relayA.remove()
        relayB.remove()
        await people.finish()
    }

    /// The TSET's reply is lost and so is the retry (the relay went away): the device keeps the
    /// new timer key as pending. The next check-in finishes that TSET under the same key before
    /// anything else, so no timer is left that the device does not know: one timer, nothing
    /// reported lost, one alert at the right time.
    @Test func aTimerSetInterruptedTwiceIsFinishedByTheNextCheckIn() async throws {
        let (w, alice, dropper) = try await Self.armedBehindADropper()
        await w.advance(60)
        dropper.arm(frame: 4, thenRefuse: 1)
        await #expect(throws: ClientError.self) { _ = try await alice.checkIn(note: nil, code: nil) }
        #expect(try alice.read { db in try alice.store.checkin(db) }?.targets.first?.pendingSeed != nil)
        #expect(try w.timerCount() == 1)
        await w.advance(60)
        let status = try await alice.checkIn(note: nil, code: nil)
        #expect(status.timersLostBeforeDeadline.isEmpty && status.alertsWentOutAt == nil)
        #expect(try alice.read { db in try alice.store.checkin(db) }?.targets.first?.pendingSeed == nil)
        #expect(try w.timerCount() == 1)
        await w.advance(179)
        #expect(try await w.alerts("bob").isEmpty)
        await w.advance(1)
        #expect(try await w.alerts("bob").count == 1)
        await w.finish()
    }

    static func timers(at relay: RelayHarness) throws -> Int {
        var config = Configuration()
        config.readonly = true
        let db = try DatabaseQueue(path: relay.store.path, configuration: config)
        defer { try? db.close() }
        return try db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM timer") ?? 0 }
    }

    /// Issue 9's required test: arm to bob and carol with carol's relay down, so that arming fails
    /// part-way; bring the relay back; check in on time past the first deadline several times. No
    /// alert reaches anyone, and disarm then leaves no timer at any relay.
    @Test func anArmThatFailsPartWayLeavesNoOrphanTimer() async throws {
        let (people, relayA, first, alice, bob, carol) = try await Self.carolOnASecondRelay()
        var relayB = first
        let (directoryB, portB) = (relayB.directory, relayB.server.port)

        await relayB.stop()
        do {
            _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "out", codes: nil)
            Issue.record("arming succeeded with carol's relay down")
        } catch let ClientError.checkinPartlyArmed(armed, missing, _) {
            #expect(armed == ["bob"] && missing == ["carol"])
        }
        #expect(try alice.checkinStatus().contacts == ["bob"])
        relayB = try await RelayHarness.start(directory: directoryB, port: portB, clock: people.clock)

        for _ in 0..<4 {  // 4 x 150 s: well past the first deadline (180 s)
            people.clock.advance(by: 150)
            await relayA.server.core.sweep()
            await relayB.server.core.sweep()
            _ = try await alice.checkIn(note: nil, code: nil)
        }
        #expect(try await bob.read().filter { $0.kind == .alert }.isEmpty)
        #expect(try await carol.read().filter { $0.kind == .alert }.isEmpty)
        try await alice.disarmCheckin()
        #expect(try Self.timers(at: relayA) == 0)
        #expect(try Self.timers(at: relayB) == 0)
        await relayA.stop()
        await relayB.stop()
        relayA.remove()
        relayB.remove()
        await people.finish()
    }
}
