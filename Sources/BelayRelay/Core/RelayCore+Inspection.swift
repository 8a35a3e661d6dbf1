/// For tests: what the core holds in memory, read on its thread between batches.
extension RelayCore {
    /// What the core holds in memory against what the store holds: equal unless a counter
    /// drifted.
    public func countersMatchStore() async -> Bool {
        await inspect { engine in
            do {
                let durable = try engine.store.durableState()
                var durableBytes = 0
                for row in durable.queues {
                    let h = durable.held[row.rowId] ?? .init(bodies: 0, bytes: 0)
                    durableBytes += row.bytes + h.bytes
                    guard let q = engine.byRow[row.rowId], q.count == row.count, q.bytes == row.bytes,
                        q.heldBodies == h.bodies, q.heldBytes == h.bytes
                    else { return false }
                }
                return durable.queues.count == engine.byRow.count && durableBytes == engine.storedBytes
                    && durable.timers == engine.timerCount
            } catch {
                return false
            }
        } ?? false
    }

    /// Whether the core is refusing growth because the disk filled.
    public func isRefusingGrowthForFullDisk() async -> Bool {
        await inspect { $0.storage == .full } ?? false
    }

    /// Bytes of bodies held (messages and timers), as the core counts them.
    public func heldBytes() async -> Int {
        await inspect { $0.storedBytes } ?? 0
    }
}
