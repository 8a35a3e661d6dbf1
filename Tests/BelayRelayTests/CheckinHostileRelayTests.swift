import BelayE2E
import BelayRelay
import Foundation
import Testing

@testable import BelayClient

/// A relay operator attacks an armed check-in by editing the relay's database (issue 9, points 1
/// and 2). Each test shows what the contacts see. The clocks are the harness's: an overdue
/// event comes exactly `Agent.overdueSlack` (120 s) after the alert was due.
@Suite struct CheckinHostileRelayTests {
    static let every: UInt64 = 120, grace: UInt64 = 60

    static func armed() async throws -> (CheckinTests.World, HostileRelay, CheckinStatus) {
        let w = try await CheckinTests.world(store: .sqlite)
        let status = try await w.person("alice").armCheckin(every: every, grace: grace, to: ["bob", "carol"], note: "at the courthouse", codes: nil)
        for name in ["bob", "carol"] { _ = try await w.person(name).read() }
        return (w, HostileRelay(relay: w.relay), status)
    }

    static func kinds(_ events: [ReadEvent]) -> [ReadEvent.Kind] { events.map(\.kind) }

    @Test func aDeletedTimerIsNoticedByEveryContactAtTheAlertTimePlusTheSlack() async throws {
        let (w, hostile, status) = try await Self.armed()
        try hostile.dropTimers()
        await w.advance(Self.every + Self.grace + Agent.overdueSlack - 1)
        #expect(try await w.person("bob").read().isEmpty)
        await w.advance(1)
        for name in ["bob", "carol"] {
            let events = try await w.person(name).read()
            #expect(Self.kinds(events) == [.overdue], "\(name)")
            #expect(events.first?.dueAt == status.alertAt * 1000)
            #expect(events.first?.contact == "alice")
            #expect(events.first?.text.contains("at the courthouse") == true)
        }
        // `checkin watching` says so too, and a check-in settles it.
        #expect(try w.person("bob").watching().first?.state == "overdue")
        _ = try await w.person("alice").checkIn(note: nil, code: nil)
        let after = try await w.person("bob").read()
        #expect(Self.kinds(after) == [.checkin])
        #expect(after.first?.text.contains("checked in again") == true)
        #expect(try w.person("bob").watching().first?.state == "waiting")
        await w.finish()
    }

    /// A watch raises it from its own clock, with no relay saying anything.
    @Test(.timeLimit(.minutes(1))) func aWatchRaisesOverdueOnTimeByItself() async throws {
        let (w, hostile, status) = try await Self.armed()
        try hostile.dropTimers()
        let (stream, continuation) = AsyncStream<ReadEvent>.makeStream()
        let bob = try w.person("bob")
        // If the watch ended, the stream ends too, and the test fails instead of waiting.
        let watching = Task {
            defer { continuation.finish() }
            try await bob.watch(overdueTick: .milliseconds(50)) { events in events.forEach { continuation.yield($0) } }
        }
        await w.advance(Self.every + Self.grace + Agent.overdueSlack)
        var overdue: ReadEvent?
        for await event in stream where event.kind == .overdue {
            overdue = event
            break
        }
        watching.cancel()
        #expect(overdue?.dueAt == status.alertAt * 1000)
        #expect(w.relay.clock.now() == status.alertAt + Agent.overdueSlack)
        await w.finish()
    }

    @Test func aPostponedTimerIsNoticedAsOverdue() async throws {
        let (w, hostile, _) = try await Self.armed()
        try hostile.postponeTimers(by: 86_400)
        await w.advance(Self.every + Self.grace + Agent.overdueSlack)
        #expect(Self.kinds(try await w.person("carol").read()) == [.overdue])
        await w.finish()
    }

    @Test func aRelayThatIsDownIsNoticedAsOverdue() async throws {
        let (w, _, _) = try await Self.armed()
        // The relay stops listening (its event loops stay: the people's clients share them).
        await w.relay.stopServing()
        w.relay.clock.advance(by: Self.every + Self.grace + Agent.overdueSlack)
        let events = try await w.person("bob").read()
        #expect(events.first?.kind == .overdue)
        #expect(events.contains { $0.kind == .warning })  // and that the relay could not be reached
        await w.relay.stop()
        w.relay.remove()
        for h in w.homes.values { try? FileManager.default.removeItem(atPath: h) }
    }

    @Test func anAlertReleasedEarlyIsRefusedAndTheOverdueStillComes() async throws {
        let (w, hostile, _) = try await Self.armed()
        await w.advance(30)
        try await hostile.fireEarly()
        let events = try await w.person("bob").read()
        #expect(Self.kinds(events) == [.security])
        #expect(events.first?.text.contains("early") == true)
        // If alice does not check in, the overdue event still comes at its time.
        await w.advance(Self.every + Self.grace - 30 + Agent.overdueSlack - 1)
        #expect(try await w.person("bob").read().isEmpty)
        await w.advance(1)
        #expect(Self.kinds(try await w.person("bob").read()) == [.overdue])
        await w.finish()
    }

