#if canImport(Glibc)
    import Glibc
#endif

/// `HOST:PORT`, the one parser for both the relay's listen addresses and the authority of a relay
/// address (docs/PROTOCOL.md §1): a DNS name or dotted IPv4 address (labels of ASCII letters,
/// digits and inner hyphens, 1–63 characters, 253 in all), or an IPv6 address in brackets; a
/// port in digits, 0–65535 (0 asks the system for a free port where that makes sense). Nothing
/// else, so that what is accepted prints back to itself.
public struct HostPort: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public enum ParseError: Error, Equatable, Sendable {
        case missingHost, invalidHost, invalidPort
    }

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(parsing text: String) {
        guard let hp = try? Self.parse(Substring(text.trimmingCharacters(in: .whitespaces))) else { return nil }
        self = hp
    }

    public static func parse(_ text: Substring) throws(ParseError) -> HostPort {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .missingHost }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            guard after.hasPrefix(":") else { throw .invalidPort }
            portText = after.dropFirst()
            guard !host.isEmpty else { throw .missingHost }
            guard isIPv6(host) else { throw .invalidHost }
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .invalidPort }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !host.isEmpty else { throw .missingHost }
            guard isHostName(host) else { throw .invalidHost }
        }
        guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            let port = Int(portText), (0...65535).contains(port)
        else { throw .invalidPort }
        return HostPort(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    static func isHostName(_ host: Substring) -> Bool {
        guard host.utf8.count <= 253 else { return false }
        return host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0) || $0 == 0x2d }
        }
    }

    static func isIPv6(_ host: Substring) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return host.utf8.count <= 45 && inet_pton(AF_INET6, String(host), &buffer) == 1
    }
}
