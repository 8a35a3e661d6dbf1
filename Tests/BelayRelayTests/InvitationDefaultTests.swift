import BelayRelay
import Foundation
import Testing

@testable import BelayClient

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

    /// Two people accept the same invitation before the inviter reads: the first is paired, and
    /// the second's confirmation is reported as someone else using it (issue 9, point 7).
    @Test func aSecondConfirmationForAUsedInvitationIsASecurityEvent() async throws {
        let people = RelaySequenceTests.People()
        let relay = try await RelayHarness.start(clock: people.clock)
        let alice = try people.person()
        let bob = try people.person()
        let mallory = try people.person()
        let invitation = try await alice.invite(relay: relay.address, name: "bob", lifetime: nil)
        _ = try await bob.accept(invitation, name: "alice", relay: nil)
        _ = try? await mallory.accept(invitation, name: "alice", relay: nil)
        let events = try await alice.read()
        #expect(events.contains { $0.kind == .paired && $0.contact == "bob" })
        #expect(events.contains { $0.kind == .security && $0.contact == "bob" && $0.text.contains("someone else may have tried to use it") })
        let contacts = try alice.read { db in try alice.store.contacts(db) }.map(\.record.name)
        #expect(contacts == ["bob"])
        await relay.stop()
        relay.remove()
        await people.finish()
    }

    /// An answer from another identity to an invitation named like an existing contact is
    /// kept apart as a new contact; the existing one is not replaced (issue 9, point 7).
    @Test func acceptingNeverReplacesAnExistingContact() async throws {
        let people = RelaySequenceTests.People()
        let relay = try await RelayHarness.start(clock: people.clock)
        let alice = try people.person()
        let bob = try people.person()
        let carol = try people.person()
        _ = try await bob.accept(try await alice.invite(relay: relay.address, name: "bob", lifetime: nil), name: "alice", relay: nil)
        _ = try await alice.read()
        let bobIdentity = try alice.read { db in try alice.store.contacts(db) }.first!.record.identity
        _ = try await carol.accept(try await alice.invite(relay: relay.address, name: "bob", lifetime: nil), name: "alice", relay: nil)
        let events = try await alice.read()
        #expect(events.contains { $0.kind == .security && $0.contact == "bob-2" })
        let contacts = try alice.read { db in try alice.store.contacts(db) }.map(\.record)
        #expect(contacts.map(\.name).sorted() == ["bob", "bob-2"])
        #expect(contacts.first { $0.name == "bob" }?.identity == bobIdentity)
        await relay.stop()
        relay.remove()
        await people.finish()
    }
}
