import BelayE2E
import BelayWire
import Foundation
import NIOPosix
import Testing

@testable import BelayClient

@Suite struct ClientSecurityTests {
    @Test func thePassphraseProtectsTheStateAndAWrongOneChangesNothing() async throws {
        let alice = Person("alice", passphrase: "correct horse battery staple")
        defer { alice.remove() }
        #expect(try await alice.run("init").status == 0)
        let db = alice.home + "/belay.db"
        let before = try Data(contentsOf: URL(fileURLWithPath: db))
        var wrong = alice
        wrong.environment["BELAY_PASSPHRASE"] = "incorrect horse"
        let refused = try await wrong.run("contacts")
        #expect(refused.status == 3)
        #expect(refused.err.hasPrefix("belay: wrong passphrase"))
        var none = alice
        none.environment.removeValue(forKey: "BELAY_PASSPHRASE")
        let detached = try await none.runWithoutTerminal("contacts")
        #expect(detached.status == 3 && detached.err.contains("a passphrase is required"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: db)) == before)
        #expect(try await alice.run("contacts").status == 0)
    }

    @Test func aDamagedDatabaseIsAClearErrorAndIsLeftAsItWas() async throws {
        let alice = try await Person.make("alice")
        defer { alice.remove() }
        let db = alice.home + "/belay.db"
        let whole = try Data(contentsOf: URL(fileURLWithPath: db))
        for damaged in [whole.prefix(whole.count / 2), Data(count: 0), Data(repeating: 0x41, count: 8192)] {
            try damaged.write(to: URL(fileURLWithPath: db))
            let r = try await alice.run("contacts")
            #expect(r.status == 6 || r.status == 1, "\(r.err)")
            #expect(r.err.contains("damaged") || r.err.contains("no Belay identity"))
            #expect(try Data(contentsOf: URL(fileURLWithPath: db)) == damaged)
        }
    }

    /// What a crash leaves: a database whose last commits are only in the WAL, with no shared
    /// memory index. It must open with those commits, not be called damaged. (The kill -9
    /// mid-read test found a state called damaged after a crash: the store then used a rollback
    /// journal, which a read-only probe cannot replay. It now uses WAL and probes as a writer.)
    @Test func aStateLeftByACrashOpensAndKeepsItsLastCommits() async throws {
        let alice = try await Person.make("alice")
        let copy = Person("alice-after-crash")
        defer {
            alice.remove()
            copy.remove()
        }
        let agent = try Agent(home: alice.home, passphrase: { nil })
        try agent.write { db in
            try agent.store.setMeta("crash-marker", [1, 2, 3], db)
        }
        // Copy the files while the connection is still open, as a power cut would leave them.
        try FileManager.default.createDirectory(atPath: copy.home, withIntermediateDirectories: true)
        for suffix in ["", "-wal"] {
            try FileManager.default.copyItem(atPath: alice.home + "/belay.db" + suffix, toPath: copy.home + "/belay.db" + suffix)
        }
        #expect(FileManager.default.fileExists(atPath: copy.home + "/belay.db-wal"))
        let reopened = try Agent(home: copy.home, passphrase: { nil })
        #expect(try reopened.read { db in try reopened.store.meta("crash-marker", db) } == [1, 2, 3])
        #expect(try await copy.run("contacts").status == 0)
    }

