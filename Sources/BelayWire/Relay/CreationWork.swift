import BelaySodium
import NIOCore

/// Proof of work for NEW and TSET (docs/PROTOCOL.md §5.1). A solution is bound to one Noise
/// session (its handshake hash, made of both sides' fresh ephemeral keys) and to one command
/// (every byte of it but the request id and the work field), so it cannot be computed before
/// the connection exists, nor used on another connection or for another command. Pure: no
/// state, no IO.
public enum CreationWork {
    /// BLAKE2b keys, one per hash, so neither can stand for the other or for any other hash
    /// Belay makes.
    static let commandKey = Array("belay creation work command v1".utf8)
    static let proofKey = Array("belay creation work proof v1".utf8)
    static let hashLength = 32

    public enum Failure: Error, Equatable {
        /// Only NEW and TSET carry work.
        case notACreation
    }

    /// What a solution is bound to: the session hash, then the command's digest
    /// BLAKE2b-256(key: "belay creation work command v1", opcode ‖ body without the work field).
    public static func challenge(sessionHash: [UInt8], command: RelayCommand) throws -> [UInt8] {
        var zeroed = command
        switch command {
        case var .new(n):
            n.work = 0
            zeroed = .new(n)
        case var .timerSet(t):
            t.work = 0
            zeroed = .timerSet(t)
        default:
            throw Failure.notACreation
        }
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        RelayCodec.encode(zeroed, requestId: 0, into: &buffer)
        // opcode (1) | request id (4) | body | work (8): the request id and the work are left out.
        let encoded = Array(buffer.readableBytesView)
        let covered = [encoded[0]] + encoded[5..<(encoded.count - 8)]
        return sessionHash + (try BLAKE2b.hash(covered, outputLength: hashLength, key: commandKey))
    }

    /// BLAKE2b-256(key: "belay creation work proof v1", challenge ‖ u64 work): a solution when it
    /// starts with at least `bits` zero bits. The relay remembers the proofs it accepted on a
    /// connection, so one solution pays for one command.
    public static func proof(challenge: [UInt8], work: UInt64) throws -> [UInt8] {
        var input = challenge
        withUnsafeBytes(of: work.bigEndian) { input.append(contentsOf: $0) }
        return try BLAKE2b.hash(input, outputLength: hashLength, key: proofKey)
    }

    public static func leadingZeroBits(_ hash: [UInt8]) -> Int {
        var bits = 0
        for byte in hash {
            if byte == 0 {
                bits += 8
                continue
            }
            return bits + byte.leadingZeroBitCount
        }
        return bits
    }

    /// Searches `count` candidates from `start`; the first that solves, or nil. A client calls it
    /// in slices, so that a long search can be cancelled and lets other work run between them.
    public static func search(challenge: [UInt8], bits: Int, from start: UInt64, count: UInt64) throws -> UInt64? {
        // The challenge once, then only the 8 bytes of the candidate change.
        var input = challenge + [UInt8](repeating: 0, count: 8)
        let tail = challenge.count
        var candidate = start
        let end = start &+ count
        while candidate != end {
            for i in 0..<8 { input[tail + i] = UInt8(truncatingIfNeeded: candidate >> (56 - 8 * UInt64(i))) }
            if leadingZeroBits(try BLAKE2b.hash(input, outputLength: hashLength, key: proofKey)) >= bits { return candidate }
            candidate &+= 1
        }
        return nil
    }
}
