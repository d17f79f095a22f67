-- A calendar-query asking only for ETags (what clients send to learn which events a window
-- holds, before a multiget of the changed ones) is answered from the occurrence index alone:
-- each occurrence row carries its object's name and ETag, and the window index holds them, so
-- the answer is one ordered index range per span level. Looking the matched objects up by id
-- instead read one table page per match (each row carries the iCalendar text, so a match's
-- row rarely shares a page with another's): at 100,000 events the week query's 2,000 matches
-- were 2,000 page reads and more than half of its time.
--
-- The two columns are rewritten with the rest of an object's occurrence rows on every write,
-- and follow MOVE (name) and COPY (name) in the same transaction.
-- Rows of objects that no longer exist (possible only where foreign keys were not enforced)
-- would be given no name; they answer nothing, so they go.
DELETE FROM occurrences WHERE object_id NOT IN (SELECT id FROM objects);
ALTER TABLE occurrences ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE occurrences ADD COLUMN etag TEXT NOT NULL DEFAULT '';
UPDATE occurrences SET
    name = (SELECT o.name FROM objects o WHERE o.id = occurrences.object_id),
    etag = (SELECT o.etag FROM objects o WHERE o.id = occurrences.object_id);
DROP INDEX occurrences_window;
CREATE INDEX occurrences_window ON occurrences
    (collection_id, span_level, start_at, end_at, object_id, busy, floating, occ_until, name, etag);
