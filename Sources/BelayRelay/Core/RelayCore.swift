import BelaySodium
import BelayWire
import Dispatch
import Foundation
import Logging
import NIOCore
import Synchronization

/// The relay's core loop: one dedicated thread owns the `QueueEngine` (and through it the
/// store). Connections submit requests from their event loops; the thread takes everything
/// waiting, runs it as one batch in one transaction, and only once that has committed hands
/// the replies out (group commit), one hop per event loop. One thread means no locks around
/// queue state and a total order of commands.
public final class RelayCore: Sendable {
    /// What submitters and the core thread share.
    private struct Inbox {
        /// Requests apart from the other jobs: a batch takes the requests' array whole instead
        /// of copying each request out of a mixed list.
        var queue = BatchQueue<CoreRequest, Job>()
        var phase = Phase.running
        /// Whether the core thread is about to wait (a submitter then signals `wake`).
        var waiting = false
    }

    /// The core's life, in order. Each phase carries what it needs.
    private enum Phase {
        case running
        /// Shutdown asked: answer what is queued, then stop; `done` resumes the caller.
        case stopping(done: [CheckedContinuation<Void, Never>])
        case stopped
    }

    /// What else the core thread does between batches. A batch takes these only with every
    /// request that came before them.
    enum Job {
        case sweep(@Sendable () -> Void)
        case barrier(@Sendable () -> Void)
        /// Runs on the core thread between batches (tests compare memory with the store).
        case inspect(@Sendable (QueueEngine) -> Void)
    }

    private let inbox = Mutex(Inbox())
    private let wake = DispatchSemaphore(value: 0)
    /// The engine, owned by the core thread once it runs (the lock is taken once, for the
    /// thread's whole life; before `start` only `init` touches it).
    private let engine: Mutex<QueueEngine>
    private let sweepInterval: Double?
    /// Queues in the store when the core started.
    public let queuesAtStart: Int

    /// `sweepInterval: nil` turns off automatic sweeps; tests then call `sweep()` themselves.
    public init(
        store: any QueueStore, limits: CoreLimits, clock: RelayClock, random: RandomSource = SystemRandom(),
        sweepInterval: Double?, logger: Logger, metrics: RelayMetrics = .disabled
    ) throws {
        let engine = try QueueEngine(store: store, limits: limits, clock: clock, random: random, logger: logger, metrics: metrics)
        queuesAtStart = engine.queuesAtStart
        self.engine = Mutex(engine)
        self.sweepInterval = sweepInterval
        // Another frontend changed the shared store: an empty batch takes the changes in.
        store.onChange { [weak self] in _ = self?.enqueue(.barrier {}) }
    }

    public func start() {
        let thread = Thread { [self] in engine.withLock { run($0) } }
        thread.name = "belayd-core"
        thread.start()
    }

    /// Hands a request to the core. After shutdown has begun, answers UNAVAILABLE at once.
    public func submit(_ request: CoreRequest) {
        let signal: Bool? = inbox.withLock { s in
            guard case .running = s.phase else { return nil }
            s.queue.append(request: request)
            defer { s.waiting = false }
            return s.waiting
        }
        guard let signal else {
            if case .disconnect = request.command { return }
            request.sink.hopAndReceive([.reply(requestId: request.requestId, .error(.unavailable))])
            return
        }
        if signal { wake.signal() }
    }

