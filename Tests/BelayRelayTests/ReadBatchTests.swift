import BelayE2E
import BelayRelay
import BelayWire
import Foundation
import GRDB
import NIOCore
import Synchronization
import Testing

@testable import BelayClient

/// A `read` records what the relay pushes at once (up to its subscription window) in one
/// transaction, and acknowledges it only after the commit; a send delivers its outbox a window
/// at a time. Whatever a crash interrupts, every message is recorded once and both ratchets stay
/// in step.
@Suite struct ReadBatchTests {
    typealias World = CheckinTests.World

    static func texts(_ events: [ReadEvent]) -> [String] { events.filter { $0.kind == .message }.map(\.text) }

    @Test func aReadCommitsOnceForEachRelayBatch() async throws {
        let w = try await CheckinTests.world()
        let (alice, bob) = (try w.person("alice"), try w.person("bob"))
        let sent = (1...40).map { "m\($0)" }
        try await bob.send(to: "alice", texts: sent)
        let batches = Tally()
        alice.beforeCommittingDeliveries = { size in batches.add(size) }
        let events = try await alice.read()
        #expect(Self.texts(events) == sent)
        #expect(events.allSatisfy { $0.notes.isEmpty })
        let sizes = batches.sizes
        #expect(sizes.reduce(0, +) == 40)
        #expect(sizes.max() == WireLimits.subscriptionWindow)  // the window the relay pushed on SUB
        #expect(sizes.count < 40)
        await w.finish()
    }

    /// The store fails inside the second batch's transaction, after its messages were
    /// decrypted and written: it rolls back, nothing of it was acknowledged, and the next read
    /// opens the same messages with the ratchet as it was committed after the first batch.
    @Test func aFailureBeforeABatchCommitsLosesNothing() async throws {
        let w = try await CheckinTests.world()
        let (alice, bob) = (try w.person("alice"), try w.person("bob"))
        let sent = (1...40).map { "m\($0)" }
        try await bob.send(to: "alice", texts: sent)
        let batches = Tally()
        alice.beforeCommittingDeliveries = { size in
            // Stands in for a crash before the second batch commits.
            if batches.add(size).count == 2 { throw ClientError.stateBusy }
        }
        let first = try await alice.read()
        #expect(Self.texts(first) == Array(sent.prefix(WireLimits.subscriptionWindow)))
        #expect(first.last?.kind == .warning)  // the failure, reported after what was recorded
        alice.beforeCommittingDeliveries = nil
        let second = try await alice.read()
        #expect(Self.texts(second) == Array(sent.dropFirst(WireLimits.subscriptionWindow)))
        #expect(second.allSatisfy { $0.kind == .message && $0.notes.isEmpty })
        #expect(try alice.history("bob").map(\.text) == sent)
        try await alice.send(to: "bob", text: "still in step")
        #expect(Self.texts(try await bob.read()) == ["still in step"])
        await w.finish()
    }

    /// A crash after a batch is committed and before it is acknowledged: the relay pushes the
    /// same messages again, and each is recognised and passed over, not recorded twice.
    @Test func aBatchCommittedButNotAcknowledgedIsRecordedOnce() async throws {
        let w = try await CheckinTests.world()
        let (alice, bob) = (try w.person("alice"), try w.person("bob"))
        let sent = (1...20).map { "m\($0)" }
        try await bob.send(to: "alice", texts: sent)

        let keys = try InboxKeys(try alice.read { db in try alice.store.contact(named: "bob", db)!.record.inbox })
        let (pushed, sink) = AsyncStream<RelayReply>.makeStream()
        let connection = try await w.relay.connect(onPush: { sink.yield($0) })
        try await connection.authorise(.recipient, keys.recipientId, key: keys.key)
        try await connection.subscribe(keys.recipientId)
        var window: [RelayReply.Delivery] = []
        for await case let .message(delivery) in pushed {
            window.append(delivery)
            if window.count == WireLimits.subscriptionWindow { break }
        }
        let recorded = try await alice.process(window, connection: connection)
        #expect(Self.texts(recorded) == Array(sent.prefix(window.count)))
        await connection.close()  // "crashed": nothing acknowledged

        let after = try await alice.read()
        #expect(Self.texts(after) == Array(sent.dropFirst(window.count)))
        #expect(after.allSatisfy { $0.kind == .message })  // the redelivered window passed quietly
        #expect(try alice.history("bob").map(\.text) == sent)
        await w.finish()
    }

