import Foundation

/// One warm introduction, as the introducer or as one of the two people offered to each other.
struct IntroRecord: Codable, Sendable {
    enum Role: Codable, Sendable {
        /// We introduced `a` to `b`; each answer is nil until it arrives.
        case introducer(Introducer)
        /// We were offered someone by `introducer`.
        case side(Side)
    }

    struct Introducer: Codable, Sendable {
        var a: Data
        var b: Data
        var aAnswer: Bool?
        var bAnswer: Bool?
        /// The first side's invitation, passed on to the second once both accept.
        var invitation: String?
        var completed: Bool
    }

    struct Side: Codable, Sendable {
        var introducer: Data
        var first: Bool
        /// nil until answered.
        var accepted: Bool?
        /// The name we gave the other person when accepting, or the introducer's for them.
        var name: String?
        /// Set when the other side declined.
        var withdrawn: Bool
        var paired: Bool
        /// The first side's own invitation, so it can be named once the introducer says who.
        var ownInvitation: String? = nil
        /// The second side's: the invitation passed on, accepted by the next follow-up.
        var toAccept: String? = nil
    }

    var id: Data
    var note: String
    var createdAt: UInt64
    var role: Role
}
