import BelayRelay
import Foundation
import Testing

@Suite struct StateDirectoryTests {
    @Test func aKeyOthersCanReadOrOfTheWrongSizeIsRefusedWithAHint() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("belay-state-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let state = RelayStateDirectory(path: path)
        #expect(throws: RelayStateDirectory.Error.self) { try state.loadKey() }
        let (key, created) = try state.initialise()
        #expect(created)
        #expect(try state.initialise().key.publicKey == key.publicKey)  // never overwritten

        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: state.keyPath)
        #expect("\(try #require(throws: RelayStateDirectory.Error.self) { try state.loadKey() })".contains("chmod 600"))

        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: state.keyPath)
        try Data(repeating: 1, count: 33).write(to: URL(fileURLWithPath: state.keyPath))
        #expect("\(try #require(throws: RelayStateDirectory.Error.self) { try state.loadKey() })".contains("is not 32 bytes"))
    }

    @Test func theStateDirectoryFollowsSystemdThenXDG() {
        #expect(RelayStateDirectory.resolve("/x", environment: ["STATE_DIRECTORY": "/s"]).path == "/x")
        #expect(RelayStateDirectory.resolve(nil, environment: ["STATE_DIRECTORY": "/s:/t"]).path == "/s")
        #expect(RelayStateDirectory.resolve(nil, environment: ["XDG_STATE_HOME": "/h/.state"]).path == "/h/.state/belayd")
        #expect(RelayStateDirectory.resolve(nil, environment: ["HOME": "/h"]).path == "/h/.local/state/belayd")
    }
}
