import BelayWire
import CoreMetrics

/// The relay's metrics (docs/OPERATIONS.md, "Metrics"): aggregate counts, gauges and histograms
/// only. No metric has a queue id, a timer id, a key or an address among its labels; the only
/// label is an error code's name. Through swift-metrics, so any backend can take them; belayd
/// serves them in Prometheus's format when `metrics_listen` is set.
public final class RelayMetrics: Sendable {
    let messagesIn: Counter
    let messagesOut: Counter
    let acknowledgements: Counter
    let timersSet: Counter
    let timersFired: Counter
    let connectionsAccepted: Counter
    let connectionsOpen: Meter
    let queues: Meter
    let timers: Meter
    let errors: [RelayErrorCode: Counter]
    let batchSeconds: Timer
    let batchSize: Recorder
    /// False for `disabled`: the core then skips counting altogether.
    let enabled: Bool

    public convenience init(factory: MetricsFactory) { self.init(factory: factory, enabled: true) }

    init(factory: MetricsFactory, enabled: Bool) {
        self.enabled = enabled
        messagesIn = Counter(label: "belay_messages_in_total", factory: factory)
        messagesOut = Counter(label: "belay_messages_out_total", factory: factory)
        acknowledgements = Counter(label: "belay_acknowledgements_total", factory: factory)
        timersSet = Counter(label: "belay_timers_set_total", factory: factory)
        timersFired = Counter(label: "belay_timers_fired_total", factory: factory)
        connectionsAccepted = Counter(label: "belay_connections_accepted_total", factory: factory)
        connectionsOpen = Meter(label: "belay_connections_open", factory: factory)
        queues = Meter(label: "belay_queues", factory: factory)
        timers = Meter(label: "belay_timers", factory: factory)
        errors = Dictionary(
            uniqueKeysWithValues: RelayErrorCode.allCases.map { code in
                (code, Counter(label: "belay_errors_total", dimensions: [("code", code.name)], factory: factory))
            })
        batchSeconds = Timer(label: "belay_batch_seconds", factory: factory)
        batchSize = Recorder(label: "belay_batch_commands", factory: factory)
    }

    /// Records nothing: for relays run without metrics, and for tests.
    public static let disabled = RelayMetrics(factory: NOOPMetricsHandler.instance, enabled: false)

    /// What one committed batch did.
    struct Batch {
        var commands = 0
        var nanoseconds: Int64 = 0
        var messagesIn = 0
        var messagesOut = 0
        var acknowledgements = 0
        var timersSet = 0
        var timersFired = 0
        /// Error replies, indexed by code.
        var errors = [Int](repeating: 0, count: 16)
    }

    func record(_ b: Batch, queues: Int, timers: Int) {
        if b.messagesIn > 0 { messagesIn.increment(by: b.messagesIn) }
        if b.messagesOut > 0 { messagesOut.increment(by: b.messagesOut) }
        if b.acknowledgements > 0 { acknowledgements.increment(by: b.acknowledgements) }
        if b.timersSet > 0 { timersSet.increment(by: b.timersSet) }
        if b.timersFired > 0 { timersFired.increment(by: b.timersFired) }
        for (raw, n) in b.errors.enumerated() where n > 0 {
            if let code = RelayErrorCode(rawValue: UInt16(raw)) { errors[code]?.increment(by: n) }
        }
        self.queues.set(queues)
        self.timers.set(timers)
        if b.commands > 0 {
            batchSeconds.recordNanoseconds(b.nanoseconds)
            batchSize.record(b.commands)
        }
    }
}
