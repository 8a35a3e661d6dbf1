import BelaySodium
import Logging
import NIOCore

/// Turns an admitted channel into a relay connection: the one place its pipeline is built,
/// whether the channel came from the listening socket or was handed to `RelayServer.serve`.
struct ConnectionInitializer: Sendable {
    let core: RelayCore
    let settings: ConnectionSettings
    let relayKey: X25519.KeyPair
    let connections: ConnectionRegistry
    /// A test seam: a harness may add a handler that watches the raw bytes (throwing refuses
    /// the connection).
    let observe: (@Sendable (Channel) throws -> Void)?
    let logger: Logger

    /// Runs on the channel's event loop, before the channel is active. A channel the registry
    /// did not admit is closed; a failed future leaves the closing to the caller.
    func initialize(_ channel: Channel) -> EventLoopFuture<Void> {
        guard let id = connections.claim(channel) else { return channel.close() }
        return channel.eventLoop.makeCompletedFuture {
            try observe?(channel)
            try channel.pipeline.syncOperations.addHandler(
                ConnectionHandler(
                    core: core, settings: settings, relayStatic: relayKey, eventLoop: channel.eventLoop,
                    logger: logger, onEstablished: { [connections] in connections.established(id) },
                    mayCreate: { [connections, source = SourceKey(channel.remoteAddress)] in connections.takeCreation(source) }))
        }
    }
}
