import Foundation
import NIOCore
import NIOPosix

/// Why a TCP connection to a relay failed, in words a person can act on, never the library's
/// own description of its error types.
enum ConnectFailure {
    /// Whom the connection was to: the advice for a refused connection differs.
    enum Peer {
        case relay, proxy
    }

    static func describe(_ error: Error, peer: Peer = .relay) -> String {
        if let e = error as? NIOConnectionError {
            if let first = e.connectionErrors.first { return describe(first.error, peer: peer) }
            if e.dnsAError != nil || e.dnsAAAAError != nil { return "its host name could not be resolved; check the address" }
            return "no address to connect to; check the address"
        }
        if let io = error as? IOError { return describe(errno: io.errnoCode, peer: peer) }
        if let channel = error as? ChannelError, case .connectTimeout = channel {
            return "no answer before the connection timed out; check your network"
        }
        return "the connection failed; check the address and your network"
    }

    static func describe(errno code: Int32, peer: Peer = .relay) -> String {
        switch code {
        case ECONNREFUSED where peer == .proxy: "nothing is listening at that address (is Tor running?)"
        case ECONNREFUSED: "nothing is listening at that address (is the relay running?)"
        case ENETUNREACH, EHOSTUNREACH: "the network or the host is unreachable; check your connection"
        case ETIMEDOUT: "no answer before the connection timed out; check your network"
        case ECONNRESET: "the connection was reset"
        default: "the connection failed (\(String(cString: strerror(code))))"
        }
    }
}
