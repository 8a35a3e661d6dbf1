/// Noise §7 handshake patterns, as data. Belay's relay uses NK; the others exist so the
/// implementation can be checked against every published vector for this cipher suite.
public struct HandshakePattern: Sendable, Equatable {
    public enum Token: Sendable, Equatable { case e, s, ee, es, se, ss }

    public let name: String
    /// Pre-messages: whether the initiator's and the responder's static keys are known in advance.
    public let initiatorStaticPremessage: Bool
    public let responderStaticPremessage: Bool
    /// Message patterns, alternating initiator → responder first.
    public let messages: [[Token]]

    public static let N = HandshakePattern(
        name: "N", initiatorStaticPremessage: false, responderStaticPremessage: true,
        messages: [[.e, .es]])
    public static let NK = HandshakePattern(
        name: "NK", initiatorStaticPremessage: false, responderStaticPremessage: true,
        messages: [[.e, .es], [.e, .ee]])
    public static let XK = HandshakePattern(
        name: "XK", initiatorStaticPremessage: false, responderStaticPremessage: true,
        messages: [[.e, .es], [.e, .ee], [.s, .se]])
    public static let IK = HandshakePattern(
        name: "IK", initiatorStaticPremessage: false, responderStaticPremessage: true,
        messages: [[.e, .es, .s, .ss], [.e, .ee, .se]])
    public static let XX = HandshakePattern(
        name: "XX", initiatorStaticPremessage: false, responderStaticPremessage: false,
        messages: [[.e], [.e, .ee, .s, .es], [.s, .se]])

    public static let all: [HandshakePattern] = [.N, .NK, .XK, .IK, .XX]

    /// A one-way pattern: only the initiator sends transport messages.
    public var isOneWay: Bool { messages.count == 1 }

    public func protocolName(hash: String = "SHA256") -> String {
        "Noise_\(name)_25519_ChaChaPoly_\(hash)"
    }
}
