import BelayClient
import BelaySodium
import BelayWire
import Foundation
import Logging
import Testing

@testable import BelayRelay

#if canImport(Glibc)
    import Glibc
#endif

/// A small tmpfs that the test mounts, fills and frees, so the relay meets a real ENOSPC.
final class SmallFileSystem {
    let path: String

    /// Mounting needs root (CI and the dev machines run as root); elsewhere these tests are
    /// disabled with this reason rather than faked.
    static let unavailableReason: Comment = "mounting a tmpfs needs root and mount(2); the disk-full tests cannot run here"
    static let available: Bool = {
        guard let fs = try? SmallFileSystem(megabytes: 1) else { return false }
        fs.unmount()
        return true
    }()

    struct MountFailed: Error { var errno: Int32 }

    init(megabytes: Int) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("belay-smallfs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard mount("tmpfs", path, "tmpfs", 0, "size=\(megabytes)m,mode=0700") == 0 else {
            let e = errno
            try? FileManager.default.removeItem(atPath: path)
            throw MountFailed(errno: e)
        }
    }

    var fillerPath: String { path + "/filler" }

    /// Writes a filler file until the file system refuses another byte.
    func fill() {
        let fd = open(fillerPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        defer { close(fd) }
        var chunk = 1 << 20
        let zeros = [UInt8](repeating: 0, count: chunk)
        while chunk >= 512 {
            let n = zeros.withUnsafeBytes { write(fd, $0.baseAddress, chunk) }
            if n < chunk { chunk /= 2 }
        }
    }

    func freeFiller() {
        unlink(fillerPath)
    }

    func unmount() {
        umount2(path, Int32(MNT_DETACH))
        try? FileManager.default.removeItem(atPath: path)
    }
}

@Suite(.serialized, .enabled(if: SmallFileSystem.available, SmallFileSystem.unavailableReason))
struct DiskFullTests {
    /// The disk fills under a stream of SENDs. Growth is refused with STORE_FULL (never a lost
    /// OK), the counters stay equal to what is durable, the recipient can read and acknowledge
    /// everything that was acknowledged to the sender, and growth resumes once space returns,
    /// all without a restart.
    @Test func aFullDiskRefusesGrowthKeepsDeletionsWorkingAndRecovers() async throws {
        let fs = try SmallFileSystem(megabytes: 24)
        defer { fs.unmount() }
        let relay = try await RelayHarness.start(store: .sqlite, in: fs.path) { $0.diskReserveBytes = 2 << 20 }
        defer { relay.remove() }
        let owner = try await relay.connect()
        let q = try await SecuredQueue.make(on: owner)
        let sender = try await q.sender(on: relay)
        let body = [UInt8](repeating: 0x5a, count: 16_000)
        for _ in 0..<5 { try await sender.send(to: q.sender, body: body) }

        fs.fill()
        var acknowledged = 5
        var refused: RelayErrorCode?
        for _ in 0..<2_000 {
            do {
                try await sender.send(to: q.sender, body: body)
                acknowledged += 1
            } catch let RelayClientError.relay(code) {
                refused = code
                break
            }
        }
        #expect(refused == .storeFull)
        #expect(await relay.server.core.isRefusingGrowthForFullDisk())
        #expect(await relay.server.core.countersMatchStore())

        // Every acknowledged send is there, and acknowledging them works on the full disk.
        var drained = 0
        while let m = try await owner.getMessage(q.recipient) {
            #expect(m.body == body)
            try await owner.acknowledge(q.recipient, seq: m.seq)
            drained += 1
        }
        #expect(drained == acknowledged)
        #expect(await relay.server.core.countersMatchStore())
        #expect(await relay.server.core.heldBytes() == 0)

        // Still full after a sweep (only the reserve was given back); then space returns.
        await relay.server.core.sweep()
        await #expect(throws: RelayClientError.relay(.storeFull)) { try await sender.send(to: q.sender, body: body) }
        fs.freeFiller()
        await relay.server.core.sweep()
        #expect(await !relay.server.core.isRefusingGrowthForFullDisk())
        try await sender.send(to: q.sender, body: body)
        #expect(FileManager.default.fileExists(atPath: relay.store.path + ".reserve"))
        #expect(await relay.server.core.countersMatchStore())
        await relay.stop()
    }

    /// Starting on a full disk fails with an error that names the database and says what to do.
    @Test func startingOnAFullDiskNamesThePathAndWhatToDo() async throws {
        let fs = try SmallFileSystem(megabytes: 8)
        defer { fs.unmount() }
        let relay = try await RelayHarness.start(store: .sqlite, in: fs.path) { $0.diskReserveBytes = 1 << 20 }
        defer { relay.remove() }
        let owner = try await relay.connect()
        _ = try await SecuredQueue.make(on: owner)
        await relay.stop()
        try? FileManager.default.removeItem(atPath: relay.store.path + ".reserve")
        fs.fill()

        var config = RelayConfiguration()
        config.diskReserveBytes = 1 << 20
        let logger = Logger(label: "disk-full-test") { _ in SwiftLogNoOpLogHandler() }
        do {
            let store = try RelayStore(path: relay.store.path)
            defer { try? store.close() }
            _ = try RelayCore(store: store, limits: CoreLimits(config), clock: ManualClock(), sweepInterval: nil, logger: logger)
            Issue.record("the relay started on a full disk")
        } catch let error as DiskFullError {
            #expect(error.path == relay.store.path)
            #expect(error.description.contains(relay.store.path))
            #expect(error.description.contains("Free space"))
        }
    }

    /// A check-in timer that falls due while the disk is full is released in a transaction of
    /// its own (from the space the reserve gave back), and the recipient's subscription is not
    /// ended along the way.
    @Test func aTimerDueWhileTheDiskIsFullStillFiresAndEndsNoSubscription() async throws {
        let fs = try SmallFileSystem(megabytes: 24)
        defer { fs.unmount() }
        let relay = try await RelayHarness.start(store: .sqlite, in: fs.path) { $0.diskReserveBytes = 2 << 20 }
        defer { relay.remove() }
        let inbox = PushInbox()
        let owner = try await relay.connect(onPush: inbox.handler)
        let q = try await SecuredQueue.make(on: owner)
        try await owner.subscribe(q.recipient)
        let depositor = try await q.sender(on: relay)
        _ = try await depositor.setTimer(
            .init(
                timerKey: try Ed25519.SigningKey.generate().publicKey, delay: 600,
                entries: [.init(sender: q.sender, body: Array("missed check-in".utf8))]))
        let other = try await SecuredQueue.make(on: owner)
        let sender = try await other.sender(on: relay)
        fs.fill()
        var refused = false
        for _ in 0..<2_000 where !refused {
            do { try await sender.send(to: other.sender, body: [UInt8](repeating: 1, count: 16_000)) } catch RelayClientError.relay(.storeFull) {
                refused = true
            }
        }
        #expect(refused)
        relay.clock.advance(by: 601)
        await relay.server.core.sweep()
        let pushes = await inbox.first(1)
        #expect(pushes.first?.delivery?.body == Array("missed check-in".utf8))
        #expect(!inbox.all.contains { if case .end = $0 { true } else { false } })
        #expect(await relay.server.core.countersMatchStore())
        await relay.stop()
    }
}
