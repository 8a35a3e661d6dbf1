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

/// For process tests only: the time is whatever Unix seconds the file holds, read at every call,
/// so a test can move a real `belayd`'s clock (`BELAYD_TEST_CLOCK_FILE`). A missing or unreadable
/// file reads as 0, which fires nothing and expires nothing.
public struct FileClock: RelayClock {
    /// The environment variable that makes belayd use one.
    public static let environmentVariable = "BELAYD_TEST_CLOCK_FILE"
    /// The file is a decimal number; anything longer is not read.
    static let maxFileBytes = 32
    let path: String

    public init(path: String) { self.path = path }

    public func now() -> UInt64 {
        guard let handle = FileHandle(forReadingAtPath: path) else { return 0 }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: Self.maxFileBytes)) ?? Data()
        return UInt64(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }
}
