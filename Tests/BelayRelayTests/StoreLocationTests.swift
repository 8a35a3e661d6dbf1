import Testing

@testable import BelayRelay

@Suite struct StoreLocationTests {
    @Test func postgresAddressesParseAndNeverPrintTheirPassword() throws {
        let p = try StoreLocation(parsing: "postgres://relay:s3cret@db.example.org:6432/belay?sslmode=require")
        #expect(p == .postgres(PostgresLocation(host: "db.example.org", port: 6432, user: "relay", password: "s3cret", database: "belay", tls: .require)))
        #expect(!p.description.contains("s3cret"))
        #expect(try StoreLocation(parsing: "postgresql://relay@[::1]/belay") == .postgres(PostgresLocation(host: "::1", user: "relay", database: "belay")))
        #expect(try StoreLocation(parsing: "sqlite") == .sqlite)
        // Any character in a password, percent-encoded or after the user's colon up to the last '@'.
        #expect(
            try StoreLocation(parsing: "postgres://u:pa?s/s@w%40rd@127.0.0.1/db")
                == .postgres(PostgresLocation(host: "127.0.0.1", user: "u", password: "pa?s/s@w@rd", database: "db")))
    }

    @Test func aPasswordIsNeverRepeatedInAnError() {
        for text in [
            "postgres://u:secretpw@h/db?sslmode=maybe", "postgres://u:secretpw@h:99999/db", "postgres://u:secretpw%zz@h/db",
            "postgres://u:secretpw@db.example.org/db",
        ] {
            do {
                _ = try StoreLocation(parsing: text)
                Issue.record("accepted \(text)")
            } catch {
                #expect(!"\(error)".contains("secretpw"))
            }
        }
    }

    @Test(arguments: [
        "mysql://x@h/db", "postgres://h/db", "postgres://u@h", "postgres://u@h/", "postgres://u@h:99999/db", "postgres://u@h/db?sslmode=maybe",
        "postgres://u@a]:b/db", "", "postgres://u@remote.example.org/db", "postgres://u@h/" + String(repeating: "d", count: 2_000),
    ])
    func malformedAddressesAreRefused(text: String) {
        #expect(throws: StoreLocationError.self) { try StoreLocation(parsing: text) }
    }

    @Test func aBadStoreInTheEnvironmentNamesTheKey() {
        do {
            _ = try ConfigLoader.load(file: nil, environment: ["BELAYD_STORE": "postgres://nobody"])
            Issue.record("accepted a store without a database")
        } catch {
            #expect("\(error)".contains("BELAYD_STORE") && "\(error)".contains("postgres://USER"))
        }
    }
}
