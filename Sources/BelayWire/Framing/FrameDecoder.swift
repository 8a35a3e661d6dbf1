import NIOCore

/// Splits a byte stream into the fixed-size handshake message and then sealed frames
/// (docs/PROTOCOL.md §2.2): a frame's length is itself encrypted, so the decoder needs the
/// session's receiving cipher to find where a frame ends. Pure: bytes in, plaintexts out; a
/// partial frame consumes nothing it cannot keep and waits for more.
public struct FrameDecoder: Sendable {
    public enum Error: Swift.Error, Equatable, Sendable {
        /// A sealed length or body that does not decrypt: not our peer, or a broken stream.
        case decryptionFailed
        /// A body length that is not one of `WireLimits.frameBodyBuckets`.
        case notABucket(Int)
    }

    /// Where the next bytes belong.
    private enum Phase: Sendable {
        case length
        /// The length has been opened (its nonce is spent); the body has not fully arrived.
        case body(length: Int)
    }

    private var buffer: ByteBuffer
    private var phase = Phase.length

    public init(allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        buffer = allocator.buffer(capacity: 0)
    }

    /// Bytes received but not yet returned; never more than one largest frame plus what the
    /// last read delivered.
    public var bufferedByteCount: Int { buffer.readableBytes }

    public mutating func append(_ bytes: ByteBuffer) {
        var bytes = bytes
        if buffer.readableBytes == 0 {
            buffer = bytes
        } else {
            buffer.writeBuffer(&bytes)
        }
    }

    public mutating func append(_ bytes: [UInt8]) {
        buffer.writeBytes(bytes)
    }

    /// Takes exactly `count` raw bytes (a handshake message), or nil if fewer are buffered.
    public mutating func nextRaw(count: Int) -> ByteBuffer? {
        buffer.readSlice(length: count)
    }

    /// Drops everything buffered (a connection that will only be closed).
    public mutating func discard() {
        buffer.clear()
    }

    /// The next complete frame's plaintext (a padded bundle), nil if it has not fully arrived.
    public mutating func nextFrame(
        opening transport: inout NoiseTransport, allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(Error) -> ByteBuffer? {
        if case .length = phase {
            guard let header = buffer.readSlice(length: WireLimits.frameHeaderLength) else { return nil }
            let length: Int
            do {
                length = try transport.openLength(header: header)
            } catch {
                throw .decryptionFailed
            }
            guard WireLimits.frameBodyBuckets.contains(length) else { throw .notABucket(length) }
            phase = .body(length: length)
        }
        guard case let .body(length) = phase, let body = buffer.readSlice(length: length) else { return nil }
        phase = .length
        if buffer.readableBytes == 0 { buffer.clear() } else if buffer.readerIndex > 65536 { buffer.discardReadBytes() }
        do {
            return try transport.open(frame: body, allocator: allocator)
        } catch {
            throw .decryptionFailed
        }
    }
}
