import BelaySodium

/// Noise §5.2 SymmetricState with SHA-256 (§12.5): chaining key, handshake hash and a cipher.
struct SymmetricState: Sendable {
    static let hashLength = SHA256.outputLength

    private(set) var chainingKey: SecureBytes
    private(set) var handshakeHash: [UInt8]
    var cipher = CipherState()

    init(protocolName: String) throws {
        let name = Array(protocolName.utf8)
        if name.count <= Self.hashLength {
            handshakeHash = name + [UInt8](repeating: 0, count: Self.hashLength - name.count)
        } else {
            handshakeHash = try SHA256.hash(name)
        }
        chainingKey = try SecureBytes(copying: handshakeHash)
    }

    mutating func mixHash(_ data: [UInt8]) throws {
        handshakeHash = try SHA256.hash(handshakeHash + data)
    }

    /// MixKey: (ck, temp_k) = HKDF(ck, ikm, 2). Noise's HKDF is RFC 5869 with salt = ck and empty info.
    mutating func mixKey(_ inputKeyMaterial: SecureBytes) throws {
        let (ck, k) = try hkdf2(inputKeyMaterial)
        chainingKey = ck
        cipher.initializeKey(k)
    }

    mutating func encryptAndHash(_ plaintext: [UInt8]) throws -> [UInt8] {
        let ciphertext = try cipher.encrypt(ad: handshakeHash, plaintext: plaintext)
        try mixHash(ciphertext)
        return ciphertext
    }

    mutating func decryptAndHash(_ ciphertext: [UInt8]) throws -> [UInt8] {
        let plaintext = try cipher.decrypt(ad: handshakeHash, ciphertext: ciphertext)
        try mixHash(ciphertext)
        return plaintext
    }

    /// Split(): two cipher states, initiator-to-responder first.
    func split() throws -> (CipherState, CipherState) {
        let (k1, k2) = try hkdf2(SecureBytes(count: 0) { _ in })
        return (CipherState(key: k1), CipherState(key: k2))
    }

    private func hkdf2(_ ikm: SecureBytes) throws -> (SecureBytes, SecureBytes) {
        let okm = try chainingKey.withUnsafeBytes { ck in
            try ikm.withUnsafeBytes { i in
                try HKDFSHA256.deriveKey(salt: Array(ck), ikm: Array(i), info: [UInt8](), length: 2 * Self.hashLength)
            }
        }
        return try okm.withUnsafeBytes { o in
            (try SecureBytes(copying: o[0..<Self.hashLength]), try SecureBytes(copying: o[Self.hashLength..<(2 * Self.hashLength)]))
        }
    }
}
