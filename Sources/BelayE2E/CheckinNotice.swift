import BelaySodium

/// What a person's client tells each contact of a check-in, through the ratchet, every time it
/// arms, checks in or disarms (docs/PROTOCOL.md §8.5): the schedule, the key for the next alert,
/// and the tag of the code that was entered. Only the contacts know which tag is the check-in
/// code's (any other is duress): the device itself does not keep it, and all tags are the same
/// size.
public struct CheckinNotice: Sendable, Equatable {
    public static let version: UInt8 = 2
    public static let idLength = 16
    public static let tagLength = 16
    static let signatureLabel = Array("belay checkin notice v1".utf8)
    /// Most contacts a check-in names (the circle), and most timers a notice lets a contact cancel.
    public static let maxCircle = 16
    public static let maxNoteLength = 4000
    public static let maxNameLength = 64
    public static let maxRelayLength = 300

    public enum State: UInt8, Sendable {
        case armed = 1
        /// The check-in was disarmed: no alert will come under any key it announced.
        case ended = 2
    }

    /// Another contact of the same check-in: whom an acknowledgement is sent to, and with what.
    public struct Member: Sendable, Equatable {
        /// The name the person gave them.
        public var name: String
        public var identity: [UInt8]
        public var tier: UInt8
        /// The person's outlet to that member's queue (relay, sender id, sender key seed), so an
        /// acknowledgement reaches them even if the person's device is gone.
        public var relay: String
        public var senderId: [UInt8]
        public var senderSeed: [UInt8]

        public init(name: String, identity: [UInt8], tier: UInt8, relay: String, senderId: [UInt8], senderSeed: [UInt8]) {
            (self.name, self.identity, self.tier, self.relay, self.senderId, self.senderSeed) = (name, identity, tier, relay, senderId, senderSeed)
        }
    }

    /// The right to cancel a later tier's timer: given to earlier tiers, used by the first
    /// acknowledgement.
    public struct Cancel: Sendable, Equatable {
        public var relay: String
        public var timerId: [UInt8]
        public var timerSeed: [UInt8]

        public init(relay: String, timerId: [UInt8], timerSeed: [UInt8]) {
            (self.relay, self.timerId, self.timerSeed) = (relay, timerId, timerSeed)
        }
    }

    public var state: State
    /// The tag of the code entered for this command (zeros without codes).
    public var codeTag: [UInt8]
    /// The check-in's tag chain (`TagChain`): every change of codes so far, oldest first, so
    /// that a contact can walk from the tag it holds to the check-in code's current tag.
    public var tagChain: [[UInt8]]
    /// With new codes: the new check-in code's tag in a sealed box to this contact's identity
    /// (X25519), so that a contact with no tag yet starts from it; empty otherwise.
    public var tagBox: [UInt8] = []
    /// With codes: the Ed25519 key whose signature the next notices of this check-in need
    /// (empty without codes).
    public var authority: [UInt8]
    /// Signed by the authority the contacts hold (the previous one if this notice changes it).
    public var signature: [UInt8] = []
    /// Random per arming; the same for every notice of that check-in.
    public var checkin: [UInt8]
    /// One more for every notice of the check-in: an alert for an older one is stale.
    public var counter: UInt64
    /// Unix seconds: when this contact's alert is due if the person does not check in.
    public var alertAt: UInt64
    public var every: UInt64
    public var grace: UInt64
    public var lastCheckin: UInt64
    /// 0 for the first people alerted; 1 and up for escalation tiers.
    public var tier: UInt8
    /// Seconds between one tier's alert and the next tier's, if nobody acknowledges; 0 if none.
    public var escalateAfter: UInt64
    public var note: String
    /// The key the next alert for this contact is sealed under (`AlertKey.announcement`); empty
    /// when ended.
    public var alertKey: [UInt8]
    /// The key acknowledgements between the contacts are sealed under.
    public var circleKey: [UInt8]
    public var circle: [Member]
    public var cancels: [Cancel]

