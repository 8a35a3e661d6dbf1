import BelayWire
import Foundation
import Testing

/// Someone using the real `belay` executable with their own `$BELAY_HOME`.
struct Person {
    let name: String
    let home: String
    var environment: [String: String]

    struct Result {
        var status: Int32
        var out: String
        var err: String
        var lines: [String] { out.split(separator: "\n").map(String.init) }
    }

    init(_ name: String, passphrase: String? = nil) {
        self.name = name
        home = FileManager.default.temporaryDirectory.appendingPathComponent("belay-\(name)-\(UUID().uuidString)").path
        var env = ProcessInfo.processInfo.environment
        env["BELAY_HOME"] = home
        env.removeValue(forKey: "BELAY_PASSPHRASE")
        env.removeValue(forKey: "BELAY_PROXY")
        if let passphrase { env["BELAY_PASSPHRASE"] = passphrase }
        environment = env
    }

    static func make(_ name: String) async throws -> Person {
        let p = Person(name)
        let r = try await p.run("init", "--no-passphrase")
        #expect(r.status == 0, "\(r.err)")
        return p
    }

    func process(_ arguments: [String]) throws -> TestProcess {
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: try Daemon.builtExecutable("belay"))
        process.arguments = arguments
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        return process
    }

    @discardableResult
    func run(_ arguments: String..., stdin: String? = nil) async throws -> Result {
        try await run(arguments, stdin: stdin)
    }

    /// Runs `belay ARGS` to completion. Output goes through files, so a chatty command cannot
    /// block on a full pipe.
    @discardableResult
    func run(_ arguments: [String], stdin: String? = nil) async throws -> Result {
        let process = try process(arguments)
        let out = home + ".out-\(UUID().uuidString)"
        let err = home + ".err-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: out)
            try? FileManager.default.removeItem(atPath: err)
        }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        let pipe = Pipe()
        if stdin != nil { process.standardInput = pipe }
        try process.launchOneAtATime()
        if let stdin {
            pipe.fileHandleForWriting.write(Data(stdin.utf8))
            try pipe.fileHandleForWriting.close()
        }
        await process.exited()
        return Result(
            status: process.terminationStatus,
            out: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            err: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    /// `belay read --json`, decoded.
    func read(_ extra: String...) async throws -> [[String: Any]] {
        let r = try await run(["read", "--json"] + extra)
        #expect(r.status == 0, "\(name) read failed: \(r.err)")
        return r.lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func remove() { try? FileManager.default.removeItem(atPath: home) }
}

/// Pairs `inviter` and `acceptor` through a real invitation on `relay` (and, if given, the
/// acceptor's own relay), and lets the inviter complete the pairing.
func pair(_ inviter: Person, _ acceptor: Person, on relay: RelayAddress, acceptorRelay: RelayAddress? = nil) async throws {
    let invite = try await inviter.run("invite", "--relay", relay.description, "--name", acceptor.name)
    #expect(invite.status == 0, "\(invite.err)")
    let text = try #require(invite.lines.first)
    var args = ["accept", text, "--name", inviter.name]
    if let acceptorRelay { args += ["--relay", acceptorRelay.description] }
    let accept = try await acceptor.run(args)
    #expect(accept.status == 0, "\(accept.err)")
    let events = try await inviter.read()
    #expect(events.filter { $0["kind"] as? String == "paired" }.count == 2)
}

func texts(_ events: [[String: Any]]) -> [String] {
    events.filter { $0["kind"] as? String == "message" }.compactMap { $0["text"] as? String }
}
