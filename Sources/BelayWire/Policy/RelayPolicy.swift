import BelaySodium
import NIOCore

/// What a relay promises about itself (docs/PROTOCOL.md §3.4), signed with its policy key: how
/// long it keeps messages, whether it delays deliveries, what it logs, whether it asks for
/// tokens or proof of work, and its limits. A client fetches it over the Noise channel with
/// INFO and checks it against the relay key it pinned (`verify`). Pure: a fixed layout of 113
/// bytes, then a 64-byte Ed25519 signature over the label, the session hash and the document:
/// bound to the session, so whoever holds the relay's Noise key but not its policy key cannot
/// pass off a signed policy fetched from the real relay as its own.
public struct RelayPolicy: Equatable, Sendable {
    /// The layout below. A client refuses a document of another format.
    public static let format: UInt8 = 1
    public static let encodedLength = 113
    /// Signed before the document, so a policy signature can never pass for any other.
    public static let signatureLabel = Array("belay relay policy 1".utf8) + [0]

    /// The relay's Noise static key (its address's KEY) that this policy speaks for.
    public var relayKey: [UInt8]
    /// The Ed25519 key that signs it, which a client pins beside the relay's address.
    public var policyKey: [UInt8]
    /// When the relay made this document (Unix seconds on its clock).
    public var issuedAt: UInt64
    public var messageTTLSeconds: UInt32
    /// `delivery_jitter` in milliseconds; 0 is off.
    public var deliveryJitterMilliseconds: UInt32
    public var logLevel: LogLevel
    /// Whether client addresses ever reach the relay's logs. belayd never logs them.
    public var logsClientAddresses: Bool
    public var tokensRequired: Bool
    /// Leading zero bits of proof of work asked for NEW and TSET; 0 is none.
    public var creationPowBits: UInt8
    public var rateLimitPerSecond: UInt32
    public var rateBurst: UInt32
    public var maxQueueMessages: UInt32
    public var maxQueueBytes: UInt64
    /// SENDs a second one recipient queue takes (whoever sends them), and its burst. A sender
    /// id names exactly one queue, so this is also the rate per sender id.
    public var sendRatePerQueue: UInt32
    public var sendBurstPerQueue: UInt32

    public enum LogLevel: UInt8, Sendable, CaseIterable, CustomStringConvertible {
        case trace, debug, info, notice, warning, error, critical
        public var description: String {
            switch self {
            case .trace: "trace"
            case .debug: "debug"
            case .info: "info"
            case .notice: "notice"
            case .warning: "warning"
            case .error: "error"
            case .critical: "critical"
            }
        }
    }

    public enum Error: Swift.Error, Equatable, Sendable, CustomStringConvertible {
        case wrongLength(Int)
        case unknownFormat(UInt8)
        case invalidField(String)
        case badSignature
        case otherRelay
        case policyKeyChanged

        public var description: String {
            switch self {
            case let .wrongLength(n): "the policy is \(n) bytes, not \(RelayPolicy.encodedLength)"
            case let .unknownFormat(f): "the policy is in format \(f), which this client does not read"
            case let .invalidField(what): "the policy's \(what) is invalid"
            case .badSignature: "the policy's signature does not verify"
            case .otherRelay: "the policy speaks for another relay key than the address's"
            case .policyKeyChanged: "the relay signs its policy with another key than the one this client pinned"
            }
        }
    }

    public init(
        relayKey: [UInt8], policyKey: [UInt8], issuedAt: UInt64, messageTTLSeconds: UInt32, deliveryJitterMilliseconds: UInt32,
        logLevel: LogLevel, logsClientAddresses: Bool, tokensRequired: Bool, creationPowBits: UInt8, rateLimitPerSecond: UInt32,
        rateBurst: UInt32, maxQueueMessages: UInt32, maxQueueBytes: UInt64, sendRatePerQueue: UInt32, sendBurstPerQueue: UInt32
    ) {
        self.relayKey = relayKey
        self.policyKey = policyKey
        self.issuedAt = issuedAt
        self.messageTTLSeconds = messageTTLSeconds
        self.deliveryJitterMilliseconds = deliveryJitterMilliseconds
        self.logLevel = logLevel
        self.logsClientAddresses = logsClientAddresses
        self.tokensRequired = tokensRequired
        self.creationPowBits = creationPowBits
        self.rateLimitPerSecond = rateLimitPerSecond
        self.rateBurst = rateBurst
        self.maxQueueMessages = maxQueueMessages
        self.maxQueueBytes = maxQueueBytes
        self.sendRatePerQueue = sendRatePerQueue
        self.sendBurstPerQueue = sendBurstPerQueue
    }