    public init(
        state: State, codeTag: [UInt8], tagChain: [[UInt8]], authority: [UInt8], checkin: [UInt8], counter: UInt64, alertAt: UInt64,
        every: UInt64, grace: UInt64, lastCheckin: UInt64, tier: UInt8, escalateAfter: UInt64, note: String, alertKey: [UInt8],
        circleKey: [UInt8], circle: [Member], cancels: [Cancel]
    ) {
        (self.state, self.codeTag, self.tagChain, self.authority) = (state, codeTag, tagChain, authority)
        (self.checkin, self.counter, self.alertAt) = (checkin, counter, alertAt)
        (self.every, self.grace, self.lastCheckin, self.tier, self.escalateAfter) = (every, grace, lastCheckin, tier, escalateAfter)
        (self.note, self.alertKey, self.circleKey, self.circle, self.cancels) = (note, alertKey, circleKey, circle, cancels)
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.version)
        w.u8(state.rawValue)
        w.put(codeTag)
        w.u8(UInt8(tagChain.count))
        for link in tagChain { w.put(link) }
        w.bytes16(tagBox)
        w.bytes16(authority)
        w.put(checkin)
        for v in [counter, alertAt, every, grace, lastCheckin] { w.u64(v) }
        w.u8(tier)
        w.u64(escalateAfter)
        w.bytes16(Array(note.utf8))
        w.bytes16(alertKey)
        w.bytes16(circleKey)
        w.u8(UInt8(circle.count))
        for m in circle {
            w.bytes16(Array(m.name.utf8))
            w.put(m.identity)
            w.u8(m.tier)
            w.bytes16(Array(m.relay.utf8))
            w.bytes16(m.senderId)
            w.bytes16(m.senderSeed)
        }
        w.u8(UInt8(cancels.count))
        for c in cancels {
            w.bytes16(Array(c.relay.utf8))
            w.bytes16(c.timerId)
            w.bytes16(c.timerSeed)
        }
        w.bytes16(signature)
        return w.bytes
    }

    /// What the signature covers: the notice with an empty signature.
    var signedBytes: [UInt8] {
        var unsigned = self
        unsigned.signature = []
        return Self.signatureLabel + unsigned.encoded()
    }

    public mutating func sign(with key: Ed25519.SigningKey) throws {
        signature = []
        signature = try key.sign(signedBytes)
    }

    public func isSigned(by authority: [UInt8]) -> Bool {
        authority.count == Ed25519.publicKeyLength && signature.count == Ed25519.signatureLength
            && Ed25519.verify(signature: signature, message: signedBytes, publicKey: authority)
    }

    /// For a contact that holds `held` (nil: no tag yet) and opened `boxed` from `tagBox`: the
    /// check-in code's tag after this notice's chain, and whether the notice was made with
    /// another code (normal only if its code tag is that tag). A check-in with codes that gives
    /// this contact nothing to judge by is treated as duress, the safe side; one without codes
    /// never is.
    public func checkinTag(held: [UInt8]?, boxed: [UInt8]?) -> (tag: [UInt8]?, duress: Bool) {
        let start = held ?? boxed
        guard start != nil || !authority.isEmpty || !tagChain.isEmpty else { return (nil, false) }
        guard let start else { return (nil, true) }
        let final = TagChain.walk(from: start, links: tagChain, checkin: checkin).final
        return (final, !Sodium.constantTimeEquals(codeTag, final))
    }

    public static let noTag = [UInt8](repeating: 0, count: tagLength)

    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        guard try r.u8("notice version") == Self.version else { throw E2EError.malformed("check-in notice version") }
        guard let state = State(rawValue: try r.u8("notice state")) else { throw E2EError.malformed("check-in notice state") }
        let codeTag = try r.take(Self.tagLength, "code tag")
        let links = Int(try r.u8("tag chain length"))
        guard links <= TagChain.maxLinks else { throw E2EError.malformed("check-in tag chain") }
        var tagChain: [[UInt8]] = []
        for _ in 0..<links { tagChain.append(try r.take(TagChain.linkLength, "tag chain link")) }
        let tagBox = try r.bytes16("tag box", maximum: Self.tagLength + SealedBox.overhead)
        let authority = try r.bytes16("authority", maximum: Ed25519.publicKeyLength)
        let checkin = try r.take(Self.idLength, "check-in id")
        let (counter, alertAt, every, grace, last) = (
            try r.u64("counter"), try r.u64("alert time"), try r.u64("every"), try r.u64("grace"),
            try r.u64("last check-in")
        )
        let tier = try r.u8("tier")
        let after = try r.u64("escalation")
        let note = try Self.text(&r, "note", Self.maxNoteLength)
        let alertKey = try r.bytes16("alert key", maximum: AlertKey.idLength + XChaChaPoly.keyLength)
        let circleKey = try r.bytes16("circle key", maximum: AlertKey.idLength + XChaChaPoly.keyLength)
        let members = Int(try r.u8("circle size"))
        guard members <= Self.maxCircle else { throw E2EError.malformed("check-in circle size") }
        var circle: [Member] = []
        for _ in 0..<members {
            circle.append(
                Member(
                    name: try Self.text(&r, "member name", Self.maxNameLength), identity: try r.take(PublicIdentity.length, "member identity"),
                    tier: try r.u8("member tier"), relay: try Self.text(&r, "member relay", Self.maxRelayLength),
                    senderId: try r.bytes16("member sender id", maximum: 16), senderSeed: try r.bytes16("member sender key", maximum: 32)))
        }
        let count = Int(try r.u8("cancel count"))
        guard count <= Self.maxCircle else { throw E2EError.malformed("check-in cancel count") }
        var cancels: [Cancel] = []
        for _ in 0..<count {
            cancels.append(
                Cancel(
                    relay: try Self.text(&r, "cancel relay", Self.maxRelayLength), timerId: try r.bytes16("timer id", maximum: 16),
                    timerSeed: try r.bytes16("timer key", maximum: 32)))
        }
        let signature = try r.bytes16("notice signature", maximum: Ed25519.signatureLength)
        try r.expectEnd("check-in notice")
        self.init(
            state: state, codeTag: codeTag, tagChain: tagChain, authority: authority, checkin: checkin, counter: counter, alertAt: alertAt, every: every,
            grace: grace,
            lastCheckin: last, tier: tier, escalateAfter: after, note: note, alertKey: alertKey, circleKey: circleKey,
            circle: circle, cancels: cancels)
        self.signature = signature
        self.tagBox = tagBox
    }

    static func text(_ r: inout ByteReader, _ field: String, _ maximum: Int) throws -> String {
        let bytes = try r.bytes16(field, maximum: maximum)
        guard let s = String(validating: bytes, as: UTF8.self) else { throw E2EError.malformed(field) }
        return s
    }
}

/// A contact's answer to the person, through the ratchet: consent, stepping down, or "I am on it".
public struct CheckinAnswer: Sendable, Equatable {
    public static let maxNoteLength = 1000

    public enum Kind: UInt8, Sendable {
        case agree = 1
        case decline = 2
        case ack = 3
    }

    public var kind: Kind
    public var checkin: [UInt8]
    public var counter: UInt64
    public var note: String

    public init(kind: Kind, checkin: [UInt8], counter: UInt64, note: String) {
        (self.kind, self.checkin, self.counter, self.note) = (kind, checkin, counter, note)
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.u8(kind.rawValue)
        w.put(checkin)
        w.u64(counter)
        w.bytes16(Array(note.utf8))
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        guard let kind = Kind(rawValue: try r.u8("answer kind")) else { throw E2EError.malformed("check-in answer kind") }
        let checkin = try r.take(CheckinNotice.idLength, "check-in id")
        let counter = try r.u64("counter")
        let note = try CheckinNotice.text(&r, "answer note", Self.maxNoteLength)
        try r.expectEnd("check-in answer")
        self.init(kind: kind, checkin: checkin, counter: counter, note: note)
    }
}
