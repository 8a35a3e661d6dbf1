import BelaySodium
import BelayTestSupport
import BelayWire
import Dispatch
import Foundation
import Logging
import Synchronization
import Testing

@testable import BelayRelay

/// What only the PostgreSQL store has to show: two frontends' transactions at once.
@Suite struct PostgresStoreTests {
    static func twoStores() async throws -> (PostgresQueueStore, PostgresQueueStore) {
        let server = try await PostgresCluster.shared.freshDatabase()
        return (try PostgresQueueStore(server, logger: Logger(label: "a")), try PostgresQueueStore(server, logger: Logger(label: "b")))
    }

    /// While one frontend's sweep holds due timers in its open transaction, the other's sweep
    /// skips them: between them every due timer is taken exactly once.
    @Test func concurrentSweepsTakeDisjointTimers() async throws {
        let (a, b) = try await Self.twoStores()
        defer {
            try? a.close()
            try? b.close()
        }
        try a.transaction { tx in
            let q = try tx.insertQueue(
                recipientId: EntityID.random(SystemRandom()), senderId: EntityID.random(SystemRandom()), recipientKey: [UInt8](repeating: 1, count: 32))
            for i in 0..<10 {
                try tx.insertTimer(
                    id: EntityID.random(SystemRandom()), key: [UInt8](repeating: UInt8(i), count: 32), deadline: 100, entries: [(q, [UInt8(i)])])
            }
        }
        let holding = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let takenByA = Mutex<[Int64]>([])
        let first = Thread {
            try? a.transaction { tx in
                let due = try tx.dueTimers(now: 100, limit: 4)
                takenByA.withLock { $0 = due }
                holding.signal()
                release.wait()
                for t in due { try tx.deleteTimer(timer: t) }
            }
            holding.signal()
        }
        first.start()
        holding.wait()
        var takenByB: [Int64] = []
        try b.transaction { tx in
            takenByB = try tx.dueTimers(now: 100, limit: 100)
            for t in takenByB { try tx.deleteTimer(timer: t) }
        }
        release.signal()
        holding.wait()
        let byA = takenByA.withLock { $0 }
        #expect(byA.count == 4 && takenByB.count == 6)
        #expect(Set(byA).isDisjoint(with: takenByB))
        var left: [Int64] = [0]
        try a.transaction { tx in left = try tx.dueTimers(now: 100, limit: 100) }
        #expect(left.isEmpty)
    }

    /// What one frontend commits reaches the other as a change to take in, and never its own.
    @Test func aCommitIsAnnouncedToTheOtherFrontendOnly() async throws {
        let (a, b) = try await Self.twoStores()
        defer {
            try? a.close()
            try? b.close()
        }
        let woken = AsyncStream<Void>.makeStream()
        b.onChange { woken.continuation.yield() }
        var row: Int64 = 0
        try a.transaction { tx in
            row = try tx.insertQueue(
                recipientId: EntityID.random(SystemRandom()), senderId: EntityID.random(SystemRandom()), recipientKey: [UInt8](repeating: 1, count: 32))
            _ = try tx.insertMessage(queue: row, seq: 5, expiresAt: 1_000, body: [1, 2, 3])
        }
        var changes = ChangedQueues()
        for await _ in woken.stream {
            let more = b.takeChangedQueues()
            changes.rows.formUnion(more.rows)
            changes.messages.formUnion(more.messages)
            if changes.messages.contains(row) && changes.rows.contains(row) { break }
        }
        #expect(a.takeChangedQueues().isEmpty)
        // A later message in the queue gets a later seq even if it asks for an earlier one.
        var seq: UInt64 = 0
        try b.transaction { tx in seq = try tx.insertMessage(queue: row, seq: 1, expiresAt: 1_000, body: [4]) }
        #expect(seq == 6)
    }
}
