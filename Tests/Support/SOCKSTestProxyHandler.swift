import NIOCore
import NIOPosix

/// One client connection to `SOCKSTestProxy`: the server's side of RFC 1928 and RFC 1929,
/// then bytes relayed both ways to the target. Anything malformed closes the connection.
final class SOCKSTestProxyHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        case greeting
        case credentials
        case request(username: String?, password: String?)
        /// Waiting for the onward connection; the client has nothing to say meanwhile.
        case connecting
        case relaying(Channel)
        case closed
    }

    private let proxy: SOCKSTestProxy
    private var phase = Phase.greeting
    private var buffer: [UInt8] = []

    init(proxy: SOCKSTestProxy) {
        self.proxy = proxy
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        buffer += unwrapInboundIn(data).readableBytesView
        switch phase {
        case let .relaying(target):
            target.writeAndFlush(context.channel.allocator.buffer(bytes: buffer), promise: nil)
            buffer = []
        case .connecting, .closed:
            return
        case .greeting, .credentials, .request:
            guard proxy.behaviour != .silent else { return }
            advance(context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case let .relaying(target) = phase { target.close(promise: nil) }
        phase = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    /// Handles every complete message in the buffer.
    private func advance(_ context: ChannelHandlerContext) {
        while true {
            switch phase {
            case .greeting:
                guard buffer.count >= 2, buffer.count >= 2 + Int(buffer[1]) else { return }
                guard buffer[0] == 0x05 else { return close(context) }
                let methods = buffer[2..<(2 + Int(buffer[1]))]
                buffer.removeFirst(2 + Int(buffer[1]))
                if methods.contains(0x02) {
                    phase = .credentials
                    send([0x05, 0x02], context)
                } else if methods.contains(0x00) {
                    phase = .request(username: nil, password: nil)
                    send([0x05, 0x00], context)
                } else {
                    send([0x05, 0xFF], context)
                    return close(context)
                }
            case .credentials:
                guard buffer.count >= 2 else { return }
                let userLength = Int(buffer[1])
                guard buffer.count >= 3 + userLength else { return }
                let passLength = Int(buffer[2 + userLength])
                guard buffer.count >= 3 + userLength + passLength else { return }
                guard buffer[0] == 0x01 else { return close(context) }
                let username = String(decoding: buffer[2..<(2 + userLength)], as: UTF8.self)
                let password = String(decoding: buffer[(3 + userLength)..<(3 + userLength + passLength)], as: UTF8.self)
                buffer.removeFirst(3 + userLength + passLength)
                if proxy.behaviour == .refusingCredentials {
                    send([0x01, 0x01], context)
                    return close(context)
                }
                phase = .request(username: username, password: password)
                send([0x01, 0x00], context)
            case let .request(username, password):
                guard buffer.count >= 5 else { return }
                guard buffer[0] == 0x05, buffer[1] == 0x01 else { return close(context) }
                let addressLength: Int
                switch buffer[3] {
                case 0x01: addressLength = 4
                case 0x04: addressLength = 16
                case 0x03: addressLength = 1 + Int(buffer[4])
                default: return close(context)
                }
                guard buffer.count >= 4 + addressLength + 2 else { return }
                let address = Array(buffer[4..<(4 + addressLength)])
                let port = Int(buffer[4 + addressLength]) << 8 | Int(buffer[5 + addressLength])
                let target: SOCKSTestProxy.Target
                switch buffer[3] {
                case 0x03: target = .domainName(String(decoding: address.dropFirst(), as: UTF8.self))
                case 0x01: target = .ipv4(Self.text(address))
                default: target = .ipv6(Self.text(address))
                }
                buffer.removeFirst(4 + addressLength + 2)
                proxy.record(.init(target: target, port: port, username: username, password: password))
                phase = .connecting
                return connect(to: target, port: port, context)
            case .connecting, .relaying, .closed:
                return
            }
        }
    }

    private func connect(to target: SOCKSTestProxy.Target, port: Int, _ context: ChannelHandlerContext) {
        if case let .answeringItself(bytes) = proxy.behaviour {
            return send(Self.reply(0x00, bound: [127, 0, 0, 7]) + bytes, context)
        }
        let ip: String?
        switch target {
        case let .domainName(name): ip = proxy.hosts[name]
        case let .ipv4(text), let .ipv6(text): ip = text
        }
        guard let ip, let destination = try? SocketAddress(ipAddress: ip, port: port),
            let source = try? SocketAddress(ipAddress: proxy.outboundAddress, port: 0)
        else {
            send(Self.reply(0x04), context)  // host unreachable
            return close(context)
        }
        let client = context.channel
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .bind(to: source)
            .channelInitializer { target in
                target.eventLoop.makeCompletedFuture { try target.pipeline.syncOperations.addHandler(Forwarder(to: client)) }
            }
            .connect(to: destination)
            .whenComplete { result in
                let (handler, context) = bound.value
                switch result {
                case let .success(target):
                    guard case .connecting = handler.phase else {
                        target.close(promise: nil)
                        return
                    }
                    handler.phase = .relaying(target)
                    handler.send(Self.reply(0x00, bound: [127, 0, 0, 7]), context)
                case .failure:
                    handler.send(Self.reply(0x05), context)  // connection refused
                    handler.close(context)
                }
            }
    }

    /// VER REP RSV, then an IPv4 bound address and port 0.
    private static func reply(_ code: UInt8, bound: [UInt8] = [0, 0, 0, 0]) -> [UInt8] {
        [0x05, code, 0x00, 0x01] + bound + [0, 0]
    }

    private static func text(_ packed: [UInt8]) -> String {
        (try? SocketAddress(packedIPAddress: ByteBuffer(bytes: packed), port: 0))?.ipAddress ?? "?"
    }

    private func send(_ bytes: [UInt8], _ context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
    }

    private func close(_ context: ChannelHandlerContext) {
        phase = .closed
        context.close(promise: nil)
    }
}

/// The target side of a relayed connection: what the target sends goes back to the client,
/// and either side's close closes the other.
private final class Forwarder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let client: Channel

    init(to client: Channel) {
        self.client = client
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        client.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        client.close(promise: nil)
        context.fireChannelInactive()
    }
}
