import BelayE2E
import BelayRelay
import BelaySodium
import BelayWire
import Foundation
import GRDB
import Testing

@testable import BelayClient

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
        let w = try await CheckinTests.world(store: .sqlite, observe: tap.observer)
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
            try Row.fetchAll(
                db,
                sql: "SELECT 'contact/' || rowid, length(sealed) FROM contact UNION ALL SELECT 'checkin/' || rowid, length(sealed) FROM checkin "
                    + "UNION ALL SELECT 'outbox/' || rowid, length(sealed) FROM outbox"
            )
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
        let w = try await CheckinTests.world(store: .sqlite)
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "", codes: (Self.normal, Self.duress))
        let stored = try #require(try alice.read { db in try alice.store.checkin(db) })
        #expect(stored.targets.count == 2)
        // What is stored is a sealed seed: only the code's key opens it into the key the relay holds.
        let relayKeys = try HostileRelay(relay: w.relay).timerKeys()
        var opened = stored
        let slots = try #require(stored.codeSlots)
        let (_, renewal) = try #require(try slots.open(code: Self.normal))
        try opened.openSeeds(renewal)
        for (sealed, clear) in zip(stored.targets, opened.targets) {
            #expect(sealed.timerSeed.count == XChaChaPoly.nonceLength + 32 + XChaChaPoly.tagLength)
            #expect(!relayKeys.contains(try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8](sealed.timerSeed.prefix(32)))).publicKey))
            #expect(relayKeys.contains(try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8](clear.timerSeed))).publicKey))
        }
        await #expect(throws: ClientError.checkinCodeRequired) { _ = try await alice.checkIn(note: nil, code: nil) }
        await #expect(throws: ClientError.wrongCheckinCode) { _ = try await alice.checkIn(note: nil, code: Array("password".utf8)) }
        await #expect(throws: ClientError.checkinCodeRequired) { try await alice.disarmCheckin(code: nil) }
        await w.advance(180)
        #expect(try await w.alerts("bob").count == 1)
        #expect(try await w.alerts("carol").count == 1)
        await w.finish()
    }

    /// Someone with the device and the passphrase but no code wipes the check-in and arms a new
    /// one, or sends an "ended" notice: the contacts refuse both, and the real alert still comes.
    @Test func withoutACodeTheContactsCannotBeMadeToStopWaiting() async throws {
        let w = try await CheckinTests.world()
        let alice = try w.person("alice")
        let armed = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "the real plan", codes: (Self.normal, Self.duress))
        for name in ["bob", "carol"] { _ = try await w.person(name).read() }
        // A forged "ended" notice through the ratchet, as a modified client would send it.
        let ended = CheckinNotice(
            state: .ended, codeTag: CheckinNotice.noTag, tagChain: [], authority: [],
            checkin: [UInt8](try #require(try alice.read { db in try alice.store.checkin(db) }?.id)), counter: 99, alertAt: 0,
            every: 120, grace: 60, lastCheckin: 0, tier: 0, escalateAfter: 0, note: "", alertKey: [], circleKey: [],
            circle: [], cancels: [])
        try await alice.send(to: "carol", kind: .checkin, body: ended.encoded(), history: nil)
        // The check-in record deleted, and a new one armed without codes.
        try alice.write { db in try db.execute(sql: "DELETE FROM checkin") }
        _ = try await alice.armCheckin(every: 86_400, grace: 60, to: ["bob"], note: "nothing to see", codes: nil)
        for name in ["bob", "carol"] {
            let refused = try await w.person(name).read()
            #expect(refused.map(\.kind) == [.security], "\(name)")
            #expect(refused.first?.text.contains("not made with their check-in code") == true)
            #expect(try w.person(name).watching().first?.dueAt == armed.alertAt * 1000)
        }
        await w.advance(180)
        for name in ["bob", "carol"] {
            let alerts = try await w.alerts(name)
            #expect(alerts.count == 1, "\(name)")
            #expect(alerts.first?.text.contains("the real plan") == true)
        }
        await w.finish()
    }

    /// The device does not know which code is the duress code: its state holds the duress tag
    /// only inside the duress code's slot, and the contacts decide.
    @Test func theDeviceDoesNotKeepWhichCodeIsTheDuressCode() async throws {
        let w = try await CheckinTests.world()
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob"], note: "", codes: (Self.normal, Self.duress))
        let stored = try #require(try alice.read { db in try alice.store.checkin(db) })
        let slots = try #require(stored.codeSlots)
        let (normalTag, normalKey) = try #require(try slots.open(code: Self.normal))
        let (duressTag, duressKey) = try #require(try slots.open(code: Self.duress))
        #expect(normalTag != duressTag && normalKey.unprotectedCopy() == duressKey.unprotectedCopy())
        let encoder = JSONEncoder()
        var opened = stored
        try opened.openSeeds(normalKey)
        let everything = try encoder.encode(opened) + encoder.encode(slots)
        // Nor can the stored tag chain be followed without a tag: no link opens under a known key.
        _ = try await alice.armCheckin(
            every: 120, grace: 60, to: ["bob"], note: "", codes: (Array("window pepper".utf8), Array("violet engine".utf8)),
            code: Self.normal)
        let chain = try #require(try alice.read { db in try alice.store.checkin(db) }?.tagChain).map { [UInt8]($0) }
        #expect(chain.count == 1)
        #expect(TagChain.walk(from: CheckinNotice.noTag, links: chain, checkin: [UInt8](stored.id!)).lastKey == nil)
        for tag in [normalTag, duressTag] {
            #expect(everything.range(of: Data(tag)) == nil)
            #expect(everything.range(of: Data(Data(tag).base64EncodedString().utf8)) == nil)
            #expect(everything.range(of: Data(Hex.encode(tag).utf8)) == nil)
        }
        await w.finish()
    }

    /// Acknowledging a duress alert does not stand the later tiers down: the person's device would
    /// otherwise find a timer gone at its next check-in, and the coercer could see it.
    @Test func aDuressAlertWithTiersLeavesNothingOnTheDevice() async throws {
        let w = try await CheckinTests.World()
        for name in ["bob", "carol", "dana"] { try await w.pair("alice", name) }
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(
            every: 120, grace: 60, to: ["bob", "carol"], then: [(["dana"], 600)], note: "",
            codes: (Self.normal, Self.duress))
        for name in ["bob", "carol", "dana"] { _ = try await w.person(name).read() }
        await w.advance(60)
        _ = try await alice.checkIn(note: nil, code: Self.duress)
        #expect(try await w.alerts("bob").first?.reason == "duress")
        let ack = try await w.person("bob").acknowledge("alice", note: "")
        #expect(ack.cancelledTiers == 0 && ack.told.sorted() == ["carol", "dana"])
        #expect(try w.timerCount() == 3)
        await w.advance(60)
        let next = try await alice.checkIn(note: nil, code: Self.normal)
        #expect(next.timersLostBeforeDeadline.isEmpty && next.alertsWentOutAt == nil)
        await w.finish()
    }

    /// Disarming under duress alerts, and the alert can still be acknowledged and is shown again.
    @Test func aDuressDisarmCanBeAcknowledged() async throws {
        let w = try await CheckinTests.world()
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "", codes: (Self.normal, Self.duress))
        for name in ["bob", "carol"] { _ = try await w.person(name).read() }
        try await alice.disarmCheckin(code: Self.duress)
        #expect(try await w.person("bob").read().map(\.kind) == [.alert, .checkin])
        #expect(try await w.person("carol").read().map(\.kind) == [.alert, .checkin])
        await w.advance(Agent.reminderInterval)
        #expect(try w.person("carol").overdueEvents(reminders: true).map(\.kind) == [.alert])
        let ack = try await w.person("bob").acknowledge("alice", note: "going there")
        #expect(ack.told == ["carol"])
        #expect(try await w.person("carol").read().map(\.kind) == [.ack])
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
        let alice = try w.person("alice")
        let bob = try w.person("bob")
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
