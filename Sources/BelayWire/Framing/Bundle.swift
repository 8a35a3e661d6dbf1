import NIOCore

/// One transport plaintext carries a bundle: one or more commands (client → relay) or replies
/// (relay → client), each behind a u16 length (docs/PROTOCOL.md §2.4). Whatever one side has to
/// send at once leaves in one Noise transport message, so it costs one AEAD call and one length
/// prefix on the wire instead of one per command.
public enum Bundle {
    public enum Error: Swift.Error, Equatable, Sendable {
        /// A plaintext with no entry at all.
        case empty
        /// An entry whose length is zero or runs past the end of the plaintext.
        case badEntryLength
        /// More than `WireLimits.maxBundleEntries` entries.
        case tooManyEntries
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

    /// Splits a decrypted plaintext into its entries, checking every length before slicing and
    /// the count before handing any entry out. Any error means the peer does not speak the
    /// protocol: the relay closes the connection.
    public static func entries(of plaintext: ByteBuffer) throws(Error) -> [ByteBuffer] {
        guard plaintext.readableBytes > 0 else { throw .empty }
        var rest = plaintext
        var out: [ByteBuffer] = []
        while rest.readableBytes > 0 {
            guard out.count < WireLimits.maxBundleEntries else { throw .tooManyEntries }
            guard let length = rest.readInteger(as: UInt16.self), length > 0,
                let entry = rest.readSlice(length: Int(length))
            else { throw .badEntryLength }
            out.append(entry)
        }
        return out
    }
}

/// What one side of a connection has to send: encoded commands or replies gathered into a
/// bundle, bundles sealed into Noise transport frames, and frames waiting for one socket write.
public struct Outbox: Sendable {
    private var bundle: ByteBuffer
    private var entries = 0
    private var frames: ByteBuffer
    private let allocator: ByteBufferAllocator

    public init(allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.allocator = allocator
        bundle = allocator.buffer(capacity: 0)
        frames = allocator.buffer(capacity: 0)
    }

    /// Whether entries are waiting to be sealed.
    public var hasEntries: Bool { entries > 0 }

    /// Adds one encoded command or reply (at most `Bundle.maxEntryLength` bytes), sealing the
    /// waiting bundle first if this one would not fit in it.
    public mutating func add(_ entry: ByteBuffer, sealingWith transport: inout NoiseTransport) throws {
        if !Bundle.fits(entry.readableBytes, in: bundle, entries: entries) { try seal(with: &transport) }
        Bundle.append(entry, to: &bundle)
        entries += 1
    }

    /// Encrypts the waiting entries as one transport message.
    public mutating func seal(with transport: inout NoiseTransport) throws {
        guard entries > 0 else { return }
        defer {
            bundle.clear()
            entries = 0
        }
        try transport.writeFrame(plaintext: bundle, into: &frames)
    }

    /// Queues a frame that is not a transport message (a handshake message).
    public mutating func addFrame(_ payload: [UInt8]) {
        FrameDecoder.writeFrame(payload, into: &frames)
    }

    /// The frames to write, if any, leaving the outbox without them.
    public mutating func takeFrames() -> ByteBuffer? {
        guard frames.readableBytes > 0 else { return nil }
        defer { frames = allocator.buffer(capacity: 0) }
        return frames
    }
}
