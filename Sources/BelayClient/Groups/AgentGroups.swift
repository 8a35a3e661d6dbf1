import BelayE2E
import BelaySodium
import Foundation
import GRDB

/// `belay group …`: making and changing groups. Every membership change is a new state signed
/// by an admin and sent to every member through their pairwise ratchets (docs/GROUPS.md).
extension Agent {
    public func createGroup(_ rawName: String, members names: [String], roster: Bool = false, coordinator: String? = nil) async throws {
        let name = try Self.validate(name: rawName)
        let ids: [Int64] = try write { db in
            if let existing = try store.group(named: name, db), !existing.record.status.isOver { throw ClientError.groupExists(name) }
            var members: [GroupState.Member] = []
            let coordinatorIsUs = coordinator.map { Names.same($0, "me") || Names.same($0, "you") } ?? true
            for raw in names {
                let member = raw.trimmingCharacters(in: .whitespaces)
                guard let row = try store.contact(named: member, db) else { throw ClientError.unknownContact(member) }
                guard !row.record.awaitingHello else { throw ClientError.notYetPaired(row.record.name) }
                guard !members.contains(where: { Data($0.identity.bytes) == row.record.identity }) else { continue }
                let isCoordinator = roster && coordinator.map { Names.same($0, row.record.name) } == true
                members.append(
                    .init(
                        identity: try PublicIdentity(bytes: [UInt8](row.record.identity)), name: row.record.name,
                        role: isCoordinator ? .coordinator : .member, addedAt: 1, joined: false))
            }
            guard !members.isEmpty else { throw ClientError.invalidInput("a group needs at least one other member (--members A,B,…)") }
            guard members.count < GroupState.maxMembers else { throw ClientError.invalidInput("a group holds at most \(GroupState.maxMembers) members") }
            if roster, let coordinator, !coordinatorIsUs, !members.contains(where: \.isCoordinator) {
                throw ClientError.notGroupMember(group: name, member: coordinator)
            }
            let us = GroupState.Member(
                identity: identity.publicIdentity, name: "", role: roster && coordinatorIsUs ? .adminCoordinator : .admin,
                addedAt: 1, joined: true)
            var state = GroupState(
                id: SystemRandom().bytes(GroupState.idLength), version: 1, previous: [UInt8](repeating: 0, count: GroupState.hashLength),
                name: name, roster: roster, members: [us] + members, signer: identity.publicIdentity)
            try state.sign(with: identity)
            var record = GroupRecord(state: Data(state.encoded()), localName: name, status: .joined)
            var contacts = try contactsByIdentity(db)
            // Each is told the group's name, not who else is in it, until they join.
            let ids = try fanOut(
                .invite(group: state.id, name: name, roster: roster, addedAt: 1), to: members.map { Data($0.identity.bytes) },
                record: &record, contacts: &contacts, db)
            try store.insertGroup(record, id: state.id, db)
            return ids
        }
        _ = await flushEach(ids)
    }

    /// Adds a contact; they are asked, and nothing reaches them until they join.
    public func addToGroup(_ name: String, member: String) async throws {
        try await changeGroup(name) { state, record, db in
            guard let row = try store.contact(named: member, db) else { throw ClientError.unknownContact(member) }
            guard !row.record.awaitingHello else { throw ClientError.notYetPaired(row.record.name) }
            let who = try PublicIdentity(bytes: [UInt8](row.record.identity))
            if let m = state.member(who), !record.departed.contains(.init(identity: row.record.identity, addedAt: m.addedAt)) {
                throw ClientError.invalidInput("\(row.record.name) is already \(m.joined ? "a member" : "invited")")
            }
            guard state.members.count < GroupState.maxMembers else { throw ClientError.invalidInput("a group holds at most \(GroupState.maxMembers) members") }
            return try successor(of: state) { s in
                s.members.removeAll { $0.identity == who }
                s.members.append(.init(identity: who, name: row.record.name, role: .member, addedAt: state.version + 1, joined: false))
            }
        }
    }

