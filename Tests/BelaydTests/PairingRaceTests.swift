import Foundation
import Testing

@testable import BelayClient

/// The race `read --watch` made likely: the inviter reads the acceptor's confirmation and
/// secures its queue between the acceptor's first send (the confirmation) and its second (the
/// hello). The acceptor proves its key and sends again instead of reporting the invitation used.
@Suite struct PairingRaceTests {
    @Test func anInviterSecuringItsQueueBetweenTheAcceptorsSendsDoesNotBreakThePairing() async throws {
        try await withRelayAndAgents(2) { relay, people in
            let (alice, bob) = (people[0], people[1])
            let invitation = try await alice.invite(relay: relay.address, name: "bob", lifetime: nil)
            let between = Between()
            bob.beforeFollowingSend = { _ in await between.run { _ = try? await alice.read() } }
            let outcome = try await bob.accept(invitation, name: "alice", relay: nil)
            #expect(outcome.deliveryError == nil)
            #expect(await between.ran == 1)  // alice read (and secured) between bob's two sends
            bob.beforeFollowingSend = nil
            #expect(try await alice.read().map(\.text) == ["paired: you can now send messages"])
            try await alice.send(to: "bob", text: "hello bob")
            #expect(try await bob.read().map(\.text) == ["hello bob"])
        }
    }
}

/// Runs a body at most once and counts it.
private actor Between {
    var ran = 0
    func run(_ body: () async -> Void) async {
        guard ran == 0 else { return }
        ran += 1
        await body()
    }
}
