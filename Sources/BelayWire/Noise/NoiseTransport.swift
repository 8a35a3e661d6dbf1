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

    /// Encrypts `plaintext` and appends it to `out` as one frame (length prefix included).
    public mutating func writeFrame(plaintext: ByteBuffer, into out: inout ByteBuffer) throws {
        let length = plaintext.readableBytes + WireLimits.tagLength
        guard length <= WireLimits.maxFrameLength else { throw NoiseError.messageTooLong(length) }
        out.writeInteger(UInt16(length))
        var failure: NoiseError?
        _ = plaintext.withUnsafeReadableBytes { p in
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { o in
                do {
                    try sendCipher.encrypt(
                        ad: UnsafeRawBufferPointer(start: nil, count: 0), plaintext: p,
                        into: UnsafeMutableRawBufferPointer(rebasing: o[0..<length]))
                    return length
                } catch {
                    failure = error as? NoiseError ?? .decryptionFailed
                    return 0
                }
            }
        }
        if let failure {
            out.moveWriterIndex(to: out.writerIndex - 2)
            throw failure
        }
    }

    /// Decrypts one frame's payload into a new buffer.
    public mutating func open(frame: ByteBuffer, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        let length = frame.readableBytes - WireLimits.tagLength
        guard length >= 0 else { throw NoiseError.messageTooShort }
        var out = allocator.buffer(capacity: length)
        var failure: NoiseError?
        _ = frame.withUnsafeReadableBytes { c in
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { o in
                do {
                    try receiveCipher.decrypt(
                        ad: UnsafeRawBufferPointer(start: nil, count: 0), ciphertext: c,
                        into: UnsafeMutableRawBufferPointer(rebasing: o[0..<length]))
                    return length
                } catch {
                    failure = error as? NoiseError ?? .decryptionFailed
                    return 0
                }
            }
        }
        if let failure { throw failure }
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
