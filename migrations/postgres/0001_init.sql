-- Almanac schema, PostgreSQL dialect. Keep in step with migrations/sqlite (same numbers, same
-- tables and columns; a test checks the numbering). Timestamps are i64 UTC seconds.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE principals (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    email          TEXT,
    password_hash  TEXT NOT NULL,
    -- Bumped by every change of credentials (password, app passwords, deletion) so that
    -- verified-credential caches in every process notice at their next request.
    credentials_version BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);

CREATE TABLE app_passwords (
    id            BIGSERIAL PRIMARY KEY,
    principal_id  BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    label         TEXT NOT NULL,
    -- Public part of the generated password: selects the one hash to verify.
    lookup        TEXT NOT NULL,
    hash          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    UNIQUE (principal_id, label),
    UNIQUE (lookup)
);

-- A principal's calendar home (kind 'home', name '') and its calendars (kind 'calendar').
-- BIGSERIAL: ids are never reused, so a sync token of a deleted collection can never
-- name a new one.
CREATE TABLE collections (
    id           BIGSERIAL PRIMARY KEY,
    owner_id     BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    displayname  TEXT,
    description  TEXT,
    timezone     TEXT,
    components   TEXT NOT NULL DEFAULT '',
    -- Bumped by every change of a member (or, for the home, of a calendar): the CTag and the
    -- sync token.
    revision     BIGINT NOT NULL DEFAULT 0,
    -- Tokens older than this were pruned and are refused with valid-sync-token.
    min_revision BIGINT NOT NULL DEFAULT 0,
    -- Home only: bytes of all objects of the owner (quota).
    used_bytes   BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (owner_id, name)
);

CREATE TABLE objects (
    id             BIGSERIAL PRIMARY KEY,
    collection_id  BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    uid            TEXT NOT NULL,
    etag           TEXT NOT NULL,
    ics            TEXT NOT NULL,
    size           BIGINT NOT NULL,
    component      TEXT NOT NULL,
    -- Index columns filled by the ical module; index_version says which computation wrote
    -- them, so a newer server can recompute stale rows.
    index_version  BIGINT NOT NULL DEFAULT 0,
    first_start    BIGINT,
    last_end       BIGINT,
    created_at     BIGINT NOT NULL,
    modified_at    BIGINT NOT NULL,
    UNIQUE (collection_id, name),
    UNIQUE (collection_id, uid)
);

-- The sync log, compacted to the latest change per member: RFC 6578 only ever needs "which
-- members changed after revision R", and that is exactly the members whose latest change is
-- after R. Deleted members stay as tombstones.
CREATE TABLE changes (
    collection_id  BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    revision       BIGINT NOT NULL,
    deleted        BIGINT NOT NULL,
    PRIMARY KEY (collection_id, name)
);
CREATE INDEX changes_by_revision ON changes (collection_id, revision);

-- Dead properties, stored verbatim as self-contained XML fragments. object_name '' is the
-- collection itself.
CREATE TABLE dead_props (
    collection_id  BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    object_name    TEXT NOT NULL,
    ns             TEXT NOT NULL,
    local          TEXT NOT NULL,
    xml            TEXT NOT NULL,
    PRIMARY KEY (collection_id, object_name, ns, local)
);
