import BelaySodium
import BelayWire
import Foundation
import Logging

/// Every tunable of the relay, with the defaults `make run` uses. `Config/belayd.yaml` documents
/// the same values; a test keeps the two in step.
public struct RelayConfiguration: Equatable, Sendable {
    public var listen = HostPort(host: "127.0.0.1", port: 7707)
    /// Host printed in the relay address; empty means the listen host.
    public var publicHost = ""
    /// Where to serve metrics (`GET /metrics`, Prometheus text); nil, the default, serves none.
    public var metricsListen: HostPort? = nil
    /// The embedded SQLite database in the state directory, or a PostgreSQL server.
    public var store = StoreLocation.sqlite
    public var messageTTLSeconds: UInt64 = 14 * 86_400
    public var maxQueueMessages = 1_000
    public var maxQueueBytes = 8 * 1024 * 1024
    public var maxQueues = 1_000_000
    public var maxTimers = 100_000
    public var maxConnections = 1_024
    /// Per source address (IPv4 /32, IPv6 /64). A quarter of the relay: a Tor exit or a
    /// university NAT carries many people, each holding one connection per queue.
    public var maxConnectionsPerSource = 256
    /// Connections that have not finished the handshake: relay-wide and per source.
    public var maxHandshaking = 256
    public var maxHandshakingPerSource = 32
    /// New connections (each one handshake) per second per source, and the burst allowed: a
    /// watcher with many contacts opens one connection per queue at once.
    public var handshakeRatePerSource = 20
    public var handshakeBurstPerSource = 100
    /// Queues (NEW) and timers (TSET) per minute per source, and the burst: a person creates a
    /// queue per invitation and a timer per check-in, so an address creating thousands is
    /// filling the relay's tables, not pairing.
    public var creationRatePerSource = 30
    public var creationBurstPerSource = 120
    /// Per connection: queues it may create (NEW) and timers it may deposit (TSET).
    public var maxQueuesPerConnection = 16
    public var maxTimersPerConnection = 64
    /// Timer bodies held for one queue at once: a check-in to that contact with its
    /// escalation tiers, and a re-arm in flight.
    public var maxTimerBodiesPerQueue = 8
    /// Bytes of message and timer bodies the relay holds in all; past it, SEND, NEW and TSET
    /// get STORE_FULL.
    public var maxStoreBytes = 4 << 30
    /// Once the relay holds half of `maxStoreBytes`, a queue may hold only this much, so that
    /// whoever fills it with queues of their own cannot stop everyone else's messages.
    public var pressureQueueBytes = 256 << 10
    /// Disk space set aside at start-up and given back when the disk fills, so that
    /// acknowledgements and deletions can still commit. 0 turns it off.
    public var diskReserveBytes = 64 << 20
    public var handshakeTimeoutSeconds: Double = 10
    public var idleTimeoutSeconds: Double = 300
    /// A random delay, up to this, before the relay pushes a message to its subscriber (0: off).
    public var deliveryJitterSeconds: Double = 0
    /// The largest `delivery_jitter`: beyond a minute it is a broken relay, not a shaped one.
    public static let maxDeliveryJitterSeconds: Double = 60
    public var rateLimitPerSecond = 5_000
    /// The most one connection can make the relay do at once: its event loop works through a
    /// burst before it turns to other connections, so a large burst is a stall for everyone on
    /// that loop (5,000 unknown commands took about 4 ms). Clients send a few commands at a
    /// time; the benchmark keeps 10 sends in flight.
    public var rateBurst = 256
    /// SENDs per second into one queue from all connections together, and the burst: what
    /// through Tor is still one thing when the addresses are many. A person sends a few a
    /// second at most; `make bench` sends about 1,600 a second to each of its 50 queues.
    public var sendRatePerQueue = 4_000
    public var sendBurstPerQueue = 8_000
    public var maxSubscriptionsPerConnection = 1_024
    public var maxProofsPerConnection = 4_096
    /// How often timers and expiry are checked; bounds how late a timer fires.
    public var sweepIntervalSeconds: Double = 1
    /// BLAKE2b-256 hashes of the configured queue-creation tokens; any makes NEW need a token.
    public var creationTokenHashes: [[UInt8]] = []
    /// NEW needs a token even with no `creation_tokens`: the members' tokens that `belayd token`
    /// keeps in the store.
    public var requireCreationToken = false
    /// Leading zero bits of proof of work a NEW or new TSET needs without a token (0: none;
    /// at most `WireLimits.maxWorkBits`). On a relay that requires tokens, NEW needs a token
    /// regardless and this applies to TSET only.
    public var creationWorkBits: UInt8 = 0
    public var logLevel: Logger.Level = .info

    public init() {}

    /// Whether NEW needs a token, configured or a member's: open creation otherwise.
    public var requiresCreationToken: Bool { requireCreationToken || !creationTokenHashes.isEmpty }

    /// The host to print in the address: the public host, else the listen host.
    public var advertisedHost: String { publicHost.isEmpty ? listen.host : publicHost }

    /// Whether `token` is one of the configured `creation_tokens`: constant time in the token,
    /// and every configured hash is compared.
    public func isConfiguredToken(_ token: [UInt8]) -> Bool {
        guard !creationTokenHashes.isEmpty, let hash = try? BLAKE2b.hash(token, outputLength: 32) else { return false }
        var ok = false
        for expected in creationTokenHashes where Sodium.constantTimeEquals(expected, hash) { ok = true }
        return ok
    }
}
