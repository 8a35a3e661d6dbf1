import BelayRelay
import BelayWire
import Foundation
import Testing

/// What an operator reads when `belayd` refuses its configuration: where the bad value is (the
/// file and line, or the environment variable), the key, and what was expected. These go
/// through `ConfigLoader.load` with a real file, as `belayd --config FILE` does.
@Suite struct ConfigLoaderTests {
    /// Loads `text` from a file of its own; returns the error, or nil if the configuration is valid.
    func loadError(_ text: String, environment: [String: String] = [:]) throws -> (path: String, error: ConfigLoader.Error?) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("belayd-\(UUID().uuidString).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try ConfigLoader.load(file: path, environment: environment)
            return (path, nil)
        } catch let error as ConfigLoader.Error {
            return (path, error)
        }
    }

    @Test func aBadValueInTheFileIsNamedByFileLineAndKey() throws {
        let (path, error) = try loadError("# relay\nlisten: nowhere\n")
        #expect(error?.description == "\(path):2: listen: expected HOST:PORT, e.g. 0.0.0.0:7707 or [::]:7707")
        let (typoPath, typo) = try loadError("mesage_ttl: 3d\n")
        #expect(typo?.source == "\(typoPath):1" && typo?.key == "mesage_ttl")
        #expect(typo?.message.hasPrefix("unknown setting; the settings are: listen, public_host, message_ttl,") == true)
    }

    @Test func aBadValueInTheEnvironmentIsNamedByVariableAndKey() throws {
        let (_, error) = try loadError("idle_timeout: 30s\n", environment: ["BELAYD_IDLE_TIMEOUT": "soon"])
        #expect(error?.description == "environment BELAYD_IDLE_TIMEOUT: idle_timeout: expected a duration such as 90s, 30m, 6h or 14d, got `soon`")
    }

    /// A value that parses but is out of range is named where it was set, not by the file when
    /// the environment set it.
    @Test func anOutOfRangeValueIsNamedWhereItWasSet() throws {
        let (path, inFile) = try loadError("log_level: info\nmax_queue_messages: 0\n")
        #expect(inFile?.description == "\(path):2: max_queue_messages: must be between 1 and 1000000")
        let (_, inEnvironment) = try loadError("max_queue_messages: 10\n", environment: ["BELAYD_MAX_QUEUE_MESSAGES": "0"])
        #expect(inEnvironment?.description == "environment BELAYD_MAX_QUEUE_MESSAGES: max_queue_messages: must be between 1 and 1000000")
        // A default that no longer fits another key's value has no line: the file is named.
        let (defaultPath, fromDefault) = try loadError("max_queue_bytes: 128KiB\n")
        #expect(fromDefault?.source == defaultPath && fromDefault?.key == "pressure_queue_bytes")
    }

    @Test func deliveryJitterIsOffByDefaultAndBounded() throws {
        #expect(RelayConfiguration().deliveryJitterSeconds == 0)
        var config = RelayConfiguration()
        try ConfigLoader.apply(text: "delivery_jitter: 750ms", source: "t", to: &config)
        #expect(config.deliveryJitterSeconds == 0.75)
        let (path, tooLong) = try loadError("delivery_jitter: 2m\n")
        #expect(tooLong?.description == "\(path):1: delivery_jitter: must be between 0 (off) and 1m")
    }

    /// docs/OPERATIONS.md: an IPv6 listen address needs no quotes, and may have them.
    @Test func anIPv6ListenAddressReadsTheSameQuotedOrNot() throws {
        var bare = RelayConfiguration()
        var quoted = RelayConfiguration()
        try ConfigLoader.apply(text: "listen: [::]:7707", source: "t", to: &bare)
        try ConfigLoader.apply(text: "listen: '[::]:7707' # all interfaces", source: "t", to: &quoted)
        #expect(bare.listen == HostPort(host: "::", port: 7707) && quoted.listen == bare.listen)
    }

    @Test func theEnvironmentOverridesTheFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("belayd-\(UUID().uuidString).yaml").path
        try "message_ttl: 2d\nlog_level: debug\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let config = try ConfigLoader.load(file: path, environment: ["BELAYD_MESSAGE_TTL": "3d", "BELAYD_NOT_A_SETTING": "x"])
        #expect(config.messageTTLSeconds == 3 * 86_400 && config.logLevel == .debug)
    }
}
