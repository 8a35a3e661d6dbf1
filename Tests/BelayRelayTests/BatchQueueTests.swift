import Testing

@testable import BelayRelay

/// The core's inbox: requests in order, in batches of at most `max`, and each other job run
/// with the batch that takes the last request submitted before it, never earlier.
@Suite struct BatchQueueTests {
    @Test func aSmallInboxIsTakenWhole() {
        var q = BatchQueue<Int, String>()
        q.append(job: "first")
        q.append(request: 1)
        q.append(request: 2)
        q.append(job: "barrier")
        var batch = BatchQueue<Int, String>.Batch()
        q.take(max: 10, into: &batch)
        #expect(batch.requests == [1, 2])
        #expect(batch.jobs == ["first", "barrier"])
        #expect(q.isEmpty)
    }

    @Test func aJobWaitsForTheRequestsBeforeIt() {
        var q = BatchQueue<Int, String>()
        q.append(job: "before all")
        for i in 1...5 { q.append(request: i) }
        q.append(job: "after 5")
        for i in 6...7 { q.append(request: i) }
        q.append(job: "after 7")
        var batch = BatchQueue<Int, String>.Batch()
        q.take(max: 3, into: &batch)
        #expect(batch.requests == [1, 2, 3])
        #expect(batch.jobs == ["before all"])
        batch.empty()
        q.take(max: 3, into: &batch)
        #expect(batch.requests == [4, 5, 6])
        #expect(batch.jobs == ["after 5"])
        batch.empty()
        q.take(max: 3, into: &batch)
        #expect(batch.requests == [7])
        #expect(batch.jobs == ["after 7"])
        #expect(q.isEmpty)
    }

    /// The emptied arrays of one batch become the inbox's, so the next batch reuses them.
    @Test func batchesTradeTheirArrays() {
        var q = BatchQueue<Int, String>()
        var batch = BatchQueue<Int, String>.Batch()
        for round in 0..<3 {
            for i in 0..<100 { q.append(request: round * 100 + i) }
            batch.empty()
            q.take(max: 1000, into: &batch)
            #expect(batch.requests == Array((round * 100)..<(round * 100 + 100)))
            #expect(batch.requests.capacity >= 100)
        }
    }

    @Test func drainGivesBackEverything() {
        var q = BatchQueue<Int, String>()
        q.append(request: 1)
        q.append(job: "sweep")
        let all = q.drain()
        #expect(all.requests == [1])
        #expect(all.jobs == ["sweep"])
        #expect(q.isEmpty)
    }
}
