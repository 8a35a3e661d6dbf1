import BelaySodium

/// A warm introduction between two of the introducer's contacts (content kind 8,
/// docs/PROTOCOL.md §8.7). Each side is offered the other with only the introducer's note; once
/// both accept, the introducer passes the first side's invitation to the second, and the two pair
/// as with any invitation. Neither learns the other's identity or name before both have accepted.
public enum IntroductionMessage: Sendable, Equatable {
    public static let idLength = 16
    public static let maxNoteLength = 1000

    /// To each side; `first` says which one makes the invitation.
    case offer(id: [UInt8], note: String, first: Bool)
    /// From a side to the introducer; the first side's acceptance carries its invitation.
    case answer(id: [UInt8], accept: Bool, invitation: String)
    /// To the second side once both accepted: the first side's invitation, and what the
    /// introducer calls them.
    case forward(id: [UInt8], invitation: String, name: String)
    /// To the first side once both accepted: what the introducer calls the other, and their
    /// identity, the only one the first side's invitation will then accept.
    case named(id: [UInt8], name: String, identity: PublicIdentity)
    /// To a side whose offer will not go ahead (the other declined).
    case withdrawn(id: [UInt8])

    enum Tag: UInt8 { case offer = 1, answer, forward, named, withdrawn }

    public var id: [UInt8] {
        switch self {
        case let .offer(id, _, _), let .answer(id, _, _), let .forward(id, _, _), let .named(id, _, _), let .withdrawn(id): id
        }
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        switch self {
        case let .offer(id, note, first):
            w.u8(Tag.offer.rawValue)
            w.put(id)
            w.bytes16(Array(note.utf8))
            w.u8(first ? 1 : 0)
        case let .answer(id, accept, invitation):
            w.u8(Tag.answer.rawValue)
            w.put(id)
            w.u8(accept ? 1 : 0)
            w.bytes16(Array(invitation.utf8))
        case let .forward(id, invitation, name):
            w.u8(Tag.forward.rawValue)
            w.put(id)
            w.bytes16(Array(invitation.utf8))
            w.bytes16(Array(name.utf8))
        case let .named(id, name, identity):
            w.u8(Tag.named.rawValue)
            w.put(id)
            w.bytes16(Array(name.utf8))
            w.put(identity.bytes)
        case let .withdrawn(id):
            w.u8(Tag.withdrawn.rawValue)
            w.put(id)
        }
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        guard let tag = Tag(rawValue: try r.u8("introduction type")) else { throw E2EError.malformed("introduction type") }
        let id = try r.take(Self.idLength, "introduction id")
        switch tag {
        case .offer:
            let note = try GroupMessage.text(&r, "introduction note", Self.maxNoteLength)
            let first = try r.u8("introduction side")
            guard first <= 1 else { throw E2EError.malformed("introduction side") }
            self = .offer(id: id, note: note, first: first == 1)
        case .answer:
            let accept = try r.u8("introduction answer")
            guard accept <= 1 else { throw E2EError.malformed("introduction answer") }
            self = .answer(id: id, accept: accept == 1, invitation: try GroupMessage.text(&r, "invitation", Invitation.maxTextLength))
        case .forward:
            self = .forward(
                id: id, invitation: try GroupMessage.text(&r, "invitation", Invitation.maxTextLength),
                name: try GroupState.text(&r, "introduced name"))
        case .named:
            self = .named(
                id: id, name: try GroupState.text(&r, "introduced name"),
                identity: try PublicIdentity(bytes: try r.take(PublicIdentity.length, "introduced identity")))
        case .withdrawn:
            self = .withdrawn(id: id)
        }
        try r.expectEnd("introduction")
    }
}
