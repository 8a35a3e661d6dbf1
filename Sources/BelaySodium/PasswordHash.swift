import CSodium

/// Argon2id key derivation from a passphrase, through libsodium's `crypto_pwhash`.
public enum Argon2id {
    public static let saltLength = Int(crypto_pwhash_SALTBYTES)

    /// Work factors, stored beside the salt so that a state written today can be opened after a
    /// default changes.
    public struct Limits: Sendable, Equatable {
        public var operations: UInt64
        public var memoryBytes: Int

        public init(operations: UInt64, memoryBytes: Int) {
            self.operations = operations
            self.memoryBytes = memoryBytes
        }

        /// libsodium's MODERATE: 3 passes over 256 MiB (about a second on a laptop).
        public static var moderate: Limits {
            Limits(operations: UInt64(crypto_pwhash_opslimit_moderate()), memoryBytes: Int(crypto_pwhash_memlimit_moderate()))
        }

        /// Bounds for limits read back from a file: at least libsodium's minimum, at most
        /// SENSITIVE, so a tampered state cannot make the client hash with no cost or with 100 GiB.
        public var isWithinBounds: Bool {
            operations >= UInt64(crypto_pwhash_opslimit_min()) && operations <= UInt64(crypto_pwhash_opslimit_sensitive())
                && memoryBytes >= Int(crypto_pwhash_memlimit_min()) && memoryBytes <= Int(crypto_pwhash_memlimit_sensitive())
        }
    }

    public static func deriveKey(passphrase: [UInt8], salt: [UInt8], limits: Limits, length: Int = 32) throws -> SecureBytes {
        try Sodium.ensureReady()
        try SodiumError.check("Argon2id salt", salt.count, is: saltLength)
        guard limits.isWithinBounds else { throw SodiumError.operationFailed("Argon2id with out-of-range limits") }
        guard !passphrase.isEmpty else { throw SodiumError.operationFailed("Argon2id with an empty passphrase") }
        guard length >= 16, length <= 64 else { throw SodiumError.lengthOutOfRange(what: "Argon2id output", maximum: 64, actual: length) }
        return try SecureBytes(count: length, storage: .guarded) { out in
            let rc = passphrase.withUnsafeBytes { p in
                salt.withUnsafeBytes { s in
                    crypto_pwhash(
                        out.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(length),
                        p.baseAddress!.assumingMemoryBound(to: CChar.self), UInt64(p.count),
                        s.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        limits.operations, limits.memoryBytes, crypto_pwhash_ALG_ARGON2ID13)
                }
            }
            // crypto_pwhash fails only when it cannot allocate its memory.
            guard rc == 0 else { throw SodiumError.operationFailed("Argon2id (out of memory?)") }
        }
    }
}

/// ISO/IEC 7816-4 padding through libsodium's `sodium_pad`/`sodium_unpad`.
public enum Padding {
    /// Pads `data` to the next multiple of `blockSize` (always adding at least one byte).
    public static func pad(_ data: [UInt8], blockSize: Int) throws -> [UInt8] {
        try Sodium.ensureReady()
        guard blockSize > 0 else { throw SodiumError.operationFailed("padding with an empty block") }
        let capacity = (data.count / blockSize + 1) * blockSize
        var out = data + [UInt8](repeating: 0, count: capacity - data.count)
        var padded = 0
        let rc = out.withUnsafeMutableBytes { o in
            sodium_pad(&padded, o.baseAddress!.assumingMemoryBound(to: UInt8.self), data.count, blockSize, capacity)
        }
        guard rc == 0, padded == capacity else { throw SodiumError.operationFailed("padding") }
        return out
    }

    /// Removes padding added with the same block size; throws on anything that is not padding.
    public static func unpad(_ data: [UInt8], blockSize: Int) throws -> [UInt8] {
        try Sodium.ensureReady()
        guard blockSize > 0, !data.isEmpty, data.count % blockSize == 0 else { throw SodiumError.operationFailed("unpadding") }
        var length = 0
        let rc = data.withUnsafeBytes { d in
            sodium_unpad(&length, d.baseAddress!.assumingMemoryBound(to: UInt8.self), data.count, blockSize)
        }
        guard rc == 0 else { throw SodiumError.operationFailed("unpadding") }
        return Array(data.prefix(length))
    }
}
