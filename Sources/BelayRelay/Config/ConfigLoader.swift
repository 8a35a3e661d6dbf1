import BelaySodium
import BelayWire
import Foundation
import Logging

/// Reads `belayd.yaml`: a flat YAML subset of `key: value` lines and `#` comments, then applies
/// `BELAYD_<KEY>` environment overrides, then validates. Every error names the key and its source.
/// Why not apple/swift-configuration: docs/OPERATIONS.md, "Configure".
public enum ConfigLoader {
    /// A configuration file is a page of settings; refuse anything larger before reading it.
    public static let maxFileBytes = 64 * 1024

    public struct Error: Swift.Error, Equatable, CustomStringConvertible {
        public var source: String
        public var key: String?
        public var message: String
        public var description: String {
            if let key { return "\(source): \(key): \(message)" }
            return "\(source): \(message)"
        }
    }

    /// Keys in file order, each with how to apply it. Unknown keys are errors, not ignored:
    /// a typo in a security setting must not silently fall back to a default.
    static let keys: [String] = [
        "listen", "public_host", "message_ttl", "max_queue_messages", "max_queue_bytes", "max_queues",
        "max_timers", "max_connections", "max_connections_per_source", "max_handshaking", "max_handshaking_per_source",
        "handshake_rate_per_source", "handshake_burst_per_source", "creation_rate_per_source", "creation_burst_per_source", "max_queues_per_connection",
        "max_timers_per_connection",
        "max_timer_bodies_per_queue", "max_store_bytes", "pressure_queue_bytes", "disk_reserve", "handshake_timeout", "idle_timeout", "delivery_jitter",
        "rate_limit_per_second",
        "rate_burst", "send_rate_per_queue", "send_burst_per_queue", "max_subscriptions_per_connection", "max_proofs_per_connection", "sweep_interval",
        "creation_tokens", "require_creation_token", "creation_pow_bits", "log_level", "metrics_listen", "store",
    ]

    public static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> RelayConfiguration {
        var config = RelayConfiguration()
        // Where each key's value came from, so that a range check names that line or variable.
        var origins: [String: String] = [:]
        if let file {
            let text: String
            do {
                let attributes = try FileManager.default.attributesOfItem(atPath: file)
                if let size = attributes[.size] as? Int, size > maxFileBytes {
                    throw Error(source: file, key: nil, message: "larger than \(maxFileBytes) bytes; is this the right file?")
                }
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch let e as Error {
                throw e
            } catch {
                throw Error(source: file, key: nil, message: "cannot read the configuration file (\(error.localizedDescription))")
            }
            origins = try apply(text: text, source: file, to: &config)
        }
        for key in keys {
            let name = "BELAYD_" + key.uppercased()
            if let value = environment[name] {
                let source = "environment \(name)"
                try set(key, value, source: source, on: &config)
                origins[key] = source
            }
        }
        try validate(config, origins: origins, otherwise: file ?? "configuration")
        return config
    }

    /// Applies the file's settings and returns, for each key set, the `FILE:LINE` it was set on.
    @discardableResult
    public static func apply(text: String, source: String, to config: inout RelayConfiguration) throws -> [String: String] {
        var origins: [String: String] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = stripComment(String(rawLine)).trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line == "---" { continue }
            let where_ = "\(source):\(index + 1)"
            guard let colon = line.firstIndex(of: ":") else {
                throw Error(source: where_, key: nil, message: "expected `key: value`")
            }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard !rawLine.hasPrefix(" "), !rawLine.hasPrefix("\t") else {
                throw Error(source: where_, key: key, message: "nested settings are not supported; write every key at the start of a line")
            }
            guard origins.updateValue(where_, forKey: key) == nil else { throw Error(source: where_, key: key, message: "set twice") }
            try set(key, value, source: where_, on: &config)
        }
        return origins
    }

