import BelayClient
import BelayRelay
import BelaySodium
import BelayWire
import Foundation
import GRDB
import Testing

@Suite struct StoreAndPrivacyTests {
    @Test func migratingAnEmptyDatabaseGivesTheSchemaInWALMode() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("belay-migrate-\(UUID().uuidString).db").path
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let store = try RelayStore(path: path)
        try store.close()
        let db = try DatabaseQueue(path: path)
        try db.read { db in
            #expect(try String.fetchOne(db, sql: "PRAGMA journal_mode") == "wal")
            let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            #expect(tables == ["grdb_migrations", "member_token", "message", "queue", "relay_meta", "timer", "timer_entry"])
            #expect(
                try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid") == [
                    "v1", "v2 message without expiry index", "v3 timer by key", "v4 member tokens",
                ])
            #expect(
                try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'message' AND sql IS NOT NULL")
                    == ["message_by_queue"])
            #expect(try String.fetchOne(db, sql: "PRAGMA integrity_check") == "ok")
        }
        // Opening again is a no-op migration.
        try RelayStore(path: path).close()
    }

    /// A relay that stored messages under schema v1 keeps them when v2 replaces the table.
    @Test func migratingV1WithMessagesKeepsThem() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("belay-migrate-v1-\(UUID().uuidString).db").path
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let v1 = try DatabaseQueue(path: path)
        try v1.write { db in
            // Schema v1 as shipped (Sources/BelayRelay/Store/Schema.swift), and GRDB's record of it.
            try db.execute(
                sql: """
                    CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                    INSERT INTO grdb_migrations VALUES ('v1');
                    CREATE TABLE queue (id INTEGER PRIMARY KEY, recipient_id BLOB NOT NULL UNIQUE, sender_id BLOB NOT NULL UNIQUE,
                                        recipient_key BLOB NOT NULL, sender_key BLOB);
                    CREATE TABLE message (id INTEGER PRIMARY KEY, queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
                                          seq INTEGER NOT NULL, expires_at INTEGER NOT NULL, body BLOB NOT NULL);
                    CREATE UNIQUE INDEX message_by_queue ON message(queue_id, seq);
                    CREATE INDEX message_by_expiry ON message(expires_at);
                    CREATE TABLE timer (id INTEGER PRIMARY KEY, timer_id BLOB NOT NULL UNIQUE, timer_key BLOB NOT NULL, deadline INTEGER NOT NULL);
                    CREATE INDEX timer_by_deadline ON timer(deadline);
                    CREATE TABLE timer_entry (timer_id INTEGER NOT NULL REFERENCES timer(id) ON DELETE CASCADE, position INTEGER NOT NULL,
                                              queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE, body BLOB NOT NULL,
                                              PRIMARY KEY (timer_id, position));
                    CREATE INDEX timer_entry_by_queue ON timer_entry(queue_id);
                    CREATE TABLE relay_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                    INSERT INTO queue VALUES (1, zeroblob(16), randomblob(16), zeroblob(32), NULL);
                    INSERT INTO message(queue_id, seq, expires_at, body) VALUES (1, 4294967297, 2000000000, x'0102'), (1, 4294967298, 2000000001, x'0304');
                    """)
        }
        try v1.close()
        try RelayStore(path: path).close()
        let db = try DatabaseQueue(path: path)
        let (bodies, integrity) = try db.read { db in
            (
                try Data.fetchAll(db, sql: "SELECT body FROM message WHERE queue_id = 1 ORDER BY seq"),
                try String.fetchOne(db, sql: "PRAGMA integrity_check")
            )
        }
        #expect(bodies == [Data([1, 2]), Data([3, 4])])
        #expect(integrity == "ok")
    }

    @Test func deliveredBodiesLeaveNoTraceInTheDatabaseOrWALOrLogs() async throws {
        let relay = try await RelayHarness.start(store: .sqlite) { $0.logLevel = .trace }
        defer { relay.remove() }
        let inbox = PushInbox()
        let owner = try await relay.connect(onPush: inbox.handler)
        let q = try await SecuredQueue.make(on: owner)
        let sender = try await q.sender(on: relay)
        // Distinctive bodies: a 32-byte marker repeated, easy to find in any file.
        let bodies = (0..<20).map { i in Array("BELAY-PRIVACY-MARKER-\(String(format: "%04d", i))-xxxxxx".utf8) + [UInt8](repeating: UInt8(i), count: 500) }
        for b in bodies { try await sender.send(to: q.sender, body: b) }
        try await owner.subscribe(q.recipient)
        var seen = [RelayReply.Delivery]()
        while seen.count < bodies.count {
            let batch = await inbox.first(seen.count + 1).compactMap(\.delivery)
            for d in batch.dropFirst(seen.count) {
                try await owner.acknowledge(q.recipient, seq: d.seq)
                seen.append(d)
            }
        }
        #expect(seen.map(\.body) == bodies)
        // Before the checkpoint the bodies are still in the WAL: the test can see them...
        let before = try relay.databaseBytes()
        #expect(contains(before, Array("BELAY-PRIVACY-MARKER-0000".utf8)))
        // ...and after the sweep's checkpoint they are gone from every file.
        await relay.server.core.sweep()
        let after = try relay.databaseBytes()
        for b in bodies { #expect(!contains(after, Array(b.prefix(32))), "body still on disk") }
        let logs = relay.logs.all.joined(separator: "\n")
        #expect(!logs.contains("BELAY-PRIVACY-MARKER"))
        // Nor any client's address or port, even at trace level.
        let port = try #require(owner.channel.localAddress?.port)
        #expect(!logs.contains(":\(port)") && !logs.contains("port=\(port)"))
        #expect(try relay.store.integrityCheck() == "ok")
        await relay.stop()
    }

    func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        let first = needle[0]
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == first, Array(haystack[i..<(i + needle.count)]) == needle { return true }
            i += 1
        }
        return false
    }

    @Test func theShippedConfigurationFileMatchesTheBuiltInDefaults() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Config/belayd.yaml").path
        #expect(try ConfigLoader.load(file: file, environment: [:]) == RelayConfiguration())
    }

    @Test func configurationErrorsNameTheKeyAndTheSource() throws {
        func error(_ text: String, env: [String: String] = [:]) -> String {
            var c = RelayConfiguration()
            do {
                try ConfigLoader.apply(text: text, source: "test.yaml", to: &c)
                _ = try ConfigLoader.load(file: nil, environment: env)
                return ""
            } catch {
                return "\(error)"
            }
        }
        #expect(error("listen: nowhere").contains("test.yaml:1: listen: expected HOST:PORT"))
        #expect(error("# comment\nmesage_ttl: 3d").contains("test.yaml:2: mesage_ttl: unknown setting"))
        #expect(error("idle_timeout: soon").contains("idle_timeout: expected a duration"))
        #expect(error("log_level: info\nlog_level: debug").contains("log_level: set twice"))
        #expect(error("", env: ["BELAYD_MAX_QUEUE_MESSAGES": "0"]).contains("max_queue_messages: must be between"))
        #expect(error("", env: ["BELAYD_RATE_BURST": "lots"]).contains("environment BELAYD_RATE_BURST: rate_burst: expected a whole number"))
        // Found by fuzzing: a duration past 2^64 seconds trapped converting to whole seconds, in
        // the file and in the environment; now it names the key.
        #expect(error("message_ttl: 4e14d").contains("test.yaml:1: message_ttl: `4e14d` is longer than any setting allows"))
        #expect(error("", env: ["BELAYD_MESSAGE_TTL": "4e14d"]).contains("environment BELAYD_MESSAGE_TTL: message_ttl: `4e14d` is longer"))
        // A line of 65,535 `#` (which once took 7.6 s: the scan was quadratic) is one comment.
        var commented = RelayConfiguration()
        try ConfigLoader.apply(text: String(repeating: "#", count: 65_535), source: "t", to: &commented)
        var quoted = RelayConfiguration()
        try ConfigLoader.apply(text: "public_host: 'relay#1' # the host", source: "t", to: &quoted)
        #expect(quoted.publicHost == "relay#1")
        var c = RelayConfiguration()
        try ConfigLoader.apply(
            text: "listen: 0.0.0.0:9000 # all interfaces\nmessage_ttl: 2d\nmax_queue_bytes: 1MiB\ncreation_tokens: [\"0123456789abcdef0\"]",
            source: "t", to: &c)
        #expect(c.listen == HostPort(host: "0.0.0.0", port: 9000) && c.messageTTLSeconds == 172_800 && c.maxQueueBytes == 1 << 20)
        #expect(c.isConfiguredToken(Array("0123456789abcdef0".utf8)) && !c.isConfiguredToken(Array("nope".utf8)))
        #expect(c.requiresCreationToken)
    }
}
