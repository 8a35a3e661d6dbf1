import BelayWire
import Foundation
import NIOCore

/// Reading one inbox a relay batch at a time. A GET takes one message per round trip and the
/// next only after the last is acknowledged, so recording before acknowledging meant one
/// transaction per message. A subscription has the relay push up to
/// `WireLimits.subscriptionWindow` messages at once: they are recorded in one transaction
/// (`process`), and only then acknowledged, together.
///
/// A GET after each step says whether anything is left. The connection hands over the pushes
/// of a read from the socket before the replies of that read, and the relay pushes in the same
/// answer as the command that made room, so when the GET's answer is seen the window it implies
/// has normally arrived. If it has not (a window larger than one transport message, or a relay
/// whose pushes and store disagree), the message the GET returned is recorded on its own: no
/// step waits for a push that may never come.
extension Agent {
    /// Records and acknowledges every message waiting in the inbox `keys` on `connection`,
    /// whose pushes arrive in `pushes`, adding what to show to `events` batch by batch (so a
    /// failure keeps what was recorded before it). Stops early, after acknowledging what it
    /// recorded, if another reader takes the subscription over (END) or the relay delivers
    /// another queue's message.
    func drain(_ keys: InboxKeys, on connection: RelayConnection, pushes: PushedReplies, into events: inout [ReadEvent]) async throws {
        let queue = keys.recipientId
        // An empty queue, the usual case, costs one GET and leaves alone the subscription of a
        // `read --watch` running beside this command.
        guard try await connection.getMessage(queue) != nil else { return }
        let lane = RelayPool.Lane(address: connection.address, queue: queue.bytes)
        var head = try Self.oldest(try await connection.pipeline([.subscribe(recipient: queue), .get(recipient: queue)]))
        while let oldest = head {
            var deliveries: [RelayReply.Delivery] = []
            var (foreign, ended) = (false, false)
            for reply in pushes.take(lane) where !foreign && !ended {
                switch reply {
                case let .message(delivery) where delivery.recipient == queue: deliveries.append(delivery)
                case .message: foreign = true
                // Another reader (a `read --watch`) subscribed: the rest is theirs.
                case .end: ended = true
                default: continue
                }
            }
            if deliveries.isEmpty, !foreign, !ended {
                if oldest.recipient == queue { deliveries = [oldest] } else { foreign = true }
            }
            // A relay that delivers another queue's message is not followed further.
            if foreign { events.append(Self.wrongQueueEvent) }
            let stop = foreign || ended
            events += try await process(deliveries, connection: connection)
            let acks = deliveries.map { RelayCommand.ack(recipient: queue, seq: $0.seq) }
            let answers = try await connection.pipeline(acks + (stop ? [] : [.get(recipient: queue)]))
            try Self.checkAcknowledged(answers.prefix(acks.count))
            head = stop ? nil : try Self.oldest(answers)
        }
    }

    /// Throws unless every reply is the OK of an ACK. NO_MSG means another reader acknowledged
    /// it first: it is gone, which is what the ACK asked for.
    static func checkAcknowledged(_ replies: some Collection<RelayReply>) throws {
        for reply in replies {
            switch reply {
            case .ok, .error(.noMessage): continue
            case let .error(code): throw RelayClientError.relay(code)
            default: throw RelayClientError.unexpectedReply("\(reply)")
            }
        }
    }

    /// The message the GET that ends `replies` found, if any; an ERR anywhere throws.
    private static func oldest(_ replies: [RelayReply]) throws -> RelayReply.Delivery? {
        for case let .error(code) in replies.dropLast() where code != .noMessage { throw RelayClientError.relay(code) }
        switch replies.last {
        case let .message(delivery)?: return delivery
        case .noMessage?: return nil
        case let .error(code)?: throw RelayClientError.relay(code)
        case let other: throw RelayClientError.unexpectedReply("\(String(describing: other))")
        }
    }
}
