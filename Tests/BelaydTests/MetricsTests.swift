import BelayWire
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `metrics_listen`: aggregate metrics in Prometheus's format on their own loopback listener,
/// scraped from a real belayd after real traffic. No line carries an id, a key or an address.
@Suite struct MetricsTests {
    @Test func aScrapeShowsTrafficAndNothingThatIdentifiesAnyone() async throws {
        let relayDir = temporaryStateDir()
        defer { try? FileManager.default.removeItem(atPath: relayDir) }
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: try Daemon.binary)
        process.arguments = ["run", "--state-dir", relayDir, "--listen", "127.0.0.1:0"]
        var env = ProcessInfo.processInfo.environment
        env["BELAYD_METRICS_LISTEN"] = "0"  // a free port on the loopback address
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.launchOneAtATime()
        defer { process.terminate() }
        let errors = LineReader(err.fileHandleForReading)
        let lines = LineReader(out.fileHandleForReading)
        let address = try RelayAddress(parsing: try #require(await lines.next()))
        var metricsURL: URL?
        while metricsURL == nil, let line = try await errors.next() {
            if let range = line.range(of: "metrics at ") { metricsURL = URL(string: String(line[range.upperBound...])) }
        }
        let url = try #require(metricsURL)
        #expect(url.host == "127.0.0.1")

        let alice = try await Person.make("alice")
        let bob = try await Person.make("bob")
        defer {
            alice.remove()
            bob.remove()
        }
        try await pair(alice, bob, on: address)
        #expect(try await alice.run("send", "bob", "hello").status == 0)
        #expect(texts(try await bob.read()) == ["hello"])
        #expect(try await bob.run("send", "nobody", "x").status != 0)  // an error of the client's own

        let (data, response) = try await URLSession.shared.data(from: url)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        let text = String(decoding: data, as: UTF8.self)
        func value(_ name: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        #expect((value("belay_messages_in_total") ?? 0) >= 3)  // two pairing replies and "hello"
        #expect((value("belay_messages_out_total") ?? 0) >= 3)
        #expect((value("belay_acknowledgements_total") ?? 0) >= 3)
        #expect((value("belay_connections_accepted_total") ?? 0) >= 4)
        #expect((value("belay_queues") ?? 0) >= 2)
        #expect(text.contains("belay_batch_seconds_bucket") && text.contains("belay_batch_commands_count"))
        // Every sample is belay_*, with no label but an error code or a histogram bucket.
        let sample = /^belay_[a-z_]+(\{(code="[A-Z_]+"|le="[^"]+")\})? [0-9.e+\-]+$/
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.wholeMatch(of: sample) != nil, "\(line)")
        }
        #expect(!text.contains(Base64URL.encode(address.publicKey)) && !text.contains("127.0.0.1"))
        let (_, missing) = try await URLSession.shared.data(from: url.deletingLastPathComponent().appendingPathComponent("other"))
        #expect((missing as? HTTPURLResponse)?.statusCode == 404)
    }
}
