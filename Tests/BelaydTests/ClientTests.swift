import BelayWire
import Foundation
import Testing

/// The `belay` executable against real `belayd` processes on loopback, each person with their
/// own `$BELAY_HOME`.
@Suite struct ClientTests {
    @Test func invitationAcceptAndMessagesBothWays() async throws {
        let relayDir = temporaryStateDir()
        let relay = try await Daemon.start(stateDir: relayDir)
        let alice = try await Person.make("alice")
        let bob = try await Person.make("bob")
        defer {
            alice.remove()
            bob.remove()
            try? FileManager.default.removeItem(atPath: relayDir)
        }

        let invite = try await alice.run("invite", "--relay", relay.address.description, "--name", "bob")
        #expect(invite.status == 0)
        #expect(invite.lines.count == 1)  // stdout is not a terminal: no QR code
        let text = try #require(invite.lines.first)
        #expect(text.hasPrefix("belay-invite:"))
        let accept = try await bob.run("accept", text, "--name", "alice")
        #expect(accept.status == 0, "\(accept.err)")

        // The acceptor can write at once; `send` prints nothing on success.
        let sent = try await bob.run("send", "bob-to-alice-1", "x")
        #expect(sent.status == 1 && sent.err.contains("no contact named"))
        let send = try await bob.run("send", "alice", "first from bob")
        #expect(send.status == 0 && send.out.isEmpty && send.err.isEmpty)
        #expect(try await bob.run("send", "alice", "-", stdin: "second from bob, via stdin\n").status == 0)

        let events = try await alice.read()
        #expect(events.map { $0["kind"] as? String } == ["paired", "paired", "message", "message"])
        #expect(texts(events) == ["first from bob", "second from bob, via stdin"])
        #expect(events.last?["contact"] as? String == "bob")

        for i in 1...3 { #expect(try await alice.run("send", "bob", "reply \(i)").status == 0) }
        #expect(texts(try await bob.read()) == ["reply 1", "reply 2", "reply 3"])
        #expect(texts(try await bob.read()).isEmpty)  // read acknowledges: nothing twice

        let contacts = try await alice.run("contacts", "--json")
        let entry = try #require(try JSONSerialization.jsonObject(with: Data(contacts.out.utf8)) as? [String: Any])
        #expect(entry["name"] as? String == "bob" && entry["canSend"] as? Bool == true && entry["verified"] as? Bool == false)

        // Both sides compute the same 60-digit safety number.
        let a = try await alice.run("verify", "bob")
        let b = try await bob.run("verify", "alice")
        let number = try #require(a.lines.first)
        #expect(number.filter(\.isNumber).count == 60)
        #expect(b.lines.first == number)
        #expect(try await alice.run("verify", "bob", "--confirm").status == 0)
        #expect(try await alice.run("contacts").out.contains("bob  (verified)"))
        #expect(await relay.terminate() == 0)
    }

    @Test func watchPrintsMessagesAsTheyArrive() async throws {
        let relayDir = temporaryStateDir()
        let relay = try await Daemon.start(stateDir: relayDir)
        let alice = try await Person.make("alice")
        let bob = try await Person.make("bob")
        defer {
            alice.remove()
            bob.remove()
            try? FileManager.default.removeItem(atPath: relayDir)
        }
        try await pair(alice, bob, on: relay.address)

        let watcher = try bob.process(["read", "--watch", "--json"])
        let out = Pipe()
        watcher.standardOutput = out
        try watcher.launchOneAtATime()
        let lines = LineReader(out.fileHandleForReading)
        try await alice.run("send", "bob", "live one")
        #expect(try await lines.next()?.contains("\"text\":\"live one\"") == true)
        try await alice.run("send", "bob", "live two")
        #expect(try await lines.next()?.contains("\"text\":\"live two\"") == true)
        watcher.interrupt()
        await watcher.exited()
        #expect(watcher.terminationStatus == 0)
        #expect(texts(try await bob.read()).isEmpty)  // the watcher acknowledged both
        _ = await relay.terminate()
    }

    /// `read --watch --on-alert COMMAND` runs COMMAND for an alert with the event's JSON on its
    /// standard input (here `cat` into a FIFO the test reads), not on its command line.
    @Test func onAlertRunsTheCommandWithTheEventOnStandardInput() async throws {
        let relayDir = temporaryStateDir()
        let relay = try await Daemon.start(stateDir: relayDir)
        let alice = try await Person.make("alice")
        let bob = try await Person.make("bob")
        let fifo = relayDir + "-hook.fifo"
        defer {
            alice.remove()
            bob.remove()
            try? FileManager.default.removeItem(atPath: relayDir)
            unlink(fifo)
        }
        try await pair(alice, bob, on: relay.address)
        #expect(mkfifo(fifo, 0o600) == 0)
        // Opened read-write, so neither this open nor the hook's blocks.
        let hookOutput = LineReader(FileHandle(fileDescriptor: open(fifo, O_RDWR), closeOnDealloc: true))

        let watcher = try bob.process(["read", "--watch", "--json", "--on-alert", "cat > '\(fifo)'"])
        let out = Pipe()
        watcher.standardOutput = out
        try watcher.launchOneAtATime()
        let printed = LineReader(out.fileHandleForReading)
        try await alice.run("send", "bob", "just a message")  // not an alert: no hook
        #expect(try await printed.next()?.contains("just a message") == true)
        let help = try await alice.run("checkin", "alert", "--to", "bob", "--note", "come now")
        #expect(help.status == 0, "\(help.err)")
        let hooked = try await hookOutput.next()
        #expect(hooked?.contains("\"kind\":\"alert\"") == true)
        #expect(hooked?.contains("come now") == true)
        watcher.interrupt()
        await watcher.exited()
        _ = await relay.terminate()
    }

    /// kill -9 of a reading client part-way through: every message is shown (a message recorded
    /// but not yet printed is shown by the next read, marked as possibly seen), none is shown
    /// twice without that mark, and the ratchet stays in step both ways.
    @Test func aClientKilledMidReadLosesNothingAndStaysInStep() async throws {
        let relayDir = temporaryStateDir()
        let relay = try await Daemon.start(stateDir: relayDir)
        let alice = try await Person.make("alice")
        let bob = try await Person.make("bob")
        defer {
            alice.remove()
            bob.remove()
            try? FileManager.default.removeItem(atPath: relayDir)
        }
        try await pair(alice, bob, on: relay.address)
        let sent = (1...40).map { "message \($0)" }
        for text in sent { #expect(try await bob.run("send", "alice", text).status == 0) }

        let watcher = try alice.process(["read", "--watch", "--json"])
        let out = Pipe()
        watcher.standardOutput = out
        try watcher.launchOneAtATime()
        let lines = LineReader(out.fileHandleForReading)
        var before: [String] = []
        while before.count < 5, let line = try await lines.next() { before.append(line) }
        kill(watcher.processIdentifier, SIGKILL)
        await watcher.exited()
        // Whatever it printed before dying was shown too: read the pipe to its end.
        while let line = try await lines.next() { before.append(line) }

        let after = try await alice.read()
        let decoded = before.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } + after
        var seen: [String: Int] = [:]
        for e in decoded where e["kind"] as? String == "message" {
            let text = e["text"] as? String ?? ""
            seen[text, default: 0] += 1
            if seen[text]! > 1 { #expect((e["notes"] as? [String])?.first?.contains("interrupted") == true, "\(text) shown twice unmarked") }
        }
        #expect(Set(seen.keys) == Set(sent))
        #expect(try await bob.run("send", "alice", "after the crash").status == 0)
        #expect(texts(try await alice.read()) == ["after the crash"])
        #expect(try await alice.run("send", "bob", "still in step").status == 0)
        #expect(texts(try await bob.read()) == ["still in step"])
        _ = await relay.terminate()
    }

    @Test func contactsOnTwoDifferentRelays() async throws {
        let dir1 = temporaryStateDir()
        let dir2 = temporaryStateDir()
        let relay1 = try await Daemon.start(stateDir: dir1)
        let relay2 = try await Daemon.start(stateDir: dir2)
        let alice = try await Person.make("alice")
        let bob = try await Person.make("bob")
        defer {
            alice.remove()
            bob.remove()
            for d in [dir1, dir2] { try? FileManager.default.removeItem(atPath: d) }
        }
        try await pair(alice, bob, on: relay1.address, acceptorRelay: relay2.address)
        #expect(try await bob.run("send", "alice", "over relay one").status == 0)
        #expect(try await alice.run("send", "bob", "over relay two").status == 0)
        #expect(texts(try await alice.read()) == ["over relay one"])
        #expect(texts(try await bob.read()) == ["over relay two"])
        let bobsView = try await bob.run("contacts", "--json")
        #expect(bobsView.out.contains(relay2.address.description))  // bob receives on his own relay
        let alicesView = try await alice.run("contacts", "--json")
        #expect(alicesView.out.contains(relay1.address.description))
        _ = await relay1.terminate()
        _ = await relay2.terminate()
    }

    @Test func aRelayThatIsDownLosesNothing() async throws {
        let relayDir = temporaryStateDir()
        var relay = try await Daemon.start(stateDir: relayDir)
        let alice = try await Person.make("alice")
        let bob = try await Person.make("bob")
        defer {
            alice.remove()
            bob.remove()
            try? FileManager.default.removeItem(atPath: relayDir)
        }
        try await pair(alice, bob, on: relay.address)
        let port = relay.address.port
        #expect(await relay.terminate() == 0)

        let offline = try await bob.run("send", "alice", "written while the relay was down")
        #expect(offline.status == 4)
        #expect(offline.err.contains("1 message(s) saved and not lost"))
        #expect(offline.err.contains("belay: hint:"))
        let down = try await alice.run("read")
        #expect(down.status == 4 && down.err.contains("cannot reach the relay"))

        relay = try await Daemon.start(stateDir: relayDir, port: port)
        #expect(try await bob.run("send", "alice", "after it came back").status == 0)  // flushes the queued one first
        #expect(texts(try await alice.read()) == ["written while the relay was down", "after it came back"])
        _ = await relay.terminate()
    }

    @Test func forgetDeletesTheContactAndItsQueueAtTheRelay() async throws {
        let relayDir = temporaryStateDir()
        let relay = try await Daemon.start(stateDir: relayDir)
        let alice = try await Person.make("alice")
        let bob = try await Person.make("bob")
        defer {
            alice.remove()
            bob.remove()
            try? FileManager.default.removeItem(atPath: relayDir)
        }
        try await pair(alice, bob, on: relay.address)
        #expect(try await alice.run("forget", "bob").status == 0)
        #expect(try await alice.run("contacts", "--json").out.isEmpty)
        let refused = try await bob.run("send", "alice", "anyone there?")
        #expect(refused.status == 4)
        #expect(refused.err.contains("no such queue"))
        _ = await relay.terminate()
    }

    @Test func badInputGetsAClearErrorAndAnExitCode() async throws {
        let alice = try await Person.make("alice")
        defer { alice.remove() }
        let garbage = try await alice.run("accept", "hello", "--name", "x")
        #expect(garbage.status == 1 && garbage.err.hasPrefix("belay: this invitation cannot be used"))
        let relay = try await alice.run("invite", "--relay", "http://example.org")
        #expect(relay.status == 1 && relay.err.contains("not a relay address"))
        let duration = try await alice.run(
            "invite", "--relay", "belay://127.0.0.1:1/#\(Base64URL.encode([UInt8](repeating: 1, count: 32)))", "--expires", "soon")
        #expect(duration.status == 1 && duration.err.contains("not a duration"))
        let unreachable = try await alice.run("invite", "--relay", "belay://127.0.0.1:1/#\(Base64URL.encode([UInt8](repeating: 1, count: 32)))")
        #expect(unreachable.status == 4 && unreachable.err.contains("cannot reach the relay"))
        let again = try await alice.run("init", "--no-passphrase")
        #expect(again.status == 1 && again.err.contains("refusing to overwrite"))
        let nobody = Person("nobody")
        let missing = try await nobody.run("contacts")
        #expect(missing.status == 1 && missing.err.contains("belay init"))
        let usage = try await alice.run("send")
        #expect(usage.status == 64)
        for command in ["init", "invite", "accept", "send", "read", "contacts", "verify", "forget", "wipe"] {
            let help = try await alice.run(command, "--help")
            #expect(help.status == 0 && help.out.contains("Example"), "\(command) --help")
        }
    }

    @Test func wipeNeedsConfirmationAndThenRemovesEverything() async throws {
        let alice = try await Person.make("alice")
        defer { alice.remove() }
        let refused = try await alice.run("wipe")  // no terminal to confirm on
        #expect(refused.status == 1 && refused.err.contains("not confirmed"))
        #expect(FileManager.default.fileExists(atPath: alice.home + "/belay.db"))
        #expect(try await alice.run("wipe", "--yes").status == 0)
        #expect(!FileManager.default.fileExists(atPath: alice.home + "/belay.db"))
        #expect(try await alice.run("init", "--no-passphrase").status == 0)
    }
}

/// Lines from a pipe, read on a background thread; `next` waits for one (or the pipe's end).
final class LineReader: @unchecked Sendable {
    private let condition = NSCondition()
    private var lines: [String] = []
    private var finished = false
    private var waiter: (id: Int, continuation: CheckedContinuation<String?, Never>)?
    private var nextWaiter = 0

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            var buffer: [UInt8] = []
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                buffer += chunk
                while let i = buffer.firstIndex(of: 0x0a) {
                    let line = String(decoding: buffer[..<i], as: UTF8.self)
                    buffer.removeSubrange(...i)
                    deliver(line)
                }
            }
            deliver(nil)
        }
    }

    /// Hands a line (nil: the end of the pipe) to the waiting `next`, or keeps it for the next one.
    private func deliver(_ line: String?) {
        condition.lock()
        if line == nil { finished = true }
        if let w = waiter {
            waiter = nil
            condition.unlock()
            return w.continuation.resume(returning: line)
        }
        if let line { lines.append(line) }
        condition.unlock()
    }

    /// The next line; nil at the end of the pipe or if none comes within `limit`, so a broken
    /// watcher fails the test instead of hanging it. The limit only bounds failure. Waits without
    /// blocking a thread (see `Process.exited`).
    func next(limit: TimeInterval = 30) async throws -> String? {
        await withCheckedContinuation { (c: CheckedContinuation<String?, Never>) in
            condition.lock()
            if !lines.isEmpty {
                let line = lines.removeFirst()
                condition.unlock()
                return c.resume(returning: line)
            }
            if finished {
                condition.unlock()
                return c.resume(returning: nil)
            }
            nextWaiter += 1
            let id = nextWaiter
            waiter = (id, c)
            condition.unlock()
            Task { [self] in
                try? await Task.sleep(for: .seconds(limit))
                expire(id)
            }
        }
    }

    /// Ends the wait of `next` call `id` with nil if it is still waiting.
    private func expire(_ id: Int) {
        condition.lock()
        guard let w = waiter, w.id == id else { return condition.unlock() }
        waiter = nil
        condition.unlock()
        w.continuation.resume(returning: nil)
    }
}
