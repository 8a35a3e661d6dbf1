import BelaySodium

/// A group's membership at one version, signed by an admin (docs/PROTOCOL.md §8.6). Every change
/// is a whole new state: version one more than the last, `previous` the hash of the state it
/// replaces, signed by someone who is an admin in that state. A member's client applies only
/// such a successor, so neither a relay nor a member who is not an admin can add or remove anyone.
public struct GroupState: Sendable, Equatable {
    public static let formatVersion: UInt8 = 1
    public static let idLength = 16
    public static let hashLength = 32
    /// Most members a group holds: each message is one ratchet message per member, so a group is
    /// a circle of people, not a broadcast list.
    public static let maxMembers = 64
    public static let maxNameLength = 64
    /// Highest version (and `added_at`) accepted: far beyond any real group's changes, and low
    /// enough that one more never overflows.
    public static let maxVersion: UInt64 = 1 << 48
    static let signatureLabel = Array("belay group state v1".utf8)
    static let hashLabel = Array("belay group state hash v1".utf8)

    public struct Member: Sendable, Equatable {
        public enum Role: UInt8, Sendable { case member = 0, admin = 1, coordinator = 2, adminCoordinator = 3 }
        public var identity: PublicIdentity
        /// The name the admin who added them uses; each client shows its own contact name where
        /// it has one.
        public var name: String
        public var role: Role
        /// The version that added them: their join must name it, so an old join cannot re-admit
        /// someone removed and added again.
        public var addedAt: UInt64
        /// False while invited: nobody sends them anything until they join.
        public var joined: Bool

        public init(identity: PublicIdentity, name: String, role: Role, addedAt: UInt64, joined: Bool) {
            (self.identity, self.name, self.role, self.addedAt, self.joined) = (identity, name, role, addedAt, joined)
        }

        public var isAdmin: Bool { role == .admin || role == .adminCoordinator }
        public var isCoordinator: Bool { role == .coordinator || role == .adminCoordinator }
    }

    public var id: [UInt8]
    public var version: UInt64
    public var previous: [UInt8]
    public var name: String
    /// A roster: a group whose members take duty and answer requests for support.
    public var roster: Bool
    /// Ended by an admin: every member deletes the group's history.
    public var retired: Bool
    public var members: [Member]
    public var signer: PublicIdentity
    public var signature: [UInt8] = []

    public init(
        id: [UInt8], version: UInt64, previous: [UInt8], name: String, roster: Bool, retired: Bool = false,
        members: [Member], signer: PublicIdentity
    ) {
        (self.id, self.version, self.previous, self.name, self.roster, self.retired, self.members, self.signer) =
            (id, version, previous, name, roster, retired, members, signer)
    }

    public func member(_ identity: PublicIdentity) -> Member? { members.first { $0.identity == identity } }

    /// Members who have joined: the ones a group message goes to.
    public var active: [Member] { members.filter(\.joined) }

    var unsignedBytes: [UInt8] {
        var w = ByteWriter()
        w.u8(Self.formatVersion)
        w.put(id)
        w.u64(version)
        w.put(previous)
        w.bytes16(Array(name.utf8))
        w.u8((roster ? 1 : 0) | (retired ? 2 : 0))
        w.u8(UInt8(members.count))
        for m in members {
            w.put(m.identity.bytes)
            w.bytes16(Array(m.name.utf8))
            w.u8(m.role.rawValue)
            w.u64(m.addedAt)
            w.u8(m.joined ? 1 : 0)
        }
        w.put(signer.bytes)
        return w.bytes
    }

    public func encoded() -> [UInt8] { unsignedBytes + signature }

    /// What the next state names as `previous`.
    public func hash() throws -> [UInt8] { try BLAKE2b.hash(Self.hashLabel + encoded(), outputLength: Self.hashLength) }

    public mutating func sign(with identity: Identity) throws {
        precondition(identity.publicIdentity == signer, "a group state is signed by its signer")
        signature = try identity.signing.sign(Self.signatureLabel + unsignedBytes)
    }

    public var signatureVerifies: Bool {
        Ed25519.verify(signature: signature, message: Self.signatureLabel + unsignedBytes, publicKey: signer.signing)
    }

    /// Whether `self` may follow `current`: the same group, the next version, chained to it, and
    /// signed by one of its admins. A first state must be signed by an admin it names.
    public func follows(_ current: GroupState?) throws -> Bool {
        guard signatureVerifies else { return false }
        guard let current else { return version == 1 && previous == [UInt8](repeating: 0, count: Self.hashLength) && member(signer)?.isAdmin == true }
        guard id == current.id, version == current.version + 1, previous == (try current.hash()), !current.retired else { return false }
        return current.member(signer)?.isAdmin == true
    }

    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        let format = try r.u8("group state version")
        guard format == Self.formatVersion else { throw E2EError.unsupportedVersion(format) }
        id = try r.take(Self.idLength, "group id")
        version = try r.u64("group version")
        guard version >= 1, version <= Self.maxVersion else { throw E2EError.malformed("group version") }
        previous = try r.take(Self.hashLength, "group previous")
        name = try Self.text(&r, "group name")
        let flags = try r.u8("group flags")
        (roster, retired) = (flags & 1 != 0, flags & 2 != 0)
        let count = Int(try r.u8("group member count"))
        guard count <= Self.maxMembers else { throw E2EError.malformed("group member count") }
        members = []
        for _ in 0..<count {
            let identity = try PublicIdentity(bytes: try r.take(PublicIdentity.length, "member identity"))
            let name = try Self.text(&r, "member name")
            guard let role = Member.Role(rawValue: try r.u8("member role")) else { throw E2EError.malformed("member role") }
            let addedAt = try r.u64("member added")
            guard addedAt <= Self.maxVersion else { throw E2EError.malformed("member added") }
            let joined = try r.u8("member joined")
            guard joined <= 1, !members.contains(where: { $0.identity == identity }) else { throw E2EError.malformed("group member") }
            members.append(Member(identity: identity, name: name, role: role, addedAt: addedAt, joined: joined == 1))
        }
        signer = try PublicIdentity(bytes: try r.take(PublicIdentity.length, "group signer"))
        signature = try r.take(Ed25519.signatureLength, "group signature")
        try r.expectEnd("group state")
    }

    /// A name: UTF-8, at most 64 bytes, and nothing that could fake terminal output
    /// (`isPrintableName`).
    static func text(_ r: inout ByteReader, _ field: String) throws -> String {
        let bytes = try r.bytes16(field, maximum: maxNameLength)
        guard let s = String(bytes: bytes, encoding: .utf8), isPrintableName(s) else { throw E2EError.malformed(field) }
        return s
    }

    /// No control characters, line or paragraph separators, or bidirectional overrides and
    /// isolates: a name is printed on a terminal, where those could fake a line or reorder one.
    /// Joiners and marks that names need (the zero-width non-joiner in Persian, the joiner in an
    /// emoji) are allowed. The client's own `validate(name:)` applies the same rule.
    public static func isPrintableName(_ s: String) -> Bool {
        !s.unicodeScalars.contains { c in
            c.properties.generalCategory == .control || (0x2028...0x2029).contains(c.value) || (0x202A...0x202E).contains(c.value)
                || (0x2066...0x2069).contains(c.value)
        }
    }
}
