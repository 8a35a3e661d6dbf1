import NIOCore

/// One transport plaintext carries a bundle: one or more commands (client → relay) or replies
/// (relay → client), each behind a u16 length, then zeros up to the frame's bucket
/// (docs/PROTOCOL.md §2.4). What one side has to send at once shares a few frames (`Outbox`),
/// instead of costing a frame per command.
public enum Bundle {
    public enum Error: Swift.Error, Equatable, Sendable {
        /// A plaintext with no entry at all.
        case empty
        /// An entry whose length is zero or runs past the end of the plaintext.
        case badEntryLength
        /// More than `WireLimits.maxBundleEntries` entries.
        case tooManyEntries
        /// A non-zero byte after the entry length 0 that ends the entries.
        case dirtyPadding
    }

    /// Bytes of the length in front of each entry.
    public static let entryHeaderLength = 2
    /// The largest single command or reply: a bundle of one, filling a transport plaintext.
    public static let maxEntryLength = WireLimits.maxPlaintextLength - entryHeaderLength

    /// Whether an entry of `length` bytes still fits in `bundle` (by size and by count).
    public static func fits(_ length: Int, in bundle: ByteBuffer, entries: Int) -> Bool {
        entries < WireLimits.maxBundleEntries
            && bundle.readableBytes + entryHeaderLength + length <= WireLimits.maxPlaintextLength
    }

    /// Appends one encoded command or reply (1 to `maxEntryLength` bytes).
    public static func append(_ entry: ByteBuffer, to bundle: inout ByteBuffer) {
        precondition(entry.readableBytes > 0 && entry.readableBytes <= maxEntryLength, "bundle entry length out of range")
        bundle.writeInteger(UInt16(entry.readableBytes))
        bundle.writeImmutableBuffer(entry)
    }

    /// Pads a bundle with zeros so that, sealed, it fills the smallest frame bucket that holds
    /// it. The zeros read as an entry length of 0, which ends the entries.
    public static func pad(_ bundle: inout ByteBuffer) {
        let sealed = bundle.readableBytes + WireLimits.tagLength
        guard let bucket = WireLimits.frameBodyBuckets.first(where: { $0 >= sealed }) else {
            preconditionFailure("a bundle is at most WireLimits.maxPlaintextLength bytes")
        }
        bundle.writeRepeatingByte(0, count: bucket - sealed)
    }

    static func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var acc: UInt8 = 0
        for byte in bytes { acc |= byte }
        return acc == 0
    }

    /// Splits a decrypted plaintext into its entries, checking every length before slicing and
    /// the count before handing any entry out. An entry length of 0 (or a single byte left)
    /// ends the entries, and all that follows must be zero. Any error means the peer does not
    /// speak the protocol: the relay closes the connection.
    public static func entries(of plaintext: ByteBuffer) throws(Error) -> [ByteBuffer] {
        var rest = plaintext
        var out: [ByteBuffer] = []
        while rest.readableBytes >= entryHeaderLength {
            let length = rest.readInteger(as: UInt16.self)!
            if length == 0 { break }
            guard out.count < WireLimits.maxBundleEntries else { throw .tooManyEntries }
            guard let entry = rest.readSlice(length: Int(length)) else { throw .badEntryLength }
            out.append(entry)
        }
        guard !out.isEmpty else { throw .empty }
        // Over raw memory: a frame's padding can be most of 64 KiB, checked on every frame.
        guard rest.withUnsafeReadableBytes({ Self.isZero($0) }) else { throw .dirtyPadding }
        return out
    }
}
