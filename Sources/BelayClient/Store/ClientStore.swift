import BelayE2E
import BelaySodium
import BelayWire
import Foundation
import GRDB

/// The client's one SQLite database in `$BELAY_HOME`. Records are sealed by the vault; in the
/// clear are only row ids, keyed name tags and which contact a message row belongs to
/// (docs/THREAT-MODEL.md lists them). Immutable: opening gives a store without the vault, which
/// reads only what is in the clear; `unlocked(with:)` gives one with it, on the same database.
final class ClientStore: Sendable {
    static let fileName = "belay.db"
    /// Most history entries kept per contact; older ones are deleted as new ones arrive.
    static let maxHistoryPerContact = 10_000

    let queue: DatabaseQueue
    private let vault: Vault?

    /// Seconds to wait for another process's write to finish.
    static let busyTimeout: TimeInterval = 10

    private init(queue: DatabaseQueue, vault: Vault) {
        self.queue = queue
        self.vault = vault
    }

    init(path: String, create: Bool) throws {
        vault = nil
        var config = Configuration()
        // Another `belay` (a watcher and a command in a second terminal) may hold the write lock
        // for a moment: wait for it rather than fail.
        config.busyMode = .timeout(Self.busyTimeout)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA secure_delete = ON")
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        if !create, !FileManager.default.fileExists(atPath: path) { throw ClientError.stateDamaged("\(path) is missing") }
        if !create { try Self.checkReadOnly(path) }
        do {
            queue = try DatabaseQueue(path: path, configuration: config)
            // WAL: a crash leaves committed transactions in the log, replayed on the next open.
            _ = try queue.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
            try Self.migrator.migrate(queue)
        } catch let error as DatabaseError {
            throw ClientError.stateDamaged("\(path) cannot be read as a Belay database (\(error.resultCode))")
        }
    }

