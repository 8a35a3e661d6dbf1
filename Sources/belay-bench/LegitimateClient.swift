import BelayClient
import BelayWire
import Foundation
import NIOCore

/// What the legitimate client, on 127.0.0.1, sees of the relay while it is under attack.
enum LegitimateClient {
    static let connectTimeout: TimeAmount = .seconds(5)
    /// A PING unanswered after this long counts as failed.
    static let pingTimeout: TimeAmount = .seconds(5)
    /// A series stops after this long even if short of its count, so that a relay slowed to
    /// seconds per reply cannot stretch the run into hours.
    static let seriesBudgetNanos: UInt64 = 30_000_000_000

    static func connect(to address: RelayAddress, group: EventLoopGroup) async throws -> RelayConnection {
        try await RelayConnection.connect(to: address, group: group, connectTimeout: connectTimeout, requestTimeout: pingTimeout) { _ in }
    }

    /// How often a new connection is tried while a series runs.
    static let newConnectionEvery: Duration = .seconds(1)

    /// New connections tried during a measurement: each a handshake and one PING.
    struct NewConnections {
        var tried = 0
        var succeeded = 0
        /// Connect, handshake and PING, for the successful ones.
        var milliseconds: [Double] = []
        var firstError: String?

        var medianMilliseconds: Double? { milliseconds.isEmpty ? nil : milliseconds.sorted()[milliseconds.count / 2] }

        var text: String {
            var t = "\(succeeded) of \(tried) succeeded"
            if let median = medianMilliseconds { t += String(format: " (median %.2f ms)", median) }
            if let firstError { t += " (first failure: \(firstError))" }
            return t
        }
    }

    /// Tries a new connection at once and then every `newConnectionEvery` until `stop`.
    static func tryNewConnections(to address: RelayAddress, group: EventLoopGroup, until stop: StopSignal) async -> NewConnections {
        var result = NewConnections()
        repeat {
            let started = monotonicNanos()
            result.tried += 1
            do {
                try await pingThenClose(try await connect(to: address, group: group))
                result.succeeded += 1
                result.milliseconds.append(Double(monotonicNanos() - started) / 1e6)
            } catch {
                if result.firstError == nil { result.firstError = "\(error)" }
            }
            let next = ContinuousClock.now + newConnectionEvery
            while !stop.isStopped, ContinuousClock.now < next { try? await Task.sleep(for: .milliseconds(20)) }
        } while !stop.isStopped
        return result
    }

    /// `count` PINGs one after another on `connection`, each sent `interval` after the last was
    /// (or at once if its reply took longer), timed on the connection's event loop: no Swift task
    /// hop between a reply and the clock, so the figures are the relay's and the loopback's.
    static func pingSeries(on connection: RelayConnection, count: Int, interval: TimeAmount = .zero) async -> LatencySummary {
        let loop = connection.channel.eventLoop
        let done = loop.makePromise(of: LatencySummary.self)
        // Built on the loop it runs on, so it needs no locks and no Sendable.
        loop.execute { PingSeries(connection: connection, count: count, interval: interval, done: done).next() }
        // Every PING is bounded by `pingTimeout` and the series by its budget; this is a backstop.
        let backstop = TimeAmount.nanoseconds(Int64(seriesBudgetNanos)) + pingTimeout + .seconds(5)
        return (try? await done.futureResult.limited(to: backstop, "the PING series").get())
            ?? LatencySummary(nanoseconds: [], failures: count)
    }
}

/// One PING series; confined to the connection's event loop.
private final class PingSeries {
    let connection: RelayConnection
    let count: Int
    let interval: TimeAmount
    let done: EventLoopPromise<LatencySummary>
    private var samples: [UInt64] = []
    private var failures = 0
    private let deadline: UInt64

    init(connection: RelayConnection, count: Int, interval: TimeAmount, done: EventLoopPromise<LatencySummary>) {
        self.connection = connection
        self.count = count
        self.interval = interval
        self.done = done
        deadline = monotonicNanos() + LegitimateClient.seriesBudgetNanos
        samples.reserveCapacity(count)
    }

    func next() {
        guard samples.count + failures < count, monotonicNanos() < deadline, connection.channel.isActive else {
            // A closed connection fails the PINGs it can no longer send.
            let unsent = connection.channel.isActive ? 0 : count - samples.count - failures
            return done.succeed(LatencySummary(nanoseconds: samples, failures: failures + unsent))
        }
        let sent = monotonicNanos()
        let loop = connection.channel.eventLoop.assumeIsolated()
        connection.request(.ping).limited(to: LegitimateClient.pingTimeout, "PING").assumeIsolated().whenComplete { result in
            if case .success(.pong) = result {
                let took = monotonicNanos() - sent
                self.samples.append(took)
                let wait = self.interval.nanoseconds - Int64(took)
                if wait > 0 {
                    loop.scheduleTask(in: .nanoseconds(wait)) { self.next() }
                } else {
                    self.next()
                }
            } else {
                // A failure can complete at once; going round the loop keeps the stack flat.
                self.failures += 1
                loop.execute { self.next() }
            }
        }
    }
}
