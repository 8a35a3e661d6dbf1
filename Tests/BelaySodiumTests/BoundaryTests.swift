import BelaySodium
import Testing

@Suite struct BoundaryTests {
    @Test func wrongSizesAreTypedErrors() throws {
        let key = try SecureBytes(copying: [UInt8](repeating: 1, count: 31))
        #expect(throws: SodiumError.invalidLength(what: "ChaCha20-Poly1305 key", expected: 32, actual: 31)) {
            try ChaChaPoly.seal(key: key, nonce: [UInt8](repeating: 0, count: 12), plaintext: [1], ad: [])
        }
        let goodKey = try SecureBytes(copying: [UInt8](repeating: 1, count: 32))
        #expect(throws: SodiumError.invalidLength(what: "XChaCha20-Poly1305 nonce", expected: 24, actual: 12)) {
            try XChaChaPoly.seal(key: goodKey, nonce: [UInt8](repeating: 0, count: 12), plaintext: [1], ad: [])
        }
        #expect(throws: SodiumError.authenticationFailed) {
            try ChaChaPoly.open(key: goodKey, nonce: [UInt8](repeating: 0, count: 12), ciphertext: [1, 2, 3], ad: [])
        }
        #expect(throws: SodiumError.invalidLength(what: "X25519 public key", expected: 32, actual: 3)) {
            try X25519.sharedSecret(secretKey: goodKey, peerPublicKey: [1, 2, 3])
        }
        #expect(throws: SodiumError.lengthOutOfRange(what: "HKDF output", maximum: 8160, actual: 8161)) {
            try HKDFSHA256.deriveKey(salt: [UInt8](), ikm: [1], info: [UInt8](), length: 8161)
        }
    }

    @Test func tamperedCiphertextFails() throws {
        let key = try SecureBytes.random(count: 32)
        let nonce = [UInt8](repeating: 9, count: 24)
        var sealed = try XChaChaPoly.seal(key: key, nonce: nonce, plaintext: Array("hello".utf8), ad: [1])
        #expect(try XChaChaPoly.open(key: key, nonce: nonce, ciphertext: sealed, ad: [1]) == Array("hello".utf8))
        #expect(throws: SodiumError.authenticationFailed) { try XChaChaPoly.open(key: key, nonce: nonce, ciphertext: sealed, ad: [2]) }
        sealed[0] ^= 1
        #expect(throws: SodiumError.authenticationFailed) { try XChaChaPoly.open(key: key, nonce: nonce, ciphertext: sealed, ad: [1]) }
    }

    @Test func aSealedBoxOpensOnlyWithItsKey() throws {
        let alice = try X25519.KeyPair.generate()
        let mallory = try X25519.KeyPair.generate()
        var box = try SealedBox.seal(Array("tag".utf8), to: alice.publicKey)
        #expect(box.count == 3 + SealedBox.overhead)
        #expect(try SealedBox.open(box, keyPair: alice) == Array("tag".utf8))
        #expect(throws: SodiumError.authenticationFailed) { try SealedBox.open(box, keyPair: mallory) }
        #expect(throws: SodiumError.authenticationFailed) { try SealedBox.open([1, 2, 3], keyPair: alice) }
        box[box.count - 1] ^= 1
        #expect(throws: SodiumError.authenticationFailed) { try SealedBox.open(box, keyPair: alice) }
        #expect(throws: SodiumError.invalidLength(what: "sealed box public key", expected: 32, actual: 3)) { try SealedBox.seal([1], to: [1, 2, 3]) }
    }

    @Test func emptyPlaintextRoundTrips() throws {
        let key = try SecureBytes.random(count: 32)
        let nonce = [UInt8](repeating: 0, count: 12)
        let sealed = try ChaChaPoly.seal(key: key, nonce: nonce, plaintext: [], ad: [])
        #expect(sealed.count == 16)
        #expect(try ChaChaPoly.open(key: key, nonce: nonce, ciphertext: sealed, ad: []) == [])
    }

    @Test func secretsCompareInConstantTimeAndNeverPrint() throws {
        let a = try SecureBytes(copying: [1, 2, 3])
        let b = try SecureBytes(copying: [1, 2, 3])
        let c = try SecureBytes(copying: [1, 2, 4])
        let guarded = try SecureBytes(copying: [1, 2, 3], storage: .guarded)
        #expect(a.constantTimeEquals(b))
        #expect(a.constantTimeEquals(guarded))
        #expect(!a.constantTimeEquals(c))
        #expect(!Sodium.constantTimeEquals([1, 2], [1, 2, 3]))
        #expect("\(a)" == "SecureBytes(3 bytes)")
    }

    @Test func seededRandomIsReproducibleAndAdvances() {
        let x = SeededRandom(seed: 1)
        let y = SeededRandom(seed: 1)
        let first = x.bytes(16)
        #expect(first == y.bytes(16))
        #expect(first != x.bytes(16))
        #expect(SeededRandom(seed: 2).bytes(16) != first)
    }
}
