import CSodium
import Foundation

/// SHA-256 (FIPS 180-4) through libsodium.
public enum SHA256 {
    public static let outputLength = 32
    public static let blockLength = 64

    public static func hash(_ data: some ContiguousBytes) throws -> [UInt8] {
        try Sodium.ensureReady()
        var out = [UInt8](repeating: 0, count: outputLength)
        let rc = data.withUnsafeBytes { d in
            out.withUnsafeMutableBytes { o in
                crypto_hash_sha256(
                    o.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    d.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(d.count))
            }
        }
        guard rc == 0 else { throw SodiumError.operationFailed("SHA-256") }
        return out
    }
}

/// HMAC-SHA-256 (RFC 2104) through libsodium's `crypto_auth_hmacsha256_*`, which accepts keys
/// of any length. The message may be given in parts, as Noise and HKDF need.
public enum HMACSHA256 {
    public static let outputLength = 32

    public static func authenticate(key: UnsafeRawBufferPointer, parts: [UnsafeRawBufferPointer]) throws -> SecureBytes {
        try Sodium.ensureReady()
        do {
            return try SecureBytes(count: outputLength) { out in
                var state = crypto_auth_hmacsha256_state()
                defer { withUnsafeMutableBytes(of: &state) { Sodium.wipe($0) } }
                // An empty key still needs a valid pointer; HMAC pads it to zeros either way.
                let rc = nonNull(key) { crypto_auth_hmacsha256_init(&state, $0, key.count) }
                guard rc == 0 else { throw SodiumError.operationFailed("HMAC-SHA-256 init") }
                for part in parts where part.count > 0 {
                    guard crypto_auth_hmacsha256_update(&state, part.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(part.count)) == 0
                    else { throw SodiumError.operationFailed("HMAC-SHA-256 update") }
                }
                guard crypto_auth_hmacsha256_final(&state, out.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
                else { throw SodiumError.operationFailed("HMAC-SHA-256 final") }
            }
        } catch let error as SodiumError {
            throw error
        } catch {
            throw SodiumError.operationFailed("HMAC-SHA-256")
        }
    }

    public static func authenticate(key: some ContiguousBytes, message: some ContiguousBytes) throws -> SecureBytes {
        try key.withUnsafeBytes { k in
            try message.withUnsafeBytes { m in try authenticate(key: k, parts: [m]) }
        }
    }
}

/// HKDF with HMAC-SHA-256, exactly as RFC 5869 (extract, then expand).
public enum HKDFSHA256 {
    /// RFC 5869 §2.3: L <= 255 * HashLen.
    public static let maxOutputLength = 255 * HMACSHA256.outputLength

    public static func extract(salt: some ContiguousBytes, ikm: some ContiguousBytes) throws -> SecureBytes {
        // RFC 5869 §2.2: an absent salt is HashLen zero bytes; HMAC pads a short key with zeros,
        // so an empty key gives the same result.
        try HMACSHA256.authenticate(key: salt, message: ikm)
    }

    public static func expand(prk: SecureBytes, info: some ContiguousBytes, length: Int) throws -> SecureBytes {
        guard length >= 0, length <= maxOutputLength else {
            throw SodiumError.lengthOutOfRange(what: "HKDF output", maximum: maxOutputLength, actual: length)
        }
        return try prk.withUnsafeBytes { k in
            try info.withUnsafeBytes { infoBytes in
                try SecureBytes(count: length) { out in
                    var previous: SecureBytes? = nil
                    var written = 0
                    var counter: UInt8 = 1
                    while written < length {
                        let block: SecureBytes = try withUnsafeBytes(of: counter) { c in
                            if let previous {
                                return try previous.withUnsafeBytes { p in try HMACSHA256.authenticate(key: k, parts: [p, infoBytes, c]) }
                            }
                            return try HMACSHA256.authenticate(key: k, parts: [infoBytes, c])
                        }
                        let take = min(HMACSHA256.outputLength, length - written)
                        block.withUnsafeBytes { b in
                            (out.baseAddress! + written).copyMemory(from: b.baseAddress!, byteCount: take)
                        }
                        written += take
                        previous = block
                        counter &+= 1
                    }
                }
            }
        }
    }

    public static func deriveKey(salt: some ContiguousBytes, ikm: some ContiguousBytes, info: some ContiguousBytes, length: Int) throws -> SecureBytes {
        try expand(prk: extract(salt: salt, ikm: ikm), info: info, length: length)
    }
}

/// BLAKE2b (RFC 7693) through libsodium's `crypto_generichash`, optionally keyed.
public enum BLAKE2b {
    public static let minOutputLength = Int(crypto_generichash_BYTES_MIN)
    public static let maxOutputLength = Int(crypto_generichash_BYTES_MAX)
    public static let maxKeyLength = Int(crypto_generichash_KEYBYTES_MAX)

    public static func hash(_ data: some ContiguousBytes, outputLength: Int = 32, key: [UInt8] = []) throws -> [UInt8] {
        try Sodium.ensureReady()
        guard outputLength >= minOutputLength, outputLength <= maxOutputLength else {
            throw SodiumError.lengthOutOfRange(what: "BLAKE2b output", maximum: maxOutputLength, actual: outputLength)
        }
        guard key.count <= maxKeyLength else { throw SodiumError.lengthOutOfRange(what: "BLAKE2b key", maximum: maxKeyLength, actual: key.count) }
        var out = [UInt8](repeating: 0, count: outputLength)
        let rc = data.withUnsafeBytes { d in
            key.withUnsafeBytes { k in
                out.withUnsafeMutableBytes { o in
                    crypto_generichash(
                        o.baseAddress!.assumingMemoryBound(to: UInt8.self), outputLength,
                        d.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(d.count),
                        k.baseAddress?.assumingMemoryBound(to: UInt8.self), k.count)
                }
            }
        }
        guard rc == 0 else { throw SodiumError.operationFailed("BLAKE2b") }
        return out
    }
}
