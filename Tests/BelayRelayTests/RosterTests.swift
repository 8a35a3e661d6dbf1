import BelayE2E
import BelayWire
import Foundation
import Testing

@testable import BelayClient

/// On-call rosters with an injected clock: the relay's timers fire at `advance`, and the clients
/// read the same clock.
@Suite struct RosterTests {
    typealias World = CheckinTests.World
    static let people = ["alice", "bob", "carol", "dave"]

    /// alice's roster: bob, carol, and dave as coordinator; all joined and paired with each other.
    static func roster(store: TestStore? = nil) async throws -> World {
        let w = try await World(store: store, GroupTests.roomy)
        for n in people.dropFirst() { try await w.pair("alice", n) }
        try await w.person("alice").createGroup("peers", members: ["bob", "carol", "dave"], roster: true, coordinator: "dave")
        for n in people.dropFirst() {
            _ = try await w.person(n).read()
            try await w.person(n).joinGroup("peers")
        }
        try await GroupTests.settle(w, people)
        for n in people { #expect(try w.person(n).groupMembers("peers").allSatisfy { $0.paired && $0.status == "joined" }, "\(n)") }
        return w
    }

    static func attempt<T>(_ body: () async throws -> T) async -> Result<T, Error> {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    static func requests(_ w: World, _ n: String) async throws -> [ReadEvent] {
        try await w.person(n).read().filter { $0.kind == .request }
    }

    @Test func anUnclaimedRequestEscalatesOnTimeThroughEveryTier() async throws {
        let w = try await Self.roster()
        try await w.person("bob").setDuty("peers", on: true, until: nil)
        try await GroupTests.settle(w, Self.people, rounds: 1)
        #expect(try w.person("carol").groupMembers("peers").first { $0.name == "bob" }?.onDuty == true)
        let asked = try await w.person("carol").request(roster: "peers", text: "bad night, can someone call", claimWithin: 600)
        #expect(asked.first == ["bob"])
        let bob = try await Self.requests(w, "bob")
        #expect(bob.map(\.tier) == [0] && bob.first?.text == "bad night, can someone call" && bob.first?.roster == "peers" && bob.first?.from == "carol")
        #expect(bob.first?.id == asked.id)
        #expect(try await Self.requests(w, "alice").isEmpty)
        await w.advance(599)
        #expect(try await Self.requests(w, "alice").isEmpty)
        #expect(try await Self.requests(w, "dave").isEmpty)
        await w.advance(1)
        #expect(try await Self.requests(w, "alice").map(\.tier) == [1])
        #expect(try await Self.requests(w, "dave").map(\.tier) == [1])
        let escalated = try await w.person("carol").read().filter { $0.kind == .escalated }
        #expect(escalated.map(\.tier) == [1])
        await w.advance(599)
        #expect(try await Self.requests(w, "dave").isEmpty)
        await w.advance(1)
        #expect(try await Self.requests(w, "dave").map(\.tier) == [2])  // the coordinator, last
        #expect(try await Self.requests(w, "alice").isEmpty)
        // After the last tier and the hour to claim, the lock runs out: the coordinator is told.
        await w.advance(3600)
        #expect(try await w.person("dave").read().contains { $0.kind == .escalated && $0.text.contains("no longer be claimed") })
        #expect(try w.timerCount() == 0)
        await w.finish()
    }

    @Test func aClaimStopsEscalationAndTellsTheRequester() async throws {
        let w = try await Self.roster()
        try await w.person("bob").setDuty("peers", on: true, until: nil)
        try await GroupTests.settle(w, Self.people, rounds: 1)
        let asked = try await w.person("carol").request(roster: "peers", text: "need to talk", claimWithin: 600)
        _ = try await Self.requests(w, "bob")
        await w.advance(100)
        let outcome = try await w.person("bob").claim(String(asked.id.prefix(8)))
        #expect(outcome.requester == "carol" && outcome.text == "need to talk")
        #expect(try w.timerCount() == 0)
        let carol = try await w.person("carol").read()
        #expect(carol.contains { $0.kind == .claimed && $0.by == "bob" })
        await w.advance(10_000)
        for n in ["alice", "dave"] { #expect(try await Self.requests(w, n).isEmpty, "\(n)") }
        #expect(try await w.person("carol").read().filter { $0.kind == .escalated }.isEmpty)
        await w.finish()
    }

    @Test func twoSupportersClaimingAtOnceProduceExactlyOneWinner() async throws {
        let w = try await Self.roster()
        // Nobody on duty: everyone gets it at once.
        let asked = try await w.person("carol").request(roster: "peers", text: "please", claimWithin: 600)
        #expect(asked.first == ["alice", "bob", "dave"])
        for n in ["alice", "bob", "dave"] { #expect(try await Self.requests(w, n).count == 1) }
        let id = asked.id
        let (alice, bob, dave) = (try w.person("alice"), try w.person("bob"), try w.person("dave"))
        async let a = Self.attempt { try await alice.claim(id) }
        async let b = Self.attempt { try await bob.claim(id) }
        async let d = Self.attempt { try await dave.claim(id) }
        let results = await [a, b, d]
        let winners = results.filter { if case .success = $0 { true } else { false } }
        #expect(winners.count == 1)
        for r in results {
            if case let .failure(error) = r { #expect(error as? ClientError == .claimedByOther(id)) }
        }
        let carol = try await w.person("carol").read().filter { $0.kind == .claimed }
        #expect(carol.count == 1)
        await w.finish()
    }

    @Test func aRequestStillEscalatesWithTheRequestersStateDeleted() async throws {
        let w = try await Self.roster()
        try await w.person("bob").setDuty("peers", on: true, until: nil)
        try await GroupTests.settle(w, Self.people, rounds: 1)
        _ = try await w.person("carol").request(roster: "peers", text: "help", claimWithin: 300)
        try Agent.wipe(home: w.homes["carol"]!)
        await w.advance(300)
        #expect(try await Self.requests(w, "alice").map(\.text) == ["help"])
        #expect(try await Self.requests(w, "dave").map(\.tier) == [1])
        await w.advance(300)
        #expect(try await Self.requests(w, "dave").map(\.tier) == [2])
        await w.finish()
    }

    @Test func aClaimAfterEscalationStillWinsAndTheOthersAreTold() async throws {
        let w = try await Self.roster()
        try await w.person("bob").setDuty("peers", on: true, until: nil)
        try await GroupTests.settle(w, Self.people, rounds: 1)
        let asked = try await w.person("carol").request(roster: "peers", text: "still here", claimWithin: 600, nameClaimer: false)
        _ = try await Self.requests(w, "bob")
        await w.advance(600)
        _ = try await Self.requests(w, "alice")
        #expect(try await Self.requests(w, "dave").map(\.tier) == [1])
        _ = try await w.person("dave").claim(asked.id)
        let alice = try await w.person("alice").read().filter { $0.kind == .claimed }
        #expect(alice.count == 1 && alice.first?.by == nil)  // the requester did not allow naming
        #expect(try await w.person("carol").read().contains { $0.kind == .claimed && $0.by == "dave" })
        await #expect(throws: ClientError.claimedByOther(asked.id)) { _ = try await w.person("bob").claim(asked.id) }
        await w.finish()
    }

    /// A relay that releases the later steps at once: the members still see the request, flagged.
    @Test func aStepReleasedEarlyByTheRelayIsShownFlagged() async throws {
        let w = try await Self.roster(store: .sqlite)
        try await w.person("bob").setDuty("peers", on: true, until: nil)
        try await GroupTests.settle(w, Self.people, rounds: 1)
        _ = try await w.person("carol").request(roster: "peers", text: "early?", claimWithin: 600)
        await w.advance(5)
        try await HostileRelay(relay: w.relay).fireEarly()
        let alice = try await Self.requests(w, "alice")
        #expect(alice.count == 1 && alice.first?.notes.contains { $0.contains("released before its time") } == true)
        await w.finish()
    }

    /// "Taken" is believed only from the member who says they took it: another member cannot
    /// claim in someone else's name, and the lock's "nobody took it" comes only from the requester.
    @Test func aClaimNoticeInSomeoneElsesNameIsRefused() async throws {
        let w = try await Self.roster()
        let asked = try await w.person("carol").request(roster: "peers", text: "anyone?", claimWithin: 600)
        for n in ["alice", "bob", "dave"] { _ = try await Self.requests(w, n) }
        let dave = try w.person("dave")
        let bob = try w.person("bob")
        let group = try dave.read { db in try dave.store.group(named: "peers", db)!.record.decodedState().id }
        let id = try #require(Hex.decode(asked.id))
        try await dave.send(to: "carol", kind: .group, body: GroupMessage.claimed(group: group, request: id, by: bob.publicIdentity).encoded(), history: nil)
        try await dave.send(to: "alice", kind: .group, body: GroupMessage.unclaimed(group: group, request: id).encoded(), history: nil)
        #expect(try await w.person("carol").read().filter { $0.kind == .claimed }.isEmpty)
        #expect(try await w.person("alice").read().filter { $0.kind == .escalated }.isEmpty)
        // The request is still open for everyone: bob can take it.
        _ = try await bob.claim(asked.id)
        #expect(try await w.person("carol").read().contains { $0.kind == .claimed && $0.by == "bob" })
        await w.finish()
    }

    /// A claim whose answer was lost (the relay cancelled the lock, then the client died before
    /// recording it) is finished by the retry, not mistaken for someone else's win.
    @Test func aClaimInterruptedAfterTheRelayTookItIsFinishedByTheRetry() async throws {
        let w = try await Self.roster()
        let asked = try await w.person("carol").request(roster: "peers", text: "still there?", claimWithin: 600)
        _ = try await Self.requests(w, "bob")
        let bob = try w.person("bob")
        // The first attempt: recorded as attempted, and the relay cancels the lock; then nothing.
        let lock = try bob.write { db -> RequestRecord.Timer in
            var g = try bob.store.group(named: "peers", db)!
            let i = g.record.requests.firstIndex { !$0.mine }!
            g.record.requests[i].claimAttempted = true
            try bob.store.updateGroup(g, db)
            return g.record.requests[i].lock
        }
        let pool = RelayPool(connector: bob.relayConnector)
        #expect(try await bob.cancelTimer(lock, pool: pool))
        await pool.closeAll()
        _ = try await bob.claim(asked.id)
        #expect(try await w.person("carol").read().contains { $0.kind == .claimed && $0.by == "bob" })
        #expect(try w.timerCount() == 0)
        await w.finish()
    }
}
