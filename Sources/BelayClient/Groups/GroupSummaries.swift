import Foundation

/// What `belay group list` shows.
public struct GroupSummary: Sendable, Codable, Equatable {
    public var name: String
    public var roster: Bool
    /// invited, joined, left, removed or retired.
    public var status: String
    public var version: UInt64
    public var members: Int
    public var admin: Bool
}

/// What `belay group members` and `belay roster status` show for each member.
public struct GroupMemberSummary: Sendable, Codable, Equatable {
    public var name: String
    public var you: Bool
    public var admin: Bool
    public var coordinator: Bool
    /// invited, joined or left.
    public var status: String
    /// Whether we can send to them yet (paired through the group's introductions).
    public var paired: Bool
    public var onDuty: Bool
    /// Unix seconds the duty ends; nil for no end or off duty.
    public var dutyUntil: UInt64?
}

/// What a group send reached.
public struct GroupSendOutcome: Sendable, Equatable {
    /// Handed to their relays.
    public var sent: [String]
    /// Saved in the outbox because their relay could not be reached; retried by the next command.
    public var queued: [String]
    /// Held until the group's introductions pair them with you.
    public var waitingForPairing: [String]
}
