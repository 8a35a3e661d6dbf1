import BelayE2E
import BelayWire
import Foundation

/// A queue this client reads: where it is, its recipient id and the seed of its recipient key.
struct Inbox: Codable, Sendable {
    var relay: String
    var recipientId: Data
    var senderId: Data
    var recipientSeed: Data
}

/// A queue this client writes to: where, which sender id, and the seed of the sender key the
/// queue is (or will be) secured with.
struct Outlet: Codable, Sendable {
    var relay: String
    var senderId: Data
    var senderSeed: Data
}

struct ContactRecord: Codable, Sendable {
    var name: String
    var identity: Data
    var verified: Bool
    var pairedAt: UInt64
    var ratchet: Data
    var inbox: Inbox
    var outlet: Outlet
    /// The relay `seq` of the last delivery from the inbox that authenticated: a known envelope
    /// at or below it is a quiet redelivery, above it a replay; a lower one means the relay's
    /// numbering went backwards. Never trusted to skip anything.
    var lastRelaySeq: UInt64
    var sentSequence: UInt64
    var receivedSequence: UInt64
    /// The inviter cannot send until the acceptor's first ratchet message (its hello) arrives.
    var awaitingHello: Bool
    /// This contact's check-in that names us, from its newest notice.
    var watching: WatchRecord? = nil
    /// Ids of alert keys this contact replaced or revoked, newest last: an alert under one is
    /// stale, and refused.
    var retiredAlertKeys: [Data]? = nil
    /// When this contact last checked in under duress (Unix seconds): `belay send` to them asks
    /// first for a while, since a reply lands on a device someone may be watching.
    var duressAt: UInt64? = nil
    /// Ids of alerts from this contact already shown, newest last, to recognise a replay.
    var seenAlerts: [String]? = nil
    /// BLAKE2b-128 of the last message envelopes opened from this contact, newest last, to tell
    /// a second copy of one (a resend after a crash, or a relay replay) from a forgery.
    var recentMessages: [Data]? = nil
}

struct InvitationRecord: Codable, Sendable {
    var name: String?
    var text: String
    var oneTimeSecret: Data
    var pqSeed: Data
    var inbox: Inbox
    var createdAt: UInt64
    var expires: UInt64
    /// For an invitation made for one known person (a group member met through the group): only
    /// their identity may answer it; anyone else, the admin who carried it included, is refused.
    var expectedIdentity: Data? = nil
}

/// One entry of a conversation's history, kept encrypted until `forget` or `wipe`.
public struct HistoryEntry: Codable, Sendable {
    public enum Direction: String, Codable, Sendable { case incoming, outgoing }
    public var direction: Direction
    public var kind: String
    public var sequence: UInt64
    public var sentAt: UInt64
    public var receivedAt: UInt64
    public var text: String
    /// False from the moment an incoming message is recorded until `belay` has printed it, so a
    /// read interrupted in between shows it again rather than never.
    public var shown: Bool? = true
}

/// A body waiting to be delivered to a contact's relay; deleted once the relay says OK.
struct PendingSend: Codable, Sendable {
    var body: Data
    var createdAt: UInt64
}
