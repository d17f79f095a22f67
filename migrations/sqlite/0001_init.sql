-- Almanac schema, SQLite dialect. Keep in step with migrations/postgres (same numbers, same
-- tables and columns; a test checks the numbering). Timestamps are i64 UTC seconds.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE principals (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL UNIQUE,
    email          TEXT,
    password_hash  TEXT NOT NULL,
    -- Bumped by every change of credentials (password, app passwords, deletion) so that
    -- verified-credential caches in every process notice at their next request.
    credentials_version INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);

CREATE TABLE app_passwords (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    principal_id  INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    label         TEXT NOT NULL,
    -- Public part of the generated password: selects the one hash to verify.
    lookup        TEXT NOT NULL,
    hash          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    UNIQUE (principal_id, label),
    UNIQUE (lookup)
);

-- A principal's calendar home (kind 'home', name '') and its calendars (kind 'calendar').
-- AUTOINCREMENT: ids are never reused, so a sync token of a deleted collection can never
-- name a new one.
CREATE TABLE collections (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id     INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    displayname  TEXT,
    description  TEXT,
    timezone     TEXT,
    components   TEXT NOT NULL DEFAULT '',
    -- Bumped by every change of a member (or, for the home, of a calendar): the CTag and the
    -- sync token.
    revision     INTEGER NOT NULL DEFAULT 0,
    -- Tokens older than this were pruned and are refused with valid-sync-token.
    min_revision INTEGER NOT NULL DEFAULT 0,
    -- Home only: bytes of all objects of the owner (quota).
    used_bytes   INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (owner_id, name)
);

CREATE TABLE objects (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id  INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    uid            TEXT NOT NULL,
    etag           TEXT NOT NULL,
    ics            TEXT NOT NULL,
    size           INTEGER NOT NULL,
    component      TEXT NOT NULL,
    -- Index columns filled by the ical module; index_version says which computation wrote
    -- them, so a newer server can recompute stale rows.
    index_version  INTEGER NOT NULL DEFAULT 0,
    first_start    INTEGER,
    last_end       INTEGER,
    created_at     INTEGER NOT NULL,
    modified_at    INTEGER NOT NULL,
    UNIQUE (collection_id, name),
    UNIQUE (collection_id, uid)
);

-- The sync log, compacted to the latest change per member: RFC 6578 only ever needs "which
-- members changed after revision R", and that is exactly the members whose latest change is
-- after R. Deleted members stay as tombstones.
CREATE TABLE changes (
    collection_id  INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    revision       INTEGER NOT NULL,
    deleted        INTEGER NOT NULL,
    PRIMARY KEY (collection_id, name)
);
CREATE INDEX changes_by_revision ON changes (collection_id, revision);

-- Dead properties, stored verbatim as self-contained XML fragments. object_name '' is the
-- collection itself.
CREATE TABLE dead_props (
    collection_id  INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    object_name    TEXT NOT NULL,
    ns             TEXT NOT NULL,
    local          TEXT NOT NULL,
    xml            TEXT NOT NULL,
    PRIMARY KEY (collection_id, object_name, ns, local)
);
