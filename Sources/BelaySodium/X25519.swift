import CSodium

/// X25519 Diffie-Hellman (RFC 7748) through libsodium's `crypto_scalarmult`.
public enum X25519 {
    public static let keyLength = 32

    public struct KeyPair: Sendable {
        public let publicKey: [UInt8]
        public let secretKey: SecureBytes

        public static func generate(random: some RandomSource = SystemRandom(), storage: SecureBytes.Storage = .wiped) throws -> KeyPair {
            try KeyPair(secretKey: random.secret(keyLength, storage: storage))
        }

        /// Rebuilds a key pair from its 32-byte secret scalar.
        public init(secretKey: SecureBytes) throws {
            try SodiumError.check("X25519 secret key", secretKey.count, is: keyLength)
            var pk = [UInt8](repeating: 0, count: keyLength)
            let rc = secretKey.withUnsafeBytes { sk in
                pk.withUnsafeMutableBytes { crypto_scalarmult_curve25519_base($0.baseAddress!, sk.baseAddress!) }
            }
            guard rc == 0 else { throw SodiumError.operationFailed("X25519 public key derivation") }
            self.publicKey = pk
            self.secretKey = secretKey
        }

        /// A key pair read back from authenticated storage that holds both halves, as written from
        /// a pair built by `init(secretKey:)`: no scalar multiplication to recompute the public
        /// half (the ratchet restores one per stored state). Only the lengths are checked.
        public init(restoringSecretKey secretKey: SecureBytes, publicKey: [UInt8]) throws {
            try SodiumError.check("X25519 secret key", secretKey.count, is: keyLength)
            try SodiumError.check("X25519 public key", publicKey.count, is: keyLength)
            self.publicKey = publicKey
            self.secretKey = secretKey
        }

        /// DH(self, peer). Throws `.invalidPublicKey` when the result is all zeros, i.e. the peer
        /// sent a low-order point: such an output would be known to anyone.
        public func sharedSecret(with peerPublicKey: [UInt8]) throws -> SecureBytes {
            try X25519.sharedSecret(secretKey: secretKey, peerPublicKey: peerPublicKey)
        }
    }

    public static func sharedSecret(secretKey: SecureBytes, peerPublicKey: [UInt8]) throws -> SecureBytes {
        try Sodium.ensureReady()
        try SodiumError.check("X25519 secret key", secretKey.count, is: keyLength)
        try SodiumError.check("X25519 public key", peerPublicKey.count, is: keyLength)
        return try SecureBytes(count: keyLength) { out in
            let rc = secretKey.withUnsafeBytes { sk in
                peerPublicKey.withUnsafeBytes { pk in
                    crypto_scalarmult_curve25519(
                        out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        sk.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        pk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            guard rc == 0 else { throw SodiumError.invalidPublicKey }
        }
    }
}
