import BelayWire
import Foundation
import Testing

/// Groups, rosters and introductions through the real executables and a real relay.
@Suite struct GroupProcessTests {
    static func kinds(_ events: [[String: Any]], _ kind: String) -> [[String: Any]] { events.filter { $0["kind"] as? String == kind } }

    /// Each reads, in turn, a few times: joins are confirmed and the members' pairings finish.
    static func settle(_ people: [Person], rounds: Int = 3) async throws -> [String: [[String: Any]]] {
        var all: [String: [[String: Any]]] = [:]
        for _ in 0..<rounds { for p in people { all[p.name, default: []] += try await p.read() } }
        return all
    }

    static func ok(_ r: Person.Result, _ what: String) {
        #expect(r.status == 0, "\(what): \(r.err)")
    }

    @Test func threePeopleInAGroup() async throws {
        let relayDir = temporaryStateDir()
        let relay = try await Daemon.start(stateDir: relayDir)
        let alice = try await Person.make("alice")
        let bob = try await Person.make("bob")
        let carol = try await Person.make("carol")
        defer {
            [alice, bob, carol].forEach { $0.remove() }
            try? FileManager.default.removeItem(atPath: relayDir)
        }
        try await pair(alice, bob, on: relay.address)
        try await pair(alice, carol, on: relay.address)
        Self.ok(try await alice.run("group", "create", "circle", "--members", "bob,carol"), "create")
        for p in [bob, carol] {
            let invited = Self.kinds(try await p.read(), "group")
            #expect(invited.contains { ($0["text"] as? String)?.contains("belay group join circle") == true }, "\(p.name)")
            Self.ok(try await p.run("group", "join", "circle"), "join")
        }
        _ = try await Self.settle([alice, bob, carol])
        for p in [alice, bob, carol] {
            let members = try await p.run("group", "members", "circle", "--json")
            Self.ok(members, "members")
            #expect(members.lines.count == 3 && members.out.components(separatedBy: "\"status\":\"joined\"").count == 4, "\(p.name): \(members.out)")
        }
        Self.ok(try await bob.run("group", "send", "circle", "-", stdin: "see you all at 7\n"), "send")
        for p in [alice, carol] {
            let got = Self.kinds(try await p.read(), "group").filter { $0["contact"] as? String == "bob" }
            #expect(got.map { $0["text"] as? String } == ["see you all at 7"], "\(p.name)")
            #expect(got.first?["group"] as? String == "circle")
        }
        let list = try await carol.run("group", "list", "--json")
        #expect(list.out.contains("\"name\":\"circle\"") && list.out.contains("\"status\":\"joined\""))
        // The relay holds no name, no member list and no group id in the clear.
        let db = try String(decoding: Data(contentsOf: URL(fileURLWithPath: relayDir + "/relay.db")), as: UTF8.self)
        #expect(!db.contains("circle") && !db.contains("see you all"))
        _ = await relay.terminate()
    }

