import NIOCore

/// Encodes and decodes commands and replies (docs/PROTOCOL.md §3). Pure: no IO, no state.
public enum RelayCodec {
    public enum DecodeError: Error, Equatable, Sendable {
        case truncated
        case trailingBytes
        case unknownOpcode(UInt8)
        case zeroRequestId
        case invalidField(String)
        case bodyLength(Int)

        /// The error code a relay answers with for this decoding failure.
        public var code: RelayErrorCode {
            switch self {
            case .unknownOpcode: .unknownCommand
            case .bodyLength: .tooLarge
            default: .malformed
            }
        }
    }

    static let keyLength = 32
    static let signatureLength = 64
    /// ERR `WORK`, the one error code with a field after it (`u8 bits`): a case of its own,
    /// `RelayReply.workRequired`, rather than a `RelayErrorCode`.
    public static let workErrorCode: UInt16 = 16

    // MARK: Commands

    public static func encode(_ command: RelayCommand, requestId: UInt32, into out: inout ByteBuffer) {
        out.writeInteger(command.opcode)
        out.writeInteger(requestId)
        switch command {
        case .ping, .info:
            break
        case let .new(n):
            out.writeBytes(n.recipientKey)
            out.writeInteger(UInt8(n.token.count))
            out.writeBytes(n.token)
            out.writeInteger(n.work)
        case let .auth(a):
            out.writeInteger(a.role.rawValue)
            out.writeEntity(a.entity)
            out.writeBytes(a.signature)
        case let .key(recipient, senderKey):
            out.writeEntity(recipient)
            out.writeBytes(senderKey)
        case let .send(sender, body):
            out.writeEntity(sender)
            out.writeBody(body)
        case let .subscribe(id), let .get(id), let .delete(id), let .timerCancel(id):
            out.writeEntity(id)
        case let .ack(recipient, seq):
            out.writeEntity(recipient)
            out.writeInteger(seq)
        case let .timerSet(t):
            out.writeBytes(t.timerKey)
            out.writeInteger(t.delay)
            if let old = t.replaces {
                out.writeInteger(UInt8(1))
                out.writeEntity(old)
            } else {
                out.writeInteger(UInt8(0))
            }
            out.writeInteger(UInt8(t.entries.count))
            for e in t.entries {
                out.writeEntity(e.sender)
                out.writeBody(e.body)
            }
            out.writeInteger(UInt8(t.token.count))
            out.writeBytes(t.token)
            out.writeInteger(t.work)
        case let .timerRenew(timer, delay):
            out.writeEntity(timer)
            out.writeInteger(delay)
        }
    }

