import BelayE2E
import BelayWire
import Foundation
import NIOCore

extension Agent {
    /// How often `watch` pings each relay, well inside the relay's idle timeout.
    public static let watchKeepAlive: TimeAmount = .seconds(60)
    /// How often `watch` looks in the local store for contacts and invitations added by another
    /// `belay` process (an `invite` or `accept` in a second terminal) and subscribes to them.
    public static let watchRescan: TimeAmount = .seconds(10)

    private enum WatchEvent {
        case reply(RelayPool.Lane, RelayReply?)
        case rescan
    }

    /// Subscribes to every inbox (or one contact's) and hands events to `onEvent` as messages
    /// arrive, until the task is cancelled or a relay connection is lost (which throws). Every
    /// `rescanEvery` it also subscribes to inboxes that appeared in the store since it started.
    public func watch(from name: String? = nil, rescanEvery: TimeAmount = Agent.watchRescan,
                      onEvent: @escaping @Sendable ([ReadEvent]) -> Void) async throws {
        let (stream, continuation) = AsyncStream<WatchEvent>.makeStream()
        let pool = RelayPool(group: group) { lane, reply in continuation.yield(.reply(lane, reply)) }
        defer { Task { [pool] in await pool.closeAll() } }
        let early = await flushAll(pool: pool)
        if !early.isEmpty { onEvent(early) }
        if let name, try read({ db in try store.contacts(db) }).first(where: { $0.record.name.lowercased() == name.lowercased() }) == nil {
            throw ClientError.unknownContact(name)
        }
        var connections: [RelayPool.Lane: RelayConnection] = [:]
        var subscribed: Set<EntityID> = []

        /// Subscribes to every wanted inbox not yet subscribed. At start a failure ends the watch;
        /// on a rescan the inbox is left for the next one.
        func subscribeNew(failFast: Bool) async throws {
            let (contacts, invitations) = try read { db in (try store.contacts(db), try store.invitations(db)) }
            var inboxes = contacts.filter { name == nil || $0.record.name.lowercased() == name!.lowercased() }.map(\.record.inbox)
            if name == nil { inboxes += invitations.map(\.record.inbox) }
            for inbox in inboxes {
                let keys = try InboxKeys(inbox)
                guard !subscribed.contains(keys.recipientId) else { continue }
                let connection: RelayConnection
                do {
                    connection = try await pool.connection(inbox.relay, lane: keys.recipientId)
                    do {
                        try await pool.authorise(.recipient, keys.recipientId, key: keys.key, on: connection)
                        try await connection.subscribe(keys.recipientId)
                    } catch let error as RelayClientError {
                        throw Self.relayError(error, connection.address)
                    }
                } catch {
                    if failFast { throw error }
                    continue
                }
                subscribed.insert(keys.recipientId)
                let lane = RelayPool.Lane(address: connection.address, queue: keys.recipientId.bytes)
                if connections[lane] == nil {
                    connections[lane] = connection
                    connection.channel.closeFuture.whenComplete { _ in continuation.yield(.reply(lane, nil)) }
                    _ = connection.channel.eventLoop.scheduleRepeatedTask(initialDelay: Self.watchKeepAlive, delay: Self.watchKeepAlive) { task in
                        guard connection.channel.isActive else { return task.cancel() }
                        _ = connection.request(.ping)
                    }
                }
            }
        }

        try await subscribeNew(failFast: true)
        let rescan = group.next().scheduleRepeatedTask(initialDelay: rescanEvery, delay: rescanEvery) { _ in
            continuation.yield(.rescan)
        }
        defer { rescan.cancel() }
        for await event in stream {
            switch event {
            case .rescan:
                try await subscribeNew(failFast: false)
            case let .reply(lane, reply):
                guard let connection = connections[lane] else { continue }
                let address = lane.address
                switch reply {
                case nil:
                    throw ClientError.relayUnreachable(relay: "\(address.host):\(address.port)", why: "the connection closed", queued: 0)
                case let .message(delivery)?:
                    guard delivery.recipient.bytes == lane.queue else {
                        onEvent([Self.wrongQueueEvent])
                        continue
                    }
                    let events = try await process(delivery, connection: connection)
                    do { try await connection.acknowledge(delivery.recipient, seq: delivery.seq) } catch let error as RelayClientError {
                        throw Self.relayError(error, address)
                    }
                    if !events.isEmpty { onEvent(events) }
                case .end?:
                    throw ClientError.invalidInput("another `belay read --watch` took over this subscription; this one stops")
                default:
                    continue
                }
            }
        }
    }
}
