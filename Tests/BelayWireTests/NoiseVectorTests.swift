import BelaySodium
import BelayWire
import Foundation
import Testing

/// Replays the cacophony vectors (handshake and transport, both directions) for every SHA-256
/// pattern Belay's Noise code implements; NK is the one the relay uses. The BLAKE2b variants are
/// not run: Belay does not implement HMAC-BLAKE2b.
@Suite struct NoiseVectorTests {
    struct Vector {
        let json: [String: Any]
        func hex(_ key: String) -> [UInt8]? { (json[key] as? String).flatMap(Hex.decode) }
        var name: String { json["protocol_name"] as? String ?? "" }
        var messages: [(payload: [UInt8], ciphertext: [UInt8])] {
            (json["messages"] as? [[String: String]] ?? []).map { (Hex.decode($0["payload"]!)!, Hex.decode($0["ciphertext"]!)!) }
        }
    }

    static func vectors() throws -> [Vector] {
        let url = try #require(Bundle.module.url(forResource: "cacophony-25519-chachapoly", withExtension: "json", subdirectory: "Fixtures"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        return (json["vectors"] as? [[String: Any]] ?? []).map(Vector.init)
    }

    static func keyPair(_ bytes: [UInt8]?) throws -> X25519.KeyPair? {
        guard let bytes else { return nil }
        return try X25519.KeyPair(secretKey: SecureBytes(copying: bytes))
    }

    @Test(arguments: HandshakePattern.all)
    func vector(pattern: HandshakePattern) throws {
        let v = try #require(try Self.vectors().first { $0.name == pattern.protocolName() }, "no vector for \(pattern.name)")
        let ie = try #require(try Self.keyPair(v.hex("init_ephemeral")))
        let re = try Self.keyPair(v.hex("resp_ephemeral"))
        var initiator = try HandshakeState(
            pattern: pattern, initiator: true, prologue: v.hex("init_prologue") ?? [],
            localStatic: try Self.keyPair(v.hex("init_static")),
            remoteStatic: v.hex("init_remote_static"), makeEphemeral: { ie })
        var responder = try HandshakeState(
            pattern: pattern, initiator: false, prologue: v.hex("resp_prologue") ?? [],
            localStatic: try Self.keyPair(v.hex("resp_static")),
            remoteStatic: v.hex("resp_remote_static"), makeEphemeral: { re! })
        let messages = v.messages
        var index = 0
        while !initiator.isComplete {
            let (payload, expected) = messages[index]
            if index % 2 == 0 {
                #expect(try initiator.writeMessage(payload: payload) == expected, "\(pattern.name) message \(index)")
                #expect(try responder.readMessage(expected) == payload)
            } else {
                #expect(try responder.writeMessage(payload: payload) == expected, "\(pattern.name) message \(index)")
                #expect(try initiator.readMessage(expected) == payload)
            }
            index += 1
        }
        #expect(responder.isComplete)
        #expect(initiator.handshakeHash == v.hex("handshake_hash"))
        #expect(responder.handshakeHash == v.hex("handshake_hash"))
        var i = try initiator.transport()
        var r = try responder.transport()
        while index < messages.count {
            let (payload, expected) = messages[index]
            if pattern.isOneWay || index % 2 == 0 {
                #expect(try i.encrypt(payload) == expected, "\(pattern.name) transport \(index)")
                #expect(try r.decrypt(expected) == payload)
            } else {
                #expect(try r.encrypt(payload) == expected, "\(pattern.name) transport \(index)")
                #expect(try i.decrypt(expected) == payload)
            }
            index += 1
        }
        #expect(index == messages.count && index > pattern.messages.count)
    }

    @Test func tamperedHandshakeAndTransportFail() throws {
        let relay = try X25519.KeyPair.generate()
        var client = try HandshakeState(pattern: .NK, initiator: true, prologue: WireHandshake.prologue, remoteStatic: relay.publicKey)
        var server = try HandshakeState(pattern: .NK, initiator: false, prologue: WireHandshake.prologue, localStatic: relay)
        var m1 = try client.writeMessage()
        m1[40] ^= 1
        #expect(throws: NoiseError.decryptionFailed) { try server.readMessage(m1) }

        // A different prologue (handshake layout) cannot complete the handshake.
        var other = try HandshakeState(pattern: .NK, initiator: false, prologue: WireHandshake.prologue + [1], localStatic: relay)
        var fresh = try HandshakeState(pattern: .NK, initiator: true, prologue: WireHandshake.prologue, remoteStatic: relay.publicKey)
        #expect(throws: NoiseError.decryptionFailed) { try other.readMessage(try fresh.writeMessage()) }
    }

    @Test func wrongRelayKeyCannotReadMessageOne() throws {
        let relay = try X25519.KeyPair.generate()
        let impostor = try X25519.KeyPair.generate()
        var client = try HandshakeState(pattern: .NK, initiator: true, prologue: WireHandshake.prologue, remoteStatic: relay.publicKey)
        var server = try HandshakeState(pattern: .NK, initiator: false, prologue: WireHandshake.prologue, localStatic: impostor)
        #expect(throws: NoiseError.decryptionFailed) { try server.readMessage(try client.writeMessage()) }
    }
}