    /// Looks before writing: SQLite would happily turn an empty or zeroed file into a new
    /// database, and a damaged state must be left exactly as it was found. (Not a read-only
    /// connection: after a crash the WAL needs recovery, which only a writer may run.)
    private static func checkReadOnly(_ path: String) throws {
        let header = Array("SQLite format 3\u{0}".utf8)
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ClientError.stateDamaged("\(path) cannot be opened") }
        let start = (try? handle.read(upToCount: header.count)) ?? nil
        try? handle.close()
        guard let start, [UInt8](start) == header else {
            throw ClientError.stateDamaged("\(path) is not a Belay database (empty or overwritten)")
        }
        do {
            // A watcher in another process may be checkpointing: wait for it as the store does.
            var probeConfig = Configuration()
            probeConfig.busyMode = .timeout(Self.busyTimeout)
            let probe = try DatabaseQueue(path: path, configuration: probeConfig)
            defer { try? probe.close() }
            let ok = try probe.read { db in
                try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'") == 1
            }
            guard ok else { throw ClientError.stateDamaged("\(path) is not a Belay database") }
        } catch let error as DatabaseError {
            throw ClientError.stateDamaged("\(path) cannot be read as a Belay database (\(error.resultCode))")
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL);
                    CREATE TABLE contact (id INTEGER PRIMARY KEY, name_tag BLOB NOT NULL UNIQUE, sealed BLOB NOT NULL);
                    CREATE TABLE invitation (id INTEGER PRIMARY KEY, sealed BLOB NOT NULL);
                    CREATE TABLE history (id INTEGER PRIMARY KEY, contact_id INTEGER NOT NULL REFERENCES contact(id) ON DELETE CASCADE,
                                          sealed BLOB NOT NULL);
                    CREATE INDEX history_by_contact ON history(contact_id, id);
                    CREATE TABLE outbox (id INTEGER PRIMARY KEY, contact_id INTEGER NOT NULL REFERENCES contact(id) ON DELETE CASCADE,
                                         sealed BLOB NOT NULL);
                    """)
        }
        m.registerMigration("v2 check-ins") { db in
            try db.execute(sql: "CREATE TABLE checkin (id INTEGER PRIMARY KEY CHECK (id = 1), sealed BLOB NOT NULL)")
        }
        // v3: a keyed tag of each contact's inbox, so that a delivered message finds its contact
        // without opening every contact record. Filled on unlock for rows made before it.
        m.registerMigration("v3 inbox tags") { db in
            try db.execute(
                sql: """
                    ALTER TABLE contact ADD COLUMN inbox_tag BLOB;
                    CREATE UNIQUE INDEX contact_by_inbox ON contact(inbox_tag);
                    """)
        }
        // v4: groups and rosters, their history, and warm introductions (docs/GROUPS.md). A
        // group's row is found by a keyed tag of its id; its name is only inside the record.
        m.registerMigration("v4 groups") { db in
            try db.execute(
                sql: """
                    CREATE TABLE grp (id INTEGER PRIMARY KEY, tag BLOB NOT NULL UNIQUE, sealed BLOB NOT NULL);
                    CREATE TABLE group_history (id INTEGER PRIMARY KEY, group_id INTEGER NOT NULL REFERENCES grp(id) ON DELETE CASCADE,
                                                sealed BLOB NOT NULL);
                    CREATE INDEX group_history_by_group ON group_history(group_id, id);
                    CREATE TABLE intro (id INTEGER PRIMARY KEY, sealed BLOB NOT NULL);
                    """)
        }
        // v5: organisation tokens, one per relay, found by a keyed tag of the relay's address;
        // the address and the token are only inside the sealed record.
        m.registerMigration("v5 relay tokens") { db in
            try db.execute(sql: "CREATE TABLE relay_token (tag BLOB PRIMARY KEY NOT NULL, sealed BLOB NOT NULL)")
        }
        return m
    }

    // MARK: Check-in (at most one, armed or not)

    func checkin(_ db: Database) throws -> CheckinRecord? {
        guard let sealed = try Data.fetchOne(db, sql: "SELECT sealed FROM checkin WHERE id = 1") else { return nil }
        return try requireVault().openRecord(CheckinRecord.self, [UInt8](sealed), context: "checkin")
    }

    func setCheckin(_ record: CheckinRecord?, _ db: Database) throws {
        guard let record else { return try db.execute(sql: "DELETE FROM checkin") }
        try db.execute(
            sql: "INSERT OR REPLACE INTO checkin(id, sealed) VALUES (1, ?)",
            arguments: [Data(try requireVault().sealRecord(record, context: "checkin"))])
    }

    /// The same database, with the keys that open its records.
    func unlocked(with vault: Vault) -> ClientStore { ClientStore(queue: queue, vault: vault) }

    func requireVault() throws -> Vault {
        guard let vault else { throw ClientError.passphraseRequired }
        return vault
    }

    // MARK: Meta

    func meta(_ key: String, _ db: Database) throws -> [UInt8]? {
        try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]).map { [UInt8]($0) }
    }

    func setMeta(_ key: String, _ value: [UInt8], _ db: Database) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", arguments: [key, Data(value)])
    }

    // MARK: Contacts

    struct Row<T> {
        var id: Int64
        var record: T
    }

    /// Opens a row selected as `id, name_tag, sealed`; the name tag is the record's context.
    private func openContact(_ row: GRDB.Row) throws -> Row<ContactRecord> {
        let tag: Data = row["name_tag"]
        let sealed: Data = row["sealed"]
        return Row(id: row["id"], record: try requireVault().openRecord(ContactRecord.self, [UInt8](sealed), context: "contact:" + Hex.encode(tag)))
    }

    func contacts(_ db: Database) throws -> [Row<ContactRecord>] {
        try GRDB.Row.fetchAll(db, sql: "SELECT id, name_tag, sealed FROM contact ORDER BY id").map(openContact)
    }

    func contact(named name: String, _ db: Database) throws -> Row<ContactRecord>? {
        try GRDB.Row.fetchOne(
            db, sql: "SELECT id, name_tag, sealed FROM contact WHERE name_tag = ?",
            arguments: [Data(try requireVault().tag(name))]
        ).map(openContact)
    }

    @discardableResult
    func insertContact(_ c: ContactRecord, _ db: Database) throws -> Int64 {
        let vault = try requireVault()
        let tag = try vault.tag(c.name)
        try db.execute(
            sql: "INSERT INTO contact(name_tag, inbox_tag, sealed) VALUES (?, ?, ?)",
            arguments: [
                Data(tag), Data(try inboxTag(c.inbox.recipientId)),
                Data(try vault.sealRecord(c, context: "contact:" + Hex.encode(tag))),
            ])
        return db.lastInsertedRowID
    }

    func inboxTag(_ recipientId: Data) throws -> [UInt8] {
        try requireVault().tag("inbox " + Hex.encode(recipientId))
    }

    /// The contact whose inbox has this recipient id, found through its tag.
    func contact(inbox recipientId: Data, _ db: Database) throws -> Row<ContactRecord>? {
        try GRDB.Row.fetchOne(
            db, sql: "SELECT id, name_tag, sealed FROM contact WHERE inbox_tag = ?",
            arguments: [Data(try inboxTag(recipientId))]
        ).map(openContact)
    }

    /// The row id of the contact whose inbox has this recipient id, without opening its record.
    func contactId(inbox recipientId: Data, _ db: Database) throws -> Int64? {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM contact WHERE inbox_tag = ?"), arguments: [Data(try inboxTag(recipientId))])
    }

    func contact(id: Int64, _ db: Database) throws -> Row<ContactRecord>? {
        try GRDB.Row.fetchOne(db.cachedStatement(sql: "SELECT id, name_tag, sealed FROM contact WHERE id = ?"), arguments: [id]).map(openContact)
    }

    /// Tags the inboxes of contacts stored before the tags existed (migration v3).
    func fillMissingInboxTags(_ db: Database) throws {
        guard try Int.fetchOne(db, sql: "SELECT count(*) FROM contact WHERE inbox_tag IS NULL") ?? 0 > 0 else { return }
        for row in try contacts(db) {
            try db.execute(
                sql: "UPDATE contact SET inbox_tag = ? WHERE id = ? AND inbox_tag IS NULL",
                arguments: [Data(try inboxTag(row.record.inbox.recipientId)), row.id])
        }
    }

    func updateContact(_ row: Row<ContactRecord>, _ db: Database) throws {
        let vault = try requireVault()
        let tag = try vault.tag(row.record.name)
        try db.cachedStatement(sql: "UPDATE contact SET sealed = ? WHERE id = ? AND name_tag = ?").execute(
            arguments: [Data(try vault.sealRecord(row.record, context: "contact:" + Hex.encode(tag))), row.id, Data(tag)])
    }

    func deleteContact(_ id: Int64, _ db: Database) throws {
        try db.execute(sql: "DELETE FROM history WHERE contact_id = ?", arguments: [id])
        try db.execute(sql: "DELETE FROM outbox WHERE contact_id = ?", arguments: [id])
        try db.execute(sql: "DELETE FROM contact WHERE id = ?", arguments: [id])
    }

    // MARK: Invitations

    func invitations(_ db: Database) throws -> [Row<InvitationRecord>] {
        let vault = try requireVault()
        return try GRDB.Row.fetchAll(db, sql: "SELECT id, sealed FROM invitation ORDER BY id").map { row in
            let sealed: Data = row["sealed"]
            return Row(id: row["id"], record: try vault.openRecord(InvitationRecord.self, [UInt8](sealed), context: "invitation"))
        }
    }

    func insertInvitation(_ i: InvitationRecord, _ db: Database) throws {
        try db.execute(sql: "INSERT INTO invitation(sealed) VALUES (?)", arguments: [Data(try requireVault().sealRecord(i, context: "invitation"))])
    }

    func deleteInvitation(_ id: Int64, _ db: Database) throws {
        try db.execute(sql: "DELETE FROM invitation WHERE id = ?", arguments: [id])
    }

    // MARK: History and outbox

    /// Appends a history entry. `trimming` false leaves the trim to the caller, who appends
    /// several entries in one transaction and calls `trimHistory` once before it commits.
    @discardableResult
    func appendHistory(_ entry: HistoryEntry, contact: Int64, _ db: Database, trimming: Bool = true) throws -> Int64 {
        let sealed = try requireVault().sealRecord(entry, context: "history:\(contact)")
        let id = try append(table: "history", owner: "contact_id", contact, sealed: sealed, db)
        if trimming { try trim(table: "history", owner: "contact_id", contact, db) }
        return id
    }

    func trimHistory(contact: Int64, _ db: Database) throws {
        try trim(table: "history", owner: "contact_id", contact, db)
    }

    /// Inserts a history row and trims its owner's rows to the newest `maxHistoryPerContact`.
    /// `table` and `owner` are this file's constants.
    func appendTrimmed(table: String, owner: String, _ ownerId: Int64, sealed: [UInt8], _ db: Database) throws -> Int64 {
        let id = try append(table: table, owner: owner, ownerId, sealed: sealed, db)
        try trim(table: table, owner: owner, ownerId, db)
        return id
    }

    private func append(table: String, owner: String, _ ownerId: Int64, sealed: [UInt8], _ db: Database) throws -> Int64 {
        try db.cachedStatement(sql: "INSERT INTO \(table)(\(owner), sealed) VALUES (?, ?)").execute(arguments: [ownerId, Data(sealed)])
        return db.lastInsertedRowID
    }

    /// Finding the cut-off walks the (owner, id) index back over up to `maxHistoryPerContact`
    /// entries without reading a row: cheap once, but not per message of a long conversation,
    /// hence one trim per batch.
    private func trim(table: String, owner: String, _ ownerId: Int64, _ db: Database) throws {
        if let cutoff = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT id FROM \(table) WHERE \(owner) = ? ORDER BY id DESC LIMIT 1 OFFSET ?"),
            arguments: [ownerId, Self.maxHistoryPerContact])
        {
            try db.execute(sql: "DELETE FROM \(table) WHERE \(owner) = ? AND id <= ?", arguments: [ownerId, cutoff])
        }
    }

    /// History rows with their contact, for finding messages recorded but not yet shown.
    func historyRows(_ db: Database) throws -> [(id: Int64, contact: Int64, entry: HistoryEntry)] {
        let vault = try requireVault()
        return try GRDB.Row.fetchAll(db, sql: "SELECT id, contact_id, sealed FROM history ORDER BY id").map { row in
            let contact: Int64 = row["contact_id"]
            let sealed: Data = row["sealed"]
            return (row["id"], contact, try vault.openRecord(HistoryEntry.self, [UInt8](sealed), context: "history:\(contact)"))
        }
    }

    func updateHistory(id: Int64, contact: Int64, _ entry: HistoryEntry, _ db: Database) throws {
        try db.execute(
            sql: "UPDATE history SET sealed = ? WHERE id = ? AND contact_id = ?",
            arguments: [Data(try requireVault().sealRecord(entry, context: "history:\(contact)")), id, contact])
    }

    func history(contact: Int64, _ db: Database) throws -> [HistoryEntry] {
        let vault = try requireVault()
        return try Data.fetchAll(db, sql: "SELECT sealed FROM history WHERE contact_id = ? ORDER BY id", arguments: [contact]).map {
            try vault.openRecord(HistoryEntry.self, [UInt8]($0), context: "history:\(contact)")
        }
    }

    func enqueue(_ send: PendingSend, contact: Int64, _ db: Database) throws {
        try db.cachedStatement(sql: "INSERT INTO outbox(contact_id, sealed) VALUES (?, ?)").execute(
            arguments: [contact, Data(try requireVault().sealRecord(send, context: "outbox:\(contact)"))])
    }

    func pending(contact: Int64, _ db: Database) throws -> [Row<PendingSend>] {
        let vault = try requireVault()
        return try GRDB.Row.fetchAll(db, sql: "SELECT id, sealed FROM outbox WHERE contact_id = ? ORDER BY id", arguments: [contact]).map { row in
            let sealed: Data = row["sealed"]
            return Row(id: row["id"], record: try vault.openRecord(PendingSend.self, [UInt8](sealed), context: "outbox:\(contact)"))
        }
    }

    func pendingCount(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox") ?? 0
    }

    func removePending(_ id: Int64, _ db: Database) throws {
        try db.cachedStatement(sql: "DELETE FROM outbox WHERE id = ?").execute(arguments: [id])
    }
}
