import BelayWire
import Foundation
import GRDB
import Testing

/// Check-ins through the real executables.
@Suite struct CheckinProcessTests {
    /// What the person's terminal shows is byte for byte the same for the check-in code and the
    /// duress code; only the contacts learn the difference.
    @Test func theDuressCodePrintsExactlyWhatANormalCheckInPrints() async throws {
        let relayDir = temporaryStateDir()
        let relay = try await Daemon.start(stateDir: relayDir)
        var alice = try await Person.make("alice")
        let bob = try await Person.make("bob")
        defer {
            alice.remove()
            bob.remove()
            try? FileManager.default.removeItem(atPath: relayDir)
        }
        try await pair(alice, bob, on: relay.address)
        alice.environment["BELAY_CHECKIN_CODE"] = "river stone 4711"
        alice.environment["BELAY_DURESS_CODE"] = "quiet lantern 0815"
        // bob's safety number was never compared: a script must say it means it.
        let notVerified = try await alice.run("checkin", "arm", "--every", "6h", "--grace", "30m", "--to", "bob", "--note", "meeting a source", "--codes")
        #expect(notVerified.status == 1)
        #expect(notVerified.err.contains("bob is not verified") && notVerified.err.contains("--allow-unverified"))
        let arm = try await alice.run(
            "checkin", "arm", "--every", "6h", "--grace", "30m", "--to", "bob", "--note", "meeting a source", "--codes",
            "--allow-unverified")
        #expect(arm.status == 0, "\(arm.err)")
        _ = try await bob.read()

        var normal = alice
        var duress = alice
        duress.environment["BELAY_CHECKIN_CODE"] = "quiet lantern 0815"
        normal.environment.removeValue(forKey: "BELAY_DURESS_CODE")
        duress.environment.removeValue(forKey: "BELAY_DURESS_CODE")
        let a = try await normal.run("checkin", "ok")
        #expect(try await bob.read().filter { $0["kind"] as? String == "alert" }.isEmpty)
        let b = try await duress.run("checkin", "ok")
        #expect(a.status == 0)
        #expect(a.out == b.out && a.err == b.err && a.status == b.status)
        #expect(a.out == "Checked in. Next check-in due within 6h.\n")
        let alerts = try await bob.read().filter { $0["kind"] as? String == "alert" }
        #expect(alerts.count == 1)
        #expect(alerts.first?["reason"] as? String == "duress")
        // bob is warned off replying into a device someone may be watching: a script needs --force.
        let reply = try await bob.run("send", "alice", "are you ok?")
        #expect(reply.status == 1 && reply.err.contains("under duress") && reply.err.contains("--force"))
        #expect(try await bob.run("send", "--force", "alice", "are you ok?").status == 0)
        let watching = try await bob.run("checkin", "watching")
        #expect(watching.status == 0 && watching.out.contains("alice: alerted"), "\(watching.out)")
        let ack = try await bob.run("checkin", "ack", "alice", "--note", "calling her sister")
        #expect(ack.status == 0 && ack.out == "Acknowledged.\n", "\(ack.out)\(ack.err)")
        // The status a bystander could ask for afterwards is the same as after a normal check-in.
        let status = try await alice.run("checkin", "status", "--json")
        #expect(status.out.contains("\"armed\":true"))
        var wrong = alice
        wrong.environment["BELAY_CHECKIN_CODE"] = "wrong code 1234"
        let refused = try await wrong.run("checkin", "ok")
        #expect(refused.status == 3 && refused.err.contains("not the check-in code"))
        _ = await relay.terminate()
    }

    /// A relay killed with -9 while a check-in is armed keeps the timer, and after a restart it
    /// fires when its clock reaches the deadline. The relay runs on a test clock (a file holding
    /// Unix seconds, `BELAYD_TEST_CLOCK_FILE`) that the test moves, so nothing waits a real minute.
    @Test func anArmedCheckInSurvivesKill9OfTheRelayAndFiresOnTime() async throws {
        let relayDir = temporaryStateDir()
        let clockFile = relayDir + ".clock"
        let start = UInt64(Date().timeIntervalSince1970)
        func setClock(_ t: UInt64) throws { try "\(t)\n".write(toFile: clockFile, atomically: true, encoding: .utf8) }
        try setClock(start)
        let environment = ["BELAYD_TEST_CLOCK_FILE": clockFile]
        var relay = try await Daemon.start(stateDir: relayDir, environment: environment)
        let alice = try await Person.make("alice")
        let bob = try await Person.make("bob")
        defer {
            alice.remove()
            bob.remove()
            try? FileManager.default.removeItem(atPath: relayDir)
            try? FileManager.default.removeItem(atPath: clockFile)
        }
        try await pair(alice, bob, on: relay.address)
        let arm = try await alice.run(
            "checkin", "arm", "--every", "45s", "--grace", "15s", "--to", "bob", "--note", "kill -9 drill",
            "--allow-unverified")
        #expect(arm.status == 0, "\(arm.err)")
        func deadlines() throws -> [Int64] {
            var config = Configuration()
            config.readonly = true
            let db = try DatabaseQueue(path: relayDir + "/relay.db", configuration: config)
            defer { try? db.close() }
            return try db.read { try Int64.fetchAll($0, sql: "SELECT deadline FROM timer") }
        }
        #expect(try deadlines() == [Int64(start + 60)])
        let port = relay.address.port
        await relay.kill9()
        try setClock(start + 59)
        relay = try await Daemon.start(stateDir: relayDir, environment: environment, port: port)
        #expect(try deadlines() == [Int64(start + 60)])  // durable, and not yet due

        let watcher = try bob.process(["read", "--watch", "--json"])
        let out = Pipe()
        watcher.standardOutput = out
        try watcher.launchOneAtATime()
        let lines = LineReader(out.fileHandleForReading)
        try setClock(start + 60)
        var alert: String?
        while let line = try await lines.next(limit: 30) {
            if line.contains("\"kind\":\"alert\"") {
                alert = line
                break
            }
        }
        watcher.interrupt()
        await watcher.exited()
        #expect(alert?.contains("kill -9 drill") == true)
        #expect(try deadlines().isEmpty)  // released once, and forgotten
        _ = await relay.terminate()
    }
}
