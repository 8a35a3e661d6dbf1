import BelayE2E
import BelayRelay
import BelaySodium
import Foundation
import GRDB
import NIOCore
import Testing

@testable import BelayClient

/// Check-ins against an in-process relay whose clock only moves when the test moves it; the
/// people's clients read the same clock. Timers fire at `sweep()`, which the running relay does
/// every `sweep_interval` (1 s): that is the documented bound after deadline plus grace.
@Suite struct CheckinTests {
    final class World {
        let relay: RelayHarness
        var homes: [String: String] = [:]
        var agents: [String: Agent] = [:]

        init(
            store: TestStore? = nil, _ configure: (inout RelayConfiguration) -> Void = { _ in }, observe: (@Sendable (Channel) throws -> Void)? = nil
        ) async throws {
            relay = try await RelayHarness.start(store: store, configure, observe: observe)
        }

        func person(_ name: String) throws -> Agent {
            if let a = agents[name] { return a }
            let home = FileManager.default.temporaryDirectory.appendingPathComponent("belay-checkin-\(name)-\(UUID().uuidString)").path
            _ = try Agent.initialise(home: home, passphrase: nil)
            let clock = relay.clock
            let agent = try Agent(home: home, passphrase: { nil }, now: { clock.now() }, group: relay.group)
            agent.reachRelays(by: relay.transport)
            // Argon2id at libsodium's minimum: the codes' slots work the same, in milliseconds.
            agent.codeLimits = Argon2id.Limits(operations: 1, memoryBytes: 8192)
            homes[name] = home
            agents[name] = agent
            return agent
        }

        /// `inviter` invites, `acceptor` accepts; both read once so each can send.
        func pair(_ inviter: String, _ acceptor: String) async throws {
            let text = try await person(inviter).invite(relay: relay.address, name: acceptor, lifetime: nil)
            _ = try await person(acceptor).accept(text, name: inviter, relay: nil)
            _ = try await person(inviter).read()
        }

        func alerts(_ name: String) async throws -> [ReadEvent] {
            try await person(name).read().filter { $0.kind == .alert }
        }

        func advance(_ seconds: UInt64) async {
            relay.clock.advance(by: seconds)
            await relay.server.core.sweep()
        }

        /// Timers held in the relay's store, whichever store it is.
        func timerCount() throws -> Int {
            try relay.queueStore.durableState().timers
        }

        func finish() async {
            await relay.stop()
            relay.remove()
            for h in homes.values { try? FileManager.default.removeItem(atPath: h) }
        }
    }

    static func world(
        store: TestStore? = nil, _ configure: (inout RelayConfiguration) -> Void = { _ in }, observe: (@Sendable (Channel) throws -> Void)? = nil
    ) async throws -> World {
        let w = try await World(store: store, configure, observe: observe)
        try await w.pair("alice", "bob")
        try await w.pair("alice", "carol")
        return w
    }

