import BelaySodium
import BelayWire
import NIOCore
import NIOPosix

/// The relay connections one command uses, opened on first need and closed together. Proofs
/// are per connection (docs/PROTOCOL.md §4), so the pool remembers which it has made.
final class RelayPool: @unchecked Sendable {
    let group: EventLoopGroup
    let onPush: @Sendable (RelayAddress, RelayReply) -> Void
    private var connections: [RelayAddress: RelayConnection] = [:]
    private var proven: Set<[UInt8]> = []

    init(group: EventLoopGroup, onPush: @escaping @Sendable (RelayAddress, RelayReply) -> Void = { _, _ in }) {
        self.group = group
        self.onPush = onPush
    }

    func connection(_ text: String) async throws -> RelayConnection {
        guard let address = try? RelayAddress(parsing: text) else { throw ClientError.stateDamaged("a stored relay address does not parse") }
        return try await connection(address)
    }

    func connection(_ address: RelayAddress) async throws -> RelayConnection {
        if let c = connections[address], c.channel.isActive { return c }
        do {
            let push = onPush
            let c = try await RelayConnection.connect(to: address, group: group) { reply in push(address, reply) }
            connections[address] = c
            proven = proven.filter { !$0.starts(with: Array(address.description.utf8)) }
            return c
        } catch let error as RelayClientError {
            throw ClientError.relayUnreachable(relay: address.host + ":\(address.port)", why: "\(error)", queued: 0)
        }
    }

    /// Proves `key` for `entity` on this relay's connection, once.
    func authorise(_ role: AuthRole, _ entity: EntityID, key: Ed25519.SigningKey, on connection: RelayConnection) async throws {
        let marker = Array(connection.address.description.utf8) + [role.rawValue] + entity.bytes
        if proven.contains(marker) { return }
        try await connection.authorise(role, entity, key: key)
        proven.insert(marker)
    }

    func closeAll() async {
        for c in connections.values { await c.close() }
        connections = [:]
    }
}
