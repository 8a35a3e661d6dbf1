import Foundation

/// Whether the relay may take on more data. Growth (NEW, SEND, TSET) stops at `maxStoreBytes`,
/// and while the disk is full; acknowledgements and deletions never stop.
enum StorageMode: Equatable {
    case normal
    /// A commit failed for lack of space. The reserve has been given back so that deletions
    /// can commit; growth resumes once the file system has room again.
    case full
}

extension QueueEngine {
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
        let released = reserve?.release() ?? false
        logger.warning(
            "the disk holding the relay database is full: refusing new messages, queues and timers with STORE_FULL until space returns; acknowledgements and deletions go on",
            metadata: ["reserveReleased": "\(released)"])
    }

    /// At each sweep while full: once the file system has room for the reserve and some
    /// growth, take the reserve back and accept growth again.
    func checkStorage() {
        guard case .full = storage else { return }
        if let reserve {
            guard let available = DiskReserve.availableBytes(at: reserve.path), available >= reserve.resumeThreshold else { return }
        }
        do {
            try reserve?.ensure()
            storage = .normal
            logger.notice("disk space is back: accepting new messages, queues and timers again")
        } catch {
            logger.warning(
                "disk space is back but the reserve could not be re-created; still refusing growth",
                metadata: ["error": "\(error)"])
        }
    }
}
