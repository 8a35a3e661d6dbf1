import NIOCore

/// The messages one PostgreSQL transaction has stored but not yet sent, as the columns of the
/// single INSERT that sends them (`PostgresTransaction.flushPending`).
struct PendingInserts {
    /// Body bytes held before they are sent, whatever the batch: one statement's parameters
    /// stay far below what the server and the client library accept, and the memory is bounded.
    static let maxBytes = 8 << 20

    private(set) var queues: [Int64] = []
    private(set) var seqs: [Int64] = []
    private(set) var expiries: [Int64] = []
    private(set) var bodies: [ByteBuffer] = []
    /// The highest seq stored into each queue, for its `last_seq`.
    private var highest: [Int64: Int64] = [:]
    private(set) var bytes = 0

    var isEmpty: Bool { queues.isEmpty }
    var count: Int { queues.count }
    func touches(queue: Int64) -> Bool { highest[queue] != nil }
    var isFull: Bool { bytes >= Self.maxBytes }

    mutating func append(queue: Int64, seq: Int64, expiresAt: Int64, body: ByteBuffer) {
        queues.append(queue)
        seqs.append(seq)
        expiries.append(expiresAt)
        bodies.append(body)
        bytes += body.readableBytes
        highest[queue] = max(highest[queue] ?? seq, seq)
    }

    /// Each queue with the highest seq stored into it, as two columns.
    var lastSeqs: (queues: [Int64], seqs: [Int64]) {
        let sorted = highest.sorted { $0.key < $1.key }
        return (sorted.map(\.key), sorted.map(\.value))
    }
}
