import BelayClient
import BelaySodium
import BelayWire

/// A queue created by `owner` with a sender key set, the common starting point.
struct SecuredQueue {
    let recipient: EntityID
    let sender: EntityID
    let recipientKey: Ed25519.SigningKey
    let senderKey: Ed25519.SigningKey

    static func make(on owner: RelayConnection) async throws -> SecuredQueue {
        let rk = try Ed25519.SigningKey.generate()
        let sk = try Ed25519.SigningKey.generate()
        let (r, s) = try await owner.createQueue(recipientKey: rk)
        try await owner.secure(recipient: r, senderKey: sk.publicKey)
        return SecuredQueue(recipient: r, sender: s, recipientKey: rk, senderKey: sk)
    }

    /// A new connection that has proven this queue's sender key.
    func sender(on relay: RelayHarness) async throws -> RelayConnection {
        let c = try await relay.connect()
        try await c.authorise(.sender, sender, key: senderKey)
        return c
    }
}
