#if canImport(Glibc)
    import Glibc
#endif

/// The numbers of SOCKS version 5 (RFC 1928) and of its username/password authentication
/// (RFC 1929) that the client uses. These are the specifications' values; nothing here is tuning.
public enum SOCKS5 {
    /// VER of every message but the username/password ones (RFC 1928 §3).
    public static let version: UInt8 = 0x05
    /// VER of the username/password sub-negotiation (RFC 1929 §2).
    public static let authenticationVersion: UInt8 = 0x01
    /// CMD CONNECT (RFC 1928 §4); the client never asks for BIND or UDP ASSOCIATE.
    static let connectCommand: UInt8 = 0x01
    static let reserved: UInt8 = 0x00
    /// STATUS of a successful username/password check (RFC 1929 §2).
    static let authenticationSucceeded: UInt8 = 0x00
    /// REP of a successful CONNECT (RFC 1928 §6).
    static let succeeded: UInt8 = 0x00

    /// METHOD values (RFC 1928 §3).
    public enum Method: UInt8, Sendable {
        case noAuthentication = 0x00
        case usernamePassword = 0x02
        case noneAcceptable = 0xFF
    }

    /// ATYP values (RFC 1928 §5).
    enum AddressType: UInt8 {
        case ipv4 = 0x01
        case domainName = 0x03
        case ipv6 = 0x04
    }

    /// A domain name is sent behind a one-byte length (RFC 1928 §5).
    public static let maxDomainLength = 255
    /// ULEN and PLEN are one byte each and neither may be zero (RFC 1929 §2).
    public static let credentialLengths = 1...255
    /// The longest CONNECT reply: VER REP RSV ATYP, a 255-byte domain name behind its length
    /// byte, and the port. Nothing the proxy sends before the tunnel is up is longer.
    public static let maxReplyLength = 4 + 1 + maxDomainLength + 2
    /// The method choice (VER METHOD) and the authentication status (VER STATUS) are two bytes.
    static let shortReplyLength = 2
}

/// Where the proxy should connect, in the form it is sent: a host name goes as a name, for the
/// proxy to resolve (ATYP 3), so that the name is never looked up on this machine; an IP
/// address given as text goes as the address (ATYP 1 or 4).
public enum SOCKS5Address: Equatable, Hashable, Sendable {
    case ipv4([UInt8])
    case ipv6([UInt8])
    case domainName(String)

    public init(host: String) {
        var v4 = [UInt8](repeating: 0, count: 4)
        var v6 = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, host, &v4) == 1 {
            self = .ipv4(v4)
        } else if inet_pton(AF_INET6, host, &v6) == 1 {
            self = .ipv6(v6)
        } else {
            self = .domainName(host)
        }
    }
}

/// What the proxy answered to CONNECT when it could not connect (REP, RFC 1928 §6).
public struct SOCKS5ReplyCode: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8

    public init(_ rawValue: UInt8) { self.rawValue = rawValue }

    public var description: String {
        switch rawValue {
        case 0x01: "general failure"
        case 0x02: "connection not allowed by its rules"
        case 0x03: "network unreachable"
        case 0x04: "host unreachable"
        case 0x05: "connection refused"
        case 0x06: "no answer in time (TTL expired)"
        case 0x07: "command not supported"
        case 0x08: "address type not supported"
        default: "reply code \(rawValue)"
        }
    }
}

/// A SOCKS username and password (RFC 1929), each 1 to 255 bytes of UTF-8.
public struct SOCKS5Credentials: Equatable, Hashable, Sendable {
    public let username: String
    public let password: String

    public init(username: String, password: String) throws(SOCKS5Error) {
        guard SOCKS5.credentialLengths.contains(username.utf8.count), SOCKS5.credentialLengths.contains(password.utf8.count) else {
            throw .invalidRequest("a SOCKS username and password must each be 1 to 255 bytes")
        }
        self.username = username
        self.password = password
    }
}
