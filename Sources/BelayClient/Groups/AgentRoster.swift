import BelayE2E
import BelaySodium
import BelayWire
import Foundation
import GRDB

/// On-call rosters: duty, and requests for support that escalate by themselves (docs/GROUPS.md).
extension Agent {
    /// Shortest and longest claim window: the relay holds timers from 60 s, and a request is
    /// for now, not next month.
    public static let claimWindowRange: ClosedRange<UInt64> = DurationText.minTimerSeconds...UInt64(RosterRequest.maxWindow)
    public static let defaultClaimWindow: UInt64 = 600
    /// How long after the last tier a request can still be claimed, before its lock runs out.
    static let claimAfterLastTier: UInt64 = 3600
    /// Room left in the size check of a request's first copy, for anything it did not measure.
    static let requestSizeMargin = 256

    public struct RequestOutcome: Sendable, Equatable {
        public var id: String
        /// Who it went to at once (on duty, or everyone if nobody is).
        public var first: [String]
        /// When it goes on to everyone, and to the coordinator (Unix seconds), if it has those tiers.
        public var escalatesAt: [UInt64]
        /// Members it could not be deposited for (their relay down, or not paired with us yet).
        public var unreachable: [String]
    }

    public func setDuty(_ name: String, on: Bool, until: UInt64?) async throws {
        let ids: [Int64] = try write { db in
            guard var g = try store.group(named: name, db), !g.record.status.isOver else { throw ClientError.unknownGroup(name) }
            let state = try g.record.decodedState()
            guard state.roster else { throw ClientError.invalidInput("\(g.record.localName) is a group, not a roster; duty is for rosters") }
            guard g.record.status == .joined else {
                throw ClientError.invalidInput("join \(g.record.localName) first: `belay group join \(g.record.localName)`")
            }
            g.record.duty.removeAll { $0.identity == ownIdentity }
            g.record.duty.append(.init(identity: ownIdentity, on: on, until: until ?? 0))
            var contacts = try contactsByIdentity(db)
            let ids = try fanOut(.duty(group: state.id, on: on, until: until ?? 0), to: recipients(state, g.record), record: &g.record, contacts: &contacts, db)
            try store.updateGroup(g, db)
            return ids
        }
        _ = await flushEach(ids)
    }

