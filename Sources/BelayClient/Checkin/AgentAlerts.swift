import BelayE2E
import BelaySodium
import BelayWire
import Foundation

extension Agent {
    /// Alert keys kept per contact: a re-arm announces a new one while the old timer may still
    /// be replaced, so a few are kept; the oldest is forgotten first.
    static let maxAlertKeysPerContact = 4
    /// Alert ids remembered per contact to recognise an alert delivered twice.
    static let maxSeenAlertsPerContact = 64

    /// An alert sealed under an alert key (deposited at the relay, or sent under duress).
    func processAlert(_ body: [UInt8], row: ClientStore.Row<ContactRecord>, relaySeq: UInt64) throws -> [ReadEvent] {
        var row = row
        let name = row.record.name
        let them = try PublicIdentity(bytes: [UInt8](row.record.identity))
        let keyId = try? Alerts.keyId(of: body)
        let key = (row.record.alertKeys ?? []).compactMap { try? AlertKey(announcement: [UInt8]($0)) }.first { $0.id == keyId }
        guard let key, let content = try? Alerts.open(body, key: key, sender: them, receiver: identity.publicIdentity), content.kind == .alert else {
            return [ReadEvent(kind: .warning, contact: name, text: "an alert from \(name) could not be opened and was dropped")]
        }
        let backwards = row.record.lastRelaySeq != 0 && relaySeq < row.record.lastRelaySeq
        row.record.lastRelaySeq = relaySeq
        let received = now() * 1000
        guard var event = alertEvent(content, contact: &row.record, received: received) else {
            try write { [row] db in try store.updateContact(row, db) }
            return []
        }
        if backwards { event.notes.append(Self.backwardsNote) }
        let record = row
        event.historyId = try write { db in
            try store.updateContact(record, db)
            return try store.appendHistory(HistoryEntry(direction: .incoming, kind: "alert", sequence: 0, sentAt: content.sentAt,
                                                        receivedAt: received, text: event.text, shown: false), contact: record.id, db)
        }
        return [event]
    }

    /// The event for an alert's content, or nil if this alert was already shown.
    func alertEvent(_ content: Content, contact: inout ContactRecord, received: UInt64) -> ReadEvent? {
        guard let alert = try? JSONDecoder().decode(AlertMessage.self, from: Data(content.body)) else {
            return ReadEvent(kind: .alert, contact: contact.name, text: String(decoding: content.body, as: UTF8.self),
                             sentAt: content.sentAt, receivedAt: received, reason: "help")
        }
        var seen = contact.seenAlerts ?? []
        if seen.contains(alert.id) { return nil }
        seen.append(alert.id)
        contact.seenAlerts = Array(seen.suffix(Self.maxSeenAlertsPerContact))
        return ReadEvent(kind: .alert, contact: contact.name, text: alert.summary, sentAt: content.sentAt, receivedAt: received,
                         reason: alert.reason.rawValue, lastCheckin: alert.lastCheckin)
    }
}