    public func removeFromGroup(_ name: String, member: String) async throws {
        try await changeGroup(name) { state, record, db in
            let contacts = try contactsByIdentity(db)
            guard let m = state.members.first(where: { Names.same(displayName(Data($0.identity.bytes), state: state, contacts: contacts), member) }),
                Data(m.identity.bytes) != ownIdentity
            else {
                throw ClientError.notGroupMember(group: record.localName, member: member)
            }
            return try successor(of: state) { s in s.members.removeAll { $0.identity == m.identity } }
        }
    }

    /// Ends the group: every member's client deletes its history.
    public func retireGroup(_ name: String) async throws {
        try await changeGroup(name) { state, _, _ in try successor(of: state) { $0.retired = true } }
    }

    /// Signs and sends a change as an admin: to everyone in the old or the new state.
    func changeGroup(_ name: String, _ change: (GroupState, GroupRecord, Database) throws -> GroupState) async throws {
        let ids: [Int64] = try write { db in
            guard var g = try store.group(named: name, db), !g.record.status.isOver else { throw ClientError.unknownGroup(name) }
            let state = try g.record.decodedState()
            guard g.record.status == .joined, state.member(identity.publicIdentity)?.isAdmin == true else { throw ClientError.notGroupAdmin(name) }
            let next = try change(state, g.record, db)
            // The new list goes to those who have joined (a member just removed included, so
            // they know); someone just added is told only the group's name, until they join.
            let told = Set((state.members.filter(\.joined) + next.members.filter(\.joined)).map { Data($0.identity.bytes) })
            let added = next.members.filter { m in !m.joined && state.member(m.identity) == nil }
            let departed = Set(g.record.departed.map(\.identity))
            var contacts = try contactsByIdentity(db)
            g.record.state = Data(next.encoded())
            g.record.held.removeAll { held in !next.members.contains { Data($0.identity.bytes) == held.identity } }
            var ids = try fanOut(
                .state(next), to: told.subtracting(departed).sorted { $0.lexicographicallyPrecedes($1) },
                record: &g.record, contacts: &contacts, db)
            for m in added {
                ids += try fanOut(
                    .invite(group: next.id, name: next.name, roster: next.roster, addedAt: m.addedAt), to: [Data(m.identity.bytes)],
                    record: &g.record, contacts: &contacts, db)
            }
            if next.retired {
                g.record.status = .retired
                (g.record.held, g.record.requests) = ([], [])
                try store.deleteGroupHistory(group: g.id, db)
            }
            try store.updateGroup(g, db)
            return ids
        }
        _ = await flushEach(ids)
    }

    /// Consents to a group we were added to: the admins are told, and once one of them confirms
    /// it, the members start sending to us. Pairings with members we do not know yet follow.
    public func joinGroup(_ name: String) async throws {
        let ids: [Int64] = try write { db in
            guard var g = try store.group(named: name, db), !g.record.status.isOver else { throw ClientError.unknownGroup(name) }
            // Joined but never confirmed (the join, or the admin's answer, was lost): joining
            // again sends the join again.
            guard g.record.status == .invited || (g.record.status == .joined && !g.record.hasState), let invitation = g.record.invitation else {
                throw ClientError.invalidInput("you are already a member of \(g.record.localName)")
            }
            g.record.status = .joined
            var contacts = try contactsByIdentity(db)
            let ids = try fanOut(
                .join(group: [UInt8](invitation.group), addedAt: invitation.addedAt), to: [invitation.admin], record: &g.record, contacts: &contacts, db)
            try store.updateGroup(g, db)
            return ids
        }
        try await withRelayPool { pool in
            _ = await flushEach(ids, pool: pool)
            _ = await groupFollowUps(pool: pool)
        }
    }

