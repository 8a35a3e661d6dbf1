import BelayClient
import BelayRelay
import Foundation

/// A throwaway PostgreSQL server for the tests, from Debian's `postgresql` package: one
/// cluster per test process, under the build directory, on a free loopback port, with trust
/// authentication. It is started the first time a test asks for a database and stopped when
/// the process exits; clusters left by a test process that died are removed at the next start.
/// Each test gets a database of its own.
public actor PostgresCluster {
    public static let shared = PostgresCluster()

    public struct Unavailable: Error, CustomStringConvertible {
        public var description: String
    }

    private struct Running {
        var port: Int
        var directory: String
        var bin: String
    }

    private var running: Task<Running, Error>?
    private var databases = 0

    /// The directory that holds this process's cluster, and those of earlier test processes.
    static let parent: String = {
        // Tests/Support/PostgresCluster.swift -> the package root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/pg-test").path
    }()

    /// A new, empty database on the cluster.
    public func freshDatabase() async throws -> PostgresLocation {
        let server = try await start()
        databases += 1
        let name = "belay_\(getpid())_\(databases)"
        try await Self.run(server.bin + "/createdb", ["-h", "127.0.0.1", "-p", "\(server.port)", "-U", "belay", name])
        return PostgresLocation(host: "127.0.0.1", port: server.port, user: "belay", database: name)
    }

    /// Boots once; every caller waits for the same boot (the actor is re-entered while it runs).
    private func start() async throws -> Running {
        if let running { return try await running.value }
        let task = Task<Running, Error> {
            do {
                let r = try await Self.boot()
                atexit {
                    // The cluster of this process, found again from its pid (a C callback captures nothing).
                    PostgresCluster.stopSynchronously(PostgresCluster.parent + "/\(getpid())")
                }
                return r
            } catch {
                throw Unavailable(description: "cannot start a test PostgreSQL server: \(error). Run `make test`, which installs postgresql.")
            }
        }
        running = task
        return try await task.value
    }

    private static func boot() async throws -> Running {
        guard let bin = binDirectory() else {
            throw Unavailable(description: "no PostgreSQL server binaries under /usr/lib/postgresql (Debian package postgresql)")
        }
        // Explicit modes: the test process may run under umask 077 (the client sets it for its
        // secrets), and the postgres user must be able to reach its cluster's directory.
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        chmod(parent, 0o755)
        removeAbandoned()
        let dir = Self.parent + "/\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o700)
        if getuid() == 0 {
            // PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
            guard let pw = getpwnam("postgres") else { throw Unavailable(description: "no postgres user") }
            chown(dir, pw.pointee.pw_uid, pw.pointee.pw_gid)
        }
        try await run(bin + "/initdb", ["-D", dir + "/data", "-U", "belay", "-A", "trust", "--locale=C", "-E", "UTF8", "--no-sync"])
        let port = try freePort()
        // Every relay a test starts holds two connections (its writer and its listener), and the
        // relay suite runs its tests at once: with 208 tests it reached 200 connections, and the
        // next store was refused.
        try await Self.run(
            bin + "/pg_ctl",
            [
                "-D", dir + "/data", "-l", dir + "/server.log", "-w", "-t", "60", "-o",
                "-p \(port) -k \(dir) -c listen_addresses=127.0.0.1 -c max_connections=400", "start",
            ])
        return Running(port: port, directory: dir, bin: bin)
    }

    static func binDirectory() -> String? {
        let base = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        return versions.compactMap(Int.init).sorted().reversed().map { "\(base)/\($0)/bin" }
            .first { FileManager.default.isExecutableFile(atPath: $0 + "/pg_ctl") }
    }

    /// Stops the clusters of test processes that are gone.
    static func removeAbandoned() {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] {
            guard let pid = Int32(entry), pid != getpid(), kill(pid, 0) != 0 else { continue }
            stopSynchronously(parent + "/" + entry)
        }
    }

    static func stopSynchronously(_ dir: String) {
        guard let bin = binDirectory(), FileManager.default.fileExists(atPath: dir + "/data/postmaster.pid") else {
            try? FileManager.default.removeItem(atPath: dir)
            return
        }
        let (path, args) = asOwner(bin + "/pg_ctl", ["-D", dir + "/data", "-m", "immediate", "-w", "stop"])
        if let child = try? ChildProcess(path, args, environment: environment, stdout: devNull, stderr: devNull) {
            var status: Int32 = 0
            while child.isRunning, waitpid(child.pid, &status, 0) < 0, errno == EINTR {}
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    static let environment = ["PATH": "/usr/bin:/bin", "LC_ALL": "C"]
    static let devNull = open("/dev/null", O_WRONLY)

    /// As the postgres user when running as root.
    static func asOwner(_ path: String, _ arguments: [String]) -> (String, [String]) {
        getuid() == 0 ? ("/usr/sbin/runuser", ["-u", "postgres", "--", path] + arguments) : (path, arguments)
    }

    static func run(_ path: String, _ arguments: [String]) async throws {
        let (p, a) = asOwner(path, arguments)
        let child = try ChildProcess(p, a, environment: environment, stdout: devNull, stderr: devNull)
        let code = await child.exited()
        guard code == 0 else { throw Unavailable(description: "\((path as NSString).lastPathComponent) exited with \(code)") }
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(fd, p, length) == 0 && getsockname(fd, p, &length) == 0
            }
        }
        guard bound else { throw Unavailable(description: "no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
