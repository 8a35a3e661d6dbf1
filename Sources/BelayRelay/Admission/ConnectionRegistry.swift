import NIOCore
import Synchronization

/// Live connections, shared by every event loop: admission (the `AdmissionTable`'s decisions),
/// the handle a connection uses to report its handshake, and closing them all at shutdown.
final class ConnectionRegistry: Sendable {
    private struct State {
        var table: AdmissionTable
        var channels: [AdmissionTable.ConnectionID: Channel] = [:]
        /// The admission id of each admitted channel, until its initializer has taken it.
        var unclaimed: [ObjectIdentifier: AdmissionTable.ConnectionID] = [:]
        var reported = Counts()
    }

    private let state: Mutex<State>
    private let now: @Sendable () -> NIODeadline
    private let metrics: RelayMetrics

    init(limits: AdmissionLimits, now: @escaping @Sendable () -> NIODeadline = { .now() }, metrics: RelayMetrics = .disabled) {
        state = Mutex(State(table: AdmissionTable(limits: limits)))
        self.now = now
        self.metrics = metrics
    }

    /// Admits `channel` or refuses it; a refused channel is for the caller to close. When the
    /// relay is full, this closes a connection of the heaviest source to make room.
    func admit(_ channel: Channel) -> Result<AdmissionTable.ConnectionID, AdmissionTable.Refusal> {
        let source = SourceKey(channel.remoteAddress)
        let time = now()
        let (result, victim): (Result<AdmissionTable.ConnectionID, AdmissionTable.Refusal>, Channel?) = state.withLock { s in
            switch s.table.admit(source, now: time) {
            case let .admit(id):
                s.channels[id] = channel
                s.unclaimed[ObjectIdentifier(channel)] = id
                return (.success(id), nil)
            case let .admitEvicting(id, evict):
                s.channels[id] = channel
                s.unclaimed[ObjectIdentifier(channel)] = id
                return (.success(id), s.channels.removeValue(forKey: evict))
            case let .refuse(reason):
                return (.failure(reason), nil)
            }
        }
        victim?.close(promise: nil)
        if case .success = result {
            metrics.connectionsAccepted.increment()
            metrics.connectionsOpen.set(count)
        }
        return result
    }

    /// `admit`, and whatever becomes of an admitted channel from here (set up, or failed
    /// before), its slot comes back when it closes. False: refused, for the caller to close.
    func admitUntilClosed(_ channel: Channel) -> Bool {
        guard case let .success(id) = admit(channel) else { return false }
        channel.closeFuture.whenComplete { [self] _ in remove(id, channel: channel) }
        return true
    }

    func takeCreation(_ source: SourceKey) -> Bool {
        let time = now()
        return state.withLock { $0.table.takeCreation(source, now: time) }
    }

    /// The id `admit` gave this channel; nil if it was not admitted. Each id is claimed once.
    func claim(_ channel: Channel) -> AdmissionTable.ConnectionID? {
        state.withLock { $0.unclaimed.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func established(_ id: AdmissionTable.ConnectionID) {
        state.withLock { $0.table.established(id) }
    }

    func remove(_ id: AdmissionTable.ConnectionID, channel: Channel) {
        let open = state.withLock { s in
            s.table.closed(id)
            s.channels[id] = nil
            s.unclaimed[ObjectIdentifier(channel)] = nil
            return s.channels.count
        }
        metrics.connectionsOpen.set(open)
    }

    var count: Int { state.withLock { $0.channels.count } }

    func all() -> [Channel] { state.withLock { Array($0.channels.values) } }

    /// Aggregate counts for the log: never an address.
    struct Counts: Equatable, Sendable {
        var open = 0
        var handshaking = 0
        var refused = 0
        var evicted = 0
    }

    func counts() -> Counts {
        state.withLock { Self.counts($0) }
    }

    /// Refusals and evictions since the last call, with the current totals; nil if none.
    func newSinceLastReport() -> Counts? {
        let time = now()
        return state.withLock { s in
            s.table.pruneIdle(now: time)
            let now = Self.counts(s)
            let delta = Counts(
                open: now.open, handshaking: now.handshaking,
                refused: now.refused - s.reported.refused, evicted: now.evicted - s.reported.evicted)
            s.reported = now
            return delta.refused + delta.evicted > 0 ? delta : nil
        }
    }

    private static func counts(_ s: State) -> Counts {
        Counts(
            open: s.table.count, handshaking: s.table.handshakingCount,
            refused: s.table.refused.values.reduce(0, +), evicted: s.table.evicted)
    }
}
