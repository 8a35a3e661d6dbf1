/// The client side of a SOCKS5 exchange (RFC 1928, CONNECT only) with username/password
/// authentication (RFC 1929), as a state machine: bytes from the proxy in, actions out. It never
/// touches a socket; `SOCKSHandler` in BelayClient feeds it.
///
/// Strict where the proxy has nothing to say: a reply longer than it should be, a version byte
/// other than the specification's, or a method that was not offered ends the exchange with a
/// `SOCKS5Error`. Nothing the proxy sends before the tunnel is up is buffered beyond
/// `SOCKS5.maxReplyLength`.
public struct SOCKS5Client: Sendable {
    /// Whether the proxy may skip authentication.
    public enum Authentication: Equatable, Sendable {
        /// Credentials that only separate this connection from others (Tor's IsolateSOCKSAuth):
        /// both username/password and no authentication are offered, and a proxy without
        /// authentication simply ignores them.
        case isolating(SOCKS5Credentials)
        /// Credentials the proxy is expected to check: only username/password is offered.
        case required(SOCKS5Credentials)

        var credentials: SOCKS5Credentials {
            switch self {
            case let .isolating(c), let .required(c): c
            }
        }

        var methods: [SOCKS5.Method] {
            switch self {
            case .isolating: [.usernamePassword, .noAuthentication]
            case .required: [.usernamePassword]
            }
        }
    }

    public struct Request: Equatable, Sendable {
        public var target: SOCKS5Address
        public var port: UInt16
        public var authentication: Authentication

        public init(target: SOCKS5Address, port: UInt16, authentication: Authentication) throws(SOCKS5Error) {
            if case let .domainName(name) = target, !(1...SOCKS5.maxDomainLength).contains(name.utf8.count) {
                throw .invalidRequest("a host name sent to a SOCKS5 proxy must be 1 to 255 bytes")
            }
            self.target = target
            self.port = port
            self.authentication = authentication
        }
    }

    public enum Action: Equatable, Sendable {
        /// Write these bytes to the proxy.
        case send([UInt8])
        /// Nothing to do until more bytes arrive.
        case wait
        /// The tunnel is up; `leftover` came after the proxy's reply and belongs to the target.
        case established(leftover: [UInt8])
        /// Bytes from the target, once the tunnel is up.
        case forward([UInt8])
        /// The exchange failed; close the connection.
        case fail(SOCKS5Error)
    }

    private enum State {
        case idle(Request)
        /// The greeting is sent; `received` holds the start of the proxy's method choice.
        case awaitingMethod(Request, received: [UInt8])
        /// The username and password are sent.
        case awaitingAuthentication(Request, received: [UInt8])
        /// CONNECT is sent.
        case awaitingReply(received: [UInt8])
        case established
        case failed(SOCKS5Error)
    }

    private var state: State

    public init(_ request: Request) {
        state = .idle(request)
    }

    /// The greeting, once; later calls do nothing.
    public mutating func start() -> Action {
        guard case let .idle(request) = state else { return .wait }
        state = .awaitingMethod(request, received: [])
        let methods = request.authentication.methods.map(\.rawValue)
        return .send([SOCKS5.version, UInt8(methods.count)] + methods)
    }

    /// Bytes read from the proxy. Once the exchange has failed, this does nothing more.
    public mutating func receive(_ bytes: [UInt8]) -> Action {
        switch state {
        case .idle:
            return fail(.unexpectedBytes(.methodChoice))
        case let .awaitingMethod(request, received):
            return chooseMethod(request, received + bytes)
        case let .awaitingAuthentication(request, received):
            return authenticate(request, received + bytes)
        case let .awaitingReply(received):
            return connect(received + bytes)
        case .established:
            return .forward(bytes)
        case .failed:
            return .wait
        }
    }

    /// The proxy closed the connection. Returns the error to report, or nil if the exchange was
    /// over (the tunnel's end is not the exchange's business).
    public mutating func closed() -> SOCKS5Error? {
        guard let step = waitingFor else { return nil }
        return failure(.closed(step))
    }

    /// The client's time ran out. Returns the error to report, or nil if the exchange was over.
    public mutating func timedOut() -> SOCKS5Error? {
        guard let step = waitingFor else { return nil }
        return failure(.timedOut(step))
    }

    /// What the client waits for the proxy to say, if anything.
    public var waitingFor: SOCKS5Error.Step? {
        switch state {
        case .idle, .awaitingMethod: .methodChoice
        case .awaitingAuthentication: .authentication
        case .awaitingReply: .connectReply
        case .established, .failed: nil
        }
    }

