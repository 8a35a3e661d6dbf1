import BelaySodium
import BelayWire
import NIOCore
import Testing

/// Both ends of one Noise NK session, made through the version-5 handshake messages.
struct SessionPair {
    var client: NoiseTransport
    var relay: NoiseTransport

    init() throws {
        let key = try X25519.KeyPair.generate()
        var c = try HandshakeState(pattern: .NK, initiator: true, prologue: WireHandshake.prologue, remoteStatic: key.publicKey)
        var r = try HandshakeState(pattern: .NK, initiator: false, prologue: WireHandshake.prologue, localStatic: key)
        #expect(try WireHandshake.clientVersion(in: try r.readMessage(try c.writeMessage(payload: WireHandshake.clientPayload()))) == 5)
        let answer = WireHandshake.relayPayload(.accepted(version: WireHandshake.currentVersion))
        #expect(try WireHandshake.answer(in: try c.readMessage(try r.writeMessage(payload: answer))) == .accepted(version: 5))
        client = try c.transport()
        relay = try r.transport()
    }
}

@Suite struct FrameDecoderTests {
    /// Each payload as a one-entry bundle, sealed in a frame of its own.
    static func stream(_ payloads: [[UInt8]], from sender: inout NoiseTransport) throws -> [UInt8] {
        var out = Outbox()
        for p in payloads {
            try out.add(ByteBuffer(bytes: p), sealingWith: &sender)
            try out.seal(with: &sender)
        }
        return out.takeFrames().map { Array($0.readableBytesView) } ?? []
    }

    static let payloads: [[UInt8]] = [[1], [2, 3], Array(repeating: 7, count: 300), Array(repeating: 9, count: Bundle.maxEntryLength)]

    static func entries(_ plaintext: ByteBuffer) throws -> [[UInt8]] {
        try Bundle.entries(of: plaintext).map { Array($0.readableBytesView) }
    }

    @Test func dripFedOneByteAtATime() throws {
        var pair = try SessionPair()
        var d = FrameDecoder()
        var out: [[UInt8]] = []
        for byte in try Self.stream(Self.payloads, from: &pair.client) {
            d.append([byte])
            while let f = try d.nextFrame(opening: &pair.relay) { out += try Self.entries(f) }
        }
        #expect(out == Self.payloads)
        #expect(d.bufferedByteCount == 0)
    }

    @Test func manyFramesInOneBuffer() throws {
        var pair = try SessionPair()
        var d = FrameDecoder()
        d.append(try Self.stream(Self.payloads + Self.payloads, from: &pair.client))
        var out: [[UInt8]] = []
        while let f = try d.nextFrame(opening: &pair.relay) { out += try Self.entries(f) }
        #expect(out == Self.payloads + Self.payloads)
    }

    @Test func truncatedFrameWaitsForTheRest() throws {
        var pair = try SessionPair()
        var d = FrameDecoder()
        let bytes = try Self.stream([[1, 2, 3, 4]], from: &pair.client)
        d.append(Array(bytes.dropLast()))
        #expect(try d.nextFrame(opening: &pair.relay) == nil)
        d.append([bytes.last!])
        #expect(try d.nextFrame(opening: &pair.relay).map(Self.entries) == [[1, 2, 3, 4]])
    }

    /// Every frame on the wire is a sealed length and a body of one of the bucket sizes.
    @Test func everyFrameIsABucket() throws {
        var pair = try SessionPair()
        for size in [1, 480, 494, 495, 1500, 4000, 17000, 40000, Bundle.maxEntryLength] {
            let bytes = try Self.stream([Array(repeating: 1, count: size)], from: &pair.client)
            let body = bytes.count - WireLimits.frameHeaderLength
            #expect(WireLimits.frameBodyBuckets.contains(body), "\(size) bytes made a body of \(body)")
            // The smallest bucket that holds the entry and its length.
            #expect(body == WireLimits.frameBodyBuckets.first { $0 >= size + 2 + WireLimits.tagLength })
        }
    }

