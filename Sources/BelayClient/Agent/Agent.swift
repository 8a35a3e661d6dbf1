import BelayE2E
import BelaySodium
import BelayWire
import Foundation
import GRDB
import NIOCore
import NIOPosix
import Synchronization

/// Everything `belay` does, as a library: the executable only parses arguments and prints.
/// One `Agent` serves one command; it opens the local state, unlocks it, and talks to relays.
public final class Agent: Sendable {
    public static let stateVersion: [UInt8] = [1]
    /// Longest contact name, in bytes.
    public static let maxNameLength = 64

    let home: String
    let store: ClientStore
    let identity: Identity
    let group: EventLoopGroup
    /// How relays are reached: directly, or through a SOCKS5 proxy such as Tor.
    let route: RelayRoute
    /// Unix seconds; injected so tests can move time.
    let now: @Sendable () -> UInt64
    /// What tests and `belay-bench` may change on an open agent (AgentSettings.swift), behind a
    /// lock: one agent serves several tasks at once (a group's fan-out flushes in parallel).
    let settings = Mutex(Settings())

    public static func defaultHome(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let home = environment["BELAY_HOME"], !home.isEmpty { return home }
        let base = environment["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.local/share")
        return base + "/belay"
    }

    public static func systemNow() -> UInt64 { UInt64(Date().timeIntervalSince1970) }

    static func databasePath(_ home: String) -> String { home + "/" + ClientStore.fileName }

    public static func exists(home: String) -> Bool { FileManager.default.fileExists(atPath: databasePath(home)) }

    /// Creates a new identity in `home`. `passphrase` nil means no passphrase: the master key is
    /// then stored in the clear beside the data, and anyone who can read the files can read it all.
    public static func initialise(home: String, passphrase: [UInt8]?, limits: Argon2id.Limits = .moderate) throws -> PublicIdentity {
        guard !exists(home: home) else { throw ClientError.stateExists(home) }
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        chmod(home, 0o700)
        let path = databasePath(home)
        let previous = umask(0o077)
        defer { umask(previous) }
        let store = try ClientStore(path: path, create: true)
        let master: SecureBytes
        // The "kdf" record: u8 scheme (0 = no passphrase, 1 = Argon2id), then for 1 the salt and
        // u64 operations, u64 memory bytes.
        var kdf = ByteWriter()
        if let passphrase {
            let salt = SystemRandom().bytes(Argon2id.saltLength)
            master = try Argon2id.deriveKey(passphrase: passphrase, salt: salt, limits: limits)
            kdf.u8(1)
            kdf.put(salt)
            kdf.u64(limits.operations)
            kdf.u64(UInt64(limits.memoryBytes))
        } else {
            master = try SecureBytes.random(count: 32, storage: .guarded)
            kdf.u8(0)
        }
        let vault = try Vault(master: master)
        let identity = try Identity.generate()
        let secret = try identity.secretBytes()
        try store.queue.write { db in
            try store.setMeta("version", stateVersion, db)
            try store.setMeta("kdf", kdf.bytes, db)
            if passphrase == nil { try store.setMeta("unprotected_master_key", master.unprotectedCopy(), db) }
            try store.setMeta("check", try vault.seal(Array("belay".utf8), context: "check"), db)
            try store.setMeta("identity", try vault.seal(secret.unprotectedCopy(), context: "identity"), db)
        }
        try store.queue.close()
        for suffix in ["", "-wal", "-shm"] { chmod(path + suffix, 0o600) }
        return identity.publicIdentity
    }

