/// What can go wrong in the end-to-end layer. None of the cases carries secret material.
public enum E2EError: Error, Equatable, CustomStringConvertible {
    /// Bytes that do not parse as the named structure.
    case malformed(String)
    case unsupportedVersion(UInt8)
    /// An invitation whose signature does not verify: altered or not from whom it claims.
    case invitationForged
    case invitationExpired
    /// A pairing confirmation that fails to decrypt or whose signature does not verify.
    case confirmationRejected
    /// A message that does not authenticate: forged, altered, reflected back to its sender, or
    /// a replay of one whose key has already been used and deleted.
    case messageRejected
    /// A message more than `Ratchet.maxSkip` ahead of the chain; it cannot be decrypted without
    /// deriving too many keys.
    case tooFarAhead(Int)
    case messageTooLong(Int)

    public var description: String {
        switch self {
        case let .malformed(what): "malformed \(what)"
        case let .unsupportedVersion(v): "unsupported format version \(v)"
        case .invitationForged: "the invitation's signature does not verify; it was altered or is not genuine"
        case .invitationExpired: "the invitation has expired; ask for a new one"
        case .confirmationRejected: "a pairing reply did not authenticate"
        case .messageRejected: "a message did not authenticate (forged, altered, reflected, or a replay)"
        case let .tooFarAhead(n): "a message claims to be \(n) messages ahead of the conversation"
        case let .messageTooLong(n): "the message is \(n) bytes; the limit is \(Envelope.maxContentLength)"
        }
    }
}
