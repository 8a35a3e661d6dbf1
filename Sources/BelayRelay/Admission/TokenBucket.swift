import NIOCore

/// A token bucket: `burst` at once, refilled at `perSecond`. Time comes from the caller (an
/// event loop's clock, or the admission table's injected one), so tests can move it.
struct TokenBucket: Sendable {
    let perSecond: Double
    let burst: Double
    private var tokens: Double
    private var last: NIODeadline?

    init(perSecond: Double, burst: Double) {
        self.perSecond = perSecond
        self.burst = burst
        tokens = burst
    }

    mutating func take(now: NIODeadline) -> Bool {
        refill(now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// Returns a token taken for something that did not happen after all.
    mutating func giveBack() {
        tokens = min(burst, tokens + 1)
    }

    /// Whether the bucket has refilled completely by `now`: its state then says nothing an
    /// empty entry would not, so the entry can be forgotten.
    mutating func isFull(now: NIODeadline) -> Bool {
        refill(now)
        return tokens >= burst
    }

    private mutating func refill(_ now: NIODeadline) {
        if let last, now > last {
            let elapsed = Double((now - last).nanoseconds) / 1e9
            tokens = min(burst, tokens + elapsed * perSecond)
        }
        if last == nil || now > last! { last = now }
    }
}
