/// The core's inbox without its lock: requests in the order they came, and the other jobs
/// (sweeps, barriers, inspections), each of which runs only with the batch that takes the last
/// request submitted before it. Pure, so the ordering is tested without a thread.
struct BatchQueue<Request, Job> {
    /// The arrays one batch takes. Each batch leaves the emptied arrays of the one before in the
    /// queue's place, so neither the submitters nor the core allocate or copy per batch.
    struct Batch {
        var requests: [Request] = []
        var jobs: [Job] = []

        mutating func empty() {
            requests.removeAll(keepingCapacity: true)
            jobs.removeAll(keepingCapacity: true)
        }
    }

    private var waiting = Batch()
    /// For each job, how many of the waiting requests came before it.
    private var requestsBefore: [Int] = []

    var isEmpty: Bool { waiting.requests.isEmpty && waiting.jobs.isEmpty }

    mutating func append(request: Request) {
        waiting.requests.append(request)
    }

    mutating func append(job: Job) {
        waiting.jobs.append(job)
        requestsBefore.append(waiting.requests.count)
    }

    /// At most `max` requests, oldest first, with the jobs that are due once they are done.
    /// `spare` is the last batch, emptied; it comes back holding this one.
    mutating func take(max: Int, into spare: inout Batch) {
        guard waiting.requests.count > max else {
            // The usual case: everything waiting, in one batch.
            swap(&waiting, &spare)
            requestsBefore.removeAll(keepingCapacity: true)
            return
        }
        spare.requests.append(contentsOf: waiting.requests.prefix(max))
        waiting.requests.removeFirst(max)
        let due = requestsBefore.prefix { $0 <= max }.count
        spare.jobs.append(contentsOf: waiting.jobs.prefix(due))
        waiting.jobs.removeFirst(due)
        requestsBefore.removeFirst(due)
        for i in requestsBefore.indices { requestsBefore[i] -= max }
    }

    /// Everything still waiting, for shutdown.
    mutating func drain() -> Batch {
        var all = Batch()
        swap(&waiting, &all)
        requestsBefore = []
        return all
    }
}

extension BatchQueue: Sendable where Request: Sendable, Job: Sendable {}
extension BatchQueue.Batch: Sendable where Request: Sendable, Job: Sendable {}
