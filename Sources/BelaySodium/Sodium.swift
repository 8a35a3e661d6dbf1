import CSodium

/// The single entry point to libsodium. Every wrapper calls `ensureReady()` before touching C,
/// so no caller can reach a primitive before `sodium_init` has succeeded.
public enum Sodium {
    /// Swift runs this initialiser exactly once, thread-safely. `sodium_init` returns 0 on the
    /// first successful call, 1 if it had already run, and -1 on failure.
    private static let initResult: Int32 = sodium_init()

    @inline(__always)
    static func ensureReady() throws {
        if initResult < 0 { throw SodiumError.initialisationFailed }
    }

    /// Constant-time equality for tags, keys and anything else an attacker may probe byte by byte.
    /// Buffers of different lengths are unequal; the length itself is not secret.
    public static func constantTimeEquals(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard a.count > 0 else { return true }
        guard (try? ensureReady()) != nil else { return false }
        return sodium_memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0
    }

    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in constantTimeEquals(pa, pb) } }
    }

    /// Overwrites memory in a way the compiler may not elide.
    public static func wipe(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        sodium_memzero(base, buffer.count)
    }

    public static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { wipe($0) }
    }
}

/// What can go wrong at the libsodium boundary. Each case says what the caller got wrong or
/// what the input failed, never anything secret.
public enum SodiumError: Error, Equatable, CustomStringConvertible {
    case initialisationFailed
    case invalidLength(what: String, expected: Int, actual: Int)
    case lengthOutOfRange(what: String, maximum: Int, actual: Int)
    case authenticationFailed
    case invalidPublicKey
    case allocationFailed
    case operationFailed(String)

    public var description: String {
        switch self {
        case .initialisationFailed: "libsodium could not be initialised"
        case let .invalidLength(what, expected, actual): "\(what) must be \(expected) bytes, got \(actual)"
        case let .lengthOutOfRange(what, maximum, actual): "\(what) may be at most \(maximum) bytes, got \(actual)"
        case .authenticationFailed: "authentication failed: the data was altered or the key is wrong"
        case .invalidPublicKey: "the public key is invalid or of low order"
        case .allocationFailed: "could not allocate protected memory"
        case let .operationFailed(what): "\(what) failed"
        }
    }

    @inline(__always)
    public static func check(_ what: String, _ actual: Int, is expected: Int) throws {
        if actual != expected { throw SodiumError.invalidLength(what: what, expected: expected, actual: actual) }
    }
}
