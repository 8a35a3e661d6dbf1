import BelaySodium
import Crypto
import Foundation

/// ML-KEM-768 (FIPS 203) from swift-crypto, the only primitive in Belay that is not libsodium's.
/// Keys are kept as their 64-byte seed, from which swift-crypto rebuilds the key pair.
public enum PQKEM {
    public static let publicKeyLength = 1184
    public static let ciphertextLength = 1088
    public static let seedLength = 64
    public static let sharedSecretLength = 32

    public struct KeyPair: Sendable {
        public let publicKey: [UInt8]
        let seed: SecureBytes

        public static func generate() throws -> KeyPair {
            let key = try MLKEM768.PrivateKey()
            var seed = [UInt8](key.seedRepresentation)
            defer { Sodium.wipe(&seed) }
            return KeyPair(publicKey: [UInt8](key.publicKey.rawRepresentation), seed: try SecureBytes(copying: seed))
        }

        public init(seed: SecureBytes) throws {
            try SodiumError.check("ML-KEM seed", seed.count, is: seedLength)
            let key = try seed.withUnsafeBytes { try MLKEM768.PrivateKey(seedRepresentation: Data($0), publicKey: nil) }
            self.init(publicKey: [UInt8](key.publicKey.rawRepresentation), seed: seed)
        }

        private init(publicKey: [UInt8], seed: SecureBytes) {
            self.publicKey = publicKey
            self.seed = seed
        }

        public var seedBytes: SecureBytes { seed }

        public func decapsulate(_ ciphertext: [UInt8]) throws -> SecureBytes {
            try SodiumError.check("ML-KEM ciphertext", ciphertext.count, is: ciphertextLength)
            let key = try seed.withUnsafeBytes { try MLKEM768.PrivateKey(seedRepresentation: Data($0), publicKey: nil) }
            let shared = try key.decapsulate(ciphertext)
            return try shared.withUnsafeBytes { try SecureBytes(copying: $0) }
        }
    }

    /// Encapsulates to `publicKey`: the ciphertext to send and the shared secret it carries.
    public static func encapsulate(to publicKey: [UInt8]) throws -> (ciphertext: [UInt8], secret: SecureBytes) {
        try SodiumError.check("ML-KEM public key", publicKey.count, is: publicKeyLength)
        let result = try MLKEM768.PublicKey(rawRepresentation: publicKey).encapsulate()
        let secret = try result.sharedSecret.withUnsafeBytes { try SecureBytes(copying: $0) }
        return ([UInt8](result.encapsulated), secret)
    }
}
