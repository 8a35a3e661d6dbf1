import BelaySodium
import BelayWire
import NIOCore
import Testing

/// The relay's policy document and its signature (docs/PROTOCOL.md §3.4), without a relay.
@Suite struct RelayPolicyTests {
    static func sample(relayKey: [UInt8], policyKey: [UInt8]) -> RelayPolicy {
        RelayPolicy(
            relayKey: relayKey, policyKey: policyKey, issuedAt: 1_800_000_000, messageTTLSeconds: 14 * 86_400,
            deliveryJitterMilliseconds: 250, logLevel: .info, logsClientAddresses: false, tokensRequired: true, creationPowBits: 0,
            rateLimitPerSecond: 5_000, rateBurst: 256, maxQueueMessages: 1_000, maxQueueBytes: 8 << 20, sendRatePerQueue: 4_000,
            sendBurstPerQueue: 8_000)
    }

    static let session = [UInt8](repeating: 0x33, count: 32)

    @Test func aSignedPolicyVerifiesAndDecodesToWhatWasSigned() throws {
        let relay = try X25519.KeyPair.generate()
        let signer = try Ed25519.SigningKey.generate()
        let policy = Self.sample(relayKey: relay.publicKey, policyKey: signer.publicKey)
        let document = policy.encoded()
        #expect(document.count == RelayPolicy.encodedLength)
        #expect(document[0] == 1)
        let signature = try policy.signature(by: signer, sessionHash: Self.session)
        #expect(
            try RelayPolicy.verify(document: document, signature: signature, relayKey: relay.publicKey, sessionHash: Self.session, pinnedPolicyKey: nil)
                == policy)
        #expect(
            try RelayPolicy.verify(
                document: document, signature: signature, relayKey: relay.publicKey, sessionHash: Self.session, pinnedPolicyKey: signer.publicKey)
                == policy)
        #expect(policy.summary.contains("keeps undelivered messages 14d; never logs client addresses; log level info"))
        #expect(policy.summary.contains("delivery jitter up to 250 ms; queues need an organisation token"))
    }

    @Test func everyForgeryIsRefused() throws {
        let relay = try X25519.KeyPair.generate()
        let signer = try Ed25519.SigningKey.generate()
        let other = try Ed25519.SigningKey.generate()
        let policy = Self.sample(relayKey: relay.publicKey, policyKey: signer.publicKey)
        let document = policy.encoded()
        let signature = try policy.signature(by: signer, sessionHash: Self.session)
        // Any byte changed: the signature no longer covers it.
        for index in [0, 40, 70, 80, 90, 112] {
            var tampered = document
            tampered[index] ^= 1
            #expect(throws: RelayPolicy.Error.self) {
                try RelayPolicy.verify(document: tampered, signature: signature, relayKey: relay.publicKey, sessionHash: Self.session, pinnedPolicyKey: nil)
            }
        }
        // A policy for another relay, properly signed, is not this relay's.
        #expect(throws: RelayPolicy.Error.otherRelay) {
            try RelayPolicy.verify(
                document: document, signature: signature, relayKey: try X25519.KeyPair.generate().publicKey, sessionHash: Self.session,
                pinnedPolicyKey: nil)
        }
        // A relay (or impostor) that re-signs with another key is caught once a key is pinned.
        var resigned = policy
        resigned.policyKey = other.publicKey
        #expect(throws: RelayPolicy.Error.policyKeyChanged) {
            try RelayPolicy.verify(
                document: resigned.encoded(), signature: try resigned.signature(by: other, sessionHash: Self.session),
                relayKey: relay.publicKey, sessionHash: Self.session, pinnedPolicyKey: signer.publicKey)
        }
        // A signature without the label (over the bare document) does not pass.
        #expect(throws: RelayPolicy.Error.badSignature) {
            try RelayPolicy.verify(
                document: document, signature: try signer.sign(document), relayKey: relay.publicKey, sessionHash: Self.session, pinnedPolicyKey: nil)
        }
        #expect(throws: RelayPolicy.Error.wrongLength(112)) { try RelayPolicy(decoding: Array(document.dropLast())) }
        var flag = document
        flag[82] = 7  // the address-logging flag is 0 or 1
        #expect(throws: RelayPolicy.Error.invalidField("address logging")) { try RelayPolicy(decoding: flag) }
    }

    @Test func infoAndPolicyRoundTripThroughTheCodec() throws {
        var out = ByteBuffer()
        RelayCodec.encode(.info, requestId: 9, into: &out)
        #expect(Array(out.readableBytesView) == [0x20, 0, 0, 0, 9])
        #expect(try RelayCodec.decodeCommand(out).command == .info)
        let reply = RelayReply.policy(document: [UInt8](repeating: 1, count: RelayPolicy.encodedLength), signature: [UInt8](repeating: 2, count: 64))
        var encoded = ByteBuffer()
        RelayCodec.encode(reply, requestId: 9, into: &encoded)
        #expect(encoded.readableBytes == 5 + 2 + 113 + 64)
        #expect(try RelayCodec.decodeReply(encoded).reply == reply)
        var short = ByteBuffer()
        RelayCodec.encode(.policy(document: [1, 2, 3], signature: [UInt8](repeating: 2, count: 64)), requestId: 9, into: &short)
        #expect(throws: RelayCodec.DecodeError.invalidField("policy length 3")) { try RelayCodec.decodeReply(short) }
    }
}
