import BelaySodium
import BelayWire
import NIOCore

/// Pushes (MSG, END) a connection holds back for a random delay when `delivery_jitter` is on,
/// so that an observer of both the sender's and the recipient's links cannot pair a SEND with
/// the MSG it caused by their times (docs/THREAT-MODEL.md). The pushes of one batch from the
/// core wait one random delay, up to the jitter, together (they would leave in one frame
/// anyway), but never leave before those held before them: a queue's messages keep their
/// order. What a connection holds is bounded by what the core pushed to it, which its
/// subscription windows bound.
struct HeldPushes {
    /// Pushes one connection may hold at once. The core's subscription windows bound what it
    /// pushes, but with a thousand subscriptions that is 16,000 bodies; past this many, pushes
    /// leave without jitter rather than wait in memory.
    static let maxHeld = 1_024

    private var held: [(release: NIODeadline, reply: RelayReply)] = []
    /// The first entry not yet released (entries before it are spent).
    private var head = 0

    var isEmpty: Bool { head == held.count }

    /// Whether `count` more pushes may be held.
    func hasRoom(for count: Int) -> Bool { held.count - head + count <= Self.maxHeld }

    /// When the next push is due, if any is held.
    var nextRelease: NIODeadline? { isEmpty ? nil : held[head].release }

    /// Holds `replies` until a random time in `now ... now + jitter`, or later if pushes held
    /// before them are held longer.
    mutating func hold(_ replies: [RelayReply], now: NIODeadline, jitter: TimeAmount, random: RandomSource) {
        guard !replies.isEmpty else { return }
        var release = now + .nanoseconds(Int64(random.uniform(upTo: UInt64(max(0, jitter.nanoseconds)))))
        if let last = held.last, head < held.count, last.release > release { release = last.release }
        for reply in replies { held.append((release, reply)) }
    }

    /// The pushes due at `now`, in order; they are no longer held.
    mutating func due(now: NIODeadline) -> [RelayReply] {
        var out: [RelayReply] = []
        while head < held.count, held[head].release <= now {
            out.append(held[head].reply)
            head += 1
        }
        if head == held.count {
            held.removeAll(keepingCapacity: true)
            head = 0
        }
        return out
    }
}
