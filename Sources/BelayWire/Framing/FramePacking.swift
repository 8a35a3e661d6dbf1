/// Where to cut what one side has to send at once into frames (docs/PROTOCOL.md §2.4).
///
/// Every frame costs its bucket plus its sealed length on the wire, whatever it holds, so a
/// single bundle is often far from the cheapest: four 1 KiB messages fill a 17408-byte frame a
/// quarter full, where a 4608-byte frame and a 1536-byte one carry them in 6180 bytes. The entries
/// keep their order; only the cuts between frames move. Pure, so it is tested on sizes alone.
public enum FramePacking {
    /// The cuts that make the frames take the fewest bytes, as the index one past each frame's
    /// last entry, in order; with equal bytes, the fewer frames. `sizes` are the entries' bytes
    /// with their length prefixes, each at most `WireLimits.maxPlaintextLength`.
    ///
    /// Dynamic programming over the suffixes: a frame starting at entry `i` uses some bucket,
    /// and then it should hold as many entries as that bucket fits, since a shorter suffix
    /// never costs more to send. So each suffix has at most one candidate per bucket.
    public static func frameEnds(sizes: [Int]) -> [Int] {
        let n = sizes.count
        guard n > 1 else { return n == 1 ? [1] : [] }  // most sends: nothing to choose
        var prefix = [Int](repeating: 0, count: n + 1)
        for i in 0..<n { prefix[i + 1] = prefix[i] + sizes[i] }
        // cost[i]: the least bytes for entries i..<n; next[i]: where the first frame of that ends.
        var cost = [Int](repeating: 0, count: n + 1)
        var next = [Int](repeating: n, count: n + 1)
        for i in stride(from: n - 1, through: 0, by: -1) {
            var best = Int.max
            var bestEnd = i + 1
            let lastAllowed = min(n, i + WireLimits.maxBundleEntries)
            for bucket in WireLimits.frameBodyBuckets {
                let end = furthest(from: i, upTo: lastAllowed, capacity: bucket - WireLimits.tagLength, prefix: prefix)
                guard end > i else { continue }
                let total = WireLimits.frameHeaderLength + bucket + cost[end]
                if total < best || (total == best && end > bestEnd) {
                    best = total
                    bestEnd = end
                }
            }
            precondition(best != .max, "an entry longer than the largest frame")
            cost[i] = best
            next[i] = bestEnd
        }
        var ends: [Int] = []
        var i = 0
        while i < n {
            i = next[i]
            ends.append(i)
        }
        return ends
    }

    /// The last `end` in `start...limit` whose entries `start..<end` fit in `capacity` bytes.
    private static func furthest(from start: Int, upTo limit: Int, capacity: Int, prefix: [Int]) -> Int {
        var low = start
        var high = limit
        while low < high {
            let mid = (low + high + 1) / 2
            if prefix[mid] - prefix[start] <= capacity { low = mid } else { high = mid - 1 }
        }
        return low
    }

    /// The bytes `frameEnds` costs on the wire, sealed lengths included (for tests and benches).
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