    @Test func aLengthThatIsNotABucketIsRefused() throws {
        var pair = try SessionPair()
        var d = FrameDecoder()
        d.append(try pair.client.encrypt([0x01, 0x00]))
        #expect(throws: FrameDecoder.Error.notABucket(256)) { try d.nextFrame(opening: &pair.relay) }
    }

    @Test func aTamperedLengthOrBodyFailsToDecrypt() throws {
        for position in [3, WireLimits.frameHeaderLength + 5] {
            var pair = try SessionPair()
            var bytes = try Self.stream([[1, 2, 3]], from: &pair.client)
            bytes[position] ^= 1
            var d = FrameDecoder()
            d.append(bytes)
            #expect(throws: FrameDecoder.Error.decryptionFailed) { try d.nextFrame(opening: &pair.relay) }
        }
    }

    @Test func paddingMustBeZeros() throws {
        #expect(try Bundle.entries(of: ByteBuffer(bytes: [0, 1, 7, 0, 0, 0])).count == 1)
        #expect(try Bundle.entries(of: ByteBuffer(bytes: [0, 1, 7, 0])).count == 1)
        #expect(throws: Bundle.Error.dirtyPadding) { try Bundle.entries(of: ByteBuffer(bytes: [0, 1, 7, 0, 0, 9])) }
        #expect(throws: Bundle.Error.dirtyPadding) { try Bundle.entries(of: ByteBuffer(bytes: [0, 1, 7, 5])) }
        #expect(throws: Bundle.Error.empty) { try Bundle.entries(of: ByteBuffer(bytes: [0, 0, 0, 0])) }
    }
}

@Suite struct WireHandshakeTests {
    @Test func payloadsCarryTheVersion() throws {
        #expect(WireHandshake.clientPayload() == [0, 5] + [UInt8](repeating: 0, count: 14))
        #expect(try WireHandshake.clientVersion(in: WireHandshake.clientPayload(version: 9)) == 9)
        #expect(WireHandshake.relayPayload(.unsupported(relayVersion: 5)) == [0, 5, 1] + [UInt8](repeating: 0, count: 13))
        #expect(try WireHandshake.answer(in: WireHandshake.relayPayload(.unsupported(relayVersion: 7))) == .unsupported(relayVersion: 7))
        #expect(throws: WireHandshake.Error.unknownAnswer(2)) { try WireHandshake.answer(in: [0, 5, 2] + [UInt8](repeating: 0, count: 13)) }
        #expect(throws: WireHandshake.Error.wrongPayloadLength(0)) { try WireHandshake.clientVersion(in: []) }
        #expect(WireHandshake.messageLength == 64)
        #expect(WireHandshake.prologue == [0x62, 0x65, 0x6c, 0x61, 0x79, 0x00, 0x00, 0x05])
    }

    /// The key's always-clear top bit is set at random on the wire and cleared before use; the
    /// handshake completes either way.
    @Test func maskedKeysStillCompleteTheHandshake() throws {
        let key = try X25519.KeyPair.generate()
        var topBits = Set<UInt8>()
        for seed in UInt8(0)..<16 {
            var c = try HandshakeState(pattern: .NK, initiator: true, prologue: WireHandshake.prologue, remoteStatic: key.publicKey)
            var r = try HandshakeState(pattern: .NK, initiator: false, prologue: WireHandshake.prologue, localStatic: key)
            var m1 = try c.writeMessage(payload: WireHandshake.clientPayload())
            #expect(m1[31] & 0x80 == 0)
            WireHandshake.maskKey(of: &m1, random: SeededRandom(seed: seed))
            topBits.insert(m1[31] & 0x80)
            WireHandshake.unmaskKey(of: &m1)
            #expect(try WireHandshake.clientVersion(in: try r.readMessage(m1)) == 5)
        }
        #expect(topBits == [0, 0x80])
    }
}
