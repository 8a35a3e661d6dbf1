import BelayWire
import Testing

/// The SOCKS5 client state machine on its own: byte-exact messages (RFC 1928, RFC 1929), the
/// proxy's replies whole, one byte at a time and run together, and hostile replies, each of
/// which must end in a typed error, never a crash or a wait without end.
@Suite struct SOCKS5ClientTests {
    static let credentials = try! SOCKS5Credentials(username: "u1", password: "pw")
    static let localhost = try! SOCKS5Client.Request(target: .domainName("localhost"), port: 7707, authentication: .isolating(credentials))

    static let greeting: [UInt8] = [0x05, 2, 0x02, 0x00]
    static let userPassword: [UInt8] = [0x01, 2] + Array("u1".utf8) + [2] + Array("pw".utf8)
    static let connectLocalhost: [UInt8] = [0x05, 0x01, 0x00, 0x03, 9] + Array("localhost".utf8) + [0x1E, 0x1B]
    /// Success, bound to 127.0.0.7:4660.
    static let success: [UInt8] = [0x05, 0x00, 0x00, 0x01, 127, 0, 0, 7, 0x12, 0x34]

    /// A client past its greeting, `request` defaulting to localhost with isolation credentials.
    static func started(_ request: SOCKS5Client.Request = localhost) -> SOCKS5Client {
        var client = SOCKS5Client(request)
        _ = client.start()
        return client
    }

    @Test func theWholeExchangeIsByteExact() {
        var client = SOCKS5Client(Self.localhost)
        #expect(client.start() == .send(Self.greeting))
        #expect(client.start() == .wait)  // once only
        #expect(client.waitingFor == .methodChoice)
        #expect(client.receive([0x05, 0x02]) == .send(Self.userPassword))
        #expect(client.waitingFor == .authentication)
        #expect(client.receive([0x01, 0x00]) == .send(Self.connectLocalhost))
        #expect(client.waitingFor == .connectReply)
        #expect(client.receive(Self.success) == .established(leftover: []))
        #expect(client.waitingFor == nil)
        // The tunnel's bytes are the relay's; a close is no longer the exchange's business.
        #expect(client.receive([1, 2, 3]) == .forward([1, 2, 3]))
        #expect(client.closed() == nil)
        #expect(client.timedOut() == nil)
    }

    @Test func repliesDrippedOneByteAtATimeGiveTheSameActions() {
        var client = Self.started()
        #expect(client.receive([0x05]) == .wait)
        #expect(client.receive([0x02]) == .send(Self.userPassword))
        #expect(client.receive([0x01]) == .wait)
        #expect(client.receive([0x00]) == .send(Self.connectLocalhost))
        // A reply whose bound address is a domain name: its length comes in the fifth byte.
        let reply: [UInt8] = [0x05, 0x00, 0x00, 0x03, 4] + Array("exit".utf8) + [0, 80]
        for byte in reply.dropLast() { #expect(client.receive([byte]) == .wait) }
        #expect(client.receive([reply.last!]) == .established(leftover: []))
    }

    @Test func bytesAfterTheReplyGoToTheTunnel() {
        var client = Self.started()
        _ = client.receive([0x05, 0x02])
        _ = client.receive([0x01, 0x00])
        #expect(client.receive(Self.success + [0xAA, 0xBB]) == .established(leftover: [0xAA, 0xBB]))
    }

    @Test func addressesGoAsTheyWereWritten() throws {
        #expect(SOCKS5Address(host: "127.0.0.1") == .ipv4([127, 0, 0, 1]))
        #expect(SOCKS5Address(host: "::1") == .ipv6([UInt8](repeating: 0, count: 15) + [1]))
        #expect(SOCKS5Address(host: "localhost") == .domainName("localhost"))
        let onion = String(repeating: "a", count: 56) + ".onion"
        #expect(SOCKS5Address(host: onion) == .domainName(onion))
        // An IP address in CONNECT: ATYP 1 or 4, never a name for it.
        for (host, expected) in [
            ("10.1.2.3", [0x05, 0x01, 0x00, 0x01, 10, 1, 2, 3, 0x00, 0x50] as [UInt8]),
            ("::1", [0x05, 0x01, 0x00, 0x04] + [UInt8](repeating: 0, count: 15) + [1, 0x00, 0x50]),
        ] {
            let request = try SOCKS5Client.Request(target: SOCKS5Address(host: host), port: 80, authentication: .isolating(Self.credentials))
            var client = Self.started(request)
            _ = client.receive([0x05, 0x02])
            #expect(client.receive([0x01, 0x00]) == .send(expected), "\(host)")
        }
    }

    @Test func aProxyWithoutAuthenticationMaySkipIsolationCredentialsButNotRequiredOnes() throws {
        var isolating = Self.started()
        #expect(isolating.receive([0x05, 0x00]) == .send(Self.connectLocalhost))

        let required = try SOCKS5Client.Request(target: .domainName("localhost"), port: 7707, authentication: .required(Self.credentials))
        var client = SOCKS5Client(required)
        #expect(client.start() == .send([0x05, 1, 0x02]))
        #expect(client.receive([0x05, 0x00]) == .fail(.unofferedMethod(0)))
    }

    @Test func requestsThatDoNotFitSOCKS5AreRefusedBeforeAnythingIsSent() {
        #expect(throws: SOCKS5Error.self) {
            try SOCKS5Client.Request(target: .domainName(String(repeating: "a", count: 256)), port: 1, authentication: .isolating(Self.credentials))
        }
        #expect(throws: SOCKS5Error.self) { try SOCKS5Client.Request(target: .domainName(""), port: 1, authentication: .isolating(Self.credentials)) }
        #expect(throws: SOCKS5Error.self) { try SOCKS5Credentials(username: "", password: "p") }
        #expect(throws: SOCKS5Error.self) { try SOCKS5Credentials(username: "u", password: String(repeating: "p", count: 256)) }
        #expect((try? SOCKS5Credentials(username: String(repeating: "u", count: 255), password: "p")) != nil)
    }
}

