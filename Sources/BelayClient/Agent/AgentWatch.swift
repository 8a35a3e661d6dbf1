import BelayE2E
import BelayWire
import Foundation
import NIOCore

extension Agent {
    /// How often `watch` pings each relay, well inside the relay's idle timeout.
    public static let watchKeepAlive: TimeAmount = .seconds(60)

    /// PINGs `connection` after `delay`, then again and again at random intervals around
    /// `watchKeepAlive` (`Timing`), until it closes.
    func keepAlive(_ connection: RelayConnection, after delay: TimeAmount) {
        let random = self.random
        connection.channel.eventLoop.scheduleTask(in: delay) {
            guard connection.channel.isActive else { return }
            _ = connection.request(.ping)
            self.keepAlive(connection, after: Timing.nextKeepAlive(period: Self.watchKeepAlive, random: random))
        }
    }
    /// How often `watch` looks in the local store for contacts and invitations added by another
    /// `belay` process (an `invite` or `accept` in a second terminal) and subscribes to them.
    public static let watchRescan: TimeAmount = .seconds(10)

    /// After a relay connection drops, the first retry waits about this long; each failure
    /// doubles the wait, up to `watchReconnectCap`, and every wait is jittered (half to all of
    /// it) so a person's many connections do not retry in step.
    public static let watchReconnectBase: TimeAmount = .seconds(1)
    public static let watchReconnectCap: TimeAmount = .seconds(60)
    /// A connection that has stayed up this long resets the backoff when it next drops.
    public static let watchStableAfter: TimeAmount = .seconds(60)
    /// How often `watch` looks for overdue check-ins and unacknowledged alerts on its own clock,
    /// so that it raises them on time even when no relay says anything.
    public static let watchOverdueTick: TimeAmount = .seconds(5)

    private enum WatchEvent {
        /// What one connection's relay pushed at once; nil when the connection closed.
        case replies(RelayPool.Lane, [RelayReply]?)
        case rescan
        case reconnect(attempt: Int)
        case tick
    }