    /// Leaves freely: the members stop sending to us at once, and an admin drops us from the list.
    public func leaveGroup(_ name: String) async throws {
        let ids: [Int64] = try write { db in
            guard var g = try store.group(named: name, db), !g.record.status.isOver else { throw ClientError.unknownGroup(name) }
            guard g.record.hasState else {
                // Invited, or joined but not yet confirmed: the admin who asked is told.
                var contacts = try contactsByIdentity(db)
                var ids: [Int64] = []
                if let invitation = g.record.invitation {
                    ids = try fanOut(.leave(group: [UInt8](invitation.group)), to: [invitation.admin], record: &g.record, contacts: &contacts, db)
                }
                g.record.status = .left
                try store.updateGroup(g, db)
                return ids
            }
            let state = try g.record.decodedState()
            let admins = state.members.filter(\.isAdmin)
            if admins.count == 1, admins[0].identity == identity.publicIdentity, state.members.count > 1 {
                throw ClientError.invalidInput(
                    "you are the only admin of \(g.record.localName): leaving would leave nobody to change it; "
                        + "end it for everyone with `belay group retire \(g.record.localName)`")
            }
            var contacts = try contactsByIdentity(db)
            let told = Set(recipients(state, g.record) + admins.map { Data($0.identity.bytes) }).filter { contacts[$0] != nil }
            g.record.held = []
            let ids = try fanOut(.leave(group: state.id), to: told.sorted { $0.lexicographicallyPrecedes($1) }, record: &g.record, contacts: &contacts, db)
            g.record.status = .left
            (g.record.held, g.record.toAccept) = ([], [])
            try store.updateGroup(g, db)
            return ids
        }
        _ = await flushEach(ids)
    }

    /// Deletes what this device keeps of a group it is no longer in (left, removed, ended) or
    /// was only invited to: its history and its record. A later invitation to it starts afresh.
    public func forgetGroup(_ name: String) async throws {
        let ids: [Int64] = try write { db in
            guard let g = try store.group(named: name, db) else { throw ClientError.unknownGroup(name) }
            guard g.record.status != .joined else {
                throw ClientError.invalidInput("you are in \(g.record.localName): `belay group leave \(g.record.localName)` first, then forget it")
            }
            var ids: [Int64] = []
            if g.record.status == .invited, let invitation = g.record.invitation {
                // Declining: the admin is told, as for leaving.
                var record = g.record
                var contacts = try contactsByIdentity(db)
                ids = try fanOut(.leave(group: [UInt8](invitation.group)), to: [invitation.admin], record: &record, contacts: &contacts, db)
            }
            try store.deleteGroup(g.id, db)
            return ids
        }
        _ = await flushEach(ids)
    }

    public func groups() throws -> [GroupSummary] {
        try read { db in
            try store.groups(db).map { g in
                guard g.record.hasState else {
                    return GroupSummary(
                        name: g.record.localName, roster: g.record.invitation?.roster ?? false, status: g.record.status.rawValue,
                        version: 0, members: 0, admin: false)
                }
                let state = try g.record.decodedState()
                return GroupSummary(
                    name: g.record.localName, roster: state.roster, status: g.record.status.rawValue, version: state.version,
                    members: state.members.filter { g.record.isActive(Data($0.identity.bytes), in: state) || !$0.joined }.count,
                    admin: state.member(identity.publicIdentity)?.isAdmin == true)
            }
        }
    }

    public func groupMembers(_ name: String) throws -> [GroupMemberSummary] {
        try read { db in
            guard let g = try store.group(named: name, db) else { throw ClientError.unknownGroup(name) }
            let state = try g.record.decodedState()
            let contacts = try contactsByIdentity(db)
            let now = now()
            return state.members.map { m in
                let id = Data(m.identity.bytes)
                let duty = g.record.duty.first { $0.identity == id }
                let you = id == ownIdentity
                let onDuty = state.roster && g.record.onDuty(id, now: now)
                return GroupMemberSummary(
                    name: displayName(id, state: state, contacts: contacts), you: you, admin: m.isAdmin, coordinator: m.isCoordinator,
                    status: !m.joined ? "invited" : g.record.isActive(id, in: state) ? "joined" : "left",
                    paired: you || contacts[id].map { !$0.record.awaitingHello } == true, onDuty: onDuty,
                    dutyUntil: onDuty && (duty?.until ?? 0) != 0 ? duty?.until : nil)
            }
        }
    }

    /// The group's history on this device, oldest first.
    public func groupHistory(_ name: String) throws -> [HistoryEntry] {
        try read { db in
            guard let g = try store.group(named: name, db) else { throw ClientError.unknownGroup(name) }
            return try store.groupHistory(group: g.id, db).map(\.entry)
        }
    }
}
