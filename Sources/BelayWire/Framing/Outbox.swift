import NIOCore

/// What one side of a connection has to send: encoded commands or replies gathered into a
/// bundle, bundles sealed into Noise transport frames, and frames waiting for one socket write.
///
/// A bundle is filled as far as its count and size allow before the next one starts, so a burst
/// leaves in as few frames as hold it (docs/PROTOCOL.md §2.4). Cutting a burst where padding
/// costs least would save bytes, but a burst's total on the wire is what a network observer sees,
/// and that cutting spells out how many messages the burst holds (tried and reverted in session
/// 9: docs/PERFORMANCE.md, docs/THREAT-MODEL.md).
public struct Outbox: Sendable {
    public enum Error: Swift.Error, Equatable, Sendable {
        /// An entry empty or longer than `Bundle.maxEntryLength`: nothing of it was kept.
        case entryTooLong(Int)
    }

    /// The bundle being filled: entries, each behind its u16 length.
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

    /// Whether sealed frames are waiting to be taken.
    public var hasFrames: Bool { frames.readableBytes > 0 }

    /// Adds one encoded command or reply (at most `Bundle.maxEntryLength` bytes).
    public mutating func add(_ entry: ByteBuffer, sealingWith transport: inout NoiseTransport) throws {
        try add(sealingWith: &transport) { $0.writeImmutableBuffer(entry) }
    }

    /// Adds one command or reply that `encode` writes straight into the bundle, so its bytes are
    /// copied once on their way to the cipher. An entry that comes out empty or longer than
    /// `Bundle.maxEntryLength` is taken back and refused before anything is sealed, so a refusal
    /// leaves the transport's nonces where they were.
    public mutating func add(sealingWith transport: inout NoiseTransport, encoding encode: (inout ByteBuffer) -> Void) throws {
        let start = bundle.writerIndex
        bundle.writeInteger(UInt16(0))
        encode(&bundle)
        let length = bundle.writerIndex - start - Bundle.entryHeaderLength
        guard length > 0, length <= Bundle.maxEntryLength else {
            bundle.moveWriterIndex(to: start)
            throw Error.entryTooLong(length)
        }
        bundle.setInteger(UInt16(length), at: start)
        guard entries == WireLimits.maxBundleEntries || bundle.readableBytes > WireLimits.maxPlaintextLength else {
            entries += 1
            return
        }
        // It does not fit: the bundle before it is sealed and it starts the next (rare, so it is
        // copied aside). A lone entry always fits, so the sealed bundle is never empty.
        var entry = allocator.buffer(capacity: length + Bundle.entryHeaderLength)
        entry.writeImmutableBuffer(bundle.getSlice(at: start, length: length + Bundle.entryHeaderLength)!)
        bundle.moveWriterIndex(to: start)
        try seal(with: &transport)
        bundle.writeBuffer(&entry)
        entries = 1
    }

    /// Encrypts the waiting entries, padded to their bucket, as one frame.
    public mutating func seal(with transport: inout NoiseTransport) throws {
        guard entries > 0 else { return }
        defer {
            bundle.clear()
            entries = 0
        }
        Bundle.pad(&bundle)
        frames.reserveCapacity(frames.writerIndex + WireLimits.frameHeaderLength + bundle.readableBytes + WireLimits.tagLength)
        try transport.writeFrame(plaintext: bundle, into: &frames)
    }

    /// The frames to write, if any, leaving the outbox without them.
    public mutating func takeFrames() -> ByteBuffer? {
        guard frames.readableBytes > 0 else { return nil }
        defer { frames = allocator.buffer(capacity: 0) }
        return frames
    }
}
