import BelayE2E
import BelayWire
import Foundation
import GRDB

/// What a group needs from the relays after messages have been read: pairings between members
/// who do not know each other yet, and messages held until those pairings complete.
extension Agent {
    /// Invitations for members we are not paired with (made by the one of each two whose
    /// identity sorts first, so only one is made), invitations from members accepted, and held
    /// messages (passed-on invitations among them) sent. Errors become warnings: reading must not fail for them.
    func groupFollowUps(pool: RelayPool) async -> [ReadEvent] {
        var events: [ReadEvent] = []
        guard let groups = try? read({ db in try store.groups(db).filter { $0.record.status == .joined && $0.record.hasState } }),
            !groups.isEmpty, var contacts = try? read({ db in try contactsByIdentity(db) })
        else { return await acceptIntroductions() }
        for g in groups {
            do {
                events += try await introduceMembers(g, contacts: contacts, pool: pool)
                let paired = try await acceptMembers(g.id, pool: pool)
                // New contacts: the next group must see them, or it would invite them again.
                if !paired.isEmpty { contacts = try read { db in try contactsByIdentity(db) } }
                events += paired
            } catch {
                events.append(
                    ReadEvent(
                        kind: .warning, contact: nil, text: "\(g.record.localName): pairing with its members is not finished: \(error)",
                        group: g.record.localName))
            }
        }
        events += await acceptIntroductions()
        if let ids = try? releaseHeld() { _ = await flushEach(ids, pool: pool) }
        return events
    }

    private func introduceMembers(_ g: ClientStore.Row<GroupRecord>, contacts: [Data: ClientStore.Row<ContactRecord>], pool: RelayPool)
        async throws -> [ReadEvent]
    {
        let state = try g.record.decodedState()
        guard state.member(identity.publicIdentity)?.joined == true else { return [] }
        // An invitation not answered by the time it expired is made again.
        let stale = Self.defaultInvitationLifetime + Self.invitationReplyGrace
        let due = recipients(state, g.record).filter { id in
            contacts[id] == nil && ownIdentity.lexicographicallyPrecedes(id)
                && (!g.record.introduced.contains(id) || now() > (g.record.introducedAt[Hex.encode([UInt8](id))] ?? 0) + stale)
        }
        guard !due.isEmpty else { return [] }
        // The courier: an admin we are paired with, who passes the invitation on.
        guard
            let courier = state.members.filter(\.isAdmin).map({ Data($0.identity.bytes) })
                .first(where: { $0 != ownIdentity && contacts[$0].map { !$0.record.awaitingHello } == true })
                ?? (state.member(identity.publicIdentity)?.isAdmin == true ? ownIdentity : nil),
            let relay = ownRelay(contacts)
        else { return [] }
        var ids: [Int64] = []
        for member in due {
            let name = try read { db in try freeContactName(displayName(member, state: state, contacts: contacts), db) }
            let invitation = try await invite(relay: relay, name: name, lifetime: nil, expecting: member)
            ids += try write { db -> [Int64] in
                guard var g = try store.group(id: state.id, db) else { return [] }
                var contacts = try contactsByIdentity(db)
                if !g.record.introduced.contains(member) { g.record.introduced.append(member) }
                g.record.introducedAt[Hex.encode([UInt8](member))] = now()
                let message = GroupMessage.introduce(group: state.id, for: try PublicIdentity(bytes: [UInt8](member)), invitation: invitation)
                // An admin making the invitation sends it straight to the member (once paired),
                // otherwise through the courier.
                let ids = try fanOut(message, to: [courier == ownIdentity ? member : courier], record: &g.record, contacts: &contacts, db)
                try store.updateGroup(g, db)
                return ids
            }
        }
        _ = await flushEach(ids, pool: pool)
        return []
    }

    private func acceptMembers(_ groupRow: Int64, pool: RelayPool) async throws -> [ReadEvent] {
        var events: [ReadEvent] = []
        let g = try read { db in try store.groups(db).first { $0.id == groupRow } }
        guard let g, g.record.status == .joined, g.record.hasState else { return [] }
        let state = try g.record.decodedState()
        for incoming in g.record.toAccept {
            let contacts = try read { db in try contactsByIdentity(db) }
            if contacts[incoming.identity] == nil {
                let name = try read { db in try freeContactName(displayName(incoming.identity, state: state, contacts: contacts), db) }
                do {
                    // Our own queue goes on our own relay (the one our inbox from the admin who
                    // invited us is on), not on a relay another member chose.
                    let outcome = try await accept(incoming.invitation, name: name, relay: ownRelay(contacts), token: nil, command: nil)
                    events.append(
                        ReadEvent(
                            kind: .paired, contact: name,
                            text: "paired with \(name), a member of \(g.record.localName)"
                                + (outcome.deliveryError.map { "; the reply is queued (\($0))" } ?? ""), group: g.record.localName))
                } catch ClientError.invalidInput(let why) {
                    // Used or expired: it will never work; the member makes a new one once it expires.
                    events.append(
                        ReadEvent(
                            kind: .warning, contact: name,
                            text: "an invitation from \(name), a member of \(g.record.localName), "
                                + "cannot be used (\(why)); a new one comes when it expires", group: g.record.localName))
                }
            }
            try write { db in
                guard var g = try store.group(id: state.id, db) else { return }
                g.record.toAccept.removeAll { $0.identity == incoming.identity }
                try store.updateGroup(g, db)
            }
        }
        return events
    }

    /// Queues held messages for members now paired with us; returns the contacts to flush.
    func releaseHeld() throws -> [Int64] {
        // Run after every read and, in a watch, after every delivery: with nothing held, it
        // opens no contact and writes nothing.
        guard try read({ db in try store.groups(db).contains { $0.record.status == .joined && !$0.record.held.isEmpty } }) else { return [] }
        return try write { db in
            var contacts = try contactsByIdentity(db)
            var ids: [Int64] = []
            for var g in try store.groups(db) where g.record.status == .joined && !g.record.held.isEmpty {
                var still: [GroupRecord.Held] = []
                for held in g.record.held {
                    guard var row = contacts[held.identity], !row.record.awaitingHello else {
                        still.append(held)
                        continue
                    }
                    try queue([(.group, [UInt8](held.body), nil)], for: &row, db)
                    contacts[held.identity] = row
                    ids.append(row.id)
                }
                g.record.held = still
                try store.updateGroup(g, db)
            }
            return ids
        }
    }

    /// The relay this person's own queues are on: that of their oldest contact's inbox.
    func ownRelay(_ contacts: [Data: ClientStore.Row<ContactRecord>]) -> RelayAddress? {
        contacts.values.min { $0.id < $1.id }.flatMap { try? RelayAddress(parsing: $0.record.inbox.relay) }
    }
}