    @Test func noPlaintextNameOrMessageReachesTheDisk() async throws {
        let relayDir = temporaryStateDir()
        let relay = try await Daemon.start(stateDir: relayDir)
        let alice = try await Person.make("alice")
        let bob = try await Person.make("bartholomew")
        defer {
            alice.remove()
            bob.remove()
            try? FileManager.default.removeItem(atPath: relayDir)
        }
        try await pair(alice, bob, on: relay.address)
        let secret = "meet at the old library, bring the documents"
        #expect(try await bob.run("send", "alice", secret).status == 0)
        // The relay's files, while the message waits and after it is delivered: no plaintext and
        // no identity key of either side (the confirmation carried Bob's only inside its seal).
        let keys = try [alice.home, bob.home].flatMap { home -> [[UInt8]] in
            let identity = try Agent(home: home, passphrase: { nil }).publicIdentity
            return [identity.signing, identity.agreement]
        }
        func relayFilesAreClean() throws {
            for file in try FileManager.default.contentsOfDirectory(atPath: relayDir) {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: relayDir + "/" + file))
                #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(file)")
                for key in keys { #expect(bytes.range(of: Data(key)) == nil, "identity key in relay file \(file)") }
            }
        }
        try relayFilesAreClean()
        #expect(texts(try await alice.read()) == [secret])
        try relayFilesAreClean()
        for home in [alice.home, bob.home] {
            for file in try FileManager.default.contentsOfDirectory(atPath: home) {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: home + "/" + file))
                #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(file)")
                #expect(bytes.range(of: Data("bartholomew".utf8)) == nil, "\(file)")
                #expect(bytes.range(of: Data(relay.address.description.utf8)) == nil, "\(file)")
            }
        }
        _ = await relay.terminate()
    }

    @Test func aChangedIdentityStopsHardForAVerifiedContactAndWarnsOtherwise() async throws {
        let relayDir = temporaryStateDir()
        let relay = try await Daemon.start(stateDir: relayDir)
        let alice = try await Person.make("alice")
        let bob = try await Person.make("bob")
        let carol = try await Person.make("carol")
        defer {
            alice.remove()
            bob.remove()
            carol.remove()
            try? FileManager.default.removeItem(atPath: relayDir)
        }
        try await pair(alice, bob, on: relay.address)
        try await pair(alice, carol, on: relay.address)
        #expect(try await alice.run("verify", "bob", "--confirm").status == 0)

        // Bob and Carol both start again with new identities and answer fresh invitations.
        for p in [bob, carol] {
            #expect(try await p.run("wipe", "--yes").status == 0)
            #expect(try await p.run("init", "--no-passphrase").status == 0)
            let invite = try await alice.run("invite", "--relay", relay.address.description, "--name", p.name)
            #expect(try await p.run("accept", invite.lines[0], "--name", "alice").status == 0)
        }
        let read = try await alice.run("read", "--json")
        #expect(read.status == 5)
        #expect(read.out.contains("\"kind\":\"security\""))
        #expect(read.out.contains("identity key of verified contact \\\"bob\\\" has changed"))
        // Accepting never replaces a contact: Carol's new identity is kept apart as carol-2.
        #expect(read.out.contains("\"contact\":\"carol-2\"") && read.out.contains("someone with a different identity answered an invitation named carol"))
        // Bob stays the verified old contact; the old Carol is untouched; carol-2 works.
        let contacts = try await alice.run("contacts").out
        #expect(contacts.contains("bob  (verified)") && contacts.contains("carol-2"))
        #expect(try await alice.run("send", "carol-2", "is this really you?").status == 0)
        #expect(texts(try await carol.read()) == ["is this really you?"])

        // The acceptor's side: a verified contact's name with a different identity is refused.
        let dave = try await Person.make("dave")
        defer { dave.remove() }
        try await pair(dave, carol, on: relay.address)
        _ = try await carol.run("verify", "dave", "--confirm")
        let impostor = try await alice.run("invite", "--relay", relay.address.description)
        let stopped = try await carol.run("accept", impostor.lines[0], "--name", "dave")
        #expect(stopped.status == 5)
        #expect(stopped.err.contains("SECURITY"))
        _ = await relay.terminate()
    }

    @Test func anInvitationWorksOnceAndNotAfterItExpires() async throws {
        let clock = TestClock(1_000_000)
        try await withRelayAndAgents(3, now: clock.read) { relay, people in
            let (alice, bob, carol) = (people[0], people[1], people[2])

            let shortLived = try await alice.invite(relay: relay.address, name: "bob", lifetime: 60)
            clock.set(1_000_060)
            await #expect(throws: ClientError.invalidInput("this invitation cannot be used: \(E2EError.invitationExpired)")) {
                try await bob.accept(shortLived, name: "alice", relay: nil)
            }
            clock.set(1_000_059)
            #expect(try await bob.accept(shortLived, name: "alice", relay: nil).deliveryError == nil)
            #expect(try await alice.read().filter { $0.kind == .paired }.count == 2)
            // Used: the inviter's queue now takes only Bob's key.
            await #expect(throws: ClientError.invalidInput("this invitation has already been used; ask for a new one")) {
                try await carol.accept(shortLived, name: "alice", relay: nil)
            }
            #expect(try carol.contacts().contacts.isEmpty)

            // An unanswered invitation is withdrawn by the first read a day after it expired.
            _ = try await alice.invite(relay: relay.address, name: "dave", lifetime: 60)
            #expect(try alice.contacts().invitations.count == 1)
            clock.set(1_000_059 + 60 + 24 * 3600 - 1)
            _ = try await alice.read()
            #expect(try alice.contacts().invitations.count == 1)
            clock.set(1_000_059 + 60 + 24 * 3600)
            _ = try await alice.read()
            #expect(try alice.contacts().invitations.isEmpty)
        }
    }

    /// A crash after a received message is committed but before the relay is told: the relay
    /// delivers it again, and the client records it once.
    @Test func aRedeliveredMessageIsRecordedOnce() async throws {
        try await withRelayAndAgents(2) { relay, people in
            let (alice, bob) = try await people.pairAliceAndBob(on: relay.address)
            try await bob.send(to: "alice", text: "exactly once")

            let (connection, keys) = try await people.rawInbox(of: alice, on: relay.address)
            let delivery = try #require(try await connection.getMessage(keys.recipientId))
            #expect(try await alice.process(delivery, connection: connection).map(\.text) == ["exactly once"])
            #expect(try await alice.process(delivery, connection: connection).isEmpty)  // the redelivery
            #expect(try alice.history("bob").map(\.text) == ["exactly once"])
            await connection.close()
            // The next read meets the unacknowledged message again, acknowledges it and shows nothing.
            #expect(try await alice.read().isEmpty)
            #expect(try alice.history("bob").count == 1)
        }
    }

    /// A message the relay drops, one it replays under a new seq, and one of Alice's own sent
    /// back to her: each is shown or refused, never silently accepted.
    @Test func droppedReplayedAndReflectedMessagesAreShownOrRefused() async throws {
        try await withRelayAndAgents(2) { relay, people in
            let (alice, bob) = try await people.pairAliceAndBob(on: relay.address)
            for text in ["one", "two", "three"] { try await bob.send(to: "alice", text: text) }

            let (connection, keys) = try await people.rawInbox(of: alice, on: relay.address)
            let one = try #require(try await connection.getMessage(keys.recipientId))
            #expect(try await alice.process(one, connection: connection).map(\.text) == ["one"])
            try await connection.acknowledge(keys.recipientId, seq: one.seq)
            let two = try #require(try await connection.getMessage(keys.recipientId))
            try await connection.acknowledge(keys.recipientId, seq: two.seq)  // the relay "loses" it
            let three = try #require(try await connection.getMessage(keys.recipientId))
            let shown = try await alice.process(three, connection: connection)
            #expect(shown.map(\.text) == ["three"])
            #expect(shown.first?.notes == ["1 earlier message(s) missing"])
            try await connection.acknowledge(keys.recipientId, seq: three.seq)

            // The relay replays "one" as if new (or Bob resends it after a crash): its key is gone,
            // so it is refused, and reported as a second copy rather than as a forgery.
            let replay = RelayReply.Delivery(recipient: one.recipient, seq: three.seq + 10, body: one.body)
            let refused = try await alice.process(replay, connection: connection)
            #expect(refused.map(\.kind) == [.warning])
            #expect(refused.first?.text.contains("arrived again") == true)
            // An altered copy of "three" is not a second copy: it fails to authenticate.
            var altered = three.body
            altered[altered.count - 1] ^= 1
            let forged = try await alice.process(
                RelayReply.Delivery(recipient: three.recipient, seq: three.seq + 15, body: altered),
                connection: connection)
            #expect(forged.map(\.kind) == [.warning])
            #expect(forged.first?.text.contains("rejected") == true)
            // "two" arriving late still decrypts (its key was kept as skipped) and says so.
            let late = RelayReply.Delivery(recipient: two.recipient, seq: three.seq + 20, body: two.body)
            let lateEvents = try await alice.process(late, connection: connection)
            #expect(lateEvents.map(\.text) == ["two"])
            #expect(lateEvents.first?.notes == ["arrived late (out of order)"])

            // One of Alice's own messages delivered back to her is refused.
            try await alice.send(to: "bob", text: "mine")
            let bobKeys = try InboxKeys(try bob.read { db in try bob.store.contacts(db)[0].record.inbox })
            try await connection.authorise(.recipient, bobKeys.recipientId, key: bobKeys.key)
            let mine = try #require(try await connection.getMessage(bobKeys.recipientId))
            let reflected = RelayReply.Delivery(recipient: one.recipient, seq: three.seq + 30, body: mine.body)
            let reflectedEvents = try await alice.process(reflected, connection: connection)
            #expect(reflectedEvents.map(\.kind) == [.warning])
            #expect(reflectedEvents.first?.text.contains("rejected") == true)
            #expect(try alice.history("bob").filter { $0.direction == .incoming }.map(\.text) == ["one", "three", "two"])
            await connection.close()
        }
    }
}

