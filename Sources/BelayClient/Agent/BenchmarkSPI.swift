import BelaySodium
import BelayWire

/// What `belay-bench` needs to watch a client's inboxes at the relay without being that client:
/// not part of the library's API (it hands out recipient keys), so only importable as
/// `@_spi(Bench) import BelayClient`.
@_spi(Bench) public struct InboxTap: Sendable {
    public let relay: RelayAddress
    public let recipientId: EntityID
    public let key: Ed25519.SigningKey
}

extension Agent {
    @_spi(Bench) public func inboxTaps() throws -> [InboxTap] {
        try read { db in
            try store.contacts(db).map { row in
                let keys = try InboxKeys(row.record.inbox)
                guard let relay = try? RelayAddress(parsing: row.record.inbox.relay) else {
                    throw ClientError.stateDamaged("a stored relay address does not parse")
                }
                return InboxTap(relay: relay, recipientId: keys.recipientId, key: keys.key)
            }
        }
    }
}
