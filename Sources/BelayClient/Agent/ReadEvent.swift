import Foundation

/// One thing `belay read` reports.
public struct ReadEvent: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case message
        /// A check-in alert: shown first and unmistakably.
        case alert
        /// An invitation was accepted, or the acceptor's hello arrived.
        case paired
        /// Something the person should know: a gap, a late message, a dropped forgery.
        case warning
        /// A hard stop: a verified contact's identity changed.
        case security
        /// A contact armed a check-in naming you as one of the people to alert.
        case checkin
        /// `read --watch` lost or regained a relay (`relay`, `state`: down or up).
        case status
        /// A contact's check-in passed its alert time with neither an alert nor a check-in
        /// arriving (`dueAt`): the relay may be down or holding it back.
        case overdue
        /// Someone acknowledged an alert and is acting (`by`).
        case ack
        /// A message in a group (`group`, `contact` its sender), or a change to its membership.
        case group
        /// A request for support to a roster (`id`, `roster`, `from`, `tier`).
        case request
        /// A request was claimed (`id`, `roster`, `by` if the requester allowed naming them).
        case claimed
        /// A request went on to its next tier, or ran out unclaimed (`id`, `roster`, `tier`).
        case escalated
        /// Someone offered to introduce you to a person (`id`, `from`), or an introduction moved on.
        case introduction
    }

    public var kind: Kind
    public var contact: String?
    public var text: String
    /// Sender's clock, milliseconds since the epoch; 0 when not a message.
    public var sentAt: UInt64 = 0
    public var receivedAt: UInt64 = 0
    public var sequence: UInt64 = 0
    public var notes: [String] = []
    /// For alerts: `missed`, `help` or `duress`, and the sender's last check-in (Unix seconds).
    public var reason: String? = nil
    public var lastCheckin: UInt64? = nil
    /// For status events: which relay (HOST:PORT), and `down` or `up`.
    public var relay: String? = nil
    public var state: String? = nil
    /// For overdue events and notices: when the alert is (or was) due, in milliseconds.
    public var dueAt: UInt64? = nil
    /// For ack events: who acknowledged.
    public var by: String? = nil
    /// For group events: the group's name.
    public var group: String? = nil
    /// For requests: the roster, the request id, the requester and the tier it came in.
    public var roster: String? = nil
    public var id: String? = nil
    public var from: String? = nil
    public var tier: Int? = nil
    /// The history row to mark shown once printed (not part of the JSON output).
    public var historyId: Int64? = nil
    /// The group history row to mark shown (not part of the JSON output).
    public var groupHistoryId: Int64? = nil

    enum CodingKeys: String, CodingKey {
        case kind, contact, text, sentAt, receivedAt, sequence, notes, reason, lastCheckin, relay, state, dueAt, by, group, roster, id, from, tier
    }
}

extension ReadEvent.Kind {
    /// Overdue check-ins, alerts and security events come first in `belay read`.
    public var urgency: Int {
        switch self {
        case .overdue, .alert, .security: 0
        case .ack, .request, .escalated: 1
        default: 2
        }
    }
}
