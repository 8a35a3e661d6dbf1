import BelaySodium
import Testing

/// Known-answer tests from Project Wycheproof for every primitive Belay uses. Valid cases must
/// match exactly; invalid ones must be refused; "acceptable" ones may go either way but must not
/// produce a wrong answer.
@Suite struct KnownAnswerTests {
    @Test func x25519() throws {
        let v = try Wycheproof("x25519_test")
        var checked = 0
        for c in v.cases {
            let result = try? X25519.sharedSecret(secretKey: SecureBytes(copying: c.hex("private")), peerPublicKey: c.hex("public"))
            let shared = result?.unprotectedCopy()
            if c.valid {
                #expect(shared == c.hex("shared"), "tcId \(c.id)")
            } else if let shared {
                // libsodium refuses an all-zero output; anything it does return must be right.
                #expect(shared == c.hex("shared"), "tcId \(c.id) (\(c.result))")
            }
            checked += 1
        }
        #expect(checked == 518)
    }

    @Test func x25519RefusesLowOrderPoints() throws {
        let zeroOutputCases = try Wycheproof("x25519_test").cases.filter { $0.hex("shared") == [UInt8](repeating: 0, count: 32) }
        #expect(!zeroOutputCases.isEmpty)
        for c in zeroOutputCases {
            #expect(throws: SodiumError.invalidPublicKey) {
                try X25519.sharedSecret(secretKey: SecureBytes(copying: c.hex("private")), peerPublicKey: c.hex("public"))
            }
        }
    }

    typealias Seal = (SecureBytes, [UInt8], [UInt8], [UInt8]) throws -> [UInt8]

    /// One AEAD against its Wycheproof file: valid cases seal and open to the exact bytes,
    /// invalid ones (wrong tags, wrong nonce sizes) never open.
    func aead(_ file: String, seal: Seal, open: Seal) throws {
        var valid = 0
        for c in try Wycheproof(file).cases {
            let key = try SecureBytes(copying: c.hex("key"))
            let sealed = try? seal(key, c.hex("iv"), c.hex("msg"), c.hex("aad"))
            let opened = try? open(key, c.hex("iv"), c.hex("ct") + c.hex("tag"), c.hex("aad"))
            if c.valid {
                #expect(sealed == c.hex("ct") + c.hex("tag"), "\(file) tcId \(c.id)")
                #expect(opened == c.hex("msg"), "\(file) tcId \(c.id)")
                valid += 1
            } else if c.invalid {
                #expect(opened == nil, "\(file) tcId \(c.id) must not decrypt")
            }
        }
        #expect(valid > 200)
    }

    @Test func chaCha20Poly1305() throws {
        try aead(
            "chacha20_poly1305_test", seal: { try ChaChaPoly.seal(key: $0, nonce: $1, plaintext: $2, ad: $3) },
            open: { try ChaChaPoly.open(key: $0, nonce: $1, ciphertext: $2, ad: $3) })
    }

    @Test func xChaCha20Poly1305() throws {
        try aead(
            "xchacha20_poly1305_test", seal: { try XChaChaPoly.seal(key: $0, nonce: $1, plaintext: $2, ad: $3) },
            open: { try XChaChaPoly.open(key: $0, nonce: $1, ciphertext: $2, ad: $3) })
    }

    @Test func ed25519() throws {
        let v = try Wycheproof("ed25519_test")
        var valid = 0
        var invalid = 0
        for c in v.cases {
            let ok = Ed25519.verify(signature: c.hex("sig"), message: c.hex("msg"), publicKey: c.groupHex("publicKey", "pk"))
            if c.valid {
                #expect(ok, "tcId \(c.id) should verify")
                valid += 1
            } else if c.invalid {
                #expect(!ok, "tcId \(c.id) must be rejected")
                invalid += 1
            }
        }
        #expect(valid > 0 && invalid > 0)
    }

    @Test func ed25519SignsDeterministicallyAndVerifies() throws {
        let seed = try SecureBytes(copying: [UInt8](repeating: 7, count: 32))
        let key = try Ed25519.SigningKey(seed: seed)
        let a = try key.sign([1, 2, 3])
        #expect(a == (try key.sign([1, 2, 3])))
        #expect(Ed25519.verify(signature: a, message: [1, 2, 3], publicKey: key.publicKey))
        #expect(!Ed25519.verify(signature: a, message: [1, 2, 4], publicKey: key.publicKey))
        #expect(!Ed25519.verify(signature: Array(a.dropLast()), message: [1, 2, 3], publicKey: key.publicKey))
    }

    @Test func hmacSHA256() throws {
        let v = try Wycheproof("hmac_sha256_test")
        for c in v.cases {
            let tagLength = (c.group["tagSize"] as? Int ?? 256) / 8
            let full = try HMACSHA256.authenticate(key: c.hex("key"), message: c.hex("msg")).unprotectedCopy()
            let matches = Array(full.prefix(tagLength)) == c.hex("tag")
            if c.valid { #expect(matches, "tcId \(c.id)") }
            if c.invalid { #expect(!matches, "tcId \(c.id)") }
        }
    }

    @Test func hkdfSHA256() throws {
        let v = try Wycheproof("hkdf_sha256_test")
        for c in v.cases {
            let size = c.fields["size"] as? Int ?? 0
            let okm = try? HKDFSHA256.deriveKey(salt: c.hex("salt"), ikm: c.hex("ikm"), info: c.hex("info"), length: size)
            if c.valid {
                #expect(okm?.unprotectedCopy() == c.hex("okm"), "tcId \(c.id)")
            } else if c.invalid {
                // The invalid cases ask for more than 255 * 32 bytes.
                #expect(okm == nil, "tcId \(c.id)")
            }
        }
    }
}
