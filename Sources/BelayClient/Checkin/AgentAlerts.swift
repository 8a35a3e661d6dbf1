import BelayE2E
import BelaySodium
import BelayWire
import Foundation
import GRDB

/// A contact's side of someone's check-in: notices, alerts and acknowledgements as they arrive
/// (docs/CHECKINS.md, docs/PROTOCOL.md §8.5).
extension Agent {
    /// Alert ids remembered per contact to recognise an alert delivered twice.
    static let maxSeenAlertsPerContact = 64
    /// Retired alert key ids remembered per contact, to name a stale alert as such.
    static let maxRetiredKeysPerContact = 64
    /// How much earlier than its due time an alert is still accepted: the clocks of the person,
    /// the relay and this device may differ by this much.
    public static let alertClockTolerance: UInt64 = 120
    /// How long after a duress notice `belay send` to that contact asks first.
    public static let duressCaution: UInt64 = 7 * 86400

    /// A body under a key rather than the ratchet: a deposited alert, or another contact's
    /// acknowledgement under the circle key. Anything under a key this contact replaced or revoked
    /// is a stale release by the relay, and refused. Runs inside the delivery's transaction;
    /// the caller saves `row`.
    func processAlert(_ body: [UInt8], contact row: inout ClientStore.Row<ContactRecord>, relaySeq: UInt64, _ db: Database) throws -> [ReadEvent] {
        let name = row.record.name
        let them = try PublicIdentity(bytes: [UInt8](row.record.identity))
        let keyId = try? Alerts.keyId(of: body)
        let notice = row.record.watching.flatMap { try? CheckinNotice(decoding: [UInt8]($0.notice)) }
        if let notice, let circle = try? AlertKey(announcement: notice.circleKey), circle.id == keyId {
            return try processCircleAck(body, key: circle, contact: &row, notice: notice, db)
        }
        guard let notice, notice.state == .armed, let key = try? AlertKey(announcement: notice.alertKey), key.id == keyId else {
            if let keyId, (row.record.retiredAlertKeys ?? []).contains(Data(keyId)) {
                return [
                    ReadEvent(
                        kind: .security, contact: name,
                        text: "the relay released a stale alert from \(name): it was sealed for a check-in they have since renewed or "
                            + "ended, so it was refused. A faulty or hostile relay, or one restored from a backup")
                ]
            }
            return [ReadEvent(kind: .warning, contact: name, text: "an alert from \(name) could not be opened and was dropped")]
        }
        guard let content = try? Alerts.open(body, key: key, sender: them, receiver: identity.publicIdentity), content.kind == .alert,
            let alert = try? JSONDecoder().decode(AlertMessage.self, from: Data(content.body)),
            alert.counter == notice.counter, alert.checkin == Hex.encode(notice.checkin)
        else {
            return [ReadEvent(kind: .warning, contact: name, text: "an alert from \(name) could not be opened and was dropped")]
        }
        if (row.record.seenAlerts ?? []).contains(alert.id) { return [] }
        let at = now()
        if at + Self.alertClockTolerance < notice.alertAt {
            // The relay released it before its time: the person may still check in. Refused; if
            // no check-in follows, the overdue event comes at its time.
            return [
                ReadEvent(
                    kind: .security, contact: name,
                    text: "the relay released \(name)'s check-in alert early (due \(AlertMessage.format(notice.alertAt))); it was refused. "
                        + "If they do not check in, you will be told when it is overdue. A faulty or hostile relay")
            ]
        }
        let backwards = row.record.lastRelaySeq != 0 && relaySeq < row.record.lastRelaySeq
        row.record.lastRelaySeq = relaySeq
        row.record.seenAlerts = Array(((row.record.seenAlerts ?? []) + [alert.id]).suffix(Self.maxSeenAlertsPerContact))
        var event = ReadEvent(
            kind: .alert, contact: name, text: alert.summary, sentAt: content.sentAt, receivedAt: at * 1000,
            reason: alert.reason.rawValue, lastCheckin: alert.lastCheckin)
        if backwards { event.notes.append(Self.backwardsNote) }
        event.notes.append(Self.ackHint(name))
        var state = WatchRecord.AlertState(reason: alert.reason.rawValue, counter: notice.counter, at: at, text: alert.summary, lastShownAt: at)
        if let earlier = row.record.watching?.alert, earlier.counter == notice.counter {
            // Acknowledged already (as overdue, before a late alert came): it stays acknowledged.
            (state.ackedBy, state.ackedByMe) = (earlier.ackedBy, earlier.ackedByMe)
        }
        row.record.watching?.alert = state
        event.historyId = try store.appendHistory(
            HistoryEntry(
                direction: .incoming, kind: "alert", sequence: 0, sentAt: content.sentAt,
                receivedAt: at * 1000, text: event.text, shown: false), contact: row.id, db)
        return [event]
    }

