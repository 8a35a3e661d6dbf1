import CSodium

/// ChaCha20-Poly1305 as in RFC 8439 (libsodium's `_ietf` variant): 96-bit nonce, 128-bit tag.
/// Used by the Noise transport, whose nonce is a counter and never repeats under one key.
public enum ChaChaPoly {
    public static let keyLength = 32
    public static let nonceLength = 12
    public static let tagLength = 16
    /// libsodium's own bound for one message under this construction.
    public static let maxPlaintextLength = Int(min(UInt64(Int.max), UInt64(crypto_aead_chacha20poly1305_ietf_messagebytes_max())))

    /// Encrypts `plaintext` into `output`, which must hold `plaintext.count + tagLength` bytes.
    public static func seal(
        key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        plaintext: UnsafeRawBufferPointer, ad: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) throws {
        try Sodium.ensureReady()
        try SodiumError.check("ChaCha20-Poly1305 key", key.count, is: keyLength)
        try SodiumError.check("ChaCha20-Poly1305 nonce", nonce.count, is: nonceLength)
        try SodiumError.check("ChaCha20-Poly1305 output", output.count, is: plaintext.count + tagLength)
        var written: UInt64 = 0
        let rc = crypto_aead_chacha20poly1305_ietf_encrypt(
            output.baseAddress!.assumingMemoryBound(to: UInt8.self), &written,
            plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
            ad.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(ad.count),
            nil,
            nonce.baseAddress!.assumingMemoryBound(to: UInt8.self),
            key.baseAddress!.assumingMemoryBound(to: UInt8.self))
        guard rc == 0, written == UInt64(output.count) else { throw SodiumError.operationFailed("ChaCha20-Poly1305 encryption") }
    }

    /// Decrypts and verifies; `output` must hold `ciphertext.count - tagLength` bytes.
    public static func open(
        key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        ciphertext: UnsafeRawBufferPointer, ad: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) throws {
        try Sodium.ensureReady()
        try SodiumError.check("ChaCha20-Poly1305 key", key.count, is: keyLength)
        try SodiumError.check("ChaCha20-Poly1305 nonce", nonce.count, is: nonceLength)
        guard ciphertext.count >= tagLength else { throw SodiumError.authenticationFailed }
        try SodiumError.check("ChaCha20-Poly1305 output", output.count, is: ciphertext.count - tagLength)
        var written: UInt64 = 0
        let rc = nonNull(output) { out in
            crypto_aead_chacha20poly1305_ietf_decrypt(
                out, &written, nil,
                ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(ciphertext.count),
                ad.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(ad.count),
                nonce.baseAddress!.assumingMemoryBound(to: UInt8.self),
                key.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        guard rc == 0 else { throw SodiumError.authenticationFailed }
    }

    public static func seal(key: SecureBytes, nonce: [UInt8], plaintext: [UInt8], ad: [UInt8]) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: plaintext.count + tagLength)
        try withBuffers(key, nonce, plaintext, ad, &out) { k, n, p, a, o in
            try seal(key: k, nonce: n, plaintext: p, ad: a, into: o)
        }
        return out
    }

    public static func open(key: SecureBytes, nonce: [UInt8], ciphertext: [UInt8], ad: [UInt8]) throws -> [UInt8] {
        guard ciphertext.count >= tagLength else { throw SodiumError.authenticationFailed }
        var out = [UInt8](repeating: 0, count: ciphertext.count - tagLength)
        try withBuffers(key, nonce, ciphertext, ad, &out) { k, n, c, a, o in
            try open(key: k, nonce: n, ciphertext: c, ad: a, into: o)
        }
        return out
    }
}

/// XChaCha20-Poly1305 (libsodium's `_ietf` variant): 192-bit nonce, safe to pick at random.
/// Used wherever a key encrypts many messages with random nonces (local storage, sealed bodies).
public enum XChaChaPoly {
    public static let keyLength = 32
    public static let nonceLength = 24
    public static let tagLength = 16

    /// `nonce ‖ ciphertext` under a nonce drawn at random: the form stored records and small
    /// sealed values take.
    public static func sealWithNonce(
        key: SecureBytes, plaintext: [UInt8], ad: [UInt8],
        random: some RandomSource = SystemRandom()
    ) throws -> [UInt8] {
        let nonce = random.bytes(nonceLength)
        return nonce + (try seal(key: key, nonce: nonce, plaintext: plaintext, ad: ad))
    }

