@testable import BelayClient
import BelayRelay
import Foundation
import GRDB
import Testing

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
        let w = try await CheckinTests.world()
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob"], note: "out", codes: nil)
        // The operator deletes the row behind the relay's back.
        let db = try DatabaseQueue(path: w.relay.store.path)
        try await db.write { try $0.execute(sql: "DELETE FROM timer") }
        try db.close()
        await w.advance(60)
        let status = try await alice.checkIn(note: nil, code: nil)
        #expect(status.alertsWentOutAt == nil)
        #expect(status.timersLostBeforeDeadline == ["bob"])
        await w.finish()
    }
}
