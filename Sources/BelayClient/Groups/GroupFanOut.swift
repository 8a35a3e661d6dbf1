import BelayE2E
import BelaySodium
import Foundation
import GRDB

/// How a group message reaches members: one pairwise ratchet message each, through the outbox,
/// or held for a member not yet paired with us until the pairing completes.
extension Agent {
    var ownIdentity: Data { Data(identity.publicIdentity.bytes) }

    /// Contacts by identity, opened once for a fan-out.
    func contactsByIdentity(_ db: Database) throws -> [Data: ClientStore.Row<ContactRecord>] {
        var map: [Data: ClientStore.Row<ContactRecord>] = [:]
        for row in try store.contacts(db) { map[row.record.identity] = map[row.record.identity] ?? row }
        return map
    }

    /// Members a group message goes to: everyone who joined and has not left, but us.
    func recipients(_ state: GroupState, _ record: GroupRecord) -> [Data] {
        state.active.map { Data($0.identity.bytes) }.filter { $0 != ownIdentity && record.isActive($0, in: state) }
    }

    /// Queues `message` for each of `identities` inside the caller's transaction, or holds it
    /// for those not paired with us yet (at most `GroupRecord.maxHeld`, oldest dropped first).
    /// Returns the contact rows to flush.
    @discardableResult
    func fanOut(
        _ message: GroupMessage, to identities: [Data], record: inout GroupRecord, contacts: inout [Data: ClientStore.Row<ContactRecord>],
        _ db: Database
    ) throws -> [Int64] {
        let body = message.encoded()
        var queued: [Int64] = []
        for identity in identities where identity != ownIdentity {
            if var row = contacts[identity], !row.record.awaitingHello {
                try queue([(.group, body, nil)], for: &row, db)
                contacts[identity] = row
                queued.append(row.id)
            } else {
                // Bounded: past the limit the oldest waiting message goes. Never an error, since
                // this also runs while a delivery is being recorded, and one member who never
                // pairs must not stop the group.
                if record.held.count >= GroupRecord.maxHeld { record.held.removeFirst() }
                record.held.append(.init(identity: identity, body: Data(body), createdAt: now()))
            }
        }
        return queued
    }

    /// Delivers the outboxes of `ids` over one pool; a relay that cannot be reached leaves its
    /// messages queued, and its contact is named in the result.
    func flushEach(_ ids: [Int64], pool existing: RelayPool? = nil) async -> [Int64] {
        guard let pool = existing else { return (try? await withRelayPool { await flushEach(ids, pool: $0) }) ?? ids }
        // Each member's queue has its own connection (so the relay cannot link them by it), and
        // most of a send is waiting for the relay: several members at once, each in order.
        let failed = await withTaskGroup(of: Int64?.self) { tasks -> [Int64] in
            var failed: [Int64] = []
            var pending = Set(ids).sorted()[...]
            func next() {
                guard let id = pending.popFirst() else { return }
                tasks.addTask {
                    do {
                        try await self.flush(contact: id, pool: pool)
                        return nil
                    } catch { return id }
                }
            }
            for _ in 0..<max(1, fanOutParallelism) { next() }
            while let result = await tasks.next() {
                if let id = result { failed.append(id) }
                next()
            }
            return failed.sorted()
        }
        return failed
    }

    /// Members' outboxes a fan-out flushes at once.
    public static let defaultFanOutParallelism = 8

    /// What to call a member: our contact name for them if we have one, else the name in the
    /// group's state.
    func displayName(_ identity: Data, state: GroupState?, contacts: [Data: ClientStore.Row<ContactRecord>]) -> String {
        if identity == ownIdentity { return "you" }
        if let c = contacts[identity] { return c.record.name }
        if let m = state?.members.first(where: { Data($0.identity.bytes) == identity }), !m.name.isEmpty { return m.name }
        return "someone"
    }

    /// A name no contact has yet, from `wanted`.
    func freeContactName(_ wanted: String, _ db: Database) throws -> String {
        let taken = try store.contacts(db).map(\.record.name) + (try store.invitations(db).compactMap(\.record.name))
        return Names.unique((try? Self.validate(name: wanted)) ?? "member", among: taken)
    }

    /// Signs the successor of `current` made by `change`, as this admin.
    func successor(of current: GroupState, _ change: (inout GroupState) -> Void) throws -> GroupState {
        var next = current
        change(&next)
        next.version = current.version + 1
        next.previous = try current.hash()
        next.signer = identity.publicIdentity
        try next.sign(with: identity)
        return next
    }
}
