import BelayE2E
import BelaySodium
import BelayWire
import Foundation
import GRDB

/// Claiming a request, and what members are shown as requests arrive, are claimed or escalate.
extension Agent {
    public struct ClaimOutcome: Sendable, Equatable {
        public var id: String
        public var roster: String
        public var requester: String
        public var text: String
    }

    /// Shortest id prefix `belay claim` accepts.
    static let minRequestIdPrefix = 6

    /// Claims a request: cancelling its lock timer at the relay is the claim, and the relay lets
    /// only the first cancellation succeed, so exactly one of several supporters claiming at once
    /// wins. The winner cancels the later tiers and tells the requester and the others.
    public func claim(_ idText: String) async throws -> ClaimOutcome {
        let prefix = idText.lowercased().trimmingCharacters(in: .whitespaces)
        guard prefix.count >= Self.minRequestIdPrefix else {
            throw ClientError.invalidInput("give at least \(Self.minRequestIdPrefix) characters of the request id")
        }
        let (g, request) = try read { db -> (ClientStore.Row<GroupRecord>, RequestRecord) in
            let found = try store.groups(db).filter { $0.record.status == .joined }.flatMap { g in
                g.record.requests.filter { !$0.mine && Hex.encode([UInt8]($0.id)).hasPrefix(prefix) }.map { (g, $0) }
            }
            guard found.count == 1 else {
                throw found.isEmpty
                    ? ClientError.unknownRequest(idText) : ClientError.invalidInput("more than one request starts with \(idText); give more of its id")
            }
            return found[0]
        }
        let state = try g.record.decodedState()
        let contacts = try read { db in try contactsByIdentity(db) }
        let outcome = ClaimOutcome(
            id: Hex.encode([UInt8](request.id)), roster: g.record.localName,
            requester: displayName(request.from, state: state, contacts: contacts), text: request.text)
        switch request.state {
        case .claimed where request.claimedBy == ownIdentity: return outcome
        case .claimed, .unclaimed: throw ClientError.claimedByOther(outcome.id)
        case .open: break
        }
        // Recorded once the relay has shown it holds the lock and just before the cancel goes: if
        // the answer is then lost (a crash, a dropped connection), the retry that finds the lock
        // gone knows it may have been its own claim.
        let retrying = request.claimAttempted == true
        let markAttempt = {
            try self.write { db in
                guard var g = try self.store.group(id: state.id, db),
                    let i = g.record.requests.firstIndex(where: { $0.id == request.id && $0.from == request.from })
                else { return }
                g.record.requests[i].claimAttempted = true
                try self.store.updateGroup(g, db)
            }
        }
        return try await withRelayPool { pool in
            if try await cancelTimer(request.lock, pool: pool, beforeCancel: markAttempt) == false, !retrying {
                try mark(request.id, in: g.id, .claimed, by: nil)
                throw ClientError.claimedByOther(outcome.id)
            }
            // Won, or (a retry after an interrupted claim) perhaps won: two supporters acting is
            // better than none, so this one goes on as the winner.
            // Recorded and the notices queued first, so a crash after this still tells them.
            let ids: [Int64] = try write { db in
                guard var g = try store.group(id: state.id, db) else { return [] }
                guard let i = g.record.requests.firstIndex(where: { $0.id == request.id && $0.from == request.from }) else { return [] }
                g.record.requests[i].state = .claimed
                g.record.requests[i].claimedBy = ownIdentity
                var contacts = try contactsByIdentity(db)
                let me = try PublicIdentity(bytes: [UInt8](ownIdentity))
                var ids = try fanOut(
                    .claimed(group: state.id, request: [UInt8](request.id), by: me), to: [request.from], record: &g.record, contacts: &contacts, db)
                // Every other member: this client cannot know who was on duty when it was asked (or
                // whether anyone was, and so everyone got it), and a member who never saw the request
                // shows nothing for an id it does not know.
                let others = recipients(state, g.record).filter { $0 != request.from }
                ids += try fanOut(
                    .claimed(group: state.id, request: [UInt8](request.id), by: request.nameClaimer ? me : nil), to: others,
                    record: &g.record, contacts: &contacts, db)
                try store.updateGroup(g, db)
                return ids
            }
            for timer in request.cancels { _ = try? await cancelTimer(timer, pool: pool) }
            _ = await flushEach(ids, pool: pool)
            return outcome
        }
    }

