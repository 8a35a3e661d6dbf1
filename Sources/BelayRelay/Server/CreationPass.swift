import BelayWire

/// What lets a NEW go ahead, decided on the connection before the core sees it
/// (docs/PROTOCOL.md §5).
enum CreationPass: Equatable {
    /// Open creation, or one of the configured `creation_tokens`: the source's creation rate
    /// applies.
    case open
    /// A member token, which the core checks against the store and counts against its quota.
    /// The source's creation rate does not apply: the quota bounds it, and through Tor a
    /// source is many people, whom a stranger on the same exit must not lock out.
    case memberToken(hash: [UInt8])
    case refused(RelayErrorCode)
}

extension ConnectionSettings {
    /// On a relay with open creation, tokens are not looked at: a client keeping a token for a
    /// relay that no longer needs one is not refused for it.
    func creationPass(token: [UInt8]) -> CreationPass {
        guard configuration.requiresCreationToken else { return .open }
        guard !token.isEmpty else { return .refused(.token) }
        if configuration.isConfiguredToken(token) { return .open }
        guard let hash = try? MemberToken.hash(token) else { return .refused(.token) }
        return .memberToken(hash: hash)
    }
}
