/// Where to cut what one side has to send at once into frames (docs/PROTOCOL.md §2.4): as few
/// bundles as hold it, each as full as its count and size allow.
///
/// Cutting a burst where the padding costs least would save bytes (four 1 KiB messages in a
/// 4608-byte and a 1536-byte frame instead of a 17408-byte one), but a burst's total on the wire
/// is what a network observer sees, and the cheapest cutting spells out how many messages a
/// burst holds: enough to match a sender's burst with the recipient's push burst on another
/// connection, even through `delivery_jitter`. Measured in session 9, it saved a third of the
/// bytes of `make bench` and no throughput worth that (docs/PERFORMANCE.md). Pure, so the rule
/// is tested on sizes alone.
public enum FramePacking {
    /// The cuts, as the index one past each frame's last entry, in order. `sizes` are the
    /// entries' bytes with their length prefixes, each at most `WireLimits.maxPlaintextLength`.
    public static func frameEnds(sizes: [Int]) -> [Int] {
        guard sizes.count > 1 else { return sizes.isEmpty ? [] : [1] }  // most sends
        var ends: [Int] = []
        var bytes = 0
        var count = 0
        for (i, size) in sizes.enumerated() {
            if count == WireLimits.maxBundleEntries || bytes + size > WireLimits.maxPlaintextLength {
                ends.append(i)
                bytes = 0
                count = 0
            }
            precondition(size <= WireLimits.maxPlaintextLength, "an entry longer than the largest frame")
            bytes += size
            count += 1
        }
        ends.append(sizes.count)
        return ends
    }

    /// The bytes `ends` costs on the wire, sealed lengths included (for tests and benches).
    public static func wireBytes(sizes: [Int], ends: [Int]) -> Int {
        var total = 0
        var start = 0
        for end in ends {
            let plaintext = sizes[start..<end].reduce(0, +)
            let bucket = WireLimits.frameBodyBuckets.first { $0 - WireLimits.tagLength >= plaintext } ?? WireLimits.maxFrameLength
            total += WireLimits.frameHeaderLength + bucket
            start = end
        }
        return total
    }
}
