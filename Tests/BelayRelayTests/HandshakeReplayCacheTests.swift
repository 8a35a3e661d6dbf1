import Testing

@testable import BelayRelay

@Suite struct HandshakeReplayCacheTests {
    static func key(_ n: UInt8) -> [UInt8] { [n] + [UInt8](repeating: 0, count: 31) }

    /// Remembers the last `capacity` keys and forgets the oldest first.
    @Test func remembersTheLastHandshakesAndForgetsTheOldest() {
        let cache = HandshakeReplayCache(capacity: 2)
        #expect(cache.firstSight(of: Self.key(1)) && cache.firstSight(of: Self.key(2)))
        #expect(!cache.firstSight(of: Self.key(1)) && !cache.firstSight(of: Self.key(2)))
        #expect(cache.firstSight(of: Self.key(3)))  // forgets key 1
        #expect(cache.firstSight(of: Self.key(1)))  // forgets key 2
        #expect(!cache.firstSight(of: Self.key(3)))
        #expect(cache.firstSight(of: Self.key(2)))
        #expect(!cache.firstSight(of: [1, 2, 3]))  // too short to be a key: never admitted
    }
}
