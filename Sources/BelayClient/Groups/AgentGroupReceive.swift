import BelayE2E
import Foundation
import GRDB

/// Group messages arriving through a contact's ratchet. Everything runs inside the delivery's
/// write transaction: a state applied, a message recorded and anything sent in reply (queued in
/// the outbox) commit together, before the relay is told the delivery was received.
extension Agent {
    func groupEvents(_ content: Content, from sender: ContactRecord, notes: [String], received: UInt64, _ db: Database) throws -> [ReadEvent] {
        let message: GroupMessage
        do { message = try GroupMessage(decoding: content.body) } catch {
            return [ReadEvent(kind: .warning, contact: sender.name, text: "a group message from \(sender.name) could not be read and was dropped: \(error)")]
        }
        if case let .state(state) = message { return try apply(state, from: sender, db) }
        if case let .invite(group, name, roster, addedAt) = message {
            return try invited(to: group, name: name, roster: roster, addedAt: addedAt, by: sender, db)
        }
        guard var g = try store.group(id: message.group, db), g.record.status != .retired, g.record.hasState else {
            return []  // A group we are not in (or only invited to), or one that ended: nothing to show.
        }
        // A record that will not open must not stop this contact's messages: warn, and let the
        // delivery be acknowledged.
        guard let state = try? g.record.decodedState() else {
            return [
                ReadEvent(
                    kind: .warning, contact: sender.name,
                    text: "a message for \(g.record.localName) was dropped: this device's record of "
                        + "the group is damaged", group: g.record.localName)
            ]
        }
        var contacts = try contactsByIdentity(db)
        let from = sender.identity
        let who = sender.name
        var events: [ReadEvent] = []
        switch message {
        case .state, .invite:
            break
        case let .join(_, addedAt):
            guard g.record.status == .joined, confirmsChanges(state, g.record),
                let m = state.members.first(where: { Data($0.identity.bytes) == from }), m.addedAt == addedAt
            else { break }
            if m.joined {
                // A join sent again: our confirming state did not reach them. Send the current one.
                try fanOut(.state(state), to: [from], record: &g.record, contacts: &contacts, db)
                break
            }
            let next = try successor(of: state) { s in
                if let i = s.members.firstIndex(where: { $0.identity == m.identity }) { s.members[i].joined = true }
            }
            try publish(next, to: &g, contacts: &contacts, db)
            events.append(groupEvent(g.record, "\(who) joined \(g.record.localName)"))
        case .leave:
            guard let m = state.members.first(where: { Data($0.identity.bytes) == from }) else { break }
            let departure = GroupRecord.Departure(identity: from, addedAt: m.addedAt)
            guard !g.record.departed.contains(departure) else { break }
            g.record.departed.append(departure)
            g.record.held.removeAll { $0.identity == from }
            if g.record.status == .joined, confirmsChanges(state, g.record) {
                let next = try successor(of: state) { s in s.members.removeAll { $0.identity == m.identity } }
                try publish(next, to: &g, contacts: &contacts, db)
            }
            if !g.record.status.isOver { events.append(groupEvent(g.record, "\(who) left \(g.record.localName)")) }
        case let .text(_, version, text):
            guard g.record.status == .joined else { break }
            guard g.record.isActive(from, in: state) else {
                events.append(
                    ReadEvent(
                        kind: .warning, contact: who,
                        text: "a message to \(g.record.localName) from \(who) was refused: "
                            + "they are not a member of it (removed, left, or never joined)", group: g.record.localName))
                break
            }
            var notes = notes
            if version < state.version { notes.append("sent before the group's latest change of members") }
            // A member with a newer list than ours: a change of members did not reach us (a
            // relay dropped it, or it is still on its way).
            if version > state.version { notes.append("\(who) has a newer list of members than yours: a change to the group has not reached you yet") }
            let id = try store.appendGroupHistory(
                HistoryEntry(
                    direction: .incoming, kind: "text", sequence: content.sequence, sentAt: content.sentAt,
                    receivedAt: received, text: "\(who): \(text)", shown: false), group: g.id, db)
            var event = ReadEvent(
                kind: .group, contact: who, text: text, sentAt: content.sentAt, receivedAt: received,
                sequence: content.sequence, notes: notes, group: g.record.localName)
            event.groupHistoryId = id
            events.append(event)
        case let .introduce(_, target, invitation):
            try introduction(invitation, for: Data(target.bytes), from: sender, group: &g, state: state, contacts: &contacts, db)
        case let .duty(_, on, until):
            guard g.record.isActive(from, in: state) else { break }
            g.record.duty.removeAll { $0.identity == from }
            g.record.duty.append(.init(identity: from, on: on, until: until))
        case let .request(request):
            events += try requestArrived(request, from: sender, group: &g, state: state, at: received, db)
        case let .claimed(_, request, by):
            events += claimArrived(request, by: by, from: sender, group: &g, state: state, contacts: contacts)
        case let .unclaimed(_, request):
            events += unclaimedArrived(request, from: sender, group: &g, contacts: contacts, state: state)
        }
        try store.updateGroup(g, db)
        return events
    }

