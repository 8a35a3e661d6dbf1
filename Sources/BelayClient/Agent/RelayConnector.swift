import BelayWire
import NIOCore

/// How an agent opens a relay connection: in the product over TCP by its `RelayRoute` (straight
/// to the relay, or through a SOCKS5 proxy). A test seam: tests give one that joins the client
/// to an in-process relay in memory (`RelayConnection.establish(over:)`).
package struct RelayConnector: Sendable {
    /// Opens a connection to `address` and completes the handshake; `onPushes` receives the
    /// pushes of one read together, as `RelayConnection.establish` gives them. Throws
    /// `RelayClientError` when the relay cannot be reached or refuses the handshake.
    package typealias Open =
        @Sendable (_ address: RelayAddress, _ onPushes: @escaping @Sendable ([RelayReply]) -> Void) async throws ->
        RelayConnection

    let open: Open

    package init(_ open: @escaping Open) {
        self.open = open
    }

    static func tcp(group: EventLoopGroup, route: RelayRoute) -> RelayConnector {
        RelayConnector { address, onPushes in
            try await RelayConnection.establish(to: address, group: group, route: route, onPushes: onPushes)
        }
    }
}
