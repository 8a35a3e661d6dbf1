import BelayClient
import BelayRelay
import BelaySodium
import BelayTestSupport
import BelayWire
import Foundation
import NIOCore
import NIOPosix
import Testing

/// Two real belayd frontends on one real PostgreSQL database, sharing the relay key: a message
/// sent through one is pushed to a subscriber on the other, a queue has one subscriber across
/// both, and timers fire once whichever frontend sweeps.
@Suite(.serialized, .timeLimit(.minutes(2))) struct FrontendTests {
    struct Pair {
        let a: Daemon
        let b: Daemon
        let clockFile: String
        let dirs: [String]
    }

    /// Starts frontend A, gives B A's key, starts B; both read the same test clock and sweep often.
    static func startPair(_ server: PostgresLocation) async throws -> Pair {
        let dirA = temporaryStateDir()
        let dirB = temporaryStateDir()
        let clockFile = dirA + ".clock"
        try "1800000000".write(toFile: clockFile, atomically: true, encoding: .utf8)
        let env = [
            "BELAYD_STORE": "postgres://\(server.user)@127.0.0.1:\(server.port)/\(server.database)",
            "BELAYD_TEST_CLOCK_FILE": clockFile, "BELAYD_SWEEP_INTERVAL": "20ms", "BELAYD_MAX_TIMER_BODIES_PER_QUEUE": "64",
        ]
        let a = try await Daemon.start(stateDir: dirA, environment: env)
        try FileManager.default.createDirectory(atPath: dirB, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileManager.default.copyItem(atPath: dirA + "/relay.key", toPath: dirB + "/relay.key")
        let b = try await Daemon.start(stateDir: dirB, environment: env)
        #expect(a.address.publicKey == b.address.publicKey)
        return Pair(a: a, b: b, clockFile: clockFile, dirs: [dirA, dirB, clockFile])
    }

    /// A queue made and secured through `daemon`, with its owner's connection and both keys.
    static func securedQueue(on daemon: Daemon, _ group: EventLoopGroup) async throws -> (
        RelayConnection, (recipient: EntityID, sender: EntityID), Ed25519.SigningKey, Ed25519.SigningKey
    ) {
        let rk = try Ed25519.SigningKey.generate()
        let sk = try Ed25519.SigningKey.generate()
        let owner = try await RelayConnection.connect(to: daemon.address, group: group)
        let q = try await owner.createQueue(recipientKey: rk)
        try await owner.secure(recipient: q.recipient, senderKey: sk.publicKey)
        return (owner, q, rk, sk)
    }

    @Test func aMessageSentThroughOneFrontendIsPushedByTheOther() async throws {
        let pair = try await Self.startPair(try await PostgresCluster.shared.freshDatabase())
        defer { for d in pair.dirs { try? FileManager.default.removeItem(atPath: d) } }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (owner, q, rk, sk) = try await Self.securedQueue(on: pair.a, group)

        // Subscribed through A first, then through B: A lets go (END), B gets the pushes.
        let onA = PushWaiter()
        let subA = try await RelayConnection.connect(to: pair.a.address, group: group, onPush: onA.handler)
        try await subA.authorise(.recipient, q.recipient, key: rk)
        try await subA.subscribe(q.recipient)
        let onB = PushWaiter()
        let subB = try await RelayConnection.connect(to: pair.b.address, group: group, onPush: onB.handler)
        try await subB.authorise(.recipient, q.recipient, key: rk)
        try await subB.subscribe(q.recipient)
        #expect(await onA.next() == .end(recipient: q.recipient))

        let sender = try await RelayConnection.connect(to: pair.a.address, group: group)
        try await sender.authorise(.sender, q.sender, key: sk)
        for i in 0..<20 { try await sender.send(to: q.sender, body: [UInt8(i)]) }
        var bodies: [[UInt8]] = []
        while bodies.count < 20 {
            guard case let .message(d) = await onB.next() else { continue }
            bodies.append(d.body)
            try await subB.acknowledge(q.recipient, seq: d.seq)
        }
        #expect(bodies == (0..<20).map { [UInt8($0)] }, "pushed through B in the order sent through A")
        #expect(onA.count == 1, "A pushed nothing after letting go")

        for c in [owner, subA, subB, sender] { await c.close() }
        #expect(await pair.a.terminate() == 0)
        #expect(await pair.b.terminate() == 0)
        try await group.shutdownGracefully()
    }

    @Test func eachTimerFiresOnceWhicheverFrontendSweeps() async throws {
        let pair = try await Self.startPair(try await PostgresCluster.shared.freshDatabase())
        defer { for d in pair.dirs { try? FileManager.default.removeItem(atPath: d) } }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (owner, q, rk, sk) = try await Self.securedQueue(on: pair.a, group)

        // Timers set through both frontends, each aimed at the queue with one body.
        let count = 40
        for (i, daemon) in zip(0..<count, [pair.a, pair.b].cycled(count)) {
            let c = try await RelayConnection.connect(to: daemon.address, group: group)
            try await c.authorise(.sender, q.sender, key: sk)
            let timerKey = try Ed25519.SigningKey.generate()
            _ = try await c.setTimer(
                .init(timerKey: timerKey.publicKey, delay: 60, entries: [.init(sender: q.sender, body: [UInt8(i)])]))
            await c.close()
        }
        let onB = PushWaiter()
        let sub = try await RelayConnection.connect(to: pair.b.address, group: group, onPush: onB.handler)
        try await sub.authorise(.recipient, q.recipient, key: rk)
        try await sub.subscribe(q.recipient)
        // Both frontends see the deadline pass and sweep every 20 ms.
        try "1800000100".write(toFile: pair.clockFile, atomically: true, encoding: .utf8)
        var seen: [UInt8] = []
        while seen.count < count {
            guard case let .message(d) = await onB.next() else { continue }
            seen.append(d.body[0])
            try await sub.acknowledge(q.recipient, seq: d.seq)
        }
        // A timer's release and its deletion commit together, so once every body has arrived
        // no timer is left to fire again; a reader finds nothing more.
        #expect(Set(seen).count == count, "a timer fired twice: \(seen.sorted())")
        await sub.close()
        let reader = try await RelayConnection.connect(to: pair.a.address, group: group)
        try await reader.authorise(.recipient, q.recipient, key: rk)
        #expect(try await reader.getMessage(q.recipient) == nil)
        for c in [owner, reader] { await c.close() }
        #expect(await pair.a.terminate() == 0)
        #expect(await pair.b.terminate() == 0)
        try await group.shutdownGracefully()
    }
}

extension Array {
    /// The elements repeated in turn until there are `count`.
    func cycled(_ count: Int) -> [Element] { (0..<count).map { self[$0 % self.count] } }
}

/// Pushes as they arrive, awaited one at a time.
final class PushWaiter: Sendable {
    private let state = Locked<(items: [RelayReply], taken: Int, waiter: CheckedContinuation<RelayReply, Never>?)>(([], 0, nil))

    var handler: @Sendable (RelayReply) -> Void { { [self] in self.append($0) } }

    var count: Int { state.withLock { $0.items.count } }

    private func append(_ reply: RelayReply) {
        let resume: CheckedContinuation<RelayReply, Never>? = state.withLock { s in
            s.items.append(reply)
            guard let w = s.waiter else { return nil }
            s.waiter = nil
            s.taken += 1
            return w
        }
        resume?.resume(returning: reply)
    }

    func next() async -> RelayReply {
        await withCheckedContinuation { c in
            let ready: RelayReply? = state.withLock { s in
                if s.taken < s.items.count {
                    s.taken += 1
                    return s.items[s.taken - 1]
                }
                s.waiter = c
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }
}
