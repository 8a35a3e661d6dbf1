import BelayClient
import BelaySodium
import BelayWire
import Foundation
import NIOPosix
import Testing

@Suite(.serialized) struct LifecycleTests {
    /// A unix datagram socket standing in for systemd's $NOTIFY_SOCKET.
    final class NotifySocket: @unchecked Sendable {
        let path: String
        let fd: Int32

        init() throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8))").path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            #expect(rc == 0)
            var timeout = timeval(tv_sec: 30, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        func receive() async -> String {
            let fd = self.fd
            return await Task.detached {
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = recv(fd, &buffer, buffer.count, 0)
                return n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self) : ""
            }.value
        }

        deinit {
            close(fd)
            unlink(path)
        }
    }

    @Test func readyIsSentAfterBindingAndSigtermDrainsAndExitsZero() async throws {
        let stateDir = temporaryStateDir()
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let notify = try NotifySocket()
        let daemon = try await Daemon.start(stateDir: stateDir, environment: ["NOTIFY_SOCKET": notify.path])
        let ready = await notify.receive()
        #expect(ready.hasPrefix("READY=1"))

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = try await RelayConnection.connect(to: daemon.address, group: group)
        let rk = try Ed25519.SigningKey.generate()
        let (r, s) = try await client.createQueue(recipientKey: rk)
        // Pipeline sends, then SIGTERM. Each command the relay had read is answered OK (committed)
        // or UNAVAILABLE; commands still unread in the socket when it closes get no reply
        // (docs/PROTOCOL.md §6), and none of those may turn up later.
        let replies = (0..<200).map { i in client.request(.send(sender: s, body: [UInt8(i & 0xff)])) }
        let first = try await replies[0].get()
        #expect(first == .ok)
        let status = await daemon.terminate()
        #expect(status == 0)
        var ok = 0
        for f in replies {
            do {
                switch try await f.get() {
                case .ok: ok += 1
                case .error(.unavailable): break
                case let other: Issue.record("unexpected reply \(other)")
                }
            } catch {
                #expect(error as? RelayClientError == .connectionClosed)
            }
        }
        #expect(await notify.receive().hasPrefix("STOPPING=1"))

        // Everything answered OK is there after a restart.
        let again = try await Daemon.start(stateDir: stateDir)
        let reader = try await RelayConnection.connect(to: again.address, group: group)
        try await reader.authorise(.recipient, r, key: rk)
        var count = 0
        while let m = try await reader.getMessage(r) {
            try await reader.acknowledge(r, seq: m.seq)
            count += 1
        }
        #expect(count == ok)
        let port = try #require(reader.channel.localAddress?.port)
        #expect(await again.terminate() == 0)
        // The default log level names no client address or port.
        for log in [daemon.stderr, again.stderr] {
            #expect(!log.isEmpty)
            #expect(!log.contains(":\(port)"))
        }
        try await group.shutdownGracefully()
    }

    @Test func initPrintsOnlyTheAddressAndKeepsItsKey() async throws {
        let stateDir = temporaryStateDir()
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        func run(_ args: [String]) async throws -> (String, Int32) {
            let p = TestProcess()
            p.executableURL = URL(fileURLWithPath: try Daemon.binary)
            p.arguments = args
            let out = stateDir + ".out-\(UUID().uuidString)"
            _ = FileManager.default.createFile(atPath: out, contents: nil)
            defer { try? FileManager.default.removeItem(atPath: out) }
            p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
            p.standardError = FileHandle.nullDevice
            try p.launchOneAtATime()
            await p.exited()
            return ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "", p.terminationStatus)
        }
        let (first, status) = try await run(["init", "--state-dir", stateDir])
        #expect(status == 0)
        let lines = first.split(separator: "\n")
        #expect(lines.count == 1)
        let address = try RelayAddress(parsing: String(lines[0]))
        #expect(address.port == 7707)
        let (second, _) = try await run(["init", "--state-dir", stateDir])
        #expect(second == first)
        #expect(try await run(["address", "--state-dir", stateDir]).0 == first)
        let attributes = try FileManager.default.attributesOfItem(atPath: stateDir + "/relay.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let dirAttributes = try FileManager.default.attributesOfItem(atPath: stateDir)
        #expect((dirAttributes[.posixPermissions] as? Int) == 0o700)
        // A bad configuration names the key and exits with EX_CONFIG.
        let bad = stateDir + ".yaml"
        try "listen: here\n".write(toFile: bad, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: bad) }
        #expect(try await run(["address", "--state-dir", stateDir, "--config", bad]).1 == 78)
    }
}
