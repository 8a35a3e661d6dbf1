import Foundation

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
    /// The check-in code's tag, from the notice that set the codes: a notice with another tag
    /// was made with the duress code.
    var checkinTag: Data? = nil

    struct AlertState: Codable, Sendable {
        var reason: String
        var counter: UInt64
        var at: UInt64
        var text: String
        /// Names of those who acknowledged (as this device calls them), and whether this device did.
        var ackedBy: [String] = []
        var ackedByMe = false
        var lastShownAt: UInt64
        /// From a check-in that was replaced without its code: pending until acknowledged,
        /// whatever the notices after it say.
        var replaced: Bool? = nil
    }
}
