import Synchronization

/// The ephemeral keys of the last `capacity` valid message 1s this relay answered (docs/
/// PROTOCOL.md §2.1). A censor who records a client's first 64 bytes and replays them to a
/// suspected relay would otherwise get a fresh message 2, and so confirm a Belay relay without
/// knowing its key; a replay of a key in here is read and dropped like noise instead. Only
/// messages that decrypted enter it, so junk cannot flush it; whoever can flush it with real
/// handshakes already knows the relay's address. It lives in memory, per frontend: a replay of a
/// message 1 older than the last `capacity` handshakes, or from before a restart, or to another
/// frontend, is still answered (docs/THREAT-MODEL.md).
public final class HandshakeReplayCache: Sendable {
    /// How many recent handshakes are remembered: at 16 bytes a key plus the set's overhead,
    /// about 12 MiB; a day of a busy organisation's connections.
    public static let defaultCapacity = 1 << 18

    /// The first 16 bytes of a key (with its masked bit cleared): 128 bits, so two honest
    /// clients' keys never collide.
    struct Key: Hashable {
        var high: UInt64
        var low: UInt64
    }

    private struct State {
        var seen: Set<Key> = []
        /// Oldest first, as a ring: `next` is where the following key goes.
        var order: [Key] = []
        var next = 0
    }

    private let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int = defaultCapacity) {
        precondition(capacity > 0, "a replay cache needs room for one key")
        self.capacity = capacity
    }

    /// True the first time `ephemeral` (an unmasked X25519 key) is offered; false for a replay.
    func firstSight(of ephemeral: [UInt8]) -> Bool {
        guard ephemeral.count >= 16 else { return false }
        let key = Key(
            high: ephemeral[0..<8].reduce(0) { $0 << 8 | UInt64($1) }, low: ephemeral[8..<16].reduce(0) { $0 << 8 | UInt64($1) })
        return state.withLock { s in
            guard s.seen.insert(key).inserted else { return false }
            if s.order.count < capacity {
                s.order.append(key)
            } else {
                s.seen.remove(s.order[s.next])
                s.order[s.next] = key
                s.next = (s.next + 1) % capacity
            }
            return true
        }
    }
}
