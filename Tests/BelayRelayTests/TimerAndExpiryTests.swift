import BelayClient
import BelaySodium
import BelayWire
import Testing

@testable import BelayRelay

/// Timed release and expiry against a started relay whose clock the test moves.
@Suite struct TimerAndExpiryTests {
    @Test func aTimerThatIsNotRenewedFiresOnceIntoEveryTarget() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let aliceInbox = PushInbox()
        let alice = try await relay.connect(onPush: aliceInbox.handler)
        let toAlice = try await SecuredQueue.make(on: alice)
        let bob = try await relay.connect()
        let toBob = try await SecuredQueue.make(on: bob)
        let depositor = try await relay.connect()
        try await depositor.authorise(.sender, toAlice.sender, key: toAlice.senderKey)
        try await depositor.authorise(.sender, toBob.sender, key: toBob.senderKey)
        let timerKey = try Ed25519.SigningKey.generate()
        let (_, deadline) = try await depositor.setTimer(
            .init(
                timerKey: timerKey.publicKey, delay: 3600,
                entries: [
                    .init(sender: toAlice.sender, body: Array("alert for alice".utf8)),
                    .init(sender: toBob.sender, body: Array("alert for bob".utf8)),
                ]))
        #expect(deadline == relay.clock.now() + 3600)
        try await alice.subscribe(toAlice.recipient)

        relay.clock.advance(by: 3599)
        await relay.server.core.sweep()
        #expect(try await bob.getMessage(toBob.recipient) == nil)

        relay.clock.advance(by: 1)
        await relay.server.core.sweep()
        #expect(await aliceInbox.first(1)[0].delivery?.body == Array("alert for alice".utf8))
        #expect(try await bob.getMessage(toBob.recipient)?.body == Array("alert for bob".utf8))

