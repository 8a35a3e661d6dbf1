import BelaySodium
import NIOCore

/// The two cipher states of an established Noise session plus its handshake hash, with
/// ByteBuffer entry points for the hot path (no intermediate arrays).
public struct NoiseTransport: Sendable {
    private var sendCipher: CipherState
    private var receiveCipher: CipherState
    /// The session hash `h`, which AUTH signatures bind to (docs/PROTOCOL.md §4).
    public let handshakeHash: [UInt8]

    init(send: CipherState, receive: CipherState, handshakeHash: [UInt8]) {
        sendCipher = send
        receiveCipher = receive
        self.handshakeHash = handshakeHash
    }

    /// Encrypts `plaintext` (a bundle) and appends it to `out` as one frame: the sealed length,
    /// then the sealed body (docs/PROTOCOL.md §2.2), which uses two nonces, the length's first.
    /// A bundle not already padded to its bucket (`Bundle.pad`) is padded in a copy.
    public mutating func writeFrame(plaintext: ByteBuffer, into out: inout ByteBuffer) throws {
        var plaintext = plaintext
        guard plaintext.readableBytes <= WireLimits.maxPlaintextLength else {
            throw NoiseError.messageTooLong(plaintext.readableBytes + WireLimits.tagLength)
        }
        if !WireLimits.frameBodyBuckets.contains(plaintext.readableBytes + WireLimits.tagLength) { Bundle.pad(&plaintext) }
        let length = plaintext.readableBytes + WireLimits.tagLength
        let start = out.writerIndex
        let header = UInt16(length).bigEndian
        do {
            try withUnsafeBytes(of: header) { try seal($0, into: &out) }
            try plaintext.withUnsafeReadableBytes { try seal($0, into: &out) }
        } catch {
            out.moveWriterIndex(to: start)
            throw error
        }
    }

    private mutating func seal(_ plaintext: UnsafeRawBufferPointer, into out: inout ByteBuffer) throws {
        try Self.write(plaintext.count + WireLimits.tagLength, into: &out) { o in
            try sendCipher.encrypt(ad: UnsafeRawBufferPointer(start: nil, count: 0), plaintext: plaintext, into: o)
        }
    }

    /// Appends `length` bytes that `fill` writes to `out`, or nothing if it throws.
    private static func write(
        _ length: Int, into out: inout ByteBuffer, _ fill: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        var failure: (any Error)?
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { o in
            do {
                try fill(UnsafeMutableRawBufferPointer(rebasing: o[0..<length]))
                return length
            } catch {
                failure = error
                return 0
            }
        }
        if let failure { throw failure }
    }

    /// Decrypts a frame's sealed length (`WireLimits.frameHeaderLength` bytes): the length of
    /// the body that follows.
    public mutating func openLength(header: ByteBuffer) throws -> Int {
        guard header.readableBytes == WireLimits.frameHeaderLength else { throw NoiseError.messageTooShort }
        // Into two bytes on the stack: every frame has one, so no buffer is allocated for it.
        var length: UInt16 = 0
        try header.withUnsafeReadableBytes { sealed in
            try withUnsafeMutableBytes(of: &length) { plain in
                try receiveCipher.decrypt(ad: UnsafeRawBufferPointer(start: nil, count: 0), ciphertext: sealed, into: plain)
            }
        }
        return Int(UInt16(bigEndian: length))
    }

    /// Decrypts one frame's body (or sealed length) into a new buffer.
    public mutating func open(frame: ByteBuffer, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        let length = frame.readableBytes - WireLimits.tagLength
        guard length >= 0 else { throw NoiseError.messageTooShort }
        var out = allocator.buffer(capacity: length)
        try frame.withUnsafeReadableBytes { c in
            try Self.write(length, into: &out) { o in
                try receiveCipher.decrypt(ad: UnsafeRawBufferPointer(start: nil, count: 0), ciphertext: c, into: o)
            }
        }
        return out
    }

    /// Array forms, for tests and vectors.
    public mutating func encrypt(_ plaintext: [UInt8]) throws -> [UInt8] {
        try sendCipher.encrypt(ad: [], plaintext: plaintext)
    }

    public mutating func decrypt(_ ciphertext: [UInt8]) throws -> [UInt8] {
        try receiveCipher.decrypt(ad: [], ciphertext: ciphertext)
    }
}
