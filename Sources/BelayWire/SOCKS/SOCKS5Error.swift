/// What can go wrong in the SOCKS5 exchange, from the client's side. A hostile or broken proxy
/// can only ever cause one of these: never a crash, never a wait without end.
public enum SOCKS5Error: Error, Equatable, Sendable, CustomStringConvertible {
    /// What the client was waiting for when the exchange failed.
    public enum Step: Equatable, Sendable, CustomStringConvertible {
        case methodChoice, authentication, connectReply

        public var description: String {
            switch self {
            case .methodChoice: "its choice of authentication"
            case .authentication: "its answer to the username and password"
            case .connectReply: "its answer to the connection request"
            }
        }
    }

    /// The request cannot be put in SOCKS5's fields (a name or credential too long or empty).
    case invalidRequest(String)
    /// The reply's VER is not 5 (or not 1 for the username/password answer): not a SOCKS5 proxy.
    case wrongVersion(UInt8, Step)
    /// The proxy accepts none of the authentication methods offered.
    case noAcceptableMethod
    /// The proxy chose a method the client did not offer.
    case unofferedMethod(UInt8)
    /// The proxy refused the username and password (RFC 1929 STATUS other than 0).
    case authenticationRefused(UInt8)
    /// The proxy could not connect to the target (REP other than 0).
    case connectFailed(SOCKS5ReplyCode)
    /// The reply's address type is none of IPv4, domain name, IPv6.
    case malformedReply(String)
    /// The proxy sent more than its reply before the client had asked for anything more.
    case unexpectedBytes(Step)
    /// The proxy closed the connection before the tunnel was up.
    case closed(Step)
    /// The proxy said nothing conclusive before the client's time ran out.
    case timedOut(Step)

    public var description: String {
        switch self {
        case let .invalidRequest(why): why
        case let .wrongVersion(v, step):
            "it does not speak SOCKS5 (version byte \(v) in \(step)); is that the address of a SOCKS port (Tor's SocksPort), not an HTTP proxy?"
        case .noAcceptableMethod: "it accepts none of the offered authentication methods (username/password, or none)"
        case let .unofferedMethod(m): "it chose authentication method \(m), which was not offered"
        case let .authenticationRefused(status): "it refused the username and password (status \(status))"
        case let .connectFailed(code): "the proxy could not reach it: \(code)"
        case let .malformedReply(why): "its reply is malformed: \(why)"
        case let .unexpectedBytes(step): "it sent more than \(step)"
        case let .closed(step): "it closed the connection while we waited for \(step)"
        case let .timedOut(step): "no answer in time while we waited for \(step)"
        }
    }
}
