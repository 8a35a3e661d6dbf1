import BelayRelay
import BelaySodium
import BelayTestSupport
import BelayWire
import Foundation
import NIOCore
import Synchronization
import Testing

@testable import BelayClient

/// The client through a SOCKS5 proxy (the tests' own, `SOCKSTestProxy`, which connects onwards
/// from 127.0.0.7) to an in-process relay that records the address of every connection it
/// accepts.
@Suite struct ProxyTests {
    static let onion = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion"

    /// The source address of every connection the relay accepted.
    final class Sources: Sendable {
        private let seen = Mutex<[String]>([])
        var addresses: [String] { seen.withLock { $0 } }
        var observer: @Sendable (Channel) throws -> Void {
            { [self] channel in
                let address = channel.remoteAddress?.ipAddress ?? "?"
                seen.withLock { $0.append(address) }
            }
        }
    }

    /// A relay, a proxy in front of it, and people whose agents reach the relay by its name
    /// `localhost`, through the proxy.
    final class World {
        let sources = Sources()
        let relay: RelayHarness
        let proxy: SOCKSTestProxy
        var homes: [String] = []

        init(proxyHosts: [String: String] = ["localhost": "127.0.0.1"], behaviour: SOCKSTestProxy.Behaviour = .normal) async throws {
            relay = try await RelayHarness.start(transport: .tcp, observe: sources.observer)
            proxy = try await SOCKSTestProxy.start(hosts: proxyHosts, behaviour: behaviour)
        }

        func address(host: String = "localhost") -> RelayAddress {
            RelayAddress(host: host, port: relay.server.port, publicKey: relay.key.publicKey)
        }

        var route: RelayRoute { .socks5(ProxyURL(host: "127.0.0.1", port: proxy.port)) }

        func person(_ name: String) throws -> String {
            let home = FileManager.default.temporaryDirectory.appendingPathComponent("belay-proxy-\(name)-\(UUID().uuidString)").path
            _ = try Agent.initialise(home: home, passphrase: nil)
            homes.append(home)
            return home
        }

        func agent(_ home: String, route: RelayRoute? = nil) throws -> Agent {
            try Agent(home: home, passphrase: { nil }, group: relay.group, route: route ?? self.route)
        }

        func finish() async {
            await proxy.stop()
            await relay.stop()
            relay.remove()
            for h in homes { try? FileManager.default.removeItem(atPath: h) }
        }
    }

    @Test func theProxyGetsTheRelaysNameAndTheRelaySeesOnlyTheProxy() async throws {
        let w = try await World()
        let connection = try await RelayConnection.connect(to: w.address(), group: w.relay.group, route: w.route)
        try await connection.ping()
        await connection.close()
        let requests = w.proxy.requests
        // The name as the client wrote it: nothing was resolved on this side.
        #expect(requests.map(\.target) == [.domainName("localhost")])
        #expect(requests.map(\.port) == [w.relay.server.port])
        #expect(requests.first?.username?.count == 22 && requests.first?.password?.count == 22)
        #expect(w.sources.addresses == ["127.0.0.7"])
        await w.finish()
    }

    @Test func everyQueueHasItsOwnCredentialsAndNothingGoesAroundTheProxy() async throws {
        let w = try await World()
        let (alice, bob, carol) = (try w.agent(try w.person("alice")), try w.agent(try w.person("bob")), try w.agent(try w.person("carol")))
        for (name, other) in [("bob", bob), ("carol", carol)] {
            let invitation = try await alice.invite(relay: w.address(), name: name, lifetime: nil)
            _ = try await other.accept(invitation, name: "alice", relay: nil)
        }
        _ = try await alice.read()
        try await bob.send(to: "alice", text: "through the proxy")
        try await carol.send(to: "alice", text: "me too")

        let before = w.proxy.requests.count
        let events = try await alice.read()
        #expect(Set(events.filter { $0.kind == .message }.map(\.text)) == ["through the proxy", "me too"])
        // One read of two inboxes: two connections, two credentials.
        #expect(w.proxy.requests.count - before == 2)

        let requests = w.proxy.requests
        #expect(requests.allSatisfy { $0.target == .domainName("localhost") })
        let credentials = requests.map { [$0.username ?? "", $0.password ?? ""] }
        #expect(Set(credentials).count == requests.count, "a credential was used twice")
        #expect(requests.allSatisfy { $0.username != nil })
        // Every connection the relay accepted came from the proxy, and one per CONNECT.
        #expect(w.sources.addresses.count == requests.count)
        #expect(Set(w.sources.addresses) == ["127.0.0.7"])
        await w.finish()
    }

    @Test func credentialsInTheURLAreSentAsTheyAreOnEveryConnection() async throws {
        let w = try await World()
        let given = try SOCKS5Credentials(username: "alice", password: "s3cret")
        let route = RelayRoute.socks5(ProxyURL(host: "127.0.0.1", port: w.proxy.port, credentials: given))
        for _ in 0..<2 {
            let connection = try await RelayConnection.connect(to: w.address(), group: w.relay.group, route: route)
            try await connection.ping()
            await connection.close()
        }
        #expect(w.proxy.requests.map { [$0.username, $0.password] } == [["alice", "s3cret"], ["alice", "s3cret"]])
        await w.finish()
    }

