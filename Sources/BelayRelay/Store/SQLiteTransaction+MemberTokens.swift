import Foundation
import GRDB

/// Member tokens on SQLite. NEW reads one row by its hash (a unique index) and counts a queue
/// against it; `belayd token` adds, lists and deletes rows, each in a transaction of its own.
extension SQLiteTransaction {
    func memberToken(hash: [UInt8]) throws -> MemberTokenRow? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT id, hash, label, quota, used FROM member_token WHERE hash = ?"), arguments: [Data(hash)]
        ).map(Self.tokenRow)
    }

    func spendMemberToken(id: Int64) throws -> Bool {
        try db.cachedStatement(sql: "UPDATE member_token SET used = used + 1 WHERE id = ? AND used < quota").execute(arguments: [id])
        return db.changesCount == 1
    }

    func insertMemberToken(hash: [UInt8], label: String?, quota: Int) throws -> Int64 {
        if let label, try Bool.fetchOne(db, sql: "SELECT 1 FROM member_token WHERE label = ?", arguments: [label]) != nil {
            throw MemberTokenError.labelTaken(label)
        }
        try db.execute(
            sql: "INSERT INTO member_token(hash, label, quota) VALUES (?, ?, ?)", arguments: [Data(hash), label, quota])
        return db.lastInsertedRowID
    }

    func memberTokens() throws -> [MemberTokenRow] {
        try Row.fetchAll(db, sql: "SELECT id, hash, label, quota, used FROM member_token ORDER BY id").map(Self.tokenRow)
    }

    func deleteMemberToken(id: Int64) throws -> Bool {
        try db.execute(sql: "DELETE FROM member_token WHERE id = ?", arguments: [id])
        return db.changesCount == 1
    }

    private static func tokenRow(_ row: Row) -> MemberTokenRow {
        MemberTokenRow(id: row[0], hash: [UInt8](row[1] as Data), label: row[2], quota: row[3], used: row[4])
    }
}
