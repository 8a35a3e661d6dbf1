import BelayRelay
import BelaySodium
import BelayWire
import Foundation
import GRDB
import Logging
import Testing

@testable import BelayClient

extension RelayHarness {
    /// `belayd token` as an operator runs it beside the running relay: a store of its own on
    /// the same data (the memory store is shared, behind its lock).
    func withTokenAdmin<T>(_ body: (MemberTokenAdmin) throws -> T) throws -> T {
        let other: (any QueueStore)? =
            switch queueStore {
            case let s as RelayStore: try RelayStore(path: s.path)
            case let p as PostgresQueueStore: try PostgresQueueStore(p.server, logger: Logger(label: "token-admin"), listening: false)
            default: nil
            }
        defer { try? other?.close() }
        return try body(MemberTokenAdmin(store: other ?? queueStore))
    }
}

/// Organisation members' tokens (docs/OPERATIONS.md, "Organisation tokens"): a stranger without
/// one creates nothing, a member creates up to the token's quota, and the operator's additions
/// and revocations count at the running relay's next NEW.
@Suite struct MemberTokenTests {
    static func relay(store: TestStore? = nil, _ configure: @escaping (inout RelayConfiguration) -> Void = { _ in }) async throws -> RelayHarness {
        try await RelayHarness.start(store: store) {
            $0.requireCreationToken = true
            configure(&$0)
        }
    }

