import NIOCore
import PostgresNIO

/// Member tokens on PostgreSQL. Spending is one conditional UPDATE: two frontends spending the
/// last queue of a token at once are ordered by its row lock, and only one succeeds.
extension PostgresTransaction {
    func memberToken(hash: [UInt8]) throws -> MemberTokenRow? {
        try run("SELECT id, hash, label, quota, used FROM member_token WHERE hash = \(Self.bytes(hash))").first.map(Self.tokenRow)
    }

    func spendMemberToken(id: Int64) throws -> Bool {
        try run("UPDATE member_token SET used = used + 1 WHERE id = \(id) AND used < quota RETURNING id").first != nil
    }

    func insertMemberToken(hash: [UInt8], label: String?, quota: Int) throws -> Int64 {
        if let label, try run("SELECT 1 FROM member_token WHERE label = \(label)").first != nil {
            throw MemberTokenError.labelTaken(label)
        }
        let rows = try run("INSERT INTO member_token(hash, label, quota) VALUES (\(Self.bytes(hash)), \(label), \(Int64(quota))) RETURNING id")
        guard let id = try rows.first?.decode(Int64.self) else { throw PostgresStoreError.unexpected("no token id") }
        return id
    }

    func memberTokens() throws -> [MemberTokenRow] {
        try run("SELECT id, hash, label, quota, used FROM member_token ORDER BY id").map(Self.tokenRow)
    }

    func deleteMemberToken(id: Int64) throws -> Bool {
        try run("DELETE FROM member_token WHERE id = \(id) RETURNING id").first != nil
    }

    private static func tokenRow(_ row: PostgresRow) throws -> MemberTokenRow {
        let (id, hash, label, quota, used) = try row.decode((Int64, ByteBuffer, String?, Int64, Int64).self)
        return MemberTokenRow(id: id, hash: Array(hash.readableBytesView), label: label, quota: Int(quota), used: Int(used))
    }
}
