import NIOCore

/// Where a connection comes from, at the granularity one party controls: a whole IPv4 address,
/// or an IPv6 /64 (the smallest prefix an ISP hands a customer, so a host owns at least that
/// many addresses). An IPv4-mapped IPv6 address counts as its IPv4 address.
///
/// Kept only in memory, for the lifetime of the connections and rate state it keys; never
/// logged or stored (docs/THREAT-MODEL.md).
struct SourceKey: Hashable, Sendable {
    /// 4 bytes for IPv4, the first 8 bytes for IPv6; anything else is one shared key.
    let prefix: [UInt8]

    static let unknown = SourceKey(prefix: [])

    init(prefix: [UInt8]) {
        self.prefix = prefix
    }

    init(_ address: SocketAddress?) {
        switch address {
        case let .v4(a)?:
            self.init(prefix: withUnsafeBytes(of: a.address.sin_addr.s_addr) { Array($0) })
        case let .v6(a)?:
            let bytes = withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
            // ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket.
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
                self.init(prefix: Array(bytes[12..<16]))
            } else {
                self.init(prefix: Array(bytes[0..<8]))
            }
        default:
            self = .unknown
        }
    }
}
