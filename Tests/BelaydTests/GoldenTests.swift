import BelayWire
import Foundation
import Testing

/// `--help` for every command and the main error messages, compared byte for byte with the
/// files in Golden/. After a deliberate change, regenerate them with
/// `BELAY_UPDATE_GOLDEN=1 swift test --filter GoldenTests` and review the diff.
@Suite struct GoldenTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
    static let commands = [
        "", "init", "invite", "accept", "send", "read", "contacts", "verify", "forget", "wipe",
        "checkin", "checkin arm", "checkin ok", "checkin status", "checkin disarm", "checkin alert",
        "group", "group create", "group add", "group join", "group remove", "group leave", "group send", "group members",
        "group list", "group retire", "group forget", "roster", "roster create", "roster duty", "roster status", "request", "claim",
        "introduce", "introductions", "introduction accept", "introduction decline", "relay token", "relay token set",
        "relay token clear",
    ]

    func check(_ actual: String, against name: String) throws {
        let url = Self.folder.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["BELAY_UPDATE_GOLDEN"] == "1" {
            try actual.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        #expect(actual == expected, "\(name) differs from its golden file; if the change is intended, regenerate (see GoldenTests)")
    }

    @Test(arguments: commands) func helpMatchesItsGoldenFile(_ command: String) async throws {
        var person = Person("golden")
        person.environment["COLUMNS"] = "80"
        let words = command.split(separator: " ").map(String.init)
        let r = try await person.run(words + ["--help"])
        #expect(r.status == 0)
        try check(r.out, against: "help-\(command.isEmpty ? "belay" : words.joined(separator: "-")).txt")
    }

    @Test func mainErrorMessagesMatchTheirGoldenFile() async throws {
        let nobody = Person("nobody")
        let alice = try await Person.make("alice")
        defer { alice.remove() }
        let key = Base64URL.encode([UInt8](repeating: 1, count: 32))
        let cases: [(Person, [String])] = [
            (nobody, ["contacts"]),
            (alice, ["init", "--no-passphrase"]),
            (alice, ["send", "nobody", "hello"]),
            (alice, ["send", "nobody", ""]),
            (alice, ["verify", "nobody"]),
            (alice, ["accept", "hello", "--name", "x"]),
            (alice, ["accept", "belay-invite:AAAA", "--name", "x"]),
            (alice, ["invite", "--relay", "http://example.org"]),
            (alice, ["invite", "--relay", "belay://127.0.0.1:1/#\(key)", "--expires", "soon"]),
            (alice, ["invite", "--relay", "belay://127.0.0.1:1/#\(key)", "--expires", "90y"]),
            (alice, ["invite", "--relay", "belay://127.0.0.1:1/#\(key)", "--name", "a,b"]),
            (alice, ["invite", "--relay", "belay://127.0.0.1:1/#\(key)", "--token", String(repeating: "t", count: 256)]),
            (alice, ["relay", "token", "clear", "belay://127.0.0.1:1/#\(key)"]),
            (alice, ["wipe"]),
            (alice, ["checkin", "ok"]),
            (alice, ["checkin", "arm", "--every", "10s", "--grace", "5s", "--to", "bob"]),
            (alice, ["checkin", "arm", "--every", "6h", "--grace", "30m", "--to", "bob"]),
            (alice, ["invite", "--relay", "belay://pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:7707/#\(key)"]),
            (alice, ["invite", "--relay", "belay://localhost:7707/#\(key)", "--proxy", "socks5h://127.0.0.1:1"]),
            (alice, ["invite", "--relay", "belay://localhost:7707/#\(key)", "--proxy", "socks5://127.0.0.1:9050"]),
            (alice, ["invite", "--relay", "belay://localhost:7707/#\(key)", "--proxy", "http://127.0.0.1:8080"]),
        ]
        var transcript = ""
        for (person, args) in cases {
            let r = try await person.run(args)
            let err = r.err.replacingOccurrences(of: person.home, with: "$BELAY_HOME")
            transcript += "$ belay \(args.joined(separator: " "))\n\(err)exit \(r.status)\n\n"
        }
        try check(transcript, against: "errors.txt")
    }
}
