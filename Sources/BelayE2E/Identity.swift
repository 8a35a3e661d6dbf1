import BelaySodium

/// A person's long-term keys: one Ed25519 key for signatures and one X25519 key for key
/// agreement. They are separate keys for separate purposes; neither is converted into the other.
public struct Identity: Sendable {
    public let signing: Ed25519.SigningKey
    public let agreement: X25519.KeyPair

    public init(signing: Ed25519.SigningKey, agreement: X25519.KeyPair) {
        self.signing = signing
        self.agreement = agreement
    }

    public static func generate(random: some RandomSource = SystemRandom()) throws -> Identity {
        try Identity(signing: .generate(random: random, storage: .guarded), agreement: .generate(random: random, storage: .guarded))
    }

    public var publicIdentity: PublicIdentity { PublicIdentity(signing: signing.publicKey, agreement: agreement.publicKey) }

    /// The 64 secret bytes (Ed25519 seed, X25519 scalar) for the encrypted local store.
    public func secretBytes() throws -> SecureBytes {
        let seed = try signing.seed
        return try SecureBytes(count: 64, storage: .guarded) { out in
            seed.withUnsafeBytes { out.copyMemory(from: $0) }
            agreement.secretKey.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: out[32...]).copyMemory(from: $0) }
        }
    }

    public init(secretBytes: SecureBytes) throws {
        try SodiumError.check("identity secret", secretBytes.count, is: 64)
        let seed = try secretBytes.withUnsafeBytes { try SecureBytes(copying: $0[0..<32], storage: .guarded) }
        let scalar = try secretBytes.withUnsafeBytes { try SecureBytes(copying: $0[32..<64], storage: .guarded) }
        self.init(signing: try .init(seed: seed, storage: .guarded), agreement: try .init(secretKey: scalar))
    }
}

/// The public half of an identity: what a contact pins and what the safety number covers.
public struct PublicIdentity: Sendable, Equatable, Hashable {
    public static let length = 64
    public let signing: [UInt8]
    public let agreement: [UInt8]

    public init(signing: [UInt8], agreement: [UInt8]) {
        self.signing = signing
        self.agreement = agreement
    }

    public init(bytes: [UInt8]) throws {
        guard bytes.count == Self.length else { throw E2EError.malformed("identity key") }
        self.init(signing: Array(bytes[0..<32]), agreement: Array(bytes[32..<64]))
    }

    public var bytes: [UInt8] { signing + agreement }
}
