import BelayE2E
import BelayWire
import Foundation
import NIOCore

extension Agent {
    /// How often `watch` pings each relay, well inside the relay's idle timeout.
    public static let watchKeepAlive: TimeAmount = .seconds(60)

    /// Subscribes to every inbox (or one contact's) and hands events to `onEvent` as messages
    /// arrive, until the task is cancelled or a relay connection is lost (which throws).
    public func watch(from name: String? = nil, onEvent: @escaping @Sendable ([ReadEvent]) -> Void) async throws {
        let (stream, continuation) = AsyncStream<(RelayPool.Lane, RelayReply?)>.makeStream()
        let pool = RelayPool(group: group) { lane, reply in continuation.yield((lane, reply)) }
        let early = await flushAll(pool: pool)
        if !early.isEmpty { onEvent(early) }
        let (contacts, invitations) = try read { db in (try store.contacts(db), try store.invitations(db)) }
        if let name, !contacts.contains(where: { $0.record.name.lowercased() == name.lowercased() }) { throw ClientError.unknownContact(name) }
        var inboxes = contacts.filter { name == nil || $0.record.name.lowercased() == name!.lowercased() }.map(\.record.inbox)
        if name == nil { inboxes += invitations.map(\.record.inbox) }
        var connections: [RelayPool.Lane: RelayConnection] = [:]
        for inbox in inboxes {
            let keys = try InboxKeys(inbox)
            let connection = try await pool.connection(inbox.relay, lane: keys.recipientId)
            do {
                try await pool.authorise(.recipient, keys.recipientId, key: keys.key, on: connection)
                try await connection.subscribe(keys.recipientId)
            } catch let error as RelayClientError {
                throw Self.relayError(error, connection.address)
            }
            let lane = RelayPool.Lane(address: connection.address, queue: keys.recipientId.bytes)
            if connections[lane] == nil {
                connections[lane] = connection
                connection.channel.closeFuture.whenComplete { _ in continuation.yield((lane, nil)) }
                _ = connection.channel.eventLoop.scheduleRepeatedTask(initialDelay: Self.watchKeepAlive, delay: Self.watchKeepAlive) { task in
                    guard connection.channel.isActive else { return task.cancel() }
                    _ = connection.request(.ping)
                }
            }
        }
        defer { Task { [pool] in await pool.closeAll() } }
        for await (lane, reply) in stream {
            guard let connection = connections[lane] else { continue }
            let address = lane.address
            switch reply {
            case nil:
                throw ClientError.relayUnreachable(relay: "\(address.host):\(address.port)", why: "the connection closed", queued: 0)
            case let .message(delivery)?:
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
