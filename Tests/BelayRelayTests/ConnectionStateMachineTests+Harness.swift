import BelaySodium
import BelayTestSupport
import BelayWire
import NIOCore
import Testing

@testable import BelayRelay

/// What the machine's tests share: a client built from BelayWire alone, a machine with its
/// settings, and the actions in a form a test can compare.
extension ConnectionStateMachineTests {
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    /// The actions in a form a test can compare.
    enum Seen: Equatable {
        case write
        case submit(UInt32, String)
        case read
        case established
        case schedule(ConnectionTimer, TimeAmount)
        case cancel(ConnectionTimer)
        case close(CloseReason)
    }

    static func seen(_ actions: [ConnectionAction]) -> [Seen] {
        actions.map {
            switch $0 {
            case .write: .write
            case let .submit(id, command): .submit(id, name(command))
            case .read: .read
            case .established: .established
            case let .schedule(timer, delay): .schedule(timer, delay)
            case let .cancel(timer): .cancel(timer)
            case let .close(reason): .close(reason)
            }
        }
    }

    static func name(_ command: CoreCommand) -> String {
        switch command {
        case .create: "create"
        case .lookupKey: "lookupKey"
        case .secure: "secure"
        case .send: "send"
        case .subscribe: "subscribe"
        case .ack: "ack"
        case .get: "get"
        case .delete: "delete"
        case .timerSet: "timerSet"
        case .timerRenew: "timerRenew"
        case .timerCancel: "timerCancel"
        case .disconnect: "disconnect"
        }
    }

    static func written(_ actions: [ConnectionAction]) -> ByteBuffer {
        var out = ByteBuffer()
        for case let .write(bytes) in actions { out.writeImmutableBuffer(bytes) }
        return out
    }

    static func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

    /// The client's half of a connection, from BelayWire alone.
    typealias Client = RawSession

    struct Fixture {
        let relayKey: X25519.KeyPair
        let settings: ConnectionSettings
        var machine: ConnectionStateMachine
        var client: Client

        init(_ configure: (inout RelayConfiguration) -> Void = { _ in }, mayCreate: @escaping () -> Bool = { true }) throws {
            relayKey = try X25519.KeyPair.generate()
            var configuration = RelayConfiguration()
            configure(&configuration)
            settings = ConnectionSettings(configuration)
            machine = ConnectionStateMachine(settings: settings, relayStatic: relayKey, mayCreate: mayCreate, random: SeededRandom(seed: 3))
            client = try Client(relayKey: relayKey.publicKey)
        }

        /// Active at `t0`, handshake done.
        static func established(_ configure: (inout RelayConfiguration) -> Void = { _ in }, mayCreate: @escaping () -> Bool = { true })
            throws -> Fixture
        {
            var f = try Fixture(configure, mayCreate: mayCreate)
            _ = f.machine.channelActive(now: t0)
            let actions = f.machine.bytesReceived(try f.client.helloBuffer(), now: t0)
            try f.client.establish(written(actions))
            return f
        }

        /// Sends one bundle and returns the actions of the read and of its end, and the replies written.
        mutating func send(_ commands: [(UInt32, RelayCommand)], at now: NIODeadline = t0) throws -> (
            [Seen], [(UInt32, RelayReply)]
        ) {
            let actions = machine.bytesReceived(try client.frame(commands), now: now) + machine.readComplete()
            return (seen(actions), try client.replies(written(actions)))
        }

        var isEstablished: Bool {
            if case .established = machine.state { return true }
            return false
        }
    }

    struct Unexpected: Error {}
}
