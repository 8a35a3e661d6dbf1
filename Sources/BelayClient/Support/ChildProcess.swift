import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A program started with `posix_spawn`, for `--on-alert` hooks (and the tests' processes).
/// Not Foundation's `Process`: on this toolchain its `run()` crashes now and then, over-reading
/// 256 bytes of each `/proc/self/fd` entry's name (swiftlang/swift-corelibs-foundation#5472,
/// fixed upstream in 2026). The child gets the three descriptors given, and no other: every
/// descriptor from 3 up is closed in it.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    private let state = Mutex<State>(.running([]))

    private enum State {
        case running([CheckedContinuation<Int32, Never>])
        case exited(Int32)
    }

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts `path` with `arguments` (not including the program name) and exactly
    /// `environment`. `onExit` runs once with the exit code (or the signal's number).
    public init(
        _ path: String, _ arguments: [String], environment: [String: String], stdin: Int32 = 0, stdout: Int32 = 1, stderr: Int32 = 2,
        onExit: (@Sendable (Int32) -> Void)? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (from, to) in [(stdin, 0), (stdout, 1), (stderr, 2)] where from != to {
            posix_spawn_file_actions_adddup2(&actions, from, Int32(to))
        }
        Self.closeFrom(3, &actions)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, path, &actions, nil, argv, envp)
        guard result == 0 else { throw SpawnError(description: "cannot run \(path): \(String(cString: strerror(result)))") }
        pid = child
        // One thread per child blocks in waitpid; nothing else waits on it.
        Thread.detachNewThread { [self, child] in
            var status: Int32 = 0
            while waitpid(child, &status, 0) < 0, errno == EINTR {}
            let code = status & 0x7f == 0 ? (status >> 8) & 0xff : status & 0x7f
            let waiters = state.withLock { s -> [CheckedContinuation<Int32, Never>] in
                guard case let .running(w) = s else { return [] }
                s = .exited(code)
                return w
            }
            onExit?(code)
            for w in waiters { w.resume(returning: code) }
        }
    }

    /// Closes every descriptor from `first` up in the child (glibc's extension; on a libc
    /// without it, the descriptors opened with O_CLOEXEC are closed by exec regardless).
    private static func closeFrom(_ first: Int32, _ actions: inout posix_spawn_file_actions_t) {
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return }
        _ = unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, first)
    }

    public var isRunning: Bool { state.withLock { if case .running = $0 { true } else { false } } }

    /// The exit code (or the number of the signal that ended it); nil while it runs.
    public var exitCode: Int32? { state.withLock { if case let .exited(c) = $0 { c } else { nil } } }

    public func signal(_ number: Int32) {
        if isRunning { kill(pid, number) }
    }

    /// Waits, without blocking a thread, for the child to end; its exit code.
    public func exited() async -> Int32 {
        await withCheckedContinuation { c in
            let done: Int32? = state.withLock { s in
                switch s {
                case var .running(w):
                    w.append(c)
                    s = .running(w)
                    return nil
                case let .exited(code): return code
                }
            }
            if let done { c.resume(returning: done) }
        }
    }
}
