import NIOCore
import NIOEmbedded

/// A connection between two channels in memory, in place of TCP: each is an
/// `NIOAsyncTestingChannel` with a `LinkEnd` first in its pipeline. Each side's loop runs what
/// other threads hand it (`execute`) at once, but runs scheduled tasks only when a test moves
/// its time (`advanceTime`): timeouts fire when the test says and never because the machine
/// was slow.
enum MemoryLink {
    /// The two channels of one connection, joined but not yet active.
    struct Pair: Sendable {
        let client: NIOAsyncTestingChannel
        let server: NIOAsyncTestingChannel
    }

    /// A client channel on `clientLoop` joined to a server channel on `serverLoop`. Neither is
    /// active yet: the caller builds the server's pipeline first, as a listening socket's child
    /// initializer does, then calls `activate`. `source` is the client's address as the server
    /// sees it (`remoteAddress`), `destination` the server's.
    static func pair(
        clientLoop: NIOAsyncTestingEventLoop, serverLoop: NIOAsyncTestingEventLoop, source: SocketAddress, destination: SocketAddress
    ) async throws -> Pair {
        let client = try await NIOAsyncTestingChannel(loop: clientLoop) { try $0.pipeline.syncOperations.addHandler(LinkEnd()) }
        let server = try await NIOAsyncTestingChannel(loop: serverLoop) { try $0.pipeline.syncOperations.addHandler(LinkEnd()) }
        let clientEnd = try await end(of: client)
        let serverEnd = try await end(of: server)
        try await clientLoop.submit { clientEnd.value.join(serverEnd) }.get()
        try await serverLoop.submit { serverEnd.value.join(clientEnd) }.get()
        client.localAddress = source
        client.remoteAddress = destination
        server.localAddress = destination
        server.remoteAddress = source
        return Pair(client: client, server: server)
    }

    /// Makes both channels active, the server's first, as the kernel completes a connection
    /// before the client hears of it. A server channel its owner has closed stays closed, and
    /// the client then reads the end of the stream at once, as after a refused connection.
    static func activate(_ pair: Pair) async throws {
        // Fails if the server has closed its channel (its pipeline is gone).
        try? await pair.server.connect(to: pair.server.remoteAddress!).get()
        try await pair.client.connect(to: pair.client.remoteAddress!).get()
    }

    private static func end(of channel: NIOAsyncTestingChannel) async throws -> NIOLoopBound<LinkEnd> {
        try await channel.testingEventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: LinkEnd.self), eventLoop: channel.eventLoop)
        }.get()
    }
}
