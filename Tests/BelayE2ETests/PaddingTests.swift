import BelaySodium
import Testing

@testable import BelayE2E

/// The envelope pads in Swift; libsodium's `sodium_pad`/`sodium_unpad` (which the protocol
/// names) is the reference, byte for byte, accepting and refusing the same inputs.
@Suite struct PaddingTests {
    @Test func paddingIsByteForByteLibsodiums() throws {
        for bucket in Envelope.buckets {
            for length in [0, 1, 2, 17, bucket / 2, bucket - 2, bucket - 1] {
                let fields = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
                let ours = Envelope.pad(fields, to: bucket)
                #expect(ours == (try Padding.pad(fields, blockSize: bucket)), "bucket \(bucket), length \(length)")
                #expect(try Envelope.unpad(ours) == fields)
                #expect(try Padding.unpad(ours, blockSize: bucket) == fields)
            }
        }
    }

    @Test func whatLibsodiumRefusesIsRefused() throws {
        let bucket = 256
        var noMarker = Envelope.pad([1, 2, 3], to: bucket)
        noMarker[3] = 0x7f  // the last non-zero byte is not 0x80
        let allZero = [UInt8](repeating: 0, count: bucket)
        var trailing = Envelope.pad([1, 2, 3], to: bucket)
        trailing[bucket - 1] = 1  // a byte after the marker
        for bad in [noMarker, allZero, trailing] {
            #expect(throws: E2EError.self) { try Envelope.unpad(bad) }
            #expect(throws: SodiumError.self) { try Padding.unpad(bad, blockSize: bucket) }
        }
    }
}
