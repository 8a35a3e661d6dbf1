import BelayWire
import Foundation

/// Durations as people type them: `90s`, `30m`, `6h`, `2d`.
public enum DurationText {
    /// Longest duration accepted anywhere: the relay's longest timer.
    public static let maxSeconds = UInt64(WireLimits.maxTimerDelaySeconds)
    /// Shortest time anything waits on a relay timer.
    public static let minTimerSeconds = UInt64(WireLimits.minTimerDelaySeconds)

    /// Whole seconds, from 1 to `maxSeconds` (`Durations` parses; this words the errors).
    public static func seconds(_ text: String) throws -> UInt64 {
        let value: Double
        do { value = try Durations.seconds(text, atMost: Double(maxSeconds)) } catch {
            switch error {
            case .notADuration:
                throw ClientError.invalidInput("\"\(text)\" is not a duration; use a number and s, m, h or d, like 90s, 30m, 6h or 2d")
            case .unknownUnit: throw ClientError.invalidInput("\"\(text)\" has an unknown unit; use s, m, h or d")
            case .tooLong: throw ClientError.invalidInput("\"\(text)\" is longer than \(maxWords)")
            }
        }
        guard value > 0 else { throw ClientError.invalidInput("\"\(text)\": a duration must be more than zero") }
        return UInt64(value.rounded(.up))
    }

    /// The bounds in words, for messages: "60 seconds", "400 days".
    public static let minTimerWords = "\(minTimerSeconds) seconds"
    public static let maxWords = "\(maxSeconds / 86_400) days"

    public static func describe(_ seconds: UInt64) -> String {
        if seconds == 0 { return "0s" }
        if seconds % 86400 == 0 { return "\(seconds / 86400)d" }
        if seconds % 3600 == 0 { return "\(seconds / 3600)h" }
        if seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }
}
