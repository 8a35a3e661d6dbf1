import BelaySodium
import BelayWire
import NIOCore
import NIOPosix
import Synchronization

/// The relay connections one command uses, opened on first need and closed together. Each
/// queue gets its own connection (its "lane"), so the relay cannot link a person's contacts by
/// the connection they arrive on (docs/THREAT-MODEL.md); through a proxy, each connection also
/// gets its own SOCKS credentials, so Tor gives each lane its own circuit and exit (`RelayRoute`).
/// Proofs are per connection
/// (docs/PROTOCOL.md §4), so the pool remembers which it has made. Safe to use from several
/// tasks at once (a group's fan-out flushes members' outboxes in parallel).
final class RelayPool: Sendable {
    struct Lane: Hashable, Sendable {
        var address: RelayAddress
        var queue: [UInt8]
    }

    let connector: RelayConnector
    /// Receives each connection's pushes, those of one read from the socket together.
    let onPush: @Sendable (Lane, [RelayReply]) -> Void
    private let state = Mutex<(connections: [Lane: RelayConnection], proven: Set<[UInt8]>)>(([:], []))

    init(connector: RelayConnector, onPush: @escaping @Sendable (Lane, [RelayReply]) -> Void = { _, _ in }) {
        self.connector = connector
        self.onPush = onPush
    }

    func connection(_ text: String, lane queue: EntityID) async throws -> RelayConnection {
        guard let address = try? RelayAddress(parsing: text) else { throw ClientError.stateDamaged("a stored relay address does not parse") }
        return try await connection(address, lane: queue)
    }

    func connection(_ address: RelayAddress, lane queue: EntityID? = nil) async throws -> RelayConnection {
        let lane = Lane(address: address, queue: queue?.bytes ?? [])
        if let c = state.withLock({ $0.connections[lane] }), c.channel.isActive { return c }
        do {
            let push = onPush
            let c = try await connector.open(address) { replies in push(lane, replies) }
            state.withLock { s in
                s.connections[lane] = c
                s.proven = s.proven.filter { !$0.starts(with: ObjectIdentifier(c).hashValue.bytes) }
            }
            return c
        } catch let error as RelayClientError {
            throw Agent.relayError(error, address)
        }
    }

    /// Proves `key` for `entity` on this relay's connection, once.
    func authorise(_ role: AuthRole, _ entity: EntityID, key: Ed25519.SigningKey, on connection: RelayConnection) async throws {
        let marker = ObjectIdentifier(connection).hashValue.bytes + [role.rawValue] + entity.bytes
        if state.withLock({ $0.proven.contains(marker) }) { return }
        try await connection.authorise(role, entity, key: key)
        _ = state.withLock { $0.proven.insert(marker) }
    }

    func closeAll() async {
        let all = state.withLock { s in
            defer { s.connections = [:] }
            return Array(s.connections.values)
        }
        for c in all { await c.close() }
    }
}

extension Int {
    fileprivate var bytes: [UInt8] { withUnsafeBytes(of: self) { Array($0) } }
}

extension Agent {
    /// Runs `body` with a fresh pool of relay connections and closes them exactly once, when it
    /// returns or throws: no connection outlives the command, and no stray task closes them later.
    func withRelayPool<T>(
        onPush: @escaping @Sendable (RelayPool.Lane, [RelayReply]) -> Void = { _, _ in },
        _ body: (RelayPool) async throws -> T
    ) async throws -> T {
        let pool = RelayPool(connector: relayConnector, onPush: onPush)
        do {
            let result = try await body(pool)
            await pool.closeAll()
            return result
        } catch {
            await pool.closeAll()
            throw error
        }
    }
}
