import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// One way of abusing the relay, run from 127.0.0.3 while the legitimate client measures.
protocol Attack: Sendable {
    /// Also its key in the JSON line.
    var name: String { get }
    var counters: Counters { get }
    /// Starts the attack; returns once it is at full strength, or when its ramp-up limit passed.
    func start() async
    /// Stops it and waits, at most `AttackCrew.stopGrace`, for its loops and sockets to end.
    func stop() async
}

/// An attack that is one step repeated by the crew's loops: a connection, a write, a close.
protocol LoopedAttack: Attack {
    var crew: AttackCrew { get }
    /// Loops running the step at once, the pause between steps, and how long to ramp up.
    static var workers: Int { get }
    static var stepPause: TimeAmount { get }
    static var warmUp: Duration { get }
    func once(on loop: EventLoop) -> EventLoopFuture<Void>
}

extension LoopedAttack {
    func start() async {
        crew.launch(Self.workers, pause: Self.stepPause) { [self] _, loop in once(on: loop) }
        try? await Task.sleep(for: Self.warmUp)
    }

    func stop() async { await crew.shutDown() }
}

/// The attacker's sockets and the loops that open them. Every loop checks the stop signal before
/// each new connection, and stopping closes every socket still open, so an attack ends by itself.
/// Loops run on NIO event loops, not in Swift tasks, so that they do not compete with the
/// legitimate client's continuations for the two cores' cooperative threads.
final class AttackCrew: Sendable {
    /// The attacker's address: loopback, but not the legitimate client's 127.0.0.1.
    static let source = "127.0.0.3"
    /// The longest an attack may run, whatever happens to the measurement that started it.
    static let hardLimitSeconds: Int64 = 180
    static let hardLimit = Duration.seconds(hardLimitSeconds)
    /// Bounds any single wait on an attacker socket.
    static let holdLimit = TimeAmount.seconds(hardLimitSeconds)
    /// How long `shutDown` waits for loops to notice and sockets to close.
    static let stopGrace: Duration = .seconds(15)
    static let connectTimeout: TimeAmount = .seconds(5)
    /// Linux IP_BIND_ADDRESS_NO_PORT: pick the source port at connect(), where a port in TIME_WAIT
    /// can be reused on loopback, not at bind(), where thousands of them would exhaust the range.
    static let ipBindAddressNoPort = NIOBSDSocket.Option(rawValue: 24)

    private struct State {
        var open: [ObjectIdentifier: Channel] = [:]
        var loops = 0
        var stopped = false
    }

    let group: EventLoopGroup
    let relay: SocketAddress
    let stopSignal = StopSignal(limit: AttackCrew.hardLimit)
    private let bindAddress: SocketAddress
    private let state = Mutex(State())

    init(group: EventLoopGroup, relay: SocketAddress) throws {
        self.group = group
        self.relay = relay
        bindAddress = try SocketAddress(ipAddress: Self.source, port: 0)
    }

    var isStopped: Bool { stopSignal.isStopped }

    /// Attacker sockets open now.
    var openCount: Int { state.withLock { $0.open.count } }

    /// Connects from 127.0.0.3 on `loop`; the channel is closed by `shutDown` if still open then.
    func connect(on loop: EventLoop, _ initializer: @escaping @Sendable (Channel) -> EventLoopFuture<Void>) -> EventLoopFuture<Channel> {
        ClientBootstrap(group: loop)
            .connectTimeout(Self.connectTimeout)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(ChannelOptions.Types.SocketOption(level: .ip, name: Self.ipBindAddressNoPort), value: 1)
            .bind(to: bindAddress)
            .channelInitializer(initializer)
            .connect(to: relay)
            .map { channel in
                self.hold(channel)
                return channel
            }
    }

    private func hold(_ channel: Channel) {
        let id = ObjectIdentifier(channel)
        let kept = state.withLock { s in
            guard !s.stopped else { return false }
            s.open[id] = channel
            return true
        }
        guard kept else { return channel.close(promise: nil) }
        channel.closeFuture.whenComplete { _ in self.state.withLock { _ = $0.open.removeValue(forKey: id) } }
    }

    /// Starts `count` loops; loop `i` runs `step(i, eventLoop)` (one connection, start to end)
    /// again and again, `pause` apart, until stopped.
    func launch(_ count: Int, pause: TimeAmount, _ step: @escaping @Sendable (Int, EventLoop) -> EventLoopFuture<Void>) {
        state.withLock { $0.loops += count }
        for index in 0..<count {
            let loop = group.next()
            loop.execute { self.next(index, loop, pause, step) }
        }
    }

    private func next(_ index: Int, _ loop: EventLoop, _ pause: TimeAmount, _ step: @escaping @Sendable (Int, EventLoop) -> EventLoopFuture<Void>) {
        guard !isStopped else {
            state.withLock { $0.loops -= 1 }
            return
        }
        step(index, loop).whenComplete { _ in
            loop.scheduleTask(in: pause) { self.next(index, loop, pause, step) }
        }
    }

    func shutDown() async {
        stopSignal.stop()
        let channels = state.withLock { s in
            s.stopped = true
            return Array(s.open.values)
        }
        for channel in channels { channel.close(promise: nil) }
        let deadline = ContinuousClock.now + Self.stopGrace
        while ContinuousClock.now < deadline, state.withLock({ $0.loops > 0 || !$0.open.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// Tells whether the relay answered a connection: `answered` becomes true once `expected` bytes
/// have arrived, false if the connection closes first.
/// Built inside the channel initializer, so it lives on the channel's event loop alone.
final class ReplyWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let answered: EventLoopPromise<Bool>
    private let expected: Int
    private var received = 0

    init(expected: Int, answered: EventLoopPromise<Bool>) {
        self.expected = expected
        self.answered = answered
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytes
        if received >= expected { answered.succeed(true) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        answered.succeed(false)
        context.fireChannelInactive()
    }

    /// A connect that failed never becomes active; the promise must still complete.
    func handlerRemoved(context: ChannelHandlerContext) {
        answered.succeed(false)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