    /// Subscribes to every inbox (or one contact's) and hands events to `onEvent` as messages
    /// arrive, until the task is cancelled. A relay that drops or cannot be reached is reported
    /// (a `status` event, `down` then `up`) and retried with capped, jittered backoff; it never
    /// ends the watch. Every `rescanEvery` it also subscribes to inboxes that appeared in the
    /// store since it started.
    public func watch(
        from name: String? = nil, rescanEvery: TimeAmount = Agent.watchRescan,
        reconnectBase: TimeAmount = Agent.watchReconnectBase, overdueTick: TimeAmount = Agent.watchOverdueTick,
        onEvent: @escaping @Sendable ([ReadEvent]) -> Void
    ) async throws {
        let (stream, continuation) = AsyncStream<WatchEvent>.makeStream()
        let push: @Sendable (RelayPool.Lane, [RelayReply]) -> Void = { lane, replies in continuation.yield(.replies(lane, replies)) }
        try await withRelayPool(onPush: push) { pool in
            let early = await flushAll(pool: pool)
            if !early.isEmpty { onEvent(early) }
            if let name, try read({ db in try store.contacts(db) }).first(where: { Names.same($0.record.name, name) }) == nil {
                throw ClientError.unknownContact(name)
            }
            var connections: [RelayPool.Lane: RelayConnection] = [:]
            var subscribed: Set<EntityID> = []
            /// Relays (HOST:PORT) currently reported down, and whether a retry is scheduled.
            var down: Set<String> = []
            var retryScheduled = false
            var refused: Set<EntityID> = []
            var endNoticed: Set<[UInt8]> = []
            var upSince = NIODeadline.now()

            /// A lane lost its connection (or its subscription): forget it, say so once per relay if
            /// the relay went away, and retry with backoff.
            func dropped(_ lane: RelayPool.Lane, relayDown: Bool = true) {
                guard connections.removeValue(forKey: lane) != nil else { return }
                attempt = NIODeadline.now() - upSince < Agent.watchStableAfter ? attempt + 1 : 0
                if let queue = EntityID(bytes: lane.queue) { subscribed.remove(queue) }
                if relayDown, down.insert(relayName(lane.address)).inserted { report(relayName(lane.address), up: false) }
                scheduleRetry()
            }
            var attempt = 0
            let loop = group.next()

            func relayName(_ address: RelayAddress) -> String { "\(address.host):\(address.port)" }

            func report(_ relay: String, up: Bool) {
                onEvent([
                    ReadEvent(
                        kind: .status, contact: nil,
                        text: up ? "relay \(relay) is back; watching again" : "relay \(relay) is unreachable; retrying with backoff",
                        relay: relay, state: up ? "up" : "down")
                ])
            }

            func scheduleRetry() {
                guard !retryScheduled else { return }
                retryScheduled = true
                let shift = min(attempt, 16)
                let ceiling = min(reconnectBase.nanoseconds << shift, Agent.watchReconnectCap.nanoseconds)
                let wait = TimeAmount.nanoseconds(Int64.random(in: (ceiling / 2)...max(ceiling / 2, ceiling)))
                let next = attempt + 1
                _ = loop.scheduleTask(in: wait) { continuation.yield(.reconnect(attempt: next)) }
            }

            /// Subscribes to every wanted inbox not yet subscribed. An inbox whose relay cannot be
            /// reached is reported down and retried with backoff.
            /// A rescan leaves relays reported down to the backoff (`includeDown` false), so one
            /// relay that stalls is not retried on every tick in front of everything else.
            func subscribeNew(includeDown: Bool = true) async throws {
                let (contacts, invitations) = try read { db in (try store.contacts(db), try store.invitations(db)) }
                var inboxes = contacts.filter { c in name.map { Names.same(c.record.name, $0) } ?? true }.map(\.record.inbox)
                if name == nil { inboxes += invitations.map(\.record.inbox) }
                for inbox in inboxes {
                    let keys = try InboxKeys(inbox)
                    guard !subscribed.contains(keys.recipientId) else { continue }
                    if !includeDown, let address = try? RelayAddress(parsing: inbox.relay), down.contains(relayName(address)) { continue }
                    let connection: RelayConnection
                    do {
                        connection = try await pool.connection(inbox.relay, lane: keys.recipientId)
                        do {
                            try await pool.authorise(.recipient, keys.recipientId, key: keys.key, on: connection)
                            try await connection.subscribe(keys.recipientId)
                        } catch let error as RelayClientError {
                            throw Self.relayError(error, connection.address)
                        }
                    } catch ClientError.relayRefused(let why) {
                        // The relay answered and said no (the queue is gone, say): retrying will not
                        // help. Said once; the next rescan may try again.
                        if refused.insert(keys.recipientId).inserted {
                            onEvent([ReadEvent(kind: .warning, contact: nil, text: "a relay refused to deliver one of your queues: \(why)")])
                        }
                        continue
                    } catch {
                        let relay = (try? RelayAddress(parsing: inbox.relay)).map(relayName) ?? inbox.relay
                        if down.insert(relay).inserted { report(relay, up: false) }
                        scheduleRetry()
                        continue
                    }
                    if down.remove(relayName(connection.address)) != nil { report(relayName(connection.address), up: true) }
                    subscribed.insert(keys.recipientId)
                    let lane = RelayPool.Lane(address: connection.address, queue: keys.recipientId.bytes)
                    if connections[lane] == nil {
                        connections[lane] = connection
                        connection.channel.closeFuture.whenComplete { _ in continuation.yield(.replies(lane, nil)) }
                        keepAlive(connection, after: Timing.firstKeepAlive(period: Self.watchKeepAlive, random: random))
                    }
                }
            }

            // A relay that is down at the start is reported and retried like one that drops later.
            try await subscribeNew()
            var lastRescan = NIODeadline.now()
            let rescan = group.next().scheduleRepeatedTask(initialDelay: rescanEvery, delay: rescanEvery) { _ in
                continuation.yield(.rescan)
            }
            defer { rescan.cancel() }
            let ticker = group.next().scheduleRepeatedTask(initialDelay: .zero, delay: overdueTick) { _ in continuation.yield(.tick) }
            defer { ticker.cancel() }
            for await event in stream {
                switch event {
                case .tick:
                    // A tick that cannot read the store (another process holding it past the busy
                    // timeout) is skipped: the next one tries again.
                    if let due = try? overdueEvents(reminders: true), !due.isEmpty { onEvent(due) }
                    if let escalated = try? requestEscalations(), !escalated.isEmpty { onEvent(escalated) }
                case .rescan:
                    // Ticks that queued up while a slow subscription ran are one tick.
                    let now = NIODeadline.now()
                    guard now - lastRescan >= .nanoseconds(rescanEvery.nanoseconds / 2) else { continue }
                    lastRescan = now
                    // A store busy past its timeout is tried again at the next rescan.
                    try? await subscribeNew(includeDown: false)
                case let .reconnect(next):
                    retryScheduled = false
                    attempt = next
                    if (try? await subscribeNew()) == nil { scheduleRetry() }
                    // The backoff starts again only once the relays have stayed up a while (see
                    // `dropped`): a relay that accepts and drops at once keeps its growing wait.
                    if !retryScheduled { upSince = NIODeadline.now() }
                case let .replies(lane, replies):
                    guard let connection = connections[lane] else { continue }
                    guard let replies else {
                        dropped(lane)
                        continue
                    }
                    var deliveries: [RelayReply.Delivery] = []
                    for case let .message(delivery) in replies {
                        if delivery.recipient.bytes == lane.queue { deliveries.append(delivery) } else { onEvent([Self.wrongQueueEvent]) }
                    }
                    if !deliveries.isEmpty {
                        // What the relay pushed at once is recorded in one transaction, then
                        // acknowledged together: if the ACKs are lost, the redelivery is recognised.
                        let events: [ReadEvent]
                        do { events = try await process(deliveries, connection: connection) } catch {
                            // Not acknowledged: the relay keeps them, and they come again after a
                            // reconnect. The watch itself goes on.
                            onEvent([ReadEvent(kind: .warning, contact: nil, text: "a message could not be recorded yet (\(error)); it will come again")])
                            await connection.close()
                            dropped(lane, relayDown: false)
                            continue
                        }
                        if !events.isEmpty { onEvent(events) }
                        do {
                            try Self.checkAcknowledged(
                                try await connection.pipeline(deliveries.map { .ack(recipient: $0.recipient, seq: $0.seq) }))
                        } catch {
                            await connection.close()
                            dropped(lane)
                        }
                        // A group message may have queued replies (an admin confirming a join) or
                        // made pairings due; they go now rather than at the next command.
                        let followUps = await groupFollowUps(pool: pool) + flushAll(pool: pool)
                        if !followUps.isEmpty { onEvent(followUps) }
                    }
                    if replies.contains(where: { if case .end = $0 { true } else { false } }), connections[lane] != nil {
                        // Another watch, or a `read` taking waiting messages a batch at a time, took
                        // the subscription over, the queue was withdrawn, or the relay says so: never
                        // a reason to stop watching. Resubscribe with backoff if the queue is still
                        // wanted (a rescan drops it if it is not).
                        if endNoticed.insert(lane.queue).inserted {
                            onEvent([
                                ReadEvent(
                                    kind: .warning, contact: nil,
                                    text:
                                        "the relay at \(relayName(lane.address)) ended a subscription (another `belay read` may be running); resubscribing"
                                )
                            ])
                        }
                        dropped(lane, relayDown: false)
                        await connection.close()
                    }
                }
            }
        }
    }
}
