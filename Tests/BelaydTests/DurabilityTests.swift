import BelayClient
import BelayRelay
import BelaySodium
import BelayTestSupport
import BelayWire
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// kill -9 while a client streams sends and a subscriber acknowledges: after a restart every
/// acknowledged send is delivered, nothing acknowledged-and-deleted comes back, and SQLite's
/// integrity check passes. Repeated with the kill at several points.
@Suite(.serialized) struct DurabilityTests {
    struct Ledger {
        var sent = Set<UInt64>()  // OK received for the SEND
        var deleted = Set<UInt64>()  // OK received for the ACK
        var ackSent = Set<UInt64>()  // ACK sent; without its OK the outcome is unknown
    }

    static func body(_ n: UInt64) -> [UInt8] {
        withUnsafeBytes(of: n.bigEndian) { Array($0) } + [UInt8](repeating: 0xab, count: 248)
    }

    static func number(_ body: [UInt8]) -> UInt64 {
        body.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// With PostgreSQL, the frontend is killed and the database server goes on.
    @Test(arguments: ["sqlite", "postgres"]) func acknowledgedMeansDurableAcrossKill9(store: String) async throws {
        var environment: [String: String] = [:]
        if store == "postgres" {
            let server = try await PostgresCluster.shared.freshDatabase()
            environment["BELAYD_STORE"] = "postgres://\(server.user)@127.0.0.1:\(server.port)/\(server.database)"
        }
        let stateDir = temporaryStateDir()
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let ledger = Locked(Ledger())
        let rk = try Ed25519.SigningKey.generate()
        let sk = try Ed25519.SigningKey.generate()
        var queue: (recipient: EntityID, sender: EntityID)?
        var next: UInt64 = 0

        for killAfter in [1, 150, 700] {
            let daemon = try await Daemon.start(stateDir: stateDir, environment: environment)
            let owner = try await RelayConnection.connect(to: daemon.address, group: group, onPush: { _ in })
            if queue == nil {
                queue = try await owner.createQueue(recipientKey: rk)
                try await owner.secure(recipient: queue!.recipient, senderKey: sk.publicKey)
            }
            let q = queue!
            // The subscriber acknowledges everything pushed to it while the sender streams.
            let subscriberBox = Locked<RelayConnection?>(nil)
            let subscriber = try await RelayConnection.connect(to: daemon.address, group: group) { push in
                guard case let .message(d) = push, let c = subscriberBox.withLock({ $0 }) else { return }
                ledger.withLock { _ = $0.ackSent.insert(Self.number(d.body)) }
                c.request(.ack(recipient: q.recipient, seq: d.seq)).whenSuccess { reply in
                    if reply == .ok { ledger.withLock { _ = $0.deleted.insert(Self.number(d.body)) } }
                }
            }
            subscriberBox.withLock { $0 = subscriber }
            try await subscriber.authorise(.recipient, q.recipient, key: rk)
            try await subscriber.subscribe(q.recipient)

            let sender = try await RelayConnection.connect(to: daemon.address, group: group)
            try await sender.authorise(.sender, q.sender, key: sk)
            let acked = Locked(0)
            let killed = Locked(false)
            // Stream with 32 sends in flight until the kill lands mid-stream.
            let base = next
            await withTaskGroup(of: Void.self) { tasks in
                for lane in 0..<32 {
                    let start = base + UInt64(lane)
                    tasks.addTask {
                        var n = start
                        while true {
                            guard let reply = try? await sender.request(.send(sender: q.sender, body: Self.body(n))).get() else { return }
                            if reply == .ok {
                                ledger.withLock { _ = $0.sent.insert(n) }
                                let count = acked.withLock {
                                    $0 += 1
                                    return $0
                                }
                                if count == killAfter,
                                    killed.withLock({
                                        let was = $0
                                        $0 = true
                                        return !was
                                    })
                                {
                                    await daemon.kill9()
                                }
                            }
                            n += 32
                        }
                    }
                }
            }
            next += 1_000_000
            await sender.close()
            await subscriber.close()
            await owner.close()
            #expect(killed.withLock { $0 })
        }

        // Restart once more and read everything that is stored.
        let daemon = try await Daemon.start(stateDir: stateDir, environment: environment)
        let reader = try await RelayConnection.connect(to: daemon.address, group: group)
        try await reader.authorise(.recipient, queue!.recipient, key: rk)
        var stored = Set<UInt64>()
        while let m = try await reader.getMessage(queue!.recipient) {
            let n = Self.number(m.body)
            #expect(!stored.contains(n), "message \(n) stored twice")
            stored.insert(n)
            try await reader.acknowledge(queue!.recipient, seq: m.seq)
        }
        let final = ledger.withLock { $0 }
        // Lost: acknowledged to the sender, not stored, and never even asked to be deleted.
        let lost = final.sent.subtracting(stored).subtracting(final.ackSent)
        let resurrected = final.deleted.intersection(stored)
        #expect(final.sent.count >= 1 + 150 + 700)
        #expect(final.deleted.count > 0)
        #expect(final.deleted.isSubset(of: final.ackSent))
        #expect(lost.isEmpty, "acknowledged sends lost: \(lost.count)")
        #expect(resurrected.isEmpty, "acknowledged-and-deleted messages came back: \(resurrected.count)")
        await reader.close()
        #expect(await daemon.terminate() == 0)
        if store == "sqlite" {
            let database = try RelayStore(path: stateDir + "/relay.db")
            #expect(try database.integrityCheck() == "ok")
            try database.close()
        }
        try await group.shutdownGracefully()
    }
}

/// A lock around a value that closures can capture (Mutex itself cannot be copied into them).
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