    /// Both come from 127.0.0.1, as two people behind one Tor exit would. The source's creation
    /// burst is 1: the stranger's refused attempts draw nothing from it, and the member's token
    /// is bounded by its quota instead, so the member is not held to the shared address's rate.
    @Test func aStrangerCreatesNothingWhileAMemberOnTheSameAddressCreatesUpToTheQuota() async throws {
        let relay = try await Self.relay {
            $0.creationRatePerSource = 1
            $0.creationBurstPerSource = 1
        }
        defer { relay.remove() }
        let (_, token) = try relay.withTokenAdmin { try $0.add(label: "alex", quota: 3) }
        let stranger = try await relay.connect()
        let member = try await relay.connect()
        await #expect(throws: RelayClientError.relay(.token)) { try await stranger.createQueue(recipientKey: try .generate()) }
        for guess in ["belay-token-guess", token + "x", String(token.dropLast())] {
            await #expect(throws: RelayClientError.relay(.token)) {
                try await stranger.createQueue(recipientKey: try .generate(), token: Array(guess.utf8))
            }
        }
        for _ in 0..<3 { _ = try await member.createQueue(recipientKey: try .generate(), token: Array(token.utf8)) }
        await #expect(throws: RelayClientError.relay(.token)) { try await member.createQueue(recipientKey: try .generate(), token: Array(token.utf8)) }
        let rows = try relay.withTokenAdmin { try $0.list() }
        #expect(rows.map(\.label) == ["alex"] && rows.map(\.used) == [3] && rows.map(\.quota) == [3])
        await relay.stop()
    }

    @Test func aTokenAddedOrRevokedCountsFromTheNextNewWithoutARestart() async throws {
        let relay = try await Self.relay()
        defer { relay.remove() }
        let c = try await relay.connect()
        let (_, first) = try relay.withTokenAdmin { try $0.add(label: "phone", quota: 10) }
        _ = try await c.createQueue(recipientKey: try .generate(), token: Array(first.utf8))
        let revoked = try relay.withTokenAdmin { try $0.revoke("phone") }
        #expect(revoked.used == 1)
        // The same connection, the same relay process: refused from the next NEW on.
        await #expect(throws: RelayClientError.relay(.token)) { try await c.createQueue(recipientKey: try .generate(), token: Array(first.utf8)) }
        let (id, second) = try relay.withTokenAdmin { try $0.add(label: nil, quota: 1) }
        _ = try await c.createQueue(recipientKey: try .generate(), token: Array(second.utf8))
        #expect(try relay.withTokenAdmin { try $0.revoke("\(id)") }.id == id)
        #expect(try relay.withTokenAdmin { try $0.list() }.isEmpty)
        await relay.stop()
    }

    /// `creation_tokens` from the configuration keep working beside members' tokens, and a relay
    /// that requires none ignores whatever token a client keeps for it.
    @Test func configuredTokensStillWorkAndAnOpenRelayIgnoresTokens() async throws {
        let configured = "configured-token-0123456789"
        let relay = try await Self.relay { $0.creationTokenHashes = [try! BLAKE2b.hash(Array(configured.utf8), outputLength: 32)] }
        defer { relay.remove() }
        let (_, member) = try relay.withTokenAdmin { try $0.add(label: "m", quota: 1) }
        let c = try await relay.connect()
        _ = try await c.createQueue(recipientKey: try .generate(), token: Array(configured.utf8))
        _ = try await c.createQueue(recipientKey: try .generate(), token: Array(member.utf8))
        await #expect(throws: RelayClientError.relay(.token)) { try await c.createQueue(recipientKey: try .generate()) }
        await relay.stop()

        let open = try await RelayHarness.start()
        defer { open.remove() }
        let o = try await open.connect()
        _ = try await o.createQueue(recipientKey: try .generate(), token: Array("revoked-long-ago".utf8))
        await open.stop()
    }

    /// What a copy of the relay's database shows (docs/THREAT-MODEL.md): each token's keyed
    /// hash, label, quota and count; never the token, and nothing that says which queues a
    /// token created.
    @Test func theDatabaseKeepsAHashAndACountButNoLinkToQueues() async throws {
        let relay = try await Self.relay(store: .sqlite)
        defer { relay.remove() }
        let (_, token) = try relay.withTokenAdmin { try $0.add(label: "alex", quota: 5) }
        let c = try await relay.connect()
        let (r, _) = try await c.createQueue(recipientKey: try .generate(), token: Array(token.utf8))
        await relay.stop()
        let bytes = try relay.databaseBytes()
        #expect(bytes.firstRange(of: Array(token.utf8)) == nil)
        #expect(bytes.firstRange(of: try MemberToken.hash(Array(token.utf8))) != nil)
        let db = try DatabaseQueue(path: relay.directory + "/relay.db")
        defer { try? db.close() }
        let (queueColumns, tokenColumns, queues) = try await db.read { db in
            (
                try db.columns(in: "queue").map(\.name), try db.columns(in: "member_token").map(\.name),
                try Data.fetchAll(db, sql: "SELECT recipient_id FROM queue")
            )
        }
        #expect(queueColumns == ["id", "recipient_id", "sender_id", "recipient_key", "sender_key"])
        #expect(tokenColumns == ["id", "hash", "label", "quota", "used"])
        #expect(queues == [Data(r.bytes)])
    }

    /// The client: told what to do when the relay asks for a token, keeps the token it was given
    /// for that relay, and presents it when it next creates a queue there (accepting too).
    @Test func theClientKeepsTheTokenPerRelayAndExplainsWhenOneIsNeeded() async throws {
        let w = try await CheckinTests.World { $0.requireCreationToken = true }
        let (_, token) = try w.relay.withTokenAdmin { try $0.add(label: "alice", quota: 10) }
        let alice = try w.person("alice")
        await #expect(throws: ClientError.tokenRequired(relay: "127.0.0.1:\(w.relay.server.port)", presented: false, retry: "belay invite --token TOKEN")) {
            try await alice.invite(relay: w.relay.address, name: "bob", lifetime: nil)
        }
        let hint = ClientError.tokenRequired(relay: "r", presented: false, retry: "belay invite --token TOKEN").hint
        #expect(hint == "ask its operator for one, then run `belay invite --token TOKEN`")
        await #expect(throws: ClientError.tokenRequired(relay: "127.0.0.1:\(w.relay.server.port)", presented: true, retry: "belay invite --token TOKEN")) {
            try await alice.invite(relay: w.relay.address, name: "bob", lifetime: nil, token: "belay-token-wrong")
        }
        // A refused token is not kept.
        #expect(try alice.relaysWithTokens().isEmpty)
        _ = try await alice.invite(relay: w.relay.address, name: "bob", lifetime: nil, token: token)
        #expect(try alice.relaysWithTokens() == [w.relay.address.description])
        // On the device, neither the token nor the relay's address is in the clear.
        var files: [UInt8] = []
        for suffix in ["", "-wal"] { files += [UInt8](FileManager.default.contents(atPath: w.homes["alice"]! + "/belay.db" + suffix) ?? Data()) }
        #expect(!files.isEmpty && files.firstRange(of: Array(token.utf8)) == nil)
        #expect(files.firstRange(of: Array(w.relay.address.description.utf8)) == nil && files.firstRange(of: w.relay.key.publicKey) == nil)
        let text = try await alice.invite(relay: w.relay.address, name: "carol", lifetime: nil)
        // Carol has no token: accepting onto the inviter's relay needs one too.
        let carol = try w.person("carol")
        await #expect(throws: ClientError.tokenRequired(relay: "127.0.0.1:\(w.relay.server.port)", presented: false, retry: "belay accept --token TOKEN")) {
            _ = try await carol.accept(text, name: "alice", relay: nil)
        }
        try carol.setRelayToken(token, for: w.relay.address)
        #expect(try await carol.accept(text, name: "alice", relay: nil).deliveryError == nil)
        #expect(try w.relay.withTokenAdmin { try $0.list() }.map(\.used) == [3])
        #expect(try alice.clearRelayToken(for: w.relay.address))
        await #expect(throws: ClientError.self) { try await alice.invite(relay: w.relay.address, name: "dan", lifetime: nil) }
        await w.finish()
    }
}
