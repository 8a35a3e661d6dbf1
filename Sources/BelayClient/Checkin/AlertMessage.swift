import Foundation

/// What an alert says, inside its end-to-end encryption: why it was sent, the person's note,
/// and when they last checked in.
public struct AlertMessage: Codable, Sendable, Equatable {
    public enum Reason: String, Codable, Sendable {
        /// The deadline and grace passed without a check-in; deposited at the relay in advance.
        case missed
        /// `belay checkin alert`: help needed now.
        case help
        /// The duress code was entered at `belay checkin ok`.
        case duress
    }

    public var reason: Reason
    public var note: String
    /// Unix seconds of the last check-in; 0 if none since arming.
    public var lastCheckin: UInt64
    /// Random, to recognise the same alert delivered twice.
    public var id: String
    /// For a deposited alert: the check-in (hex id), the notice it was deposited with, and the
    /// time (Unix seconds) it is due. A contact refuses one that is early or stale.
    public var checkin: String? = nil
    public var counter: UInt64? = nil
    public var alertAt: UInt64? = nil
    /// For an escalation tier's alert: how long the earlier tiers had to acknowledge.
    public var escalatedAfter: UInt64? = nil

    /// The text `belay read` shows for an alert.
    public var summary: String {
        let last = lastCheckin == 0 ? "never" : Self.format(lastCheckin)
        let note = self.note.isEmpty ? "(no note)" : self.note
        switch reason {
        case .missed:
            let escalated = escalatedAfter.map { " Nobody alerted before you acknowledged within \(DurationText.describe($0))." } ?? ""
            return "MISSED CHECK-IN. Last check-in: \(last).\(escalated) Their plan: \(note)"
        case .help: return "NEEDS HELP NOW. Last check-in: \(last). Their note: \(note)"
        case .duress:
            return "DURESS: they checked in with their duress code, which means they are not safe and may be watched or coerced. "
                + "Last check-in: \(last). Their plan: \(note)"
        }
    }

    static func format(_ seconds: UInt64) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm 'UTC'"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date(timeIntervalSince1970: Double(seconds)))
    }
}

/// What `belay checkin status` shows.
public struct CheckinStatus: Sendable, Codable, Equatable {
    public var armed: Bool
    public var every: UInt64 = 0
    public var grace: UInt64 = 0
    /// Unix seconds by which the person should check in, and after which alerts go out.
    public var due: UInt64 = 0
    public var alertAt: UInt64 = 0
    public var lastCheckin: UInt64 = 0
    public var contacts: [String] = []
    public var note: String = ""
    public var codes: Bool = false
    /// Set by a check-in that came too late: when the relay released the alerts (the earliest
    /// deadline among the contacts' timers that were already gone).
    public var alertsWentOutAt: UInt64?
    /// Contacts whose timer was gone before its deadline: the relay lost or deleted it.
    public var timersLostBeforeDeadline: [String] = []

    /// Each contact's tier, whether they agreed, and their last acknowledgement.
    public struct Answer: Sendable, Codable, Equatable {
        public var contact: String
        public var tier: Int
        /// none, agreed or declined.
        public var answer: String
        public var ackedAt: UInt64?
        public var ackNote: String?
    }

    public var answers: [Answer] = []
    /// Seconds between one tier's alert and the next's.
    public var tierAfter: [UInt64] = []
    /// With codes: every alert has gone out, so a new check-in may be armed without them.
    public var spent = false
}
