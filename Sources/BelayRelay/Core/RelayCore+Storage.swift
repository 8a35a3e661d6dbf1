import Foundation

/// Whether the relay may take on more data. Growth (NEW, SEND, TSET) stops at `maxStoreBytes`,
/// and while the disk is full; acknowledgements and deletions never stop.
enum StorageMode: Equatable {
    case normal
    /// A commit failed for lack of space. The reserve has been given back so that deletions
    /// can commit; growth resumes once the file system has room again.
    case full
}

extension RelayCore {
    func canGrow(by bytes: Int) -> Bool {
        guard case .normal = storage else { return false }
        return storedBytes + bytes <= limits.maxStoreBytes
    }

    /// What one queue may hold now: its quota, or less once the relay is half full.
    var queueByteLimit: Int {
        storedBytes * 2 > limits.maxStoreBytes ? min(limits.maxQueueBytes, limits.pressureQueueBytes) : limits.maxQueueBytes
    }

    func enterFullMode() {
        storage = .full
        let released = reserve.release()
        logger.warning(
            "the disk holding the relay database is full: refusing new messages, queues and timers with STORE_FULL until space returns; acknowledgements and deletions go on",
            metadata: ["reserveReleased": "\(released)"])
    }

    /// At each sweep while full: once the file system has room for the reserve and some
    /// growth, take the reserve back and accept growth again.
    func checkStorage() {
        guard case .full = storage,
            let available = DiskReserve.availableBytes(at: store.path), available >= reserve.resumeThreshold
        else { return }
        do {
            try reserve.ensure()
            storage = .normal
            logger.notice("disk space is back: accepting new messages, queues and timers again")
        } catch {
            logger.warning(
                "disk space is back but the reserve could not be re-created; still refusing growth",
                metadata: ["error": "\(error)"])
        }
    }

    /// What the core holds in memory against what the store holds: equal unless a counter
    /// drifted. For tests; runs on the core thread between batches.
    public func countersMatchStore() async -> Bool {
        await inspect { core in
            do {
                let durable = try core.store.durableState()
                let (queues, held) = (durable.queues, durable.held)
                var durableBytes = 0
                for row in queues {
                    let h = held[row.rowId] ?? (0, 0)
                    durableBytes += row.bytes + h.bytes
                    guard let q = core.byRow[row.rowId], q.count == row.count, q.bytes == row.bytes,
                        q.heldBodies == h.bodies, q.heldBytes == h.bytes
                    else { return false }
                }
                let timers = durable.timers
                return queues.count == core.byRow.count && durableBytes == core.storedBytes && timers == core.timerCount
            } catch {
                return false
            }
        }
    }

    /// Whether the core is refusing growth because the disk filled.
    public func isRefusingGrowthForFullDisk() async -> Bool {
        await inspect { $0.storage == .full }
    }

    /// Bytes of bodies held (messages and timers), as the core counts them.
    public func heldBytes() async -> Int {
        await inspect { $0.storedBytes }
    }
}
