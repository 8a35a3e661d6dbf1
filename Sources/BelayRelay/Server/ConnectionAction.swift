import BelayWire
import NIOCore

/// What the connection's state machine asks its handler to do, in order.
enum ConnectionAction {
    /// Bytes for the socket: the handshake reply, sealed bundles, or the relay's own preamble.
    case write(ByteBuffer)
    /// A command for the core; the handler adds the connection's sink.
    case submit(requestId: UInt32, CoreCommand)
    /// Pass a read on to the socket (one that was held back, or one asked for just now).
    case read
    /// The handshake is done: the admission table stops counting the connection as handshaking.
    case established
    /// Start a one-shot timer; the handler feeds its firing back as an event.
    case schedule(ConnectionTimer, in: TimeAmount)
    case cancel(ConnectionTimer)
    /// Close the channel and stop every timer. The machine expects `channelInactive` next.
    case close(CloseReason)
}

/// The timers a connection runs. Each is one-shot; the idle check re-arms itself.
enum ConnectionTimer: Hashable, Sendable {
    /// Cuts a connection that has not finished the handshake in time.
    case handshakeTimeout
    /// Looks whether a complete frame arrived within the idle timeout.
    case idleCheck
    /// Ends a pause in reading after a rate refusal.
    case rateHold
    /// Releases the pushes whose delivery jitter is over.
    case pushRelease
}

/// Why the relay closed a connection: logged at debug level, never with the client's address.
enum CloseReason: Equatable, Sendable, CustomStringConvertible {
    case unsupportedVersion(UInt16)
    /// Message 1 did not decrypt; closed at the handshake timeout, not at once (§2.1).
    case handshakeFailed
    case handshakeTimeout
    case idleTimeout
    case decryptionFailed
    case frameNotABucket(Int)
    case malformedBundle(Bundle.Error)
    /// More than `ConnectionStateMachine.maxRefusals` commands refused for the rate without a
    /// full refill in between (docs/PROTOCOL.md §2.4).
    case ignoredRate
    case cannotEncrypt(String)
    case ioError

    var description: String {
        switch self {
        case .unsupportedVersion: "unsupported protocol version"
        case .handshakeFailed: "handshake failed"
        case .handshakeTimeout: "handshake timeout"
        case .idleTimeout: "idle timeout"
        case .decryptionFailed: "transport decryption failed"
        case let .frameNotABucket(length): "frame body of \(length) bytes, not a bucket"
        case let .malformedBundle(error): "malformed bundle: \(error)"
        case .ignoredRate: "kept sending past the rate limit"
        case let .cannotEncrypt(error): "cannot encrypt: \(error)"
        case .ioError: "I/O error"
        }
    }
}
