import BelayWire
import Foundation
import GRDB

/// An organisation's queue-creation token for one relay (docs/CLI.md, `belay relay token`).
struct RelayTokenRecord: Codable, Sendable {
    var relay: String
    var token: Data
}

/// Relay tokens in the client's database: a row per relay, found by a keyed tag of its address,
/// sealed under a context naming that tag (a record moved to another relay's row does not open).
extension ClientStore {
    private func relayTokenTag(_ relay: RelayAddress) throws -> [UInt8] { try requireVault().tag("relay token " + relay.description) }

    private static func context(_ tag: [UInt8]) -> String { "relay token:" + Hex.encode(tag) }

    func relayToken(for relay: RelayAddress, _ db: Database) throws -> [UInt8]? {
        let tag = try relayTokenTag(relay)
        guard let sealed = try Data.fetchOne(db, sql: "SELECT sealed FROM relay_token WHERE tag = ?", arguments: [Data(tag)]) else { return nil }
        return [UInt8](try requireVault().openRecord(RelayTokenRecord.self, [UInt8](sealed), context: Self.context(tag)).token)
    }

    func setRelayToken(_ token: [UInt8], for relay: RelayAddress, _ db: Database) throws {
        let tag = try relayTokenTag(relay)
        let sealed = try requireVault().sealRecord(RelayTokenRecord(relay: relay.description, token: Data(token)), context: Self.context(tag))
        try db.execute(sql: "INSERT OR REPLACE INTO relay_token(tag, sealed) VALUES (?, ?)", arguments: [Data(tag), Data(sealed)])
    }

    /// Whether there was one.
    func deleteRelayToken(for relay: RelayAddress, _ db: Database) throws -> Bool {
        try db.execute(sql: "DELETE FROM relay_token WHERE tag = ?", arguments: [Data(try relayTokenTag(relay))])
        return db.changesCount > 0
    }

    /// The relays that have a token, by address.
    func relaysWithTokens(_ db: Database) throws -> [String] {
        let vault = try requireVault()
        return try GRDB.Row.fetchAll(db, sql: "SELECT tag, sealed FROM relay_token").map { row in
            let tag: Data = row["tag"]
            let sealed: Data = row["sealed"]
            return try vault.openRecord(RelayTokenRecord.self, [UInt8](sealed), context: Self.context([UInt8](tag))).relay
        }.sorted()
    }
}
