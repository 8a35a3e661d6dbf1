import BelayWire
import NIOCore
import Testing

/// How what one side sends at once is cut into frames (docs/PROTOCOL.md §2.4): the fewest bytes
/// on the wire, every frame a bucket, the entries in order.
@Suite struct FramePackingTests {
    /// A 1 KiB message's SEND or MSG with its length prefix, as the benchmark sends them.
    static let message = 1154

    @Test func fourMessagesTakeTwoSmallFramesNotOneLargeOne() {
        let sizes = Array(repeating: Self.message, count: 4)
        let ends = FramePacking.frameEnds(sizes: sizes)
        #expect(ends == [3, 4])
        #expect(FramePacking.wireBytes(sizes: sizes, ends: ends) == 4626 + 1554)
        // One bundle, as protocol 5 first sent them, takes a 17408-byte frame.
        #expect(FramePacking.wireBytes(sizes: sizes, ends: [4]) == 17426)
    }

    @Test func fifteenMessagesFillOneLargeFrame() {
        let sizes = Array(repeating: Self.message, count: 15)
        #expect(FramePacking.frameEnds(sizes: sizes) == [15])
    }

    @Test func smallRepliesRideWithAMessage() {
        // A MSG push and the OKs of a batch still fit the 1536 bucket together.
        let sizes = [Self.message, 7, 7, 7]
        #expect(FramePacking.frameEnds(sizes: sizes) == [4])
    }

    @Test func noFrameHoldsMoreThanABundleMay() {
        let sizes = Array(repeating: 7, count: 3 * WireLimits.maxBundleEntries + 5)
        let ends = FramePacking.frameEnds(sizes: sizes)
        var start = 0
        for end in ends {
            #expect(end - start <= WireLimits.maxBundleEntries)
            #expect(end > start)
            start = end
        }
        #expect(start == sizes.count)
    }

    @Test func anEntryOfTheLargestSizeHasAFrameOfItsOwn() {
        let largest = Bundle.maxEntryLength + Bundle.entryHeaderLength
        #expect(FramePacking.frameEnds(sizes: [7, largest, 7]) == [1, 2, 3])
    }

    /// Every way of cutting up to 10 entries, tried one by one: the packing is never beaten, and
    /// never sends more than the single bundle the relay used to send.
    @Test func noCuttingIsCheaper() {
        var random = SeededSizes(seed: 0x5eed)
        for _ in 0..<300 {
            let n = random.next(upTo: 10) + 1
            let sizes = (0..<n).map { _ in random.size() }
            let ends = FramePacking.frameEnds(sizes: sizes)
            let cost = FramePacking.wireBytes(sizes: sizes, ends: ends)
            var best = Int.max
            for mask in 0..<(1 << (n - 1)) {
                var cuts = (0..<(n - 1)).filter { mask & (1 << $0) != 0 }.map { $0 + 1 }
                cuts.append(n)
                guard Self.fits(sizes, ends: cuts) else { continue }
                best = min(best, FramePacking.wireBytes(sizes: sizes, ends: cuts))
            }
            #expect(cost == best, "sizes \(sizes)")
            if Self.fits(sizes, ends: [n]) { #expect(cost <= FramePacking.wireBytes(sizes: sizes, ends: [n])) }
        }
    }

    static func fits(_ sizes: [Int], ends: [Int]) -> Bool {
        var start = 0
        for end in ends {
            if end - start > WireLimits.maxBundleEntries || sizes[start..<end].reduce(0, +) > WireLimits.maxPlaintextLength { return false }
            start = end
        }
        return true
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