    static func set(_ key: String, _ rawValue: String, source: String, on config: inout RelayConfiguration) throws {
        let value = unquote(rawValue)
        func fail(_ message: String) -> Error { Error(source: source, key: key, message: message) }
        switch key {
        case "listen":
            guard let hp = HostPort(parsing: value) else { throw fail("expected HOST:PORT, e.g. 0.0.0.0:7707 or [::]:7707") }
            config.listen = hp
        case "metrics_listen":
            // A bare port is on the loopback address: metrics stay on the machine unless the
            // operator names an interface.
            if let port = Int(value), (0...65535).contains(port) {
                config.metricsListen = HostPort(host: "127.0.0.1", port: port)
            } else if value.lowercased() == "off" || value.isEmpty {
                config.metricsListen = nil
            } else {
                guard let hp = HostPort(parsing: value) else { throw fail("expected PORT (on 127.0.0.1), HOST:PORT, or off") }
                config.metricsListen = hp
            }
        case "store":
            do {
                config.store = try StoreLocation(parsing: value)
            } catch {
                throw fail("\(error)")
            }
        case "public_host":
            guard !value.contains("/"), !value.contains(" ") else { throw fail("expected a host name or address") }
            config.publicHost = value
        case "message_ttl": config.messageTTLSeconds = UInt64(try duration(value, fail))
        case "max_queue_messages": config.maxQueueMessages = try integer(value, fail)
        case "max_queue_bytes": config.maxQueueBytes = try size(value, fail)
        case "max_queues": config.maxQueues = try integer(value, fail)
        case "max_timers": config.maxTimers = try integer(value, fail)
        case "max_connections": config.maxConnections = try integer(value, fail)
        case "max_connections_per_source": config.maxConnectionsPerSource = try integer(value, fail)
        case "max_handshaking": config.maxHandshaking = try integer(value, fail)
        case "max_handshaking_per_source": config.maxHandshakingPerSource = try integer(value, fail)
        case "handshake_rate_per_source": config.handshakeRatePerSource = try integer(value, fail)
        case "handshake_burst_per_source": config.handshakeBurstPerSource = try integer(value, fail)
        case "creation_rate_per_source": config.creationRatePerSource = try integer(value, fail)
        case "creation_burst_per_source": config.creationBurstPerSource = try integer(value, fail)
        case "pressure_queue_bytes": config.pressureQueueBytes = try size(value, fail)
        case "max_queues_per_connection": config.maxQueuesPerConnection = try integer(value, fail)
        case "max_timers_per_connection": config.maxTimersPerConnection = try integer(value, fail)
        case "max_timer_bodies_per_queue": config.maxTimerBodiesPerQueue = try integer(value, fail)
        case "max_store_bytes": config.maxStoreBytes = try size(value, fail)
        case "disk_reserve": config.diskReserveBytes = try size(value, fail)
        case "handshake_timeout": config.handshakeTimeoutSeconds = try duration(value, fail)
        case "idle_timeout": config.idleTimeoutSeconds = try duration(value, fail)
        case "delivery_jitter": config.deliveryJitterSeconds = try duration(value, fail)
        case "rate_limit_per_second": config.rateLimitPerSecond = try integer(value, fail)
        case "rate_burst": config.rateBurst = try integer(value, fail)
        case "send_rate_per_queue": config.sendRatePerQueue = try integer(value, fail)
        case "send_burst_per_queue": config.sendBurstPerQueue = try integer(value, fail)
        case "max_subscriptions_per_connection": config.maxSubscriptionsPerConnection = try integer(value, fail)
        case "max_proofs_per_connection": config.maxProofsPerConnection = try integer(value, fail)
        case "sweep_interval": config.sweepIntervalSeconds = try duration(value, fail)
        case "creation_tokens":
            config.creationTokenHashes = try list(rawValue, fail).map { token throws in
                guard token.utf8.count >= 16 else { throw fail("each token must be at least 16 characters") }
                guard token.utf8.count <= 255 else { throw fail("each token must be at most 255 bytes") }
                guard let hash = try? BLAKE2b.hash(Array(token.utf8), outputLength: 32) else { throw fail("cannot hash token") }
                return hash
            }
        case "require_creation_token": config.requireCreationToken = try boolean(value, fail)
        case "creation_pow_bits":
            let bits = try integer(value, fail)
            guard bits <= Int(WireLimits.maxWorkBits) else { throw fail("must be between 0 (off) and \(WireLimits.maxWorkBits)") }
            config.creationWorkBits = UInt8(bits)
        case "log_level":
            guard let level = Logger.Level(rawValue: value.lowercased()) else {
                throw fail("expected one of trace, debug, info, notice, warning, error, critical")
            }
            config.logLevel = level
        default:
            throw fail("unknown setting; the settings are: \(keys.joined(separator: ", "))")
        }
    }

