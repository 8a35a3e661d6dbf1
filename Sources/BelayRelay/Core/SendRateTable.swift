import NIOCore

/// SENDs per queue, from every connection and address together: through Tor a flood arrives
/// on many circuits, and only the queue it aims at is the same each time. A sender id names
/// exactly one queue, so this is the limit per sender id and per recipient queue at once.
///
/// Time is the relay's clock in whole seconds: a bucket refills once a second. Memory is
/// bounded: a queue whose bucket has refilled is forgotten at the next prune, and past
/// `maxTrackedQueues` a queue that is not tracked goes unlimited rather than refused.
struct SendRateTable {
    /// Queues tracked at once, like the admission table's sources: about 4 MiB at most. Filling
    /// it takes that many queues each sending within one burst's refill time.
    static let maxTrackedQueues = 65_536

    let perSecond: Double
    let burst: Double
    private var buckets: [Int64: TokenBucket] = [:]
    /// When a full table was last pruned: at most once a second, so that an attacker keeping it
    /// full cannot make every SEND scan it.
    private var lastPrune: UInt64 = 0

    init(perSecond: Int, burst: Int) {
        self.perSecond = Double(perSecond)
        self.burst = Double(burst)
    }

    var count: Int { buckets.count }

    /// Whether `queue` may take one more SEND at `now`; counts it if so. `charged` says whether a
    /// token was taken (and may be given back).
    mutating func take(queue: Int64, now: UInt64) -> (allowed: Bool, charged: Bool) {
        let deadline = Self.deadline(now)
        if buckets[queue] == nil {
            if buckets.count >= Self.maxTrackedQueues, now > lastPrune {
                lastPrune = now
                prune(now: now)
            }
            guard buckets.count < Self.maxTrackedQueues else { return (true, false) }
            buckets[queue] = TokenBucket(perSecond: perSecond, burst: burst)
        }
        let allowed = buckets[queue]!.take(now: deadline)
        return (allowed, allowed)
    }

    /// Gives back the tokens of SENDs whose transaction rolled back: they were not executed.
    mutating func refund(_ queues: [Int64]) {
        for queue in queues { buckets[queue]?.giveBack() }
    }

    /// A deleted queue's row may be given to a new queue, which must not inherit its bucket.
    mutating func forget(queue: Int64) {
        buckets[queue] = nil
    }

    /// Forgets queues whose buckets have refilled: their entry says nothing an absent one would not.
    mutating func prune(now: UInt64) {
        let deadline = Self.deadline(now)
        for (queue, var bucket) in buckets where bucket.isFull(now: deadline) {
            buckets[queue] = nil
        }
    }

    private static func deadline(_ seconds: UInt64) -> NIODeadline {
        .uptimeNanoseconds(seconds.multipliedReportingOverflow(by: 1_000_000_000).partialValue)
    }
}
