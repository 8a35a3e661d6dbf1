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
    /// How many times a test asks the server whether a transaction is waiting for a lock.
    static let maxLockChecks = 2_000

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

    /// A renewal through one frontend while another's sweep is firing the timer waits for that
    /// sweep and then finds no timer, instead of answering OK for a timer that is gone.
    @Test func aTimerBeingFiredElsewhereIsNotFoundByARenewal() async throws {
        let server = try await PostgresCluster.shared.freshDatabase()
        let (a, b, watcher) = (
            try PostgresQueueStore(server, logger: Logger(label: "a")), try PostgresQueueStore(server, logger: Logger(label: "b")),
            try PostgresQueueStore(server, logger: Logger(label: "w"))
        )
        defer { for s in [a, b, watcher] { try? s.close() } }
        let timerId = EntityID.random(SystemRandom())
        try a.transaction { tx in
            let q = try tx.insertQueue(
                recipientId: EntityID.random(SystemRandom()), senderId: EntityID.random(SystemRandom()), recipientKey: [UInt8](repeating: 1, count: 32))
            try tx.insertTimer(id: timerId, key: [UInt8](repeating: 3, count: 32), deadline: 100, entries: [(q, [1])])
        }
        let swept = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        Thread {
            try? a.transaction { tx in
                for t in try tx.dueTimers(now: 100, limit: 10) { try tx.deleteTimer(timer: t) }
                swept.signal()
                release.wait()
            }
            swept.signal()
        }.start()
        swept.wait()
        let found = Mutex<TimerRow?>(TimerRow(rowId: 0, key: [], deadline: 0))
        let renewed = DispatchSemaphore(value: 0)
        Thread {
            try? b.transaction { tx in
                let row = try tx.timer(id: timerId)
                found.withLock { $0 = row }
            }
            renewed.signal()
        }.start()
        // Until b's lookup is waiting for a's lock (the server says so), then let a commit.
        var waiting = false
        for _ in 0..<Self.maxLockChecks where !waiting {
            try watcher.transaction { tx in waiting = try tx.someoneWaitsForALock() }
        }
        #expect(waiting, "the lookup did not wait for the sweep's lock")
        release.signal()
        renewed.wait()
        swept.wait()
        #expect(found.withLock { $0 } == nil)
    }

    /// Two frontends' batches that name the same two queues in opposite orders: each locks the
    /// queues in ascending order before touching them, so the second waits for the first instead
    /// of both waiting for each other (a deadlock the server would break by failing one).
    @Test func batchesNamingQueuesInOppositeOrdersDoNotDeadlock() async throws {
        let server = try await PostgresCluster.shared.freshDatabase()
        let pausing = PausingStore(try PostgresQueueStore(server, logger: Logger(label: "a")))
        let other = PausingStore(try PostgresQueueStore(server, logger: Logger(label: "b")))
        let watcher = try PostgresQueueStore(server, logger: Logger(label: "w"))
        defer { for s in [pausing.inner, other.inner, watcher] { try? s.close() } }
        var config = RelayConfiguration()
        config.diskReserveBytes = 0
        let a = try QueueEngine(store: pausing, limits: CoreLimits(config), clock: ManualClock(), logger: Logger(label: "a"))
        let sink = QueueEngineTests.Sink()
        var senders: [EntityID] = []
        for _ in 0..<2 {
            guard
                case let .reply(_, .ids(_, s), _) = a.runBatch(
                    [CoreRequest(sink: sink, requestId: 1, command: .create(recipientKey: [UInt8](repeating: 1, count: 32)))], sweep: false
                ).outcomes[ObjectIdentifier(sink)]?.items.first
            else { throw QueueEngineTests.Failure("NEW") }
            senders.append(s)
        }
        let b = try QueueEngine(store: other, limits: CoreLimits(config), clock: ManualClock(), logger: Logger(label: "b"))
        func batch(_ order: [EntityID]) -> [CoreRequest] {
            order.enumerated().map { CoreRequest(sink: sink, requestId: UInt32($0.offset + 1), command: .send(sender: $0.element, proven: nil, body: [1])) }
        }
        // Each engine goes to its own thread, as each frontend's core has one.
        let engineA = EngineOnAThread(a)
        let engineB = EngineOnAThread(b)
        pausing.pauseAtFirstInsert()
        let aDone = DispatchSemaphore(value: 0)
        let replies = Mutex<[[CoreOutcome]]>([])
        let batchA = batch(senders)
        Thread {
            let out = engineA.engine.withLock { $0.runBatch(batchA, sweep: false).outcomes[ObjectIdentifier(sink)]?.items ?? [] }
            replies.withLock { $0.append(out) }
            aDone.signal()
        }.start()
        pausing.paused.wait()
        let bDone = DispatchSemaphore(value: 0)
        let batchB = batch(senders.reversed())
        Thread {
            let out = engineB.engine.withLock { $0.runBatch(batchB, sweep: false).outcomes[ObjectIdentifier(sink)]?.items ?? [] }
            replies.withLock { $0.append(out) }
            bDone.signal()
        }.start()
        var waiting = false
        for _ in 0..<Self.maxLockChecks where !waiting {
            try watcher.transaction { tx in waiting = try tx.someoneWaitsForALock() }
        }
        #expect(waiting)
        pausing.resume.signal()
        aDone.wait()
        bDone.wait()
        let all = replies.withLock { $0 }.flatMap { $0 }
        #expect(all.count == 4 && all.allSatisfy { if case .reply(_, .ok, _) = $0 { true } else { false } })
        #expect(pausing.failures.withLock { $0 } == 0 && other.failures.withLock { $0 } == 0, "a batch failed (a deadlock?)")
    }

    /// The notification connection dies (a restart, a failover, an idle timeout somewhere): the
    /// store listens again from a thread of its own and asks for every queue to be re-read,
    /// since what was announced meanwhile is lost.
    @Test func aLostNotificationConnectionIsReopenedAndEverythingReRead() async throws {
        let server = try await PostgresCluster.shared.freshDatabase()
        let a = try PostgresQueueStore(server, logger: Logger(label: "a"))
        let b = try PostgresQueueStore(server, logger: Logger(label: "b"), relistenDelay: 10_000)
        defer {
            try? a.close()
            try? b.close()
        }
        let woken = AsyncStream<Void>.makeStream()
        b.onChange { woken.continuation.yield() }
        try a.transaction { tx in
            let q = try tx.insertQueue(
                recipientId: EntityID.random(SystemRandom()), senderId: EntityID.random(SystemRandom()), recipientKey: [UInt8](repeating: 1, count: 32))
            _ = try tx.insertMessage(queue: q, seq: 1, expiresAt: 1, body: [1])
        }
        for await _ in woken.stream where !b.takeChangedQueues().isEmpty { break }
        // Every LISTEN connection to this database but a's own is ended by the server.
        try a.transaction { tx in try tx.terminateOtherListeners() }
        for await _ in woken.stream where b.takeChangedQueues().everything { break }
        // And it listens again: a's next change reaches b.
        try a.transaction { tx in
            _ = try tx.insertQueue(
                recipientId: EntityID.random(SystemRandom()), senderId: EntityID.random(SystemRandom()), recipientKey: [UInt8](repeating: 2, count: 32))
        }
        for await _ in woken.stream where !b.takeChangedQueues().rows.isEmpty { break }
    }
}