    /// The range checks, once every source is applied. An error names where the key was set
    /// (`origins`), else `otherwise`: a default can fail a check against another key's value.
    static func validate(_ c: RelayConfiguration, origins: [String: String], otherwise: String) throws {
        func check(_ ok: Bool, _ key: String, _ message: String) throws {
            if !ok { throw Error(source: origins[key] ?? otherwise, key: key, message: message) }
        }
        try check(c.messageTTLSeconds >= 60 && c.messageTTLSeconds <= 366 * 86_400, "message_ttl", "must be between 1m and 366d")
        try check((1...1_000_000).contains(c.maxQueueMessages), "max_queue_messages", "must be between 1 and 1000000")
        try check(
            c.maxQueueBytes >= WireLimits.maxBodyLength && c.maxQueueBytes <= 1 << 34, "max_queue_bytes",
            "must be between 16KiB (one message) and 16GiB")
        try check((1...100_000_000).contains(c.maxQueues), "max_queues", "must be between 1 and 100000000")
        try check((0...10_000_000).contains(c.maxTimers), "max_timers", "must be between 0 and 10000000")
        try check((1...1_000_000).contains(c.maxConnections), "max_connections", "must be between 1 and 1000000")
        try check(
            (1...c.maxConnections).contains(c.maxConnectionsPerSource), "max_connections_per_source",
            "must be between 1 and max_connections (\(c.maxConnections))")
        try check((1...c.maxConnections).contains(c.maxHandshaking), "max_handshaking", "must be between 1 and max_connections (\(c.maxConnections))")
        try check(
            (1...c.maxHandshaking).contains(c.maxHandshakingPerSource), "max_handshaking_per_source",
            "must be between 1 and max_handshaking (\(c.maxHandshaking))")
        try check((1...1_000_000).contains(c.handshakeRatePerSource), "handshake_rate_per_source", "must be between 1 and 1000000")
        try check((1...1_000_000).contains(c.handshakeBurstPerSource), "handshake_burst_per_source", "must be between 1 and 1000000")
        try check((1...1_000_000).contains(c.creationRatePerSource), "creation_rate_per_source", "must be between 1 and 1000000 (per minute)")
        try check((1...1_000_000).contains(c.creationBurstPerSource), "creation_burst_per_source", "must be between 1 and 1000000")
        try check(
            c.pressureQueueBytes >= WireLimits.maxBodyLength && c.pressureQueueBytes <= c.maxQueueBytes, "pressure_queue_bytes",
            "must be between 16KiB (one message) and max_queue_bytes")
        try check((1...1_000_000).contains(c.maxQueuesPerConnection), "max_queues_per_connection", "must be between 1 and 1000000")
        try check((1...1_000_000).contains(c.maxTimersPerConnection), "max_timers_per_connection", "must be between 1 and 1000000")
        try check((1...1_000).contains(c.maxTimerBodiesPerQueue), "max_timer_bodies_per_queue", "must be between 1 and 1000")
        try check(
            c.maxStoreBytes >= c.maxQueueBytes && c.maxStoreBytes <= 1 << 50, "max_store_bytes",
            "must be at least max_queue_bytes and at most 1PiB")
        try check(c.diskReserveBytes >= 0 && c.diskReserveBytes <= 1 << 34, "disk_reserve", "must be between 0 (off) and 16GiB")
        try check(c.handshakeTimeoutSeconds > 0 && c.handshakeTimeoutSeconds <= 300, "handshake_timeout", "must be between 1ms and 5m")
        try check(c.idleTimeoutSeconds > 0 && c.idleTimeoutSeconds <= 86_400, "idle_timeout", "must be between 1ms and 1d")
        try check(
            c.deliveryJitterSeconds >= 0 && c.deliveryJitterSeconds <= RelayConfiguration.maxDeliveryJitterSeconds, "delivery_jitter",
            "must be between 0 (off) and 1m")
        try check((1...10_000_000).contains(c.rateLimitPerSecond), "rate_limit_per_second", "must be between 1 and 10000000")
        try check(
            (WireLimits.maxBundleEntries...10_000_000).contains(c.rateBurst), "rate_burst",
            "must be between \(WireLimits.maxBundleEntries) (one full bundle) and 10000000")
        try check((1...1_000_000).contains(c.sendRatePerQueue), "send_rate_per_queue", "must be between 1 and 1000000")
        try check(
            (c.sendRatePerQueue...10_000_000).contains(c.sendBurstPerQueue), "send_burst_per_queue",
            "must be between send_rate_per_queue (\(c.sendRatePerQueue); the bucket refills once a second) and 10000000")
        try check((1...100_000).contains(c.maxSubscriptionsPerConnection), "max_subscriptions_per_connection", "must be between 1 and 100000")
        try check((1...100_000).contains(c.maxProofsPerConnection), "max_proofs_per_connection", "must be between 1 and 100000")
        try check(c.sweepIntervalSeconds >= 0.01 && c.sweepIntervalSeconds <= 60, "sweep_interval", "must be between 10ms and 60s")
    }

