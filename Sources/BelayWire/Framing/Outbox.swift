import NIOCore

/// What one side of a connection has to send: encoded commands or replies gathered with their
/// length prefixes, cut into as few bundles as hold them (`FramePacking`), sealed into Noise
/// transport frames, and waiting for one socket write.
public struct Outbox: Sendable {
    public enum Error: Swift.Error, Equatable, Sendable {
        /// An entry longer than `Bundle.maxEntryLength`: nothing of it was kept.
        case entryTooLong(Int)
    }

    /// Entries gathered before they are sealed, whatever the caller does between seals: the
    /// outbox seals on its own before it would hold more (a bound on memory and on the packing).
    public static let maxPendingBytes = 4 * WireLimits.maxPlaintextLength
    public static let maxPendingEntries = 16 * WireLimits.maxBundleEntries

    /// The entries, each behind its u16 length, back to back.
    private var pending: ByteBuffer
    /// Each pending entry's bytes, prefix included.
    private var sizes: [Int] = []
    /// A frame's plaintext when it cannot be padded where it lies (another frame follows it).
    private var plain: ByteBuffer
    private var frames: ByteBuffer
    private let allocator: ByteBufferAllocator

    public init(allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.allocator = allocator
        pending = allocator.buffer(capacity: 0)
        plain = allocator.buffer(capacity: 0)
        frames = allocator.buffer(capacity: 0)
    }

    /// Whether entries are waiting to be sealed.
    public var hasEntries: Bool { !sizes.isEmpty }

    /// Whether sealed frames are waiting to be taken.
    public var hasFrames: Bool { frames.readableBytes > 0 }

    /// Adds one encoded command or reply (at most `Bundle.maxEntryLength` bytes).
    public mutating func add(_ entry: ByteBuffer, sealingWith transport: inout NoiseTransport) throws {
        try add(sealingWith: &transport) { $0.writeImmutableBuffer(entry) }
    }

    /// Adds one command or reply that `encode` writes straight into the outbox, so its bytes
    /// are copied once on their way to the cipher. An entry that comes out empty or longer than
    /// `Bundle.maxEntryLength` is taken back and refused before anything is sealed, so a refusal
    /// leaves the transport's nonces where they were.
    public mutating func add(sealingWith transport: inout NoiseTransport, encoding encode: (inout ByteBuffer) -> Void) throws {
        let full = pending.readableBytes > Self.maxPendingBytes - WireLimits.maxPlaintextLength || sizes.count >= Self.maxPendingEntries
        let start = pending.writerIndex
        pending.writeInteger(UInt16(0))
        encode(&pending)
        let length = pending.writerIndex - start - Bundle.entryHeaderLength
        guard length > 0, length <= Bundle.maxEntryLength else {
            pending.moveWriterIndex(to: start)
            throw Error.entryTooLong(length)
        }
        pending.setInteger(UInt16(length), at: start)
        guard full else {
            sizes.append(length + Bundle.entryHeaderLength)
            return
        }
        // Over the bound: what came before is sealed first (rare, so the new entry is copied aside).
        var entry = allocator.buffer(capacity: length + Bundle.entryHeaderLength)
        entry.writeImmutableBuffer(pending.getSlice(at: start, length: length + Bundle.entryHeaderLength)!)
        pending.moveWriterIndex(to: start)
        try seal(with: &transport)
        pending.writeBuffer(&entry)
        sizes.append(length + Bundle.entryHeaderLength)
    }

    /// Encrypts the waiting entries, each frame padded to its bucket. If the cipher fails
    /// part-way (only at nonce exhaustion, when the connection must close anyway), the entries
    /// not yet sealed are dropped with the rest.
    public mutating func seal(with transport: inout NoiseTransport) throws {
        guard !sizes.isEmpty else { return }
        defer {
            pending.clear()
            sizes.removeAll(keepingCapacity: true)
        }
        let ends = FramePacking.frameEnds(sizes: sizes)
        frames.reserveCapacity(frames.writerIndex + FramePacking.wireBytes(sizes: sizes, ends: ends))
        var first = 0
        for end in ends {
            let length = sizes[first..<end].reduce(0, +)
            if end == sizes.count {
                // The last frame is padded where it lies: nothing follows it.
                Bundle.pad(&pending)
                try transport.writeFrame(plaintext: pending, into: &frames)
            } else {
                plain.clear()
                plain.writeImmutableBuffer(pending.readSlice(length: length)!)
                Bundle.pad(&plain)
                try transport.writeFrame(plaintext: plain, into: &frames)
            }
            first = end
        }
    }

    /// The frames to write, if any, leaving the outbox without them.
    public mutating func takeFrames() -> ByteBuffer? {
        guard frames.readableBytes > 0 else { return nil }
        defer { frames = allocator.buffer(capacity: 0) }
        return frames
    }
}
