import BelaySodium
import BelayWire
import NIOCore

extension Agent {
    /// Fetches `address`'s signed policy over a Noise session to the pinned key and checks it
    /// (docs/PROTOCOL.md §3.4): signed by the policy key it names, speaking for this relay, and
    /// signed by the same policy key as before if this person has used the relay. The first time,
    /// the policy key is pinned. Returns the policy and whether this was the first time.
    /// `trustingNewKey`: the person has confirmed with the operator, out of band, that the relay
    /// has a new policy key; the one it signs with now replaces the pinned one.
    public func relayPolicy(_ address: RelayAddress, trustingNewKey: Bool = false) async throws -> (policy: RelayPolicy, firstUse: Bool) {
        try await Self.withConnection(to: address, connector: relayConnector) { try await checkPolicy(on: $0, trustingNewKey: trustingNewKey) }
    }

    /// The policy check on a connection already open (invite and accept use theirs).
    func checkPolicy(on connection: RelayConnection, trustingNewKey: Bool = false) async throws -> (policy: RelayPolicy, firstUse: Bool) {
        let address = connection.address
        let name = try policyPinName(address)
        let pinned = try read { db in try store.meta(name, db) }.map { try store.requireVault().open($0, context: "relay-policy") }
        let policy = try await Self.fetchPolicy(on: connection, pinned: trustingNewKey ? nil : pinned)
        if let pinned, !trustingNewKey || pinned == policy.policyKey { return (policy, false) }
        try write { db in try store.setMeta(name, try store.requireVault().seal(policy.policyKey, context: "relay-policy"), db) }
        guard pinned == nil else { return (policy, false) }  // a new key, trusted knowingly
        onNewRelay?(address, policy)
        return (policy, true)
    }

    /// Without local state (`belay relay info` before `belay init`): fetches and checks the
    /// policy, pinning nothing.
    public static func fetchPolicy(_ address: RelayAddress, group: EventLoopGroup, route: RelayRoute) async throws -> RelayPolicy {
        try await withConnection(to: address, connector: .tcp(group: group, route: route)) { try await fetchPolicy(on: $0, pinned: nil) }
    }

    /// One connection for `body`, closed exactly once whatever `body` does.
    private static func withConnection<T>(
        to address: RelayAddress, connector: RelayConnector, _ body: (RelayConnection) async throws -> T
    ) async throws -> T {
        let connection: RelayConnection
        do {
            connection = try await connector.open(address) { _ in }
        } catch let error as RelayClientError {
            throw relayError(error, address)
        }
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    static func fetchPolicy(on connection: RelayConnection, pinned: [UInt8]?) async throws -> RelayPolicy {
        let reply: RelayReply
        do {
            reply = try await connection.call(.info)
        } catch RelayClientError.relay(.unknownCommand) {
            throw ClientError.relayPolicyInvalid(relay: connection.address.description, why: "the relay publishes no policy")
        } catch let error as RelayClientError {
            throw relayError(error, connection.address)
        }
        guard case let .policy(document, signature) = reply else {
            throw ClientError.relayPolicyInvalid(relay: connection.address.description, why: "the relay answered INFO with \(reply)")
        }
        do {
            return try RelayPolicy.verify(
                document: document, signature: signature, relayKey: connection.address.publicKey, sessionHash: connection.sessionHash,
                pinnedPolicyKey: pinned)
        } catch {
            throw ClientError.relayPolicyInvalid(relay: connection.address.description, why: error.description)
        }
    }

    /// Where the pinned policy key of a relay lives: a keyed tag of its key, so the state does
    /// not say in the clear which relays a person uses.
    private func policyPinName(_ address: RelayAddress) throws -> String {
        "relay-policy:" + Hex.encode(try store.requireVault().tag("relay-policy " + Hex.encode(address.publicKey)))
    }
}