/// Runs `body` with a started belayd in a temporary state directory and `count` agents, then
/// stops the relay and removes every directory, whether `body` throws or not.
func withRelayAndAgents(
    _ count: Int, now: @escaping @Sendable () -> UInt64 = Agent.systemNow,
    _ body: (Daemon, Agents) async throws -> Void
) async throws {
    let relayDir = temporaryStateDir()
    defer { try? FileManager.default.removeItem(atPath: relayDir) }
    let relay = try await Daemon.start(stateDir: relayDir)
    let people: Agents
    do { people = try Agents(count, now: now) } catch {
        _ = await relay.terminate()
        throw error
    }
    defer { people.remove() }
    do { try await body(relay, people) } catch {
        _ = await relay.terminate()
        throw error
    }
    _ = await relay.terminate()
}

/// People as `Agent`s (the library behind `belay`), without passphrases, in temporary homes.
struct Agents {
    let homes: [String]
    let agents: [Agent]

    init(_ count: Int, now: @escaping @Sendable () -> UInt64 = Agent.systemNow) throws {
        homes = (0..<count).map { _ in FileManager.default.temporaryDirectory.appendingPathComponent("belay-agent-\(UUID().uuidString)").path }
        for h in homes { _ = try Agent.initialise(home: h, passphrase: nil) }
        agents = try homes.map { try Agent(home: $0, passphrase: { nil }, now: now) }
    }

