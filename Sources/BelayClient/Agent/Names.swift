/// How names are compared and made unique: one rule everywhere, the same as the store's keyed
/// name tags (`Vault.tag` lowercases), so that a lookup and a comparison never disagree.
enum Names {
    static func same(_ a: String, _ b: String) -> Bool { a.lowercased() == b.lowercased() }

    /// `wanted` if no name in `taken` is the same, else `wanted-2`, `wanted-3`, … (`first` is
    /// the first number tried when `wanted` itself is never used, as for `contact-1`).
    static func unique(_ wanted: String, among taken: [String], numberingFrom first: Int? = nil) -> String {
        let lowered = Set(taken.map { $0.lowercased() })
        if first == nil, !lowered.contains(wanted.lowercased()) { return wanted }
        var n = first ?? 2
        while lowered.contains("\(wanted)-\(n)".lowercased()) { n += 1 }
        return "\(wanted)-\(n)"
    }
}
