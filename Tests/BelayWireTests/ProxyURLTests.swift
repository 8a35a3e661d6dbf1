import BelayWire
import Testing

@Suite struct ProxyURLTests {
    @Test func acceptsSocks5hWithOrWithoutCredentials() throws {
        let tor = try ProxyURL(parsing: "socks5h://127.0.0.1:9050")
        #expect(tor == ProxyURL(host: "127.0.0.1", port: 9050))
        #expect(tor.description == "127.0.0.1:9050")
        #expect(try ProxyURL(parsing: " SOCKS5H://localhost:9150/\n") == ProxyURL(host: "localhost", port: 9150))
        #expect(try ProxyURL(parsing: "socks5h://[::1]:9050") == ProxyURL(host: "::1", port: 9050))

        let given = try ProxyURL(parsing: "socks5h://alice:s%40cret%3A1@proxy.example.org:1080")
        #expect(given.credentials == (try SOCKS5Credentials(username: "alice", password: "s@cret:1")))
        #expect(given.host == "proxy.example.org")
        // Error messages name the proxy without its password.
        #expect(given.description == "proxy.example.org:1080")
    }

    @Test func refusesWhatWouldResolveLocallyOrIsNotSOCKS5() {
        let cases: [(String, ProxyURL.ParseError)] = [
            ("socks5://127.0.0.1:9050", .resolvesLocally("socks5")),
            ("socks://127.0.0.1:9050", .resolvesLocally("socks")),
            ("socks4a://127.0.0.1:9050", .unsupportedScheme("socks4a")),
            ("http://127.0.0.1:8080", .unsupportedScheme("http")),
            ("https://127.0.0.1:8080", .unsupportedScheme("https")),
            ("127.0.0.1:9050", .missingScheme),
            ("socks5h://127.0.0.1", .invalidHostPort),
            ("socks5h://127.0.0.1:0", .invalidHostPort),
            ("socks5h://127.0.0.1:65536", .invalidHostPort),
            ("socks5h://:9050", .invalidHostPort),
            ("socks5h://a b:9050", .invalidHostPort),
            ("socks5h://127.0.0.1:9050/path", .trailingText),
            ("socks5h://127.0.0.1:9050?x=1", .trailingText),
            ("socks5h://alice@127.0.0.1:9050", .invalidCredentials),
            ("socks5h://:pw@127.0.0.1:9050", .invalidCredentials),
            ("socks5h://alice:@127.0.0.1:9050", .invalidCredentials),
            ("socks5h://" + String(repeating: "a", count: 3000) + ":1", .tooLong),
        ]
        for (text, error) in cases {
            #expect(throws: error, "\(text)") { try ProxyURL(parsing: text) }
        }
    }
}

extension RelayAddressTests {
    /// Tor v3 onion names (56 base32 characters) are relay hosts like any other name; only the
    /// client treats them differently (never resolved, only through a proxy).
    @Test func acceptsOnionV3Hosts() throws {
        let onion = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion"
        let k = Base64URL.encode(Self.key)
        let a = try RelayAddress(parsing: "belay://\(onion):7707/#\(k)")
        #expect(a.host == onion)
        #expect(a.isOnion)
        #expect(try RelayAddress(parsing: a.description) == a)
        #expect(try RelayAddress(parsing: "belay://\(onion.uppercased()):7707/#\(k)").isOnion)
        #expect(try !RelayAddress(parsing: "belay://onion.example.org:7707/#\(k)").isOnion)
    }
}