        // Once only: a later sweep releases nothing more, and the timer is gone.
        relay.clock.advance(by: 86_400)
        await relay.server.core.sweep()
        try await alice.call(.ping)
        #expect(aliceInbox.all.count == 1)
        await relay.stop()
    }

    @Test func aRenewedTimerDoesNotFireAndACancelledOneNever() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let owner = try await relay.connect()
        let q = try await SecuredQueue.make(on: owner)
        let depositor = try await q.sender(on: relay)
        let timerKey = try Ed25519.SigningKey.generate()
        let (id, _) = try await depositor.setTimer(.init(timerKey: timerKey.publicKey, delay: 600, entries: [.init(sender: q.sender, body: [1])]))

        // Renewal from a fresh connection (as after a restart) needs the timer key.
        let later = try await relay.connect()
        await #expect(throws: RelayClientError.relay(.auth)) { try await later.renewTimer(id, delay: 600) }
        try await later.authorise(.timer, id, key: timerKey)
        relay.clock.advance(by: 500)
        let newDeadline = try await later.renewTimer(id, delay: 600)
        #expect(newDeadline == relay.clock.now() + 600)
        relay.clock.advance(by: 500)  // past the first deadline, before the renewed one
        await relay.server.core.sweep()
        #expect(try await owner.getMessage(q.recipient) == nil)

        try await later.cancelTimer(id)
        relay.clock.advance(by: 10_000)
        await relay.server.core.sweep()
        #expect(try await owner.getMessage(q.recipient) == nil)
        await #expect(throws: RelayClientError.relay(.noTimer)) { try await later.cancelTimer(id) }
        await relay.stop()
    }

    /// A relay holding one timer (key `k1`, body [1], 600 s) on a secured queue, and the
    /// connection that set it.
    static func oneTimer() async throws -> (RelayHarness, RelayConnection, SecuredQueue, RelayConnection, Ed25519.SigningKey, EntityID) {
        let relay = try await RelayHarness.start(store: .sqlite)
        let owner = try await relay.connect()
        let q = try await SecuredQueue.make(on: owner)
        let depositor = try await q.sender(on: relay)
        let k1 = try Ed25519.SigningKey.generate()
        let (old, _) = try await depositor.setTimer(.init(timerKey: k1.publicKey, delay: 600, entries: [.init(sender: q.sender, body: [1])]))
        return (relay, owner, q, depositor, k1, old)
    }

    /// After `seconds`, the queue holds `body` once, and nothing after it.
    static func expectReleasedOnce(_ body: [UInt8], after seconds: UInt64, relay: RelayHarness, owner: RelayConnection, queue q: SecuredQueue) async throws {
        relay.clock.advance(by: seconds)
        await relay.server.core.sweep()
        let m = try #require(try await owner.getMessage(q.recipient))
        #expect(m.body == body)
        try await owner.acknowledge(q.recipient, seq: m.seq)
        #expect(try await owner.getMessage(q.recipient) == nil)
    }

    @Test func replacingATimerIsAtomic() async throws {
        let (relay, owner, q, depositor, _, old) = try await Self.oneTimer()
        defer { relay.remove() }
        let k2 = try Ed25519.SigningKey.generate()
        let (new, _) = try await depositor.setTimer(
            .init(
                timerKey: k2.publicKey, delay: 900, replaces: old,
                entries: [.init(sender: q.sender, body: [2])]))
        await #expect(throws: RelayClientError.relay(.noTimer)) { try await depositor.renewTimer(old, delay: 600) }
        try await Self.expectReleasedOnce([2], after: 900, relay: relay, owner: owner, queue: q)
        await #expect(throws: RelayClientError.relay(.noTimer)) { try await depositor.cancelTimer(new) }
        await relay.stop()
    }

    /// A TSET sent again after its reply was lost (same fresh timer key) finds the timer the first
    /// attempt made: one timer, one alert, and the replaced timer is not brought back.
    @Test func aTimerSetRetriedAfterALostReplyMakesNoSecondTimer() async throws {
        let (relay, owner, q, depositor, k1, old) = try await Self.oneTimer()
        defer { relay.remove() }
        let k2 = try Ed25519.SigningKey.generate()
        let set = RelayCommand.TimerSet(timerKey: k2.publicKey, delay: 900, replaces: old, entries: [.init(sender: q.sender, body: [2])])
        let (first, deadline) = try await depositor.setTimer(set)
        relay.clock.advance(by: 5)
        // The retry comes on a new connection, as after a dropped one: the old timer is gone, so
        // it is sent without `replaces`, and gets the same timer and deadline back.
        let retry = try await q.sender(on: relay)
        await #expect(throws: RelayClientError.relay(.noTimer)) { try await retry.authorise(.timer, old, key: k1) }
        let again = try await retry.setTimer(.init(timerKey: k2.publicKey, delay: 900, entries: [.init(sender: q.sender, body: [2])]))
        #expect(again.0 == first && again.1 == deadline)
        // Showing the public key again does not authorise the connection for the timer.
        await #expect(throws: RelayClientError.relay(.auth)) { try await retry.cancelTimer(first) }
        #expect(try relay.store.timerCount() == 1)
        // The same key aimed at another queue is refused, not merged.
        let other = try await SecuredQueue.make(on: owner)
        try await retry.authorise(.sender, other.sender, key: other.senderKey)
        await #expect(throws: RelayClientError.relay(.auth)) {
            try await retry.setTimer(.init(timerKey: k2.publicKey, delay: 900, entries: [.init(sender: other.sender, body: [3])]))
        }
        try await Self.expectReleasedOnce([2], after: 900, relay: relay, owner: owner, queue: q)
        await relay.stop()
    }

    @Test func timerRulesAreEnforced() async throws {
        let relay = try await RelayHarness.start()
        defer { relay.remove() }
        let owner = try await relay.connect()
        let q = try await SecuredQueue.make(on: owner)
        let stranger = try await relay.connect()
        let key = try Ed25519.SigningKey.generate().publicKey
        let entry = RelayCommand.TimerSet.Entry(sender: q.sender, body: [1])
        await #expect(throws: RelayClientError.relay(.auth)) { try await stranger.setTimer(.init(timerKey: key, delay: 600, entries: [entry])) }
        await #expect(throws: RelayClientError.relay(.delay)) { try await stranger.setTimer(.init(timerKey: key, delay: 59, entries: [entry])) }
        // A target this connection has not proven is refused before the relay looks it up, so
        // TSET does not tell a stranger whether a sender id exists.
        await #expect(throws: RelayClientError.relay(.auth)) {
            try await stranger.setTimer(.init(timerKey: key, delay: 600, entries: [.init(sender: EntityID.random(), body: [1])]))
        }
        await relay.stop()
    }

    @Test func undeliveredMessagesExpireAfterTheTTL() async throws {
        let relay = try await RelayHarness.start { $0.messageTTLSeconds = 14 * 86_400 }
        defer { relay.remove() }
        let owner = try await relay.connect()
        let q = try await SecuredQueue.make(on: owner)
        let sender = try await q.sender(on: relay)
        try await sender.send(to: q.sender, body: [1])
        relay.clock.advance(by: 14 * 86_400 - 1)
        await relay.server.core.sweep()
        #expect(try await owner.getMessage(q.recipient)?.body == [1])
        relay.clock.advance(by: 1)
        await relay.server.core.sweep()
        #expect(try await owner.getMessage(q.recipient) == nil)
        await relay.stop()
    }
}