    /// Opens the state in `home`. `passphrase` is asked only if the state has one. Every relay
    /// connection the agent opens takes `route`.
    public init(
        home: String, passphrase: () throws -> [UInt8]?, now: @escaping @Sendable () -> UInt64 = Agent.systemNow,
        group: EventLoopGroup? = nil, route: RelayRoute = .direct
    ) throws {
        guard Self.exists(home: home) else { throw ClientError.noState(home) }
        let locked = try ClientStore(path: Self.databasePath(home), create: false)
        let (kdf, unprotected, check, sealedIdentity) = try Self.readMeta(locked)
        let master: SecureBytes
        var r = ByteReader(kdf)
        let scheme = (try? r.u8("scheme")) ?? 0xff
        switch scheme {
        case 0:
            guard let unprotected, unprotected.count == 32 else { throw ClientError.stateDamaged("the stored key is missing") }
            master = try SecureBytes(copying: unprotected, storage: .guarded)
        case 1:
            guard let salt = try? r.take(Argon2id.saltLength, "salt"), let ops = try? r.u64("operations"), let mem = try? r.u64("memory"),
                (try? r.expectEnd("kdf")) != nil, mem <= UInt64(Int.max)
            else {
                throw ClientError.stateDamaged("the key-derivation parameters are damaged")
            }
            let limits = Argon2id.Limits(operations: ops, memoryBytes: Int(mem))
            guard limits.isWithinBounds else { throw ClientError.stateDamaged("the key-derivation parameters are out of range") }
            guard var pass = try passphrase(), !pass.isEmpty else { throw ClientError.passphraseRequired }
            defer { Sodium.wipe(&pass) }
            master = try Argon2id.deriveKey(passphrase: pass, salt: salt, limits: limits)
        default:
            throw ClientError.stateDamaged("unknown key-derivation scheme")
        }
        let vault = try Vault(master: master)
        guard (try? vault.open(check, context: "check")) == Array("belay".utf8) else {
            throw scheme == 1 ? ClientError.wrongPassphrase : ClientError.stateDamaged("the stored key does not open the state")
        }
        let store = locked.unlocked(with: vault)
        do { try store.queue.write { db in try store.fillMissingInboxTags(db) } } catch let error as DatabaseError {
            throw ClientError.stateDamaged("the database refused a write (\(error.resultCode))")
        }
        var secret = try vault.open(sealedIdentity, context: "identity")
        defer { Sodium.wipe(&secret) }
        self.identity = try Identity(secretBytes: SecureBytes(copying: secret, storage: .guarded))
        self.home = home
        self.store = store
        self.now = now
        self.group = group ?? MultiThreadedEventLoopGroup.singleton
        self.route = route
    }

    private static func readMeta(_ store: ClientStore) throws -> ([UInt8], [UInt8]?, [UInt8], [UInt8]) {
        do {
            return try store.queue.read { db in
                guard try store.meta("version", db) == stateVersion else { throw ClientError.stateDamaged("unknown state version") }
                guard let kdf = try store.meta("kdf", db), let check = try store.meta("check", db), let identity = try store.meta("identity", db) else {
                    throw ClientError.stateDamaged("the identity is missing")
                }
                return (kdf, try store.meta("unprotected_master_key", db), check, identity)
            }
        } catch let error as DatabaseError {
            throw ClientError.stateDamaged("the database cannot be read (\(error.resultCode))")
        }
    }

    public var publicIdentity: PublicIdentity { identity.publicIdentity }

    /// Runs a write transaction, turning SQLite's errors into the client's.
    func write<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try store.queue.write(body) } catch let error as DatabaseError {
            // Busy past the timeout is another `belay` at work, not damage.
            if error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED { throw ClientError.stateBusy }
            throw ClientError.stateDamaged("the database refused a write (\(error.resultCode))")
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try store.queue.read(body) } catch let error as DatabaseError {
            throw ClientError.stateDamaged("the database cannot be read (\(error.resultCode))")
        }
    }

    static func validate(name: String) throws -> String {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw ClientError.invalidName("it is empty") }
        guard trimmed.utf8.count <= maxNameLength else { throw ClientError.invalidName("longer than \(maxNameLength) bytes") }
        guard GroupState.isPrintableName(trimmed) else {
            throw ClientError.invalidName("it contains control characters, line separators or direction overrides")
        }
        guard !trimmed.contains(",") else { throw ClientError.invalidName("it contains a comma") }
        return trimmed
    }
}
