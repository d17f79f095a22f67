-- Listings (PROPFIND Depth 1, sync-collection, multiget without calendar-data) need a member's
-- name, UID, ETag, size, type and times, never its body. An index holding exactly those answers
-- them without reading the table, whose rows carry the iCalendar text inline: a listing of a
-- 10,000-event calendar reads about 2 MB of index instead of 11 MB of rows.
CREATE INDEX objects_meta ON objects (collection_id, name, uid, etag, size, component, created_at, modified_at);
