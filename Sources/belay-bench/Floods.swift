import BelayWire
import Foundation
import NIOCore

/// (c) Connections that each send the preamble and one recorded message 1, wait for the relay's
/// message 2 or its hang-up, and close. Each costs the relay a key pair and two DH operations;
/// it costs the attacker one write of replayed bytes.
final class HandshakeFlood: LoopedAttack {
    let name = "handshake_flood"
    /// Connections in flight at once.
    static let workers = 64
    static let stepPause: TimeAmount = .zero
    /// The relay's answer: a 48-byte message 2 in its frame.
    static let replyBytes = WireLimits.frameHeaderLength + 48
    static let replyWait: TimeAmount = .seconds(5)
    static let warmUp: Duration = .seconds(1)

    let counters = Counters(["connections", "answered", "hung_up", "no_answer_in_time", "connect_errors"])
    let crew: AttackCrew
    private let opening: ByteBuffer

    init(crew: AttackCrew, opening: [UInt8]) {
        self.crew = crew
        self.opening = ByteBuffer(bytes: opening)
    }

    func once(on loop: EventLoop) -> EventLoopFuture<Void> {
        let counters = self.counters
        let answered = loop.makePromise(of: Bool.self)
        let opening = self.opening
        return crew.connect(on: loop) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ReplyWatcher(expected: Self.replyBytes, answered: answered))
            }
        }.flatMap { channel -> EventLoopFuture<Void> in
            counters.add("connections")
            channel.writeAndFlush(opening, promise: nil)
            return answered.futureResult.limited(to: Self.replyWait, "message 2").map { answered in
                counters.add(answered ? "answered" : "hung_up")
            }.recover { _ in
                counters.add("no_answer_in_time")
            }.always { _ in
                channel.close(promise: nil)
            }
        }.recover { _ in
            answered.succeed(false)
            counters.add("connect_errors")
        }
    }
}

/// (d) Connections that write random bytes, chunk after chunk, until the relay hangs up (or a
/// connection has written its share), then connect again.
final class GarbageFlood: LoopedAttack {
    let name = "garbage_flood"
    /// Connections in flight at once.
    static let workers = 32
    static let stepPause: TimeAmount = .zero
    static let chunkBytes = 16 * 1024
    /// A relay that never hangs up still sees new connections: each writes at most this much
    /// (a connection still open after its share, or when the attack stops, is `open_after_share`).
    static let maxBytesPerConnection = 1024 * 1024
    static let writeWait: TimeAmount = .seconds(5)
    static let warmUp: Duration = .seconds(1)

    let counters = Counters(["connections", "bytes_written", "hung_up_by_relay", "open_after_share", "connect_errors"])
    let crew: AttackCrew
    private let pool = GarbagePool()

    init(crew: AttackCrew) {
        self.crew = crew
    }

    func once(on loop: EventLoop) -> EventLoopFuture<Void> {
        let counters = self.counters
        return crew.connect(on: loop) { channel in
            channel.eventLoop.makeSucceededVoidFuture()
        }.flatMap { channel -> EventLoopFuture<Void> in
            counters.add("connections")
            let done = loop.makePromise(of: Void.self)
            self.write(channel, written: 0, done: done)
            return done.futureResult
        }.recover { _ in
            counters.add("connect_errors")
        }
    }

    /// Writes chunks one after another while the connection lasts; completes `done` at the end.
    private func write(_ channel: Channel, written: Int, done: EventLoopPromise<Void>) {
        guard channel.isActive, !crew.isStopped, written < Self.maxBytesPerConnection else {
            counters.add(channel.isActive ? "open_after_share" : "hung_up_by_relay")
            channel.close(promise: nil)
            return done.succeed()
        }
        channel.writeAndFlush(pool.slice(Self.chunkBytes)).limited(to: Self.writeWait, "a garbage write").whenComplete { result in
            if case .success = result { self.counters.add("bytes_written", Self.chunkBytes) }
            self.write(channel, written: written + Self.chunkBytes, done: done)
        }
    }
}