    /// The request id of a command that may not parse, so an error can still be matched to it.
    public static func peekRequestId(_ buffer: ByteBuffer) -> UInt32 {
        buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self) ?? 0
    }

    public static func decodeCommand(_ input: ByteBuffer) throws -> (requestId: UInt32, command: RelayCommand) {
        var b = input
        let opcode = try b.read(UInt8.self)
        let requestId = try b.read(UInt32.self)
        guard requestId != 0 else { throw RelayCodec.DecodeError.zeroRequestId }
        let command: RelayCommand
        switch opcode {
        case 0x01:
            command = .ping
        case 0x02:
            let key = try b.readFixed(keyLength)
            let tokenLength = Int(try b.read(UInt8.self))
            let token = try b.readFixed(tokenLength)
            command = .new(.init(recipientKey: key, token: token, work: try b.read(UInt64.self)))
        case 0x03:
            guard let role = AuthRole(rawValue: try b.read(UInt8.self)) else { throw RelayCodec.DecodeError.invalidField("role") }
            command = .auth(.init(role: role, entity: try b.readEntity(), signature: try b.readFixed(signatureLength)))
        case 0x04:
            command = .key(recipient: try b.readEntity(), senderKey: try b.readFixed(keyLength))
        case 0x05:
            command = .send(sender: try b.readEntity(), body: try b.readBody())
        case 0x06:
            command = .subscribe(recipient: try b.readEntity())
        case 0x07:
            command = .ack(recipient: try b.readEntity(), seq: try b.read(UInt64.self))
        case 0x08:
            command = .get(recipient: try b.readEntity())
        case 0x09:
            command = .delete(recipient: try b.readEntity())
        case 0x0a:
            let key = try b.readFixed(keyLength)
            let delay = try b.read(UInt32.self)
            let replaces: EntityID?
            switch try b.read(UInt8.self) {
            case 0: replaces = nil
            case 1: replaces = try b.readEntity()
            default: throw RelayCodec.DecodeError.invalidField("has_old")
            }
            let count = Int(try b.read(UInt8.self))
            guard (1...WireLimits.maxTimerBodies).contains(count) else { throw RelayCodec.DecodeError.invalidField("count") }
            var entries: [RelayCommand.TimerSet.Entry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                entries.append(.init(sender: try b.readEntity(), body: try b.readBody()))
            }
            let tokenLength = Int(try b.read(UInt8.self))
            let token = try b.readFixed(tokenLength)
            command = .timerSet(
                .init(timerKey: key, delay: delay, replaces: replaces, entries: entries, token: token, work: try b.read(UInt64.self)))
        case 0x0b:
            command = .timerRenew(timer: try b.readEntity(), delay: try b.read(UInt32.self))
        case 0x0c:
            command = .timerCancel(timer: try b.readEntity())
        case 0x20:
            command = .info
        default:
            throw RelayCodec.DecodeError.unknownOpcode(opcode)
        }
        guard b.readableBytes == 0 else { throw RelayCodec.DecodeError.trailingBytes }
        return (requestId, command)
    }

    // MARK: Replies

    public static func encode(_ reply: RelayReply, requestId: UInt32, into out: inout ByteBuffer) {
        out.writeInteger(reply.opcode)
        out.writeInteger(requestId)
        switch reply {
        case .ok, .pong, .noMessage:
            break
        case let .ids(recipient, sender):
            out.writeEntity(recipient)
            out.writeEntity(sender)
        case let .message(d):
            out.writeEntity(d.recipient)
            out.writeInteger(d.seq)
            out.writeBody(d.body)
        case let .timer(id, deadline):
            out.writeEntity(id)
            out.writeInteger(deadline)
        case let .end(recipient):
            out.writeEntity(recipient)
        case let .policy(document, signature):
            out.writeInteger(UInt16(document.count))
            out.writeBytes(document)
            out.writeBytes(signature)
        case let .error(code):
            out.writeInteger(code.rawValue)
        case let .workRequired(bits):
            out.writeInteger(RelayCodec.workErrorCode)
            out.writeInteger(bits)
        }
    }

    public static func decodeReply(_ input: ByteBuffer) throws -> (requestId: UInt32, reply: RelayReply) {
        var b = input
        let opcode = try b.read(UInt8.self)
        let requestId = try b.read(UInt32.self)
        let reply: RelayReply
        switch opcode {
        case 0x81: reply = .ok
        case 0x82: reply = .pong
        case 0x83: reply = .ids(recipient: try b.readEntity(), sender: try b.readEntity())
        case 0x84: reply = .message(.init(recipient: try b.readEntity(), seq: try b.read(UInt64.self), body: try b.readBody()))
        case 0x85: reply = .noMessage
        case 0x86: reply = .timer(id: try b.readEntity(), deadline: try b.read(UInt64.self))
        case 0x87: reply = .end(recipient: try b.readEntity())
        case 0xa0:
            let length = Int(try b.read(UInt16.self))
            guard length == RelayPolicy.encodedLength else { throw RelayCodec.DecodeError.invalidField("policy length \(length)") }
            reply = .policy(document: try b.readFixed(length), signature: try b.readFixed(signatureLength))
        case 0xff:
            let raw = try b.read(UInt16.self)
            if raw == workErrorCode {
                let bits = try b.read(UInt8.self)
                guard (1...WireLimits.maxWorkBits).contains(bits) else { throw RelayCodec.DecodeError.invalidField("work bits \(bits)") }
                reply = .workRequired(bits: bits)
            } else {
                guard let code = RelayErrorCode(rawValue: raw) else { throw RelayCodec.DecodeError.invalidField("error code \(raw)") }
                reply = .error(code)
            }
        default: throw RelayCodec.DecodeError.unknownOpcode(opcode)
        }
        guard b.readableBytes == 0 else { throw RelayCodec.DecodeError.trailingBytes }
        return (requestId, reply)
    }
}

extension ByteBuffer {
    fileprivate mutating func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
        guard let v = readInteger(as: T.self) else { throw RelayCodec.DecodeError.truncated }
        return v
    }

    fileprivate mutating func readFixed(_ count: Int) throws -> [UInt8] {
        guard let bytes = readBytes(length: count) else { throw RelayCodec.DecodeError.truncated }
        return bytes
    }

    fileprivate mutating func readEntity() throws -> EntityID {
        let high = try read(UInt64.self)
        let low = try read(UInt64.self)
        return EntityID(high: high, low: low)
    }

    /// A `bytes16` message body: 1 to `maxBodyLength` bytes, checked before anything is copied.
    fileprivate mutating func readBody() throws -> [UInt8] {
        let length = Int(try read(UInt16.self))
        guard length >= 1, length <= WireLimits.maxBodyLength else {
            throw RelayCodec.DecodeError.bodyLength(length)
        }
        return try readFixed(length)
    }

    fileprivate mutating func writeEntity(_ id: EntityID) {
        writeInteger(id.high)
        writeInteger(id.low)
    }

    fileprivate mutating func writeBody(_ body: [UInt8]) {
        writeInteger(UInt16(truncatingIfNeeded: body.count))
        writeBytes(body)
    }
}
