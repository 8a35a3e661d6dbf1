import BelaySodium

/// The body of a group content message (content kind 7, docs/PROTOCOL.md §8.6). It travels
/// inside one pairwise ratchet, so its sender is the contact it came from; only a state, which
/// may be passed on by anyone, carries its own signature.
public enum GroupMessage: Sendable, Equatable {
    /// Longest group message text (the content limit less room for the fields).
    public static let maxTextLength = 12_000
    /// Longest request for support; its tier bodies and cancels must fit one message.
    public static let maxRequestLength = 2000
    public static let maxInvitationLength = Invitation.maxTextLength

    /// A new signed membership state.
    case state(GroupState)
    /// "I consent": an invited member joins, naming the version that added them.
    case join(group: [UInt8], addedAt: UInt64)
    /// "I am leaving": needs nobody's permission.
    case leave(group: [UInt8])
    /// A message to the group, with the version its sender had.
    case text(group: [UInt8], version: UInt64, text: String)
    /// An invitation from one member for another they are not paired with, sent to an admin who
    /// passes it on (`for` is the member it is meant for).
    case introduce(group: [UInt8], for: PublicIdentity, invitation: String)
    /// A roster member going on or off duty, until a time (Unix seconds, 0 for no end).
    case duty(group: [UInt8], on: Bool, until: UInt64)
    case request(RosterRequest)
    /// The request was claimed; `by` is empty when the requester did not allow naming them.
    case claimed(group: [UInt8], request: [UInt8], by: PublicIdentity?)
    /// Released by the relay when a request's claim lock runs out: nobody claimed it.
    case unclaimed(group: [UInt8], request: [UInt8])
    /// From an admin to someone they add: the group's name and kind and the version that added
    /// them, but not who is in it, which they learn only once they join.
    case invite(group: [UInt8], name: String, roster: Bool, addedAt: UInt64)

    enum Tag: UInt8 { case state = 1, join, leave, text, introduce, duty, request, claimed, unclaimed, invite }

    public var group: [UInt8] {
        switch self {
        case let .state(s): s.id
        case let .join(g, _), let .leave(g), let .text(g, _, _), let .introduce(g, _, _), let .duty(g, _, _),
            let .claimed(g, _, _), let .unclaimed(g, _), let .invite(g, _, _, _):
            g
        case let .request(r): r.group
        }
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        switch self {
        case let .state(s):
            w.u8(Tag.state.rawValue)
            w.put(s.encoded())
        case let .join(g, addedAt):
            w.u8(Tag.join.rawValue)
            w.put(g)
            w.u64(addedAt)
        case let .leave(g):
            w.u8(Tag.leave.rawValue)
            w.put(g)
        case let .text(g, version, text):
            w.u8(Tag.text.rawValue)
            w.put(g)
            w.u64(version)
            w.bytes16(Array(text.utf8))
        case let .introduce(g, target, invitation):
            w.u8(Tag.introduce.rawValue)
            w.put(g)
            w.put(target.bytes)
            w.bytes16(Array(invitation.utf8))
        case let .duty(g, on, until):
            w.u8(Tag.duty.rawValue)
            w.put(g)
            w.u8(on ? 1 : 0)
            w.u64(until)
        case let .request(r):
            w.u8(Tag.request.rawValue)
            w.put(r.encoded())
        case let .claimed(g, request, by):
            w.u8(Tag.claimed.rawValue)
            w.put(g)
            w.put(request)
            w.bytes16(by?.bytes ?? [])
        case let .unclaimed(g, request):
            w.u8(Tag.unclaimed.rawValue)
            w.put(g)
            w.put(request)
        case let .invite(g, name, roster, addedAt):
            w.u8(Tag.invite.rawValue)
            w.put(g)
            w.bytes16(Array(name.utf8))
            w.u8(roster ? 1 : 0)
            w.u64(addedAt)
        }
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        guard let tag = Tag(rawValue: try r.u8("group message type")) else { throw E2EError.malformed("group message type") }
        if tag == .state {
            self = .state(try GroupState(decoding: try r.take(r.remaining, "group state")))
            return
        }
        if tag == .request {
            self = .request(try RosterRequest(decoding: try r.take(r.remaining, "request")))
            return
        }
        let group = try r.take(GroupState.idLength, "group id")
        switch tag {
        case .join:
            let addedAt = try r.u64("join version")
            guard addedAt <= GroupState.maxVersion else { throw E2EError.malformed("join version") }
            self = .join(group: group, addedAt: addedAt)
        case .leave: self = .leave(group: group)
        case .text:
            let version = try r.u64("group version")
            guard version <= GroupState.maxVersion else { throw E2EError.malformed("group version") }
            self = .text(group: group, version: version, text: try Self.text(&r, "group text", Self.maxTextLength))
        case .introduce:
            let target = try PublicIdentity(bytes: try r.take(PublicIdentity.length, "introduced member"))
            self = .introduce(group: group, for: target, invitation: try Self.text(&r, "introduction", Self.maxInvitationLength))
        case .duty:
            let on = try r.u8("duty")
            guard on <= 1 else { throw E2EError.malformed("duty") }
            self = .duty(group: group, on: on == 1, until: try r.u64("duty until"))
        case .claimed:
            let request = try r.take(RosterRequest.idLength, "request id")
            let by = try r.bytes16("claimed by", maximum: PublicIdentity.length)
            self = .claimed(group: group, request: request, by: by.isEmpty ? nil : try PublicIdentity(bytes: by))
        case .unclaimed: self = .unclaimed(group: group, request: try r.take(RosterRequest.idLength, "request id"))
        case .invite:
            let name = try GroupState.text(&r, "group name")
            let roster = try r.u8("group kind")
            let addedAt = try r.u64("invite version")
            guard roster <= 1, addedAt >= 1, addedAt <= GroupState.maxVersion else { throw E2EError.malformed("group invitation") }
            self = .invite(group: group, name: name, roster: roster == 1, addedAt: addedAt)
        case .state, .request: throw E2EError.malformed("group message type")
        }
        try r.expectEnd("group message")
    }

    static func text(_ r: inout ByteReader, _ field: String, _ maximum: Int) throws -> String {
        let bytes = try r.bytes16(field, maximum: maximum)
        guard let s = String(bytes: bytes, encoding: .utf8) else { throw E2EError.malformed(field) }
        return s
    }
}
