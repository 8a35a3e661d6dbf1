import Logging
import PostgresNIO

/// Numbered migrations for PostgreSQL, as for SQLite: never edited once shipped. Two frontends
/// starting together take an advisory lock, so only one migrates.
enum PostgresSchema {
    /// The advisory lock key for migrations ("belay" in ASCII).
    static let migrationLock: Int64 = 0x62_656C_6179

    static let migrations: [(version: Int, sql: [String])] = [
        (
            1,
            [
                """
                CREATE TABLE queue (
                    id BIGSERIAL PRIMARY KEY,
                    recipient_id BYTEA NOT NULL UNIQUE CHECK (length(recipient_id) = 16),
                    sender_id BYTEA NOT NULL UNIQUE CHECK (length(sender_id) = 16),
                    recipient_key BYTEA NOT NULL CHECK (length(recipient_key) = 32),
                    sender_key BYTEA CHECK (sender_key IS NULL OR length(sender_key) = 32),
                    last_seq BIGINT NOT NULL DEFAULT 0
                )
                """,
                // Bodies are ciphertext: compressing them only costs CPU.
                """
                CREATE TABLE message (
                    queue_id BIGINT NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
                    seq BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    body BYTEA NOT NULL,
                    PRIMARY KEY (queue_id, seq)
                )
                """,
                "ALTER TABLE message ALTER COLUMN body SET STORAGE EXTERNAL",
                """
                CREATE TABLE timer (
                    id BIGSERIAL PRIMARY KEY,
                    timer_id BYTEA NOT NULL UNIQUE CHECK (length(timer_id) = 16),
                    timer_key BYTEA NOT NULL CHECK (length(timer_key) = 32),
                    deadline BIGINT NOT NULL
                )
                """,
                "CREATE INDEX timer_by_deadline ON timer(deadline)",
                "CREATE INDEX timer_by_key ON timer(timer_key)",
                """
                CREATE TABLE timer_entry (
                    timer_id BIGINT NOT NULL REFERENCES timer(id) ON DELETE CASCADE,
                    position INTEGER NOT NULL,
                    queue_id BIGINT NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
                    body BYTEA NOT NULL,
                    PRIMARY KEY (timer_id, position)
                )
                """,
                "ALTER TABLE timer_entry ALTER COLUMN body SET STORAGE EXTERNAL",
                "CREATE INDEX timer_entry_by_queue ON timer_entry(queue_id)",
                "CREATE TABLE relay_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
            ]
        ),
        // A TSET retried through another frontend before the first attempt committed waits for
        // it and then fails (the client retries again and finds that timer), instead of making
        // a second timer under the same key.
        (2, ["DROP INDEX timer_by_key", "CREATE UNIQUE INDEX timer_by_key ON timer(timer_key)"]),
        // Organisation members' queue-creation tokens (`belayd token`), as SQLite's v4: no
        // link from a queue to the token that created it.
        (
            3,
            [
                """
                CREATE TABLE member_token (
                    id BIGSERIAL PRIMARY KEY,
                    hash BYTEA NOT NULL UNIQUE CHECK (length(hash) = 32),
                    label TEXT UNIQUE,
                    quota BIGINT NOT NULL CHECK (quota > 0),
                    used BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0)
                )
                """
            ]
        ),
    ]

    static func migrate(_ connection: PostgresConnection, logger: Logger) throws {
        func run(_ sql: String) throws { _ = try connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).waitBounded() }
        try run("BEGIN")
        do {
            try run("SELECT pg_advisory_xact_lock(\(migrationLock))")
            try run("CREATE TABLE IF NOT EXISTS belay_migration (version INTEGER PRIMARY KEY)")
            var applied = Set<Int>()
            for row in try connection.query("SELECT version FROM belay_migration", logger: logger).waitBounded() {
                applied.insert(Int(try row.decode(Int32.self)))
            }
            for migration in migrations where !applied.contains(migration.version) {
                for statement in migration.sql { try run(statement) }
                _ = try connection.query("INSERT INTO belay_migration(version) VALUES (\(Int32(migration.version)))", logger: logger).waitBounded()
            }
            try run("COMMIT")
        } catch {
            _ = try? connection.query("ROLLBACK", logger: logger).waitBounded()
            throw error
        }
    }
}
