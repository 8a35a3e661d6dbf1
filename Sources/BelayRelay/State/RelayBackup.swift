import Foundation
import GRDB

#if canImport(Glibc)
    import Glibc
#endif

/// `belayd backup` and `belayd restore` for the SQLite store: a consistent copy taken while the
/// relay runs (SQLite's online backup), and its return once the relay is stopped. The copy holds
/// what the relay holds (ciphertext, public keys, timers), never the relay's private key, which
/// stays in `relay.key` and is kept by the operator apart (docs/OPERATIONS.md).
public enum RelayBackup {
    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Copies the database in `state` to `file`, which must not exist, readable by its owner only.
    public static func backup(_ state: RelayStateDirectory, to file: String) throws {
        let source = state.databasePath
        guard FileManager.default.fileExists(atPath: source) else { throw Error("no relay database at \(source)") }
        guard !FileManager.default.fileExists(atPath: file) else { throw Error("\(file) already exists; refusing to overwrite it") }
        var readOnly = Configuration()
        readOnly.readonly = true
        let previous = umask(0o077)
        defer { umask(previous) }
        do {
            let from = try DatabaseQueue(path: source, configuration: readOnly)
            defer { try? from.close() }
            let to = try DatabaseQueue(path: file)
            try from.backup(to: to)
            // The copy is a database of its own, without a WAL beside it.
            _ = try to.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA journal_mode = DELETE") }
            try to.close()
        } catch let error as DatabaseError {
            try? FileManager.default.removeItem(atPath: file)
            throw Error("the backup failed: \(error.message ?? "\(error.resultCode)")")
        }
        try sync(file)
    }

    /// Puts the copy in `file` in place of the relay's database. The relay must be stopped (its
    /// lock is taken for the duration); the copy is checked first, and written beside the
    /// database and renamed over it, so a failure leaves the old one as it was. After a restore
    /// the relay still never repeats a message number: the start generation follows the clock.
    public static func restore(_ state: RelayStateDirectory, from file: String) throws {
        try check(file)
        guard let lock = RelayLock(state) else {
            throw Error("the relay is running on \(state.path); stop it first (systemctl stop belayd), then restore")
        }
        defer { lock.release() }
        let target = state.databasePath
        let temporary = target + ".restoring"
        try? FileManager.default.removeItem(atPath: temporary)
        do {
            try FileManager.default.copyItem(atPath: file, toPath: temporary)
            chmod(temporary, 0o600)
            try sync(temporary)
            for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: target + suffix) }
            guard rename(temporary, target) == 0 else { throw Error("cannot put the copy in place: \(String(cString: strerror(errno)))") }
            try sync(state.path)
        } catch let error as Error {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw Error("the restore failed: \(error)")
        }
    }

    /// A copy must open, pass SQLite's integrity check, and hold a relay's tables.
    static func check(_ file: String) throws {
        guard FileManager.default.fileExists(atPath: file) else { throw Error("no file at \(file)") }
        var readOnly = Configuration()
        readOnly.readonly = true
        do {
            let db = try DatabaseQueue(path: file, configuration: readOnly)
            defer { try? db.close() }
            let (integrity, tables) = try db.read { db in
                (
                    try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "",
                    try Set(String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'"))
                )
            }
            guard integrity == "ok" else { throw Error("\(file) is damaged (integrity check: \(integrity))") }
            guard tables.isSuperset(of: ["queue", "message", "timer", "relay_meta"]) else { throw Error("\(file) is not a Belay relay database") }
        } catch let error as DatabaseError {
            throw Error("\(file) is not a Belay relay database (\(error.resultCode))")
        }
    }

    static func sync(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw Error("cannot open \(path) to sync it") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw Error("cannot sync \(path): \(String(cString: strerror(errno)))") }
    }
}

/// An exclusive lock on the state directory, held by a running relay: a second relay on the same
/// state, or a restore under a running one, is refused. Released when the process ends.
public final class RelayLock: Sendable {
    public static let fileName = "relay.lock"
    let descriptor: Int32

    public init?(_ state: RelayStateDirectory) {
        let fd = open(state.path + "/" + Self.fileName, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            return nil
        }
        descriptor = fd
    }

    public func release() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