    /// A roster of three on a relay whose clock the test moves: the request reaches the member on
    /// duty, escalates to everyone and then to the coordinator on the relay's clock with nobody's
    /// device involved, and the first claim wins.
    @Test func aRosterOfThreeWithAnEscalatingRequest() async throws {
        let relayDir = temporaryStateDir()
        let clockFile = relayDir + ".clock"
        let start = UInt64(Date().timeIntervalSince1970)
        func setClock(_ t: UInt64) throws { try "\(t)\n".write(toFile: clockFile, atomically: true, encoding: .utf8) }
        try setClock(start)
        let relay = try await Daemon.start(stateDir: relayDir, environment: ["BELAYD_TEST_CLOCK_FILE": clockFile])
        let alice = try await Person.make("alice")
        let bob = try await Person.make("bob")
        let carol = try await Person.make("carol")
        defer {
            [alice, bob, carol].forEach { $0.remove() }
            try? FileManager.default.removeItem(atPath: relayDir)
            try? FileManager.default.removeItem(atPath: clockFile)
        }
        try await pair(alice, bob, on: relay.address)
        try await pair(alice, carol, on: relay.address)
        // alice, who creates it, is the coordinator.
        Self.ok(try await alice.run("roster", "create", "peers", "--members", "bob,carol"), "roster create")
        for p in [bob, carol] {
            _ = try await p.read()
            Self.ok(try await p.run("group", "join", "peers"), "join")
        }
        _ = try await Self.settle([alice, bob, carol])
        Self.ok(try await bob.run("roster", "duty", "peers", "--on", "--until", "8h"), "duty")
        _ = try await Self.settle([alice, carol], rounds: 1)
        let status = try await carol.run("roster", "status", "peers")
        #expect(status.out.contains("bob  ON DUTY until"), "\(status.out)")

        let asked = try await carol.run("request", "peers", "rough shift, can someone call me", "--claim-within", "1m", "--json")
        Self.ok(asked, "request")
        let id = try #require((try JSONSerialization.jsonObject(with: Data(asked.out.utf8)) as? [String: Any])?["id"] as? String)
        let toBob = Self.kinds(try await bob.read(), "request")
        #expect(toBob.count == 1 && toBob.first?["tier"] as? Int == 0 && toBob.first?["from"] as? String == "carol" && toBob.first?["id"] as? String == id)
        #expect(Self.kinds(try await alice.read(), "request").isEmpty)

        // alice watches; the relay's clock passes one window, then two.
        let watcher = try alice.process(["read", "--watch", "--json"])
        let out = Pipe()
        watcher.standardOutput = out
        try watcher.launchOneAtATime()
        let lines = LineReader(out.fileHandleForReading)
        var tiers: [Int] = []
        try setClock(start + 61)
        while tiers.count < 2, let line = try await lines.next(limit: 30) {
            guard line.contains("\"kind\":\"request\""), let e = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            tiers.append(e["tier"] as? Int ?? -1)
            if tiers.count == 1 { try setClock(start + 122) }
        }
        watcher.interrupt()
        await watcher.exited()
        #expect(tiers == [1, 2])  // everyone, then the coordinator

        let claim = try await bob.run("claim", String(id.prefix(8)))
        Self.ok(claim, "claim")
        #expect(claim.out.contains("It is yours: carol asked"))
        let second = try await alice.run("claim", id)
        #expect(second.status == 8 && second.err.contains("already claimed"), "\(second.err)")
        let carolSees = Self.kinds(try await carol.read(), "claimed")
        #expect(carolSees.count == 1 && carolSees.first?["by"] as? String == "bob")
        _ = await relay.terminate()
    }

    @Test func anIntroduction() async throws {
        let relayDir = temporaryStateDir()
        let relay = try await Daemon.start(stateDir: relayDir)
        let sam = try await Person.make("sam")
        let rae = try await Person.make("rae")
        let lee = try await Person.make("lee")
        defer {
            [sam, rae, lee].forEach { $0.remove() }
            try? FileManager.default.removeItem(atPath: relayDir)
        }
        try await pair(sam, rae, on: relay.address)
        try await pair(sam, lee, on: relay.address)
        Self.ok(try await sam.run("introduce", "rae", "lee", "--note", "a counsellor I trust"), "introduce")
        var ids: [String] = []
        for p in [rae, lee] {
            let offers = Self.kinds(try await p.read(), "introduction")
            #expect(offers.count == 1 && (offers.first?["text"] as? String)?.contains("a counsellor I trust") == true)
            ids.append(try #require(offers.first?["id"] as? String))
            let listed = try await p.run("introductions", "--json")
            #expect(listed.out.contains("\"state\":\"offered\""))
        }
        #expect(ids[0] == ids[1])
        Self.ok(try await rae.run("introduction", "accept", String(ids[0].prefix(8))), "accept")
        Self.ok(try await lee.run("introduction", "accept", String(ids[0].prefix(8))), "accept")
        _ = try await Self.settle([sam, lee, rae], rounds: 2)
        for (p, other) in [(rae, "lee"), (lee, "rae")] {
            let contacts = try await p.run("contacts", "--json")
            #expect(contacts.out.contains("\"name\":\"\(other)\""), "\(p.name): \(contacts.out)")
        }
        Self.ok(try await lee.run("send", "rae", "hello, Sam said you might call"), "send")
        #expect(texts(try await rae.read()) == ["hello, Sam said you might call"])
        _ = await relay.terminate()
    }
}
