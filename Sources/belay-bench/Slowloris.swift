import BelayWire
import Foundation
import NIOCore

/// (b) Holds as many connections as the relay admits: its limit plus a margin, to be sure of
/// reaching it. Even slots complete the handshake and PING now and then; odd slots stop part-way
/// through message 1 and wait. A slot whose connection the relay drops (refused at the limit, or
/// closed by the handshake timeout) connects again after a short pause, as a real attacker would,
/// so the relay stays full for the whole measurement.
final class Slowloris: Attack {
    let name = "slowloris"
    /// Connections beyond the relay's limit, so that the limit is reached whatever else is open.
    static let margin = 200
    /// Often enough to keep an established connection clear of any idle timeout.
    static let keepAlive: TimeAmount = .seconds(3)
    /// The preamble and the first bytes of the 50-byte handshake frame: a handshake "in progress".
    static let partialOpeningBytes = 20
    static let slotPause: TimeAmount = .milliseconds(200)
    /// A connection closed sooner than this after connecting was refused at the limit.
    static let refusalWindowNanos: UInt64 = 1_000_000_000
    static let rampUpLimit: Duration = .seconds(20)

    let counters = Counters([
        "slots", "connections", "refused", "dropped_later", "handshakes", "connect_errors",
        "held_after_ramp_up", "held_at_end",
    ])
    private let crew: AttackCrew
    private let relayKey: [UInt8]
    private let partialOpening: ByteBuffer
    private let slots: Int

    init(crew: AttackCrew, relayKey: [UInt8], opening: [UInt8], relayLimit: Int) {
        self.crew = crew
        self.relayKey = relayKey
        partialOpening = ByteBuffer(bytes: opening.prefix(Self.partialOpeningBytes))
        slots = relayLimit + Self.margin
    }

    func start() async {
        counters.set("slots", slots)
        crew.launch(slots, pause: Self.slotPause) { [self] slot, loop in holdOne(completing: slot % 2 == 0, on: loop) }
        // Full strength: every slot has tried once, and the refusals have come back.
        let deadline = ContinuousClock.now + Self.rampUpLimit
        while ContinuousClock.now < deadline, counters["connections"] + counters["connect_errors"] < slots {
            try? await Task.sleep(for: .milliseconds(100))
        }
        try? await Task.sleep(for: .nanoseconds(Int64(Self.refusalWindowNanos)))
        counters.set("held_after_ramp_up", crew.openCount)
    }

    func stop() async {
        counters.set("held_at_end", crew.openCount)
        await crew.shutDown()
    }

    /// One connection of one slot, from connect until the relay (or `stop`) closes it.
    private func holdOne(completing: Bool, on loop: EventLoop) -> EventLoopFuture<Void> {
        let counters = self.counters
        let relayKey = self.relayKey
        let crew = self.crew
        let connected = crew.connect(on: loop) { channel in
            guard completing else { return channel.eventLoop.makeSucceededVoidFuture() }
            return channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(RawNoiseHandler(relayKey: relayKey, delegate: KeepAlive(counters: counters)))
            }
        }
        let partial = partialOpening
        return connected.flatMap { channel -> EventLoopFuture<Void> in
            counters.add("connections")
            let opened = monotonicNanos()
            if !completing { channel.writeAndFlush(partial, promise: nil) }
            return channel.closeFuture.limited(to: AttackCrew.holdLimit, "holding a connection")
                .map { _ in
                    // Once stopped, the attacker is the one closing.
                    guard !crew.isStopped else { return }
                    counters.add(monotonicNanos() - opened < Self.refusalWindowNanos ? "refused" : "dropped_later")
                }
                .recover { _ in }
        }.recover { _ in counters.add("connect_errors") }
    }
}

/// Keeps one established slowloris connection alive with a PING every `Slowloris.keepAlive`.
/// Built in the channel initializer and confined to the connection's event loop.
private final class KeepAlive: RawNoiseDelegate {
    private let counters: Counters
    private var timer: Scheduled<Void>?

    init(counters: Counters) {
        self.counters = counters
    }

    func established(_ connection: RawNoiseHandler) {
        counters.add("handshakes")
        schedulePing(connection)
    }

    private func schedulePing(_ connection: RawNoiseHandler) {
        timer = connection.eventLoop?.assumeIsolated().scheduleTask(in: Slowloris.keepAlive) { [weak self, weak connection] in
            guard let self, let connection else { return }
            connection.add(.ping)
            connection.flush()
            self.schedulePing(connection)
        }
    }

    func received(_ reply: RelayReply?, on connection: RawNoiseHandler) {}

    func readComplete(_ connection: RawNoiseHandler) {}

    func closed(_ connection: RawNoiseHandler) {
        timer?.cancel()
        timer = nil
    }
}
