import BelayE2E
import BelaySodium
import BelayWire
import Foundation
import GRDB

/// What a contact does about someone else's check-in: notice when it is overdue, answer, and
/// acknowledge an alert.
extension Agent {
    /// How long after an alert was due, with neither the alert nor a newer notice, this device
    /// says the check-in is overdue: room for the clocks of three machines to differ and for a
    /// relay's sweep (docs/CHECKINS.md "Overdue").
    public static let overdueSlack: UInt64 = 120
    /// An alert or overdue check-in nobody has acknowledged is shown again this often by a watch.
    public static let reminderInterval: UInt64 = 300

    /// One check-in this device watches over, for `belay checkin watching`.
    public struct WatchedCheckin: Sendable, Codable, Equatable {
        public var contact: String
        /// Milliseconds: when the alert is due if they do not check in.
        public var dueAt: UInt64
        public var every: UInt64
        public var grace: UInt64
        public var lastCheckin: UInt64
        public var tier: Int
        public var plan: String
        /// none, agreed or declined.
        public var answer: String
        /// waiting, overdue, alerted or acknowledged.
        public var state: String
    }

    /// An alert through the ratchet (`belay checkin alert`: help now). Nil if already shown.
    func alertEvent(_ content: Content, contact: inout ContactRecord, received: UInt64) -> ReadEvent? {
        guard let alert = try? JSONDecoder().decode(AlertMessage.self, from: Data(content.body)) else {
            return ReadEvent(
                kind: .alert, contact: contact.name, text: String(decoding: content.body, as: UTF8.self),
                sentAt: content.sentAt, receivedAt: received, reason: "help")
        }
        if (contact.seenAlerts ?? []).contains(alert.id) { return nil }
        contact.seenAlerts = Array(((contact.seenAlerts ?? []) + [alert.id]).suffix(Self.maxSeenAlertsPerContact))
        if let notice = contact.watching.flatMap({ try? CheckinNotice(decoding: [UInt8]($0.notice)) }) {
            contact.watching?.alert = WatchRecord.AlertState(
                reason: alert.reason.rawValue, counter: notice.counter, at: received / 1000,
                text: alert.summary, lastShownAt: received / 1000)
        }
        var event = ReadEvent(
            kind: .alert, contact: contact.name, text: alert.summary, sentAt: content.sentAt, receivedAt: received,
            reason: alert.reason.rawValue, lastCheckin: alert.lastCheckin)
        event.notes = [Self.ackHint(contact.name)]
        return event
    }

    /// Overdue check-ins, and (with `reminders`) alerts and overdue check-ins nobody has
    /// acknowledged that were last shown `reminderInterval` ago or more. `read` asks without
    /// reminders and gets every overdue check-in; a watch asks with reminders on each tick.
    public func overdueEvents(reminders: Bool) throws -> [ReadEvent] {
        let at = now()
        // Looked at first without the write lock: most of a watch's ticks find nothing to say.
        guard try !read({ db in try dueEvents(db, at: at, reminders: reminders, apply: false) }).isEmpty else { return [] }
        return try write { db in try dueEvents(db, at: at, reminders: reminders, apply: true) }
    }

    /// The events `overdueEvents` reports; with `apply`, records that they were shown.
    private func dueEvents(_ db: Database, at: UInt64, reminders: Bool, apply: Bool) throws -> [ReadEvent] {
        do {
            var events: [ReadEvent] = []
            for var row in try store.contacts(db) {
                guard var watch = row.record.watching, let notice = try? CheckinNotice(decoding: [UInt8](watch.notice)) else { continue }
                let name = row.record.name
                if var alert = watch.alert, alert.counter >= notice.counter || alert.replaced == true {
                    // Alerted: shown again until someone acknowledges.
                    guard reminders, alert.ackedBy.isEmpty, !alert.ackedByMe, at >= alert.lastShownAt + Self.reminderInterval else { continue }
                    alert.lastShownAt = at
                    watch.alert = alert
                    var event = ReadEvent(
                        kind: alert.reason == "overdue" ? .overdue : .alert, contact: name, text: alert.text,
                        receivedAt: at * 1000, reason: alert.reason, dueAt: notice.alertAt * 1000)
                    event.notes = ["reminder: nobody has acknowledged this yet", Self.ackHint(name)]
                    events.append(event)
                } else {
                    guard notice.state == .armed, watch.answer != "declined", at >= notice.alertAt + Self.overdueSlack else { continue }
                    if reminders, let shown = watch.overdueShownAt, at < shown + Self.reminderInterval { continue }
                    watch.overdueShownAt = at
                    var event = ReadEvent(
                        kind: .overdue, contact: name,
                        text: "\(name)'s check-in is OVERDUE: an alert was due at \(AlertMessage.format(notice.alertAt)) and neither "
                            + "it nor a check-in has arrived. Their relay may be down or holding it back. Try to reach \(name) "
                            + "another way. Their plan: \(notice.note.isEmpty ? "(no note)" : notice.note)",
                        receivedAt: at * 1000, lastCheckin: notice.lastCheckin, dueAt: notice.alertAt * 1000)
                    event.notes = [Self.ackHint(name)]
                    events.append(event)
                }
                row.record.watching = watch
                if apply { try store.updateContact(row, db) }
            }
            return events
        }
    }

    /// The check-ins that name this device, for `belay checkin watching`.
    public func watching() throws -> [WatchedCheckin] {
        let at = now()
        return try read { db in try store.contacts(db) }.compactMap { row in
            guard let watch = row.record.watching, let n = try? CheckinNotice(decoding: [UInt8](watch.notice)), n.state == .armed else { return nil }
            var state = at >= n.alertAt + Self.overdueSlack ? "overdue" : "waiting"
            if let alert = watch.alert, alert.counter >= n.counter || alert.replaced == true {
                state = alert.ackedBy.isEmpty && !alert.ackedByMe ? "alerted" : "acknowledged"
            }
            return WatchedCheckin(
                contact: row.record.name, dueAt: n.alertAt * 1000, every: n.every, grace: n.grace, lastCheckin: n.lastCheckin,
                tier: Int(n.tier), plan: n.note, answer: watch.answer ?? "none", state: state)
        }
    }

    /// Whether `name` checked in under duress within `duressCaution`.
    public func underDuress(_ name: String) throws -> Bool {
        guard let row = try read({ db in try store.contact(named: name, db) }), let at = row.record.duressAt else { return false }
        return now() < at + Self.duressCaution
    }

    /// `belay checkin agree|decline NAME`: tells the person, through the ratchet.
    public func answerCheckin(_ name: String, agree: Bool) async throws {
        let row = try read { db in try store.contact(named: name, db) }
        guard let row else { throw ClientError.unknownContact(name) }
        guard let watch = row.record.watching, let n = try? CheckinNotice(decoding: [UInt8](watch.notice)), n.state == .armed else {
            throw ClientError.invalidInput("\(row.record.name) has no check-in that names you")
        }
        let answer = CheckinAnswer(kind: agree ? .agree : .decline, checkin: n.checkin, counter: n.counter, note: "")
        try await send(to: row.record.name, kind: .answer, body: answer.encoded(), history: nil)
        try write { db in
            guard var fresh = try store.contact(id: row.id, db) else { return }
            fresh.record.watching?.answer = agree ? "agreed" : "declined"
            try store.updateContact(fresh, db)
        }
    }
}
