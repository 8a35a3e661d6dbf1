import NIOCore
import Testing

@testable import BelayRelay

/// The admission rules without sockets: time is a number the test sets.
@Suite struct AdmissionTableTests {
    static let attacker = SourceKey(prefix: [127, 0, 0, 3])
    static let person = SourceKey(prefix: [127, 0, 0, 1])
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    static func limits(
        total: Int = 10, perSource: Int = 8, handshaking: Int = 10, handshakingPerSource: Int = 10,
        rate: Double = 1_000, burst: Double = 1_000
    ) -> AdmissionLimits {
        var c = RelayConfiguration()
        c.maxConnections = total
        c.maxConnectionsPerSource = perSource
        c.maxHandshaking = handshaking
        c.maxHandshakingPerSource = handshakingPerSource
        var l = AdmissionLimits(c)
        l.handshakesPerSecondPerSource = rate
        l.handshakeBurstPerSource = burst
        return l
    }

    @discardableResult
    static func admitted(_ t: inout AdmissionTable, _ s: SourceKey, _ n: Int, established: Bool = true) -> [UInt64] {
        (0..<n).map { _ in
            guard case let .admit(id) = t.admit(s, now: t0) else {
                Issue.record("refused")
                return 0
            }
            if established { t.established(id) }
            return id
        }
    }

    @Test func oneSourceCannotHoldMoreThanItsShare() {
        var t = AdmissionTable(limits: Self.limits(total: 10, perSource: 4))
        Self.admitted(&t, Self.attacker, 4)
        #expect(t.admit(Self.attacker, now: Self.t0) == .refuse(.sourceConnections))
        #expect(t.admit(Self.person, now: Self.t0).isAdmitted)
    }

    @Test func aFullRelayMakesRoomForANewcomerByClosingTheHeaviestSource() {
        var t = AdmissionTable(limits: Self.limits(total: 10, perSource: 10))
        let held = Self.admitted(&t, Self.attacker, 10)
        guard case let .admitEvicting(_, victim) = t.admit(Self.person, now: Self.t0) else {
            Issue.record("the newcomer was refused")
            return
        }
        #expect(victim == held.max())  // the attacker's newest established connection
        #expect(t.count == 10)
        #expect(t.openConnections(from: Self.attacker) == 9)
        #expect(t.evicted == 1)
    }

    @Test func aFullRelayDoesNotEvictForASourceThatAlreadyHoldsAsMuch() {
        var t = AdmissionTable(limits: Self.limits(total: 10, perSource: 10))
        Self.admitted(&t, Self.attacker, 5)
        Self.admitted(&t, Self.person, 5)
        // Each holds half: nobody is heavier than the newcomer by two.
        #expect(t.admit(Self.person, now: Self.t0) == .refuse(.full))
        #expect(t.admit(Self.attacker, now: Self.t0) == .refuse(.full))
    }

    @Test func handshakingConnectionsHaveTheirOwnSmallerLimitAndTheOldestGoesFirst() {
        var t = AdmissionTable(limits: Self.limits(total: 100, perSource: 100, handshaking: 6, handshakingPerSource: 6))
        let stalled = Self.admitted(&t, Self.attacker, 6, established: false)
        #expect(t.handshakingCount == 6)
        #expect(t.admit(Self.attacker, now: Self.t0) == .refuse(.sourceHandshaking))
        guard case let .admitEvicting(id, victim) = t.admit(Self.person, now: Self.t0) else {
            Issue.record("the newcomer was refused")
            return
        }
        #expect(victim == stalled.min())
        t.established(id)
        #expect(t.handshakingCount == 5)
    }

