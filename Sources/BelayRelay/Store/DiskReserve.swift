import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Space the relay sets aside next to its database and gives back when the disk fills. SQLite
/// needs free space to delete (the WAL grows before it is checkpointed, and `secure_delete`
/// rewrites freed pages), so without it a full disk would also stop acknowledgements, the
/// only thing that can free space. Owned by the core thread.
final class DiskReserve {
    let path: String
    let size: Int

    /// With the reserve off, the relay resumes growth once this much is free.
    static let resumeWithoutReserve = 16 << 20
    /// Resume once the reserve fits twice over: room for it and for a little growth.
    var resumeThreshold: Int { size > 0 ? 2 * size : Self.resumeWithoutReserve }

    init(path: String, size: Int) {
        self.path = path
        self.size = size
    }

    /// Makes sure the reserve exists at its full size. Throws `DiskFullError` when the file
    /// system cannot hold it.
    func ensure() throws {
        guard size > 0 else { return }
        if let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let existing = attributes[.size] as? Int, existing >= size
        {
            return
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw DiskFullError(path: path, availableBytes: Self.availableBytes(at: path), neededBytes: size) }
        defer { close(fd) }
        // posix_fallocate returns the error number itself rather than setting errno. It asks the
        // file system for real blocks; writing zeros is the fallback where it is not supported.
        var rc = posix_fallocate(fd, 0, off_t(size))
        if rc == EOPNOTSUPP || rc == EINVAL { rc = writeZeros(fd) }
        guard rc == 0, fsync(fd) == 0 else {
            unlink(path)
            throw DiskFullError(path: path, availableBytes: Self.availableBytes(at: path), neededBytes: size)
        }
    }

    /// Gives the space back. Returns whether there was anything to give.
    @discardableResult
    func release() -> Bool {
        guard size > 0 else { return false }
        return unlink(path) == 0
    }

    private func writeZeros(_ fd: Int32) -> Int32 {
        let chunk = [UInt8](repeating: 0, count: 1 << 20)
        var written = 0
        while written < size {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, min(chunk.count, size - written)) }
            guard n > 0 else { return errno }
            written += n
        }
        return 0
    }

    /// Whether the file system holding `path` has too little room for SQLite to open its WAL
    /// and shared-memory files: a failure to open there is a full disk, whatever SQLite said.
    static func isNearlyFull(at path: String) -> Bool {
        guard let available = availableBytes(at: path) else { return false }
        return available < 1 << 20
    }

    /// Bytes an unprivileged writer may still use on the file system holding `path`.
    static func availableBytes(at path: String) -> Int? {
        var stats = statvfs()
        let directory = (path as NSString).deletingLastPathComponent
        guard statvfs(directory.isEmpty ? "." : directory, &stats) == 0 else { return nil }
        return Int(stats.f_bavail) * Int(stats.f_frsize)
    }
}

/// The relay's file system is full. Names the path and says what to do.
public struct DiskFullError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var availableBytes: Int?
    public var neededBytes: Int

    public var description: String {
        let free = availableBytes.map { "\($0 / 1024) KiB free" } ?? "free space unknown"
        let need = max(neededBytes, DiskReserve.resumeWithoutReserve)
        return "the file system holding \(path) is full (\(free)); belayd needs at least \(need >> 20) MiB there. "
            + "Free space on that file system, or move the state directory (--state-dir), then start belayd again. "
            + "Nothing stored has been lost."
    }
}
