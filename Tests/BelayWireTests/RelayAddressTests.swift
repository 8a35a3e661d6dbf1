import BelayWire
import Testing

@Suite struct RelayAddressTests {
    static let key = [UInt8](0..<32)

    @Test func roundTrips() throws {
        for host in ["relay.example.org", "127.0.0.1", "::1"] {
            let a = RelayAddress(host: host, port: 7707, publicKey: Self.key)
            #expect(try RelayAddress(parsing: a.description) == a)
        }
        #expect(RelayAddress(host: "::1", port: 1, publicKey: Self.key).description.hasPrefix("belay://[::1]:1/#"))
        #expect(Base64URL.encode(Self.key).count == 43)
    }

    @Test func acceptsPastedWhitespaceAndNoSlash() throws {
        let a = RelayAddress(host: "h", port: 5, publicKey: Self.key)
        let text = "  belay://h:5#\(Base64URL.encode(Self.key))\n"
        #expect(try RelayAddress(parsing: text) == a)
    }

    @Test func rejectsWithTheRightReason() {
        let k = Base64URL.encode(Self.key)
        let cases: [(String, RelayAddress.ParseError)] = [
            ("https://h:1/#\(k)", .notBelayAddress),
            ("belay://h:1/", .missingKey),
            ("belay://h:1/#", .missingKey),
            ("belay://h:1/#abc", .invalidKey),
            ("belay://h:1/#\(k)A", .invalidKey),
            ("belay://h/#\(k)", .invalidPort),
            ("belay://h:0/#\(k)", .invalidPort),
            ("belay://h:70000/#\(k)", .invalidPort),
            ("belay://:5/#\(k)", .missingHost),
            ("belay://" + String(repeating: "a", count: 600), .tooLong),
        ]
        for (text, error) in cases {
            #expect(throws: error, "\(text)") { try RelayAddress(parsing: text) }
        }
    }
}
