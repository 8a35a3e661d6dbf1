import CSodium
import Foundation

/// Ed25519 signatures (RFC 8032) through libsodium's `crypto_sign`. Verification rejects
/// non-canonical encodings and small-order keys, as libsodium does.
public enum Ed25519 {
    public static let publicKeyLength = 32
    public static let seedLength = 32
    public static let secretKeyLength = 64
    public static let signatureLength = 64

    public struct SigningKey: Sendable {
        public let publicKey: [UInt8]
        /// libsodium's 64-byte form: seed followed by public key.
        let secretKey: SecureBytes

        public static func generate(random: some RandomSource = SystemRandom(), storage: SecureBytes.Storage = .wiped) throws -> SigningKey {
            try SigningKey(seed: random.secret(seedLength, storage: storage), storage: storage)
        }

        public init(seed: SecureBytes, storage: SecureBytes.Storage = .wiped) throws {
            try Sodium.ensureReady()
            try SodiumError.check("Ed25519 seed", seed.count, is: seedLength)
            var pk = [UInt8](repeating: 0, count: publicKeyLength)
            let sk = try SecureBytes(count: secretKeyLength, storage: storage) { skOut in
                let rc = seed.withUnsafeBytes { s in
                    pk.withUnsafeMutableBytes { p in
                        crypto_sign_seed_keypair(
                            p.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            skOut.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            s.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
                guard rc == 0 else { throw SodiumError.operationFailed("Ed25519 key derivation") }
            }
            self.publicKey = pk
            self.secretKey = sk
        }

        /// The 32-byte seed, from which the key can be rebuilt.
        public var seed: SecureBytes {
            get throws { try secretKey.withUnsafeBytes { try SecureBytes(copying: $0.prefix(seedLength)) } }
        }

        public func sign(_ message: some ContiguousBytes) throws -> [UInt8] {
            try Sodium.ensureReady()
            var sig = [UInt8](repeating: 0, count: signatureLength)
            let rc = secretKey.withUnsafeBytes { sk in
                message.withUnsafeBytes { m in
                    sig.withUnsafeMutableBytes { s in
                        crypto_sign_detached(
                            s.baseAddress!.assumingMemoryBound(to: UInt8.self), nil,
                            m.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(m.count),
                            sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
            guard rc == 0 else { throw SodiumError.operationFailed("Ed25519 signing") }
            return sig
        }
    }

    /// True only for a valid signature by `publicKey` over `message`. Wrong sizes are simply invalid.
    public static func verify(signature: some ContiguousBytes, message: some ContiguousBytes, publicKey: some ContiguousBytes) -> Bool {
        guard (try? Sodium.ensureReady()) != nil else { return false }
        return signature.withUnsafeBytes { s in
            message.withUnsafeBytes { m in
                publicKey.withUnsafeBytes { pk in
                    guard s.count == signatureLength, pk.count == publicKeyLength else { return false }
                    return crypto_sign_verify_detached(
                        s.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        m.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(m.count),
                        pk.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
                }
            }
        }
    }
}
