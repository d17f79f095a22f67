-- Occurrences of VEVENT objects, computed at write time (ical::index): a calendar-query or
-- free-busy-query over a time range reads the occurrences that overlap it from this index
-- instead of parsing and expanding every object whose bounds meet the range, so its cost
-- follows the size of the answer, not of the calendar.
--
-- objects.occ_until: every occurrence of the object starting before it is stored here (a
-- large value for a series that ends; a horizon for an open-ended rule); 0 when the object's
-- occurrences are not stored (other component types, too many occurrences). Windows ending
-- after it are answered by parsing the object, as before.
ALTER TABLE objects ADD COLUMN occ_until INTEGER NOT NULL DEFAULT 0;
CREATE INDEX objects_unindexed ON objects (collection_id, occ_until);

-- span_level groups occurrences by length (ical::index::span_level), so that one index range
-- per group finds every occurrence overlapping a window. end_at equals start_at for an
-- occurrence that matches as a point. busy: 0 none (transparent or cancelled), 1 BUSY,
-- 2 BUSY-TENTATIVE, 3 BUSY-UNAVAILABLE. floating and occ_until repeat the object's, so a
-- query never needs the objects table to decide.
CREATE TABLE occurrences (
    object_id      INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    collection_id  INTEGER NOT NULL,
    span_level     INTEGER NOT NULL,
    start_at       INTEGER NOT NULL,
    end_at         INTEGER NOT NULL,
    busy           INTEGER NOT NULL,
    floating       INTEGER NOT NULL,
    occ_until      INTEGER NOT NULL
);
CREATE INDEX occurrences_window ON occurrences (collection_id, span_level, start_at, end_at, object_id, busy, floating, occ_until);
CREATE INDEX occurrences_object ON occurrences (object_id);
