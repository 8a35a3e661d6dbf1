import BelaySodium

/// A request for support to a roster (docs/PROTOCOL.md §8.6). The requester sends it at once to
/// the members on duty (tier 0) and deposits the later tiers as timed releases at the relays of
/// the members they go to, so it escalates with the requester's device gone. Every copy carries
/// the claim lock: a timer whose first cancellation wins the claim, and the timers of the later
/// tiers, which the winner cancels.
public struct RosterRequest: Sendable, Equatable {
    public typealias Cancel = CheckinNotice.Cancel
    public static let idLength = 16
    /// Every member twice (the everyone tier and the coordinator) is the most timers a request
    /// deposits.
    public static let maxCancels = 2 * GroupState.maxMembers
    /// Tiers: members on duty, then everyone, then the coordinator.
    public static let maxTier: UInt8 = 2
    /// Longest claim window: a request is for now, not next month.
    public static let maxWindow: UInt32 = 7 * 24 * 3600
    /// Latest request time accepted (Unix seconds, about the year 36,800): bounds the arithmetic
    /// on the schedule so that no value from the network can overflow it.
    public static let maxTime: UInt64 = 1 << 40

    public var group: [UInt8]
    public var id: [UInt8]
    public var text: String
    /// Which tier this copy went out in.
    public var tier: UInt8
    /// Seconds each tier has to be claimed before the next is released.
    public var window: UInt32
    /// When it was asked, Unix seconds on the requester's clock.
    public var requestedAt: UInt64
    /// How many tiers it has (for the others' view of when it escalates).
    public var tiers: UInt8
    /// Whether everyone is told who claimed it, or only that it was claimed.
    public var nameClaimer: Bool
    public var lock: Cancel
    public var cancels: [Cancel]

    public init(
        group: [UInt8], id: [UInt8], text: String, tier: UInt8, window: UInt32, requestedAt: UInt64, tiers: UInt8,
        nameClaimer: Bool, lock: Cancel, cancels: [Cancel]
    ) {
        (self.group, self.id, self.text, self.tier, self.window, self.requestedAt, self.tiers, self.nameClaimer, self.lock, self.cancels) =
            (group, id, text, tier, window, requestedAt, tiers, nameClaimer, lock, cancels)
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.put(group)
        w.put(id)
        w.bytes16(Array(text.utf8))
        w.u8(tier)
        w.u32(window)
        w.u64(requestedAt)
        w.u8(tiers)
        w.u8(nameClaimer ? 1 : 0)
        Self.write(lock, &w)
        w.u16(UInt16(cancels.count))
        for c in cancels { Self.write(c, &w) }
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        group = try r.take(GroupState.idLength, "group id")
        id = try r.take(Self.idLength, "request id")
        text = try GroupMessage.text(&r, "request text", GroupMessage.maxRequestLength)
        tier = try r.u8("request tier")
        window = try r.u32("request window")
        requestedAt = try r.u64("request time")
        tiers = try r.u8("request tiers")
        let name = try r.u8("request naming")
        guard tier <= Self.maxTier, tiers <= Self.maxTier + 1, name <= 1, window <= Self.maxWindow, requestedAt <= Self.maxTime else {
            throw E2EError.malformed("request")
        }
        nameClaimer = name == 1
        lock = try Self.read(&r)
        let count = Int(try r.u16("request cancels"))
        guard count <= Self.maxCancels else { throw E2EError.malformed("request cancels") }
        cancels = try (0..<count).map { _ in try Self.read(&r) }
        try r.expectEnd("request")
    }

    static func write(_ c: Cancel, _ w: inout ByteWriter) {
        w.bytes16(Array(c.relay.utf8))
        w.bytes16(c.timerId)
        w.bytes16(c.timerSeed)
    }

    static func read(_ r: inout ByteReader) throws -> Cancel {
        let relay = try GroupMessage.text(&r, "timer relay", CheckinNotice.maxRelayLength)
        let id = try r.bytes16("timer id", maximum: 16)
        let seed = try r.bytes16("timer key", maximum: 32)
        guard id.count == 16, seed.count == 32 else { throw E2EError.malformed("timer") }
        return Cancel(relay: relay, timerId: id, timerSeed: seed)
    }
}
