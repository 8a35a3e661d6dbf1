import BelayWire
import Foundation
import Testing

/// `belay relay info` and the first-use summary against a real `belayd` (issue 12): the policy
/// is signed by a key the relay keeps across restarts, shows what the configuration says, and
/// `invite` names the relay's policy once, the first time.
@Suite struct RelayInfoProcessTests {
    @Test func aRelaysSignedPolicyIsShownPinnedAndStableAcrossRestarts() async throws {
        let relayDir = temporaryStateDir()
        var relay = try await Daemon.start(stateDir: relayDir, environment: ["BELAYD_DELIVERY_JITTER": "40ms", "BELAYD_MESSAGE_TTL": "3d"])
        let alice = try await Person.make("alice")
        let stranger = Person("stranger")  // no identity: shown, nothing pinned
        defer {
            alice.remove()
            try? FileManager.default.removeItem(atPath: relayDir)
        }
        let address = relay.address.description

        let shown = try await stranger.run("relay", "info", address, "--json")
        #expect(shown.status == 0, "\(shown.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(shown.out.utf8)) as? [String: Any])
        #expect(json["delivery_jitter_ms"] as? Int == 40 && json["message_ttl_seconds"] as? Int == 3 * 86_400)
        #expect(json["logs_client_addresses"] as? Bool == false && json["tokens_required"] as? Bool == false)
        #expect(json["log_level"] as? String == "info")
        let policyKey = try #require(json["policy_key"] as? String)
        #expect(FileManager.default.fileExists(atPath: relayDir + "/relay.policy.key"))

        // The first invitation on the relay names its policy on stderr, the second does not.
        let first = try await alice.run("invite", "--relay", address, "--name", "bob")
        #expect(first.status == 0 && first.lines.count == 1)
        #expect(first.err.contains("first use of relay 127.0.0.1:\(relay.address.port): keeps undelivered messages 3d; never logs client addresses"))
        #expect(first.err.contains("delivery jitter up to 40 ms"))
        let second = try await alice.run("invite", "--relay", address, "--name", "carol")
        #expect(second.status == 0 && !second.err.contains("first use"))

        // Restarted, the relay signs with the same key, which alice has pinned.
        #expect(await relay.terminate() == 0)
        relay = try await Daemon.start(stateDir: relayDir, port: relay.address.port)
        let again = try await alice.run("relay", "info", address)
        #expect(again.status == 0, "\(again.err)")
        #expect(again.out.contains("policy signed by \(policyKey)"))
        #expect(again.out.contains("delivery jitter off"))

        // A relay that lost its policy key (or an impostor with the relay's key but not that
        // one) is refused by someone who pinned it: exit 5 and a hint.
        #expect(await relay.terminate() == 0)
        try FileManager.default.removeItem(atPath: relayDir + "/relay.policy.key")
        relay = try await Daemon.start(stateDir: relayDir, port: relay.address.port)
        let refused = try await alice.run("relay", "info", address)
        #expect(refused.status == 5)
        #expect(refused.err.contains("signs its policy with another key than the one this client pinned"))
        #expect(refused.err.contains("ask the operator, out of band"))
        let invite = try await alice.run("invite", "--relay", address, "--name", "dave")
        #expect(invite.status == 5 && invite.out.isEmpty)
        // Once the operator has confirmed the new key out of band, the person trusts it.
        let trusted = try await alice.run("relay", "info", address, "--trust-new-key")
        #expect(trusted.status == 0, "\(trusted.err)")
        #expect(!trusted.out.contains("policy signed by \(policyKey)"))
        #expect(try await alice.run("invite", "--relay", address, "--name", "dave").status == 0)
        #expect(await relay.terminate() == 0)
    }
}