    static func ackHint(_ name: String) -> String {
        "acknowledge with `belay checkin ack \(name)` so the others know someone is acting"
    }

    /// A notice from a person whose check-in names us: keep the newest, retire the key it
    /// replaces, and say what changed. A notice made with another code than the check-in code is
    /// a duress alert. A check-in set with codes can be renewed or ended only by notices signed
    /// with its authority (which only the codes open); a different check-in replaces it unsigned
    /// only once its alert time has passed, and then as a security event that keeps its alert
    /// waiting for an acknowledgement: someone with the person's device and passphrase but no
    /// code cannot make the contacts stop waiting.
    func noticeEvents(_ content: Content, contact: inout ContactRecord, received: UInt64) -> [ReadEvent] {
        let name = contact.name
        guard let notice = try? CheckinNotice(decoding: content.body) else {
            return [ReadEvent(kind: .warning, contact: name, text: "a check-in notice from \(name) could not be read")]
        }
        let at = received / 1000
        let old = contact.watching
        let oldNotice = old.flatMap { try? CheckinNotice(decoding: [UInt8]($0.notice)) }
        let same = oldNotice?.checkin == notice.checkin
        var events: [ReadEvent] = []
        // Whether this notice comes from whoever holds the codes of the check-in it follows.
        var fromCodeHolder = true
        if let oldNotice, !oldNotice.authority.isEmpty {
            fromCodeHolder = notice.isSigned(by: oldNotice.authority)
            let live = oldNotice.state == .armed && at < oldNotice.alertAt + Self.overdueSlack
            if !fromCodeHolder, same || live {
                return [
                    ReadEvent(
                        kind: .security, contact: name,
                        text: "a check-in notice from \(name)'s device was not made with their check-in code, so it was refused: someone "
                            + "may be using their device without the code. Their check-in stands: you will be alerted, or told it is "
                            + "overdue, at \(AlertMessage.format(oldNotice.alertAt)) unless they check in with their code")
                ]
            }
            if !fromCodeHolder {
                events.append(
                    ReadEvent(
                        kind: .security, contact: name,
                        text: "\(name)'s device started a new check-in without the code of the one that was due at "
                            + "\(AlertMessage.format(oldNotice.alertAt)): someone may be using their device. What that check-in "
                            + "raised still stands until acknowledged"))
            }
        } else if !notice.authority.isEmpty, !notice.isSigned(by: notice.authority) {
            return [ReadEvent(kind: .warning, contact: name, text: "a check-in notice from \(name) has a bad signature and was dropped")]
        }
        if same, let oldNotice, notice.counter <= oldNotice.counter { return [] }
        if let oldNotice, let k = try? AlertKey(announcement: oldNotice.alertKey) {
            contact.retiredAlertKeys = Array(((contact.retiredAlertKeys ?? []) + [Data(k.id)]).suffix(Self.maxRetiredKeysPerContact))
        }
        // The check-in code's tag comes through the notice's tag chain, walked from the tag this
        // device holds; a notice made with any other code is a duress alert.
        let held = fromCodeHolder && oldNotice != nil ? old?.checkinTag : nil
        // A box is adopted only by a contact that has not yet seen codes on this check-in (or
        // that was just told, as a security event, of a check-in replaced without its code):
        // once a contact holds a tag, or saw a notice with codes, it follows the chain only.
        let mayAdopt = oldNotice == nil || oldNotice?.authority.isEmpty == true || !fromCodeHolder
        let boxed = notice.tagBox.isEmpty || !mayAdopt ? nil : (try? SealedBox.open(notice.tagBox, keyPair: identity.agreement))
        let (tag, duress) = notice.checkinTag(held: held.map { [UInt8]($0) }, boxed: boxed?.count == CheckinNotice.tagLength ? boxed : nil)
        var watch = WatchRecord(notice: Data(content.body), receivedAt: at)
        watch.checkinTag = tag.map { Data($0) }
        if same { watch.answer = old?.answer }
        if let carried = old?.alert, carried.replaced == true, !carried.ackedByMe, carried.ackedBy.isEmpty {
            // An alert of a check-in replaced without its code waits, whatever comes after it,
            // until someone acknowledges it.
            watch.alert = carried
        } else if !fromCodeHolder, let oldAlert = old?.alert, !oldAlert.ackedByMe, oldAlert.ackedBy.isEmpty {
            watch.alert = oldAlert
            watch.alert?.replaced = true
        } else if !fromCodeHolder, let oldNotice, old?.alert == nil, oldNotice.state == .armed {
            watch.alert = WatchRecord.AlertState(
                reason: "overdue", counter: oldNotice.counter, at: at,
                text: "\(name)'s check-in due at \(AlertMessage.format(oldNotice.alertAt)) is overdue", lastShownAt: at,
                replaced: true)
        }
        if same, let oldNotice, oldNotice.state == .armed, old?.alert == nil, old?.overdueShownAt == nil,
            notice.lastCheckin >= oldNotice.alertAt + Self.alertClockTolerance
        {
            // They checked in after their alert was due, so the relay should have released it
            // ahead of this notice on the same queue; it did not (this device was offline and
            // never said "overdue").
            events.append(
                ReadEvent(
                    kind: .security, contact: name,
                    text: "\(name)'s alert due at \(AlertMessage.format(oldNotice.alertAt)) never arrived (their relay was down or held "
                        + "it back); they have checked in since", dueAt: oldNotice.alertAt * 1000))
        }
        switch notice.state {
        case .ended:
            events.append(ReadEvent(kind: .checkin, contact: name, text: "\(name) ended their check-in: no alert will come from it"))
        case .armed:
            if !same {
                let tier = notice.tier == 0 ? "" : " as a later tier: you are alerted only if nobody before you acknowledges"
                events.append(
                    ReadEvent(
                        kind: .checkin, contact: name,
                        text: "\(name) named you in a check-in\(tier). They check in every \(DurationText.describe(notice.every)); "
                            + "if they miss one, you are alerted at \(AlertMessage.format(notice.alertAt)) (or later, if they check in). "
                            + "Their plan: \(notice.note.isEmpty ? "(no note)" : notice.note). You are asked to act on an alert. "
                            + "Answer with `belay checkin agree \(name)` or `belay checkin decline \(name)`",
                        dueAt: notice.alertAt * 1000))
            } else if old?.alert != nil || old?.overdueShownAt != nil {
                events.append(
                    ReadEvent(
                        kind: .checkin, contact: name,
                        text: "\(name) checked in again at \(AlertMessage.format(notice.lastCheckin)); next alert due "
                            + AlertMessage.format(notice.alertAt), dueAt: notice.alertAt * 1000))
            }
        }
        if duress {
            let last = AlertMessage(reason: .duress, note: notice.note, lastCheckin: notice.lastCheckin, id: "")
            var event = ReadEvent(
                kind: .alert, contact: name, text: last.summary, sentAt: content.sentAt, receivedAt: received,
                reason: "duress", lastCheckin: notice.lastCheckin)
            event.notes = ["do not reply in Belay: a reply lands on \(name)'s device, which someone may be watching", Self.ackHint(name)]
            contact.duressAt = at
            watch.alert = WatchRecord.AlertState(reason: "duress", counter: notice.counter, at: at, text: last.summary, lastShownAt: at)
            events.insert(event, at: 0)
        }
        // An ended check-in is kept only while an alert from it waits to be acknowledged.
        contact.watching = notice.state == .armed || watch.alert != nil ? watch : nil
        return events
    }

