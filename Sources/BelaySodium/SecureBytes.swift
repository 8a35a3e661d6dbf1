import CSodium

/// Secret bytes that are wiped when released. Immutable once built, hence `Sendable`.
///
/// `.guarded` storage comes from `sodium_malloc` (guard pages, locked, wiped on free) and suits
/// long-lived keys; it costs several system calls per allocation. `.wiped` storage is ordinary
/// heap memory zeroed with `sodium_memzero` on release, for short-lived session material that a
/// busy relay creates per connection.
public final class SecureBytes: @unchecked Sendable {
    public enum Storage: Sendable { case guarded, wiped }

    public let count: Int
    private let pointer: UnsafeMutableRawPointer
    private let storage: Storage

    /// Builds `count` bytes and lets `fill` write them exactly once, before anyone else sees them.
    public init(
        count: Int,
        storage: Storage = .wiped,
        fill: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        try Sodium.ensureReady()
        precondition(count >= 0, "negative secret length")
        let size = max(count, 1)
        switch storage {
        case .guarded:
            guard let p = sodium_malloc(size) else { throw SodiumError.allocationFailed }
            pointer = p
        case .wiped:
            pointer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        }
        self.count = count
        self.storage = storage
        // Every stored property is set, so if `fill` throws, Swift runs `deinit`, which wipes
        // and frees the buffer; releasing it here too would free it twice.
        sodium_memzero(pointer, size)
        try fill(UnsafeMutableRawBufferPointer(start: pointer, count: count))
    }

    /// Inlinable so that each caller gets a copy specialised to its collection: the generic copy
    /// went byte by byte through the collection's witness table and was two thirds of the ratchet's
    /// time. Contiguous input (arrays, their slices, raw buffers) is one `memcpy`.
    @inlinable
    public convenience init(copying bytes: some Collection<UInt8>, storage: Storage = .wiped) throws {
        try self.init(count: bytes.count, storage: storage) { buffer in
            let copied: Void? = bytes.withContiguousStorageIfAvailable { source in
                // Checked in release builds too (copyMemory's own check is debug-only): a
                // collection whose storage is longer than its count must not overflow.
                precondition(source.count <= buffer.count, "contiguous storage longer than the collection")
                buffer.copyMemory(from: UnsafeRawBufferPointer(source))
            }
            if copied == nil { _ = buffer.initializeMemory(as: UInt8.self, from: bytes) }
        }
    }

    public static func random(count: Int, storage: Storage = .wiped) throws -> SecureBytes {
        try SecureBytes(count: count, storage: storage) { buffer in
            if let base = buffer.baseAddress, buffer.count > 0 { randombytes_buf(base, buffer.count) }
        }
    }

    deinit {
        Self.release(pointer, max(count, 1), storage)
    }

    private static func release(_ pointer: UnsafeMutableRawPointer, _ size: Int, _ storage: Storage) {
        switch storage {
        case .guarded:
            sodium_free(pointer)  // wipes before unmapping
        case .wiped:
            sodium_memzero(pointer, size)
            pointer.deallocate()
        }
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// A copy that leaves the protected storage, for writing to an encrypted or 0600 file.
    /// The caller owns wiping it (`Sodium.wipe`).
    public func unprotectedCopy() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    public func constantTimeEquals(_ other: SecureBytes) -> Bool {
        withUnsafeBytes { a in other.withUnsafeBytes { b in Sodium.constantTimeEquals(a, b) } }
    }
}

extension SecureBytes: CustomStringConvertible {
    /// Never prints the bytes.
    public var description: String { "SecureBytes(\(count) bytes)" }
}
