import NIOCore

/// Splits a byte stream into length-prefixed frames (docs/PROTOCOL.md §2.2). Pure: bytes in,
/// frames out; a partial frame consumes nothing and waits for more.
public struct FrameDecoder: Sendable {
    public enum Error: Swift.Error, Equatable {
        /// A zero length prefix: never produced by a conforming peer.
        case emptyFrame
    }

    private var buffer: ByteBuffer

    public init(allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        buffer = allocator.buffer(capacity: 0)
    }

    /// Bytes received but not yet returned as a frame; never more than one maximum frame plus
    /// what the last read delivered.
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

    /// Takes exactly `count` raw bytes (the preamble), or nil if fewer are buffered.
    public mutating func nextRaw(count: Int) -> ByteBuffer? {
        buffer.readSlice(length: count)
    }

    /// Looks at the next `count` raw bytes without consuming them.
    public func peekRaw(count: Int) -> [UInt8]? {
        buffer.getBytes(at: buffer.readerIndex, length: count)
    }

    /// The next complete frame's payload, nil if it has not fully arrived.
    public mutating func nextFrame() throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) else { return nil }
        guard length > 0 else { throw Error.emptyFrame }
        guard buffer.readableBytes >= WireLimits.frameHeaderLength + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: WireLimits.frameHeaderLength)
        let frame = buffer.readSlice(length: Int(length))!
        if buffer.readableBytes == 0 { buffer.clear() } else if buffer.readerIndex > 65536 { buffer.discardReadBytes() }
        return frame
    }

    /// Writes one frame: the length prefix and the payload.
    public static func writeFrame(_ payload: some Collection<UInt8>, into out: inout ByteBuffer) {
        precondition(payload.count > 0 && payload.count <= WireLimits.maxFrameLength, "frame length out of range")
        out.writeInteger(UInt16(payload.count))
        out.writeBytes(payload)
    }
}