    /// Another contact's signed "I am on it", sealed under the circle key and sent on the
    /// person's queue to us.
    func processCircleAck(
        _ body: [UInt8], key: AlertKey, contact row: inout ClientStore.Row<ContactRecord>, notice: CheckinNotice, _ db: Database
    ) throws -> [ReadEvent] {
        let name = row.record.name
        let person = try PublicIdentity(bytes: [UInt8](row.record.identity))
        guard let content = try? Alerts.open(body, key: key, sender: person, receiver: identity.publicIdentity, label: CircleAck.sealLabel),
            content.kind == .answer, let ack = try? CircleAck(decoding: content.body), ack.verify(for: identity.publicIdentity),
            let member = notice.circle.first(where: { $0.identity == ack.by.bytes }), ack.answer.kind == .ack,
            ack.answer.checkin == notice.checkin
        else {
            return [ReadEvent(kind: .warning, contact: name, text: "an acknowledgement about \(name)'s check-in could not be checked and was dropped")]
        }
        let at = now()
        // Only an acknowledgement of this notice's alert, once that alert is due or has come: a
        // copy of an older one (replayed by the relay) or one sent before any alert is refused.
        let alert: WatchRecord.AlertState? = row.record.watching?.alert
        let alertCame = alert.map { $0.counter >= notice.counter || $0.replaced == true } ?? false
        let alertDue: Bool = at + Self.alertClockTolerance >= notice.lastCheckin + notice.every + notice.grace
        let pending = alertCame || alertDue
        guard ack.answer.counter == notice.counter, pending else {
            return [
                ReadEvent(
                    kind: .warning, contact: name,
                    text: "an acknowledgement about \(name)'s check-in was for an alert that has not happened, and was dropped")
            ]
        }
        let contacts = try store.contacts(db)
        let by = contacts.first { $0.record.identity == Data(ack.by.bytes) }?.record.name ?? member.name
        var state = row.record.watching?.alert ?? WatchRecord.AlertState(reason: "missed", counter: notice.counter, at: at, text: "", lastShownAt: at)
        guard !state.ackedBy.contains(by) else { return [] }
        state.ackedBy.append(by)
        state.counter = max(state.counter, notice.counter)
        row.record.watching?.alert = state
        let note = ack.answer.note.isEmpty ? "" : ": \(ack.answer.note)"
        return [ReadEvent(kind: .ack, contact: name, text: "\(by) acknowledged \(name)'s alert and is acting\(note)", receivedAt: at * 1000, by: by)]
    }