    /// Asks a roster for support. The members on duty get it at once; the later tiers are sealed
    /// now and deposited as timed releases at their relays (the claim lock first, then the
    /// coordinator's tier, then everyone's), each carrying what is needed to cancel the ones
    /// after it, so the request escalates on time with this device switched off.
    public func request(
        roster name: String, text: String, claimWithin window: UInt64 = Agent.defaultClaimWindow,
        nameClaimer: Bool = false
    ) async throws -> RequestOutcome {
        guard Self.claimWindowRange.contains(window) else { throw ClientError.invalidInput("--claim-within must be from 1 minute to 7 days") }
        guard !text.isEmpty, text.utf8.count <= GroupMessage.maxRequestLength else {
            throw ClientError.invalidInput("a request must be 1 to \(GroupMessage.maxRequestLength) bytes")
        }
        let (groupId, state, contacts, duty) = try read { db in
            guard let g = try store.group(named: name, db), g.record.status == .joined else { throw ClientError.unknownGroup(name) }
            let state = try g.record.decodedState()
            guard state.roster else { throw ClientError.invalidInput("\(g.record.localName) is a group, not a roster; use `belay group send`") }
            guard state.member(identity.publicIdentity)?.joined == true else {
                throw ClientError.invalidInput("your joining \(g.record.localName) has not been confirmed by an admin yet")
            }
            let members = recipients(state, g.record)
            return (g.id, state, try contactsByIdentity(db), members.map { ($0, g.record.onDuty($0, now: now())) })
        }
        let reachable = duty.filter { contacts[$0.0].map { !$0.record.awaitingHello } == true }
        var unreachable = duty.filter { contacts[$0.0].map { !$0.record.awaitingHello } != true }.map { displayName($0.0, state: state, contacts: contacts) }
        guard !reachable.isEmpty else {
            throw ClientError.invalidInput("nobody in \(name) can be reached yet: the roster's pairings finish as members run `belay read`")
        }
        let onDuty = reachable.filter(\.1).map(\.0)
        let tier0 = onDuty.isEmpty ? reachable.map(\.0) : onDuty
        let tier1 = reachable.map(\.0).filter { !tier0.contains($0) }
        let coordinator = state.members.first { $0.isCoordinator && Data($0.identity.bytes) != ownIdentity }.map { Data($0.identity.bytes) }
            .flatMap { c in reachable.contains { $0.0 == c } ? c : nil }
        let tiers: UInt8 = coordinator == nil ? 2 : 3
        let id = SystemRandom().bytes(RosterRequest.idLength)
        let requestedAt = now()
        return try await withRelayPool { pool in

            // The first copy carries every timer: if that cannot fit one message (a large roster on
            // relays with long addresses), say so before anything is deposited.
            let laterTargets = (coordinator.map { [$0] } ?? []) + tier1
            let probe = RosterRequest(
                group: state.id, id: id, text: text, tier: 0, window: UInt32(window), requestedAt: requestedAt, tiers: tiers,
                nameClaimer: nameClaimer, lock: Self.probeCancel(contacts[coordinator ?? tier0[0]]),
                cancels: laterTargets.map { Self.probeCancel(contacts[$0]) })
            guard GroupMessage.request(probe).encoded().count + Self.requestSizeMargin <= Envelope.maxContentLength else {
                throw ClientError.invalidInput("this request, with its escalation to \(laterTargets.count) members, does not fit one message; shorten it")
            }

            // The lock: released to the coordinator (or someone) only if nobody claims in time.
            let lockTarget = coordinator ?? tier0[0]
            let lockDelay = UInt64(tiers - 1) * window + Self.claimAfterLastTier
            guard let lock = try await depositHeld(.unclaimed(group: state.id, request: id), to: lockTarget, delay: lockDelay, pool: pool) else {
                throw ClientError.relayUnreachable(
                    relay: contacts[lockTarget]?.record.outlet.relay ?? "?", why: "the claim lock could not be deposited", queued: 0)
            }
            let cancel = { (t: RequestRecord.Timer) in RosterRequest.Cancel(relay: t.relay, timerId: [UInt8](t.id), timerSeed: [UInt8](t.seed)) }
            func copy(tier: UInt8, cancels: [RequestRecord.Timer]) -> RosterRequest {
                RosterRequest(
                    group: state.id, id: id, text: text, tier: tier, window: UInt32(window), requestedAt: requestedAt, tiers: tiers,
                    nameClaimer: nameClaimer, lock: cancel(lock), cancels: cancels.map(cancel))
            }
            // Recorded from here on, each timer as it is made: after a crash part-way, this device
            // still knows the request and the timers it left.
            try recordOwnRequest(groupRow: groupId, group: state.id) { requests in
                requests.append(
                    RequestRecord(
                        id: Data(id), from: ownIdentity, mine: true, text: text, tier: 0, window: UInt32(window),
                        requestedAt: requestedAt, tiers: tiers, nameClaimer: nameClaimer, lock: lock, cancels: [],
                        state: .open, claimedBy: nil, shownTier: 0))
            }
            var later: [RequestRecord.Timer] = []
            for (tier, targets) in [(UInt8(2), coordinator.map { [$0] } ?? []), (UInt8(1), tier1)] {
                var deposited: [RequestRecord.Timer] = []
                for target in targets {
                    if let timer = try await depositHeld(.request(copy(tier: tier, cancels: later)), to: target, delay: UInt64(tier) * window, pool: pool) {
                        deposited.append(timer)
                        try recordOwnRequest(groupRow: groupId, group: state.id) { requests in
                            if let i = requests.lastIndex(where: { $0.id == Data(id) && $0.mine }) { requests[i].cancels.append(timer) }
                        }
                    } else {
                        unreachable.append(displayName(target, state: state, contacts: contacts))
                    }
                }
                later += deposited
            }
            let first = copy(tier: 0, cancels: later)
            let ids: [Int64] = try write { db in
                guard var g = try store.group(id: state.id, db), g.id == groupId else { throw ClientError.unknownGroup(name) }
                var contacts = try contactsByIdentity(db)
                let ids = try fanOut(.request(first), to: tier0, record: &g.record, contacts: &contacts, db)
                try store.appendGroupHistory(
                    HistoryEntry(
                        direction: .outgoing, kind: "request", sequence: 0, sentAt: requestedAt * 1000, receivedAt: 0,
                        text: text), group: g.id, db)
                try store.updateGroup(g, db)
                return ids
            }
            let failed = Set(await flushEach(ids, pool: pool))
            unreachable += ids.filter { failed.contains($0) }.compactMap { i in contacts.values.first { $0.id == i }?.record.name }
            return RequestOutcome(
                id: Hex.encode(id), first: tier0.map { displayName($0, state: state, contacts: contacts) }.sorted(),
                escalatesAt: (1..<tiers).map { requestedAt + UInt64($0) * window }, unreachable: unreachable.sorted())
        }
    }

