import BelayRelay
import BelayWire
import Foundation
import GRDB
import NIOCore
import Synchronization

/// What a relay operator can do behind the protocol's back: edit the database of a running
/// relay. The relay's in-memory counters are not told, as they would not be.
struct HostileRelay {
    let relay: RelayHarness

    private func writer() throws -> DatabaseQueue { try Self.openBehindTheRelay(relay.store.path) }

    /// A second connection to a running relay's database. It waits for the relay's own commit
    /// (a sweep, an agent's message) to finish, as the relay waits for it: without a busy
    /// timeout its first write fails at once with "database is locked" whenever the two meet.
    static func openBehindTheRelay(_ path: String) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.busyMode = .timeout(RelayStore.busyTimeoutSeconds)
        return try DatabaseQueue(path: path, configuration: configuration)
    }

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

/// What a network observer sees of every connection a relay accepts, in both directions: the
/// 64-byte handshake message, then frames whose lengths are sealed (docs/PROTOCOL.md §2.2). An
/// observer cannot read those lengths, but every frame is a sealed length and a body of one of
/// the bucket sizes, so the byte counts split into frames; the tap records the frames' body
/// lengths, to compare what two runs put on the wire.
final class WireTap: Sendable {
    private let log = Mutex<[ObjectIdentifier: (inbound: [Int], outbound: [Int])]>([:])
    /// Bytes of closed connections that did not split into the handshake and bucket frames.
    private let leftovers = Mutex<[Int]>([])

    func reset() { log.withLock { $0 = [:] } }

    var unaccounted: [Int] { leftovers.withLock { $0 } }

    /// Per connection, its frame lengths in and out; sorted, since lanes open in any order.
    var connections: [String] {
        log.withLock { $0.values.map { "in \($0.inbound) out \($0.outbound)" }.sorted() }
    }

    /// Every frame body length seen, either way (handshake messages excluded).
    var allFrames: [Int] {
        log.withLock { $0.values.flatMap { $0.inbound + $0.outbound }.filter { $0 != WireHandshake.messageLength } }
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

    /// Splits a byte count into the handshake message and bucket-sized frames.
    struct Splitter {
        /// Bytes of the handshake message still to come before frames start.
        var handshake = WireHandshake.messageLength
        /// Bytes not yet accounted for as whole frames.
        var pending = 0
        /// Set when bytes could not be split into bucket frames even once whole.
        private(set) var unsplittable: [Int] = []

        /// The handshake message (as its length, 64) and the frames (body lengths, largest
        /// first) that the bytes so far complete. Both sides write whole frames, so what has
        /// arrived usually splits at once; a partial frame waits for the rest.
        mutating func feed(_ count: Int) -> [Int] {
            pending += count
            var out: [Int] = []
            if handshake > 0 {
                guard pending >= handshake else { return [] }
                pending -= handshake
                out.append(handshake)
                handshake = 0
            }
            if pending > 0, let frames = Self.split(pending) {
                out += frames
                pending = 0
            } else if pending > 4 * WireLimits.maxFrameLength {
                unsplittable.append(pending)
            }
            return out
        }

        /// The bucket frames whose lengths add up to `total`, if exactly one such set exists.
        static func split(_ total: Int) -> [Int]? {
            let sizes = WireLimits.frameBodyBuckets.reversed().map { $0 + WireLimits.frameHeaderLength }
            var found: [[Int]] = []
            func search(_ rest: Int, from index: Int, _ taken: [Int]) {
                guard found.count < 2 else { return }
                if rest == 0 { return found.append(taken) }
                for i in index..<sizes.count where sizes[i] <= rest {
                    search(rest - sizes[i], from: i, taken + [sizes[i] - WireLimits.frameHeaderLength])
                }
            }
            search(total, from: 0, [])
            return found.count == 1 ? found[0] : nil
        }
    }

    final class Handler: ChannelDuplexHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        typealias OutboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let tap: WireTap
        let id: ObjectIdentifier
        var inbound = Splitter()
        var outbound = Splitter()

        init(tap: WireTap, id: ObjectIdentifier) {
            self.tap = tap
            self.id = id
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            for n in inbound.feed(unwrapInboundIn(data).readableBytes) { tap.record(id, inbound: n) }
            context.fireChannelRead(data)
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            for n in outbound.feed(unwrapOutboundIn(data).readableBytes) { tap.record(id, outbound: n) }
            context.write(data, promise: promise)
        }

        func channelInactive(context: ChannelHandlerContext) {
            let left = [inbound.pending, outbound.pending].filter { $0 > 0 } + inbound.unsplittable + outbound.unsplittable
            if !left.isEmpty { tap.leftovers.withLock { $0 += left } }
            context.fireChannelInactive()
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
        var frames = WireTap.Splitter()
        var seen = 0
        var dropping = false

        init(dropAfter: Int) { self.dropAfter = dropAfter }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            seen += frames.feed(unwrapInboundIn(data).readableBytes).count
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
