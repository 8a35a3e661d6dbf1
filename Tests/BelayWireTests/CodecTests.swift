import BelayWire
import Foundation
import NIOCore
import Testing

@Suite struct CodecTests {
    static let r = EntityID(bytes: Array(0x10..<0x20).map(UInt8.init))!
    static let s = EntityID(bytes: Array(0x20..<0x30).map(UInt8.init))!
    static let t = EntityID(bytes: Array(0x30..<0x40).map(UInt8.init))!
    static let key = [UInt8](repeating: 0xaa, count: 32)
    static let sig = [UInt8](repeating: 0x55, count: 64)

    static let commands: [String: (UInt32, RelayCommand)] = [
        "ping": (1, .ping),
        "new": (2, .new(.init(recipientKey: key, token: Array("token".utf8), work: 0x0102_0304_0506_0708))),
        "auth": (3, .auth(.init(role: .sender, entity: s, signature: sig))),
        "key": (4, .key(recipient: r, senderKey: key)),
        "send": (5, .send(sender: s, body: Array("hello".utf8))),
        "sub": (6, .subscribe(recipient: r)),
        "ack": (7, .ack(recipient: r, seq: 3 << 32 | 9)),
        "get": (8, .get(recipient: r)),
        "del": (9, .delete(recipient: r)),
        "tset": (
            10,
            .timerSet(
                .init(
                    timerKey: key, delay: 3600, replaces: t,
                    entries: [.init(sender: s, body: [0x61]), .init(sender: r, body: [0x62, 0x63])], token: [0x74], work: 9))
        ),
        "trenew": (0xffff_fffe, .timerRenew(timer: t, delay: 60)),
        "tcancel": (12, .timerCancel(timer: t)),
    ]

    static let replies: [String: (UInt32, RelayReply)] = [
        "ok": (1, .ok),
        "pong": (2, .pong),
        "ids": (3, .ids(recipient: r, sender: s)),
        "msg": (0, .message(.init(recipient: r, seq: 42, body: Array("xyz".utf8)))),
        "nomsg": (5, .noMessage),
        "timer": (6, .timer(id: t, deadline: 1_800_000_000)),
        "end": (0, .end(recipient: r)),
        "err": (8, .error(.quota)),
        "work": (9, .workRequired(bits: 20)),
    ]

    static func fixtures() throws -> [String: [String: String]] {
        let url = try #require(Bundle.module.url(forResource: "frames", withExtension: "json", subdirectory: "Fixtures"))
        return try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: [String: String]])
    }

    static func bytes(_ encode: (inout ByteBuffer) -> Void) -> [UInt8] {
        var b = ByteBufferAllocator().buffer(capacity: 64)
        encode(&b)
        return Array(b.readableBytesView)
    }

    static func buffer(_ bytes: [UInt8]) -> ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: bytes.count)
        b.writeBytes(bytes)
        return b
    }

    @Test func commandsMatchFixturesByteForByte() throws {
        let fixtures = try #require(try Self.fixtures()["commands"])
        #expect(fixtures.count == Self.commands.count)
        for (name, (id, command)) in Self.commands {
            let expected = try #require(fixtures[name].flatMap(Hex.decode), "fixture \(name)")
            #expect(Self.bytes { RelayCodec.encode(command, requestId: id, into: &$0) } == expected, "encode \(name)")
            let decoded = try RelayCodec.decodeCommand(Self.buffer(expected))
            #expect(decoded.requestId == id && decoded.command == command, "decode \(name)")
        }
    }

    @Test func repliesMatchFixturesByteForByte() throws {
        let fixtures = try #require(try Self.fixtures()["replies"])
        #expect(fixtures.count == Self.replies.count)
        for (name, (id, reply)) in Self.replies {
            let expected = try #require(fixtures[name].flatMap(Hex.decode), "fixture \(name)")
            #expect(Self.bytes { RelayCodec.encode(reply, requestId: id, into: &$0) } == expected, "encode \(name)")
            let decoded = try RelayCodec.decodeReply(Self.buffer(expected))
            #expect(decoded.requestId == id && decoded.reply == reply, "decode \(name)")
        }
    }

    @Test func everyTruncationOfEveryCommandIsRejected() throws {
        for (name, (id, command)) in Self.commands {
            let full = Self.bytes { RelayCodec.encode(command, requestId: id, into: &$0) }
            for cut in 0..<full.count {
                #expect(throws: RelayCodec.DecodeError.self, "\(name) cut at \(cut)") {
                    try RelayCodec.decodeCommand(Self.buffer(Array(full.prefix(cut))))
                }
            }
            #expect(throws: RelayCodec.DecodeError.trailingBytes, "\(name) + 1") {
                try RelayCodec.decodeCommand(Self.buffer(full + [0]))
            }
        }
    }

    @Test func malformedCommandsGetTheirDocumentedCodes() {
        func code(_ bytes: [UInt8]) -> RelayErrorCode? {
            do {
                _ = try RelayCodec.decodeCommand(Self.buffer(bytes))
                return nil
            } catch let e as RelayCodec.DecodeError {
                return e.code
            } catch {
                return nil
            }
        }
        #expect(code([0x01, 0, 0, 0, 0]) == .malformed)  // request id 0 is reserved for pushes
        #expect(code([0x7f, 0, 0, 0, 1]) == .unknownCommand)
        #expect(code([0x03, 0, 0, 0, 1, 9] + [UInt8](repeating: 0, count: 80)) == .malformed)  // role 9
        let s = Self.s.bytes
        #expect(code([0x05, 0, 0, 0, 1] + s + [0x40, 0x01] + [UInt8](repeating: 0, count: 16385)) == .tooLarge)
        #expect(code([0x05, 0, 0, 0, 1] + s + [0, 0]) == .tooLarge)  // empty body
        let tset: [UInt8] = [0x0a, 0, 0, 0, 1] + Self.key + [0, 0, 0x0e, 0x10, 0, 9]  // nine bodies
        #expect(code(tset) == .malformed)
    }

    /// ERR WORK carries its bits, within 1...`maxWorkBits`; any other count is malformed, so a
    /// hostile relay cannot send a client off to search forever.
    @Test func workRepliesOutsideTheirRangeAreRefused() throws {
        for bits: UInt8 in [0, WireLimits.maxWorkBits + 1, 255] {
            #expect(throws: RelayCodec.DecodeError.invalidField("work bits \(bits)")) {
                try RelayCodec.decodeReply(Self.buffer([0xff, 0, 0, 0, 1, 0, 16, bits]))
            }
        }
        #expect(throws: RelayCodec.DecodeError.truncated) { try RelayCodec.decodeReply(Self.buffer([0xff, 0, 0, 0, 1, 0, 16])) }
        #expect(try RelayCodec.decodeReply(Self.buffer([0xff, 0, 0, 0, 1, 0, 16, 26])).reply == .workRequired(bits: 26))
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let count = Int.random(in: 0..<80, using: &generator)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = try? RelayCodec.decodeCommand(Self.buffer(bytes))
            _ = try? RelayCodec.decodeReply(Self.buffer(bytes))
        }
    }
}
