@_spi(Bench) import BelayClient
import BelaySodium
import BelayWire
import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// The group figure: one member sends to a group of `members` others through the whole client
/// path (one ratchet message each, sealed, stored in the outbox in one transaction, handed to the
/// relay), against a real belayd. Reported: member copies per second at the sender, and the time
/// from the send until the last member's relay connection has its copy. Each member's inbox is
/// watched at the relay (subscribed and acknowledged), not by a full client: opening one copy is
/// the client figure above.
enum GroupFanOutBench {
    /// Every client here connects from 127.0.0.1; the per-source limits are for strangers.
    static let relayEnvironment = [
        "BELAYD_HANDSHAKE_RATE_PER_SOURCE": "1000000", "BELAYD_HANDSHAKE_BURST_PER_SOURCE": "1000000",
        "BELAYD_CREATION_RATE_PER_SOURCE": "1000000", "BELAYD_CREATION_BURST_PER_SOURCE": "1000000",
    ]

    struct Figure {
        var copiesPerSecond: Double
        var lastMemberMs: [Double]
    }

    static func run(binary: String, members: Int, rounds: Int, size: Int, parallelism: Int) async throws -> Figure {
        let stateDir = FileManager.default.temporaryDirectory.appendingPathComponent("belay-bench-group-\(UUID().uuidString)").path
        let homes = FileManager.default.temporaryDirectory.appendingPathComponent("belay-bench-homes-\(UUID().uuidString)").path
        defer {
            try? FileManager.default.removeItem(atPath: stateDir)
            try? FileManager.default.removeItem(atPath: homes)
        }
        let relay = try RelayProcess(binary: binary, stateDir: stateDir, environment: relayEnvironment)
        defer { relay.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        func agent(_ name: String) throws -> Agent {
            let home = homes + "/" + name
            _ = try Agent.initialise(home: home, passphrase: nil)
            return try Agent(home: home, passphrase: { nil }, group: group)
        }
        let sender = try agent("sender")
        sender.fanOutParallelism = parallelism
        var others: [Agent] = []
        for i in 0..<members {
            let m = try agent("m\(i)")
            let invitation = try await sender.invite(relay: relay.address, name: "m\(i)", lifetime: nil)
            _ = try await m.accept(invitation, name: "sender", relay: nil)
            others.append(m)
        }
        _ = try await sender.read()
        try await sender.createGroup("bench", members: (0..<members).map { "m\($0)" })
        for m in others {
            _ = try await m.read()
            try await m.joinGroup("bench")
        }
        _ = try await sender.read()  // confirms every join

        // Each member's inbox, watched at the relay under the member's own recipient key.
        let arrived = Mutex<(round: Int, count: Int, last: UInt64)>((-1, 0, 0))
        var watchers: [RelayConnection] = []
        for m in others {
            guard let tap = try m.inboxTaps().first else { continue }
            let box = Mutex<RelayConnection?>(nil)
            let c = try await RelayConnection.connect(to: tap.relay, group: group) { push in
                guard case let .message(d) = push else { return }
                let now = DispatchTime.now().uptimeNanoseconds
                arrived.withLock { s in
                    s.count += 1
                    s.last = now
                }
                if let c = box.withLock({ $0 }) { _ = c.request(.ack(recipient: tap.recipientId, seq: d.seq)) }
            }
            box.withLock { $0 = c }
            try await c.authorise(.recipient, tap.recipientId, key: tap.key)
            while let d = try await c.getMessage(tap.recipientId) { try await c.acknowledge(tap.recipientId, seq: d.seq) }
            try await c.subscribe(tap.recipientId)
            watchers.append(c)
        }
        let text = String(repeating: "a", count: size)
        var sendSeconds = 0.0
        var last: [Double] = []
        for round in 0..<rounds {
            arrived.withLock { $0 = (round, 0, 0) }
            let start = DispatchTime.now().uptimeNanoseconds
            let outcome = try await sender.groupSend("bench", text: text)
            precondition(outcome.sent.count == members, "the benchmark's group message did not reach every member's relay")
            sendSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            // The relay pushes each copy as it stores it; wait for the last on the event loop's clock.
            while arrived.withLock({ $0.count }) < members { try await Task.sleep(nanoseconds: 200_000) }
            last.append(Double(arrived.withLock { $0.last } - start) / 1e6)
        }
        for c in watchers { await c.close() }
        try await group.shutdownGracefully()
        return Figure(copiesPerSecond: Double(members * rounds) / sendSeconds, lastMemberMs: last.sorted())
    }
}
