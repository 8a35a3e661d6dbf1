import BelayWire
import Synchronization

/// Collects pushes (MSG, END) as they arrive so a test can await the next ones.
final class PushInbox: Sendable {
    private let state = Mutex<(items: [RelayReply], waiters: [(Int, CheckedContinuation<[RelayReply], Never>)])>(([], []))

    var handler: @Sendable (RelayReply) -> Void { { [self] reply in self.append(reply) } }

    func append(_ reply: RelayReply) {
        let ready: [(CheckedContinuation<[RelayReply], Never>, [RelayReply])] = state.withLock { s in
            s.items.append(reply)
            var out: [(CheckedContinuation<[RelayReply], Never>, [RelayReply])] = []
            s.waiters.removeAll { (count, c) in
                guard s.items.count >= count else { return false }
                out.append((c, Array(s.items.prefix(count))))
                return true
            }
            return out
        }
        for (c, items) in ready { c.resume(returning: items) }
    }

    /// Waits until at least `count` pushes have arrived and returns the first `count`.
    func first(_ count: Int) async -> [RelayReply] {
        await withCheckedContinuation { c in
            let items: [RelayReply]? = state.withLock { s in
                if s.items.count >= count { return Array(s.items.prefix(count)) }
                s.waiters.append((count, c))
                return nil
            }
            if let items { c.resume(returning: items) }
        }
    }

    var all: [RelayReply] { state.withLock { $0.items } }
}

extension RelayReply {
    var delivery: Delivery? {
        if case let .message(d) = self { return d }
        return nil
    }
}
