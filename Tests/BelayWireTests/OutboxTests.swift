import BelayWire
import NIOCore
import Testing

/// The outbox: entries in, bucket frames out, every entry back in order, in as few bundles as
/// hold them (docs/PROTOCOL.md §2.4), so that a burst's size on the wire says as little as the
/// buckets allow.
@Suite struct OutboxTests {
    /// Seals `entries` as one send and reads every frame back: the frames' body lengths and the
    /// entries they carried.
    static func roundTrip(_ entries: [[UInt8]]) throws -> (bodies: [Int], entries: [[UInt8]], wire: Int) {
        var pair = try SessionPair()
        var outbox = Outbox()
        for e in entries { try outbox.add(sealingWith: &pair.client) { $0.writeBytes(e) } }
        try outbox.seal(with: &pair.client)
        let wire = outbox.takeFrames().map { Array($0.readableBytesView) } ?? []
        #expect(outbox.takeFrames() == nil)
        // Split the stream by hand to see each body's length, then decode it as the relay does.
        var bodies: [Int] = []
        var receiver = pair.relay
        var stream = ByteBuffer(bytes: wire)
        var out: [[UInt8]] = []
        while stream.readableBytes > 0 {
            let length = try receiver.openLength(header: stream.readSlice(length: WireLimits.frameHeaderLength)!)
            bodies.append(length)
            let plaintext = try receiver.open(frame: stream.readSlice(length: length)!)
            out += try Bundle.entries(of: plaintext).map { Array($0.readableBytesView) }
        }
        return (bodies, out, wire.count)
    }

    /// Four 1 KiB messages leave in one 17408-byte frame, not in a 4608-byte and a 1536-byte
    /// one that would cost a third of the bytes and tell an observer there were four.
    @Test func fourMessagesLeaveInOneFrame() throws {
        let entries = (0..<4).map { [UInt8](repeating: UInt8($0 + 1), count: 1152) }
        let r = try Self.roundTrip(entries)
        #expect(r.bodies == [17408])
        #expect(r.entries == entries)
        #expect(r.wire == WireLimits.frameHeaderLength + 17408)
    }

    @Test func mixedEntriesComeBackInOrderInBuckets() throws {
        var sizes = SeededSizes(seed: 42)
        for _ in 0..<20 {
            let entries = (0..<(sizes.next(upTo: 30) + 1)).map { i in [UInt8](repeating: UInt8(truncatingIfNeeded: i + 1), count: sizes.size()) }
            let r = try Self.roundTrip(entries)
            #expect(r.entries == entries)
            #expect(r.bodies.allSatisfy { WireLimits.frameBodyBuckets.contains($0) })
            #expect(r.bodies == Self.asFewBundlesAsHoldThem(entries.map(\.count)))
        }
    }

    /// The rule, written the plain way for the tests: fill each bundle up to its count and size,
    /// pad it to the smallest bucket.
    static func asFewBundlesAsHoldThem(_ lengths: [Int]) -> [Int] {
        var bundles: [Int] = []
        var bytes = 0
        var count = 0
        for length in lengths {
            let entry = length + Bundle.entryHeaderLength
            if count == WireLimits.maxBundleEntries || bytes + entry > WireLimits.maxPlaintextLength {
                bundles.append(bytes)
                (bytes, count) = (0, 0)
            }
            bytes += entry
            count += 1
        }
        if count > 0 { bundles.append(bytes) }
        return bundles.map { b in WireLimits.frameBodyBuckets.first { $0 - WireLimits.tagLength >= b }! }
    }

    @Test func aBundleHoldsAtMostItsCountAndSize() throws {
        let small = try Self.roundTrip(Array(repeating: [7, 7, 7, 7, 7], count: 3 * WireLimits.maxBundleEntries + 5))
        #expect(small.bodies == [512, 512, 512, 512])  // 64 entries a bundle, then 5
        let large = try Self.roundTrip(Array(repeating: [UInt8](repeating: 1, count: 15_998), count: 9))  // four fit a bundle
        #expect(large.bodies == [65535, 65535, 17408])
        let largest = try Self.roundTrip([[1], [UInt8](repeating: 2, count: Bundle.maxEntryLength), [3]])
        #expect(largest.bodies == [512, 65535, 512])
    }

