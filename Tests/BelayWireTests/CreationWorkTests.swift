import BelaySodium
import BelayWire
import Testing

/// Proof of work for NEW and TSET (docs/PROTOCOL.md §5.1): its bytes, and what a solution is
/// bound to.
@Suite struct CreationWorkTests {
    static let session = [UInt8](repeating: 1, count: 32)
    static let new = RelayCommand.new(.init(recipientKey: [UInt8](repeating: 0xaa, count: 32)))

    /// Computed independently with Python's hashlib.blake2b (keyed, 32-byte digests) from the
    /// definitions in PROTOCOL.md §5.1: the command digest over `02 | aa×32 | 00`, then the
    /// smallest work values with at least 8 and 12 leading zero bits.
    @Test func knownAnswers() throws {
        let challenge = try CreationWork.challenge(sessionHash: Self.session, command: Self.new)
        #expect(
            Hex.encode(challenge)
                == "0101010101010101010101010101010101010101010101010101010101010101"
                + "bafa4c63c2969d20ea785c0a9f0d98e852b90719f4800db4c9d68dbf6314a012")
        #expect(Hex.encode(try CreationWork.proof(challenge: challenge, work: 552)) == "005c538d6c53317108622b547fdd040d1cd244ce016017be51a159b2c2ee6b1b")
        #expect(try CreationWork.search(challenge: challenge, bits: 8, from: 0, count: 10_000) == 552)
        #expect(try CreationWork.search(challenge: challenge, bits: 12, from: 0, count: 10_000) == 2494)
        #expect(try CreationWork.search(challenge: challenge, bits: 12, from: 0, count: 2494) == nil)
    }

    /// The work field and the request id are outside what is bound; everything else is inside,
    /// and so is the session.
    @Test func aSolutionIsBoundToTheSessionAndTheCommand() throws {
        let base = try CreationWork.challenge(sessionHash: Self.session, command: Self.new)
        let paid = try CreationWork.challenge(
            sessionHash: Self.session, command: .new(.init(recipientKey: [UInt8](repeating: 0xaa, count: 32), work: 552)))
        #expect(paid == base)
        let otherSession = try CreationWork.challenge(sessionHash: [UInt8](repeating: 2, count: 32), command: Self.new)
        let otherKey = try CreationWork.challenge(
            sessionHash: Self.session, command: .new(.init(recipientKey: [UInt8](repeating: 0xab, count: 32))))
        let withToken = try CreationWork.challenge(
            sessionHash: Self.session, command: .new(.init(recipientKey: [UInt8](repeating: 0xaa, count: 32), token: [1])))
        let entry = RelayCommand.TimerSet.Entry(sender: EntityID(high: 1, low: 2), body: [1])
        let tset = try CreationWork.challenge(
            sessionHash: Self.session, command: .timerSet(.init(timerKey: [UInt8](repeating: 0xaa, count: 32), delay: 60, entries: [entry])))
        #expect(Set([base, otherSession, otherKey, withToken, tset]).count == 5)
        #expect(throws: CreationWork.Failure.notACreation) { try CreationWork.challenge(sessionHash: Self.session, command: .ping) }
    }

    @Test func leadingZeroBitsCountsAcrossBytes() {
        #expect(CreationWork.leadingZeroBits([0x80]) == 0)
        #expect(CreationWork.leadingZeroBits([0x00, 0x01]) == 15)
        #expect(CreationWork.leadingZeroBits([0x00, 0x00]) == 16)
    }
}
