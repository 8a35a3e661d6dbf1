import Foundation

/// The one parser for durations as people type them, in `belay`'s options and `belayd`'s
/// configuration alike: a number, perhaps with a fraction, then `ms`, `s`, `m`, `h` or `d`; a
/// bare number is seconds. Each caller bounds it and words its own errors.
public enum Durations {
    public enum ParseError: Error, Equatable, Sendable {
        case notADuration
        case unknownUnit
        case tooLong
    }

    static let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]

    /// Seconds, at most `limit` (past it, `tooLong`: nothing larger reaches a conversion).
    public static func seconds(_ text: String, atMost limit: Double) throws(ParseError) -> Double {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        var value: Double?
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            if let v = Double(t.dropLast(suffix.count)), v >= 0, v.isFinite { value = v * scale }
            break
        }
        if value == nil, let v = Double(t), v >= 0, v.isFinite { value = v }
        guard let value else {
            let known = units.contains { t.hasSuffix($0.suffix) }
            if !known, let last = t.last, last.isLetter, Double(t.prefix { !$0.isLetter }) != nil { throw .unknownUnit }
            throw .notADuration
        }
        guard value <= limit else { throw .tooLong }
        return value
    }
}