    @Test func handshakesPerSourceAreRateLimitedAndRefillWithTime() {
        var t = AdmissionTable(
            limits: Self.limits(
                total: 1_000, perSource: 1_000, handshaking: 1_000, handshakingPerSource: 1_000,
                rate: 10, burst: 20))
        for _ in 0..<20 {
            guard case let .admit(id) = t.admit(Self.attacker, now: Self.t0) else {
                Issue.record("refused within the burst")
                return
            }
            t.closed(id)  // connect-and-close does not give the handshake back
        }
        #expect(t.admit(Self.attacker, now: Self.t0) == .refuse(.handshakeRate))
        #expect(t.admit(Self.person, now: Self.t0).isAdmitted)
        // 0.5 s later five more handshakes are allowed, and no more.
        let later = Self.t0 + .milliseconds(500)
        for _ in 0..<5 { #expect(t.admit(Self.attacker, now: later).isAdmitted) }
        #expect(t.admit(Self.attacker, now: later) == .refuse(.handshakeRate))
    }

    @Test func closingGivesTheSlotBackAndAnEvictedConnectionIsForgottenOnce() {
        var t = AdmissionTable(limits: Self.limits(total: 2, perSource: 2))
        let ids = Self.admitted(&t, Self.attacker, 2)
        guard case let .admitEvicting(_, victim) = t.admit(Self.person, now: Self.t0) else {
            Issue.record("refused")
            return
        }
        t.closed(victim)  // the evicted channel's close arrives later: a no-op
        #expect(t.count == 2)
        t.closed(ids.first { $0 != victim }!)
        #expect(t.count == 1)
        #expect(t.openConnections(from: Self.attacker) == 0)
    }

    @Test func ipv6SourcesAreGroupedBySlash64AndMappedIPv4CountsAsIPv4() throws {
        let a = SourceKey(try SocketAddress(ipAddress: "2001:db8:1:2::1", port: 1))
        let b = SourceKey(try SocketAddress(ipAddress: "2001:db8:1:2:ffff::9", port: 2))
        let c = SourceKey(try SocketAddress(ipAddress: "2001:db8:1:3::1", port: 1))
        #expect(a == b)
        #expect(a != c)
        let mapped = SourceKey(try SocketAddress(ipAddress: "::ffff:127.0.0.3", port: 1))
        #expect(mapped == SourceKey(try SocketAddress(ipAddress: "127.0.0.3", port: 9)))
    }

    @Test func idleSourcesAreForgottenSoTheTableStaysBounded() {
        var t = AdmissionTable(limits: Self.limits(total: 10, perSource: 10, rate: 1, burst: 1))
        for i in 0...AdmissionTable.maxTrackedSources {
            let s = SourceKey(prefix: withUnsafeBytes(of: UInt32(i).bigEndian) { Array($0) })
            if case let .admit(id) = t.admit(s, now: Self.t0) { t.closed(id) }
        }
        #expect(t.trackedSources <= AdmissionTable.maxTrackedSources + 1)
    }
}

extension AdmissionTable.Decision {
    var isAdmitted: Bool {
        switch self {
        case .admit, .admitEvicting: true
        case .refuse: false
        }
    }
}

extension AdmissionTableTests {
    /// Many sources each holding one stalled handshake (finding of the attacker review): no
    /// source is heavier than a newcomer, so the oldest stalled handshake anywhere goes.
    @Test func manySourcesEachStallingOneHandshakeCannotKeepNewcomersOut() {
        var t = AdmissionTable(limits: Self.limits(total: 100, perSource: 100, handshaking: 4, handshakingPerSource: 4))
        var stalled: [UInt64] = []
        for i in 0..<4 {
            stalled += Self.admitted(&t, SourceKey(prefix: [10, 0, 0, UInt8(i)]), 1, established: false)
        }
        guard case let .admitEvicting(_, victim) = t.admit(Self.person, now: Self.t0) else {
            Issue.record("the newcomer was refused")
            return
        }
        #expect(victim == stalled.min())
    }

    @Test func refusedNewcomersLeaveNoEntryAndIdleSourcesArePruned() {
        var t = AdmissionTable(limits: Self.limits(total: 2, perSource: 2))
        Self.admitted(&t, Self.attacker, 1)
        Self.admitted(&t, Self.person, 1)
        for i in 0..<50 { _ = t.admit(SourceKey(prefix: [10, 1, 0, UInt8(i)]), now: Self.t0) }
        #expect(t.trackedSources == 2)
        let later = Self.t0 + .seconds(3_600)
        t.pruneIdle(now: later)
        #expect(t.trackedSources == 2)  // both still hold a connection
    }
}