    /// Whether this client confirms joins and leaves with a new state: only the first admin in
    /// the list who is still in the group, so that two admins never sign competing versions.
    func confirmsChanges(_ state: GroupState, _ record: GroupRecord) -> Bool {
        state.members.first { $0.isAdmin && record.isActive(Data($0.identity.bytes), in: state) }?.identity == identity.publicIdentity
    }

    func groupEvent(_ record: GroupRecord, _ text: String, contact: String? = nil) -> ReadEvent {
        ReadEvent(kind: .group, contact: contact, text: text, group: record.localName)
    }

    /// Saves `next` as the group's state and sends it to everyone in it (but us).
    func publish(
        _ next: GroupState, to g: inout ClientStore.Row<GroupRecord>, contacts: inout [Data: ClientStore.Row<ContactRecord>],
        _ db: Database
    ) throws {
        g.record.state = Data(next.encoded())
        try fanOut(.state(next), to: next.members.filter(\.joined).map { Data($0.identity.bytes) }, record: &g.record, contacts: &contacts, db)
    }

    /// A member's invitation: for us to accept once we have joined, or, as an admin, to pass on.
    func introduction(
        _ text: String, for target: Data, from sender: ContactRecord, group g: inout ClientStore.Row<GroupRecord>, state: GroupState,
        contacts: inout [Data: ClientStore.Row<ContactRecord>], _ db: Database
    ) throws {
        guard let invitation = try? Invitation(text: text, now: now()) else { return }
        let inviter = Data(invitation.inviter.bytes)
        // Only between members who have both joined: someone only invited learns nobody this way.
        guard g.record.isActive(inviter, in: state), g.record.isActive(target, in: state) || target == ownIdentity,
            !g.record.status.isOver
        else { return }
        if target == ownIdentity {
            // Only for a member of the group, and only once: a contact we already have stays.
            guard contacts[inviter] == nil, !g.record.toAccept.contains(where: { $0.identity == inviter }),
                g.record.toAccept.count < GroupRecord.maxHeld
            else { return }
            g.record.toAccept.append(.init(identity: inviter, invitation: text))
        } else {
            // Passed on only for a member, by one of its admins, for the member who made it.
            guard inviter == sender.identity, g.record.status == .joined, state.member(identity.publicIdentity)?.isAdmin == true,
                state.members.contains(where: { Data($0.identity.bytes) == target })
            else { return }
            try fanOut(
                .introduce(group: state.id, for: try PublicIdentity(bytes: [UInt8](target)), invitation: text), to: [target],
                record: &g.record, contacts: &contacts, db)
        }
    }

