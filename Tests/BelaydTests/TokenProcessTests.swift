import BelayWire
import Foundation
import Testing

/// Organisation tokens with the real binaries: the operator's `belayd token` beside a running
/// `belayd`, and a member's `belay invite --token`.
@Suite struct TokenProcessTests {
    struct Output {
        var status: Int32
        var out: String
        var err: String
    }

    /// Runs `belayd ARGS` to completion, with `environment` added to this process's.
    static func belayd(_ arguments: [String], environment extra: [String: String]) async throws -> Output {
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: try Daemon.binary)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extra { env[k] = v }
        process.environment = env
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("belayd-token-\(UUID().uuidString)").path
        for suffix in [".out", ".err"] { _ = FileManager.default.createFile(atPath: base + suffix, contents: nil) }
        defer { for suffix in [".out", ".err"] { try? FileManager.default.removeItem(atPath: base + suffix) } }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".out"))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".err"))
        process.standardInput = FileHandle.nullDevice
        try process.launchOneAtATime()
        await process.exited()
        return Output(
            status: process.terminationStatus, out: (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "",
            err: (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
    }

    @Test func aMemberTokenAddedBesideTheRunningRelayLetsItsHolderInviteUpToTheQuota() async throws {
        let relayDir = temporaryStateDir()
        let env = ["BELAYD_REQUIRE_CREATION_TOKEN": "true"]
        let relay = try await Daemon.start(stateDir: relayDir, environment: env)
        let alex = try await Person.make("alex")
        defer {
            alex.remove()
            try? FileManager.default.removeItem(atPath: relayDir)
        }

        let refused = try await alex.run("invite", "--relay", relay.address.description)
        #expect(refused.status == 4)
        #expect(refused.err.contains("belay: this relay (127.0.0.1:\(relay.address.port)) requires an organisation token to create queues"))
        #expect(refused.err.contains("belay: hint: ask its operator for one, then run `belay invite --token TOKEN`"))

        let added = try await Self.belayd(["token", "add", "--state-dir", relayDir, "--label", "alex", "--queues", "2"], environment: env)
        #expect(added.status == 0, "\(added.err)")
        let token = added.out.trimmingCharacters(in: .newlines)
        #expect(token.hasPrefix("belay-token-") && !token.contains("\n"))
        #expect(added.err.contains("added token 1 (alex) with a quota of 2 queues; it is shown only now"))

        let first = try await alex.run("invite", "--relay", relay.address.description, "--token", token)
        #expect(first.status == 0, "\(first.err)")
        #expect(first.out.hasPrefix("belay-invite:"))
        // Kept for the relay: the next invitation needs no --token, and `relay token list` names the relay.
        let second = try await alex.run("invite", "--relay", relay.address.description)
        #expect(second.status == 0, "\(second.err)")
        #expect(try await alex.run("relay", "token", "list").out == relay.address.description + "\n")
        // The quota (2) is spent.
        let third = try await alex.run("invite", "--relay", relay.address.description)
        #expect(third.status == 4 && third.err.contains("refused the organisation token (unknown, revoked, or its quota of queues is used up)"))

        let list = try await Self.belayd(["token", "list", "--state-dir", relayDir], environment: env)
        #expect(list.out == "ID\tLABEL\tQUEUES\tUSED\n1\talex\t2\t2\n")
        #expect(!list.out.contains(token))
        let revoke = try await Self.belayd(["token", "revoke", "--state-dir", relayDir, "alex"], environment: env)
        #expect(revoke.status == 0 && revoke.err.contains("revoked token 1 (alex), which had created 2 queues"))
        let again = try await Self.belayd(["token", "revoke", "--state-dir", relayDir, "alex"], environment: env)
        #expect(again.status == 1 && again.err.contains("no member token with id or label \"alex\""))
        #expect(await relay.terminate() == 0)
    }
}