extension SOCKS5ClientTests {
    /// One hostile or broken proxy reply at each step, and the error it must give.
    @Test func hostileRepliesEndInTypedErrors() {
        func afterMethod() -> SOCKS5Client {
            var c = Self.started()
            _ = c.receive([0x05, 0x02])
            return c
        }
        func afterAuthentication() -> SOCKS5Client {
            var c = afterMethod()
            _ = c.receive([0x01, 0x00])
            return c
        }
        let cases: [(String, SOCKS5Client, [UInt8], SOCKS5Error)] = [
            ("SOCKS4 version", Self.started(), [0x04, 0x00], .wrongVersion(4, .methodChoice)),
            ("an HTTP proxy", Self.started(), Array("HTTP/1.1 400 Bad Request\r\n".utf8), .wrongVersion(0x48, .methodChoice)),
            ("no acceptable method", Self.started(), [0x05, 0xFF], .noAcceptableMethod),
            ("GSSAPI, not offered", Self.started(), [0x05, 0x01], .unofferedMethod(1)),
            ("oversized method choice", Self.started(), [0x05, 0x02, 0x00], .unexpectedBytes(.methodChoice)),
            ("auth answer in SOCKS5's version", afterMethod(), [0x05, 0x00], .wrongVersion(5, .authentication)),
            ("auth refused", afterMethod(), [0x01, 0x01], .authenticationRefused(1)),
            ("oversized auth answer", afterMethod(), [0x01, 0x00, 0x05], .unexpectedBytes(.authentication)),
            ("wrong reply version", afterAuthentication(), [0x04, 0x5A, 0, 0, 0, 0, 0, 0], .wrongVersion(4, .connectReply)),
            ("host unreachable", afterAuthentication(), [0x05, 0x04], .connectFailed(SOCKS5ReplyCode(4))),
            ("TTL expired, full reply", afterAuthentication(), [0x05, 0x06, 0x00, 0x01, 0, 0, 0, 0, 0, 0], .connectFailed(SOCKS5ReplyCode(6))),
            ("unknown address type", afterAuthentication(), [0x05, 0x00, 0x00, 0x09, 1, 2, 3, 4, 5, 6], .malformedReply("unknown address type 9")),
        ]
        for (name, client, reply, error) in cases {
            var whole = client
            #expect(whole.receive(reply) == .fail(error), "\(name)")
            // Failed is final: more bytes, a close or the timer change nothing.
            #expect(whole.receive(reply) == .wait, "\(name)")
            #expect(whole.closed() == nil, "\(name)")
            #expect(whole.timedOut() == nil, "\(name)")
            #expect(whole.waitingFor == nil, "\(name)")
        }
    }

    @Test func aShortReplyThenACloseOrSilenceIsAnError() {
        var closed = Self.started()
        #expect(closed.receive([0x05]) == .wait)
        #expect(closed.closed() == .closed(.methodChoice))
        var silent = Self.started()
        _ = silent.receive([0x05, 0x02])
        _ = silent.receive([0x01, 0x00])
        #expect(silent.receive([0x05, 0x00, 0x00, 0x03, 200, 1]) == .wait)
        #expect(silent.timedOut() == .timedOut(.connectReply))
        // Before the greeting even went out.
        var early = SOCKS5Client(Self.localhost)
        #expect(early.receive([0x05, 0x00]) == .fail(.unexpectedBytes(.methodChoice)))
    }

    /// Whatever a proxy sends, in whatever pieces, the exchange is over (tunnel up or a typed
    /// error) once it has sent more than the longest possible exchange: it cannot keep the
    /// client waiting by talking. A fixed seed: the same 2,000 streams every run.
    @Test func noStreamOfBytesKeepsTheClientWaiting() {
        var random = SplitMix64(seed: 0x50C5)
        let longest = 2 + 2 + SOCKS5.maxReplyLength
        for _ in 0..<2_000 {
            var client = Self.started()
            // Bytes that are plausible often enough to reach every step.
            let stream: [UInt8] = (0..<(longest + 1)).map { i in
                switch UInt8.random(in: 0...3, using: &random) {
                case 0: [0x05, 0x01, 0x00][i % 3]
                case 1: 0x02
                case 2: 0x00
                default: UInt8.random(in: 0...255, using: &random)
                }
            }
            var rest = stream[...]
            var over = false
            while !rest.isEmpty, !over {
                let n = Int.random(in: 1...min(8, rest.count), using: &random)
                switch client.receive(Array(rest.prefix(n))) {
                case .established, .fail: over = true
                case .send, .wait, .forward: break
                }
                rest = rest.dropFirst(n)
            }
            #expect(over)
            #expect(client.waitingFor == nil)
        }
    }
}