    /// Opens what `sealWithNonce` made; a value too short to hold a nonce and a tag fails to
    /// authenticate like any other.
    public static func openWithNonce(key: SecureBytes, sealed: [UInt8], ad: [UInt8]) throws -> [UInt8] {
        guard sealed.count >= nonceLength + tagLength else { throw SodiumError.authenticationFailed }
        return try open(key: key, nonce: Array(sealed.prefix(nonceLength)), ciphertext: Array(sealed.dropFirst(nonceLength)), ad: ad)
    }

    public static func seal(key: SecureBytes, nonce: [UInt8], plaintext: [UInt8], ad: [UInt8]) throws -> [UInt8] {
        try Sodium.ensureReady()
        try SodiumError.check("XChaCha20-Poly1305 key", key.count, is: keyLength)
        try SodiumError.check("XChaCha20-Poly1305 nonce", nonce.count, is: nonceLength)
        var out = [UInt8](repeating: 0, count: plaintext.count + tagLength)
        var written: UInt64 = 0
        let rc = withBuffers(key, nonce, plaintext, ad, &out) { k, n, p, a, o in
            crypto_aead_xchacha20poly1305_ietf_encrypt(
                o.baseAddress!.assumingMemoryBound(to: UInt8.self), &written,
                p.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(p.count),
                a.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(a.count), nil,
                n.baseAddress!.assumingMemoryBound(to: UInt8.self), k.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        guard rc == 0 else { throw SodiumError.operationFailed("XChaCha20-Poly1305 encryption") }
        return out
    }

    public static func open(key: SecureBytes, nonce: [UInt8], ciphertext: [UInt8], ad: [UInt8]) throws -> [UInt8] {
        try Sodium.ensureReady()
        try SodiumError.check("XChaCha20-Poly1305 key", key.count, is: keyLength)
        try SodiumError.check("XChaCha20-Poly1305 nonce", nonce.count, is: nonceLength)
        guard ciphertext.count >= tagLength else { throw SodiumError.authenticationFailed }
        var out = [UInt8](repeating: 0, count: ciphertext.count - tagLength)
        let rc = withBuffers(key, nonce, ciphertext, ad, &out) { k, n, c, a, o in
            nonNull(o) { out in
                crypto_aead_xchacha20poly1305_ietf_decrypt(
                    out, nil, nil,
                    c.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(c.count),
                    a.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(a.count),
                    n.baseAddress!.assumingMemoryBound(to: UInt8.self), k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        guard rc == 0 else { throw SodiumError.authenticationFailed }
        return out
    }
}

@inline(__always)
func withBuffers<R>(
    _ key: SecureBytes, _ a: [UInt8], _ b: [UInt8], _ c: [UInt8], _ out: inout [UInt8],
    _ body: (
        UnsafeRawBufferPointer, UnsafeRawBufferPointer, UnsafeRawBufferPointer, UnsafeRawBufferPointer,
        UnsafeMutableRawBufferPointer
    ) throws -> R
) rethrows -> R {
    try key.withUnsafeBytes { k in
        try a.withUnsafeBytes { pa in
            try b.withUnsafeBytes { pb in
                try c.withUnsafeBytes { pc in
                    try out.withUnsafeMutableBytes { po in try body(k, pa, pb, pc, po) }
                }
            }
        }
    }
}

/// libsodium wants a valid pointer even for zero-length buffers, whose Swift base address may be nil.
@inline(__always)
func nonNull<R>(_ buffer: UnsafeMutableRawBufferPointer, _ body: (UnsafeMutablePointer<UInt8>) -> R) -> R {
    if let base = buffer.baseAddress { return body(base.assumingMemoryBound(to: UInt8.self)) }
    var scratch: UInt8 = 0
    return withUnsafeMutablePointer(to: &scratch) { body($0) }
}

@inline(__always)
func nonNull<R>(_ buffer: UnsafeRawBufferPointer, _ body: (UnsafePointer<UInt8>) -> R) -> R {
    if let base = buffer.baseAddress { return body(base.assumingMemoryBound(to: UInt8.self)) }
    var scratch: UInt8 = 0
    return withUnsafePointer(to: &scratch) { body($0) }
}
