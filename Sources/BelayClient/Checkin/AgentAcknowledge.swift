import BelayE2E
import BelaySodium
import BelayWire
import Foundation

extension Agent {
    /// What `belay checkin ack` did.
    public struct AckResult: Sendable, Equatable {
        /// Who was told (the person unless under duress, and the check-in's other contacts).
        public var told: [String] = []
        /// Later tiers' timers cancelled: nobody more needs to be alerted.
        public var cancelledTiers = 0
        /// What could not be done, one line each.
        public var failures: [String] = []
    }

    /// "I am acting on it": for an alert, a duress notice or an overdue check-in from `name`.
    /// Tells the person through the ratchet (not after duress: their device may be watched),
    /// tells every other contact of the check-in on the person's queues to them, and cancels the
    /// later tiers' alerts with the rights the notice carried.
    public func acknowledge(_ name: String, note: String) async throws -> AckResult {
        guard note.utf8.count <= CheckinAnswer.maxNoteLength else {
            throw ClientError.invalidInput("the note is longer than \(CheckinAnswer.maxNoteLength) bytes")
        }
        guard let row = try read({ db in try store.contact(named: name, db) }) else { throw ClientError.unknownContact(name) }
        let person = row.record
        let notice = person.watching.flatMap { try? CheckinNotice(decoding: [UInt8]($0.notice)) }
        let at = now()
        let alert = person.watching?.alert.flatMap { $0.counter >= (notice?.counter ?? 0) || $0.replaced == true ? $0 : nil }
        let overdue = notice.map { $0.state == .armed && at >= $0.alertAt + Self.overdueSlack } ?? false
        guard alert != nil || overdue || (notice == nil && !(person.seenAlerts ?? []).isEmpty) else {
            throw ClientError.invalidInput("\(person.name) has sent no alert and no check-in of theirs is overdue: nothing to acknowledge")
        }
        let duress = person.duressAt.map { at < $0 + Self.duressCaution } ?? false
        let answer = CheckinAnswer(
            kind: .ack, checkin: notice?.checkin ?? [UInt8](repeating: 0, count: CheckinNotice.idLength),
            counter: notice?.counter ?? 0, note: note)
        var result = AckResult()
        // Recorded first: a second `ack` after a failure retries what failed, and nothing is shown again.
        try write { db in
            guard var fresh = try store.contact(id: row.id, db), let n = notice else { return }
            var state = fresh.record.watching?.alert ?? WatchRecord.AlertState(reason: "overdue", counter: n.counter, at: at, text: "", lastShownAt: at)
            state.ackedByMe = true
            state.counter = max(state.counter, n.counter)
            fresh.record.watching?.alert = state
            try store.updateContact(fresh, db)
        }
        if !duress {
            do {
                try await send(to: person.name, kind: .answer, body: answer.encoded(), history: nil)
                result.told.append(person.name)
            } catch {
                result.failures.append("\(person.name) was not told yet (it is queued): \(error)")
            }
        }
        guard let notice else { return result }
        return try await withRelayPool { pool in
            let me = identity
            let personIdentity = try PublicIdentity(bytes: [UInt8](person.identity))
            if let circle = try? AlertKey(announcement: notice.circleKey) {
                for member in notice.circle {
                    do {
                        let to = try PublicIdentity(bytes: member.identity)
                        let ack = try CircleAck.make(answer, by: me, for: to)
                        let body = try Alerts.seal(
                            Content(kind: .answer, sequence: 0, sentAt: at * 1000, body: ack.encoded()), key: circle,
                            sender: personIdentity, receiver: to, label: CircleAck.sealLabel)
                        let outlet = try OutletKeys(Outlet(relay: member.relay, senderId: Data(member.senderId), senderSeed: Data(member.senderSeed)))
                        let connection = try await pool.connection(outlet.relay, lane: outlet.senderId)
                        do {
                            try await pool.authorise(.sender, outlet.senderId, key: outlet.key, on: connection)
                            try await connection.send(to: outlet.senderId, body: body)
                        } catch let error as RelayClientError {
                            throw Self.relayError(error, connection.address)
                        }
                        result.told.append(member.name)
                    } catch {
                        result.failures.append("\(member.name) was not told: \(error)")
                    }
                }
            }
            // Later tiers are stood down only for a missed check-in: after a duress or help alert the
            // person's check-in goes on, and a timer cancelled under it would show on their device.
            let missed = overdue || alert?.reason == "missed"
            for cancel in notice.cancels where missed {
                do {
                    guard let address = try? RelayAddress(parsing: cancel.relay), let id = EntityID(bytes: cancel.timerId) else { continue }
                    let key = try Ed25519.SigningKey(seed: SecureBytes(copying: cancel.timerSeed))
                    let connection = try await pool.connection(address, lane: id)
                    do {
                        try await pool.authorise(.timer, id, key: key, on: connection)
                        try await connection.cancelTimer(id)
                        result.cancelledTiers += 1
                    } catch RelayClientError.relay(.noTimer) {
                        // Already fired, or cancelled by another contact's acknowledgement.
                    } catch let error as RelayClientError {
                        throw Self.relayError(error, connection.address)
                    }
                } catch {
                    result.failures.append("a later tier's alert could not be cancelled, so they may be alerted too: \(error)")
                }
            }
            return result
        }
    }
}
