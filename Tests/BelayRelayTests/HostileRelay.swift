import BelayRelay
import Foundation
import GRDB
import NIOCore
import Synchronization

/// What a relay operator can do behind the protocol's back: edit the database of a running
/// relay. The relay's in-memory counters are not told, as they would not be.
struct HostileRelay {
    let relay: RelayHarness

    private func writer() throws -> DatabaseQueue { try DatabaseQueue(path: relay.store.path) }

    func execute(_ sql: String, _ arguments: StatementArguments = []) throws {
        let db = try writer()
        defer { try? db.close() }
        try db.write { try $0.execute(sql: sql, arguments: arguments) }
    }

    /// Deletes every held timer.
    func dropTimers() throws { try execute("DELETE FROM timer") }

    /// Moves every held timer's deadline later.
    func postponeTimers(by seconds: UInt64) throws { try execute("UPDATE timer SET deadline = deadline + ?", [Int64(seconds)]) }

    /// Releases every held timer now (at the next sweep), before its time.
    func fireEarly() async throws {
        try execute("UPDATE timer SET deadline = ?", [Int64(relay.clock.now())])
        await relay.server.core.sweep()
    }

    /// The sealed bodies the timers hold, with the queue row each is aimed at.
    func heldBodies() throws -> [(queue: Int64, body: Data)] {
        let db = try writer()
        defer { try? db.close() }
        return try db.read { db in
            try Row.fetchAll(db, sql: "SELECT queue_id, body FROM timer_entry ORDER BY timer_id, position").map { ($0[0], $0[1]) }
        }
    }

    /// The public keys of the held timers.
    func timerKeys() throws -> [[UInt8]] {
        let db = try writer()
        defer { try? db.close() }
        return try db.read { db in try Data.fetchAll(db, sql: "SELECT timer_key FROM timer").map { [UInt8]($0) } }
    }

    /// The bodies waiting in every queue, oldest first, as the operator could copy them.
    func waiting() throws -> [(queue: Int64, body: Data)] {
        let db = try writer()
        defer { try? db.close() }
        return try db.read { db in
            try Row.fetchAll(db, sql: "SELECT queue_id, body FROM message ORDER BY queue_id, seq").map { ($0[0], $0[1]) }
        }
    }

    /// Moves the oldest body waiting in `queue` behind the others (a later `seq`).
    func moveOldestLast(queue: Int64) throws {
        try execute(
            """
            UPDATE message SET seq = (SELECT max(seq) FROM message WHERE queue_id = ?1) + 1
            WHERE id = (SELECT id FROM message WHERE queue_id = ?1 ORDER BY seq LIMIT 1)
            """, [queue])
    }

    /// Appends `body` to a queue as if it had been sent, under a fresh `seq`.
    func inject(_ body: Data, queue: Int64) throws {
        try execute(
            """
            INSERT INTO message(queue_id, seq, expires_at, body)
            VALUES (?, (SELECT coalesce(max(seq), 0) + 1000 FROM message WHERE queue_id = ?), ?, ?)
            """, [queue, queue, Int64.max, body])
    }

