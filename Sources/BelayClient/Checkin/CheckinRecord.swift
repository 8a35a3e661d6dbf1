import BelaySodium
import BelayE2E
import Foundation

/// The person's armed check-in, sealed in the local store like everything else.
struct CheckinRecord: Codable, Sendable {
    struct Target: Codable, Sendable {
        var contact: String
        var identity: Data
        /// The alert key announced to this contact at arming (announcement bytes).
        var alertKey: Data
        /// The timer at the contact's relay holding this contact's alert, and its key's seed.
        var timerId: Data
        var timerSeed: Data
        var deadline: UInt64
        /// 0: alerted at the deadline and grace; 1 and up: escalation tiers, alerted later.
        var tier: Int? = nil
        /// What the contact answered to being named: "agreed" or "declined"; nil until then.
        var answer: String? = nil
        /// Their last acknowledgement of an alert, and its note.
        var ackedAt: UInt64? = nil
        var ackNote: String? = nil
        /// When this device computed the timer to be due (Unix seconds): a timer gone after it
        /// fired; one gone before it was lost or deleted by the relay.
        var dueAt: UInt64? = nil
        /// The seed of a timer key whose TSET was sent but not yet recorded as done.
        var pendingSeed: Data? = nil
        /// The authority key (public) this contact was last sent: the next notice to them is
        /// signed with its private half.
        var authority: Data? = nil
    }

    var every: UInt64
    var grace: UInt64
    var note: String
    var armedAt: UInt64
    var lastCheckin: UInt64
    var targets: [Target]
    /// With codes set at arming: the slots that open the renewal key; the timer key seeds in
    /// `targets` are then stored sealed under it (`CodeSlots`).
    var codeSlots: CodeSlots? = nil
    /// With codes: the seed of the key that signs this check-in's notices (sealed like the
    /// timer keys), so that nobody without a code can end or replace it at the contacts.
    var authoritySeed: Data? = nil
    /// Random per arming, and one more for every notice sent (docs/PROTOCOL.md §8.5).
    var id: Data? = nil
    var counter: UInt64? = nil
    /// The key the contacts seal acknowledgements to each other under (`AlertKey.announcement`).
    var circleKey: Data? = nil
    /// `tierAfter[i]`: seconds between tier i's alert and tier i+1's, if nobody acknowledges.
    var tierAfter: [UInt64]? = nil
    /// Found by a check-in and not yet reported (kept across a check-in that fails part-way):
    /// when the alerts went out, and whose timers were gone before their deadline.
    var firedAt: UInt64? = nil
    var lostTimers: [String]? = nil

    /// With codes changed at a re-arm: the authority the contacts held before, until each has
    /// been sent the new one (sealed like the timer keys).
    var previousAuthoritySeed: Data? = nil

    var authorityPublicKey: [UInt8] {
        (try? authoritySeed.map { try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8]($0))).publicKey }) ?? nil ?? []
    }

    /// Signs a notice for `target` with the authority that contact holds, and records that it
    /// now holds the current one. Without codes there is no authority and nothing is signed.
    func sign(_ notice: inout CheckinNotice, for target: inout Target) throws {
        guard let seed = authoritySeed else { return }
        let current = try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8](seed)))
        var signer = current
        if let previousSeed = previousAuthoritySeed {
            let previous = try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8](previousSeed)))
            if target.authority == Data(previous.publicKey) { signer = previous }
        }
        try notice.sign(with: signer)
        target.authority = Data(current.publicKey)
    }

    /// A renewal found `target`'s timer gone: after the deadline this device computed it fired,
    /// before it the relay lost or deleted it. Kept until a check-in reports it.
    mutating func noteGone(_ target: Target, at now: UInt64) {
        let due = target.dueAt ?? target.deadline
        if now >= due { firedAt = min(firedAt ?? due, due) } else { lostTimers = (lostTimers ?? []) + [target.contact] }
    }

    /// Seconds from a check-in to the alert of `tier`.
    func delay(tier: Int) -> UInt64 {
        every + grace + (tierAfter ?? []).prefix(tier).reduce(0, +)
    }
}

/// What a contact keeps about a person's check-in that names them: the latest notice (its
/// schedule and next alert key), and what has happened since.
struct WatchRecord: Codable, Sendable {
    /// `CheckinNotice.encoded()` of the newest notice.
    var notice: Data
    /// When this device received it (Unix seconds).
    var receivedAt: UInt64
    /// "agreed" or "declined", once this contact answered.
    var answer: String? = nil
    /// The alert (missed, duress or help) of this check-in that is not yet acknowledged, or was.
    var alert: AlertState? = nil
    /// When an overdue event was last shown (Unix seconds).
    var overdueShownAt: UInt64? = nil
    /// The duress code's tag, from the notice that set the codes.
    var duressTag: Data? = nil

    struct AlertState: Codable, Sendable {
        var reason: String
        var counter: UInt64
        var at: UInt64
        var text: String
        /// Names of those who acknowledged (as this device calls them), and whether this device did.
        var ackedBy: [String] = []
        var ackedByMe = false
        var lastShownAt: UInt64
    }
}

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
}
