import BelaySodium
import BelayWire
import Foundation
import Synchronization
import Testing

@testable import BelayClient
@testable import BelayRelay

/// The signed policy end to end in one process (issue 12): the relay answers INFO with what its
/// configuration promises, a client pins the policy key the first time and refuses a policy
/// signed by another key later, as when someone else answers with the relay's address.
@Suite struct RelayPolicyFetchTests {
    @Test func theRelaySignsWhatItsConfigurationPromises() async throws {
        let tokenHash = try BLAKE2b.hash(Array("member".utf8), outputLength: 32)
        let relay = try await RelayHarness.start {
            $0.deliveryJitterSeconds = 0.05
            $0.messageTTLSeconds = 3 * 86_400
            $0.creationTokenHashes = [tokenHash]
        }
        defer { relay.remove() }
        let c = try await relay.connect()
        guard case let .policy(document, signature) = try await c.call(RelayCommand.info) else { throw Unexpected() }
        let policy = try RelayPolicy.verify(
            document: document, signature: signature, relayKey: relay.key.publicKey, sessionHash: c.sessionHash, pinnedPolicyKey: nil)
        // Signed for this session only: the same reply on another session does not verify.
        let other = try await relay.connect()
        #expect(throws: RelayPolicy.Error.badSignature) {
            try RelayPolicy.verify(
                document: document, signature: signature, relayKey: relay.key.publicKey, sessionHash: other.sessionHash, pinnedPolicyKey: nil)
        }
        await other.close()
        #expect(policy.deliveryJitterMilliseconds == 50 && policy.messageTTLSeconds == 3 * 86_400)
        #expect(policy.tokensRequired && !policy.logsClientAddresses && policy.logLevel == RelayPolicy.LogLevel.info)
        #expect(policy.relayKey == relay.key.publicKey && policy.policyKey != relay.key.publicKey)
        await c.close()
        await relay.stop()
    }

    @Test func theFirstUsePinsThePolicyKeyAndAnotherKeyLaterIsRefused() async throws {
        let w = try await CheckinTests.World(store: .sqlite)
        let alice = try w.person("alice")
        let seen = Seen()
        alice.onNewRelay = { address, policy in seen.add("\(address.port) \(policy.logLevel)") }
        _ = try await alice.invite(relay: w.relay.address, name: "bob", lifetime: nil)
        _ = try await alice.invite(relay: w.relay.address, name: "carol", lifetime: nil)
        #expect(seen.all == ["\(w.relay.address.port) info"])  // said once, the first time
        let first = try await alice.relayPolicy(w.relay.address)
        #expect(!first.firstUse)

        // The same relay key and address, but a policy signed by another key: what an
        // impostor holding a stolen relay key, or a relay whose policy key was replaced, serves.
        let port = w.relay.server.port
        let clock = w.relay.clock
        let directory = w.relay.directory
        let home = try #require(w.homes["alice"])
        await w.relay.stop()
        let again = try await RelayHarness.start(directory: directory, port: port, clock: clock)
        let reopened = try Agent(home: home, passphrase: { nil }, now: { clock.now() }, group: again.group)
        reopened.reachRelays(by: again.transport)
        await #expect(throws: ClientError.self) { try await reopened.relayPolicy(again.address) }
        do {
            _ = try await reopened.invite(relay: again.address, name: "dave", lifetime: nil)
            Issue.record("an invitation on a relay with a changed policy key was made")
        } catch let error as ClientError {
            guard case let .relayPolicyInvalid(_, why) = error else { throw error }
            #expect(why == RelayPolicy.Error.policyKeyChanged.description)
            #expect(error.exitCode == 5)
        }
        await again.stop()
        again.remove()
        for home in w.homes.values { try? FileManager.default.removeItem(atPath: home) }
    }

    final class Seen: Sendable {
        private let items = Mutex<[String]>([])
        func add(_ s: String) { items.withLock { $0.append(s) } }
        var all: [String] { items.withLock { $0 } }
    }

    struct Unexpected: Error {}
}
