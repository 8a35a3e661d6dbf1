import BelayClient
import BelayWire
import Synchronization

/// The harness relays of this test process that clients reach in memory, by address: what
/// the kernel's table of listening sockets is to TCP. A relay is here from `start` to `stop`;
/// connecting to one that is not fails as a refused TCP connection does. Keyed by the whole
/// address, key included, so a port the kernel hands to another test's relay is never mistaken
/// for a stopped one's.
enum MemoryNetwork {
    private static let relays = Mutex<[RelayAddress: RelayHarness]>([:])

    static func register(_ relay: RelayHarness) {
        relays.withLock { $0[relay.address] = relay }
    }

    static func unregister(_ relay: RelayHarness) {
        relays.withLock { r in
            if r[relay.address] === relay { r[relay.address] = nil }
        }
    }

    /// The connector agents use in tests: every harness relay over its in-memory link.
    static let connector = RelayConnector { address, onPushes in
        guard let relay = relays.withLock({ $0[address] }) else {
            throw RelayClientError.cannotConnect("nothing is listening at that address (is the relay running?)")
        }
        return try await relay.linkConnection(onPushes: onPushes)
    }
}

extension Agent {
    /// Reaches relays as `transport` says: in memory (`MemoryNetwork`) or over TCP.
    func reachRelays(by transport: RelayHarness.Transport) {
        if transport == .link { relayConnector = MemoryNetwork.connector }
    }
}
