@testable import BelayClient
import BelayE2E
import BelayRelay
import BelaySodium
import Foundation
import GRDB
import Testing

/// Duress is invisible on the wire, at the relay and on the seized device, and the codes are a
/// real boundary (issue 9, point 3).
@Suite struct CheckinDuressTests {
    static let normal = Array("staple battery".utf8), duress = Array("horse correct".utf8)

    struct Run {
        var frames: [String]
        var relay: [String]
        var localSizes: [String: Int]
        var alerts: [ReadEvent]
        var status: CheckinStatus
    }

    /// One world per run, on the same clock: arm with codes, then check in with `code` while a
    /// tap counts every frame on every connection.
    static func run(code: [UInt8], disarm: Bool = false) async throws -> Run {
        let tap = WireTap()
        let w = try await CheckinTests.world(observe: tap.observer)
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "meeting a source", codes: (normal, duress))
        for name in ["bob", "carol"] { _ = try await w.person(name).read() }
        await w.advance(60)
        tap.reset()
        var status = CheckinStatus(armed: false)
        if disarm { try await alice.disarmCheckin(code: code) } else { status = try await alice.checkIn(note: nil, code: code) }
        let frames = tap.connections
        let relay = try HostileRelay(relay: w.relay).shape()
        let local = try alice.read { db in
            try Row.fetchAll(db, sql: "SELECT 'contact/' || rowid, length(sealed) FROM contact UNION ALL SELECT 'checkin/' || rowid, length(sealed) FROM checkin "
                                 + "UNION ALL SELECT 'outbox/' || rowid, length(sealed) FROM outbox")
                .reduce(into: [String: Int]()) { $0[$1[0]] = $1[1] }
        }
        let alerts = try await w.alerts("bob") + w.alerts("carol")
        await w.finish()
        return Run(frames: frames, relay: relay, localSizes: local, alerts: alerts, status: status)
    }

    @Test func aDuressCheckInPutsTheSameFramesOnTheWireAndLeavesTheSameRelayAndLocalState() async throws {
        let a = try await Self.run(code: Self.normal)
        let b = try await Self.run(code: Self.duress)
        #expect(!a.frames.isEmpty)
        #expect(a.frames == b.frames)
        #expect(a.relay == b.relay)
        #expect(a.localSizes == b.localSizes)
        #expect(a.status == b.status)
        #expect(a.alerts.isEmpty)
        #expect(b.alerts.map(\.reason) == ["duress", "duress"])
        #expect(b.alerts.allSatisfy { $0.notes.contains { $0.contains("do not reply in Belay") } })
    }

    @Test func disarmingWithTheDuressCodeLooksTheSameAndAlerts() async throws {
        let a = try await Self.run(code: Self.normal, disarm: true)
        let b = try await Self.run(code: Self.duress, disarm: true)
        #expect(a.frames == b.frames && a.relay == b.relay && a.localSizes == b.localSizes)
        #expect(!a.relay.contains { $0.hasPrefix("timer") })
        #expect(a.alerts.isEmpty)
        #expect(b.alerts.map(\.reason) == ["duress", "duress"])
    }

    /// The timer keys are sealed under the codes: a client with the passphrase and the device but
    /// no code holds no key it could renew a timer with, so the alerts go out.
    @Test func withoutACodeTheTimersCannotBeRenewedAndTheAlertsGoOut() async throws {
        let w = try await CheckinTests.world()
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "", codes: (Self.normal, Self.duress))
        let stored = try #require(try alice.read { db in try alice.store.checkin(db) })
        #expect(stored.targets.count == 2)
        for target in stored.targets {
            #expect(target.timerSeed.count == XChaChaPoly.nonceLength + 32 + XChaChaPoly.tagLength)
            #expect(throws: (any Error).self) { _ = try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8](target.timerSeed))) }
        }
        await #expect(throws: ClientError.checkinCodeRequired) { _ = try await alice.checkIn(note: nil, code: nil) }
        await #expect(throws: ClientError.wrongCheckinCode) { _ = try await alice.checkIn(note: nil, code: Array("password".utf8)) }
        await #expect(throws: ClientError.checkinCodeRequired) { try await alice.disarmCheckin(code: nil) }
        await w.advance(180)
        #expect(try await w.alerts("bob").count == 1)
        #expect(try await w.alerts("carol").count == 1)
        await w.finish()
    }

    @Test func shortOrEqualCodesAreRefused() async throws {
        let w = try await CheckinTests.world()
        let alice = try w.person("alice")
        await #expect(throws: ClientError.self) {
            _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob"], note: "", codes: (Array("1234".utf8), Self.duress))
        }
        await #expect(throws: ClientError.self) {
            _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob"], note: "", codes: (Self.normal, Self.normal))
        }
        #expect(try alice.checkinStatus().armed == false)
        #expect(try w.timerCount() == 0)
        await w.finish()
    }

    /// The contact who got a duress alert is warned before replying.
    @Test func aContactWhoGotADuressAlertIsWarnedBeforeReplying() async throws {
        let w = try await CheckinTests.world()
        let alice = try w.person("alice"), bob = try w.person("bob")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob"], note: "", codes: (Self.normal, Self.duress))
        _ = try await bob.read()
        #expect(try bob.underDuress("alice") == false)
        _ = try await alice.checkIn(note: nil, code: Self.duress)
        #expect(try await w.alerts("bob").first?.reason == "duress")
        #expect(try bob.underDuress("alice"))
        // Acknowledging tells nobody on alice's device.
        let ack = try await bob.acknowledge("alice", note: "")
        #expect(ack.told.isEmpty && ack.failures.isEmpty)
        #expect(try await alice.read().isEmpty)
        await w.advance(Agent.duressCaution)
        #expect(try bob.underDuress("alice") == false)
        await w.finish()
    }
}