    /// A signed state from a contact. The first one, after we joined, is taken on the word of
    /// the admin who invited us, who signed and sent it, and must show our join confirmed; after
    /// that only a successor is applied.
    func apply(_ state: GroupState, from sender: ContactRecord, _ db: Database) throws -> [ReadEvent] {
        guard state.signatureVerifies else {
            return [
                ReadEvent(kind: .security, contact: sender.name, text: "a change to a group from \(sender.name) was refused: its signature does not verify")
            ]
        }
        guard var g = try store.group(id: state.id, db), !(g.record.status.isOver && !g.record.hasState) else { return [] }
        if !g.record.hasState {
            guard g.record.status == .joined, let invitation = g.record.invitation, invitation.admin == sender.identity,
                Data(state.signer.bytes) == sender.identity, state.member(state.signer)?.isAdmin == true, !state.retired,
                let me = state.member(identity.publicIdentity), me.joined, me.addedAt == invitation.addedAt
            else { return [] }
            g.record.state = Data(state.encoded())
            g.record.invitation = nil
            try store.updateGroup(g, db)
            let contacts = try contactsByIdentity(db)
            let others = state.members.map { displayName(Data($0.identity.bytes), state: state, contacts: contacts) }.filter { $0 != "you" }
            return [
                groupEvent(
                    g.record, "\(sender.name) confirmed you in \(g.record.localName); its members: \(others.joined(separator: ", "))",
                    contact: sender.name)
            ]
        }
        var current = try g.record.decodedState()
        if state.version <= current.version {
            if state.version == current.version, state.encoded() != current.encoded() {
                return [
                    ReadEvent(
                        kind: .warning, contact: sender.name,
                        text: "two admins changed \(g.record.localName) at the same time, and the "
                            + "change \(sender.name) sent was not applied: members may now see different lists. Ask its admins to agree, "
                            + "and one of them to retire it and start it again if the lists stay apart", group: g.record.localName)
                ]
            }
            return []
        }
        guard state.version == current.version + 1 else {
            let encoded = Data(state.encoded())
            if g.record.future.count < GroupRecord.maxFuture, !g.record.future.contains(encoded) { g.record.future.append(encoded) }
            try store.updateGroup(g, db)
            return []
        }
        guard try state.follows(current) else {
            return [
                ReadEvent(
                    kind: .security, contact: sender.name,
                    text: "a change to \(g.record.localName) sent by \(sender.name) was refused: "
                        + "it is not signed by an admin of the group, or does not follow its current version", group: g.record.localName)
            ]
        }
        var events = try applied(state, over: current, to: &g, db)
        current = state
        // Later versions that arrived early follow now, in order.
        while let i = g.record.future.firstIndex(where: { (try? GroupState(decoding: [UInt8]($0)))?.version == current.version + 1 }) {
            let next = try GroupState(decoding: [UInt8](g.record.future.remove(at: i)))
            guard try next.follows(current), !g.record.status.isOver else { continue }
            events += try applied(next, over: current, to: &g, db)
            current = next
        }
        g.record.future.removeAll { (try? GroupState(decoding: [UInt8]($0)))?.version ?? 0 <= current.version }
        try store.updateGroup(g, db)
        return events
    }