extension QueueTransaction {
    func someoneWaitsForALock() throws -> Bool {
        guard let tx = self as? PostgresTransaction else { return false }
        return try tx.count("SELECT count(*) FROM pg_locks WHERE NOT granted") > 0
    }

    /// For the test above: what a restart does to b's listener.
    func terminateOtherListeners() throws {
        guard let tx = self as? PostgresTransaction else { return }
        try tx.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN belay_changes' AND pid <> pg_backend_pid() AND datname = current_database()"
        )
    }
}

/// Wraps a store: can stop its next transaction at the first message insert until told to go
/// on, and counts transactions that failed.
final class PausingStore: QueueStore {
    let inner: PostgresQueueStore
    let paused = DispatchSemaphore(value: 0)
    let resume = DispatchSemaphore(value: 0)
    let failures = Mutex(0)
    private let armed = Mutex(false)
    init(_ inner: PostgresQueueStore) { self.inner = inner }
    var location: String { inner.location }
    var shared: Bool { true }
    func pauseAtFirstInsert() { armed.withLock { $0 = true } }
    func nextGeneration(floor: UInt32) throws -> UInt32 { try inner.nextGeneration(floor: floor) }
    func durableState() throws -> DurableState { try inner.durableState() }
    func transaction(_ body: (any QueueTransaction) throws -> Void) throws {
        do {
            try inner.transaction { tx in
                let pause = armed.withLock { a in
                    defer { a = false }
                    return a
                }
                try body(pause ? Pausing(inner: tx, store: self) : tx)
            }
        } catch {
            failures.withLock { $0 += 1 }
            throw error
        }
    }
    func forgetDeleted() throws {}
    func isOutOfSpace(_ error: Error) -> Bool { false }
    func isRetryable(_ error: Error) -> Bool { inner.isRetryable(error) }
    func close() throws { try inner.close() }

    final class Pausing: ForwardingTransaction {
        let store: PausingStore
        var done = false
        init(inner: any QueueTransaction, store: PausingStore) {
            self.store = store
            super.init(inner)
        }
        override func insertMessage(queue: Int64, seq: UInt64, expiresAt: UInt64, body: [UInt8]) throws -> UInt64 {
            let stored = try inner.insertMessage(queue: queue, seq: seq, expiresAt: expiresAt, body: body)
            if !done {
                done = true
                store.paused.signal()
                store.resume.wait()
            }
            return stored
        }
    }
}

/// An engine handed to a thread of its own.
final class EngineOnAThread: Sendable {
    let engine: Mutex<QueueEngine>
    init(_ engine: sending QueueEngine) { self.engine = Mutex(engine) }
}
