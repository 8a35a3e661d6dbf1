import BelayWire
import NIOCore

/// The per-connection slice of the configuration, in the units the handler uses.
struct ConnectionSettings: Sendable {
    var handshakeTimeout: TimeAmount
    var idleTimeout: TimeAmount
    var rateLimitPerSecond: Int
    var rateBurst: Int
    var maxProofsPerConnection: Int
    var maxQueuesPerConnection: Int
    var maxTimersPerConnection: Int
    /// Pushes wait a random time up to this before they are written; zero sends them at once.
    var deliveryJitter: TimeAmount
    /// Message 1s already answered, shared by every connection of the relay.
    var replays: HandshakeReplayCache
    /// The signed policy INFO answers with (docs/PROTOCOL.md §3.4).
    var policy: RelayReply
    var configuration: RelayConfiguration

    /// `policy` is the signed document; without one (tests of other things) INFO is unknown.
    init(_ c: RelayConfiguration, policy: RelayReply = .error(.unknownCommand), replays: HandshakeReplayCache = HandshakeReplayCache()) {
        self.policy = policy
        self.replays = replays
        handshakeTimeout = .nanoseconds(Int64(c.handshakeTimeoutSeconds * 1e9))
        idleTimeout = .nanoseconds(Int64(c.idleTimeoutSeconds * 1e9))
        rateLimitPerSecond = c.rateLimitPerSecond
        rateBurst = c.rateBurst
        maxProofsPerConnection = c.maxProofsPerConnection
        maxQueuesPerConnection = c.maxQueuesPerConnection
        maxTimersPerConnection = c.maxTimersPerConnection
        deliveryJitter = .nanoseconds(Int64(c.deliveryJitterSeconds * 1e9))
        configuration = c
    }
}