    @Test func aProxyThatIsDownIsATypedErrorAndNothingGoesAroundIt() async throws {
        let w = try await World()
        let down = RelayRoute.socks5(ProxyURL(host: "127.0.0.1", port: 1))
        let alice = try w.agent(try w.person("alice"), route: down)
        let expected = ClientError.proxyUnreachable(proxy: "127.0.0.1:1", why: "nothing is listening at that address (is Tor running?)", queued: 0)
        await #expect(throws: expected) { try await alice.invite(relay: w.address(), name: nil, lifetime: nil) }
        #expect(expected.exitCode == 4)
        #expect(expected.hint?.contains("start Tor") == true)
        #expect(w.sources.addresses.isEmpty)

        // A message to a contact while the proxy is down is kept, and says so.
        let aliceHome = w.homes[0]
        let bob = try w.agent(try w.person("bob"))
        let invitation = try await bob.invite(relay: w.address(), name: "alice", lifetime: nil)
        _ = try await w.agent(aliceHome).accept(invitation, name: "bob", relay: nil)
        await #expect(throws: expected.keeping(1)) { try await alice.send(to: "bob", text: "kept") }
        #expect(expected.keeping(1).description.hasSuffix("; 1 message(s) saved and not lost"))
        _ = try await w.agent(aliceHome).read()
        #expect(try await bob.read().contains { $0.text == "kept" })
        await w.finish()
    }

    @Test func anOnionRelayNeedsAProxyAndWorksThroughOne() async throws {
        let w = try await World(proxyHosts: [Self.onion: "127.0.0.1"])
        let home = try w.person("alice")
        let direct = try w.agent(home, route: .direct)
        let onion = w.address(host: Self.onion)
        let refused = ClientError.onionNeedsProxy(relay: "\(Self.onion):\(w.relay.server.port)", queued: 0)
        await #expect(throws: refused) { try await direct.invite(relay: onion, name: nil, lifetime: nil) }
        #expect(refused.hint?.contains("BELAY_PROXY=socks5h://127.0.0.1:9050") == true)
        #expect(refused.exitCode == 4)
        #expect(w.sources.addresses.isEmpty)

        _ = try await w.agent(home).invite(relay: onion, name: nil, lifetime: nil)
        #expect(w.proxy.requests.map(\.target) == [.domainName(Self.onion)])
        #expect(w.sources.addresses == ["127.0.0.7"])
        await w.finish()
    }
}

extension ProxyTests {
    /// What the connection reports for a proxy that fails in each way, through the real
    /// channel handler.
    @Test func aFailingProxyOrAnUnreachableRelayIsATypedError() async throws {
        func attempt(_ w: World, _ address: RelayAddress) async -> RelayClientError? {
            do {
                _ = try await RelayConnection.establish(
                    to: address, group: w.relay.group, route: w.route, tunnelTimeout: .milliseconds(200), onPushes: { _ in })
                return nil
            } catch {
                return error as? RelayClientError
            }
        }
        let silent = try await World(behaviour: .silent)
        let proxyName = "127.0.0.1:\(silent.proxy.port)"
        #expect(await attempt(silent, silent.address()) == .proxyUnreachable(proxy: proxyName, why: SOCKS5Error.timedOut(.methodChoice).description))
        await silent.finish()

        let refusing = try await World(behaviour: .refusingCredentials)
        #expect(
            await attempt(refusing, refusing.address())
                == .proxyUnreachable(proxy: "127.0.0.1:\(refusing.proxy.port)", why: SOCKS5Error.authenticationRefused(1).description))
        await refusing.finish()

        let w = try await World(proxyHosts: [:])
        #expect(await attempt(w, w.address()) == .cannotConnect("the proxy could not reach it: host unreachable"))
        let nobody = RelayAddress(host: "127.0.0.1", port: 1, publicKey: w.relay.key.publicKey)
        #expect(await attempt(w, nobody) == .cannotConnect("the proxy could not reach it: connection refused"))
        #expect(w.proxy.requests.map(\.target) == [.domainName("localhost"), .ipv4("127.0.0.1")])
        #expect(w.sources.addresses.isEmpty)
        await w.finish()
    }

    /// What arrives right behind the proxy's reply reaches the handshake: here a "relay" that
    /// answers message 1 with 64 bytes not sealed under the pinned key.
    @Test func bytesBehindTheProxysReplyReachTheHandshake() async throws {
        let w = try await World(behaviour: .answeringItself([UInt8](repeating: 0x5a, count: WireHandshake.messageLength)))
        await #expect(throws: RelayClientError.keyMismatch) {
            try await RelayConnection.connect(to: w.address(), group: w.relay.group, route: w.route)
        }
        #expect(w.sources.addresses.isEmpty)
        await w.finish()
    }

    @Test func theRouteComesFromTheOptionThenTheEnvironment() throws {
        let tor = RelayRoute.socks5(ProxyURL(host: "127.0.0.1", port: 9050))
        #expect(try RelayRoute.configured(option: nil, environment: [:]) == .direct)
        #expect(try RelayRoute.configured(option: nil, environment: ["BELAY_PROXY": ""]) == .direct)
        #expect(try RelayRoute.configured(option: nil, environment: ["BELAY_PROXY": "socks5h://127.0.0.1:9050"]) == tor)
        #expect(try RelayRoute.configured(option: "socks5h://127.0.0.1:9050", environment: ["BELAY_PROXY": "socks5h://127.0.0.1:1"]) == tor)
        #expect(throws: ClientError.invalidProxy(source: "BELAY_PROXY", why: ProxyURL.ParseError.resolvesLocally("socks5").description)) {
            try RelayRoute.configured(option: nil, environment: ["BELAY_PROXY": "socks5://127.0.0.1:9050"])
        }
        let http = ClientError.invalidProxy(source: "--proxy", why: ProxyURL.ParseError.unsupportedScheme("http").description)
        #expect(throws: http) { try RelayRoute.configured(option: "http://127.0.0.1:8080", environment: [:]) }
        #expect(http.hint?.contains("socks5h://127.0.0.1:9050") == true)
    }
}
