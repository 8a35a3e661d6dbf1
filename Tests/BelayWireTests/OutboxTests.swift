import BelayWire
import NIOCore
import Testing

/// The outbox: entries in, bucket frames out, every entry back in order.
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
            let withPrefixes = entries.map { $0.count + Bundle.entryHeaderLength }
            #expect(r.wire == FramePacking.wireBytes(sizes: withPrefixes, ends: FramePacking.frameEnds(sizes: withPrefixes)))
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

    /// However long a caller waits to seal, the outbox seals on its own before it holds more
    /// than its bound.
    @Test func pendingEntriesAreBounded() throws {
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

    /// A command refused for its length when the outbox is at its bound seals nothing: the
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
