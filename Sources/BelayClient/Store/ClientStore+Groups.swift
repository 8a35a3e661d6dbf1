import BelayE2E
import BelayWire
import Foundation
import GRDB

/// Groups, their history and introductions in the client's database, each row sealed by the
/// vault under a context naming its table (and, for history, its group row).
extension ClientStore {
    func groupTag(_ id: [UInt8]) throws -> [UInt8] { try requireVault().tag("group " + Hex.encode(id)) }

    func groups(_ db: Database) throws -> [Row<GroupRecord>] {
        let vault = try requireVault()
        return try GRDB.Row.fetchAll(db, sql: "SELECT id, sealed FROM grp ORDER BY id").map { row in
            let sealed: Data = row["sealed"]
            return Row(id: row["id"], record: try vault.openRecord(GroupRecord.self, [UInt8](sealed), context: "group"))
        }
    }

    func group(id: [UInt8], _ db: Database) throws -> Row<GroupRecord>? {
        guard let row = try GRDB.Row.fetchOne(db, sql: "SELECT id, sealed FROM grp WHERE tag = ?", arguments: [Data(try groupTag(id))]) else {
            return nil
        }
        let sealed: Data = row["sealed"]
        return Row(id: row["id"], record: try requireVault().openRecord(GroupRecord.self, [UInt8](sealed), context: "group"))
    }

    /// The group with this local name, preferring one still going over one that ended.
    func group(named name: String, _ db: Database) throws -> Row<GroupRecord>? {
        let matching = try groups(db).filter { Names.same($0.record.localName, name) }
        return matching.first { !$0.record.status.isOver } ?? matching.last
    }

    @discardableResult
    func insertGroup(_ record: GroupRecord, id: [UInt8], _ db: Database) throws -> Int64 {
        try db.execute(
            sql: "INSERT INTO grp(tag, sealed) VALUES (?, ?)",
            arguments: [Data(try groupTag(id)), Data(try requireVault().sealRecord(record, context: "group"))])
        return db.lastInsertedRowID
    }

    func updateGroup(_ row: Row<GroupRecord>, _ db: Database) throws {
        try db.execute(sql: "UPDATE grp SET sealed = ? WHERE id = ?", arguments: [Data(try requireVault().sealRecord(row.record, context: "group")), row.id])
    }

    @discardableResult
    func appendGroupHistory(_ entry: HistoryEntry, group: Int64, _ db: Database) throws -> Int64 {
        try appendTrimmed(table: "group_history", owner: "group_id", group, sealed: try requireVault().sealRecord(entry, context: "group history:\(group)"), db)
    }

    func groupHistory(group: Int64, _ db: Database) throws -> [(id: Int64, entry: HistoryEntry)] {
        let vault = try requireVault()
        return try GRDB.Row.fetchAll(db, sql: "SELECT id, sealed FROM group_history WHERE group_id = ? ORDER BY id", arguments: [group]).map { row in
            let sealed: Data = row["sealed"]
            return (row["id"], try vault.openRecord(HistoryEntry.self, [UInt8](sealed), context: "group history:\(group)"))
        }
    }

    func updateGroupHistory(id: Int64, group: Int64, _ entry: HistoryEntry, _ db: Database) throws {
        try db.execute(
            sql: "UPDATE group_history SET sealed = ? WHERE id = ? AND group_id = ?",
            arguments: [Data(try requireVault().sealRecord(entry, context: "group history:\(group)")), id, group])
    }

    /// Deletes a group's history (secure_delete overwrites the freed pages).
    func deleteGroupHistory(group: Int64, _ db: Database) throws {
        try db.execute(sql: "DELETE FROM group_history WHERE group_id = ?", arguments: [group])
    }

    /// Deletes a group's record and its history.
    func deleteGroup(_ id: Int64, _ db: Database) throws {
        try deleteGroupHistory(group: id, db)
        try db.execute(sql: "DELETE FROM grp WHERE id = ?", arguments: [id])
    }

    func updateInvitation(_ row: Row<InvitationRecord>, _ db: Database) throws {
        try db.execute(
            sql: "UPDATE invitation SET sealed = ? WHERE id = ?", arguments: [Data(try requireVault().sealRecord(row.record, context: "invitation")), row.id])
    }

    // MARK: Introductions

    func introductions(_ db: Database) throws -> [Row<IntroRecord>] {
        let vault = try requireVault()
        return try GRDB.Row.fetchAll(db, sql: "SELECT id, sealed FROM intro ORDER BY id").map { row in
            let sealed: Data = row["sealed"]
            return Row(id: row["id"], record: try vault.openRecord(IntroRecord.self, [UInt8](sealed), context: "intro"))
        }
    }

    func saveIntroduction(_ row: Row<IntroRecord>?, _ record: IntroRecord, _ db: Database) throws {
        let sealed = Data(try requireVault().sealRecord(record, context: "intro"))
        if let row {
            try db.execute(sql: "UPDATE intro SET sealed = ? WHERE id = ?", arguments: [sealed, row.id])
        } else {
            try db.execute(sql: "INSERT INTO intro(sealed) VALUES (?)", arguments: [sealed])
        }
    }

    func deleteIntroduction(_ id: Int64, _ db: Database) throws {
        try db.execute(sql: "DELETE FROM intro WHERE id = ?", arguments: [id])
    }
}
