-- Public feed links and calendar subscriptions (SQLite dialect; keep in step with postgres).

-- A secret link serving one calendar as an .ics feed. Only a hash of the token is kept: a
-- leaked database does not leak working links. Revoking deletes the row.
CREATE TABLE feeds (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id  INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    token_hash     TEXT NOT NULL UNIQUE,
    -- First characters of the token, so an owner can tell their links apart in a list.
    token_hint     TEXT NOT NULL,
    mode           TEXT NOT NULL,
    window_days    INTEGER,
    include_alarms INTEGER NOT NULL DEFAULT 0,
    include_emails INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER
);
CREATE INDEX feeds_by_collection ON feeds (collection_id);

-- A calendar that mirrors an external .ics URL, read-only for CalDAV clients. The refresher
-- claims a row by moving next_due_at forward (one UPDATE), so several processes never fetch
-- the same subscription at once.
CREATE TABLE subscriptions (
    collection_id   INTEGER PRIMARY KEY REFERENCES collections(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    refresh_seconds INTEGER NOT NULL,
    etag            TEXT,
    last_modified   TEXT,
    next_due_at     INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_success_at INTEGER,
    last_status     TEXT,
    last_error      TEXT,
    last_error_at   INTEGER
);
CREATE INDEX subscriptions_due ON subscriptions (next_due_at);
