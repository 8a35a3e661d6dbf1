import BelaySodium

/// A 60-digit number both people compute from their two identities and compare out of band, in
/// the style of Signal's safety numbers: each half is 30 digits from an iterated hash of one
/// identity, and the halves are sorted so that both sides see the same number.
public enum SafetyNumber {
    /// Iterations of the hash per half; they make a search for a colliding identity costlier.
    static let iterations = 5200

    public static func compute(_ a: PublicIdentity, _ b: PublicIdentity) throws -> String {
        let halves = [try half(a), try half(b)].sorted()
        return halves.joined()
    }

    /// 60 digits in twelve groups of five, for reading aloud.
    public static func grouped(_ number: String) -> String {
        var groups: [String] = []
        var rest = Substring(number)
        while !rest.isEmpty {
            groups.append(String(rest.prefix(5)))
            rest = rest.dropFirst(5)
        }
        return groups.joined(separator: " ")
    }

    static func half(_ identity: PublicIdentity) throws -> String {
        var digest = try BLAKE2b.hash(Label.safetyNumber + identity.bytes, outputLength: 64)
        for _ in 1..<iterations {
            digest = try BLAKE2b.hash(digest + identity.bytes, outputLength: 64)
        }
        var out = ""
        for chunk in 0..<6 {
            let value = digest[(chunk * 5)..<(chunk * 5 + 5)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let digits = String(value % 100_000)
            out += String(repeating: "0", count: 5 - digits.count) + digits
        }
        return out
    }
}