    /// A contact's agree, decline or acknowledgement of our check-in, through the ratchet,
    /// recorded in the delivery's transaction.
    func answerEvents(_ content: Content, from contact: ContactRecord, _ db: Database) throws -> [ReadEvent] {
        let name = contact.name
        guard let answer = try? CheckinAnswer(decoding: content.body) else {
            return [ReadEvent(kind: .warning, contact: name, text: "an answer from \(name) could not be read")]
        }
        // The stored record is changed only in its answers, so its sealed timer keys stay as they are.
        guard var record = try store.checkin(db), record.id == Data(answer.checkin),
            let i = record.targets.firstIndex(where: { $0.identity == contact.identity })
        else {
            if answer.kind == .ack {
                return [
                    ReadEvent(
                        kind: .ack, contact: name,
                        text: "\(name) acknowledged your alert and is acting"
                            + (answer.note.isEmpty ? "" : ": \(answer.note)"), by: name)
                ]
            }
            return [ReadEvent(kind: .warning, contact: name, text: "\(name) answered about a check-in that is no longer armed")]
        }
        var event: ReadEvent
        switch answer.kind {
        case .agree:
            record.targets[i].answer = "agreed"
            event = ReadEvent(kind: .checkin, contact: name, text: "\(name) agreed to be alerted by your check-in")
        case .decline:
            record.targets[i].answer = "declined"
            event = ReadEvent(
                kind: .checkin, contact: name,
                text: "\(name) declined to be alerted by your check-in; they are still alerted until you re-arm without them "
                    + "(`belay checkin arm` with other contacts)")
        case .ack:
            record.targets[i].ackedAt = now()
            record.targets[i].ackNote = answer.note
            event = ReadEvent(
                kind: .ack, contact: name,
                text: "\(name) acknowledged your alert and is acting"
                    + (answer.note.isEmpty ? "" : ": \(answer.note)"), by: name)
        }
        try store.setCheckin(record, db)
        return [event]
    }
}