    // MARK: Value syntax

    /// The line up to a `#` that starts it or follows a space, outside quotes. One pass: a line
    /// of 65,535 `#` took 7.6 s when the previous character was found by counting from the start.
    static func stripComment(_ line: String) -> String {
        var inQuote: Character? = nil
        var previous: Character? = nil
        for (i, ch) in zip(line.indices, line) {
            if ch == "\"" || ch == "'" { inQuote = inQuote == nil ? ch : (inQuote == ch ? nil : inQuote) }
            if ch == "#", inQuote == nil, previous == nil || previous == " " { return String(line[..<i]) }
            previous = ch
        }
        return line
    }

    static func unquote(_ s: String) -> String {
        if s.count >= 2, (s.hasPrefix("\"") && s.hasSuffix("\"")) || (s.hasPrefix("'") && s.hasSuffix("'")) {
            return String(s.dropFirst().dropLast())
        }
        return s
    }

    static func integer(_ s: String, _ fail: (String) -> Error) throws -> Int {
        guard let v = Int(s.replacingOccurrences(of: "_", with: "")), v >= 0 else { throw fail("expected a whole number, got `\(s)`") }
        return v
    }

    static func boolean(_ s: String, _ fail: (String) -> Error) throws -> Bool {
        switch s.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw fail("expected true or false, got `\(s)`")
        }
    }

    /// Longest duration any setting takes: each has its own narrower range (`validate`), and
    /// nothing longer can reach the conversions to whole seconds (`4e14d` trapped in one).
    static let maxDurationSeconds: Double = 10 * 366 * 86_400

    /// `90s`, `30m`, `6h`, `14d`, `250ms`; a bare number is seconds (`Durations` parses).
    static func duration(_ s: String, _ fail: (String) -> Error) throws -> Double {
        do { return try Durations.seconds(s, atMost: maxDurationSeconds) } catch {
            switch error {
            case .tooLong: throw fail("`\(s)` is longer than any setting allows (at most 10 years)")
            case .notADuration, .unknownUnit: throw fail("expected a duration such as 90s, 30m, 6h or 14d, got `\(s)`")
            }
        }
    }

    /// `8MiB`, `512KiB`, `1GiB`, `2TiB` or a number of bytes.
    static func size(_ s: String, _ fail: (String) -> Error) throws -> Int {
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40)]
        for (suffix, scale) in units where s.hasSuffix(suffix) {
            if let v = Int(s.dropLast(suffix.count)), v >= 0, v <= Int.max / scale { return v * scale }
        }
        return try integer(s, { _ in fail("expected a size such as 8MiB, 512KiB or a number of bytes, got `\(s)`") })
    }

    /// `[a, "b", c]`, or a comma-separated list in an environment variable.
    static func list(_ s: String, _ fail: (String) -> Error) throws -> [String] {
        var t = s.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("[") {
            guard t.hasSuffix("]") else { throw fail("a list must end with ]") }
            t = String(t.dropFirst().dropLast())
        }
        return t.split(separator: ",").map { unquote($0.trimmingCharacters(in: .whitespaces)) }.filter { !$0.isEmpty }
    }
}
