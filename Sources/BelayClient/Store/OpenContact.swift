import BelayE2E
import BelaySodium
import Foundation
import GRDB

/// A contact's record and its ratchet while a batch of its deliveries is recorded inside one
/// write transaction. The ratchet is restored from the record when first needed, advanced in
/// memory, and written back with the record once, by `save`, instead of being restored,
/// serialised and sealed around every message. Nothing reaches the disk before the
/// transaction commits, so a crash before then leaves the old state and the relay keeps every
/// delivery of the batch (none is acknowledged before the commit).
struct OpenContact {
    /// The record as it will be saved. Any change through this property marks it for saving.
    var row: ClientStore.Row<ContactRecord> {
        didSet { recordChanged = true }
    }
    private var ratchet: Ratchet?
    private var ratchetChanged = false
    private var recordChanged = false
    /// Deleted by code `handOver` ran: nothing more is recorded or saved for it.
    private(set) var isGone = false

    init?(id: Int64, _ store: ClientStore, _ db: Database) throws {
        guard let row = try store.contact(id: id, db) else { return nil }
        self.row = row
    }

    var id: Int64 { row.id }
    var record: ContactRecord { row.record }

    /// Runs `body` on the contact's ratchet, restoring it on first use. The ratchet counts as
    /// changed only if `body` returns: `Envelope.open` throws without touching it.
    /// A stored ratchet that does not restore (damaged, or written by a later version) is
    /// `stateDamaged`, not an E2E error: the batch then rolls back and nothing is acknowledged,
    /// instead of every message being counted as rejected and deleted at the relay.
    mutating func withRatchet<T>(_ body: (inout Ratchet) throws -> T) throws -> T {
        var current: Ratchet
        if let ratchet {
            current = ratchet
        } else {
            do {
                current = try Ratchet(serialized: SecureBytes(copying: [UInt8](row.record.ratchet)))
            } catch {
                throw ClientError.stateDamaged("the stored session with this contact cannot be read (\(error)); was it written by a newer belay?")
            }
        }
        let result = try body(&current)
        ratchet = current
        ratchetChanged = true
        return result
    }

    /// Writes the record, with the ratchet serialised into it, if either changed.
    mutating func save(_ store: ClientStore, _ db: Database) throws {
        guard !isGone else { return }
        if ratchetChanged, let ratchet {
            var state = try ratchet.serialized().unprotectedCopy()
            defer { Sodium.wipe(&state) }
            row.record.ratchet = Data(state)
            ratchetChanged = false
        }
        guard recordChanged else { return }
        try store.updateContact(row, db)
        recordChanged = false
    }

    /// Saves, lets `body` work on the database (code that opens and may change this contact's
    /// row itself: queueing a reply to it advances its ratchet), then reads the row back, so
    /// that neither copy overwrites the other.
    mutating func handOver<T>(_ store: ClientStore, _ db: Database, _ body: (ContactRecord) throws -> T) throws -> T {
        try save(store, db)
        let result = try body(row.record)
        if let fresh = try store.contact(id: row.id, db) {
            row = fresh
        } else {
            isGone = true
        }
        recordChanged = false
        ratchet = nil
        return result
    }
}