    /// Fires due timers and expires old messages now, returning once the results are handed out.
    public func sweep() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            if !enqueue(.sweep { c.resume() }) { c.resume() }
        }
    }

    /// Returns once everything submitted before it has been committed and handed out.
    public func barrier() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            if !enqueue(.barrier { c.resume() }) { c.resume() }
        }
    }

    /// Runs `body` on the core thread between batches and returns its result; nil once the
    /// core has stopped.
    func inspect<T: Sendable>(_ body: @escaping @Sendable (QueueEngine) -> T) async -> T? {
        await withCheckedContinuation { (c: CheckedContinuation<T?, Never>) in
            if !enqueue(.inspect { engine in c.resume(returning: body(engine)) }) { c.resume(returning: nil) }
        }
    }

    /// Whether the job was taken (false once shutdown has begun).
    private func enqueue(_ job: Job) -> Bool {
        let signal: Bool? = inbox.withLock { s in
            guard case .running = s.phase else { return nil }
            s.queue.append(job: job)
            defer { s.waiting = false }
            return s.waiting
        }
        guard let signal else { return false }
        if signal { wake.signal() }
        return true
    }

    /// Stops taking requests, commits and answers everything already submitted, checkpoints the
    /// WAL and returns. Safe to call more than once.
    public func shutdown() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let signal: Bool? = inbox.withLock { s in
                switch s.phase {
                case .stopped: return nil
                case let .stopping(done): s.phase = .stopping(done: done + [c])
                case .running: s.phase = .stopping(done: [c])
                }
                defer { s.waiting = false }
                return s.waiting
            }
            guard let signal else { return c.resume() }
            if signal { wake.signal() }
        }
    }

    // MARK: The core thread

    private func run(_ engine: QueueEngine) {
        var nextSweep = sweepInterval.map { _ in DispatchTime.now() }  // sweep at once: timers due while we were down
        var batch = BatchQueue<CoreRequest, Job>.Batch()
        while true {
            batch.empty()
            let finishing = take(until: nextSweep, into: &batch)
            let requests = batch.requests
            var completions: [() -> Void] = []
            var sweepNow = nextSweep.map { DispatchTime.now() >= $0 } ?? false
            for job in batch.jobs {
                switch job {
                case let .sweep(done):
                    sweepNow = true
                    completions.append(done)
                case let .barrier(done): completions.append(done)
                case let .inspect(look): completions.append { look(engine) }
                }
            }
            let (outcomes, more) = engine.runBatch(requests, sweep: sweepNow)
            Self.handOut(outcomes)
            if sweepNow, let interval = sweepInterval {
                nextSweep = more ? DispatchTime.now() : DispatchTime.now() + interval
            }
            if sweepNow { engine.checkpointIfNeeded() }
            for done in completions { done() }
            if finishing { break }
        }
        engine.checkpointIfNeeded()
        let (late, waiting): (BatchQueue<CoreRequest, Job>.Batch, [CheckedContinuation<Void, Never>]) = inbox.withLock { s in
            let late = s.queue.drain()
            guard case let .stopping(done) = s.phase else { return (late, []) }
            s.phase = .stopped
            return (late, done)
        }
        // Nothing can race in after `.stopping`; this is for completeness.
        for r in late.requests {
            if case .disconnect = r.command { continue }
            r.sink.hopAndReceive([.reply(requestId: r.requestId, .error(.unavailable))])
        }
        for job in late.jobs {
            switch job {
            case let .sweep(done), let .barrier(done): done()
            case .inspect: break
            }
        }
        for c in waiting { c.resume() }
    }

    /// Waits until there is work, shutdown is asked, or the next sweep is due; takes at most
    /// one batch. `finishing` when shutdown was asked and nothing is left after this batch.
    private func take(until deadline: DispatchTime?, into batch: inout BatchQueue<CoreRequest, Job>.Batch) -> Bool {
        while true {
            let finishing: Bool? = inbox.withLock { s in
                let stopping: Bool
                if case .running = s.phase { stopping = false } else { stopping = true }
                if s.queue.isEmpty && !stopping {
                    s.waiting = true
                    return nil
                }
                s.queue.take(max: CoreTuning.maxBatch, into: &batch)
                return stopping && s.queue.isEmpty
            }
            if let finishing { return finishing }
            if let deadline {
                if wake.wait(timeout: deadline) == .timedOut {
                    inbox.withLock { $0.waiting = false }
                    return false
                }
            } else {
                wake.wait()
            }
        }
    }

    /// One hop per event loop: waking a loop costs a system call and a context switch, and a
    /// batch typically carries outcomes for every connection.
    private static func handOut(_ outcomes: QueueEngine.Outcomes) {
        var byLoop: [ObjectIdentifier: (loop: EventLoop, work: [(CoreSink, [CoreOutcome])])] = [:]
        for (_, entry) in outcomes {
            let loop = entry.sink.eventLoop
            byLoop[ObjectIdentifier(loop), default: (loop, [])].work.append((entry.sink, entry.items))
        }
        for (_, group) in byLoop {
            let work = group.work
            group.loop.execute {
                for (sink, items) in work { sink.receive(items) }
            }
        }
    }
}
