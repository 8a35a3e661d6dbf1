import Foundation

/// `socks5h://[USER:PASS@]HOST:PORT`: the one kind of proxy the client uses. The `h` is the
/// point: the proxy resolves relay names, so none is looked up on this machine. `HOST:PORT`
/// follows `HostPort` (an IPv6 address in brackets); USER and PASS may be percent-encoded.
public struct ProxyURL: Equatable, Hashable, Sendable, CustomStringConvertible {
    public static let scheme = "socks5h://"
    /// A host, a port and two credentials of 255 bytes each, percent-encoded, fit well inside this.
    public static let maxLength = 2048

    public let host: String
    public let port: Int
    /// Credentials written in the URL; nil when none were.
    public let credentials: SOCKS5Credentials?

    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case tooLong
        /// socks5:// (and curl's socks://): by convention the client resolves names itself.
        case resolvesLocally(String)
        case unsupportedScheme(String)
        case missingScheme
        case invalidHostPort
        case invalidCredentials
        case trailingText

        public var description: String {
            switch self {
            case .tooLong: "the proxy URL is too long"
            case let .resolvesLocally(scheme):
                "\(scheme):// would have this computer look up relay names itself, in the clear; use socks5h://, which leaves that to the proxy"
            case let .unsupportedScheme(scheme): "\(scheme):// is not supported; Belay uses SOCKS5 proxies only, as socks5h://HOST:PORT"
            case .missingScheme: "a proxy is written socks5h://HOST:PORT"
            case .invalidHostPort: "the proxy needs a host and a port from 1 to 65535, as socks5h://HOST:PORT"
            case .invalidCredentials: "credentials are written USER:PASS@ before the host, each 1 to 255 bytes (percent-encode : and @)"
            case .trailingText: "a proxy URL ends after its port"
            }
        }
    }

    public init(host: String, port: Int, credentials: SOCKS5Credentials? = nil) {
        self.host = host
        self.port = port
        self.credentials = credentials
    }

    public init(parsing text: String) throws(ParseError) {
        let text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.utf8.count <= Self.maxLength else { throw .tooLong }
        guard let separator = text.range(of: "://") else { throw .missingScheme }
        let scheme = text[..<separator.lowerBound].lowercased()
        switch scheme {
        case "socks5h": break
        case "socks5", "socks": throw .resolvesLocally(scheme)
        default: throw .unsupportedScheme(scheme)
        }
        var rest = text[separator.upperBound...]
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains(where: { "/?#".contains($0) }) else { throw .trailingText }
        var credentials: SOCKS5Credentials?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            guard let colon = userinfo.firstIndex(of: ":"),
                let user = String(userinfo[..<colon]).removingPercentEncoding,
                let pass = String(userinfo[userinfo.index(after: colon)...]).removingPercentEncoding,
                let c = try? SOCKS5Credentials(username: user, password: pass)
            else { throw .invalidCredentials }
            credentials = c
        }
        guard let hostPort = try? HostPort.parse(rest), hostPort.port >= 1 else { throw .invalidHostPort }
        self.init(host: hostPort.host, port: hostPort.port, credentials: credentials)
    }

    /// The proxy as people name it, without its credentials: what error messages show.
    public var description: String {
        HostPort(host: host, port: port).description
    }
}
