import BelayClient
import BelaySodium
import BelayWire
import Foundation
import NIOCore
import Synchronization

/// Why one step of a measurement did not happen; reported in the output, never fatal to the run.
enum BenchError: Error, CustomStringConvertible {
    case timedOut(String)

    var description: String {
        switch self {
        case let .timedOut(what): "\(what) timed out"
        }
    }
}

func monotonicNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Problems go to stderr with the tool's name, so that stdout holds only the figures.
func complain(_ message: String) {
    FileHandle.standardError.write(Data("belay-bench: \(message)\n".utf8))
}

extension EventLoopFuture where Value: Sendable {
    /// This future, or `BenchError.timedOut` after `limit`: no wait in the benchmark is unbounded.
    /// A late result is dropped (completing a completed promise does nothing in NIO).
    func limited(to limit: TimeAmount, _ what: String) -> EventLoopFuture<Value> {
        let promise = eventLoop.makePromise(of: Value.self)
        let timer = eventLoop.scheduleTask(in: limit) { promise.fail(BenchError.timedOut(what)) }
        whenComplete { result in
            timer.cancel()
            promise.completeWith(result)
        }
        return promise.futureResult
    }
}

/// Set once when a measurement ends; every attack loop checks it before its next step. It also
/// trips by itself after `limit`, so an attack stops even if its controller never gets to it.
final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let deadline: UInt64

    init(limit: Duration) {
        deadline = monotonicNanos() + UInt64(limit.components.seconds) * 1_000_000_000
    }

    func stop() { stopped.store(true, ordering: .relaxed) }

    var isStopped: Bool { stopped.load(ordering: .relaxed) || monotonicNanos() > deadline }
}

/// What an attack did, counted as it runs; printed in the order the names were given.
final class Counters: Sendable {
    let names: [String]
    private let values: Mutex<[String: Int]>

    init(_ names: [String]) {
        self.names = names
        values = Mutex(Dictionary(uniqueKeysWithValues: names.map { ($0, 0) }))
    }

    func add(_ name: String, _ n: Int = 1) {
        values.withLock { $0[name, default: 0] += n }
    }

    func set(_ name: String, _ value: Int) {
        values.withLock { $0[name] = value }
    }

    subscript(name: String) -> Int { values.withLock { $0[name, default: 0] } }

    func snapshot() -> [(String, Int)] {
        let v = values.withLock { $0 }
        return names.map { ($0, v[$0, default: 0]) }
    }
}

/// p50, p99 and maximum of one latency series in milliseconds; nil when nothing was measured.
struct LatencySummary: Sendable {
    var samples: Int
    var failures: Int
    var p50: Double?
    var p99: Double?
    var max: Double?

    init(nanoseconds: [UInt64], failures: Int) {
        let sorted = nanoseconds.sorted()
        samples = sorted.count
        self.failures = failures
        func at(_ p: Double) -> Double? {
            sorted.isEmpty ? nil : Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1e6
        }
        p50 = at(0.5)
        p99 = at(0.99)
        max = sorted.last.map { Double($0) / 1e6 }
    }

    var text: String {
        guard let p50, let p99, let max else { return "no PING answered (\(failures) failed)" }
        let failed = failures > 0 ? ", \(failures) failed" : ""
        return String(format: "p50 %.3f ms, p99 %.3f ms, max %.3f ms", p50, p99, max) + " (\(samples) PINGs\(failed))"
    }
}

/// Random bytes made once and handed out as slices: garbage needs to be unpredictable to the
/// relay, not fresh per connection, and one libsodium call per write would be the bottleneck.
struct GarbagePool: Sendable {
    static let size = 256 * 1024
    private let buffer: ByteBuffer

    init() {
        buffer = ByteBuffer(bytes: SystemRandom().bytes(Self.size))
    }

    func slice(_ length: Int) -> ByteBuffer {
        precondition(length <= Self.size, "garbage slice larger than the pool")
        return buffer.getSlice(at: Int.random(in: 0...(Self.size - length)), length: length)!
    }
}

extension RelayProcess {
    /// Before an RSS reading: long enough for the relay to run the close handlers of the
    /// connections just dropped, short enough to leave the allocator no time to trim on its own.
    static let settlePause: Duration = .milliseconds(500)
    /// A relay that needs longer than this to answer a PING on a new connection is reported as
    /// not settled; the reading is taken anyway.
    static let settleAttempts = 10

    /// Waits, then proves the relay answers (a PING round trip on a fresh connection); false and
    /// a line on stderr if it never did.
    func settle(group: EventLoopGroup) async -> Bool {
        var lastError = ""
        for _ in 0..<Self.settleAttempts {
            try? await Task.sleep(for: Self.settlePause)
            do {
                let connection = try await RelayConnection.connect(
                    to: address, group: group, connectTimeout: .seconds(5),
                    requestTimeout: .seconds(5))
                try await pingThenClose(connection)
                return true
            } catch {
                lastError = "\(error)"
            }
        }
        complain("the relay did not answer a PING on a new connection: \(lastError)")
        return false
    }

    var isRunning: Bool { child.isRunning }
}

/// One JSON value, written with its keys in the order given (the `bench` lines are read by eye too).
indirect enum JSON {
    case number(Double?)
    case integer(Int)
    case bool(Bool)
    case string(String?)
    case object([(String, JSON)])

    var text: String {
        switch self {
        case let .number(x): x.map { $0.isFinite ? String(format: "%.3f", $0) : "null" } ?? "null"
        case let .integer(n): "\(n)"
        case let .bool(b): b ? "true" : "false"
        case let .string(s): s.map(Self.quote) ?? "null"
        case let .object(fields): "{" + fields.map { "\(Self.quote($0.0)): \($0.1.text)" }.joined(separator: ", ") + "}"
        }
    }

    private static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// One PING on a fresh connection, which is closed whatever the outcome.
func pingThenClose(_ connection: RelayConnection) async throws {
    do {
        try await connection.ping()
    } catch {
        await connection.close()
        throw error
    }
    await connection.close()
}
