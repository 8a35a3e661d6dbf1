import BelaySodium
import BelayWire

/// An organisation member's queue-creation token as the store keeps it: never the token, only
/// its keyed hash, a label the operator chose, and how many queues it may and did create. No
/// queue row names the token that created it (docs/THREAT-MODEL.md, "Organisation tokens").
public struct MemberTokenRow: Sendable, Equatable {
    public var id: Int64
    public var hash: [UInt8]
    public var label: String?
    public var quota: Int
    public var used: Int
    public init(id: Int64, hash: [UInt8], label: String?, quota: Int, used: Int) {
        self.id = id
        self.hash = hash
        self.label = label
        self.quota = quota
        self.used = used
    }
}

/// A member token for the core to check, and what to answer if it does not pass: TOKEN where a
/// token is required, else the proof of work that would do instead.
public struct MemberTokenCheck: Equatable, Sendable {
    public var hash: [UInt8]
    public var refusal: RelayReply
}

/// The row operations on member tokens, inside a batch's transaction (NEW) or one of their own
/// (`belayd token`). Every store implements them, so that a running relay sees a token added
/// or revoked by `belayd token` at its next NEW.
public protocol MemberTokenTransaction {
    /// The token whose hash this is, or nil.
    func memberToken(hash: [UInt8]) throws -> MemberTokenRow?
    /// Counts one queue against the token if it has quota left; whether it had. Atomic in a
    /// shared store, so frontends together never exceed the quota.
    func spendMemberToken(id: Int64) throws -> Bool
    /// Stores a new token; its id. A label already taken is `MemberTokenError.labelTaken`.
    func insertMemberToken(hash: [UInt8], label: String?, quota: Int) throws -> Int64
    /// Every token, by id.
    func memberTokens() throws -> [MemberTokenRow]
    /// Deletes one token; whether it existed.
    func deleteMemberToken(id: Int64) throws -> Bool
}

public enum MemberTokenError: Error, Equatable, CustomStringConvertible {
    case labelTaken(String)
    case invalidLabel(String)
    case invalidQuota
    case tooMany
    case unknown(String)

    public var description: String {
        switch self {
        case let .labelTaken(label): "a token labelled \"\(label)\" already exists; revoke it first or pick another label"
        case let .invalidLabel(why): "invalid label: \(why)"
        case .invalidQuota: "--queues must be between 1 and \(MemberToken.maxQuota)"
        case .tooMany: "the relay already holds \(MemberToken.maxTokens) member tokens; revoke unused ones first"
        case let .unknown(what): "no member token with id or label \"\(what)\" (`belayd token list` shows them)"
        }
    }
}

/// Making, hashing and naming member tokens (docs/OPERATIONS.md, "Organisation tokens").
public enum MemberToken {
    /// What every token starts with, so that one pasted in the wrong place is recognisable.
    public static let prefix = "belay-token-"
    /// Random bytes in a token: guessing one is hopeless, so its hash needs no salt.
    static let secretLength = 32
    /// BLAKE2b key for member-token hashes: distinct from the unkeyed hash of configured
    /// `creation_tokens` and from every other hash Belay makes.
    static let hashKey = Array("belay member token hash v1".utf8)
    public static let hashLength = 32
    /// Tokens a relay holds: an organisation's members, with room; bounds `belayd token list`
    /// and the table.
    public static let maxTokens = 100_000
    /// Queues one token may create at most; the default is `defaultQuota`.
    public static let maxQuota = 1_000_000
    /// A member pairs with dozens of people and joins a few groups; each pairing or invitation
    /// costs one queue.
    public static let defaultQuota = 1_000
    /// Labels name a member or a device for the operator; short and printable.
    public static let maxLabelLength = 64

    /// A fresh token, as printed once by `belayd token add`.
    public static func generate(random: some RandomSource = SystemRandom()) -> String {
        prefix + Base64URL.encode(random.bytes(secretLength))
    }

    /// The keyed hash the store keeps instead of the token.
    public static func hash(_ token: [UInt8]) throws -> [UInt8] {
        try BLAKE2b.hash(token, outputLength: hashLength, key: hashKey)
    }

    /// A label is 1–64 printable characters, not all digits (so `revoke 12` means the id).
    public static func validate(label: String) throws(MemberTokenError) -> String {
        guard !label.isEmpty, label.count <= maxLabelLength else { throw .invalidLabel("1 to \(maxLabelLength) characters") }
        guard !label.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == "\u{7f}" }) else {
            throw .invalidLabel("no control characters")
        }
        guard !label.allSatisfy(\.isASCIIDigit) else { throw .invalidLabel("not only digits (a number names a token's id)") }
        return label
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
