import Foundation
import Testing

/// Loads a Wycheproof file from the test bundle and yields its test cases with their group.
struct Wycheproof {
    struct Case {
        let id: Int
        let result: String
        let flags: [String]
        let fields: [String: Any]
        let group: [String: Any]

        func hex(_ key: String) -> [UInt8] { Self.decode(fields[key] as? String ?? "") }
        func groupHex(_ path: String...) -> [UInt8] {
            var node: Any? = group
            for p in path { node = (node as? [String: Any])?[p] }
            return Self.decode(node as? String ?? "")
        }
        var valid: Bool { result == "valid" }
        var invalid: Bool { result == "invalid" }

        static func decode(_ s: String) -> [UInt8] {
            var out = [UInt8]()
            var chars = Array(s.utf8)[...]
            while chars.count >= 2 {
                out.append(UInt8(String(decoding: chars.prefix(2), as: UTF8.self), radix: 16)!)
                chars = chars.dropFirst(2)
            }
            return out
        }
    }

    let algorithm: String
    let cases: [Case]

    init(_ name: String) throws {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        algorithm = json["algorithm"] as? String ?? ""
        var cases: [Case] = []
        for group in json["testGroups"] as? [[String: Any]] ?? [] {
            for t in group["tests"] as? [[String: Any]] ?? [] {
                cases.append(
                    Case(
                        id: t["tcId"] as? Int ?? -1, result: t["result"] as? String ?? "",
                        flags: t["flags"] as? [String] ?? [], fields: t, group: group))
            }
        }
        self.cases = cases
        let declared = json["numberOfTests"] as? Int ?? -1
        #expect(cases.count == declared, "\(name): read \(cases.count) of \(declared) cases")
    }
}
