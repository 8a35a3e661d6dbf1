@testable import BelayClient
import BelayRelay
import Foundation
import Testing

/// Invitations expire by default (issue 9, point 7): one lost in a drawer cannot buy a place in
/// someone's safety circle weeks later.
@Suite struct InvitationDefaultTests {
    @Test func anInvitationWithoutExpiresLastsSevenDays() async throws {
        let people = RelaySequenceTests.People()
        let relay = try await RelayHarness.start(clock: people.clock)
        let alice = try people.person()
        let bob = try people.person()
        let late = try people.person()

        let onTime = try await alice.invite(relay: relay.address, name: "bob", lifetime: nil)
        let tooLate = try await alice.invite(relay: relay.address, name: "late", lifetime: nil)
        people.clock.advance(by: Agent.defaultInvitationLifetime - 60)
        _ = try await bob.accept(onTime, name: "alice", relay: nil)
        #expect(try await alice.read().contains { $0.kind == .paired && $0.contact == "bob" })
        people.clock.advance(by: 120)  // now past the week
        _ = try? await late.accept(tooLate, name: "alice", relay: nil)
        #expect(!(try await alice.read()).contains { $0.kind == .paired && $0.contact == "late" })
        let contacts = try alice.read { db in try alice.store.contacts(db) }.map(\.record.name)
        #expect(contacts == ["bob"])
        await relay.stop()
        relay.remove()
        await people.finish()
    }
}
