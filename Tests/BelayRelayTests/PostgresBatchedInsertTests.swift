import BelaySodium
import BelayTestSupport
import BelayWire
import Dispatch
import Foundation
import Logging
import Synchronization
import Testing

@testable import BelayRelay

/// A batch's SENDs into the queues it has locked are stored by one INSERT at the end of the
/// batch (or before anything reads messages); their seqs are worked out under the lock. These
/// check that the seqs and the bodies come out as the statement per SEND stored them.
@Suite struct PostgresBatchedInsertTests {
    static func newQueue(_ store: PostgresQueueStore) throws -> Int64 {
        var q: Int64 = 0
        try store.transaction { tx in
            q = try tx.insertQueue(
                recipientId: EntityID.random(SystemRandom()), senderId: EntityID.random(SystemRandom()), recipientKey: [UInt8](repeating: 1, count: 32))
        }
        return q
    }

    /// Two frontends on a fresh database, and a queue made through the first; both closed after.
    static func withFrontends(_ body: (PostgresQueueStore, PostgresQueueStore, Int64) async throws -> Void) async throws {
        let (a, b) = try await PostgresStoreTests.twoStores()
        defer {
            try? a.close()
            try? b.close()
        }
        try await body(a, b, try newQueue(a))
    }

    static func stored(_ store: PostgresQueueStore, _ q: Int64) throws -> [(UInt64, [UInt8])] {
        var all: [(UInt64, [UInt8])] = []
        try store.transaction { tx in all = try tx.messages(queue: q, after: 0, limit: 100) }
        return all
    }

    /// Frontend b stores three messages in one batch and reads them back before its commit;
    /// frontend a, whose proposed seq is stale, then gets the seqs after them, locked or not.
    @Test func seqsFollowEveryCommittedMessageAcrossFrontends() async throws {
        try await Self.withFrontends { a, b, q in
            var seen: [UInt64] = []
            try b.transaction { tx in
                try tx.lockQueues([q])
                let seqs = try (1...3).map { try tx.insertMessage(queue: q, seq: 1, expiresAt: 100, body: [UInt8($0)]) }
                #expect(seqs == [1, 2, 3])
                seen = try tx.messages(queue: q, after: 0, limit: 10).map(\.0)  // flushed before the read
            }
            #expect(seen == [1, 2, 3])
            try a.transaction { tx in
                try tx.lockQueues([q])
                #expect(try tx.insertMessage(queue: q, seq: 2, expiresAt: 100, body: [4]) == 4)
                #expect(try tx.insertMessage(queue: q, seq: 10, expiresAt: 100, body: [5]) == 10)  // a later proposal stands
            }
            try a.transaction { tx in  // not locked: the statement of its own
                let seq = try tx.insertMessage(queue: q, seq: 1, expiresAt: 100, body: [6])
                #expect(seq == 11)
            }
            let all = try Self.stored(a, q)
            #expect(all.map(\.0) == [1, 2, 3, 4, 10, 11])
            #expect(all.map(\.1) == [[1], [2], [3], [4], [5], [6]])
        }
    }

    /// A queue another frontend deleted before this batch locked it: the SEND finds it gone,
    /// and the rest of the batch is stored.
    @Test func aQueueDeletedElsewhereIsFoundGone() async throws {
        try await Self.withFrontends { a, b, gone in
            let kept = try Self.newQueue(a)
            try a.transaction { tx in _ = try tx.deleteQueue(queue: gone) }
            var refused = false
            try b.transaction { tx in
                try tx.lockQueues([gone, kept])
                do {
                    _ = try tx.insertMessage(queue: gone, seq: 1, expiresAt: 100, body: [1])
                } catch is QueueGone {
                    refused = true
                }
                _ = try tx.insertMessage(queue: kept, seq: 1, expiresAt: 100, body: [2])
            }
            #expect(refused)
            #expect(try Self.stored(a, kept).map(\.1) == [[2]])
        }
    }

    /// More body bytes than one statement may carry are sent in several, in order.
    @Test func aBatchLargerThanTheBoundIsSentInParts() async throws {
        try await Self.withFrontends { a, b, q in
            let size = 64 * 1024
            let count = PendingInserts.maxBytes / size + 3
            var held = 0
            try b.transaction { tx in
                try tx.lockQueues([q])
                for i in 0..<count { _ = try tx.insertMessage(queue: q, seq: 1, expiresAt: 100, body: [UInt8](repeating: UInt8(i % 256), count: size)) }
                held = (tx as? PostgresTransaction)?.heldMessages ?? -1
            }
            #expect(held >= 0 && held < count && held <= PendingInserts.maxBytes / size)
            var rows: [(UInt64, [UInt8])] = []
            try a.transaction { tx in rows = try tx.messages(queue: q, after: 0, limit: count + 1) }
            #expect(rows.map(\.0) == (1...UInt64(count)).map { $0 })
            #expect(rows.allSatisfy { $0.1.count == size && $0.1.first == UInt8((Int($0.0) - 1) % 256) })
        }
    }

