import BelaySodium
import Foundation

/// The keys that protect the local state. A master key comes from the passphrase through
/// Argon2id (or, with `--no-passphrase`, is random and stored beside the data it protects);
/// two keys derive from it, one per purpose: sealing records and tagging names for lookup.
struct Vault: Sendable {
    static let sealLabel = Array("belay store seal v1".utf8)
    static let indexLabel = Array("belay store index v1".utf8)
    static let recordLabel = Array("belay store record v1".utf8)

    let sealKey: SecureBytes
    let indexKey: SecureBytes

    init(master: SecureBytes) throws {
        sealKey = try master.withUnsafeBytes { m in
            try HKDFSHA256.deriveKey(salt: [UInt8](repeating: 0, count: 32), ikm: m, info: Self.sealLabel, length: 32)
        }
        indexKey = try master.withUnsafeBytes { m in
            try HKDFSHA256.deriveKey(salt: [UInt8](repeating: 0, count: 32), ikm: m, info: Self.indexLabel, length: 32)
        }
    }

    /// XChaCha20-Poly1305 with a random nonce; `context` (the table and the row's lookup key) is
    /// bound as associated data so that a record moved to another row or table does not open.
    func seal(_ plaintext: [UInt8], context: String) throws -> [UInt8] {
        try XChaChaPoly.sealWithNonce(key: sealKey, plaintext: plaintext, ad: Self.recordLabel + Array(context.utf8))
    }

    func open(_ sealed: [UInt8], context: String) throws -> [UInt8] {
        guard sealed.count >= XChaChaPoly.nonceLength + XChaChaPoly.tagLength else { throw ClientError.stateDamaged("a record is truncated") }
        do {
            return try XChaChaPoly.openWithNonce(key: sealKey, sealed: sealed, ad: Self.recordLabel + Array(context.utf8))
        } catch {
            throw ClientError.stateDamaged("a record does not authenticate (\(context.split(separator: ":").first ?? ""))")
        }
    }

    /// A keyed hash of a contact name: the database can find a contact and enforce unique names
    /// without storing the name in the clear.
    func tag(_ name: String) throws -> [UInt8] {
        try indexKey.withUnsafeBytes { k in try HMACSHA256.authenticate(key: k, message: Array(name.lowercased().utf8)) }.unprotectedCopy()
    }

    func sealRecord<T: Encodable>(_ value: T, context: String) throws -> [UInt8] {
        // No escaped slashes: base64 of random bytes would otherwise give records whose length
        // varies with their random content, and a duress check-in must leave records of the
        // same sizes as a normal one.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        var json = [UInt8](try encoder.encode(value))
        defer { Sodium.wipe(&json) }
        return try seal(json, context: context)
    }

    func openRecord<T: Decodable>(_ type: T.Type, _ sealed: [UInt8], context: String) throws -> T {
        var json = try open(sealed, context: context)
        defer { Sodium.wipe(&json) }
        do {
            return try JSONDecoder().decode(type, from: Data(json))
        } catch {
            throw ClientError.stateDamaged("a record does not decode (\(context.split(separator: ":").first ?? ""))")
        }
    }
}
