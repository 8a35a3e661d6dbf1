import BelaySodium
import BelayWire
import Foundation

/// `belay-bench --work 16,20,22`: how long a client takes to solve the relay's proof of work
/// (docs/PROTOCOL.md §5.1) at each number of bits, on one core, each sample a fresh random
/// challenge searched from 0 as the client does. No relay: the search is the whole cost.
enum WorkBench {
    struct Figure {
        var bits: Int
        var samples: Int
        var medianMs: Double
        var p90Ms: Double
        var meanMs: Double
        var hashesPerSecond: Double
    }

    static func run(bits: Int, samples: Int) throws -> Figure {
        var times: [Double] = []
        var hashes: UInt64 = 0
        var seconds = 0.0
        for _ in 0..<samples {
            let challenge = SystemRandom().bytes(64)
            let start = DispatchTime.now().uptimeNanoseconds
            guard let work = try CreationWork.search(challenge: challenge, bits: bits, from: 0, count: .max) else { continue }
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            times.append(elapsed * 1000)
            hashes += work + 1
            seconds += elapsed
        }
        times.sort()
        return Figure(
            bits: bits, samples: times.count, medianMs: times[times.count / 2], p90Ms: times[min(times.count - 1, times.count * 9 / 10)],
            meanMs: times.reduce(0, +) / Double(times.count), hashesPerSecond: Double(hashes) / seconds)
    }

    static func report(_ f: Figure) {
        print(
            String(
                format: "work %d bits: median %.0f ms, p90 %.0f ms, mean %.0f ms over %d solves (%.2f M hashes/s, one core)", f.bits, f.medianMs, f.p90Ms,
                f.meanMs, f.samples, f.hashesPerSecond / 1e6))
        print(
            String(
                format: #"{"work_bits": %d, "work_median_ms": %.1f, "work_p90_ms": %.1f, "work_mean_ms": %.1f, "work_samples": %d, "work_hashes_per_s": %.0f}"#,
                f.bits, f.medianMs, f.p90Ms, f.meanMs, f.samples, f.hashesPerSecond))
    }
}
