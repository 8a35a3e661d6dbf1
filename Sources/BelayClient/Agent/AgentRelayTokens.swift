import BelaySodium
import BelayWire

extension Agent {
    /// An organisation token is a short secret (docs/PROTOCOL.md §5); NEW carries at most this.
    public static let maxRelayTokenLength = WireLimits.maxTokenLength

    /// Keeps `token` for `relay`: every later command that creates a queue there presents it.
    public func setRelayToken(_ token: String, for relay: RelayAddress) throws {
        let bytes = try Self.validate(token: token)
        try write { db in try store.setRelayToken(bytes, for: relay, db) }
    }

    /// Forgets the token kept for `relay`; whether there was one.
    @discardableResult
    public func clearRelayToken(for relay: RelayAddress) throws -> Bool {
        try write { db in try store.deleteRelayToken(for: relay, db) }
    }

    /// The addresses of the relays a token is kept for.
    public func relaysWithTokens() throws -> [String] {
        try read { db in try store.relaysWithTokens(db) }
    }

    /// The token kept for `relay`, or empty.
    func keptToken(for relay: RelayAddress) throws -> [UInt8] {
        try read { db in try store.relayToken(for: relay, db) } ?? []
    }

    static func validate(token: String) throws -> [UInt8] {
        let trimmed = token.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.utf8.count <= maxRelayTokenLength else {
            throw ClientError.invalidInput("an organisation token is 1 to \(maxRelayTokenLength) bytes")
        }
        // Configured `creation_tokens` may hold spaces; none holds a control character.
        guard !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw ClientError.invalidInput("an organisation token has no control characters; copy it exactly as the operator gave it")
        }
        return Array(trimmed.utf8)
    }

    /// Creates a queue on `relay` through `connection`, presenting `explicit` (the command's
    /// `--token`) or else the token kept for that relay. A token given explicitly is kept once
    /// the relay has accepted it, so the commands after this one reuse it. `command` is the
    /// command to suggest with `--token` when the relay asks for a token (nil: the command that
    /// keeps one for the relay).
    func createQueue(
        on connection: RelayConnection, relay: RelayAddress, recipientKey: Ed25519.SigningKey, token explicit: String?, command: String?
    ) async throws -> (recipient: EntityID, sender: EntityID) {
        let given = try explicit.map(Self.validate(token:))
        let token = try given ?? keptToken(for: relay)
        let ids: (recipient: EntityID, sender: EntityID)
        do {
            ids = try await connection.createQueue(recipientKey: recipientKey, token: token)
        } catch RelayClientError.relay(.token) {
            let retry = command.map { "belay \($0) --token TOKEN" } ?? "belay relay token set '\(relay)' TOKEN"
            throw ClientError.tokenRequired(relay: relay.host + ":\(relay.port)", presented: !token.isEmpty, retry: retry)
        }
        if let given { try write { db in try store.setRelayToken(given, for: relay, db) } }
        return ids
    }
}
