import BelayWire
import Foundation

/// Where the relay keeps its queues: the embedded SQLite database in the state directory (the
/// default), or a PostgreSQL server that several relay frontends may share.
public enum StoreLocation: Equatable, Sendable, CustomStringConvertible {
    case sqlite
    case postgres(PostgresLocation)

    /// `sqlite`, or `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|require]`.
    public init(parsing text: String) throws(StoreLocationError) {
        if text == "sqlite" {
            self = .sqlite
        } else if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(try PostgresLocation(parsing: text))
        } else {
            throw .unknownScheme
        }
    }

    /// Never shows a password.
    public var description: String {
        switch self {
        case .sqlite: "sqlite"
        case let .postgres(p): p.description
        }
    }
}

public enum StoreLocationError: Error, Equatable, CustomStringConvertible {
    case unknownScheme
    case malformed(String)

    public var description: String {
        switch self {
        case .unknownScheme: "expected 'sqlite' or 'postgres://USER@HOST:PORT/DATABASE'"
        case let .malformed(why): "not a PostgreSQL address: \(why); expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|require]"
        }
    }
}

public struct PostgresLocation: Equatable, Sendable, CustomStringConvertible {
    public enum TLSMode: String, Sendable {
        /// Plain TCP: only for a server on the same host or a private network.
        case disable
        /// TLS, with the server's certificate checked against the system's trust store.
        case require
    }

    /// Longer addresses are refused: the limit on what a configuration value may hold.
    public static let maxLength = 1_024

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    public init(host: String, port: Int = 5432, user: String, password: String? = nil, database: String, tls: TLSMode = .disable) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// User and password may be percent-encoded (RFC 3986), and are found before the last `@`,
    /// so a password may hold any character. Errors never repeat either.
    init(parsing text: String) throws(StoreLocationError) {
        guard text.utf8.count <= Self.maxLength else { throw .malformed("longer than \(Self.maxLength) bytes") }
        guard let schemeEnd = text.range(of: "://") else { throw .unknownScheme }
        let afterScheme = text[schemeEnd.upperBound...]
        guard let at = afterScheme.lastIndex(of: "@") else { throw .malformed("no user name") }
        let userInfo = afterScheme[..<at]
        var rest = afterScheme[afterScheme.index(after: at)...]
        var mode: TLSMode?
        if let q = rest.firstIndex(of: "?") {
            let query = rest[rest.index(after: q)...]
            rest = rest[..<q]
            for item in query.split(separator: "&") {
                guard item.hasPrefix("sslmode="), let m = TLSMode(rawValue: String(item.dropFirst("sslmode=".count))) else {
                    throw .malformed("only sslmode=disable or sslmode=require may follow '?'")
                }
                mode = m
            }
        }
        guard let slash = rest.firstIndex(of: "/") else { throw .malformed("no database name") }
        let database = String(rest[rest.index(after: slash)...])
        let hostPort = String(rest[..<slash])
        let (rawUser, rawPassword): (Substring, Substring?) =
            userInfo.firstIndex(of: ":").map { (userInfo[..<$0], userInfo[userInfo.index(after: $0)...]) } ?? (userInfo, nil)
        guard let user = rawUser.removingPercentEncoding, let password = rawPassword.map({ $0.removingPercentEncoding }) ?? .some(nil)
        else { throw .malformed("bad percent-encoding in the user or password") }
        let parsed: HostPort
        if let hp = HostPort(parsing: hostPort) {
            parsed = hp
        } else if let hp = HostPort(parsing: hostPort + ":5432") {
            parsed = hp
        } else {
            throw .malformed("bad host or port")
        }
        guard !user.isEmpty, !database.isEmpty, !database.contains("/") else { throw .malformed("empty user or database") }
        // Ids, keys and deadlines cross this link: in the clear only on the machine itself,
        // or where the operator says so.
        let loopback = ["127.0.0.1", "::1", "localhost"].contains(parsed.host)
        guard let tls = mode ?? (loopback ? .disable : nil) else {
            throw .malformed("a server off this machine needs ?sslmode=require (or sslmode=disable on a private network you trust)")
        }
        self.init(host: parsed.host, port: parsed.port, user: user, password: password, database: database, tls: tls)
    }

    public var description: String {
        "postgres://\(user)\(password == nil ? "" : ":***")@\(HostPort(host: host, port: port))/\(database)?sslmode=\(tls.rawValue)"
    }
}
