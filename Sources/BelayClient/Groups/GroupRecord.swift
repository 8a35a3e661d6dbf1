import BelayE2E
import Foundation

/// One group or roster as this client knows it (sealed in the `grp` table).
struct GroupRecord: Codable, Sendable {
    enum Status: String, Codable, Sendable {
        /// Added by an admin; nothing is sent to us until we join.
        case invited
        case joined
        /// Terminal: we left, were removed, or an admin ended the group. The record stays, so a
        /// late message for it is recognised and refused, not mistaken for a new group.
        case left, removed, retired

        var isOver: Bool { self == .left || self == .removed || self == .retired }
    }

    /// The newest signed state applied (`GroupState.encoded()`); empty while only invited, since
    /// an invitee is not told who is in the group until they join.
    var state: Data
    /// While invited: who invited us and what they said the group is.
    var invitation: Invitation? = nil

    struct Invitation: Codable, Sendable {
        var group: Data
        var admin: Data
        var name: String
        var roster: Bool
        var addedAt: UInt64
    }
    var localName: String
    var status: Status
    /// States ahead of the next version, held until those before them arrive.
    var future: [Data] = []
    /// Members who said they left, with the version that had added them: they get nothing more
    /// even before an admin's next state drops them.
    var departed: [Departure] = []
    var duty: [Duty] = []
    /// Group messages for members not yet paired with us (an admin's passed-on invitations
    /// among them), sent once they are.
    var held: [Held] = []
    /// Members we sent an invitation to, so it is made once (and again only after it expired).
    var introduced: [Data] = []
    /// When each invitation in `introduced` was made (hex identity → Unix seconds).
    var introducedAt: [String: UInt64] = [:]
    /// Invitations from members for us, accepted once we have joined.
    var toAccept: [Incoming] = []
    var requests: [RequestRecord] = []

    struct Departure: Codable, Sendable, Equatable {
        var identity: Data
        var addedAt: UInt64
    }

    struct Duty: Codable, Sendable {
        var identity: Data
        var on: Bool
        /// Unix seconds; 0 for no end.
        var until: UInt64
    }

    struct Held: Codable, Sendable {
        var identity: Data
        var body: Data
        var createdAt: UInt64
    }

    struct Incoming: Codable, Sendable {
        var identity: Data
        var invitation: String
    }

    /// Most held messages and pending states per group.
    static let maxHeld = 256
    static let maxFuture = 16
    /// Requests kept per group, newest last.
    static let maxRequests = 64
    /// Groups a client keeps (ended ones included): an invitation past it is refused, so a contact
    /// cannot fill the state with groups.
    static let maxGroups = 256
    /// Unanswered invitations kept from one inviter.
    static let maxInvitationsPerInviter = 16

    var hasState: Bool { !state.isEmpty }

    func decodedState() throws -> GroupState {
        guard hasState else {
            throw ClientError.invalidInput(
                status == .invited
                    ? "you have not joined \(localName): `belay group join \(localName)`"
                    : "an admin of \(localName) has not confirmed your joining yet; they do when they next read")
        }
        do { return try GroupState(decoding: [UInt8](state)) } catch { throw ClientError.stateDamaged("a group's state is damaged") }
    }

    /// Whether `identity` is a member who has joined and not left.
    func isActive(_ identity: Data, in state: GroupState) -> Bool {
        guard let m = state.members.first(where: { Data($0.identity.bytes) == identity }), m.joined else { return false }
        return !departed.contains(Departure(identity: identity, addedAt: m.addedAt))
    }

    func onDuty(_ identity: Data, now: UInt64) -> Bool {
        guard let d = duty.first(where: { $0.identity == identity }), d.on else { return false }
        return d.until == 0 || now < d.until
    }
}

/// A request for support this client made, or received as a roster member.
struct RequestRecord: Codable, Sendable {
    enum State: String, Codable, Sendable { case open, claimed, unclaimed }
    var id: Data
    /// The requester's identity (ours for our own requests).
    var from: Data
    var mine: Bool
    var text: String
    var tier: UInt8
    var window: UInt32
    var requestedAt: UInt64
    var tiers: UInt8
    var nameClaimer: Bool
    var lock: Timer
    var cancels: [Timer]
    var state: State
    var claimedBy: Data?
    /// Escalations already shown (the highest tier).
    var shownTier: UInt8
    /// Set before this client's claim goes to the relay: a retry after an interruption that finds
    /// the lock gone may be its own earlier claim.
    var claimAttempted: Bool? = nil

    struct Timer: Codable, Sendable {
        var relay: String
        var id: Data
        var seed: Data
    }

    /// When tier `k` is (or was) released.
    func releaseAt(tier k: UInt8) -> UInt64 { requestedAt + UInt64(k) * UInt64(window) }
}
