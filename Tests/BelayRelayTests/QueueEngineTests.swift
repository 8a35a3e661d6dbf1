import BelaySodium
import BelayTestSupport
import BelayWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import BelayRelay

/// The queue semantics driven directly, without a thread, a socket or (with the memory store) a
/// file: commands in, outcomes out. Each test runs on every store the relay supports here.
@Suite struct QueueEngineTests {
    /// A connection as the engine sees it: outcomes are returned by `runBatch`, not delivered.
    /// Its loop is a real one (the shared singleton), which any thread may touch: an
    /// `EmbeddedEventLoop` here was touched from the test's other threads.
    final class Sink: CoreSink {
        let eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()
        func receive(_ outcomes: [CoreOutcome]) {}
    }

    static let stores: [String] = ["memory", "sqlite", "postgres"]

    static func makeStore(_ kind: String) async throws -> any QueueStore {
        switch kind {
        case "memory": return MemoryQueueStore()
        case "postgres": return try PostgresQueueStore(try await PostgresCluster.shared.freshDatabase(), logger: Logger(label: "pg-test"))
        default:
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("belay-engine-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            return try RelayStore(path: dir + "/relay.db")
        }
    }

    struct Harness {
        let engine: QueueEngine
        let clock = ManualClock()
        var nextRequest: UInt32 = 0

        init(_ kind: String, _ configure: (inout RelayConfiguration) -> Void = { _ in }) async throws {
            var config = RelayConfiguration()
            config.diskReserveBytes = 0
            configure(&config)
            engine = try QueueEngine(store: try await makeStore(kind), limits: CoreLimits(config), clock: clock, logger: Logger(label: "engine-test"))
        }

        /// Runs one batch and returns each sink's outcomes.
        mutating func run(_ commands: [(Sink, CoreCommand)], sweep: Bool = false) -> [ObjectIdentifier: [CoreOutcome]] {
            var requests: [CoreRequest] = []
            for (sink, command) in commands {
                nextRequest += 1
                requests.append(CoreRequest(sink: sink, requestId: nextRequest, command: command))
            }
            return engine.runBatch(requests, sweep: sweep).outcomes.mapValues(\.items)
        }

        mutating func one(_ sink: Sink, _ command: CoreCommand) -> RelayReply? {
            guard case let .reply(_, reply, _) = run([(sink, command)])[ObjectIdentifier(sink)]?.first else { return nil }
            return reply
        }
    }

    static let recipientKey = [UInt8](repeating: 1, count: 32)
    static let senderKey = [UInt8](repeating: 2, count: 32)

    /// A queue secured with `senderKey`: its recipient and sender ids.
    static func securedQueue(_ h: inout Harness, _ sink: Sink) throws -> (EntityID, EntityID) {
        guard case let .ids(r, s) = h.one(sink, .create(recipientKey: recipientKey)) else { throw Failure("NEW failed") }
        #expect(h.one(sink, .secure(recipient: r, proven: recipientKey, senderKey: senderKey)) == .ok)
        return (r, s)
    }

    struct Failure: Error {
        var text: String
        init(_ text: String) { self.text = text }
    }

    @Test(arguments: stores) func aSubscriberIsPushedWhatIsSentAndAnAckDeletesIt(kind: String) async throws {
        var h = try await Harness(kind)
        let (alice, bob) = (Sink(), Sink())
        let (r, s) = try Self.securedQueue(&h, alice)
        #expect(h.one(alice, .subscribe(recipient: r, proven: Self.recipientKey)) == .ok)
        let out = h.run([(bob, .send(sender: s, proven: Self.senderKey, body: [7, 7]))])
        guard case .reply(_, .ok, _) = out[ObjectIdentifier(bob)]?.first,
            case let .push(.message(d)) = out[ObjectIdentifier(alice)]?.first
        else { throw Failure("expected OK to the sender and a push to the subscriber: \(out)") }
        #expect(d.body == [7, 7] && d.recipient == r)
        #expect(h.one(alice, .ack(recipient: r, proven: Self.recipientKey, seq: d.seq)) == .ok)
        #expect(h.one(alice, .ack(recipient: r, proven: Self.recipientKey, seq: d.seq)) == .error(.noMessage))
        #expect(h.one(alice, .get(recipient: r, proven: Self.recipientKey)) == .noMessage)
    }

    @Test(arguments: stores) func aWrongKeyIsRefusedAndChangesNothing(kind: String) async throws {
        var h = try await Harness(kind)
        let sink = Sink()
        let (r, s) = try Self.securedQueue(&h, sink)
        let wrong = [UInt8](repeating: 9, count: 32)
        #expect(h.one(sink, .send(sender: s, proven: wrong, body: [1])) == .error(.auth))
        #expect(h.one(sink, .send(sender: s, proven: nil, body: [1])) == .error(.auth))
        #expect(h.one(sink, .get(recipient: r, proven: wrong)) == .error(.auth))
        #expect(h.one(sink, .delete(recipient: r, proven: wrong)) == .error(.auth))
        #expect(h.one(sink, .get(recipient: r, proven: Self.recipientKey)) == .noMessage)
    }

    @Test(arguments: stores) func aFullQueueRefusesWithQuota(kind: String) async throws {
        var h = try await Harness(kind) { $0.maxQueueMessages = 2 }
        let sink = Sink()
        let (_, s) = try Self.securedQueue(&h, sink)
        #expect(h.one(sink, .send(sender: s, proven: Self.senderKey, body: [1])) == .ok)
        #expect(h.one(sink, .send(sender: s, proven: Self.senderKey, body: [2])) == .ok)
        #expect(h.one(sink, .send(sender: s, proven: Self.senderKey, body: [3])) == .error(.quota))
    }

    @Test(arguments: stores) func aTimerReleasesItsBodyOnceWhenDueAndCancelledOneNever(kind: String) async throws {
        var h = try await Harness(kind)
        let sink = Sink()
        let (r, s) = try Self.securedQueue(&h, sink)
        let set = { (key: UInt8) in
            RelayCommand.TimerSet(timerKey: [UInt8](repeating: key, count: 32), delay: 60, entries: [.init(sender: s, body: [key])])
        }
        guard case .timer = h.one(sink, .timerSet(set(5), senderProofs: [Self.senderKey], replacesProof: nil)),
            case let .timer(cancelled, _) = h.one(sink, .timerSet(set(6), senderProofs: [Self.senderKey], replacesProof: nil))
        else { throw Failure("TSET failed") }
        #expect(h.one(sink, .timerCancel(timer: cancelled, proven: [UInt8](repeating: 6, count: 32))) == .ok)
        _ = h.run([], sweep: true)
        #expect(h.one(sink, .get(recipient: r, proven: Self.recipientKey)) == .noMessage)
        h.clock.advance(by: 60)
        _ = h.run([], sweep: true)
        _ = h.run([], sweep: true)
        guard case let .message(d) = h.one(sink, .get(recipient: r, proven: Self.recipientKey)) else { throw Failure("not released") }
        #expect(d.body == [5])
        #expect(h.one(sink, .ack(recipient: r, proven: Self.recipientKey, seq: d.seq)) == .ok)
        #expect(h.one(sink, .get(recipient: r, proven: Self.recipientKey)) == .noMessage)
        #expect(h.engine.timerCount == 0 && h.engine.storedBytes == 0)
    }

    @Test(arguments: stores) func messagesExpireAfterTheirTTL(kind: String) async throws {
        var h = try await Harness(kind) { $0.messageTTLSeconds = 100 }
        let sink = Sink()
        let (r, s) = try Self.securedQueue(&h, sink)
        #expect(h.one(sink, .send(sender: s, proven: Self.senderKey, body: [1])) == .ok)
        h.clock.advance(by: 99)
        _ = h.run([], sweep: true)
        #expect(h.one(sink, .get(recipient: r, proven: Self.recipientKey)) != .noMessage)
        h.clock.advance(by: 1)
        _ = h.run([], sweep: true)
        #expect(h.one(sink, .get(recipient: r, proven: Self.recipientKey)) == .noMessage)
    }

    /// A store that fails in the middle of a batch: everything in the batch is refused, nothing
    /// of it stays, and the counters still match the store afterwards.
    /// A member token is looked up and spent in the batch's transaction, on every store: up to
    /// its quota, then TOKEN; an unknown hash is TOKEN; labels are unique; a revoked token is gone.
    @Test(arguments: stores) func aMemberTokenIsSpentUpToItsQuotaInTheBatch(kind: String) async throws {
        var h = try await Harness(kind)
        let admin = MemberTokenAdmin(store: h.engine.store)
        let (_, token) = try admin.add(label: "m", quota: 2)
        let check = MemberTokenCheck(hash: try MemberToken.hash(Array(token.utf8)), refusal: .error(.token))
        let stranger = MemberTokenCheck(hash: [UInt8](repeating: 7, count: 32), refusal: .workRequired(bits: 9))
        let sink = Sink()
        for _ in 0..<2 {
            guard case .ids = h.one(sink, .create(recipientKey: Self.recipientKey, memberToken: check)) else { throw Failure("NEW") }
        }
        #expect(h.one(sink, .create(recipientKey: Self.recipientKey, memberToken: check)) == .error(.token))
        // A refused token gets the answer the connection chose: TOKEN, or the work it would take.
        #expect(h.one(sink, .create(recipientKey: Self.recipientKey, memberToken: stranger)) == .workRequired(bits: 9))
        #expect(try admin.list().map(\.used) == [2])
        #expect(throws: MemberTokenError.labelTaken("m")) { try admin.add(label: "m", quota: 1) }
        #expect(try admin.revoke("m").used == 2)
        #expect(throws: MemberTokenError.unknown("m")) { try admin.revoke("m") }
        #expect(try admin.list().isEmpty && h.engine.byRecipient.count == 2)
    }

    @Test func aFailedTransactionLeavesNothingAndTheCountersMatch() throws {
        let store = FailingStore(MemoryQueueStore())
        var config = RelayConfiguration()
        config.diskReserveBytes = 0
        let engine = try QueueEngine(store: store, limits: CoreLimits(config), clock: ManualClock(), logger: Logger(label: "t"))
        let sink = Sink()
        func run(_ commands: [CoreCommand]) -> [CoreOutcome] {
            let requests = commands.enumerated().map { CoreRequest(sink: sink, requestId: UInt32($0.offset + 1), command: $0.element) }
            return engine.runBatch(requests, sweep: false).outcomes[ObjectIdentifier(sink)]?.items ?? []
        }
        guard case let .reply(_, .ids(r, s), _) = run([.create(recipientKey: Self.recipientKey)]).first else { throw Failure("NEW") }
        #expect(run([.send(sender: s, proven: nil, body: [1])]).count == 1)
        store.failInserts.withLock { $0 = true }
        let refused = run([.send(sender: s, proven: nil, body: [2]), .ack(recipient: r, proven: Self.recipientKey, seq: 0)])
        #expect(refused.allSatisfy { if case .reply(_, .error(.unavailable), _) = $0 { true } else { false } })
        store.failInserts.withLock { $0 = false }
        #expect(engine.byRow.values.first?.count == 1)
        #expect(engine.storedBytes == 1)
        guard case let .reply(_, .message(d), _) = run([.get(recipient: r, proven: Self.recipientKey)]).first else { throw Failure("GET") }
        #expect(d.body == [1])
    }

    /// SENDs of a batch that rolled back were not executed: the queue's rate is given back.
    @Test func aSendThatRolledBackGivesItsRateBack() throws {
        let store = FailingStore(MemoryQueueStore())
        var config = RelayConfiguration()
        config.diskReserveBytes = 0
        config.sendRatePerQueue = 1
        config.sendBurstPerQueue = 2
        let engine = try QueueEngine(store: store, limits: CoreLimits(config), clock: ManualClock(), logger: Logger(label: "t"))
        let sink = Sink()
        func run(_ commands: [CoreCommand]) -> [RelayReply] {
            let requests = commands.enumerated().map { CoreRequest(sink: sink, requestId: UInt32($0.offset + 1), command: $0.element) }
            return (engine.runBatch(requests, sweep: false).outcomes[ObjectIdentifier(sink)]?.items ?? []).compactMap {
                if case let .reply(_, reply, _) = $0 { reply } else { nil }
            }
        }
        guard case let .ids(_, s) = run([.create(recipientKey: Self.recipientKey)]).first else { throw Failure("NEW") }
        store.failInserts.withLock { $0 = true }
        #expect(run([.send(sender: s, proven: nil, body: [1]), .send(sender: s, proven: nil, body: [2])]) == [.error(.unavailable), .error(.unavailable)])
        store.failInserts.withLock { $0 = false }
        let send = CoreCommand.send(sender: s, proven: nil, body: [3])
        #expect(run([send, send, send]) == [.ok, .ok, .error(.rate)])
    }
}

/// Wraps a store and throws from `insertMessage` while told to.
final class FailingStore: QueueStore {
    let inner: MemoryQueueStore
    let failInserts = Mutex(false)
    init(_ inner: MemoryQueueStore) { self.inner = inner }
    var location: String { "failing" }
    func nextGeneration(floor: UInt32) throws -> UInt32 { try inner.nextGeneration(floor: floor) }
    func durableState() throws -> DurableState { try inner.durableState() }
    func transaction(_ body: (any QueueTransaction) throws -> Void) throws {
        let fail = failInserts.withLock { $0 }
        try inner.transaction { tx in try body(fail ? Failing(tx) : tx) }
    }
    func forgetDeleted() throws {}
    func isOutOfSpace(_ error: Error) -> Bool { false }
    func close() throws {}

    final class Failing: ForwardingTransaction {
        struct Injected: Error {}
        override func insertMessage(queue: Int64, seq: UInt64, expiresAt: UInt64, body: [UInt8]) throws -> UInt64 { throw Injected() }
    }
}
