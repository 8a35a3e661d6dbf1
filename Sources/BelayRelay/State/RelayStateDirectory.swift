import BelaySodium
import BelayWire
import Foundation

/// The relay's state directory: its X25519 key (`relay.key`, 0600) and database (`relay.db`),
/// in a directory only the relay's user can enter (0700).
public struct RelayStateDirectory: Sendable {
    public static let keyFileName = "relay.key"
    public static let databaseFileName = "relay.db"

    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// `--state-dir`, else systemd's `$STATE_DIRECTORY`, else `$XDG_STATE_HOME/belayd`, else
    /// `~/.local/state/belayd`.
    public static func resolve(_ explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> RelayStateDirectory {
        if let explicit, !explicit.isEmpty { return RelayStateDirectory(path: explicit) }
        if let systemd = environment["STATE_DIRECTORY"], !systemd.isEmpty {
            // systemd may pass several, colon-separated; the first is ours.
            return RelayStateDirectory(path: String(systemd.split(separator: ":").first ?? Substring(systemd)))
        }
        if let xdg = environment["XDG_STATE_HOME"], !xdg.isEmpty { return RelayStateDirectory(path: xdg + "/belayd") }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return RelayStateDirectory(path: home + "/.local/state/belayd")
    }

    public var keyPath: String { path + "/" + Self.keyFileName }
    public var databasePath: String { path + "/" + Self.databaseFileName }

    public enum Error: Swift.Error, CustomStringConvertible {
        case cannotCreate(String, String)
        case notInitialised(String)
        case unreadableKey(String, String)
        case keyTooOpen(String, String)
        case corruptKey(String)

        public var description: String {
            switch self {
            case let .cannotCreate(path, why): "cannot create \(path): \(why)"
            case let .notInitialised(path): "no relay key in \(path); run `belayd init --state-dir \(path)` first"
            case let .unreadableKey(path, why): "cannot read the relay key \(path): \(why)"
            case let .keyTooOpen(path, mode):
                "the relay key \(path) has mode \(mode) and can be read by other users; run `chmod 600 \(path)` (and consider the key exposed)"
            case let .corruptKey(path): "the relay key \(path) is not 32 bytes; restore it from backup or delete the state directory to start afresh"
            }
        }
    }

    public var isInitialised: Bool { FileManager.default.fileExists(atPath: keyPath) }

    /// Creates the directory and a new key if there is none. Returns the key and whether it is new.
    /// Never overwrites an existing key.
    @discardableResult
    public func initialise(random: some RandomSource = SystemRandom()) throws -> (key: X25519.KeyPair, created: Bool) {
        try createDirectory()
        if isInitialised { return (try loadKey(), false) }
        let key = try X25519.KeyPair.generate(random: random, storage: .guarded)
        var bytes = key.secretKey.unprotectedCopy()
        defer { Sodium.wipe(&bytes) }
        try SecureFile.writeNew(path: keyPath, contents: bytes)
        return (key, true)
    }

    private func createDirectory() throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw Error.cannotCreate(path, "it exists and is not a directory") }
            return
        }
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
        } catch {
            throw Error.cannotCreate(path, error.localizedDescription)
        }
    }

    public func loadKey() throws -> X25519.KeyPair {
        guard isInitialised else { throw Error.notInitialised(path) }
        var bytes = try readSecret(keyPath, length: X25519.keyLength)
        defer { Sodium.wipe(&bytes) }
        return try X25519.KeyPair(secretKey: SecureBytes(copying: bytes, storage: .guarded))
    }

    /// A key file's bytes: exactly `length` of them (checked before reading, so nothing larger
    /// is ever read), from a file no other user can read.
    func readSecret(_ file: String, length: Int) throws -> [UInt8] {
        let attributes: [FileAttributeKey: Any]
        let data: Data
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: file)
            guard (attributes[.size] as? Int) == length else { throw Error.corruptKey(file) }
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch let error as Error {
            throw error
        } catch {
            throw Error.unreadableKey(file, error.localizedDescription)
        }
        if let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
            throw Error.keyTooOpen(file, String(mode, radix: 8))
        }
        guard data.count == length else { throw Error.corruptKey(file) }
        return [UInt8](data)
    }

    public func address(host: String, port: Int) throws -> RelayAddress {
        RelayAddress(host: host, port: port, publicKey: try loadKey().publicKey)
    }
}

/// Writes a secret file the safe way: created 0600 with O_EXCL, fsynced, renamed into place,
/// directory fsynced. A crash leaves either no key or a whole key, never half of one.
enum SecureFile {
    static func writeNew(path: String, contents: [UInt8]) throws {
        let temporary = path + ".tmp"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RelayStateDirectory.Error.cannotCreate(temporary, String(cString: strerror(errno))) }
        var ok = contents.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) == $0.count }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw RelayStateDirectory.Error.cannotCreate(path, String(cString: strerror(errno)))
        }
        let directory = (path as NSString).deletingLastPathComponent
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }
}
