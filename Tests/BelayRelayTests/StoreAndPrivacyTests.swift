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
            #expect(tables == ["grdb_migrations", "message", "queue", "relay_meta", "timer", "timer_entry"])
            #expect(try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") == ["v1"])
            #expect(try String.fetchOne(db, sql: "PRAGMA integrity_check") == "ok")
        }
        // Opening again is a no-op migration.
        try RelayStore(path: path).close()
    }

    @Test func deliveredBodiesLeaveNoTraceInTheDatabaseOrWALOrLogs() async throws {
        let relay = try await RelayHarness.start { $0.logLevel = .trace }
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
        var c = RelayConfiguration()
        try ConfigLoader.apply(text: "listen: 0.0.0.0:9000 # all interfaces\nmessage_ttl: 2d\nmax_queue_bytes: 1MiB\ncreation_tokens: [\"0123456789abcdef0\"]",
                               source: "t", to: &c)
        #expect(c.listen == HostPort(host: "0.0.0.0", port: 9000) && c.messageTTLSeconds == 172_800 && c.maxQueueBytes == 1 << 20)
        #expect(c.acceptsCreationToken(Array("0123456789abcdef0".utf8)) && !c.acceptsCreationToken(Array("nope".utf8)))
    }
}