    // MARK: Steps

    private mutating func chooseMethod(_ request: Request, _ bytes: [UInt8]) -> Action {
        let chosen: UInt8
        switch shortReply(bytes, version: SOCKS5.version, step: .methodChoice) {
        case .incomplete:
            state = .awaitingMethod(request, received: bytes)
            return .wait
        case let .invalid(error): return fail(error)
        case let .complete(value): chosen = value
        }
        guard chosen != SOCKS5.Method.noneAcceptable.rawValue else { return fail(.noAcceptableMethod) }
        guard let method = SOCKS5.Method(rawValue: chosen), request.authentication.methods.contains(method) else {
            return fail(.unofferedMethod(chosen))
        }
        switch method {
        case .usernamePassword:
            state = .awaitingAuthentication(request, received: [])
            let c = request.authentication.credentials
            let user = Array(c.username.utf8)
            let pass = Array(c.password.utf8)
            return .send([SOCKS5.authenticationVersion, UInt8(user.count)] + user + [UInt8(pass.count)] + pass)
        case .noAuthentication, .noneAcceptable:
            return sendConnect(request)
        }
    }

    private mutating func authenticate(_ request: Request, _ bytes: [UInt8]) -> Action {
        switch shortReply(bytes, version: SOCKS5.authenticationVersion, step: .authentication) {
        case .incomplete:
            state = .awaitingAuthentication(request, received: bytes)
            return .wait
        case let .invalid(error): return fail(error)
        case let .complete(status):
            guard status == SOCKS5.authenticationSucceeded else { return fail(.authenticationRefused(status)) }
            return sendConnect(request)
        }
    }

    private mutating func sendConnect(_ request: Request) -> Action {
        state = .awaitingReply(received: [])
        var out: [UInt8] = [SOCKS5.version, SOCKS5.connectCommand, SOCKS5.reserved]
        switch request.target {
        case let .ipv4(a): out += [SOCKS5.AddressType.ipv4.rawValue] + a
        case let .ipv6(a): out += [SOCKS5.AddressType.ipv6.rawValue] + a
        case let .domainName(name): out += [SOCKS5.AddressType.domainName.rawValue, UInt8(name.utf8.count)] + Array(name.utf8)
        }
        out += [UInt8(request.port >> 8), UInt8(request.port & 0xff)]
        return .send(out)
    }

    /// VER REP RSV ATYP BND.ADDR BND.PORT. A failure is reported as soon as REP is in; the rest
    /// of a failure reply does not matter.
    private mutating func connect(_ bytes: [UInt8]) -> Action {
        if let version = bytes.first, version != SOCKS5.version { return fail(.wrongVersion(version, .connectReply)) }
        if bytes.count >= 2, bytes[1] != SOCKS5.succeeded { return fail(.connectFailed(SOCKS5ReplyCode(bytes[1]))) }
        guard bytes.count >= 5 else {
            state = .awaitingReply(received: bytes)
            return .wait
        }
        let addressLength: Int
        switch SOCKS5.AddressType(rawValue: bytes[3]) {
        case .ipv4: addressLength = 4
        case .ipv6: addressLength = 16
        case .domainName: addressLength = 1 + Int(bytes[4])
        case nil: return fail(.malformedReply("unknown address type \(bytes[3])"))
        }
        let length = 4 + addressLength + 2
        guard bytes.count >= length else {
            state = .awaitingReply(received: bytes)
            return .wait
        }
        state = .established
        return .established(leftover: Array(bytes[length...]))
    }

    private enum ShortReply {
        case incomplete
        case invalid(SOCKS5Error)
        /// The second byte: the chosen method, or the authentication status.
        case complete(UInt8)
    }

    /// VER and one byte. The proxy may not send past it: the client has not asked anything
    /// more yet.
    private func shortReply(_ bytes: [UInt8], version: UInt8, step: SOCKS5Error.Step) -> ShortReply {
        if let v = bytes.first, v != version { return .invalid(.wrongVersion(v, step)) }
        guard bytes.count >= SOCKS5.shortReplyLength else { return .incomplete }
        guard bytes.count == SOCKS5.shortReplyLength else { return .invalid(.unexpectedBytes(step)) }
        return .complete(bytes[1])
    }

    private mutating func fail(_ error: SOCKS5Error) -> Action {
        .fail(failure(error))
    }

    private mutating func failure(_ error: SOCKS5Error) -> SOCKS5Error {
        state = .failed(error)
        return error
    }
}
