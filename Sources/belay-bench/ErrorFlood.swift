import BelayWire
import Foundation
import NIOCore

/// (e) One established connection sending full bundles of commands with an unknown opcode, as
/// fast as the relay answers them: at most `window` unanswered at once, topped up after every
/// read. Each costs the relay a decryption share, a decode failure, an ERR reply and its
/// encryption share, and, if it does not meter them, nothing else stops it. If the relay closes
/// the connection, the attacker connects again after a pause.
final class ErrorFlood: LoopedAttack {
    let name = "error_flood"
    /// Commands per bundle: a full one (`WireLimits.maxBundleEntries`).
    static let bundleEntries = WireLimits.maxBundleEntries
    /// Unanswered commands allowed: enough bundles in flight to keep the relay's loop busy.
    static let window = 64 * bundleEntries
    /// One connection at a time, reconnecting shortly after the relay closes it.
    static let workers = 1
    static let stepPause: TimeAmount = .milliseconds(100)
    static let warmUp: Duration = .seconds(1)

    let counters = Counters([
        "connections", "handshakes", "closed_by_relay", "commands_sent", "err_unknown_command", "err_rate",
        "other_replies",
    ])
    let crew: AttackCrew
    private let relayKey: [UInt8]

    init(crew: AttackCrew, relayKey: [UInt8]) {
        self.crew = crew
        self.relayKey = relayKey
    }

    func once(on loop: EventLoop) -> EventLoopFuture<Void> {
        let counters = self.counters
        let crew = self.crew
        let relayKey = self.relayKey
        return crew.connect(on: loop) { channel in
            channel.eventLoop.makeCompletedFuture {
                let flooder = Flooder(counters: counters, crew: crew)
                try channel.pipeline.syncOperations.addHandler(RawNoiseHandler(relayKey: relayKey, delegate: flooder))
            }
        }.flatMap { channel -> EventLoopFuture<Void> in
            counters.add("connections")
            return channel.closeFuture.limited(to: AttackCrew.holdLimit, "the flood connection").map { _ in
                if !crew.isStopped { counters.add("closed_by_relay") }
            }.recover { _ in }
        }.recover { _ in }
    }
}

/// Drives one error-flood connection; built in the channel initializer and confined to its event
/// loop. Counts locally and publishes after each read, so that millions of commands do not mean
/// millions of lock round trips.
private final class Flooder: RawNoiseDelegate {
    private let counters: Counters
    let crew: AttackCrew
    private var outstanding = 0
    private var sent = 0
    private var unknown = 0
    private var rate = 0
    private var other = 0

    init(counters: Counters, crew: AttackCrew) {
        self.counters = counters
        self.crew = crew
    }

    func established(_ connection: RawNoiseHandler) {
        counters.add("handshakes")
        topUp(connection)
        connection.flush()
    }

    func received(_ reply: RelayReply?, on connection: RawNoiseHandler) {
        outstanding -= 1
        switch reply {
        case .error(.unknownCommand): unknown += 1
        case .error(.rate): rate += 1
        default: other += 1
        }
    }

    /// The handler flushes what this queued as soon as it returns.
    func readComplete(_ connection: RawNoiseHandler) {
        topUp(connection)
        publish()
    }

    func closed(_ connection: RawNoiseHandler) { publish() }

    private func topUp(_ connection: RawNoiseHandler) {
        while !crew.isStopped, connection.isEstablished, outstanding + ErrorFlood.bundleEntries <= ErrorFlood.window {
            for _ in 0..<ErrorFlood.bundleEntries { connection.addUnknownCommand() }
            outstanding += ErrorFlood.bundleEntries
            sent += ErrorFlood.bundleEntries
        }
    }

    private func publish() {
        counters.add("commands_sent", sent)
        counters.add("err_unknown_command", unknown)
        counters.add("err_rate", rate)
        counters.add("other_replies", other)
        (sent, unknown, rate, other) = (0, 0, 0, 0)
    }
}
