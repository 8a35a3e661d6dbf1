import BelayClient
import BelayWire
import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// `--abuse`: a legitimate client's PING latency on 127.0.0.1, first alone, then during each of
/// four attacks from 127.0.0.3 (each attack's type says what it does). An attack that succeeds,
/// say by locking the client out, is a result to print, not a failure of the run: every wait is
/// bounded and the run always ends with its JSON line.
enum AbuseBench {
    /// The relay's connection limit for this run (BELAYD_MAX_CONNECTIONS): the default, stated
    /// so that the slowloris knows how far to go.
    static let maxConnections = 1_024
    static var relayEnvironment: [String: String] { ["BELAYD_MAX_CONNECTIONS": "\(maxConnections)"] }
    static let pings = 2_000
    /// From one PING to the next: 2,000 of them span 10 s, longer than the relay's default
    /// handshake timeout, so a slowloris measurement sees the relay drop the half-open
    /// connections and the attacker take the slots back, and every measurement samples seconds
    /// of an attack rather than its first tenth of a second.
    static let pingInterval: TimeAmount = .milliseconds(5)
    /// Bounds the new-connection probes of one measurement if its series never returns.
    static let probeLimit: Duration = .seconds(60)
    /// PINGs before the baseline, not counted, so that it does not include the first-use costs.
    static let warmUpPings = 200
    /// One thread: the attacker shares the machine's two cores with the relay and the client, and
    /// an attacker that took them all would measure the machine, not the relay.
    static let attackerThreads = 1

    struct Measurement {
        var name: String
        var latency: LatencySummary
        var fresh: LegitimateClient.NewConnections
        var rss: Double
        var cpuPercent: Double
        var attacker: [(String, Int)] = []
        var note: String?
    }

    /// The attacker's thread runs at the lowest priority (nice 19). It stands for an attacker on
    /// another machine: what it spends making its attack must not be charged to the relay by
    /// taking the CPU from the client being measured; it still gets every cycle nobody else wants.
    /// (On Linux the nice value is per thread, and `who = 0` names the calling thread.)
    static let attackerNice: Int32 = 19

