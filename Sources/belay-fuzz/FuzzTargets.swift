import BelayE2E
import BelayRelay
import BelaySodium
import BelayWire
import Foundation
import NIOCore

/// Every parser that reads bytes from the network or text from a person or a file, as a
/// libFuzzer target: `make fuzz` builds this with `-sanitize=fuzzer,address` and runs each for a
/// while. Built normally (as `make test` does), it replays files: `belay-fuzz TARGET FILE…`, which
/// is how a crasher found by fuzzing is kept as a regression test.
enum FuzzTargets {
    static let names = [
        "frame", "bundle", "command", "reply", "noise", "address", "config", "invitation", "group", "introduction", "notice", "request",
    ]

    /// Feeds `bytes` to one parser; it must return or throw, never trap or hang.
    static func run(_ name: String, _ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        switch name {
        case "frame":
            var decoder = FrameDecoder()
            // Drip-fed in two parts, as a socket would deliver it.
            let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
            // Frames are sealed, so the decoder opens them with a real session's cipher: the
            // fuzzer reaches the length check, the bucket check and the body's decryption.
            guard var transport = relaySideTransport else { return }
            decoder.append(Array(bytes[..<cut]))
            while (try? decoder.nextFrame(opening: &transport)) != nil {}
            decoder.append(Array(bytes[cut...]))
            while (try? decoder.nextFrame(opening: &transport)) != nil {}
        case "bundle":
            _ = try? Bundle.entries(of: ByteBuffer(bytes: bytes))
        case "command":
            _ = try? RelayCodec.decodeCommand(ByteBuffer(bytes: bytes))
        case "reply":
            _ = try? RelayCodec.decodeReply(ByteBuffer(bytes: bytes))
        case "noise":
            guard let key = responderKey,
                var responder = try? HandshakeState(pattern: .NK, initiator: false, prologue: WireHandshake.prologue, localStatic: key)
            else { return }
            var message = bytes
            WireHandshake.unmaskKey(of: &message)
            if let payload = try? responder.readMessage(message) { _ = try? WireHandshake.clientVersion(in: payload) }
        case "address":
            // Whatever parses must print back to text that parses to the same address.
            if let a = try? RelayAddress(parsing: text), (try? RelayAddress(parsing: a.description)) != a {
                fatalError("\(a.description) does not parse back to the address it prints")
            }
        case "config":
            var config = RelayConfiguration()
            _ = try? ConfigLoader.apply(text: text, source: "fuzz", to: &config)
        case "invitation":
            _ = try? Invitation(text: text, now: 0)
        case "group":
            _ = try? GroupMessage(decoding: bytes)
        case "introduction":
            _ = try? IntroductionMessage(decoding: bytes)
        case "notice":
            _ = try? CheckinNotice(decoding: bytes)
        case "request":
            _ = try? RosterRequest(decoding: bytes)
        default:
            FileHandle.standardError.write(Data("belay-fuzz: unknown target \(name); the targets are \(names.joined(separator: ", "))\n".utf8))
            exit(64)
        }
    }

    /// A fixed responder key, so that runs are reproducible.
    static let responderKey = try? X25519.KeyPair(secretKey: SecureBytes(copying: [UInt8](repeating: 7, count: 32)))

    /// The relay's side of one session with `responderKey`, made once; each run starts from a
    /// copy of it.
    static let relaySideTransport: NoiseTransport? = {
        guard let key = responderKey,
            var client = try? HandshakeState(pattern: .NK, initiator: true, prologue: WireHandshake.prologue, remoteStatic: key.publicKey),
            var relay = try? HandshakeState(pattern: .NK, initiator: false, prologue: WireHandshake.prologue, localStatic: key),
            let m1 = try? client.writeMessage(payload: WireHandshake.clientPayload()),
            (try? relay.readMessage(m1)) != nil,
            let m2 = try? relay.writeMessage(payload: WireHandshake.relayPayload(.accepted(version: WireHandshake.currentVersion))),
            (try? client.readMessage(m2)) != nil
        else { return nil }
        return try? relay.transport()
    }()
}

/// libFuzzer's entry point; the target is named by `BELAY_FUZZ_TARGET`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let target = ProcessInfo.processInfo.environment["BELAY_FUZZ_TARGET"] ?? "frame"
    FuzzTargets.run(target, data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}
