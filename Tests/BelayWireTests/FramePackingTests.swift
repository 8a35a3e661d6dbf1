import BelayWire
import NIOCore
import Testing

/// How what one side sends at once is cut into frames (docs/PROTOCOL.md §2.4): as few bundles
/// as hold it, in order, so that a burst's size on the wire says as little as the buckets allow.
@Suite struct FramePackingTests {
    /// A 1 KiB message's SEND or MSG with its length prefix, as the benchmark sends them.
    static let message = 1154

    /// Four messages leave in one 17408-byte frame, not in a 4608-byte and a 1536-byte one that
    /// would cost a third of the bytes and tell an observer there were four.
    @Test func fourMessagesShareOneFrame() {
        let sizes = Array(repeating: Self.message, count: 4)
        #expect(FramePacking.frameEnds(sizes: sizes) == [4])
        #expect(FramePacking.wireBytes(sizes: sizes, ends: [4]) == 17426)
    }

    @Test func aBundleHoldsAtMostItsCountAndSize() {
        let small = Array(repeating: 7, count: 3 * WireLimits.maxBundleEntries + 5)
        #expect(FramePacking.frameEnds(sizes: small) == [64, 128, 192, small.count])
        let large = Array(repeating: 16_000, count: 9)  // four fit in 65519 bytes
        #expect(FramePacking.frameEnds(sizes: large) == [4, 8, 9])
    }

    @Test func anEntryOfTheLargestSizeHasAFrameOfItsOwn() {
        let largest = Bundle.maxEntryLength + Bundle.entryHeaderLength
        #expect(FramePacking.frameEnds(sizes: [7, largest, 7]) == [1, 2, 3])
    }

    /// What a burst's size tells an observer: bursts of 1 to 16 messages of one size (an
    /// outbox flush or a subscription's window) fall into at most four totals. The cutting that
    /// saves the most padding would give 1 KiB messages 13 different totals, one per count
    /// nearly, and 4 KiB messages 16 (measured by the review of session 9).
    @Test func burstTotalsHideTheirCount() {
        for body in [256, 1024, 4096] {
            let entry = body + 57 + 33 + Bundle.entryHeaderLength  // a MSG with its padded E2E body
            var totals = Set<Int>()
            for k in 1...WireLimits.subscriptionWindow {
                let sizes = Array(repeating: entry, count: k)
                totals.insert(FramePacking.wireBytes(sizes: sizes, ends: FramePacking.frameEnds(sizes: sizes)))
            }
            #expect(totals.count <= 4, "\(body)-byte bodies: \(totals.count) totals")
        }
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