    static func run(relay: RelayProcess, group: EventLoopGroup) async {
        let attackers = MultiThreadedEventLoopGroup(numberOfThreads: attackerThreads)
        for loop in attackers.makeIterator() {
            try? await loop.submit { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, attackerNice) }.get()
        }
        await measureAll(relay: relay, group: group, attackers: attackers)
        try? await attackers.shutdownGracefully()
    }

    private static func measureAll(relay: RelayProcess, group: EventLoopGroup, attackers: EventLoopGroup) async {
        let address = relay.address
        let target: SocketAddress
        let opening: [UInt8]
        var legit: RelayConnection
        do {
            target = try SocketAddress(ipAddress: address.host, port: address.port)
            opening = try RecordedOpening.make(relayKey: address.publicKey)
            _ = await relay.settle(group: group)
            legit = try await LegitimateClient.connect(to: address, group: group)
        } catch {
            complain("cannot start the abuse measurement: \(error)")
            return print(JSON.object([("abuse", .bool(true)), ("error", .string("\(error)"))]).text)
        }
        print("abuse: relay limit \(maxConnections) connections; client on 127.0.0.1, attacker on \(AttackCrew.source); \(pings) PINGs a measurement")
        _ = await LegitimateClient.pingSeries(on: legit, count: warmUpPings)
        let baseline = await measure(nil, on: legit, relay: relay, group: group)
        report(baseline, baseline: baseline)
        var results = [baseline]
        let attacks: [@Sendable (AttackCrew) -> any Attack] = [
            { Slowloris(crew: $0, relayKey: address.publicKey, opening: opening, relayLimit: maxConnections) },
            { HandshakeFlood(crew: $0, opening: opening) },
            { GarbageFlood(crew: $0) },
            { ErrorFlood(crew: $0, relayKey: address.publicKey) },
        ]
        for make in attacks {
            var note: String?
            if !legit.channel.isActive {
                await legit.close()
                do {
                    legit = try await LegitimateClient.connect(to: address, group: group)
                    note = "the client's connection was closed during the previous attack; it reconnected"
                } catch {
                    note = "the client's connection was closed during the previous attack and it could not reconnect: \(error)"
                }
            }
            let crew: AttackCrew
            do {
                crew = try AttackCrew(group: attackers, relay: target)
            } catch {
                complain("cannot set up the attacker: \(error)")
                break
            }
            var result = await measure(make(crew), on: legit, relay: relay, group: group)
            result.note = note
            report(result, baseline: baseline)
            results.append(result)
        }
        await legit.close()
        var fields: [(String, JSON)] = [("abuse", .bool(true)), ("max_connections", .integer(maxConnections)), ("pings", .integer(pings))]
        for r in results { fields.append((r.name, json(r, baseline: baseline))) }
        fields += [("relay_peak_rss_mib", .number(relay.peakRSSMiB())), ("relay_alive", .bool(relay.isRunning))]
        print(JSON.object(fields).text)
    }

    /// One measurement: the attack brought to full strength, then the PING series on the
    /// established connection while new connections are tried alongside, then the relay's RSS
    /// and CPU; then the attack stopped and the relay given time to recover before the next.
    private static func measure(
        _ attack: (any Attack)?, on connection: RelayConnection, relay: RelayProcess,
        group: EventLoopGroup
    ) async -> Measurement {
        await attack?.start()
        let cpuBefore = relay.cpuSeconds()
        let started = monotonicNanos()
        let probing = StopSignal(limit: probeLimit)
        async let newConnections = LegitimateClient.tryNewConnections(to: relay.address, group: group, until: probing)
        let latency = await LegitimateClient.pingSeries(on: connection, count: pings, interval: pingInterval)
        probing.stop()
        let fresh = await newConnections
        let rss = relay.currentRSSMiB()
        let cpu = (relay.cpuSeconds() - cpuBefore) / (Double(monotonicNanos() - started) / 1e9) * 100
        await attack?.stop()
        let attacker = attack?.counters.snapshot() ?? []
        _ = await relay.settle(group: group)
        return Measurement(name: attack?.name ?? "baseline", latency: latency, fresh: fresh, rss: rss, cpuPercent: cpu, attacker: attacker)
    }

    private static func ratio(_ m: Measurement, _ baseline: Measurement) -> Double? {
        guard let p99 = m.latency.p99, let base = baseline.latency.p99, base > 0 else { return nil }
        return p99 / base
    }

    private static func report(_ m: Measurement, baseline: Measurement) {
        var line = "abuse \(m.name): \(m.latency.text)"
        if m.name != baseline.name { line += ratio(m, baseline).map { String(format: "; p99 %.1fx baseline", $0) } ?? "; p99 not comparable" }
        line += "; new connections from 127.0.0.1: \(m.fresh.text)"
        line += String(format: "; relay RSS %.1f MiB, CPU %.0f%% of one core", m.rss, m.cpuPercent)
        print(line)
        if !m.attacker.isEmpty { print("  attacker: " + m.attacker.map { "\($0.0) \($0.1)" }.joined(separator: ", ")) }
        if let note = m.note { print("  note: \(note)") }
    }

    private static func json(_ m: Measurement, baseline: Measurement) -> JSON {
        var fields: [(String, JSON)] = [
            ("p50_ms", .number(m.latency.p50)), ("p99_ms", .number(m.latency.p99)), ("max_ms", .number(m.latency.max)),
            ("pings_answered", .integer(m.latency.samples)), ("pings_failed", .integer(m.latency.failures)),
        ]
        if m.name != baseline.name { fields.append(("p99_vs_baseline", .number(ratio(m, baseline)))) }
        fields += [
            ("new_connections_tried", .integer(m.fresh.tried)), ("new_connections_succeeded", .integer(m.fresh.succeeded)),
            ("new_connection_median_ms", .number(m.fresh.medianMilliseconds)), ("new_connection_first_error", .string(m.fresh.firstError)),
            ("relay_rss_mib", .number(m.rss)), ("relay_cpu_percent", .number(m.cpuPercent)),
        ]
        if !m.attacker.isEmpty { fields.append(("attacker", .object(m.attacker.map { ($0.0, .integer($0.1)) }))) }
        if let note = m.note { fields.append(("note", .string(note))) }
        return .object(fields)
    }
}
