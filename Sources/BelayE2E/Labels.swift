/// Every KDF and AEAD context in the end-to-end layer has its own label, so that no key or
/// ciphertext made for one purpose can be accepted for another (docs/PROTOCOL.md §8).
enum Label {
    static let invitationSignature = Array("belay invitation signature v1".utf8)
    static let pairingSecret = Array("belay pairing secret v1".utf8)
    static let pairingEnvelope = Array("belay pairing envelope v1".utf8)
    static let confirmationSignature = Array("belay confirmation signature v1".utf8)
    static let ratchetRoot = Array("belay ratchet root v1".utf8)
    static let ratchetMessageKey = Array("belay ratchet message key v1".utf8)
    static let ratchetAD = Array("belay ratchet ad v1".utf8)
    static let safetyNumber = Array("belay safety number v1".utf8)
}

/// HMAC-SHA256 chain-key inputs from the Double Ratchet specification (§5.2 recommends
/// distinct constants for the message key and the next chain key).
enum ChainConstant {
    static let messageKey: [UInt8] = [0x01]
    static let chainKey: [UInt8] = [0x02]
}
