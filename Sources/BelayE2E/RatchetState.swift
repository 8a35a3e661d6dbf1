import BelaySodium

/// The ratchet's storage form, sealed by the local store before it touches disk. Reading it back
/// bounds every count, so a damaged state is an error, not a crash.
///
/// Version 2 keeps the sending key's public half beside its secret, so that restoring a state
/// needs no scalar multiplication; version 1 (without it) is still read.
extension Ratchet {
    public func serialized() throws -> SecureBytes {
        var w = ByteWriter()
        defer { w.wipe() }
        w.bytes.reserveCapacity(Self.fixedStateLength + skipped.count * Self.skippedKeyLength)
        w.u8(Self.stateVersion)
        w.put(rootKey.unprotectedCopy())
        w.put(sendingKey.secretKey.unprotectedCopy())
        w.put(sendingKey.publicKey)
        Self.putOptional(remoteKey, &w)
        Self.putOptional(sendChain?.unprotectedCopy(), &w)
        Self.putOptional(receiveChain?.unprotectedCopy(), &w)
        w.u32(sendCount)
        w.u32(receiveCount)
        w.u32(previousSendCount)
        w.put(local.bytes)
        w.put(remote.bytes)
        w.u16(UInt16(skipped.count))
        for s in skipped {
            w.put(s.ratchetKey)
            w.u32(s.index)
            w.put(s.messageKey.unprotectedCopy())
        }
        return try SecureBytes(copying: w.bytes)
    }

    public init(serialized: SecureBytes) throws {
        var bytes = serialized.unprotectedCopy()
        defer { Sodium.wipe(&bytes) }
        var r = ByteReader(bytes)
        let version = try r.u8("ratchet state version")
        guard version == Self.stateVersion || version == Self.stateVersionWithoutPublicKey else {
            throw E2EError.malformed("ratchet state version")
        }
        let root = try SecureBytes(copying: r.take(32, "ratchet root key"))
        let secret = try SecureBytes(copying: r.take(32, "ratchet sending key"))
        let sending =
            version == Self.stateVersionWithoutPublicKey
            ? try X25519.KeyPair(secretKey: secret)
            : try X25519.KeyPair(restoringSecretKey: secret, publicKey: r.take(32, "ratchet sending public key"))
        let remoteKey = try Self.getOptional(&r, "ratchet remote key")
        let send = try Self.getOptional(&r, "ratchet send chain").map { try SecureBytes(copying: $0) }
        let receive = try Self.getOptional(&r, "ratchet receive chain").map { try SecureBytes(copying: $0) }
        let counts = (try r.u32("ratchet counts"), try r.u32("ratchet counts"), try r.u32("ratchet counts"))
        let local = try PublicIdentity(bytes: r.take(64, "ratchet local identity"))
        let remote = try PublicIdentity(bytes: r.take(64, "ratchet remote identity"))
        let skippedCount = Int(try r.u16("ratchet skipped count"))
        guard skippedCount <= Self.maxStoredSkipped else { throw E2EError.malformed("ratchet skipped count") }
        var skipped: [SkippedKey] = []
        skipped.reserveCapacity(skippedCount)
        for _ in 0..<skippedCount {
            skipped.append(
                SkippedKey(
                    ratchetKey: try r.take(32, "skipped key"), index: try r.u32("skipped key"),
                    messageKey: try SecureBytes(copying: r.take(32, "skipped key"))))
        }
        try r.expectEnd("ratchet state")
        self.init(restoring: root, sending, remoteKey, send, receive, counts, local, remote, skipped)
    }

    private static func putOptional(_ value: [UInt8]?, _ w: inout ByteWriter) {
        if let value {
            w.u8(1)
            w.put(value)
        } else {
            w.u8(0)
        }
    }

    private static func getOptional(_ r: inout ByteReader, _ field: String) throws -> [UInt8]? {
        switch try r.u8(field) {
        case 0: nil
        case 1: try r.take(32, field)
        default: throw E2EError.malformed(field)
        }
    }
}

extension ByteWriter {
    public mutating func wipe() { Sodium.wipe(&bytes) }
}