    /// A crash after the relay said OK to a window of sends and before they left the outbox:
    /// the next flush sends the window again, and the receiver recognises every copy.
    @Test func aWindowSentTwiceAfterACrashIsRecordedOnce() async throws {
        let w = try await CheckinTests.world()
        let (alice, bob) = (try w.person("alice"), try w.person("bob"))
        let sent = (1...20).map { "m\($0)" }
        let contact = try bob.write { db in
            var row = try bob.store.contact(named: "alice", db)!
            try bob.queue(sent.map { (Content.Kind.text, Array($0.utf8), $0) }, for: &row, db)
            return row.id
        }
        let firstWindow = try bob.read { db in
            try Row.fetchAll(db, sql: "SELECT contact_id, sealed FROM outbox ORDER BY id LIMIT ?", arguments: [Agent.sendWindow])
        }
        try await bob.flush(contact: contact)
        try bob.write { db in
            for row in firstWindow {
                let (owner, sealed): (Int64, Data) = (row["contact_id"], row["sealed"])
                try db.execute(sql: "INSERT INTO outbox(contact_id, sealed) VALUES (?, ?)", arguments: [owner, sealed])
            }
        }
        try await bob.flush(contact: contact)

        let events = try await alice.read()
        #expect(Self.texts(events) == sent)
        let copies = events.filter { $0.kind == .warning }
        #expect(copies.count == Agent.sendWindow)
        #expect(copies.allSatisfy { $0.text.contains("arrived again") })
        #expect(try alice.history("bob").map(\.text) == sent)
        try await alice.send(to: "bob", text: "still in step")
        #expect(Self.texts(try await bob.read()) == ["still in step"])
        await w.finish()
    }

    /// A group message in the middle of a batch is handled by code that opens the sender's
    /// record itself and queues a reply to them (the admin confirming a join): the batch hands
    /// its ratchet over and takes it back, so the messages around it open and the reply does
    /// not reuse a key.
    @Test func aJoinAmongMessagesInOneBatchKeepsTheRatchetsInStep() async throws {
        let w = try await World(GroupTests.roomy)
        try await w.pair("alice", "bob")
        let (alice, bob) = (try w.person("alice"), try w.person("bob"))
        try await alice.createGroup("circle", members: ["bob"])
        _ = try await bob.read()
        try await bob.send(to: "alice", text: "before")
        try await bob.joinGroup("circle")
        try await bob.send(to: "alice", text: "after")
        let batches = Tally()
        alice.beforeCommittingDeliveries = { size in batches.add(size) }
        let events = try await alice.read()
        #expect(batches.sizes == [3])
        #expect(Self.texts(events) == ["before", "after"])
        #expect(events.contains { $0.kind == .group && $0.text.contains("bob joined") })
        try await alice.send(to: "bob", text: "reply")
        let bobs = try await bob.read()
        #expect(Self.texts(bobs) == ["reply"])
        #expect(!bobs.contains { $0.kind == .warning || $0.kind == .security })
        try await bob.send(to: "alice", text: "again")
        #expect(Self.texts(try await alice.read()) == ["again"])
        await w.finish()
    }
}

/// The sizes of the batches an agent recorded, as its test seam reports them.
private final class Tally: Sendable {
    private let state = Mutex<[Int]>([])
    @discardableResult
    func add(_ size: Int) -> [Int] {
        state.withLock {
            $0.append(size)
            return $0
        }
    }
    var sizes: [Int] { state.withLock { $0 } }
}

/// A stored ratchet this build cannot read (damaged, or written by a newer belay) stops the read
/// with an error and acknowledges nothing: the messages stay at the relay for a belay that can.
@Suite struct UnreadableRatchetTests {
    @Test func aRatchetThatDoesNotRestoreLosesNoMessage() async throws {
        let w = try await CheckinTests.world()
        let (alice, bob) = (try w.person("alice"), try w.person("bob"))
        try await bob.send(to: "alice", texts: ["one", "two"])
        let saved = try alice.read { db in try alice.store.contacts(db).first { $0.record.name == "bob" }! }
        var damaged = saved
        damaged.record.ratchet = Data([0xEE] + [UInt8](repeating: 0, count: 40))
        try alice.write { db in try alice.store.updateContact(damaged, db) }
        await #expect(throws: ClientError.self) { _ = try await alice.read() }
        try alice.write { db in try alice.store.updateContact(saved, db) }
        #expect(ReadBatchTests.texts(try await alice.read()) == ["one", "two"])
        await w.finish()
    }
}
