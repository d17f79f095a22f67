-- Listings (PROPFIND Depth 1, sync-collection, multiget without calendar-data) need a member's
-- name, UID, ETag, size, type and times, never its body. A covering index answers them with an
-- index-only scan instead of reading the heap rows that carry the iCalendar text.
CREATE INDEX objects_meta ON objects (collection_id, name) INCLUDE (uid, etag, size, component, created_at, modified_at);