    @Test func aCheckInRenewedInTimeNeverFires() async throws {
        let w = try await Self.world()
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "at the courthouse", codes: nil)
        for _ in 0..<6 {
            await w.advance(179)  // one second before the alert would go
            _ = try await alice.checkIn(note: nil, code: nil)
        }
        #expect(try await w.alerts("bob").isEmpty)
        #expect(try await w.alerts("carol").isEmpty)
        #expect(try w.timerCount() == 2)
        await w.finish()
    }

    @Test func aMissedCheckInFiresOnceToEveryContactAtDeadlinePlusGrace() async throws {
        let w = try await Self.world()
        let alice = try w.person("alice")
        let status = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "at the courthouse with A.; lawyer is X", codes: nil)
        #expect(status.alertAt == status.lastCheckin + 180)
        // The armed contacts were told, through the ratchet, that they are named.
        #expect(try await w.person("bob").read().map(\.kind) == [.checkin])
        await w.advance(179)
        #expect(try await w.alerts("bob").isEmpty)
        await w.advance(1)
        for name in ["bob", "carol"] {
            let alerts = try await w.alerts(name)
            #expect(alerts.count == 1, "\(name)")
            #expect(alerts.first?.reason == "missed")
            #expect(alerts.first?.contact == "alice")
            #expect(alerts.first?.text.contains("at the courthouse with A.; lawyer is X") == true)
            #expect(alerts.first?.lastCheckin == status.lastCheckin)
        }
        await w.advance(10_000)
        #expect(try await w.alerts("bob").isEmpty)  // once only
        #expect(try await w.alerts("carol").isEmpty)
        #expect(try w.timerCount() == 0)
        await w.finish()
    }

    @Test func disarmCancelsEverything() async throws {
        let w = try await Self.world()
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "", codes: nil)
        // A contact an armed check-in would alert cannot be forgotten until it is re-armed.
        await #expect(throws: ClientError.self) { try await alice.forget("bob") }
        try await alice.disarmCheckin()
        #expect(try w.timerCount() == 0)
        #expect(try alice.checkinStatus().armed == false)
        await w.advance(10_000)
        #expect(try await w.alerts("bob").isEmpty)
        #expect(try await w.alerts("carol").isEmpty)
        await w.finish()
    }

    /// Re-arming replaces each contact's alert in one relay transaction: at every step the
    /// relay holds exactly one alert per chosen contact, and the replaced one never fires.
    @Test func reArmingWithOtherContactsLeavesNoGapAndNoDouble() async throws {
        let w = try await Self.world()
        let alice = try w.person("alice")
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob"], note: "first plan", codes: nil)
        #expect(try w.timerCount() == 1)
        await w.advance(100)
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "second plan", codes: nil)
        #expect(try w.timerCount() == 2)
        await w.advance(80)  // the first arming's deadline passes: it was replaced, so nothing
        #expect(try await w.alerts("bob").isEmpty)
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["carol"], note: "third plan", codes: nil)
        #expect(try w.timerCount() == 1)
        await w.advance(180)
        #expect(try await w.alerts("bob").isEmpty)
        let carol = try await w.alerts("carol")
        #expect(carol.count == 1)
        #expect(carol.first?.text.contains("third plan") == true)
        await w.finish()
    }

    @Test func anAlertDecryptsAfterFiveThousandMessagesEachWay() async throws {
        // A connection's rate bucket refills with the link's time, which stands still here: the
        // burst covers the 500 sends (and as many acknowledgements) of one command's connection.
        let w = try await Self.world { $0.rateBurst = 2_048 }
        let alice = try w.person("alice")
        let bob = try w.person("bob")
        _ = try await alice.armCheckin(every: 3600, grace: 600, to: ["bob"], note: "long day", codes: nil)
        for round in 0..<10 {
            try await alice.send(to: "bob", texts: (0..<500).map { "a\(round)-\($0)" })
            #expect(try await bob.read().filter { $0.kind == .message }.count == 500)
            try await bob.send(to: "alice", texts: (0..<500).map { "b\(round)-\($0)" })
            #expect(try await alice.read().filter { $0.kind == .message }.count == 500)
        }
        await w.advance(4200)
        let alerts = try await w.alerts("bob")
        #expect(alerts.count == 1)
        #expect(alerts.first?.text.contains("long day") == true)
        await w.finish()
    }

    @Test func theAlertGoesOutEvenIfTheDeviceIsDestroyedAfterArming() async throws {
        let w = try await Self.world()
        _ = try await w.person("alice").armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "border crossing", codes: nil)
        try FileManager.default.removeItem(atPath: w.homes["alice"]!)
        w.agents["alice"] = nil
        await w.advance(180)
        #expect(try await w.alerts("bob").count == 1)
        #expect(try await w.alerts("carol").count == 1)
        await w.finish()
    }

    /// The duress code checks in like the real one (same status, same local changes) and sends
    /// the alert at once.
    @Test func theDuressCodeLooksLikeACheckInAndAlertsAtOnce() async throws {
        var outcomes: [(status: CheckinStatus, changed: [String], alerts: [ReadEvent])] = []
        for code in ["staple battery", "horse correct"] {
            let w = try await Self.world()
            let alice = try w.person("alice")
            _ = try await alice.armCheckin(
                every: 120, grace: 60, to: ["bob", "carol"], note: "meeting a source",
                codes: (Array("staple battery".utf8), Array("horse correct".utf8)))
            _ = try await w.person("bob").read()
            _ = try await w.person("carol").read()
            await w.advance(60)
            let before = try snapshot(alice)
            let status = try await alice.checkIn(note: nil, code: Array(code.utf8))
            let after = try snapshot(alice)
            let changed = after.keys.filter { before[$0] != after[$0] }.sorted() + before.keys.filter { after[$0] == nil }.sorted()
            outcomes.append((status, changed, try await w.alerts("bob") + w.alerts("carol")))
            await #expect(throws: ClientError.wrongCheckinCode) { try await alice.checkIn(note: nil, code: Array("00000000".utf8)) }
            await w.finish()
        }
        let (normal, duress) = (outcomes[0], outcomes[1])
        #expect(normal.status == duress.status)
        #expect(normal.changed == duress.changed)
        // The sealed check-in record and the two contacts' advanced ratchets, nothing else.
        #expect(normal.changed == ["checkin/1", "contact/1", "contact/2"])
        #expect(normal.alerts.isEmpty)
        #expect(duress.alerts.map(\.reason) == ["duress", "duress"])
        #expect(duress.alerts.first?.text.contains("meeting a source") == true)
    }

    @Test func theRelayHoldsNoNoteNoNamesAndNoIdentityWhileArmed() async throws {
        let w = try await Self.world(store: .sqlite)
        let alice = try w.person("alice")
        let note = "at the courthouse with Amara; lawyer is Xavier Ndlovu"
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: note, codes: nil)
        try w.relay.store.checkpoint()
        let needles =
            [Data(note.utf8), Data("Amara".utf8), Data("alice".utf8), Data("carol".utf8)]
            + (try ["alice", "bob", "carol"].flatMap { n -> [Data] in
                let id = try w.person(n).publicIdentity
                return [Data(id.signing), Data(id.agreement)]
            })
        for file in try FileManager.default.contentsOfDirectory(atPath: w.relay.directory) {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: w.relay.directory + "/" + file))
            for needle in needles { #expect(bytes.range(of: needle) == nil, "\(file)") }
        }
        await w.finish()
    }

    /// Every row of the local database as "table/rowid" → sealed bytes.
    func snapshot(_ agent: Agent) throws -> [String: Data] {
        try agent.read { db in
            var rows: [String: Data] = [:]
            for table in ["meta", "contact", "invitation", "history", "outbox", "checkin"] {
                for row in try Row.fetchAll(db, sql: "SELECT rowid AS rid, * FROM \(table)") {
                    let id: Int64 = row["rid"]
                    let value: Data = (row["sealed"] as Data?) ?? (row["value"] as Data?) ?? Data()
                    rows["\(table)/\(id)"] = value
                }
            }
            return rows
        }
    }
}