    /// An admin's invitation: a name, not a member list. A group we are in, or were invited to
    /// already, is not replaced by it; one we left or were removed from may invite us again.
    private func invited(to id: [UInt8], name wanted: String, roster: Bool, addedAt: UInt64, by sender: ContactRecord, _ db: Database) throws -> [ReadEvent] {
        let existing = try store.group(id: id, db)
        if var existing, !(existing.record.status == .left || existing.record.status == .removed) {
            let waiting = existing.record.status == .invited || (existing.record.status == .joined && !existing.record.hasState)
            guard waiting else { return [] }
            guard existing.record.invitation?.admin == sender.identity else {
                return [
                    ReadEvent(
                        kind: .warning, contact: sender.name,
                        text: "\(sender.name) invited you to a group you were already invited to by "
                            + "someone else; the first invitation stands")
                ]
            }
            // The same admin again (removed and added back before we were confirmed): the newer
            // version is the one our join must name.
            let newest = max(existing.record.invitation?.addedAt ?? 0, addedAt)
            existing.record.invitation?.addedAt = newest
            existing.record.status = .invited
            try store.updateGroup(existing, db)
            return [
                groupEvent(
                    existing.record, "\(sender.name) invited you to \(existing.record.localName) again: `belay group join \(existing.record.localName)`",
                    contact: sender.name)
            ]
        }
        // Bounded in all, and per inviter, so that one contact cannot crowd out the others.
        let live = try store.groups(db).filter { !$0.record.status.isOver }
        let fromSender = live.filter { $0.record.status == .invited && $0.record.invitation?.admin == sender.identity }.count
        guard existing != nil || (live.count < GroupRecord.maxGroups && fromSender < GroupRecord.maxInvitationsPerInviter) else {
            return [
                ReadEvent(
                    kind: .warning, contact: sender.name,
                    text: "\(sender.name) invited you to a group, but too many invitations are "
                        + "waiting for your answer (join or forget some); it was refused")
            ]
        }
        let name = Names.unique((try? Self.validate(name: wanted)) ?? "group", among: live.map(\.record.localName))
        var record = GroupRecord(state: Data(), localName: name, status: .invited)
        record.invitation = .init(group: Data(id), admin: sender.identity, name: wanted, roster: roster, addedAt: addedAt)
        if let existing { try store.updateGroup(.init(id: existing.id, record: record), db) } else { try store.insertGroup(record, id: id, db) }
        let what = roster ? "the on-call roster" : "the group"
        return [
            groupEvent(
                record,
                "\(sender.name) invited you to \(what) \(name). You learn who is in it, they can reach you, and you are "
                    + "paired with its members only if you join: `belay group join \(name)`", contact: sender.name)
        ]
    }

    /// Applies one verified successor and says what changed.
    private func applied(_ next: GroupState, over old: GroupState, to g: inout ClientStore.Row<GroupRecord>, _ db: Database) throws -> [ReadEvent] {
        g.record.state = Data(next.encoded())
        let contacts = try contactsByIdentity(db)
        let by = displayName(Data(next.signer.bytes), state: next, contacts: contacts)
        let name = g.record.localName
        var events: [ReadEvent] = []
        if next.retired {
            g.record.status = .retired
            (g.record.held, g.record.requests, g.record.toAccept) = ([], [], [])
            try store.deleteGroupHistory(group: g.id, db)
            return [groupEvent(g.record, "\(by) ended \(name); its history on this device was deleted", contact: by)]
        }
        if next.member(identity.publicIdentity) == nil {
            g.record.status = .removed
            (g.record.held, g.record.toAccept) = ([], [])
            return [groupEvent(g.record, "\(by) removed you from \(name); nothing more from it will reach you", contact: by)]
        }
        for m in next.members where m.identity != identity.publicIdentity {
            let id = Data(m.identity.bytes)
            let member = displayName(id, state: next, contacts: contacts)
            switch old.member(m.identity) {
            case nil: events.append(groupEvent(g.record, "\(by) invited \(member) to \(name)", contact: by))
            case let before? where !before.joined && m.joined: events.append(groupEvent(g.record, "\(member) joined \(name)"))
            case let before? where before.role != m.role:
                let role = m.isAdmin ? (m.isCoordinator ? "an admin and the coordinator" : "an admin") : m.isCoordinator ? "the coordinator" : "a member"
                events.append(groupEvent(g.record, "\(by) made \(member) \(role) of \(name)", contact: by))
            default: break
            }
        }
        for m in old.members where next.member(m.identity) == nil {
            let id = Data(m.identity.bytes)
            let left = g.record.departed.contains { $0.identity == id }
            // A leave may arrive after the admin's state that followed it: the state alone
            // cannot tell leaving from removal.
            if !left { events.append(groupEvent(g.record, "\(displayName(id, state: old, contacts: contacts)) is no longer in \(name)", contact: by)) }
            g.record.held.removeAll { $0.identity == id }
            g.record.duty.removeAll { $0.identity == id }
        }
        g.record.departed.removeAll { d in next.members.first { Data($0.identity.bytes) == d.identity }?.addedAt != d.addedAt }
        return events
    }
}
