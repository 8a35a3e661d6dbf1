import BelaySodium
import NIOCore

/// Noise §5.1 CipherState with the ChaChaPoly cipher (§12.3): key `k` and 64-bit nonce `n`.
public struct CipherState: Sendable {
    /// Noise reserves 2^64-1; we refuse to use it and close instead of rekeying.
    static let maxNonce = UInt64.max - 1

    private(set) var key: SecureBytes?
    private(set) var nonce: UInt64 = 0

    init(key: SecureBytes? = nil) {
        self.key = key
    }

    var hasKey: Bool { key != nil }

    mutating func initializeKey(_ key: SecureBytes) {
        self.key = key
        nonce = 0
    }

    /// ENCRYPT(k, n, ad, plaintext) into `output` (plaintext.count + 16 bytes).
    mutating func encrypt(ad: UnsafeRawBufferPointer, plaintext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws {
        guard let key else {
            output.copyMemory(from: plaintext)
            return
        }
        guard nonce < Self.maxNonce else { throw NoiseError.nonceExhausted }
        var n = Self.nonceBytes(nonce)
        do {
            try key.withUnsafeBytes { k in
                try withUnsafeBytes(of: &n) { nb in
                    try ChaChaPoly.seal(key: k, nonce: nb, plaintext: plaintext, ad: ad, into: output)
                }
            }
        } catch {
            // Only a wrong-sized key or nonce reaches here: a programming error, reported as such.
            throw NoiseError.invalidKey
        }
        nonce += 1
    }

    mutating func decrypt(ad: UnsafeRawBufferPointer, ciphertext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws {
        guard let key else {
            output.copyMemory(from: ciphertext)
            return
        }
        guard nonce < Self.maxNonce else { throw NoiseError.nonceExhausted }
        guard ciphertext.count >= WireLimits.tagLength else { throw NoiseError.messageTooShort }
        var n = Self.nonceBytes(nonce)
        do {
            try key.withUnsafeBytes { k in
                try withUnsafeBytes(of: &n) { nb in
                    try ChaChaPoly.open(key: k, nonce: nb, ciphertext: ciphertext, ad: ad, into: output)
                }
            }
        } catch {
            throw NoiseError.decryptionFailed
        }
        // Noise §5.1: the nonce advances only on success.
        nonce += 1
    }

    /// Array convenience for the handshake, where speed does not matter.
    mutating func encrypt(ad: [UInt8], plaintext: [UInt8]) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: plaintext.count + (hasKey ? WireLimits.tagLength : 0))
        try ad.withUnsafeBytes { a throws in
            try plaintext.withUnsafeBytes { p throws in
                try out.withUnsafeMutableBytes { o throws in try encrypt(ad: a, plaintext: p, into: o) }
            }
        }
        return out
    }

    mutating func decrypt(ad: [UInt8], ciphertext: [UInt8]) throws -> [UInt8] {
        if hasKey && ciphertext.count < WireLimits.tagLength { throw NoiseError.messageTooShort }
        var out = [UInt8](repeating: 0, count: ciphertext.count - (hasKey ? WireLimits.tagLength : 0))
        try ad.withUnsafeBytes { a throws in
            try ciphertext.withUnsafeBytes { c throws in
                try out.withUnsafeMutableBytes { o throws in try decrypt(ad: a, ciphertext: c, into: o) }
            }
        }
        return out
    }

    /// Noise §12.3: 32 bits of zeros followed by the little-endian 64-bit nonce.
    /// Three 32-bit words lay out as exactly 12 bytes (a (UInt32, UInt64) tuple would be padded to 16).
    @inline(__always)
    private static func nonceBytes(_ n: UInt64) -> (UInt32, UInt32, UInt32) {
        (0, UInt32(truncatingIfNeeded: n).littleEndian, UInt32(truncatingIfNeeded: n >> 32).littleEndian)
    }
}
