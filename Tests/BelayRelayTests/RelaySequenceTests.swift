import BelayE2E
import BelayRelay
import BelayWire
import Foundation
import GRDB
import NIOPosix
import Testing

@testable import BelayClient

/// The client does not trust the relay's sequence numbers (issue 9, point 5): duplicates are
/// recognised end to end, and nothing about a delivery is remembered before it authenticates.
@Suite(.serialized) struct RelaySequenceTests {
    /// Two people whose clients outlive the relay they use (their own event loops).
    final class People {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let clock = ManualClock()
        var homes: [String] = []

        func person() throws -> Agent {
            let home = FileManager.default.temporaryDirectory.appendingPathComponent("belay-seq-\(UUID().uuidString)").path
            homes.append(home)
            _ = try Agent.initialise(home: home, passphrase: nil)
            let clock = self.clock
            let agent = try Agent(home: home, passphrase: { nil }, now: { clock.now() }, group: group)
            agent.reachRelays(by: .link)
            return agent
        }

        func finish() async {
            try? await group.shutdownGracefully()
            for h in homes { try? FileManager.default.removeItem(atPath: h) }
        }
    }

    static func texts(_ events: [ReadEvent]) -> [String] {
        events.filter { $0.kind == .message }.map(\.text)
    }

    /// The queue row at the relay of `agent`'s inbox for its only contact.
    static func inboxRow(of agent: Agent, in relay: RelayHarness) throws -> Int64 {
        let rid = try agent.read { db in try agent.store.contacts(db) }.first!.record.inbox.recipientId
        var config = Configuration()
        config.readonly = true
        let db = try DatabaseQueue(path: relay.store.path, configuration: config)
        defer { try? db.close() }
        return try db.read { try Int64.fetchOne($0, sql: "SELECT id FROM queue WHERE recipient_id = ?", arguments: [rid])! }
    }

    /// A hostile relay hands over garbage under the largest `seq` it can store. Before, the
    /// client recorded that `seq` first and then dropped every later message as "already seen".
    /// (The 2^64 − 2 is stored by this relay as a negative integer, which it never
    /// returns; 2^63 − 2 is the largest it hands out, and the same attack.)
    @Test func aForgedHugeSeqWithGarbageDoesNotHideLaterMessages() async throws {
        let people = People()
        let relay = try await RelayHarness.start(store: .sqlite)
        let alice = try people.person()
        let bob = try people.person()
        let invitation = try await alice.invite(relay: relay.address, name: "bob", lifetime: nil)
        _ = try await bob.accept(invitation, name: "alice", relay: nil)
        _ = try await alice.read()
        try await bob.send(to: "alice", text: "before")
        #expect(Self.texts(try await alice.read()) == ["before"])

        let row = try Self.inboxRow(of: alice, in: relay)
        let writer = try HostileRelay.openBehindTheRelay(relay.store.path)
        try await writer.write { db in
            try db.execute(
                sql: "INSERT INTO message(queue_id, seq, expires_at, body) VALUES (?, ?, ?, ?)",
                arguments: [row, Int64.max - 1, Int64.max, Data(repeating: 0x42, count: 1_000)])
        }
        try writer.close()
        let forged = try await alice.read()
        #expect(forged.contains { $0.kind == .warning })  // the garbage was refused, and said so
        try await bob.send(to: "alice", text: "after one")
        try await bob.send(to: "alice", text: "after two")
        let later = try await alice.read()
        #expect(Self.texts(later) == ["after one", "after two"])
        await relay.stop()
        relay.remove()
        await people.finish()
    }

    /// A relay restored from a copy taken two restarts ago counts `seq` from an older generation.
    /// Later messages and a fired alert still reach the person, with a note that the numbers
    /// went backwards.
    @Test func aRelayRestoredFromAnOldCopyStillDeliversMessagesAndAlerts() async throws {
        let people = People()
        var relay = try await RelayHarness.start(store: .sqlite, clock: people.clock)
        let directory = relay.directory
        let port = relay.server.port
        let alice = try people.person()
        let bob = try people.person()
        let invitation = try await alice.invite(relay: relay.address, name: "bob", lifetime: nil)
        _ = try await bob.accept(invitation, name: "alice", relay: nil)
        _ = try await alice.read()
        try await bob.send(to: "alice", text: "one")
        #expect(Self.texts(try await alice.read()) == ["one"])
        await relay.stop()
        let snapshot = directory + "/snapshot.db"
        try FileManager.default.copyItem(atPath: relay.store.path, toPath: snapshot)

        for text in ["two", "three"] {  // two restarts, each with traffic
            relay = try await RelayHarness.start(directory: directory, port: port, clock: people.clock)
            try await bob.send(to: "alice", text: text)
            #expect(Self.texts(try await alice.read()) == [text])
            await relay.stop()
        }

        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: relay.store.path + suffix) }
        try FileManager.default.copyItem(atPath: snapshot, toPath: relay.store.path)
        relay = try await RelayHarness.start(directory: directory, port: port, clock: people.clock)
        try await bob.send(to: "alice", text: "four")
        let after = try await alice.read()
        #expect(Self.texts(after) == ["four"])
        #expect(after.first { $0.kind == .message }?.notes.contains(Agent.backwardsNote) == true)

        _ = try await bob.armCheckin(every: 3_600, grace: 600, to: ["alice"], note: "restored", codes: nil)
        _ = try await alice.read()
        people.clock.advance(by: 3_600 + 600)
        await relay.server.core.sweep()
        #expect(try await alice.read().contains { $0.kind == .alert })
        await relay.stop()
        relay.remove()
        await people.finish()
    }
}
