import Foundation
import GRDB
import Logging
import Testing

@testable import BelayRelay

/// The start generation (the high half of every seq) only moves forward: past the stored one,
/// and past the clock, so a database restored from an older copy never hands out a seq again.
@Suite struct GenerationTests {
    static func store() throws -> (RelayStore, String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("belay-gen-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return (try RelayStore(path: directory + "/relay.db"), directory)
    }

    static func setStored(_ store: RelayStore, _ value: Int64) throws {
        try store.database.write { db in
            try db.execute(
                sql: "INSERT INTO relay_meta(name, value) VALUES ('generation', ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                arguments: [value])
        }
    }

    @Test func aRestoredDatabaseStillMovesForwardWithTheClock() throws {
        let (store, directory) = try Self.store()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.setStored(store, 7)  // as if restored from a copy made long ago
        let now: UInt64 = 1_800_000_000
        let floor = QueueEngine.generationFloor(now: now)
        #expect(try store.nextGeneration(floor: floor) == floor)
        #expect(try store.nextGeneration(floor: floor) == floor + 1)  // a restart in the same second
        try store.close()
    }

    @Test func aGenerationThatWouldMakeSeqNegativeStopsTheRelay() throws {
        let (store, directory) = try Self.store()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.setStored(store, Int64(GenerationExhausted.maxGeneration) - 1)
        #expect(throws: GenerationExhausted.self) { try store.nextGeneration() }
        try store.close()
    }
}
