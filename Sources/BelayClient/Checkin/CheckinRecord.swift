import BelayE2E
import BelaySodium
import Foundation

/// The person's armed check-in, sealed in the local store like everything else.
struct CheckinRecord: Codable, Sendable {
    struct Target: Codable, Sendable {
        var contact: String
        var identity: Data
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
        /// The check-in code's tag in a sealed box to this contact, until a notice carries it.
        var tagBox: Data? = nil
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

    /// Earlier authorities of this check-in, newest last (sealed like the timer keys): a contact
    /// that has not yet been sent the current one is sent it under the one it holds.
    var pastAuthoritySeeds: [Data]? = nil
    /// The links that hand the check-in code's tag to the contacts (`TagChain`), oldest first.
    var tagChain: [Data]? = nil
    /// Most earlier authorities kept.
    static let maxPastAuthorities = 8

    var authorityPublicKey: [UInt8] {
        (try? authoritySeed.map { try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8]($0))).publicKey }) ?? nil ?? []
    }

    /// Signs a notice for `target` with the authority that contact holds, and records that it
    /// now holds the current one. Without codes there is no authority and nothing is signed.
    func sign(_ notice: inout CheckinNotice, for target: inout Target) throws {
        guard let seed = authoritySeed else { return }
        let current = try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8](seed)))
        var signer = current
        for pastSeed in pastAuthoritySeeds ?? [] {
            let past = try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8](pastSeed)))
            if target.authority == Data(past.publicKey) { signer = past }
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