    /// Changes this person's own requests in a group, in one transaction.
    private func recordOwnRequest(groupRow: Int64, group: [UInt8], _ change: (inout [RequestRecord]) -> Void) throws {
        try write { db in
            guard var g = try store.group(id: group, db), g.id == groupRow else { return }
            change(&g.record.requests)
            // Someone else's requests make room first: one's own carries the fallback.
            while g.record.requests.count > GroupRecord.maxRequests,
                let i = g.record.requests.firstIndex(where: { !$0.mine }) ?? g.record.requests.indices.first
            {
                g.record.requests.remove(at: i)
            }
            try store.updateGroup(g, db)
        }
    }

    /// A timer reference as long as a real one to `contact`'s relay, for measuring a request.
    static func probeCancel(_ contact: ClientStore.Row<ContactRecord>?) -> RosterRequest.Cancel {
        RosterRequest.Cancel(relay: contact?.record.outlet.relay ?? "", timerId: [UInt8](repeating: 0, count: 16), timerSeed: [UInt8](repeating: 0, count: 32))
    }

    /// Seals `message` for `target` with our ratchet (outside its message numbering, since it is
    /// released later or never) and deposits it at their relay after `delay`. Nil if their relay
    /// could not take it.
    func depositHeld(_ message: GroupMessage, to target: Data, delay: UInt64, pool: RelayPool) async throws -> RequestRecord.Timer? {
        let (contact, body) = try write { db -> (ContactRecord, [UInt8]) in
            guard var row = try contactsByIdentity(db)[target] else { throw ClientError.stateDamaged("a roster member's contact is missing") }
            var ratchet = try Ratchet(serialized: SecureBytes(copying: [UInt8](row.record.ratchet)))
            let sealed = try Envelope.seal(Content(kind: .group, sequence: 0, sentAt: now() * 1000, body: message.encoded()), with: &ratchet)
            row.record.ratchet = Data(try ratchet.serialized().unprotectedCopy())
            try store.updateContact(row, db)
            return (row.record, sealed)
        }
        let seed = Data(SystemRandom().bytes(Ed25519.seedLength))
        var sent = false
        do {
            let (timer, _) = try await deposit(body: body, for: contact, seed: seed, delay: UInt32(delay), replacing: nil, pool: pool, sent: &sent)
            return RequestRecord.Timer(relay: contact.outlet.relay, id: timer.timerId, seed: seed)
        } catch is ClientError {
            return nil
        }
    }
}
