import BelayE2E
import BelaySodium
import Foundation

/// The check-in and duress codes as a real boundary (docs/CHECKINS.md "Duress and codes"). The
/// timer keys that renew and cancel a check-in's timers, and the key that signs its notices, are
/// sealed under a random renewal key; that key is stored twice, each copy sealed under a key
/// derived with Argon2id from one of the codes, in an order drawn at random. Someone with the
/// device and its passphrase but neither code cannot renew, cancel or end the check-in, so the
/// alerts go out. Each slot also holds its code's random tag, which the notices carry; only the
/// contacts were told which tag is the duress code's, so the device cannot say which code it was
/// given, not even to someone who reads its state with the code in hand.
struct CodeSlots: Codable, Sendable {
    /// Shortest code accepted, in characters.
    static let minimumLength = 8
    static let slotLabel = Array("belay check-in code slot v1".utf8)
    static let seedLabel = Array("belay check-in timer seed v1".utf8)

    struct Slot: Codable, Sendable {
        var salt: Data
        /// nonce (24) ‖ XChaCha20-Poly1305(Argon2id(code, salt), tag (16) ‖ renewal key (32)).
        var sealed: Data
    }

    var operations: UInt64
    var memoryBytes: Int
    var slots: [Slot]

    var limits: Argon2id.Limits { Argon2id.Limits(operations: operations, memoryBytes: memoryBytes) }

    /// New slots for two codes, the renewal key they both open, and the two codes' tags.
    static func make(checkin: [UInt8], duress: [UInt8], limits: Argon2id.Limits)
        throws -> (slots: CodeSlots, key: SecureBytes, checkinTag: [UInt8], duressTag: [UInt8])
    {
        for code in [checkin, duress] where String(decoding: code, as: UTF8.self).count < minimumLength {
            throw ClientError.invalidInput(
                "each code must be at least \(minimumLength) characters; a few unrelated words are easy to remember and hard to guess")
        }
        guard checkin != duress else { throw ClientError.invalidInput("the check-in code and the duress code must differ") }
        let renewal = try SecureBytes.random(count: XChaChaPoly.keyLength)
        var slots: [Slot] = []
        let tags = (SystemRandom().bytes(CheckinNotice.tagLength), SystemRandom().bytes(CheckinNotice.tagLength))
        for (code, tag) in [(checkin, tags.0), (duress, tags.1)] {
            let salt = SystemRandom().bytes(Argon2id.saltLength)
            let key = try Argon2id.deriveKey(passphrase: code, salt: salt, limits: limits)
            var plain = tag + renewal.unprotectedCopy()
            defer { Sodium.wipe(&plain) }
            slots.append(Slot(salt: Data(salt), sealed: Data(try XChaChaPoly.sealWithNonce(key: key, plaintext: plain, ad: slotLabel))))
        }
        if SystemRandom().bytes(1)[0] & 1 == 1 { slots.reverse() }
        return (CodeSlots(operations: limits.operations, memoryBytes: limits.memoryBytes, slots: slots), renewal, tags.0, tags.1)
    }

    /// The entered code's tag and the renewal key; nil for a wrong code. Both slots are always
    /// tried, so the time taken does not say which one opened.
    func open(code: [UInt8]) throws -> (tag: [UInt8], key: SecureBytes)? {
        guard limits.isWithinBounds, slots.count == 2 else { throw ClientError.stateDamaged("the check-in's code slots") }
        var found: ([UInt8], SecureBytes)?
        for slot in slots {
            let key = try Argon2id.deriveKey(passphrase: code, salt: [UInt8](slot.salt), limits: limits)
            guard var plain = try? XChaChaPoly.openWithNonce(key: key, sealed: [UInt8](slot.sealed), ad: Self.slotLabel) else { continue }
            defer { Sodium.wipe(&plain) }
            guard plain.count == CheckinNotice.tagLength + XChaChaPoly.keyLength else { throw ClientError.stateDamaged("the check-in's code slots") }
            found = (Array(plain.prefix(CheckinNotice.tagLength)), try SecureBytes(copying: plain.dropFirst(CheckinNotice.tagLength)))
        }
        return found
    }

    static func sealSeed(_ seed: Data, key: SecureBytes) throws -> Data {
        Data(try XChaChaPoly.sealWithNonce(key: key, plaintext: [UInt8](seed), ad: seedLabel))
    }

    static func openSeed(_ sealed: Data, key: SecureBytes) throws -> Data {
        guard let seed = try? XChaChaPoly.openWithNonce(key: key, sealed: [UInt8](sealed), ad: seedLabel) else {
            throw ClientError.stateDamaged("a check-in timer key does not open with the code's key")
        }
        return Data(seed)
    }
}

extension CheckinRecord {
    /// The record as stored: with codes set, each timer key's seed sealed under the renewal key.
    func sealedForStorage(_ key: SecureBytes?) throws -> CheckinRecord {
        guard codeSlots != nil else { return self }
        guard let key else { throw ClientError.stateDamaged("a check-in with codes saved without its renewal key") }
        var copy = self
        for i in copy.targets.indices where !copy.targets[i].timerSeed.isEmpty {
            copy.targets[i].timerSeed = try CodeSlots.sealSeed(copy.targets[i].timerSeed, key: key)
        }
        copy.authoritySeed = try authoritySeed.map { try CodeSlots.sealSeed($0, key: key) }
        copy.pastAuthoritySeeds = try pastAuthoritySeeds.map { try $0.map { try CodeSlots.sealSeed($0, key: key) } }
        return copy
    }

    mutating func openSeeds(_ key: SecureBytes) throws {
        for i in targets.indices where !targets[i].timerSeed.isEmpty {
            targets[i].timerSeed = try CodeSlots.openSeed(targets[i].timerSeed, key: key)
        }
        authoritySeed = try authoritySeed.map { try CodeSlots.openSeed($0, key: key) }
        pastAuthoritySeeds = try pastAuthoritySeeds.map { try $0.map { try CodeSlots.openSeed($0, key: key) } }
    }
}
