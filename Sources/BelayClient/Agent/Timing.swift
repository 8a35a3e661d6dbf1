import BelaySodium
import NIOCore

/// Random delays that keep a person's traffic from lining up in time (issue 12): a send that
/// waits a random moment before it leaves, and keep-alives that each connection sends at its
/// own random phase and interval, so that a person's connections (one per queue) do not PING in
/// lockstep, which would link them for whoever watches the relay's network.
enum Timing {
    /// The longest send jitter a person may ask for: beyond it, a message is late, not shaped.
    static let maxSendJitter = TimeAmount.minutes(10)

    /// A uniform draw from `0 ... bound`.
    static func uniform(upTo bound: TimeAmount, random: RandomSource) -> TimeAmount {
        .nanoseconds(Int64(random.uniform(upTo: UInt64(max(0, bound.nanoseconds)))))
    }

    /// The first keep-alive of a connection: anywhere in its first period.
    static func firstKeepAlive(period: TimeAmount, random: RandomSource) -> TimeAmount {
        uniform(upTo: period, random: random)
    }

    /// The wait before each later keep-alive: half a period to one and a half, so that two
    /// connections that happen to start together drift apart.
    static func nextKeepAlive(period: TimeAmount, random: RandomSource) -> TimeAmount {
        .nanoseconds(period.nanoseconds / 2) + uniform(upTo: period, random: random)
    }
}
