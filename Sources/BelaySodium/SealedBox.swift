import CSodium

/// libsodium's sealed box (`crypto_box_seal`): anonymous encryption to an X25519 public key,
/// openable only with its secret key.
public enum SealedBox {
    public static let overhead = Int(crypto_box_sealbytes())

    public static func seal(_ message: [UInt8], to publicKey: [UInt8]) throws -> [UInt8] {
        try Sodium.ensureReady()
        try SodiumError.check("sealed box public key", publicKey.count, is: X25519.keyLength)
        var out = [UInt8](repeating: 0, count: message.count + overhead)
        let rc = out.withUnsafeMutableBufferPointer { o in
            message.withUnsafeBufferPointer { m in
                publicKey.withUnsafeBufferPointer { pk in
                    crypto_box_seal(o.baseAddress!, m.baseAddress, UInt64(m.count), pk.baseAddress!)
                }
            }
        }
        guard rc == 0 else { throw SodiumError.operationFailed("sealed box") }
        return out
    }

    public static func open(_ box: [UInt8], keyPair: X25519.KeyPair) throws -> [UInt8] {
        try Sodium.ensureReady()
        guard box.count >= overhead else { throw SodiumError.authenticationFailed }
        var out = [UInt8](repeating: 0, count: box.count - overhead)
        let rc = try keyPair.secretKey.withUnsafeBytes { sk in
            try SodiumError.check("X25519 secret key", sk.count, is: X25519.keyLength)
            return out.withUnsafeMutableBufferPointer { o in
                box.withUnsafeBufferPointer { b in
                    keyPair.publicKey.withUnsafeBufferPointer { pk in
                        crypto_box_seal_open(
                            o.baseAddress!, b.baseAddress!, UInt64(b.count), pk.baseAddress!,
                            sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
        }
        guard rc == 0 else { throw SodiumError.authenticationFailed }
        return out
    }
}
