import BelaySodium

extension Agent {
    struct Settings: Sendable {
        var beforeFollowingSend: (@Sendable (Int) async -> Void)? = nil
        var beforeCommittingDeliveries: (@Sendable (Int) throws -> Void)? = nil
        var codeLimits: Argon2id.Limits = .moderate
        var fanOutParallelism = Agent.defaultFanOutParallelism
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
