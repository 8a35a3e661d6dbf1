import GRDB

/// Numbered migrations. A migration is never edited once it has shipped; changes come as new ones.
enum Schema {
    static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            // Queues: two unrelated ids and the keys of their two roles. Nothing else.
            try db.execute(
                sql: """
                    CREATE TABLE queue (
                        id INTEGER PRIMARY KEY,
                        recipient_id BLOB NOT NULL UNIQUE CHECK (length(recipient_id) = 16),
                        sender_id BLOB NOT NULL UNIQUE CHECK (length(sender_id) = 16),
                        recipient_key BLOB NOT NULL CHECK (length(recipient_key) = 32),
                        sender_key BLOB CHECK (sender_key IS NULL OR length(sender_key) = 32)
                    );
                    CREATE TABLE message (
                        id INTEGER PRIMARY KEY,
                        queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
                        seq INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        body BLOB NOT NULL
                    );
                    CREATE UNIQUE INDEX message_by_queue ON message(queue_id, seq);
                    CREATE INDEX message_by_expiry ON message(expires_at);
                    CREATE TABLE timer (
                        id INTEGER PRIMARY KEY,
                        timer_id BLOB NOT NULL UNIQUE CHECK (length(timer_id) = 16),
                        timer_key BLOB NOT NULL CHECK (length(timer_key) = 32),
                        deadline INTEGER NOT NULL
                    );
                    CREATE INDEX timer_by_deadline ON timer(deadline);
                    CREATE TABLE timer_entry (
                        timer_id INTEGER NOT NULL REFERENCES timer(id) ON DELETE CASCADE,
                        position INTEGER NOT NULL,
                        queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
                        body BLOB NOT NULL,
                        PRIMARY KEY (timer_id, position)
                    );
                    CREATE INDEX timer_entry_by_queue ON timer_entry(queue_id);
                    CREATE TABLE relay_meta (
                        name TEXT PRIMARY KEY,
                        value INTEGER NOT NULL
                    );
                    """)
        }
        // v2: two b-trees per message instead of three, and no foreign-key lookup per insert.
        // Expiry is found per queue from its oldest message through `message_by_queue` (the
        // core keeps a lower bound per queue), so the expiry index goes; the core deletes a
        // queue's messages itself, so the foreign key goes. (A WITHOUT ROWID table keyed by
        // (queue_id, seq) was measured slower: 1 KiB bodies overflow its pages.)
        migrator.registerMigration("v2 message without expiry index") { db in
            try db.execute(
                sql: """
                    CREATE TABLE message_v2 (
                        id INTEGER PRIMARY KEY,
                        queue_id INTEGER NOT NULL,
                        seq INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        body BLOB NOT NULL
                    );
                    INSERT INTO message_v2(id, queue_id, seq, expires_at, body) SELECT id, queue_id, seq, expires_at, body FROM message;
                    DROP TABLE message;
                    ALTER TABLE message_v2 RENAME TO message;
                    CREATE UNIQUE INDEX message_by_queue ON message(queue_id, seq);
                    """)
        }
        // v3: TSET is idempotent per timer key (docs/PROTOCOL.md §3.1), so a retry after a lost
        // reply finds the timer its first attempt made instead of making a second one.
        migrator.registerMigration("v3 timer by key") { db in
            try db.execute(sql: "CREATE INDEX timer_by_key ON timer(timer_key)")
        }
        // v4: organisation members' queue-creation tokens (`belayd token`): the keyed hash, a
        // label, the quota and a count of queues created. Deliberately no link from a queue to
        // the token that created it (docs/THREAT-MODEL.md).
        migrator.registerMigration("v4 member tokens") { db in
            try db.execute(
                sql: """
                    CREATE TABLE member_token (
                        id INTEGER PRIMARY KEY,
                        hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
                        label TEXT UNIQUE,
                        quota INTEGER NOT NULL CHECK (quota > 0),
                        used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0)
                    )
                    """)
        }
        return migrator
    }
}
