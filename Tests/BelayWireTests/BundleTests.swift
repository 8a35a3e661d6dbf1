import BelayWire
import NIOCore
import Testing

/// Several commands or replies in one transport plaintext (docs/PROTOCOL.md §2.4).
@Suite struct BundleTests {
    static func buffer(_ bytes: [UInt8]) -> ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: bytes.count)
        b.writeBytes(bytes)
        return b
    }

    static func bundle(_ entries: [[UInt8]]) -> ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: 0)
        for e in entries { Bundle.append(buffer(e), to: &b) }
        return b
    }

    @Test func twoPingsAreByteExact() throws {
        var first = ByteBufferAllocator().buffer(capacity: 8)
        var second = first
        RelayCodec.encode(.ping, requestId: 1, into: &first)
        RelayCodec.encode(.ping, requestId: 2, into: &second)
        var b = ByteBufferAllocator().buffer(capacity: 16)
        Bundle.append(first, to: &b)
        Bundle.append(second, to: &b)
        #expect(
            Array(b.readableBytesView) == [
                0x00, 0x05, 0x01, 0x00, 0x00, 0x00, 0x01,
                0x00, 0x05, 0x01, 0x00, 0x00, 0x00, 0x02,
            ])
        let entries = try Bundle.entries(of: b)
        #expect(try entries.map { try RelayCodec.decodeCommand($0).requestId } == [1, 2])
    }

    @Test func entriesComeBackAsTheyWentIn() throws {
        let sent: [[UInt8]] = [[1], [2, 3], Array(repeating: 7, count: 300), Array(repeating: 9, count: 1000)]
        #expect(try Bundle.entries(of: Self.bundle(sent)).map { Array($0.readableBytesView) } == sent)
        let largest = [UInt8](repeating: 4, count: Bundle.maxEntryLength)
        let one = Self.bundle([largest])
        #expect(one.readableBytes == WireLimits.maxPlaintextLength)
        #expect(try Bundle.entries(of: one).map(\.readableBytes) == [Bundle.maxEntryLength])
    }

    @Test func malformedBundlesAreRefused() {
        #expect(throws: Bundle.Error.empty) { try Bundle.entries(of: Self.buffer([])) }
        #expect(throws: Bundle.Error.empty) { try Bundle.entries(of: Self.buffer([0x00, 0x00])) }  // padding only
        #expect(throws: Bundle.Error.badEntryLength) { try Bundle.entries(of: Self.buffer([0x00, 0x03, 0x01, 0x02])) }
        // One byte left after an entry reads as padding, and padding must be zeros.
        #expect(throws: Bundle.Error.dirtyPadding) { try Bundle.entries(of: Self.buffer([0x00, 0x01, 0x01, 0x01])) }
        #expect(throws: Bundle.Error.badEntryLength) { try Bundle.entries(of: Self.buffer([0x00, 0x01, 0x01, 0x00, 0x05])) }
        let full = Self.bundle(Array(repeating: [0x01], count: WireLimits.maxBundleEntries))
        #expect((try? Bundle.entries(of: full))?.count == WireLimits.maxBundleEntries)
        #expect(throws: Bundle.Error.tooManyEntries) {
            try Bundle.entries(of: Self.bundle(Array(repeating: [0x01], count: WireLimits.maxBundleEntries + 1)))
        }
    }

    @Test func fitsCountsBytesAndEntries() {
        let empty = ByteBufferAllocator().buffer(capacity: 0)
        #expect(Bundle.fits(Bundle.maxEntryLength, in: empty, entries: 0))
        #expect(!Bundle.fits(Bundle.maxEntryLength + 1, in: empty, entries: 0))
        let some = Self.bundle([[1, 2, 3]])
        #expect(Bundle.fits(Bundle.maxEntryLength - 5, in: some, entries: 1))
        #expect(!Bundle.fits(Bundle.maxEntryLength - 4, in: some, entries: 1))
        #expect(!Bundle.fits(1, in: some, entries: WireLimits.maxBundleEntries))
    }
}
