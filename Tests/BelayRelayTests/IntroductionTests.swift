import BelayE2E
import Foundation
import Testing

@testable import BelayClient

/// Warm introductions: both must accept before anything about either reaches the other.
@Suite struct IntroductionTests {
    typealias World = CheckinTests.World

    static func world() async throws -> World {
        let w = try await World(GroupTests.roomy)
        try await w.pair("sam", "rae")
        try await w.pair("sam", "lee")
        return w
    }

    @Test func bothAcceptThenTheyArePairedAndNeitherLearnedTheOtherBefore() async throws {
        let w = try await Self.world()
        let id = try await w.person("sam").introduce("rae", "lee", note: "a counsellor I trust")
        let rae = try await w.person("rae").read().filter { $0.kind == .introduction }
        let lee = try await w.person("lee").read().filter { $0.kind == .introduction }
        #expect(rae.count == 1 && lee.count == 1)
        #expect(rae.first?.id == id && rae.first?.from == "sam")
        #expect(rae.first?.text.contains("a counsellor I trust") == true)
        // The offer names neither: no name, and no key, is in what each was given.
        #expect(!(rae.first?.text ?? "").contains("lee") && !(lee.first?.text ?? "").contains("rae"))
        #expect(try w.person("rae").introductions().map(\.state) == ["offered"])
        try await w.person("rae").answerIntroduction(String(id.prefix(8)), accept: true)
        _ = try await w.person("sam").read()
        #expect(try w.person("lee").contacts().contacts.map(\.name) == ["sam"])
        try await w.person("lee").answerIntroduction(String(id.prefix(8)), accept: true)
        _ = try await w.person("sam").read()
        try await GroupTests.settle(w, ["rae", "lee"], rounds: 2)
        #expect(try w.person("rae").contacts().contacts.map(\.name).sorted() == ["lee", "sam"])
        #expect(try w.person("lee").contacts().contacts.map(\.name).sorted() == ["rae", "sam"])
        // They are paired with each other directly, with the keys they hold for each other.
        try await w.person("lee").send(to: "rae", text: "hello, Sam said you might call")
        #expect(try await w.person("rae").read().map(\.text).contains("hello, Sam said you might call"))
        #expect(try w.person("rae").safetyNumber("lee").number == w.person("lee").safetyNumber("rae").number)
        #expect(try w.person("sam").introductions().map(\.state) == ["done"])
        await w.finish()
    }

    @Test func aDeclineLeavesBothUnpairedAndTheOtherIsTold() async throws {
        let w = try await Self.world()
        let id = try await w.person("sam").introduce("rae", "lee", note: "")
        _ = try await w.person("rae").read()
        _ = try await w.person("lee").read()
        try await w.person("rae").answerIntroduction(id, accept: true)
        try await w.person("lee").answerIntroduction(id, accept: false)
        let sam = try await w.person("sam").read()
        #expect(sam.contains { $0.kind == .introduction && $0.text.contains("declined") })
        let rae = try await w.person("rae").read()
        #expect(rae.contains { $0.kind == .introduction && $0.text.contains("will not go ahead") })
        try await GroupTests.settle(w, ["rae", "lee", "sam"], rounds: 2)
        #expect(try w.person("rae").contacts().contacts.map(\.name) == ["sam"])
        // rae's invitation, made when she accepted, is withdrawn with its queue.
        #expect(try w.person("rae").contacts().invitations.isEmpty)
        #expect(try w.person("lee").contacts().contacts.map(\.name) == ["sam"])
        await #expect(throws: ClientError.self) { try await w.person("lee").answerIntroduction(id, accept: true) }
        await w.finish()
    }
}
