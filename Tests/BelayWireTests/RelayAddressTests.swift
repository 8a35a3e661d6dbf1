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

extension RelayAddressTests {
    /// Found by fuzzing: hosts with stray brackets or bare colons were accepted, and their printed
    /// form did not parse back, so an invitation built on one could not be decoded.
    @Test func acceptsOnlyWhatPrintsBackToItself() throws {
        let k = Base64URL.encode(Self.key)
        for bad in [
            "belay://a]:b:1/#\(k)", "belay://a:b:1/#\(k)", "belay://[::1:1/#\(k)", "belay://[zz]:1/#\(k)", "belay://a b:1/#\(k)",
            "belay://-a:1/#\(k)", "belay://a..b:1/#\(k)", "belay://h:+80/#\(k)", "belay://[::1]x:1/#\(k)",
        ] {
            #expect(throws: RelayAddress.ParseError.self, "\(bad)") { try RelayAddress(parsing: bad) }
        }
        // Any text that parses prints back to text that parses to the same address (a fixed
        // seed: the same 20,000 hosts every run).
        var random = SplitMix64(seed: 0xBE1A7)
        let alphabet = Array("ab1:[].-%@/ 9")
        for _ in 0..<20_000 {
            let host = String((0..<Int.random(in: 1...8, using: &random)).map { _ in alphabet.randomElement(using: &random)! })
            guard let a = try? RelayAddress(parsing: "belay://\(host):77/#\(k)") else { continue }
            #expect(try RelayAddress(parsing: a.description) == a, "\(host)")
        }
    }
}

/// A seeded generator (SplitMix64, Steele, Lea and Flood 2014), so a test's random inputs are the
/// same in every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension RelayAddressTests {
    /// One parser for HOST:PORT, the relay's listen addresses and relay addresses alike.
    @Test func hostPortIsParsedOneWayForListeningAndForAddresses() {
        for good in ["127.0.0.1:7707", "0.0.0.0:0", "[::]:7707", "[::1]:1", "relay.example.org:65535"] {
            let hp = HostPort(parsing: good)
            #expect(hp?.description == good, "\(good)")
        }
        for bad in ["a]:b:1", "*:7707", "[::1:1", "h:+80", "h:", ":80", "h:65536", "[zz]:1", "a b:1"] {
            #expect(HostPort(parsing: bad) == nil, "\(bad)")
        }
    }
}
