import BelayWire
import GRDB
import GRDBSQLite

/// The three statements every message passes through (insert, delete on acknowledgement, read
/// for delivery), prepared once on the raw SQLite connection. Bodies are bound in place
/// (SQLITE_STATIC) instead of being boxed and copied per call; this halves the store's CPU per
/// message. Everything else goes through GRDB. Used only on the core thread, inside a transaction.
final class HotStatements {
    struct Failure: Error, CustomStringConvertible {
        var code: Int32
        var message: String
        var description: String { "SQLite error \(code): \(message)" }
    }

    private let connection: OpaquePointer
    private let insert: OpaquePointer
    private let delete: OpaquePointer
    private let deleteKnown: OpaquePointer
    private let select: OpaquePointer

    init(_ db: Database) throws {
        guard let connection = db.sqliteConnection else { throw Failure(code: SQLITE_MISUSE, message: "database is closed") }
        self.connection = connection
        func prepare(_ sql: String) throws -> OpaquePointer {
            var statement: OpaquePointer?
            let rc = sqlite3_prepare_v3(connection, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
            guard rc == SQLITE_OK, let statement else {
                throw Failure(code: rc, message: String(cString: sqlite3_errmsg(connection)))
            }
            return statement
        }
        insert = try prepare("INSERT INTO message(queue_id, seq, expires_at, body) VALUES (?, ?, ?, ?)")
        delete = try prepare("DELETE FROM message WHERE queue_id = ? AND seq = ? RETURNING length(body)")
        deleteKnown = try prepare("DELETE FROM message WHERE queue_id = ? AND seq = ?")
        select = try prepare("SELECT seq, body FROM message WHERE queue_id = ? AND seq > ? ORDER BY seq LIMIT ?")
    }

    /// Must run before the connection closes.
    func finalize() {
        sqlite3_finalize(insert)
        sqlite3_finalize(delete)
        sqlite3_finalize(deleteKnown)
        sqlite3_finalize(select)
    }

    func insertMessage(queue: Int64, seq: UInt64, expiresAt: UInt64, body: [UInt8]) throws {
        defer {
            sqlite3_reset(insert)
            sqlite3_clear_bindings(insert)
        }
        sqlite3_bind_int64(insert, 1, queue)
        sqlite3_bind_int64(insert, 2, Int64(bitPattern: seq))
        sqlite3_bind_int64(insert, 3, Int64(clamping: expiresAt))
        let rc = body.withUnsafeBytes { b in
            sqlite3_bind_blob(insert, 4, b.baseAddress, Int32(b.count), nil)  // nil = SQLITE_STATIC: valid until reset
            return sqlite3_step(insert)
        }
        guard rc == SQLITE_DONE else { throw failure(rc) }
    }

    /// Deletes one message; its body length, or nil if it was not stored.
    func deleteMessage(queue: Int64, seq: UInt64) throws -> Int? {
        defer { sqlite3_reset(delete) }
        sqlite3_bind_int64(delete, 1, queue)
        sqlite3_bind_int64(delete, 2, Int64(bitPattern: seq))
        var length: Int?
        while true {
            let rc = sqlite3_step(delete)
            if rc == SQLITE_ROW {
                length = Int(sqlite3_column_int64(delete, 0))
            } else if rc == SQLITE_DONE {
                return length
            } else {
                throw failure(rc)
            }
        }
    }

    /// Deletes a message whose length the caller already knows (one it pushed): cheaper than
    /// `deleteMessage`, whose RETURNING makes SQLite buffer the result in a temporary table.
    /// Whether the message was stored.
    func deleteKnownMessage(queue: Int64, seq: UInt64) throws -> Bool {
        defer { sqlite3_reset(deleteKnown) }
        sqlite3_bind_int64(deleteKnown, 1, queue)
        sqlite3_bind_int64(deleteKnown, 2, Int64(bitPattern: seq))
        let rc = sqlite3_step(deleteKnown)
        guard rc == SQLITE_DONE else { throw failure(rc) }
        return sqlite3_changes(connection) == 1
    }

    func messages(queue: Int64, after seq: UInt64, limit: Int) throws -> [(UInt64, [UInt8])] {
        defer { sqlite3_reset(select) }
        sqlite3_bind_int64(select, 1, queue)
        sqlite3_bind_int64(select, 2, Int64(bitPattern: seq))
        sqlite3_bind_int64(select, 3, Int64(limit))
        var out: [(UInt64, [UInt8])] = []
        while true {
            let rc = sqlite3_step(select)
            if rc == SQLITE_DONE { return out }
            guard rc == SQLITE_ROW else { throw failure(rc) }
            let s = UInt64(bitPattern: sqlite3_column_int64(select, 0))
            let count = Int(sqlite3_column_bytes(select, 1))
            let body: [UInt8]
            if count > 0, let p = sqlite3_column_blob(select, 1) {
                body = [UInt8](UnsafeRawBufferPointer(start: p, count: count))
            } else {
                body = []
            }
            out.append((s, body))
        }
    }

    private func failure(_ rc: Int32) -> Failure {
        Failure(code: rc, message: String(cString: sqlite3_errmsg(connection)))
    }
}
