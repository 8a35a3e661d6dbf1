import BelayE2E
import BelayRelay
import BelayWire
import Foundation
import NIOCore
import Testing

@testable import BelayClient

/// What a network observer sees of a whole session (issue 12): people pair, send messages of
/// every size, read, arm and check in, and watch, while a tap at the relay splits every
/// connection's bytes into the 64-byte handshake messages and frames. Every frame is a bucket of
/// docs/PROTOCOL.md §2.2, and no byte is left over.
@Suite struct FrameLengthTests {
    @Test func aWholeSessionPutsOnlyBucketSizedFramesOnTheWire() async throws {
        let tap = WireTap()
        let w = try await CheckinTests.world(store: .memory, observe: tap.observer)
        try await w.pair("alice", "bob")
        try await w.pair("alice", "carol")
        let alice = try w.person("alice")
        let bob = try w.person("bob")
        // Message texts whose padded bodies fall in each body bucket (256 to 16000 bytes).
        for length in [1, 200, 900, 3_000, 12_000] {
            try await alice.send(to: "bob", text: String(repeating: "x", count: length))
        }
        let read = try await bob.read()
        #expect(read.filter { $0.kind == .message }.count == 5)
        _ = try await alice.armCheckin(every: 120, grace: 60, to: ["bob", "carol"], note: "at the station", codes: nil)
        _ = try await bob.read()
        await w.advance(60)
        _ = try await alice.checkIn(note: "fine", code: nil)

        // A watch receives a pushed message.
        let (stream, continuation) = AsyncStream<ReadEvent>.makeStream()
        let watching = Task {
            defer { continuation.finish() }
            try await bob.watch { events in events.forEach { continuation.yield($0) } }
        }
        try await alice.send(to: "bob", text: "are you there?")
        for await event in stream where event.kind == .message { break }
        watching.cancel()
        _ = await watching.result
        await w.finish()

        let frames = tap.allFrames
        #expect(frames.count > 20)
        #expect(Set(frames).isSubset(of: Set(WireLimits.frameBodyBuckets)), "\(Set(frames))")
        // Messages of every size were sent, so the frames are not all of one bucket.
        #expect(Set(frames).count >= 3, "\(Set(frames))")
        #expect(tap.unaccounted.isEmpty, "bytes that are not whole frames: \(tap.unaccounted)")
        // Every connection opened with a handshake message each way.
        #expect(tap.connections.allSatisfy { $0.hasPrefix("in [64") && $0.contains("out [64") })
    }
}
