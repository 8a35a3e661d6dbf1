import BelayWire

/// What can go wrong talking to a relay, worded for the person who has to act on it.
public enum RelayClientError: Error, Equatable, CustomStringConvertible {
    case cannotConnect(String)
    case keyMismatch
    case handshakeRejected
    case versionMismatch(relayVersion: UInt16)
    case relay(RelayErrorCode)
    case unexpectedReply(String)
    case connectionClosed
    case timeout
    case protocolViolation(String)
    /// The SOCKS5 proxy could not be used: down, refusing the credentials, or not a SOCKS5 proxy.
    case proxyUnreachable(proxy: String, why: String)
    /// An onion relay, and no proxy to reach it through.
    case onionNeedsProxy
    /// The relay asked again for proof of work after it was paid.
    case workRefused(bits: UInt8)

    /// The reason alone, for messages that already say which relay could not be reached.
    public var reason: String {
        if case let .cannotConnect(why) = self { return why }
        return description
    }

    public var description: String {
        switch self {
        case let .cannotConnect(why): "cannot reach the relay: \(why)"
        case .keyMismatch:
            "the relay answered but could not prove the key in its address; check the address, and if it is right, someone may be intercepting the connection"
        case .handshakeRejected:
            "the relay did not complete the handshake: it may be full or restarting, or its key may not match the address; try again, then check the address"
        case let .versionMismatch(v):
            "the relay speaks protocol version \(v); this client speaks \(WireHandshake.currentVersion); relay and clients upgrade together (docs/OPERATIONS.md)"
        case let .relay(code): "the relay refused: \(code)"
        case let .unexpectedReply(what): "the relay sent an unexpected reply: \(what)"
        case .connectionClosed: "the connection to the relay closed"
        case .timeout: "the relay did not answer in time"
        case let .protocolViolation(what): "the relay broke the protocol: \(what)"
        case let .proxyUnreachable(proxy, why): "cannot use the proxy \(proxy): \(why)"
        case .onionNeedsProxy: "an onion relay can be reached only through Tor"
        case let .workRefused(bits): "the relay refused the proof of work it asked for (\(bits) bits); try again, and tell its operator if it persists"
        }
    }
}
