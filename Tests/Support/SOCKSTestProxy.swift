import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A small SOCKS5 proxy of the tests' own (RFC 1928 CONNECT, RFC 1929 username/password) on
/// loopback. It writes down every CONNECT as the client sent it (a name or an address, and the
/// credentials), resolves names only from its own table (no DNS), and connects onwards from
/// `outboundAddress`, so a relay behind it sees that address and no other.
///
/// Independent of the client's `SOCKS5Client` on purpose: a shared misreading of the RFCs
/// would pass unnoticed.
public final class SOCKSTestProxy: Sendable {
    /// The target of one CONNECT, as the client wrote it.
    public enum Target: Equatable, Sendable {
        case domainName(String)
        case ipv4(String)
        case ipv6(String)
    }

    /// One CONNECT request, in the order they came.
    public struct Request: Equatable, Sendable {
        public var target: Target
        public var port: Int
        /// Nil when the client authenticated with "no authentication".
        public var username: String?
        public var password: String?
    }

    /// What the proxy does with a connection.
    public enum Behaviour: Equatable, Sendable {
        /// A working proxy.
        case normal
        /// Accepts the connection and never answers.
        case silent
        /// Refuses every username and password.
        case refusingCredentials
        /// Says the tunnel is up and sends these bytes right behind its reply, in one write, as
        /// if from the target; connects nowhere.
        case answeringItself([UInt8])
    }

    public static let defaultOutboundAddress = "127.0.0.7"

    public let port: Int
    let group: MultiThreadedEventLoopGroup
    let server: Channel
    let hosts: [String: String]
    let outboundAddress: String
    let behaviour: Behaviour
    private let log = Mutex<[Request]>([])

    /// `hosts` is the proxy's whole name resolution: a name missing from it is "host unreachable".
    public static func start(
        hosts: [String: String] = ["localhost": "127.0.0.1"], outboundAddress: String = defaultOutboundAddress, behaviour: Behaviour = .normal
    ) async throws -> SOCKSTestProxy {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let box = Mutex<SOCKSTestProxy?>(nil)
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    guard let proxy = box.withLock({ $0 }) else { throw ChannelError.ioOnClosedChannel }
                    try child.pipeline.syncOperations.addHandler(SOCKSTestProxyHandler(proxy: proxy))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let proxy = SOCKSTestProxy(
            port: server.localAddress?.port ?? 0, group: group, server: server, hosts: hosts, outboundAddress: outboundAddress, behaviour: behaviour)
        box.withLock { $0 = proxy }
        return proxy
    }

    private init(port: Int, group: MultiThreadedEventLoopGroup, server: Channel, hosts: [String: String], outboundAddress: String, behaviour: Behaviour) {
        self.port = port
        self.group = group
        self.server = server
        self.hosts = hosts
        self.outboundAddress = outboundAddress
        self.behaviour = behaviour
    }

    /// `socks5h://127.0.0.1:PORT`, for `--proxy` and `BELAY_PROXY`.
    public var url: String { "socks5h://127.0.0.1:\(port)" }

    /// Every CONNECT so far.
    public var requests: [Request] { log.withLock { $0 } }

    func record(_ request: Request) { log.withLock { $0.append(request) } }

    public func stop() async {
        try? await server.close()
        try? await group.shutdownGracefully()
    }
}
