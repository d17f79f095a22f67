-- Public feed links and calendar subscriptions (PostgreSQL dialect; keep in step with sqlite).

-- A secret link serving one calendar as an .ics feed. Only a hash of the token is kept: a
-- leaked database does not leak working links. Revoking deletes the row.
CREATE TABLE feeds (
    id             BIGSERIAL PRIMARY KEY,
    collection_id  BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    token_hash     TEXT NOT NULL UNIQUE,
    -- First characters of the token, so an owner can tell their links apart in a list.
    token_hint     TEXT NOT NULL,
    mode           TEXT NOT NULL,
    window_days    BIGINT,
    include_alarms BIGINT NOT NULL DEFAULT 0,
    include_emails BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT
);
CREATE INDEX feeds_by_collection ON feeds (collection_id);

-- A calendar that mirrors an external .ics URL, read-only for CalDAV clients. The refresher
-- claims a row by moving next_due_at forward (one UPDATE), so several processes never fetch
-- the same subscription at once.
CREATE TABLE subscriptions (
    collection_id   BIGINT PRIMARY KEY REFERENCES collections(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    refresh_seconds BIGINT NOT NULL,
    etag            TEXT,
    last_modified   TEXT,
    next_due_at     BIGINT NOT NULL,
    last_attempt_at BIGINT,
    last_success_at BIGINT,
    last_status     TEXT,
    last_error      TEXT,
    last_error_at   BIGINT
);
CREATE INDEX subscriptions_due ON subscriptions (next_due_at);
