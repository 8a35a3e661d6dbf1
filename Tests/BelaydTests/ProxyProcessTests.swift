import BelayTestSupport
import BelayWire
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The real `belay` through the tests' SOCKS5 proxy to a real `belayd`, and what a person sees
/// when the proxy is down or missing.
@Suite struct ProxyProcessTests {
    static let key = Base64URL.encode([UInt8](repeating: 1, count: 32))

    @Test func theCLIReachesARealRelayOnlyThroughTheProxy() async throws {
        let relayDir = temporaryStateDir()
        // Its metrics count the connections it accepts, to compare with the proxy's.
        let relay = try await Daemon.start(stateDir: relayDir, environment: ["BELAYD_METRICS_LISTEN": "0"])
        let proxy = try await SOCKSTestProxy.start()
        var alice = try await Person.make("alice")
        alice.environment["BELAY_PROXY"] = proxy.url
        let bob = try await Person.make("bob")
        defer {
            alice.remove()
            bob.remove()
            try? FileManager.default.removeItem(atPath: relayDir)
        }
        // The relay by name: only the proxy may resolve it.
        let address = RelayAddress(host: "localhost", port: relay.address.port, publicKey: relay.address.publicKey)

        let invite = try await alice.run("invite", "--relay", address.description, "--name", "bob")
        #expect(invite.status == 0, "\(invite.err)")
        let text = try #require(invite.lines.first)
        let accept = try await bob.run("accept", text, "--name", "alice", "--proxy", proxy.url)
        #expect(accept.status == 0, "\(accept.err)")
        #expect(try await bob.run("send", "alice", "through the proxy", "--proxy", proxy.url).status == 0)
        #expect(texts(try await alice.read()) == ["through the proxy"])

        let requests = proxy.requests
        #expect(requests.count >= 4)
        #expect(requests.allSatisfy { $0.target == .domainName("localhost") && $0.port == relay.address.port })
        #expect(requests.allSatisfy { $0.username != nil })
        #expect(Set(requests.map { [$0.username ?? "", $0.password ?? ""] }).count == requests.count, "a credential was used twice")

        // Every connection the relay accepted is one the proxy made.
        let metrics = try #require(
            relay.stderr.split(separator: "\n").compactMap { line in line.range(of: "metrics at ").map { String(line[$0.upperBound...]) } }.first)
        let (data, _) = try await URLSession.shared.data(from: try #require(URL(string: metrics)))
        let accepted = try #require(String(decoding: data, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("belay_connections_accepted_total ") })
        #expect(Double(accepted.split(separator: " ").last ?? "") == Double(requests.count), "\(accepted); \(requests.count) through the proxy")

        _ = await relay.terminate()
        await proxy.stop()
    }

    @Test func aProxyThatIsDownExitsFourWithAHint() async throws {
        var alice = try await Person.make("alice")
        defer { alice.remove() }
        let relay = "belay://localhost:7707/#\(Self.key)"
        let byOption = try await alice.run("invite", "--relay", relay, "--proxy", "socks5h://127.0.0.1:1")
        alice.environment["BELAY_PROXY"] = "socks5h://127.0.0.1:1"
        let byEnvironment = try await alice.run("invite", "--relay", relay)
        for r in [byOption, byEnvironment] {
            #expect(r.status == 4)
            #expect(r.err.hasPrefix("belay: cannot use the proxy 127.0.0.1:1 (nothing is listening at that address (is Tor running?))\n"))
            #expect(r.err.contains("belay: hint: start Tor (or your SOCKS5 proxy), or correct --proxy or BELAY_PROXY"))
        }
    }

    @Test func anOnionRelayWithoutAProxyAndOtherSchemesAreRefusedWithHints() async throws {
        let alice = try await Person.make("alice")
        defer { alice.remove() }
        let onion = "belay://pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:7707/#\(Self.key)"
        let r = try await alice.run("invite", "--relay", onion)
        #expect(r.status == 4)
        #expect(r.err.contains("belay: hint: set BELAY_PROXY=socks5h://127.0.0.1:9050 (or pass --proxy) to reach onion relays through Tor"))

        for scheme in ["socks5", "http"] {
            let wrong = try await alice.run("invite", "--relay", onion, "--proxy", "\(scheme)://127.0.0.1:9050")
            #expect(wrong.status == 1)
            #expect(wrong.err.hasPrefix("belay: --proxy: \(scheme)://"))
            #expect(wrong.err.contains("belay: hint: write the proxy as socks5h://HOST:PORT"))
        }
    }
}
