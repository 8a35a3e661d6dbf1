import Foundation

/// `belay://HOST:PORT/#KEY` (docs/PROTOCOL.md §1): everything a client needs to reach and pin a relay.
public struct RelayAddress: Equatable, Hashable, Sendable, CustomStringConvertible {
    public static let scheme = "belay://"
    public static let keyLength = 32
    /// A DNS name is at most 253 characters; brackets and port fit well inside this.
    public static let maxLength = 512

    public let host: String
    public let port: Int
    public let publicKey: [UInt8]

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case tooLong
        case notBelayAddress
        case missingHost
        case invalidHost
        case invalidPort
        case missingKey
        case invalidKey

        public var description: String {
            switch self {
            case .tooLong: "the relay address is too long"
            case .notBelayAddress: "a relay address starts with belay:// (for example belay://relay.example.org:7707/#KEY)"
            case .missingHost: "the relay address has no host"
            case .invalidHost: "the relay address's host is not a DNS name, an IPv4 address, or an IPv6 address in brackets"
            case .invalidPort: "the relay address needs a port from 1 to 65535 after the host"
            case .missingKey: "the relay address has no key after /#; copy the whole line the relay printed"
            case .invalidKey: "the relay key after /# is not 43 characters of base64url; copy the whole line the relay printed"
            }
        }
    }

    public init(host: String, port: Int, publicKey: [UInt8]) {
        precondition(publicKey.count == Self.keyLength)
        self.host = host
        self.port = port
        self.publicKey = publicKey
    }

    public init(parsing text: String) throws {
        let text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.utf8.count <= Self.maxLength else { throw ParseError.tooLong }
        guard text.lowercased().hasPrefix(Self.scheme) else { throw ParseError.notBelayAddress }
        let rest = text.dropFirst(Self.scheme.count)
        guard let hashIndex = rest.firstIndex(of: "#") else { throw ParseError.missingKey }
        var authority = rest[..<hashIndex]
        if authority.hasSuffix("/") { authority = authority.dropLast() }
        let keyText = rest[rest.index(after: hashIndex)...]
        guard !keyText.isEmpty else { throw ParseError.missingKey }
        guard let key = Base64URL.decode(String(keyText)), key.count == Self.keyLength else { throw ParseError.invalidKey }

        let hostPort: HostPort
        do { hostPort = try HostPort.parse(authority) } catch {
            switch error {
            case .missingHost: throw ParseError.missingHost
            case .invalidHost: throw ParseError.invalidHost
            case .invalidPort: throw ParseError.invalidPort
            }
        }
        guard hostPort.port >= 1 else { throw ParseError.invalidPort }
        self.init(host: hostPort.host, port: hostPort.port, publicKey: key)
    }

    /// A Tor onion service (`NAME.onion`, docs/PROTOCOL.md §1): reachable only through Tor, and
    /// never to be looked up in the DNS.
    public var isOnion: Bool { host.lowercased().hasSuffix(".onion") }

    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "\(Self.scheme)\(h):\(port)/#\(Base64URL.encode(publicKey))"
    }
}

/// RFC 4648 §5 base64url without padding.
public enum Base64URL {
    public static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func decode(_ text: String) -> [UInt8]? {
        guard
            text.utf8.allSatisfy({
                $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0)
                    || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0)
            })
        else { return nil }
        guard text.count % 4 != 1 else { return nil }
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        guard let data = Data(base64Encoded: s) else { return nil }
        let bytes = [UInt8](data)
        // Reject non-canonical encodings (stray low bits), so one key has one spelling.
        guard encode(bytes) == text else { return nil }
        return bytes
    }
}
