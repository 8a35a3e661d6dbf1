import BelayWire
import Synchronization

/// What relays push (MSG and END) to one command's connections, kept per lane until the command
/// takes it: `read` subscribes to a queue and records what the relay pushed a window at a time.
final class PushedReplies: Sendable {
    private let waiting = Mutex<[RelayPool.Lane: [RelayReply]]>([:])

    func add(_ replies: [RelayReply], for lane: RelayPool.Lane) {
        guard !replies.isEmpty else { return }
        waiting.withLock { $0[lane, default: []] += replies }
    }

    /// Everything pushed on `lane` since the last call, in order; never waits.
    func take(_ lane: RelayPool.Lane) -> [RelayReply] {
        waiting.withLock { $0.removeValue(forKey: lane) ?? [] }
    }
}
