import ArgumentParser
import BelayClient
import BelaySodium
import BelayWire
import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// Load generator for `make bench`: N sender/receiver pairs against a real belayd on loopback.
/// Each sender keeps at most `window` sends unacknowledged; each receiver is subscribed and
/// acknowledges every message. Latency is send-to-receive, measured in this process.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "belay-bench", abstract: "Relay throughput and latency benchmark.")

    @Option(help: "Sender/receiver pairs.") var pairs = 50
    @Option(help: "Messages each sender sends.") var messages = 2_000
    @Option(help: "Message body size in bytes.") var size = 1_024
    @Option(help: "Unacknowledged sends allowed per sender.") var window = 10
    @Option(help: "Event-loop threads for the load generator.") var threads = 1
    @Option(help: "Path to belayd (default: next to this binary).") var belayd: String?
    @Option(help: "Messages for the client figure (ratchet encrypt + decrypt, in memory).") var clientMessages = 20_000
    @Flag(help: "Instead: only the client figure, without a relay.") var clientOnly = false
    @Option(help: "Instead: relay RSS after N plain, N handshaking and N garbage connect-and-close cycles.") var churn: Int?
    @Flag(help: "Instead: a client's PING latency while the relay is attacked from 127.0.0.3.") var abuse = false
    @Option(help: "Members for the group figure (one message fanned out to each); 0 skips it.") var groupMembers = 50
    @Option(help: "Group messages sent for the group figure.") var groupRounds = 20
    @Option(help: "The relay's delivery_jitter (e.g. 50ms), to measure what it costs; default off.") var deliveryJitter: String?
    @Option(help: "Instead: proof-of-work solve times for these bits, e.g. 16,20,22 (no relay).") var work: String?
    @Option(help: "Solves per figure for --work.") var workSamples = 50

    func validate() throws {
        if let churn, churn < 1 { throw ValidationError("--churn needs at least one cycle") }
        if churn != nil, abuse { throw ValidationError("--churn and --abuse are separate runs; pick one") }
        if let work, workBits(work) == nil { throw ValidationError("--work takes bits from 1 to \(WireLimits.maxWorkBits), e.g. 16,20,22") }
        if workSamples < 1 { throw ValidationError("--work-samples needs at least one solve") }
    }

    func run() async throws {
        if clientOnly { return try clientFigure() }
        if let work, let bits = workBits(work) {
            for b in bits { WorkBench.report(try WorkBench.run(bits: b, samples: workSamples)) }
            return
        }
        let binary = belayd ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("belayd").path
        let stateDir = FileManager.default.temporaryDirectory.appendingPathComponent("belay-bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        var environment = churn != nil ? ChurnBench.relayEnvironment : abuse ? AbuseBench.relayEnvironment : [:]
        if let deliveryJitter { environment["BELAYD_DELIVERY_JITTER"] = deliveryJitter }
        let relay = try RelayProcess(binary: binary, stateDir: stateDir, environment: environment)
        defer { relay.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        if let churn {
            await ChurnBench.run(cycles: churn, relay: relay, group: group)
            return try await group.shutdownGracefully()
        }
        if abuse {
            await AbuseBench.run(relay: relay, group: group)
            return try await group.shutdownGracefully()
        }

        let total = pairs * messages
        let done = group.next().makePromise(of: Void.self)
        let results = Results(total: total, done: done)
        var lanes: [Lane] = []
        for _ in 0..<pairs {
            lanes.append(try await Lane.make(address: relay.address, group: group, messages: messages, size: size, window: window, results: results))
        }
        let cpuBefore = relay.cpuSeconds()
        let start = DispatchTime.now().uptimeNanoseconds
        for lane in lanes { lane.start() }
        try await done.futureResult.get()
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let cpu = (relay.cpuSeconds() - cpuBefore) / elapsed * 100
        let latencies = results.latencies().sorted()
        func percentile(_ p: Double) -> Double { Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1e6 }
        let rate = Double(total) / elapsed
        let rss = relay.peakRSSMiB()
        print(String(format: "pairs %d, %d messages of %d bytes, window %d, delivery jitter %@", pairs, total, size, window, deliveryJitter ?? "off"))
        print(String(format: "delivered %.0f msg/s in %.2f s", rate, elapsed))
        print(
            String(format: "latency send->receive: p50 %.2f ms, p99 %.2f ms, max %.2f ms", percentile(0.5), percentile(0.99), Double(latencies.last ?? 0) / 1e6)
        )
        print(String(format: "relay: %.0f%% CPU (of one core), peak RSS %.1f MiB", cpu, rss))
        print(
            String(
                format:
                    #"{"msgs_per_s": %.0f, "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "relay_cpu_percent": %.1f, "relay_peak_rss_mib": %.1f, "pairs": %d, "messages": %d, "size": %d, "window": %d, "delivery_jitter": "%@"}"#,
                rate, percentile(0.5), percentile(0.99), Double(latencies.last ?? 0) / 1e6, cpu, rss, pairs, total, size, window,
                deliveryJitter ?? "off"))
        for lane in lanes { await lane.close() }
        try await group.shutdownGracefully()
        try clientFigure()
        guard groupMembers > 0 else { return }
        // The product's parallel flush, and one member at a time, in the same run.
        for parallelism in [Agent.defaultFanOutParallelism, 1] {
            let fan = try await GroupFanOutBench.run(binary: binary, members: groupMembers, rounds: groupRounds, size: size, parallelism: parallelism)
            let median = fan.lastMemberMs[fan.lastMemberMs.count / 2]
            let worst = fan.lastMemberMs.last ?? 0
            print(
                String(
                    format:
                        "group: one message to %d members (%d flushed at once), %.0f member copies/s at the sender; time to the last member p50 %.1f ms, max %.1f ms (%d messages)",
                    groupMembers, parallelism, fan.copiesPerSecond, median, worst, groupRounds))
            print(
                String(
                    format:
                        #"{"group_members": %d, "group_parallel": %d, "group_copies_per_s": %.0f, "group_last_member_p50_ms": %.2f, "group_last_member_max_ms": %.2f, "group_messages": %d}"#,
                    groupMembers, parallelism, fan.copiesPerSecond, median, worst, groupRounds))
        }
    }
}

extension Bench {
    func workBits(_ text: String) -> [Int]? {
        let bits = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !bits.isEmpty, bits.allSatisfy({ (1...Int(WireLimits.maxWorkBits)).contains($0) }) else { return nil }
        return bits
    }

    /// The ratchet path as the client store runs it (state restored and saved once per batch),
    /// then as it ran before (around every message), in the same run.
    func clientFigure() throws {
        let batch = min(ClientRatchetBench.run, WireLimits.subscriptionWindow)
        let batched = try ClientRatchetBench.run(messages: clientMessages, size: size, batch: batch)
        let single = try ClientRatchetBench.run(messages: clientMessages, size: size, batch: 1)
        print(
            String(
                format:
                    "client: %.0f msg/s sealed and opened through the full ratchet path (%.0f per core of CPU time), state saved per batch of %d; "
                    + "%.0f msg/s (%.0f per core) saved per message (%d messages of %d bytes, replying every %d)",
                batched.wall, batched.perCore, batch, single.wall, single.perCore, clientMessages, size, ClientRatchetBench.run))
        print(
            String(
                format:
                    #"{"client_ratchet_msgs_per_s": %.0f, "client_ratchet_msgs_per_core_s": %.0f, "client_batch": %d, "client_ratchet_per_message_save_msgs_per_s": %.0f, "client_messages": %d, "size": %d}"#,
                batched.wall, batched.perCore, batch, single.wall, clientMessages, size))
    }
}

/// Counts deliveries across lanes and keeps every latency sample.
final class Results: Sendable {
    private let state: Mutex<(delivered: Int, samples: [UInt64])>
    let total: Int
    let done: EventLoopPromise<Void>

    init(total: Int, done: EventLoopPromise<Void>) {
        self.total = total
        self.done = done
        var samples = [UInt64]()
        samples.reserveCapacity(total)
        state = Mutex((0, samples))
    }

    func record(_ latency: UInt64) {
        let finished = state.withLock { s in
            s.samples.append(latency)
            s.delivered += 1
            return s.delivered == total
        }
        if finished { done.succeed() }
    }

    func latencies() -> [UInt64] { state.withLock { $0.samples } }
}

/// One sender and one receiver sharing a secured queue.
final class Lane: Sendable {
    let sender: RelayConnection
    let receiver: RelayConnection
    let queue: (recipient: EntityID, sender: EntityID)
    let messages: Int
    let size: Int
    let window: Int
    /// Sends made so far, on the sender's event loop.
    private let sent: NIOLoopBoundBox<Int>

    static func make(address: RelayAddress, group: EventLoopGroup, messages: Int, size: Int, window: Int, results: Results) async throws -> Lane {
        let rk = try Ed25519.SigningKey.generate()
        let sk = try Ed25519.SigningKey.generate()
        let box = Mutex<(RelayConnection, EntityID)?>(nil)
        let receiver = try await RelayConnection.connect(to: address, group: group) { push in
            guard case let .message(d) = push else { return }
            let now = DispatchTime.now().uptimeNanoseconds
            let stamp = d.body.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            results.record(now &- stamp)
            if let (c, r) = box.withLock({ $0 }) { _ = c.request(.ack(recipient: r, seq: d.seq)) }
        }
        let q = try await receiver.createQueue(recipientKey: rk)
        try await receiver.secure(recipient: q.recipient, senderKey: sk.publicKey)
        box.withLock { $0 = (receiver, q.recipient) }
        try await receiver.subscribe(q.recipient)
        let sender = try await RelayConnection.connect(to: address, group: group)
        try await sender.authorise(.sender, q.sender, key: sk)
        return Lane(sender: sender, receiver: receiver, queue: q, messages: messages, size: size, window: window)
    }

    private init(sender: RelayConnection, receiver: RelayConnection, queue: (recipient: EntityID, sender: EntityID), messages: Int, size: Int, window: Int) {
        self.sender = sender
        self.receiver = receiver
        self.queue = queue
        self.messages = messages
        self.size = size
        self.window = window
        sent = NIOLoopBoundBox.makeBoxSendingValue(0, eventLoop: sender.channel.eventLoop)
    }

    func start() {
        sender.channel.eventLoop.execute {
            for _ in 0..<min(self.window, self.messages) { self.sendNext() }
        }
    }

    /// Runs on the sender's event loop; each OK releases the next send.
    private func sendNext() {
        guard sent.value < messages else { return }
        sent.value += 1
        var body = [UInt8](repeating: 0x42, count: size)
        let stamp = DispatchTime.now().uptimeNanoseconds
        for i in 0..<8 { body[i] = UInt8(truncatingIfNeeded: stamp >> (56 - 8 * UInt64(i))) }
        sender.request(.send(sender: queue.sender, body: body)).whenComplete { result in
            if case .success(.ok) = result {
                self.sendNext()
            } else {
                FileHandle.standardError.write(Data("belay-bench: a send failed: \(result)\n".utf8))
                exit(1)
            }
        }
    }

    func close() async {
        await sender.close()
        await receiver.close()
    }
}

/// belayd started for the benchmark, with its CPU time and RSS read from /proc.
final class RelayProcess: Sendable {
    let child: ChildProcess
    let address: RelayAddress

    /// `environment` holds `BELAYD_*` overrides, laid over this process's own environment.
    init(binary: String, stateDir: String, environment: [String: String] = [:]) throws {
        let out = Pipe()
        let null = FileHandle.nullDevice
        child = try ChildProcess(
            binary, ["run", "--state-dir", stateDir, "--listen", "127.0.0.1:0"],
            environment: ProcessInfo.processInfo.environment.merging(environment) { _, override in override },
            stdin: null.fileDescriptor, stdout: out.fileHandleForWriting.fileDescriptor, stderr: null.fileDescriptor)
        try? out.fileHandleForWriting.close()
        var line = [UInt8]()
        while true {
            let c = out.fileHandleForReading.readData(ofLength: 1)
            if c.isEmpty || c.first == UInt8(ascii: "\n") { break }
            line += c
        }
        address = try RelayAddress(parsing: String(decoding: line, as: UTF8.self))
    }

    func cpuSeconds() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(child.pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3, utime 14 and stime 15 (1-based, proc(5)).
        guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func peakRSSMiB() -> Double { statusMiB("VmHWM:") }

    func currentRSSMiB() -> Double { statusMiB("VmRSS:") }

    /// A `/proc/PID/status` field given in kB, in MiB; 0 once the relay has exited.
    private func statusMiB(_ field: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(child.pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }),
            let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kb / 1024
    }

    /// SIGTERM, then waits for the relay to drain and exit (the benchmark has nothing else to do).
    func stop() {
        child.signal(SIGTERM)
        while child.isRunning { usleep(10_000) }
    }
}
