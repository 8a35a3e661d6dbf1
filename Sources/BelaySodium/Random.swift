import CSodium
import Synchronization

/// Where randomness comes from. Production code uses `SystemRandom`; tests inject a seeded
/// source so that ids and keys are reproducible.
public protocol RandomSource: Sendable {
    func fill(_ buffer: UnsafeMutableRawBufferPointer)
}

extension RandomSource {
    public func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { fill($0) }
        return out
    }

    public func secret(_ count: Int, storage: SecureBytes.Storage = .wiped) throws -> SecureBytes {
        try SecureBytes(count: count, storage: storage) { fill($0) }
    }

    /// A draw from `0 ... bound`, for random delays (delivery and send jitter, keep-alives).
    /// The modulo bias of a 64-bit draw over a bound below 2^40 (18 minutes of nanoseconds) is
    /// under 2^-24: far below what timing could show, and nothing here is a key.
    public func uniform(upTo bound: UInt64) -> UInt64 {
        guard bound > 0 else { return 0 }
        var draw: UInt64 = 0
        withUnsafeMutableBytes(of: &draw) { fill($0) }
        return bound == .max ? draw : draw % (bound + 1)
    }
}

/// The operating system's CSPRNG through libsodium.
public struct SystemRandom: RandomSource {
    public init() {}
    public func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        // randombytes_buf cannot fail once sodium_init has run; if init failed we must not
        // hand out zeros as randomness.
        precondition((try? Sodium.ensureReady()) != nil, "libsodium is not initialised")
        randombytes_buf(base, buffer.count)
    }
}

/// A deterministic stream (libsodium's `randombytes_buf_deterministic`, ChaCha20 under the
/// seed) for tests only. Each call continues the stream by advancing a counter mixed into the seed.
public final class SeededRandom: RandomSource {
    private let seed: [UInt8]
    private let counter = Mutex<UInt64>(0)

    public init(seed: UInt8) {
        self.seed = [UInt8](repeating: seed, count: Int(randombytes_SEEDBYTES))
    }

    public func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        counter.withLock { counter in
            counter &+= 1
            var s = seed
            withUnsafeBytes(of: counter.littleEndian) { c in
                for i in 0..<8 { s[i] ^= c[i] }
            }
            s.withUnsafeBufferPointer { randombytes_buf_deterministic(base, buffer.count, $0.baseAddress!) }
        }
    }
}
