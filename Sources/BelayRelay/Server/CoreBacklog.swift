/// The commands a connection has handed to the core and not yet seen answered. Past a bound
/// the connection stops reading from its socket until the core catches up, so one client cannot
/// fill the relay's memory; it reads again once the backlog has halved.
struct CoreBacklog {
    /// Commands with the core at most.
    static let maxRequests = 512
    /// The same in bytes of bodies (SEND, TSET): 512 requests of 16 KiB would be 8 MiB a
    /// connection.
    static let maxBytes = 1 << 20
    /// Answered entries kept at the front of `sizes` before it is compacted.
    private static let compactAfter = 1_024

    private(set) var count = 0
    private(set) var bytes = 0
    /// Body bytes of each request, in submission order (the core answers a connection's
    /// requests in order); entries before `head` are answered.
    private var sizes: [Int] = []
    private var head = 0

    var isFull: Bool { count >= Self.maxRequests || bytes >= Self.maxBytes }
    /// Low enough to read again after being full.
    var hasDrained: Bool { count < Self.maxRequests / 2 && bytes < Self.maxBytes / 2 }

    mutating func submitted(bodyBytes: Int) {
        count += 1
        sizes.append(bodyBytes)
        bytes += bodyBytes
    }

    /// One request came back from the core: the oldest outstanding one.
    mutating func answered() {
        count -= 1
        guard head < sizes.count else { return }
        bytes -= sizes[head]
        head += 1
        if head > Self.compactAfter, head * 2 > sizes.count {
            sizes.removeFirst(head)
            head = 0
        }
    }
}