    public func encoded() -> [UInt8] {
        var out = ByteBuffer()
        out.writeInteger(Self.format)
        out.writeBytes(relayKey)
        out.writeBytes(policyKey)
        out.writeInteger(issuedAt)
        out.writeInteger(messageTTLSeconds)
        out.writeInteger(deliveryJitterMilliseconds)
        out.writeInteger(logLevel.rawValue)
        out.writeInteger(UInt8(logsClientAddresses ? 1 : 0))
        out.writeInteger(UInt8(tokensRequired ? 1 : 0))
        out.writeInteger(creationPowBits)
        out.writeInteger(rateLimitPerSecond)
        out.writeInteger(rateBurst)
        out.writeInteger(maxQueueMessages)
        out.writeInteger(maxQueueBytes)
        out.writeInteger(sendRatePerQueue)
        out.writeInteger(sendBurstPerQueue)
        return Array(out.readableBytesView)
    }

    public init(decoding bytes: [UInt8]) throws(Error) {
        guard bytes.count == Self.encodedLength else { throw .wrongLength(bytes.count) }
        var b = ByteBuffer(bytes: bytes)
        func flag(_ name: String) throws(Error) -> Bool {
            switch b.readInteger(as: UInt8.self)! {
            case 0: return false
            case 1: return true
            default: throw .invalidField(name)
            }
        }
        let format = b.readInteger(as: UInt8.self)!
        guard format == Self.format else { throw .unknownFormat(format) }
        relayKey = b.readBytes(length: 32)!
        policyKey = b.readBytes(length: 32)!
        issuedAt = b.readInteger()!
        messageTTLSeconds = b.readInteger()!
        deliveryJitterMilliseconds = b.readInteger()!
        guard let level = LogLevel(rawValue: b.readInteger()!) else { throw .invalidField("log level") }
        logLevel = level
        logsClientAddresses = try flag("address logging")
        tokensRequired = try flag("token requirement")
        creationPowBits = b.readInteger()!
        guard creationPowBits <= WireLimits.maxWorkBits else { throw .invalidField("proof-of-work bits") }
        rateLimitPerSecond = b.readInteger()!
        rateBurst = b.readInteger()!
        maxQueueMessages = b.readInteger()!
        maxQueueBytes = b.readInteger()!
        sendRatePerQueue = b.readInteger()!
        sendBurstPerQueue = b.readInteger()!
    }

    /// The signature over the label, the session's handshake hash and the document.
    public func signature(by key: Ed25519.SigningKey, sessionHash: [UInt8]) throws -> [UInt8] {
        try key.sign(Self.signatureLabel + sessionHash + encoded())
    }

    /// Decodes a document fetched from the relay at `relayKey` over the session `sessionHash`
    /// and checks it: the signature by the key it names over this session, that it speaks for
    /// this relay, and, once a client has pinned a policy key for the relay, that it is that key.
    public static func verify(
        document: [UInt8], signature: [UInt8], relayKey: [UInt8], sessionHash: [UInt8], pinnedPolicyKey: [UInt8]?
    ) throws(Error) -> RelayPolicy {
        let policy = try RelayPolicy(decoding: document)
        guard Ed25519.verify(signature: signature, message: signatureLabel + sessionHash + document, publicKey: policy.policyKey) else {
            throw .badSignature
        }
        guard Sodium.constantTimeEquals(policy.relayKey, relayKey) else { throw .otherRelay }
        if let pinnedPolicyKey, !Sodium.constantTimeEquals(pinnedPolicyKey, policy.policyKey) { throw .policyKeyChanged }
        return policy
    }

    /// One line for a person: what the relay keeps, logs and asks.
    public var summary: String {
        func duration(_ seconds: UInt64) -> String {
            if seconds % 86_400 == 0 { return "\(seconds / 86_400)d" }
            if seconds % 3_600 == 0 { return "\(seconds / 3_600)h" }
            if seconds % 60 == 0 { return "\(seconds / 60)m" }
            return "\(seconds)s"
        }
        let jitter = deliveryJitterMilliseconds == 0 ? "off" : "up to \(deliveryJitterMilliseconds) ms"
        let access =
            tokensRequired
            ? "queues need an organisation token" : creationPowBits > 0 ? "queues need \(creationPowBits)-bit proof of work" : "anyone may create queues"
        return
            "keeps undelivered messages \(duration(UInt64(messageTTLSeconds))); \(logsClientAddresses ? "LOGS client addresses" : "never logs client addresses"); "
            + "log level \(logLevel); delivery jitter \(jitter); \(access)"
    }
}
