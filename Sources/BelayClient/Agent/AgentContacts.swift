import BelayE2E
import BelaySodium
import BelayWire
import Foundation

/// What `belay contacts` shows.
public struct ContactSummary: Sendable, Codable, Equatable {
    public var name: String
    public var verified: Bool
    /// False for an inviter until the acceptor's first message has arrived.
    public var canSend: Bool
    public var pairedAt: UInt64
    public var relay: String
    public var pendingSends: Int
}

public struct PendingInvitationSummary: Sendable, Codable, Equatable {
    public var name: String?
    public var createdAt: UInt64
    public var expires: UInt64
}

extension Agent {
    public func contacts() throws -> (contacts: [ContactSummary], invitations: [PendingInvitationSummary]) {
        try read { db in
            let contacts = try store.contacts(db).map { row in
                ContactSummary(
                    name: row.record.name, verified: row.record.verified, canSend: !row.record.awaitingHello,
                    pairedAt: row.record.pairedAt, relay: row.record.inbox.relay,
                    pendingSends: try store.pending(contact: row.id, db).count)
            }
            let invitations = try store.invitations(db).map {
                PendingInvitationSummary(name: $0.record.name, createdAt: $0.record.createdAt, expires: $0.record.expires)
            }
            return (contacts, invitations)
        }
    }

    /// The safety number for a contact and whether it is already marked verified.
    public func safetyNumber(_ name: String) throws -> (number: String, verified: Bool) {
        let row = try read { db in try store.contact(named: name, db) }
        guard let row else { throw ClientError.unknownContact(name) }
        let theirs = try PublicIdentity(bytes: [UInt8](row.record.identity))
        return (try SafetyNumber.compute(identity.publicIdentity, theirs), row.record.verified)
    }

    public func markVerified(_ name: String) throws {
        try write { db in
            guard var row = try store.contact(named: name, db) else { throw ClientError.unknownContact(name) }
            row.record.verified = true
            try store.updateContact(row, db)
        }
    }

    public func history(_ name: String) throws -> [HistoryEntry] {
        try read { db in
            guard let row = try store.contact(named: name, db) else { throw ClientError.unknownContact(name) }
            return try store.history(contact: row.id, db)
        }
    }

    /// Deletes the contact's queue at its relay, then the contact, its history and anything
    /// still unsent. If the relay cannot be reached, nothing is deleted.
    public func forget(_ name: String) async throws {
        let (row, checkin) = try read { db in (try store.contact(named: name, db), try store.checkin(db)) }
        guard let row else { throw ClientError.unknownContact(name) }
        if let checkin, checkin.targets.contains(where: { $0.identity == row.record.identity }) {
            throw ClientError.invalidInput(
                "\(row.record.name) would still be alerted by your armed check-in; "
                    + "re-arm without them (or disarm) first, then forget them")
        }
        try await withRelayPool { pool in
            let inbox = try InboxKeys(row.record.inbox)
            let connection = try await pool.connection(row.record.inbox.relay, lane: inbox.recipientId)
            do {
                try await pool.authorise(.recipient, inbox.recipientId, key: inbox.key, on: connection)
                try await connection.deleteQueue(inbox.recipientId)
            } catch RelayClientError.relay(.noQueue) {
                // Already gone at the relay: nothing more to delete there.
            } catch let error as RelayClientError {
                throw Self.relayError(error, connection.address)
            }
            try write { db in try store.deleteContact(row.id, db) }
        }
    }

    /// Destroys the local state: overwrites the database files, then removes them and the folder.
    public static func wipe(home: String) throws {
        guard exists(home: home) else { throw ClientError.noState(home) }
        let path = databasePath(home)
        for suffix in ["-wal", "-shm", ""] {
            let file = path + suffix
            guard let handle = FileHandle(forUpdatingAtPath: file) else { continue }
            let size = (try? handle.seekToEnd()) ?? 0
            try? handle.seek(toOffset: 0)
            var left = size
            let zeros = Data(count: 65_536)
            while left > 0 {
                let n = Int(min(left, UInt64(zeros.count)))
                handle.write(zeros.prefix(n))
                left -= UInt64(n)
            }
            try? handle.synchronize()
            try? handle.close()
            try FileManager.default.removeItem(atPath: file)
        }
        if (try? FileManager.default.contentsOfDirectory(atPath: home))?.isEmpty == true {
            try? FileManager.default.removeItem(atPath: home)
        }
    }

    static func relayError(_ error: RelayClientError, _ address: RelayAddress, queued: Int = 0) -> ClientError {
        switch error {
        case .relay(.rate): .relayBusy(relay: address.host + ":\(address.port)", queued: queued)
        case let .relay(code): .relayRefused("\(code)")
        case let .proxyUnreachable(proxy, why): .proxyUnreachable(proxy: proxy, why: why, queued: queued)
        case .onionNeedsProxy: .onionNeedsProxy(relay: address.host + ":\(address.port)", queued: queued)
        default: .relayUnreachable(relay: address.host + ":\(address.port)", why: error.reason, queued: queued)
        }
    }
}

/// The keys of an inbox in usable form.
struct InboxKeys {
    let recipientId: EntityID
    let key: Ed25519.SigningKey

    init(_ inbox: Inbox) throws {
        guard let id = EntityID(bytes: inbox.recipientId), inbox.recipientSeed.count == 32 else {
            throw ClientError.stateDamaged("a stored queue is damaged")
        }
        recipientId = id
        key = try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8](inbox.recipientSeed)))
    }
}

struct OutletKeys {
    let relay: RelayAddress
    let senderId: EntityID
    let key: Ed25519.SigningKey

    init(_ outlet: Outlet) throws {
        guard let id = EntityID(bytes: outlet.senderId), outlet.senderSeed.count == 32,
            let relay = try? RelayAddress(parsing: outlet.relay)
        else { throw ClientError.stateDamaged("a stored queue is damaged") }
        senderId = id
        self.relay = relay
        key = try Ed25519.SigningKey(seed: SecureBytes(copying: [UInt8](outlet.senderSeed)))
    }
}
