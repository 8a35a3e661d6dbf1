import BelayWire
import Foundation
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
        defer { alice.remove(); bob.remove(); try? FileManager.default.removeItem(atPath: relayDir) }
        try await pair(alice, bob, on: relay.address)
        alice.environment["BELAY_CHECKIN_CODE"] = "river stone 4711"
        alice.environment["BELAY_DURESS_CODE"] = "quiet lantern 0815"
        // bob's safety number was never compared: a script must say it means it.
        let notVerified = try await alice.run("checkin", "arm", "--every", "6h", "--grace", "30m", "--to", "bob", "--note", "meeting a source", "--codes")
        #expect(notVerified.status == 1)
        #expect(notVerified.err.contains("bob is not verified") && notVerified.err.contains("--allow-unverified"))
        let arm = try await alice.run("checkin", "arm", "--every", "6h", "--grace", "30m", "--to", "bob", "--note", "meeting a source", "--codes",
                                      "--allow-unverified")
        #expect(arm.status == 0, "\(arm.err)")
        _ = try await bob.read()

        var normal = alice, duress = alice
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
    /// fires on time. This runs on the real clock (the shortest timer is 60 s), waiting for the
    /// alert to arrive on a live subscription.
    @Test func anArmedCheckInSurvivesKill9OfTheRelayAndFiresOnTime() async throws {
        let relayDir = temporaryStateDir()
        var relay = try await Daemon.start(stateDir: relayDir)
        let alice = try await Person.make("alice"), bob = try await Person.make("bob")
        defer { alice.remove(); bob.remove(); try? FileManager.default.removeItem(atPath: relayDir) }
        try await pair(alice, bob, on: relay.address)
        let armedAt = Date()
        let arm = try await alice.run("checkin", "arm", "--every", "45s", "--grace", "15s", "--to", "bob", "--note", "kill -9 drill",
                                      "--allow-unverified")
        #expect(arm.status == 0, "\(arm.err)")
        let port = relay.address.port
        await relay.kill9()
        relay = try await Daemon.start(stateDir: relayDir, port: port)

        let watcher = try bob.process(["read", "--watch", "--json"])
        let out = Pipe()
        watcher.standardOutput = out
        try watcher.run()
        let lines = LineReader(out.fileHandleForReading)
        var alert: String?
        while let line = try await lines.next(limit: 150) {
            if line.contains("\"kind\":\"alert\"") {
                alert = line
                break
            }
        }
        let elapsed = Date().timeIntervalSince(armedAt)
        watcher.interrupt()
        await watcher.exited()
        #expect(alert?.contains("kill -9 drill") == true)
        // Not early, and within the documented bound (one sweep interval, 1 s) plus process slack.
        #expect(elapsed >= 59, "fired after \(elapsed) s")
        #expect(elapsed < 75, "fired after \(elapsed) s")
        _ = await relay.terminate()
    }
}