    @Test func anOldAlertReplayedAfterACheckInOrAfterDisarmIsRefusedAsStale() async throws {
        let (w, hostile, _) = try await Self.armed()
        let captured = try hostile.heldBodies()
        #expect(captured.count == 2)
        await w.advance(60)
        _ = try await w.person("alice").checkIn(note: nil, code: nil)
        // The operator releases the copies it kept of the first deposit, after their time.
        await w.advance(150)
        for (queue, body) in captured { try hostile.inject(body, queue: queue) }
        for name in ["bob", "carol"] {
            let events = try await w.person(name).read()
            #expect(Self.kinds(events) == [.security], "\(name)")
            #expect(events.first?.text.contains("stale") == true)
        }
        // After disarming, the keys of the last deposit are revoked the same way.
        let last = try hostile.heldBodies()
        try await w.person("alice").disarmCheckin()
        for name in ["bob", "carol"] {
            #expect(Self.kinds(try await w.person(name).read()) == [.checkin], "\(name) is told it ended")
        }
        await w.advance(1000)
        try hostile.inject(last[0].body, queue: last[0].queue)
        try hostile.inject(last[1].body, queue: last[1].queue)
        let stale = try await w.person("bob").read() + w.person("carol").read()
        #expect(Self.kinds(stale) == [.security, .security])
        #expect(try w.person("bob").watching().isEmpty)
        await w.finish()
    }

    /// The relay keeps a copy of an acknowledgement from an earlier alert and replays it later
    /// to hide a deleted timer: it is refused, and the overdue event comes.
    @Test func aReplayedAcknowledgementDoesNotHideAnOverdueCheckIn() async throws {
        let (w, hostile, _) = try await Self.armed()
        await w.advance(Self.every + Self.grace)
        #expect(try await w.alerts("bob").count == 1)
        _ = try await w.person("bob").acknowledge("alice", note: "on it")
        let copies = try hostile.waiting()  // carol's alert and bob's acknowledgement
        #expect(Self.kinds(try await w.person("carol").read()) == [.alert, .ack])
        _ = try await w.person("alice").checkIn(note: nil, code: nil)
        _ = try await w.person("carol").read()
        try hostile.dropTimers()
        await w.advance(Self.every + Self.grace + Agent.overdueSlack)
        for (queue, body) in copies { try hostile.inject(body, queue: queue) }
        let events = try await w.person("carol").read()
        #expect(events.contains { $0.kind == .overdue })
        #expect(!events.contains { $0.kind == .ack })
        #expect(try w.person("carol").watching().first?.state == "overdue")
        await w.finish()
    }

    /// alice checks in late, after her alert went out; the relay hands bob her new notice before
    /// the alert. The alert is then stale and refused, and bob is told both that the alert was
    /// held back and that she checked in: nothing is hidden, and nothing false is shown.
    @Test func aReorderedLateCheckInAndAlertAreBothAccountedFor() async throws {
        let (w, hostile, _) = try await Self.armed()
        // Later than the clocks' tolerance, so the alert should have been released first.
        await w.advance(Self.every + Self.grace + Agent.alertClockTolerance + 30)
        _ = try await w.person("alice").checkIn(note: nil, code: nil)
        let waiting = try hostile.waiting()
        let bobQueue = try #require(waiting.first?.queue)
        #expect(waiting.filter { $0.queue == bobQueue }.count == 2)  // the alert, then the notice
        try hostile.moveOldestLast(queue: bobQueue)
        let events = try await w.person("bob").read()
        #expect(events.contains { $0.kind == .security && $0.text.contains("stale") })
        #expect(events.contains { $0.kind == .security && $0.text.contains("never arrived") })
        #expect(!events.contains { $0.kind == .overdue })
        #expect(try w.person("bob").watching().first?.state == "waiting")
        await w.finish()
    }

    @Test func anAlertDeliveredTwiceIsShownOnce() async throws {
        let (w, hostile, _) = try await Self.armed()
        let held = try hostile.heldBodies()
        await w.advance(Self.every + Self.grace)
        #expect(Self.kinds(try await w.person("bob").read()) == [.alert])
        for (queue, body) in held { try hostile.inject(body, queue: queue) }
        #expect(try await w.alerts("bob").isEmpty)
        #expect(try await w.alerts("carol").count == 1)  // carol's first copy, then nothing
        await w.finish()
    }
}
