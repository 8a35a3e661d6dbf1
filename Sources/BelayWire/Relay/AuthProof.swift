import BelaySodium

/// The AUTH signature (docs/PROTOCOL.md §3.1, §4): Ed25519 over a label, the session hash,
/// the role and the entity id.
public enum AuthProof {
    public static let label = Array("belay relay auth v1".utf8)

    public static func message(sessionHash: [UInt8], role: AuthRole, entity: EntityID) -> [UInt8] {
        label + sessionHash + [role.rawValue] + entity.bytes
    }

    public static func sign(key: Ed25519.SigningKey, sessionHash: [UInt8], role: AuthRole, entity: EntityID) throws -> [UInt8] {
        try key.sign(message(sessionHash: sessionHash, role: role, entity: entity))
    }

    public static func verify(signature: [UInt8], publicKey: [UInt8], sessionHash: [UInt8], role: AuthRole, entity: EntityID) -> Bool {
        Ed25519.verify(signature: signature, message: message(sessionHash: sessionHash, role: role, entity: entity), publicKey: publicKey)
    }
}
