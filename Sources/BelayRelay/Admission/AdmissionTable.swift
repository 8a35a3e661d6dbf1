import NIOCore

/// The connection limits an operator sets (docs/OPERATIONS.md, "Limits").
struct AdmissionLimits: Sendable, Equatable {
    var maxConnections: Int
    var maxPerSource: Int
    var maxHandshaking: Int
    var maxHandshakingPerSource: Int
    var handshakesPerSecondPerSource: Double
    var handshakeBurstPerSource: Double
    var creationsPerSecondPerSource: Double
    var creationBurstPerSource: Double

    init(_ c: RelayConfiguration) {
        maxConnections = c.maxConnections
        maxPerSource = c.maxConnectionsPerSource
        maxHandshaking = c.maxHandshaking
        maxHandshakingPerSource = c.maxHandshakingPerSource
        handshakesPerSecondPerSource = Double(c.handshakeRatePerSource)
        handshakeBurstPerSource = Double(c.handshakeBurstPerSource)
        creationsPerSecondPerSource = Double(c.creationRatePerSource) / 60
        creationBurstPerSource = Double(c.creationBurstPerSource)
    }
}

/// Who may connect, decided without I/O: per-source caps on open and handshaking connections,
/// a per-source handshake rate, and, when the relay is full, room made by closing a connection
/// of the heaviest source rather than refusing a newcomer who holds less than it.
struct AdmissionTable {
    typealias ConnectionID = UInt64

    enum Phase: Equatable { case handshaking, established }

    enum Refusal: Error, Equatable, CaseIterable {
        case sourceConnections, sourceHandshaking, handshakeRate, full
    }

    enum Decision: Equatable {
        case admit(ConnectionID)
        /// Admit, and close `evict` (already forgotten here) to make room.
        case admitEvicting(ConnectionID, evict: ConnectionID)
        case refuse(Refusal)
    }

    /// Per-source rate state outlives the source's connections (or reconnecting would reset
    /// it), but not without bound: past this many sources, idle ones are forgotten.
    static let maxTrackedSources = 65_536

    private struct Source {
        var handshaking: Set<ConnectionID> = []
        var established: Set<ConnectionID> = []
        var handshakes: TokenBucket
        var creations: TokenBucket
        var open: Int { handshaking.count + established.count }

        /// Nothing an absent entry would not say: no connection, and both rates refilled.
        mutating func isIdle(now: NIODeadline) -> Bool {
            open == 0 && handshakes.isFull(now: now) && creations.isFull(now: now)
        }
    }

    let limits: AdmissionLimits
    private var sources: [SourceKey: Source] = [:]
    private var connections: [ConnectionID: SourceKey] = [:]
    private var nextID: ConnectionID = 1
    private(set) var handshakingCount = 0
    private(set) var refused: [Refusal: Int] = [:]
    private(set) var evicted = 0

    init(limits: AdmissionLimits) {
        self.limits = limits
    }

    var count: Int { connections.count }
    var trackedSources: Int { sources.count }

    func openConnections(from source: SourceKey) -> Int { sources[source]?.open ?? 0 }