    /// A queue deleted earlier in the same batch: a SEND into it is refused, not held for an
    /// INSERT that would fail the whole batch at its commit.
    @Test func aQueueDeletedEarlierInTheBatchIsFoundGone() async throws {
        try await Self.withFrontends { a, b, q in
            var refused = false
            try a.transaction { tx in
                try tx.lockQueues([q])
                _ = try tx.insertMessage(queue: q, seq: 1, expiresAt: 100, body: [1])
                _ = try tx.deleteQueue(queue: q)
                do {
                    _ = try tx.insertMessage(queue: q, seq: 2, expiresAt: 100, body: [2])
                } catch is QueueGone {
                    refused = true
                }
            }
            #expect(refused)
        }
    }

    /// A queue re-read in the batch (a shared store's lookup) counts the messages the batch holds.
    @Test func aQueueReReadInTheBatchCountsWhatItHolds() async throws {
        try await Self.withFrontends { a, b, q in
            var row: QueueRow?
            try a.transaction { tx in
                try tx.lockQueues([q])
                for i in 0..<3 { _ = try tx.insertMessage(queue: q, seq: 1, expiresAt: 100, body: [UInt8](repeating: 1, count: 10 + i)) }
                row = try tx.queueRow(id: q)
            }
            #expect(row?.count == 3 && row?.bytes == 33)
        }
    }

    /// While frontend b's batch holds the queue, a's batch waits for it at its lock, then stores
    /// after b's messages: the seqs are worked out under a lock both take.
    @Test(.timeLimit(.minutes(1))) func aBatchWaitsForTheOtherFrontendsLockAndStoresAfterIt() async throws {
        let server = try await PostgresCluster.shared.freshDatabase()
        let a = try PostgresQueueStore(server, logger: Logger(label: "a"))
        let b = try PostgresQueueStore(server, logger: Logger(label: "b"))
        let watcher = try PostgresQueueStore(server, logger: Logger(label: "w"))
        defer { for s in [a, b, watcher] { try? s.close() } }
        let q = try Self.newQueue(a)
        let bHolds = DispatchSemaphore(value: 0)
        let bMayCommit = DispatchSemaphore(value: 0)
        let aDone = DispatchSemaphore(value: 0)
        let aSeq = Mutex<UInt64?>(nil)
        Thread {
            var signalled = false
            defer { if !signalled { bHolds.signal() } }
            try? b.transaction { tx in
                try tx.lockQueues([q])
                for _ in 0..<3 { _ = try tx.insertMessage(queue: q, seq: 1, expiresAt: 100, body: [1]) }
                signalled = true
                bHolds.signal()
                bMayCommit.wait()
            }
        }.start()
        bHolds.wait()
        Thread {
            defer { aDone.signal() }
            try? a.transaction { tx in
                try tx.lockQueues([q])
                let seq = try tx.insertMessage(queue: q, seq: 1, expiresAt: 100, body: [2])
                aSeq.withLock { $0 = seq }
            }
        }.start()
        var waiting = false
        for _ in 0..<PostgresStoreTests.maxLockChecks where !waiting {
            try watcher.transaction { tx in waiting = try tx.someoneWaitsForALock() }
        }
        #expect(waiting)
        bMayCommit.signal()
        aDone.wait()
        #expect(aSeq.withLock { $0 } == 4)
        #expect(try Self.stored(a, q).map(\.1) == [[1], [1], [1], [2]])
    }

    /// A message held for the batch's INSERT is announced to the other frontend like any other.
    @Test(.timeLimit(.minutes(1))) func aHeldMessageIsAnnouncedAtTheCommit() async throws {
        try await Self.withFrontends { a, b, q in
            let woken = AsyncStream<Void>.makeStream()
            b.onChange { woken.continuation.yield() }
            try a.transaction { tx in
                try tx.lockQueues([q])
                _ = try tx.insertMessage(queue: q, seq: 1, expiresAt: 100, body: [1])
            }
            for await _ in woken.stream where b.takeChangedQueues().messages.contains(q) { break }
        }
    }
}
