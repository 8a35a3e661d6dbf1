import BelaySodium
import BelayWire
import NIOCore

extension Agent {
    struct Settings: Sendable {
        var beforeFollowingSend: (@Sendable (Int) async -> Void)? = nil
        var beforeCommittingDeliveries: (@Sendable (Int) throws -> Void)? = nil
        var codeLimits: Argon2id.Limits = .moderate
        var fanOutParallelism = Agent.defaultFanOutParallelism
        var sendJitter = TimeAmount.zero
        var onNewRelay: (@Sendable (RelayAddress, RelayPolicy) -> Void)? = nil
        var random: any RandomSource = SystemRandom()
        var pause: @Sendable (TimeAmount) async -> Void = { delay in try? await Task.sleep(nanoseconds: UInt64(max(0, delay.nanoseconds))) }
        var connector: RelayConnector? = nil
    }

    /// How this agent opens relay connections: over TCP by `route` unless a test has given a
    /// connector of its own (a test seam, like those below; nil in the product).
    package var relayConnector: RelayConnector {
        get { settings.withLock { $0.connector } ?? .tcp(group: group, route: route) }
        set { settings.withLock { $0.connector = newValue } }
    }

    /// A random wait, up to this, between queueing a message and sending it (`belay send
    /// --jitter`), so that the moment a message leaves says less about the moment it was
    /// written. The message is in the outbox, durable, while it waits. At most
    /// `Timing.maxSendJitter`.
    public var sendJitter: TimeAmount {
        get { settings.withLock { $0.sendJitter } }
        set { settings.withLock { $0.sendJitter = min(max(newValue, .zero), Timing.maxSendJitter) } }
    }

    /// Called with a relay's policy the first time this person uses the relay (its policy key
    /// is then pinned): `belay invite` and `accept` print its summary.
    public var onNewRelay: (@Sendable (RelayAddress, RelayPolicy) -> Void)? {
        get { settings.withLock { $0.onNewRelay } }
        set { settings.withLock { $0.onNewRelay = newValue } }
    }

    /// The longest `sendJitter`.
    public static let maxSendJitter = Timing.maxSendJitter

    /// Test seams: where the agent draws its delays, and how it waits them out.
    var random: any RandomSource {
        get { settings.withLock { $0.random } }
        set { settings.withLock { $0.random = newValue } }
    }

    var pause: @Sendable (TimeAmount) async -> Void {
        get { settings.withLock { $0.pause } }
        set { settings.withLock { $0.pause = newValue } }
    }

    /// A test seam: awaited in `flush` before each send (window of sends, once the queue is
    /// proven secured) after the first, with its index, so a test can make the other side act
    /// between two sends. Nil in the product.
    var beforeFollowingSend: (@Sendable (Int) async -> Void)? {
        get { settings.withLock { $0.beforeFollowingSend } }
        set { settings.withLock { $0.beforeFollowingSend = newValue } }
    }

    /// A test seam: called inside the transaction that records a batch of deliveries (with its
    /// size), after everything is written and before the commit. Throwing stands in for a crash
    /// at that point: the transaction rolls back. Nil in the product.
    var beforeCommittingDeliveries: (@Sendable (Int) throws -> Void)? {
        get { settings.withLock { $0.beforeCommittingDeliveries } }
        set { settings.withLock { $0.beforeCommittingDeliveries = newValue } }
    }

    /// Argon2id work for check-in codes (`CodeSlots`): libsodium's MODERATE, as for the
    /// passphrase, since a code is short. Tests lower it.
    public var codeLimits: Argon2id.Limits {
        get { settings.withLock { $0.codeLimits } }
        set { settings.withLock { $0.codeLimits = newValue } }
    }

    /// Members' outboxes a group send flushes at once (`belay-bench` compares 1 with the default).
    @_spi(Bench) public var fanOutParallelism: Int {
        get { settings.withLock { $0.fanOutParallelism } }
        set { settings.withLock { $0.fanOutParallelism = newValue } }
    }
}
