import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import BelayClient

/// `read --watch` as the library runs it, against a real belayd.
@Suite struct WatchTests {
    /// Alice watches in one terminal and invites Carol from another (a second `Agent` on the
    /// same home). The watch subscribes to the new invitation on its next rescan, so Carol's
    /// acceptance and her first message reach it without restarting.
    @Test func aWatchPicksUpAPairingMadeByAnotherProcess() async throws {
        try await withRelayAndAgents(3) { relay, people in
            let (alice, _) = try await people.pairAliceAndBob(on: relay.address)
            let carol = people[2]

            let (events, sink) = AsyncStream<ReadEvent>.makeStream()
            let watching = Task {
                try await alice.watch(rescanEvery: .milliseconds(20)) { batch in
                    for event in batch { sink.yield(event) }
                }
            }
            defer { watching.cancel() }

            let secondTerminal = try Agent(home: people.homes[0], passphrase: { nil })
            let invitation = try await secondTerminal.invite(relay: relay.address, name: "carol", lifetime: nil)
            _ = try await carol.accept(invitation, name: "alice", relay: nil)
            try await carol.send(to: "alice", text: "made it")

            let seen = try await firstEvents(in: events, until: { $0.kind == .message })
            #expect(seen.map(\.kind) == [.paired, .paired, .message])  // its reply to the invitation, then its hello
            #expect(seen.allSatisfy { $0.contact == "carol" })
            #expect(seen.last?.text == "made it")
        }
    }

    /// END (another watch took the subscription, or a relay says so) does not stop a watch: it
    /// says so once and resubscribes with backoff, and what is sent afterwards still reaches it.
    @Test func aWatchToldENDResubscribesInsteadOfStopping() async throws {
        try await withRelayAndAgents(2) { relay, people in
            let (alice, bob) = try await people.pairAliceAndBob(on: relay.address)
            let (events, watching) = try await watchedAfterAFirstMessage(alice, from: bob)
            defer { watching.cancel() }
            // A second subscriber to alice's queue takes it over: the relay sends END to the watch.
            let rid = try alice.read { db in try alice.store.contacts(db) }.first!.record.inbox
            let keys = try InboxKeys(rid)
            let thief = try await RelayConnection.connect(to: relay.address, group: MultiThreadedEventLoopGroup.singleton)
            try await thief.authorise(.recipient, keys.recipientId, key: keys.key)
            try await thief.subscribe(keys.recipientId)
            let ended = try await firstEvents(in: events, until: { $0.kind == .warning })
            #expect(ended.last?.text.contains("ended a subscription") == true)
            await thief.close()
            try await bob.send(to: "alice", text: "still watching")
            let later = try await firstEvents(in: events, until: { $0.kind == .message })
            #expect(later.last?.text == "still watching")
        }
    }

    /// A relay that is killed under a watch is reported down, retried with backoff, reported up
    /// when it is back, and what is sent then arrives: the watch never ends on its own.
    @Test func aWatchSurvivesItsRelayGoingAwayAndComingBack() async throws {
        let relayDir = temporaryStateDir()
        defer { try? FileManager.default.removeItem(atPath: relayDir) }
        var relay = try await Daemon.start(stateDir: relayDir)
        let people = try Agents(2)
        defer { people.remove() }
        let (alice, bob) = try await people.pairAliceAndBob(on: relay.address)

        let (events, watching) = try await watchedAfterAFirstMessage(alice, from: bob)
        defer { watching.cancel() }

        let port = relay.address.port
        await relay.kill9()
        let downEvents = try await firstEvents(in: events, until: { $0.kind == .status })
        #expect(downEvents.last?.state == "down")
        #expect(downEvents.last?.relay == "127.0.0.1:\(port)")

        relay = try await Daemon.start(stateDir: relayDir, port: port)
        let upEvents = try await firstEvents(in: events, until: { $0.kind == .status })
        #expect(upEvents.last?.state == "up")
        try await bob.send(to: "alice", text: "after the restart")
        let later = try await firstEvents(in: events, until: { $0.kind == .message })
        #expect(later.last?.text == "after the restart")
        watching.cancel()
        _ = await relay.terminate()
    }
}

/// `watcher` watching (with a fast reconnect backoff), once `sender`'s first message reached it.
private func watchedAfterAFirstMessage(_ watcher: Agent, from sender: Agent) async throws -> (AsyncStream<ReadEvent>, Task<Void, Error>) {
    let (events, sink) = AsyncStream<ReadEvent>.makeStream()
    let watching = Task {
        try await watcher.watch(reconnectBase: .milliseconds(20)) { batch in
            for event in batch { sink.yield(event) }
        }
    }
    try await sender.send(to: "alice", text: "first")
    _ = try await firstEvents(in: events, until: { $0.kind == .message && $0.text == "first" })
    return (events, watching)
}

/// Events from `stream` up to and including the first that satisfies `done`; fails after 30 s
/// (a guard against a hang, not a wait for the event).
private func firstEvents(in stream: AsyncStream<ReadEvent>, until done: @escaping @Sendable (ReadEvent) -> Bool) async throws -> [ReadEvent] {
    try await withThrowingTaskGroup(of: [ReadEvent]?.self) { group in
        group.addTask {
            var seen: [ReadEvent] = []
            for await event in stream {
                seen.append(event)
                if done(event) { return seen }
            }
            return seen
        }
        group.addTask {
            try await Task.sleep(for: .seconds(30))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let seen = first else {
            Issue.record("no matching event within 30 s")
            return []
        }
        return seen
    }
}
