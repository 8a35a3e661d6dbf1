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
    var configuration: RelayConfiguration

    init(_ c: RelayConfiguration) {
        handshakeTimeout = .nanoseconds(Int64(c.handshakeTimeoutSeconds * 1e9))
        idleTimeout = .nanoseconds(Int64(c.idleTimeoutSeconds * 1e9))
        rateLimitPerSecond = c.rateLimitPerSecond
        rateBurst = c.rateBurst
        maxProofsPerConnection = c.maxProofsPerConnection
        maxQueuesPerConnection = c.maxQueuesPerConnection
        maxTimersPerConnection = c.maxTimersPerConnection
        configuration = c
    }

    func acceptsToken(_ token: [UInt8]) -> Bool { configuration.acceptsCreationToken(token) }
}