    mutating func admit(_ key: SourceKey, now: NIODeadline) -> Decision {
        let known = sources[key] != nil
        var source =
            sources[key]
            ?? Source(
                handshakes: TokenBucket(perSecond: limits.handshakesPerSecondPerSource, burst: limits.handshakeBurstPerSource),
                creations: TokenBucket(perSecond: limits.creationsPerSecondPerSource, burst: limits.creationBurstPerSource))
        let refusal: Refusal?
        if source.open >= limits.maxPerSource {
            refusal = .sourceConnections
        } else if source.handshaking.count >= limits.maxHandshakingPerSource {
            refusal = .sourceHandshaking
        } else if !source.handshakes.take(now: now) {
            refusal = .handshakeRate
        } else {
            refusal = nil
        }
        // A refused newcomer that had no entry leaves none: refusals must not grow the table.
        if known || refusal == nil { sources[key] = source }
        if let refusal { return refuse(refusal) }

        var victim: ConnectionID?
        if handshakingCount >= limits.maxHandshaking {
            // Failing a heavier source, the oldest unfinished handshake anywhere: a real one takes
            // a round trip, so many sources each holding one stalled handshake cannot keep
            // newcomers out.
            guard let v = victimOfHeaviest(than: source.handshaking.count, by: { $0.handshaking.count }) ?? oldestHandshaking()
            else { return refuseFull(key, known: known) }
            victim = v
        } else if connections.count >= limits.maxConnections {
            guard let v = victimOfHeaviest(than: source.open, by: { $0.open }) else { return refuseFull(key, known: known) }
            victim = v
        }
        if let victim { forget(victim) }

        let id = nextID
        nextID += 1
        sources[key, default: source].handshaking.insert(id)
        connections[id] = key
        handshakingCount += 1
        pruneIfNeeded(now: now)
        if let victim {
            evicted += 1
            return .admitEvicting(id, evict: victim)
        }
        return .admit(id)
    }

    /// Whether a connection from `key` may create a queue or a timer now (and counts it).
    mutating func takeCreation(_ key: SourceKey, now: NIODeadline) -> Bool {
        // A connection whose source has no entry was evicted and is closing: it creates nothing.
        guard sources[key] != nil else { return false }
        return sources[key]!.creations.take(now: now)
    }

    mutating func established(_ id: ConnectionID) {
        guard let key = connections[id], sources[key]?.handshaking.remove(id) != nil else { return }
        sources[key]?.established.insert(id)
        handshakingCount -= 1
    }

    /// The connection closed (or was evicted, which already forgot it: then a no-op).
    mutating func closed(_ id: ConnectionID) {
        forget(id)
    }

    private mutating func forget(_ id: ConnectionID) {
        guard let key = connections.removeValue(forKey: id) else { return }
        if sources[key]?.handshaking.remove(id) != nil { handshakingCount -= 1 }
        sources[key]?.established.remove(id)
    }

    /// A newcomer turned away because the relay is full leaves no entry it did not have.
    private mutating func refuseFull(_ key: SourceKey, known: Bool) -> Decision {
        if !known { sources[key] = nil }
        return refuse(.full)
    }

    private mutating func refuse(_ reason: Refusal) -> Decision {
        refused[reason, default: 0] += 1
        return .refuse(reason)
    }

    /// The source holding the most (by `weight`), if it holds at least two more than the
    /// newcomer's source: after the swap it still holds no less than the newcomer. Its oldest
    /// handshaking connection goes first (cheapest to lose), else its newest established one.
    private func victimOfHeaviest(than newcomer: Int, by weight: (Source) -> Int) -> ConnectionID? {
        guard let heaviest = sources.values.max(by: { weight($0) < weight($1) }), weight(heaviest) > newcomer + 1 else { return nil }
        if let oldest = heaviest.handshaking.min() { return oldest }
        return heaviest.established.max() ?? heaviest.handshaking.min()
    }

    private func oldestHandshaking() -> ConnectionID? {
        sources.values.compactMap { $0.handshaking.min() }.min()
    }

    /// Forgets sources with no connection whose rate has refilled: their entry says nothing an
    /// empty one would not, and the address should not stay in memory longer than it matters.
    mutating func pruneIdle(now: NIODeadline) {
        for (key, var source) in sources where source.isIdle(now: now) {
            sources[key] = nil
        }
    }

    private mutating func pruneIfNeeded(now: NIODeadline) {
        guard sources.count > Self.maxTrackedSources else { return }
        pruneIdle(now: now)
        guard sources.count > Self.maxTrackedSources else { return }
        // Still too many: forget idle sources even mid-refill, so memory stays bounded.
        for (key, source) in sources where source.open == 0 {
            sources[key] = nil
        }
    }
}
