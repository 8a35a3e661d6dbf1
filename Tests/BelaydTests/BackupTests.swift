import BelayWire
import Foundation
import GRDB
import Testing

/// `belayd backup` and `belayd restore` with the real binaries: a copy taken while the relay
/// runs brings back its messages and timers, and message numbers still only move forward.
@Suite struct BackupTests {
    /// Runs `belayd ARGS` to completion; its status and standard error.
    static func belayd(_ arguments: [String]) async throws -> (status: Int32, err: String) {
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: try Daemon.binary)
        process.arguments = arguments
        let err = FileManager.default.temporaryDirectory.appendingPathComponent("belayd-err-\(UUID().uuidString)").path
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: err) }
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        process.standardOutput = FileHandle.nullDevice
        try process.launchOneAtATime()
        await process.exited()
        return (process.terminationStatus, (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    static func read(_ relayDir: String, _ sql: String) throws -> [Int64] {
        var config = Configuration()
        config.readonly = true
        let db = try DatabaseQueue(path: relayDir + "/relay.db", configuration: config)
        defer { try? db.close() }
        return try db.read { try Int64.fetchAll($0, sql: sql) }
    }

    @Test func aBackupTakenWhileRunningRestoresMessagesAndTimers() async throws {
        let relayDir = temporaryStateDir()
        let copy = relayDir + ".backup.db"
        var relay = try await Daemon.start(stateDir: relayDir)
        let alice = try await Person.make("alice")
        let bob = try await Person.make("bob")
        defer {
            alice.remove()
            bob.remove()
            for p in [relayDir, copy] { try? FileManager.default.removeItem(atPath: p) }
        }
        try await pair(alice, bob, on: relay.address)
        #expect(try await alice.run("send", "bob", "before the backup").status == 0)
        let arm = try await alice.run("checkin", "arm", "--every", "6h", "--grace", "30m", "--to", "bob", "--allow-unverified")
        #expect(arm.status == 0, "\(arm.err)")
        let deadlines = try Self.read(relayDir, "SELECT deadline FROM timer")
        let generation = try Self.read(relayDir, "SELECT value FROM relay_meta WHERE name = 'generation'")
        #expect(deadlines.count == 1 && generation.count == 1)

        let backup = try await Self.belayd(["backup", "--state-dir", relayDir, "--to", copy])
        #expect(backup.status == 0, "\(backup.err)")
        #expect((try FileManager.default.attributesOfItem(atPath: copy)[.posixPermissions] as? Int) == 0o600)
        // Not under a running relay, and not over an existing file.
        let busy = try await Self.belayd(["restore", "--state-dir", relayDir, "--from", copy])
        #expect(busy.status != 0 && busy.err.contains("the relay is running"), "\(busy.err)")
        let again = try await Self.belayd(["backup", "--state-dir", relayDir, "--to", copy])
        #expect(again.status != 0 && again.err.contains("already exists"))

        #expect(try await alice.run("send", "bob", "after the backup").status == 0)
        let port = relay.address.port
        _ = await relay.terminate()
        let restore = try await Self.belayd(["restore", "--state-dir", relayDir, "--from", copy])
        #expect(restore.status == 0, "\(restore.err)")
        relay = try await Daemon.start(stateDir: relayDir, port: port)
        #expect(try Self.read(relayDir, "SELECT deadline FROM timer") == deadlines)
        #expect(try Self.read(relayDir, "SELECT value FROM relay_meta WHERE name = 'generation'").first ?? 0 > generation[0])
        // The message sent after the backup is gone; the one before comes through.
        let after = texts(try await bob.read())
        #expect(after.contains("before the backup") && !after.contains("after the backup"))
        _ = await relay.terminate()
    }

    @Test func aDamagedOrForeignFileIsNotRestored() async throws {
        let relayDir = temporaryStateDir()
        let junk = relayDir + ".junk"
        let relay = try await Daemon.start(stateDir: relayDir)
        _ = await relay.terminate()
        defer { for p in [relayDir, junk] { try? FileManager.default.removeItem(atPath: p) } }
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: junk))
        let before = try Data(contentsOf: URL(fileURLWithPath: relayDir + "/relay.db"))
        let r = try await Self.belayd(["restore", "--state-dir", relayDir, "--from", junk])
        #expect(r.status != 0 && r.err.contains("not a Belay relay database"), "\(r.err)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: relayDir + "/relay.db")) == before)
    }
}
