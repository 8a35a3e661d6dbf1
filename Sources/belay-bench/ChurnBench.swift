import BelayClient
import BelayWire
import Foundation
import NIOCore
import NIOPosix

/// `--churn N`: does the relay give back the memory of connections that are gone? Its RSS is
/// read at the start, then after N plain TCP connect-and-close cycles, N full handshakes and N
/// connections that send garbage. A relay that keeps something per connection grows with N.
enum ChurnBench {
    /// Cycles in flight at once: enough to keep both cores busy, far below the connection limit.
    static let inFlight = 64
    /// What a garbage connection writes before waiting for the relay to hang up.
    static let garbageBytes = 4 * 1024
    /// How long a garbage connection waits for the relay to close it before closing itself.
    static let garbageHangUpWait: TimeAmount = .seconds(2)
    /// Bounds one TCP connect, and one handshake, on loopback.
    static let connectTimeout: TimeAmount = .seconds(10)
    /// Every cycle comes from 127.0.0.1, and the question is what a connection leaves behind, not
    /// how admission treats one busy source: so the per-source handshake rate and cap are lifted
    /// above what the cycles need. A relay without these settings ignores them.
    static let relayEnvironment = [
        "BELAYD_HANDSHAKE_RATE_PER_SOURCE": "1000000",
        "BELAYD_HANDSHAKE_BURST_PER_SOURCE": "1000000",
        "BELAYD_MAX_HANDSHAKING_PER_SOURCE": "\(2 * inFlight)",
    ]

    /// How one cycle ended.
    enum Outcome: Sendable {
        case done
        /// A garbage connection the relay left open until we closed it.
        case notHungUp
        case failed(String)
    }

    struct Phase {
        var rss: Double
        var seconds: Double
        var failed = 0
        var notHungUp = 0
        var firstError: String?
    }

    static func run(cycles: Int, relay: RelayProcess, group: EventLoopGroup) async {
        let target: SocketAddress
        do {
            target = try SocketAddress(ipAddress: relay.address.host, port: relay.address.port)
        } catch {
            return complain("cannot use the relay address \(relay.address): \(error)")
        }
        _ = await relay.settle(group: group)
        let start = relay.currentRSSMiB()
        print(String(format: "churn %d: relay RSS at start %.1f MiB", cycles, start))
        let pool = GarbagePool()
        let address = relay.address
        let tcp = await phase("TCP connect-and-close", cycles, relay, group, since: start) { await tcpCycle(target, group) }
        let handshakes = await phase("handshake-and-close", cycles, relay, group, since: tcp.rss) { await handshakeCycle(address, group) }
        let garbage = await phase("garbage (4 KiB) connections", cycles, relay, group, since: handshakes.rss) {
            await garbageCycle(target, group, pool)
        }
        let json = JSON.object([
            ("churn", .integer(cycles)),
            ("rss_start_mib", .number(start)),
            ("rss_after_tcp_mib", .number(tcp.rss)),
            ("rss_after_handshakes_mib", .number(handshakes.rss)),
            ("rss_after_garbage_mib", .number(garbage.rss)),
            ("relay_peak_rss_mib", .number(relay.peakRSSMiB())),
            ("tcp_failed", .integer(tcp.failed)),
            ("handshakes_failed", .integer(handshakes.failed)),
            ("garbage_failed", .integer(garbage.failed)),
            ("garbage_not_hung_up", .integer(garbage.notHungUp)),
            (
                "seconds",
                .object([
                    ("tcp", .number(tcp.seconds)), ("handshakes", .number(handshakes.seconds)),
                    ("garbage", .number(garbage.seconds)),
                ])
            ),
            ("relay_alive", .bool(relay.isRunning)),
        ])
        print(json.text)
    }

    /// Runs `count` cycles, `inFlight` at a time, settles the relay, reads its RSS and prints a line.
    private static func phase(
        _ name: String, _ count: Int, _ relay: RelayProcess, _ group: EventLoopGroup, since before: Double,
        _ cycle: @escaping @Sendable () async -> Outcome
    ) async -> Phase {
        let started = monotonicNanos()
        var result = await withTaskGroup(of: Outcome.self) { tasks in
            var phase = Phase(rss: 0, seconds: 0)
            var launched = 0
            while launched < min(count, inFlight) {
                tasks.addTask(operation: cycle)
                launched += 1
            }
            while let outcome = await tasks.next() {
                switch outcome {
                case .done: break
                case .notHungUp: phase.notHungUp += 1
                case let .failed(why):
                    phase.failed += 1
                    if phase.firstError == nil { phase.firstError = why }
                }
                if launched < count {
                    tasks.addTask(operation: cycle)
                    launched += 1
                }
            }
            return phase
        }
        result.seconds = Double(monotonicNanos() - started) / 1e9
        let settled = await relay.settle(group: group)
        result.rss = relay.currentRSSMiB()
        var line = "churn \(count): after \(name)"
        line += String(format: " (%.1f s): relay RSS %.1f MiB (%+.1f MiB)", result.seconds, result.rss, result.rss - before)
        if result.failed > 0 { line += ", \(result.failed) failed (first: \(result.firstError ?? "?"))" }
        if result.notHungUp > 0 { line += ", \(result.notHungUp) not closed by the relay within \(garbageHangUpWait.nanoseconds / 1_000_000_000) s" }
        if !settled { line += ", relay did not settle" }
        print(line)
        return result
    }

    private static func tcpCycle(_ target: SocketAddress, _ group: EventLoopGroup) async -> Outcome {
        do {
            let channel = try await ClientBootstrap(group: group).connectTimeout(connectTimeout).connect(to: target).get()
            try? await channel.close()
            return .done
        } catch {
            return .failed("\(error)")
        }
    }

    private static func handshakeCycle(_ address: RelayAddress, _ group: EventLoopGroup) async -> Outcome {
        do {
            let connection = try await RelayConnection.connect(to: address, group: group, connectTimeout: connectTimeout) { _ in }
            await connection.close()
            return .done
        } catch {
            return .failed("\(error)")
        }
    }

    private static func garbageCycle(_ target: SocketAddress, _ group: EventLoopGroup, _ pool: GarbagePool) async -> Outcome {
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: group).connectTimeout(connectTimeout).connect(to: target).get()
        } catch {
            return .failed("\(error)")
        }
        // The write fails if the relay resets the connection first; either way it has seen garbage.
        channel.writeAndFlush(pool.slice(garbageBytes), promise: nil)
        do {
            try await channel.closeFuture.limited(to: garbageHangUpWait, "waiting for the relay to hang up").get()
            return .done
        } catch {
            try? await channel.close()
            return .notHungUp
        }
    }
}
