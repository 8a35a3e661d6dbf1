/// Durations as people type them: `90s`, `30m`, `6h`, `2d`.
public enum DurationText {
    /// Longest duration accepted anywhere (400 days, the relay's longest timer).
    public static let maxSeconds: UInt64 = 400 * 24 * 3600

    public static func seconds(_ text: String) throws -> UInt64 {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if let value = UInt64(t.dropLast()), value == 0 { throw ClientError.invalidInput("\"\(text)\": a duration must be more than zero") }
        guard let unit = t.last, let value = UInt64(t.dropLast()), value > 0 else {
            throw ClientError.invalidInput("\"\(text)\" is not a duration; use a number and s, m, h or d, like 90s, 30m, 6h or 2d")
        }
        let scale: UInt64
        switch unit {
        case "s": scale = 1
        case "m": scale = 60
        case "h": scale = 3600
        case "d": scale = 86400
        default: throw ClientError.invalidInput("\"\(text)\" has an unknown unit; use s, m, h or d")
        }
        let (seconds, overflow) = value.multipliedReportingOverflow(by: scale)
        guard !overflow, seconds <= maxSeconds else { throw ClientError.invalidInput("\"\(text)\" is longer than 400 days") }
        return seconds
    }

    public static func describe(_ seconds: UInt64) -> String {
        if seconds == 0 { return "0s" }
        if seconds % 86400 == 0 { return "\(seconds / 86400)d" }
        if seconds % 3600 == 0 { return "\(seconds / 3600)h" }
        if seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }
}

import Foundation
