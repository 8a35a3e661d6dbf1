import BelayE2E
import Foundation
import GRDB

extension Agent {
    /// Sends `text` to every member who has joined: one ratchet message each through the outbox,
    /// recorded in the group's history in the same transaction.
    public func groupSend(_ name: String, text: String) async throws -> GroupSendOutcome {
        guard text.utf8.count <= GroupMessage.maxTextLength else {
            throw ClientError.invalidInput("the message is \(text.utf8.count) bytes; a group message may be at most \(GroupMessage.maxTextLength)")
        }
        let (ids, names, waiting) = try write { db -> ([Int64], [Int64: String], [String]) in
            guard var g = try store.group(named: name, db), !g.record.status.isOver else { throw ClientError.unknownGroup(name) }
            let state = try g.record.decodedState()
            guard g.record.status == .joined, state.member(identity.publicIdentity)?.joined == true else {
                throw ClientError.invalidInput(
                    "your joining \(g.record.localName) has not been confirmed by an admin yet; "
                        + "it is once they next run `belay read`, then try again")
            }
            var contacts = try contactsByIdentity(db)
            let heldBefore = g.record.held.count
            let targets = recipients(state, g.record)
            let ids = try fanOut(.text(group: state.id, version: state.version, text: text), to: targets, record: &g.record, contacts: &contacts, db)
            let waiting = g.record.held[heldBefore...].map { displayName($0.identity, state: state, contacts: contacts) }
            try store.appendGroupHistory(
                HistoryEntry(
                    direction: .outgoing, kind: "text", sequence: 0, sentAt: now() * 1000, receivedAt: 0,
                    text: text), group: g.id, db)
            try store.updateGroup(g, db)
            let names = Dictionary(contacts.values.map { ($0.id, $0.record.name) }, uniquingKeysWith: { a, _ in a })
            return (ids, names, waiting)
        }
        let failed = Set(await flushEach(ids))
        return GroupSendOutcome(
            sent: ids.filter { !failed.contains($0) }.compactMap { names[$0] }.sorted(),
            queued: failed.compactMap { names[$0] }.sorted(), waitingForPairing: waiting.sorted())
    }
}
