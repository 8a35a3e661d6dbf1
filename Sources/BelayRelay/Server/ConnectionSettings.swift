import BelaySodium
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
    /// The policy INFO answers with, and the key that signs it for each session (docs/
    /// PROTOCOL.md §3.4); nil answers UNKNOWN_COMMAND.
    var policy: (document: [UInt8], signer: Ed25519.SigningKey)?
    var configuration: RelayConfiguration

    /// `policy` is the signed document; without one (tests of other things) INFO is unknown.
    init(
        _ c: RelayConfiguration, policy: (document: [UInt8], signer: Ed25519.SigningKey)? = nil,
        replays: HandshakeReplayCache = HandshakeReplayCache()
    ) {
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
