import Foundation
import Synchronization

/// The relay's notion of "now" in Unix seconds, injected so tests can move time.
public protocol RelayClock: Sendable {
    func now() -> UInt64
}

public struct SystemClock: RelayClock {
    public init() {}
    public func now() -> UInt64 { UInt64(max(0, Date().timeIntervalSince1970)) }
}

/// A clock that moves only when told to.
public final class ManualClock: RelayClock {
    private let value: Mutex<UInt64>
    public init(_ start: UInt64 = 1_800_000_000) { value = Mutex(start) }
    public func now() -> UInt64 { value.withLock { $0 } }
    public func advance(by seconds: UInt64) { value.withLock { $0 += seconds } }
}
