import BelaySodium
import BelayWire
import Foundation
import Logging

/// The key that signs the relay's policy (`relay.policy.key`, a 32-byte Ed25519 seed, 0600): a
/// key of its own, not the Noise static key, one key per purpose. Its binding to the relay is
/// that clients first fetch the signed policy over a Noise session authenticated by the relay's
/// static key, and pin it beside the address (docs/PROTOCOL.md §3.4). Made on first start, kept
/// across restarts and upgrades, backed up with the relay key.
extension RelayStateDirectory {
    public static let policyKeyFileName = "relay.policy.key"

    public var policyKeyPath: String { path + "/" + Self.policyKeyFileName }

    /// The policy key, made now if this relay has none yet.
    public func policyKey(random: some RandomSource = SystemRandom()) throws -> Ed25519.SigningKey {
        if !FileManager.default.fileExists(atPath: policyKeyPath) {
            var seed = random.bytes(Ed25519.seedLength)
            defer { Sodium.wipe(&seed) }
            try SecureFile.writeNew(path: policyKeyPath, contents: seed)
        }
        var bytes = try readSecret(policyKeyPath, length: Ed25519.seedLength)
        defer { Sodium.wipe(&bytes) }
        return try Ed25519.SigningKey(seed: SecureBytes(copying: bytes, storage: .guarded), storage: .guarded)
    }
}

extension RelayConfiguration {
    /// What this configuration promises, as the policy document a client can check.
    public func policy(relayKey: [UInt8], policyKey: [UInt8], issuedAt: UInt64) -> RelayPolicy {
        func clamp32<T: BinaryInteger>(_ v: T) -> UInt32 { UInt32(clamping: v) }
        let level: RelayPolicy.LogLevel =
            switch logLevel {
            case .trace: .trace
            case .debug: .debug
            case .info: .info
            case .notice: .notice
            case .warning: .warning
            case .error: .error
            case .critical: .critical
            }
        return RelayPolicy(
            relayKey: relayKey, policyKey: policyKey, issuedAt: issuedAt, messageTTLSeconds: clamp32(messageTTLSeconds),
            deliveryJitterMilliseconds: UInt32((deliveryJitterSeconds * 1000).rounded()), logLevel: level,
            logsClientAddresses: false, tokensRequired: requiresCreationToken, creationPowBits: creationWorkBits,
            rateLimitPerSecond: clamp32(rateLimitPerSecond), rateBurst: clamp32(rateBurst), maxQueueMessages: clamp32(maxQueueMessages),
            maxQueueBytes: UInt64(clamping: maxQueueBytes), sendRatePerQueue: clamp32(sendRatePerQueue),
            sendBurstPerQueue: clamp32(sendBurstPerQueue))
    }
}
