import BelayWire
import Testing

/// The one duration parser, for the client's options and the relay's configuration.
@Suite struct DurationsTests {
    @Test func unitsFractionsAndBounds() throws {
        let cases: [(String, Double)] = [
            ("90s", 90), ("30m", 1800), ("6h", 21_600), ("2d", 172_800), ("250ms", 0.25), ("1.5h", 5400), ("45", 45), (" 2D ", 172_800),
        ]
        for (text, seconds) in cases { #expect(try Durations.seconds(text, atMost: 1e9) == seconds, "\(text)") }
        #expect(throws: Durations.ParseError.notADuration) { try Durations.seconds("soon", atMost: 1e9) }
        #expect(throws: Durations.ParseError.notADuration) { try Durations.seconds("", atMost: 1e9) }
        #expect(throws: Durations.ParseError.notADuration) { try Durations.seconds("nan", atMost: 1e9) }
        #expect(throws: Durations.ParseError.notADuration) { try Durations.seconds("-5s", atMost: 1e9) }
        #expect(throws: Durations.ParseError.unknownUnit) { try Durations.seconds("5w", atMost: 1e9) }
        #expect(throws: Durations.ParseError.tooLong) { try Durations.seconds("4e14d", atMost: 1e9) }
    }
}