    /// What a burst's size tells an observer: bursts of 1 to 16 messages of one size (an outbox
    /// flush or a subscription's window) fall into at most four totals. The cutting that saves
    /// the most padding gave 1 KiB messages 13 different totals and 4 KiB messages 16 (the
    /// review of session 9).
    @Test func burstTotalsHideTheirCount() throws {
        for body in [256, 1024, 4096] {
            let entry = [UInt8](repeating: 1, count: body + 57 + 33)  // a MSG with its padded E2E body
            var totals = Set<Int>()
            for k in 1...WireLimits.subscriptionWindow { totals.insert(try Self.roundTrip(Array(repeating: entry, count: k)).wire) }
            #expect(totals.count <= 4, "\(body)-byte bodies: \(totals.count) totals")
        }
    }

    /// An entry that is too long, or empty, is refused and leaves nothing behind.
    @Test func aBadEntryIsTakenBack() throws {
        var pair = try SessionPair()
        var outbox = Outbox()
        try outbox.add(sealingWith: &pair.client) { $0.writeBytes([1, 2, 3]) }
        #expect(throws: Outbox.Error.entryTooLong(Bundle.maxEntryLength + 1)) {
            try outbox.add(sealingWith: &pair.client) { $0.writeRepeatingByte(9, count: Bundle.maxEntryLength + 1) }
        }
        #expect(throws: Outbox.Error.entryTooLong(0)) { try outbox.add(sealingWith: &pair.client) { _ in } }
        try outbox.seal(with: &pair.client)
        var d = FrameDecoder()
        d.append(outbox.takeFrames()!)
        let frame = try d.nextFrame(opening: &pair.relay)
        let plaintext = try #require(frame)
        #expect(try Bundle.entries(of: plaintext).map { Array($0.readableBytesView) } == [[1, 2, 3]])
        #expect(try d.nextFrame(opening: &pair.relay) == nil)
    }

    /// However long a caller waits to seal, a full bundle is sealed on its own: the outbox
    /// holds at most one unsealed bundle.
    @Test func aFullBundleIsSealedOnItsOwn() throws {
        var pair = try SessionPair()
        var outbox = Outbox()
        let entry = [UInt8](repeating: 5, count: 16_000)
        for _ in 0..<40 { try outbox.add(sealingWith: &pair.client) { $0.writeBytes(entry) } }
        // 40 × 16 KB is 640 KB; the outbox cannot have kept them all unsealed.
        let taken = outbox.takeFrames()
        let early = try #require(taken)
        #expect(early.readableBytes > 0)
        try outbox.seal(with: &pair.client)
        var d = FrameDecoder()
        d.append(early)
        d.append(outbox.takeFrames()!)
        var count = 0
        while let p = try d.nextFrame(opening: &pair.relay) { count += try Bundle.entries(of: p).count }
        #expect(count == 40)
    }

    /// A command refused for its length right after a full bundle was sealed seals nothing: the
    /// next frames still decrypt in order, so no nonce was spent twice.
    @Test func aRefusalAtTheBoundSpendsNoNonce() throws {
        var pair = try SessionPair()
        var outbox = Outbox()
        let entry = [UInt8](repeating: 5, count: 16_000)
        while true {
            try outbox.add(sealingWith: &pair.client) { $0.writeBytes(entry) }
            if outbox.hasFrames { break }
        }
        var wire = outbox.takeFrames()!
        #expect(throws: Outbox.Error.entryTooLong(Bundle.maxEntryLength + 1)) {
            try outbox.add(sealingWith: &pair.client) { $0.writeRepeatingByte(9, count: Bundle.maxEntryLength + 1) }
        }
        #expect(outbox.takeFrames() == nil)
        try outbox.add(sealingWith: &pair.client) { $0.writeBytes([1, 2, 3]) }
        try outbox.seal(with: &pair.client)
        var rest = outbox.takeFrames()!
        wire.writeBuffer(&rest)
        var d = FrameDecoder()
        d.append(wire)
        var last: [UInt8] = []
        while let p = try d.nextFrame(opening: &pair.relay) { last = try Bundle.entries(of: p).last.map { Array($0.readableBytesView) } ?? [] }
        #expect(last == [1, 2, 3])
    }
}

/// Entry sizes around the buckets' edges, from a fixed seed (a linear congruential generator:
/// the test needs variety, not unpredictability).
struct SeededSizes {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next(upTo bound: Int) -> Int {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Int((state >> 33) % UInt64(bound))
    }

    mutating func size() -> Int {
        switch next(upTo: 4) {
        case 0: 7 + next(upTo: 40)
        case 1: 1100 + next(upTo: 500)
        case 2: 4000 + next(upTo: 700)
        default: 15_000 + next(upTo: 3000)
        }
    }
}
