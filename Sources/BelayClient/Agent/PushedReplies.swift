import BelayWire
import Synchronization

/// What relays push (MSG and END) to one command's connections, kept per lane until the command
/// takes it: `read` subscribes to a queue and records what the relay pushed a window at a time.
final class PushedReplies: Sendable {
    private let waiting = Mutex<[RelayPool.Lane: [RelayReply]]>([:])

    /// A relay pushes at most `WireLimits.subscriptionWindow` unacknowledged messages per
    /// queue; a hostile one may push without end. Past this many waiting on a lane, more are
    /// not kept: none of them is acknowledged, so the relay still holds each one for a later read.
    static let maxWaitingPerLane = 4 * WireLimits.subscriptionWindow

    func add(_ replies: [RelayReply], for lane: RelayPool.Lane) {
        guard !replies.isEmpty else { return }
        waiting.withLock { w in
            let room = Self.maxWaitingPerLane - (w[lane]?.count ?? 0)
            guard room > 0 else { return }
            w[lane, default: []] += replies.prefix(room)
        }
    }

    /// Everything pushed on `lane` since the last call, in order; never waits.
    func take(_ lane: RelayPool.Lane) -> [RelayReply] {
        waiting.withLock { $0.removeValue(forKey: lane) ?? [] }
    }
}
