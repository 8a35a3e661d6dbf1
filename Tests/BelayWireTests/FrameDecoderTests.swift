import BelayWire
import NIOCore
import Testing

@Suite struct FrameDecoderTests {
    static func stream(_ payloads: [[UInt8]]) -> [UInt8] {
        var b = ByteBufferAllocator().buffer(capacity: 0)
        for p in payloads { FrameDecoder.writeFrame(p, into: &b) }
        return Array(b.readableBytesView)
    }

    static let payloads: [[UInt8]] = [[1], [2, 3], Array(repeating: 7, count: 300), Array(repeating: 9, count: 65535)]

    @Test func dripFedOneByteAtATime() throws {
        var d = FrameDecoder()
        var out: [[UInt8]] = []
        for byte in Self.stream(Self.payloads) {
            d.append([byte])
            while let f = try d.nextFrame() { out.append(Array(f.readableBytesView)) }
        }
        #expect(out == Self.payloads)
        #expect(d.bufferedByteCount == 0)
    }

    @Test func manyFramesInOneBuffer() throws {
        var d = FrameDecoder()
        d.append(Self.stream(Self.payloads + Self.payloads))
        var out: [[UInt8]] = []
        while let f = try d.nextFrame() { out.append(Array(f.readableBytesView)) }
        #expect(out == Self.payloads + Self.payloads)
    }

    @Test func truncatedFrameConsumesNothing() throws {
        var d = FrameDecoder()
        let bytes = Self.stream([[1, 2, 3, 4]])
        d.append(Array(bytes.dropLast()))
        #expect(try d.nextFrame() == nil)
        #expect(d.bufferedByteCount == bytes.count - 1)
        d.append([bytes.last!])
        #expect(try d.nextFrame().map { Array($0.readableBytesView) } == [1, 2, 3, 4])
    }

    @Test func zeroLengthFrameIsAnError() {
        var d = FrameDecoder()
        d.append([0, 0, 1])
        #expect(throws: FrameDecoder.Error.emptyFrame) { try d.nextFrame() }
    }

    @Test func lengthPrefixCannotExceedTheNoiseMaximum() throws {
        // The largest prefix a peer can write is 0xffff = 65535 = the limit: no oversize frame
        // exists on this wire. What arrives beyond it waits, bounded by that one frame.
        var d = FrameDecoder()
        d.append([0xff, 0xff] + [UInt8](repeating: 0, count: 100))
        #expect(try d.nextFrame() == nil)
        #expect(WireLimits.maxFrameLength == Int(UInt16.max))
    }

    @Test func preambleVerdicts() {
        #expect(Preamble.check(Preamble.bytes()) == .accepted)
        #expect(Preamble.check(Preamble.bytes(version: 9)) == .unsupportedVersion(9))
        #expect(Preamble.check(Array("GET / HT".utf8)) == .notBelay)
        #expect(Preamble.bytes() == [0x62, 0x65, 0x6c, 0x61, 0x79, 0x00, 0x00, 0x04])
    }
}
