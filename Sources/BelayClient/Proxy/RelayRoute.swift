import BelaySodium
import BelayWire
import NIOCore

/// How the client reaches relays: straight to them, or through a SOCKS5 proxy (Tor's SocksPort)
/// that also resolves their names. With a proxy, no connection goes around it and no relay name
/// is looked up on this machine.
public enum RelayRoute: Equatable, Hashable, Sendable {
    case direct
    case socks5(ProxyURL)

    /// Sets the proxy for every command that reaches a relay; `--proxy` overrides it.
    public static let environmentVariable = "BELAY_PROXY"
    /// How long the proxy may take to open the tunnel. Tor may first build a circuit and, for an
    /// onion relay, meet the onion service at a rendezvous point: seconds, tens on a slow network.
    public static let tunnelTimeout: TimeAmount = .seconds(60)
    /// Random bytes behind each isolation username and password: 128 bits, so no two
    /// connections ever share credentials by chance.
    static let isolationBytes = 16

    /// The route asked for: `--proxy` if given, else `BELAY_PROXY` unless empty, else direct.
    public static func configured(option: String?, environment: [String: String]) throws(ClientError) -> RelayRoute {
        let source: String
        let text: String
        if let option {
            (source, text) = ("--proxy", option)
        } else if let value = environment[environmentVariable], !value.isEmpty {
            (source, text) = (environmentVariable, value)
        } else {
            return .direct
        }
        do {
            return .socks5(try ProxyURL(parsing: text))
        } catch {
            throw .invalidProxy(source: source, why: error.description)
        }
    }
}

extension ProxyURL {
    /// The SOCKS authentication of one new connection.
    ///
    /// Without credentials in the URL, every connection gets a fresh random username and
    /// password. Tor isolates streams by them (IsolateSOCKSAuth, on by default on a SocksPort),
    /// so each connection, and so each queue (`RelayPool`'s lanes), gets a circuit of its own,
    /// and the relay cannot link a person's queues by the exit they arrive from. Credentials
    /// written in the URL are for a proxy that checks them: they are sent unchanged on every
    /// connection, and then credentials isolate nothing (docs/CLI.md, "Proxies and Tor").
    func authentication(random: some RandomSource) -> SOCKS5Client.Authentication {
        if let given = credentials { return .required(given) }
        // 22 characters of base64url each: always valid RFC 1929 credentials.
        guard
            let fresh = try? SOCKS5Credentials(
                username: Base64URL.encode(random.bytes(RelayRoute.isolationBytes)),
                password: Base64URL.encode(random.bytes(RelayRoute.isolationBytes)))
        else { preconditionFailure("22 characters are valid SOCKS credentials") }
        return .isolating(fresh)
    }
}
