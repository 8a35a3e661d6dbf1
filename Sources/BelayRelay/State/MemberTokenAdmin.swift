import BelaySodium

/// `belayd token`: adds, lists and revokes members' queue-creation tokens in the relay's store,
/// each in a transaction of its own, while the relay runs or not. The relay reads the table at
/// every NEW, so a change counts from the next one.
public struct MemberTokenAdmin {
    let store: any QueueStore

    public init(store: any QueueStore) {
        self.store = store
    }

    /// Makes a token with `quota` queues; returns its id and the token, which is never stored
    /// and cannot be shown again.
    public func add(label: String?, quota: Int, random: some RandomSource = SystemRandom()) throws -> (id: Int64, token: String) {
        let label = try label.map { l throws(MemberTokenError) in try MemberToken.validate(label: l) }
        guard (1...MemberToken.maxQuota).contains(quota) else { throw MemberTokenError.invalidQuota }
        let token = MemberToken.generate(random: random)
        let hash = try MemberToken.hash(Array(token.utf8))
        var id: Int64 = 0
        try store.transaction { tx in
            guard try tx.memberTokens().count < MemberToken.maxTokens else { throw MemberTokenError.tooMany }
            id = try tx.insertMemberToken(hash: hash, label: label, quota: quota)
        }
        return (id, token)
    }

    public func list() throws -> [MemberTokenRow] {
        var rows: [MemberTokenRow] = []
        try store.transaction { tx in rows = try tx.memberTokens() }
        return rows
    }

    /// Deletes the token with this id, or else this label; returns what it was.
    public func revoke(_ idOrLabel: String) throws -> MemberTokenRow {
        var revoked: MemberTokenRow?
        try store.transaction { tx in
            let rows = try tx.memberTokens()
            guard let row = rows.first(where: { Int64(idOrLabel) == $0.id }) ?? rows.first(where: { $0.label == idOrLabel }) else {
                throw MemberTokenError.unknown(idOrLabel)
            }
            _ = try tx.deleteMemberToken(id: row.id)
            revoked = row
        }
        guard let revoked else { throw MemberTokenError.unknown(idOrLabel) }
        return revoked
    }
}