    subscript(i: Int) -> Agent { agents[i] }

    /// The first agent ("alice") invites the second ("bob"), who accepts; alice completes it.
    func pairAliceAndBob(on relay: RelayAddress) async throws -> (Agent, Agent) {
        let (alice, bob) = (agents[0], agents[1])
        _ = try await bob.accept(try await alice.invite(relay: relay, name: "bob", lifetime: nil), name: "alice", relay: nil)
        _ = try await alice.read()
        return (alice, bob)
    }

    /// A raw relay connection proven as the recipient of `agent`'s first contact's queue, to
    /// play the relay's part (withhold, replay, redeliver) in a test.
    func rawInbox(of agent: Agent, on relay: RelayAddress) async throws -> (RelayConnection, InboxKeys) {
        let keys = try InboxKeys(try agent.read { db in try agent.store.contacts(db)[0].record.inbox })
        let connection = try await RelayConnection.connect(to: relay, group: MultiThreadedEventLoopGroup.singleton)
        try await connection.authorise(.recipient, keys.recipientId, key: keys.key)
        return (connection, keys)
    }

    func remove() { homes.forEach { try? FileManager.default.removeItem(atPath: $0) } }
}

final class TestClock: @unchecked Sendable {
    private var value: UInt64
    private let lock = NSLock()
    init(_ v: UInt64) { value = v }
    func set(_ v: UInt64) { lock.withLock { value = v } }
    var read: @Sendable () -> UInt64 { { [self] in lock.withLock { value } } }
}

extension Person {
    /// Runs belay in a new session with no controlling terminal, as a script or service would.
    func runWithoutTerminal(_ arguments: String...) async throws -> Result {
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
        process.arguments = ["--wait", try Daemon.builtExecutable("belay")] + arguments
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        let err = home + ".err-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: err) }
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        process.standardOutput = FileHandle.nullDevice
        try process.launchOneAtATime()
        await process.exited()
        return Result(status: process.terminationStatus, out: "", err: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }
}