    /// Everything in the database but its random bytes: row counts, body sizes, deadlines and
    /// which queue each row belongs to.
    func shape() throws -> [String] {
        let db = try writer()
        defer { try? db.close() }
        return try db.read { db in
            var lines: [String] = []
            for row in try Row.fetchAll(db, sql: "SELECT id, sender_key IS NULL FROM queue ORDER BY id") { lines.append("queue \(row[0]) \(row[1] as Int)") }
            for row in try Row.fetchAll(db, sql: "SELECT queue_id, seq, expires_at, length(body) FROM message ORDER BY queue_id, seq") {
                lines.append("message \(row[0] as Int64) \(row[1] as Int64) \(row[2] as Int64) \(row[3] as Int)")
            }
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT t.deadline, e.queue_id, e.position, length(e.body) FROM timer t JOIN timer_entry e ON e.timer_id = t.id
                    ORDER BY e.queue_id, t.deadline
                    """)
            {
                lines.append("timer \(row[0] as Int64) \(row[1] as Int64) \(row[2] as Int) \(row[3] as Int)")
            }
            return lines
        }
    }
}

/// Counts the frames of every connection a relay accepts, in both directions (docs/PROTOCOL.md
/// §2.2: an 8-byte preamble from the client, then u16-length frames), to compare what two
/// runs put on the wire.
final class WireTap: Sendable {
    private let log = Mutex<[ObjectIdentifier: (inbound: [Int], outbound: [Int])]>([:])

    func reset() { log.withLock { $0 = [:] } }

    /// Per connection, its frame lengths in and out; sorted, since lanes open in any order.
    var connections: [String] {
        log.withLock { $0.values.map { "in \($0.inbound) out \($0.outbound)" }.sorted() }
    }

    func record(_ channel: ObjectIdentifier, inbound: Int? = nil, outbound: Int? = nil) {
        log.withLock { log in
            var entry = log[channel] ?? ([], [])
            if let inbound { entry.inbound.append(inbound) }
            if let outbound { entry.outbound.append(outbound) }
            log[channel] = entry
        }
    }

    var observer: @Sendable (Channel) throws -> Void {
        { [self] channel in try channel.pipeline.syncOperations.addHandler(Handler(tap: self, id: ObjectIdentifier(channel))) }
    }

    /// Splits a byte stream into frame lengths.
    struct Splitter {
        var skip: Int
        var pending: [UInt8] = []

        mutating func feed(_ bytes: [UInt8]) -> [Int] {
            pending += bytes
            if skip > 0 {
                let n = min(skip, pending.count)
                pending.removeFirst(n)
                skip -= n
            }
            var frames: [Int] = []
            while pending.count >= 2 {
                let length = Int(pending[0]) << 8 | Int(pending[1])
                guard pending.count >= 2 + length else { break }
                frames.append(length)
                pending.removeFirst(2 + length)
            }
            return frames
        }
    }

    final class Handler: ChannelDuplexHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        typealias OutboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let tap: WireTap
        let id: ObjectIdentifier
        var inbound = Splitter(skip: 8)
        var outbound = Splitter(skip: 0)

        init(tap: WireTap, id: ObjectIdentifier) {
            self.tap = tap
            self.id = id
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            for n in inbound.feed(Array(buffer.readableBytesView)) { tap.record(id, inbound: n) }
            context.fireChannelRead(data)
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            let buffer = unwrapOutboundIn(data)
            var bytes = Array(buffer.readableBytesView)
            // The relay's own preamble, answered to the client's, is not a frame.
            if outbound.skip == 0, outbound.pending.isEmpty, bytes.starts(with: Array("belay".utf8)) { bytes.removeFirst(min(8, bytes.count)) }
            for n in outbound.feed(bytes) { tap.record(id, outbound: n) }
            context.write(data, promise: promise)
        }
    }
}

/// Loses one reply: on the next connection accepted after `arm()`, the reply to the `frame`-th
/// frame from the client (counting the handshake's) is not sent, and the connection is closed,
/// as if the network dropped it after the relay had done the work.
final class ReplyDropper: Sendable {
    private let armed = Mutex<(frame: Int?, refuse: Int, skip: Int)>((nil, 0, 0))

    /// `skipping`: connections let through first. `thenRefuse`: the next connections after the
    /// one that loses a reply are closed at once (a relay that went away), so a retry fails too.
    func arm(frame: Int, skipping: Int = 0, thenRefuse: Int = 0) { armed.withLock { $0 = (frame, thenRefuse, skipping) } }

    var observer: @Sendable (Channel) throws -> Void {
        { [self] channel in
            let action = armed.withLock { a -> (drop: Int?, refuse: Bool) in
                if a.frame != nil, a.skip > 0 {
                    a.skip -= 1
                    return (nil, false)
                }
                if let frame = a.frame {
                    a.frame = nil
                    return (frame, false)
                }
                guard a.refuse > 0 else { return (nil, false) }
                a.refuse -= 1
                return (nil, true)
            }
            if action.refuse { throw ChannelError.ioOnClosedChannel }
            guard let frame = action.drop else { return }
            try channel.pipeline.syncOperations.addHandler(Handler(dropAfter: frame))
        }
    }

    final class Handler: ChannelDuplexHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        typealias OutboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let dropAfter: Int
        var frames = WireTap.Splitter(skip: 8)
        var seen = 0
        var dropping = false

        init(dropAfter: Int) { self.dropAfter = dropAfter }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            seen += frames.feed(Array(unwrapInboundIn(data).readableBytesView)).count
            if seen >= dropAfter { dropping = true }
            context.fireChannelRead(data)
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            guard dropping else { return context.write(data, promise: promise) }
            promise?.succeed()
            context.close(promise: nil)
        }
    }
}