    /// Cancels a timer: true if this call deleted it, false if it was already gone. `beforeCancel`
    /// runs once the relay has accepted the proof (so the timer was there) and before TCANCEL.
    func cancelTimer(_ timer: RequestRecord.Timer, pool: RelayPool, beforeCancel: () throws -> Void = {}) async throws -> Bool {
        guard let id = EntityID(bytes: timer.id) else { throw ClientError.stateDamaged("a request's timer is damaged") }
        let connection = try await pool.connection(timer.relay, lane: id)
        do {
            try await pool.authorise(.timer, id, key: try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8](timer.seed))), on: connection)
            try beforeCancel()
            try await connection.cancelTimer(id)
            return true
        } catch RelayClientError.relay(.noTimer) {
            return false
        } catch let error as RelayClientError {
            throw Self.relayError(error, connection.address)
        }
    }

    func mark(_ request: Data, in group: Int64, _ state: RequestRecord.State, by: Data?) throws {
        try write { db in
            guard var g = try store.groups(db).first(where: { $0.id == group }),
                let i = g.record.requests.firstIndex(where: { $0.id == request && !$0.mine })
            else { return }
            g.record.requests[i].state = state
            g.record.requests[i].claimedBy = by
            try store.updateGroup(g, db)
        }
    }

    func requestArrived(
        _ r: RosterRequest, from sender: ContactRecord, group g: inout ClientStore.Row<GroupRecord>, state: GroupState,
        at received: UInt64, _ db: Database
    ) throws -> [ReadEvent] {
        guard state.roster, g.record.status == .joined, g.record.isActive(sender.identity, in: state), r.group == state.id else { return [] }
        // Known by requester and id together: another member reusing an id cannot shadow it.
        if let i = g.record.requests.firstIndex(where: { $0.id == Data(r.id) && $0.from == sender.identity }) {
            // A later tier of one already seen (to the coordinator): shown again unless settled.
            guard g.record.requests[i].state == .open, r.tier > g.record.requests[i].tier else { return [] }
            g.record.requests[i].tier = r.tier
            g.record.requests[i].shownTier = max(g.record.requests[i].shownTier, r.tier)
        } else {
            let timer = { (c: RosterRequest.Cancel) in RequestRecord.Timer(relay: c.relay, id: Data(c.timerId), seed: Data(c.timerSeed)) }
            g.record.requests.append(
                RequestRecord(
                    id: Data(r.id), from: sender.identity, mine: false, text: r.text, tier: r.tier, window: r.window,
                    requestedAt: r.requestedAt, tiers: r.tiers, nameClaimer: r.nameClaimer, lock: timer(r.lock),
                    cancels: r.cancels.map(timer), state: .open, claimedBy: nil, shownTier: r.tier))
            // Past the limit the oldest settled request goes first, then the oldest of anyone's
            // but ours: a flood cannot push out our own request's fallback.
            while g.record.requests.count > GroupRecord.maxRequests,
                let i = g.record.requests.firstIndex(where: { !$0.mine && $0.state != .open }) ?? g.record.requests.firstIndex(where: { !$0.mine })
            {
                g.record.requests.remove(at: i)
            }
        }
        let id = Hex.encode(r.id)
        let historyId = try store.appendGroupHistory(
            HistoryEntry(
                direction: .incoming, kind: "request", sequence: 0, sentAt: r.requestedAt * 1000,
                receivedAt: received, text: "\(sender.name) asks for support: \(r.text)", shown: false),
            group: g.id, db)
        // A relay can release a step early (it holds the timer); the members still see the
        // request, flagged, since hiding a request for help would be worse.
        let early = r.tier > 0 && received / 1000 + Agent.overdueSlack < r.requestedAt + UInt64(r.tier) * UInt64(r.window)
        let how =
            early
            ? " (released before its time: the relay did not keep to the schedule)"
            : r.tier == 0 ? "" : r.tier == 1 ? " (nobody on duty took it in time, so it came to everyone)" : " (still not taken: it came to you as coordinator)"
        var event = ReadEvent(
            kind: .request, contact: sender.name, text: r.text, sentAt: r.requestedAt * 1000, receivedAt: received,
            notes: ["to take it: belay claim \(id.prefix(8))\(how)"], roster: g.record.localName, id: id, from: sender.name, tier: Int(r.tier))
        event.groupHistoryId = historyId
        return [event]
    }

    /// "Taken", from the member who claimed it: only an active member of the roster, and only
    /// naming themselves. (That they really won the lock is not provable to us; see THREAT-MODEL.)
    func claimArrived(
        _ request: [UInt8], by: PublicIdentity?, from sender: ContactRecord, group g: inout ClientStore.Row<GroupRecord>,
        state: GroupState, contacts: [Data: ClientStore.Row<ContactRecord>]
    ) -> [ReadEvent] {
        guard g.record.isActive(sender.identity, in: state), by.map({ Data($0.bytes) == sender.identity }) ?? true else { return [] }
        guard let i = g.record.requests.firstIndex(where: { $0.id == Data(request) && $0.from != sender.identity }),
            g.record.requests[i].state == .open
        else { return [] }
        let r = g.record.requests[i]
        g.record.requests[i].state = .claimed
        let id = Hex.encode(request)
        if r.mine {
            g.record.requests[i].claimedBy = sender.identity
            var event = ReadEvent(
                kind: .claimed, contact: sender.name, text: "\(sender.name) has taken your request and will be in touch",
                roster: g.record.localName, id: id, from: "you")
            event.by = sender.name
            return [event]
        }
        let claimer = by.map { displayName(Data($0.bytes), state: state, contacts: contacts) }
        g.record.requests[i].claimedBy = by.map { Data($0.bytes) }
        let requester = displayName(r.from, state: state, contacts: contacts)
        var event = ReadEvent(
            kind: .claimed, contact: requester,
            text: claimer.map { "\($0) has taken \(requester)'s request" }
                ?? "someone on the roster has taken \(requester)'s request", roster: g.record.localName, id: id, from: requester)
        event.by = claimer
        return [event]
    }

    /// The lock ran out: sealed by the requester at request time, so only from them, and due an
    /// hour after the last tier; one released sooner is the relay's doing, and says so.
    func unclaimedArrived(
        _ request: [UInt8], from sender: ContactRecord, group g: inout ClientStore.Row<GroupRecord>,
        contacts: [Data: ClientStore.Row<ContactRecord>], state: GroupState
    ) -> [ReadEvent] {
        guard let i = g.record.requests.firstIndex(where: { $0.id == Data(request) && $0.from == sender.identity }),
            g.record.requests[i].state == .open
        else { return [] }
        let r = g.record.requests[i]
        g.record.requests[i].state = .unclaimed
        let requester = displayName(r.from, state: state, contacts: contacts)
        let due = r.releaseAt(tier: max(r.tiers, 1) - 1) + Self.claimAfterLastTier
        let early = now() + Agent.overdueSlack < due
        return [
            ReadEvent(
                kind: .escalated, contact: requester,
                text: early
                    ? "the relay released \(requester)'s request's claim lock before its time, so it can no longer be claimed: "
                        + "reach them directly (a faulty or hostile relay)"
                    : "nobody took \(requester)'s request in time, and it can no longer be claimed: reach them directly",
                roster: g.record.localName, id: Hex.encode(request), from: requester)
        ]
    }

    /// Escalations that have happened by now on the schedule a request carries, each shown once:
    /// to the requester, and to members who saw an earlier tier.
    func requestEscalations() throws -> [ReadEvent] {
        // Run at every read and every watch tick: with no open request it opens no contact and
        // writes nothing.
        let open = try read { db in
            try store.groups(db).contains { g in g.record.status == .joined && g.record.requests.contains { $0.state == .open } }
        }
        guard open else { return [] }
        return try write { db in
            var events: [ReadEvent] = []
            let contacts = try contactsByIdentity(db)
            for var g in try store.groups(db) where g.record.status == .joined && g.record.hasState && !g.record.requests.isEmpty {
                // One damaged record must not hide the others' escalations.
                guard let state = try? g.record.decodedState() else { continue }
                var changed = false
                for i in g.record.requests.indices where g.record.requests[i].state == .open {
                    let r = g.record.requests[i]
                    let who = r.mine ? "your" : "\(displayName(r.from, state: state, contacts: contacts))'s"
                    let base = ReadEvent(
                        kind: .escalated, contact: r.mine ? nil : displayName(r.from, state: state, contacts: contacts), text: "",
                        roster: g.record.localName, id: Hex.encode([UInt8](r.id)), from: r.mine ? "you" : displayName(r.from, state: state, contacts: contacts))
                    if r.mine, now() >= r.releaseAt(tier: r.tiers - 1) + Self.claimAfterLastTier {
                        g.record.requests[i].state = .unclaimed
                        changed = true
                        var e = base
                        e.text = "nobody on \(g.record.localName) took your request, and it can no longer be claimed; please reach someone another way"
                        events.append(e)
                        continue
                    }
                    var k = r.shownTier + 1
                    while k < r.tiers, now() >= r.releaseAt(tier: k) {
                        var e = base
                        e.tier = Int(k)
                        e.text =
                            "nobody took \(who) request within \(DurationText.describe(UInt64(r.window))); it is now with "
                            + (k == 1 ? "everyone on \(g.record.localName)" : "the coordinator as well")
                        events.append(e)
                        g.record.requests[i].shownTier = k
                        changed = true
                        k += 1
                    }
                }
                if changed { try store.updateGroup(g, db) }
            }
            return events
        }
    }
}
