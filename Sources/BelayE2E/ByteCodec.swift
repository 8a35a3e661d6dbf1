import BelaySodium

/// A bounded big-endian reader for Belay's binary formats (the end-to-end layer's, and the
/// client's stored records). Every read checks the remaining
/// length first and throws `E2EError.malformed` naming the field, never reading past the end.
public struct ByteReader {
    private let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var remaining: Int { bytes.count - offset }

    public mutating func take(_ count: Int, _ field: String) throws -> [UInt8] {
        guard count >= 0, remaining >= count else { throw E2EError.malformed(field) }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    public mutating func u8(_ field: String) throws -> UInt8 { try take(1, field)[0] }

    public mutating func u16(_ field: String) throws -> UInt16 {
        let b = try take(2, field)
        return UInt16(b[0]) << 8 | UInt16(b[1])
    }

    public mutating func u32(_ field: String) throws -> UInt32 {
        try take(4, field).reduce(0) { $0 << 8 | UInt32($1) }
    }

    public mutating func u64(_ field: String) throws -> UInt64 {
        try take(8, field).reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// A u16-length-prefixed byte string of at most `maximum` bytes.
    public mutating func bytes16(_ field: String, maximum: Int) throws -> [UInt8] {
        let n = Int(try u16(field))
        guard n <= maximum else { throw E2EError.malformed(field) }
        return try take(n, field)
    }

    public func expectEnd(_ what: String) throws {
        guard remaining == 0 else { throw E2EError.malformed("\(what): trailing bytes") }
    }
}

public struct ByteWriter {
    public var bytes: [UInt8] = []

    public init() {}

    public mutating func put(_ b: some Sequence<UInt8>) { bytes.append(contentsOf: b) }
    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { bytes += [UInt8(v >> 8), UInt8(v & 0xff)] }
    public mutating func u32(_ v: UInt32) { for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) } }
    public mutating func u64(_ v: UInt64) { for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) } }

    public mutating func bytes16(_ b: [UInt8]) {
        precondition(b.count <= Int(UInt16.max), "field longer than its u16 length prefix")
        u16(UInt16(b.count))
        put(b)
    }
}
