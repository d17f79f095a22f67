-- Time index of calendar objects (computed by the ical module at write time). Rows written
-- before this migration have index_version 0 and are recomputed at start.
ALTER TABLE objects ADD COLUMN recurring BIGINT NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN floating BIGINT NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN all_day BIGINT NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN transp TEXT;
ALTER TABLE objects ADD COLUMN status TEXT;
ALTER TABLE objects ADD COLUMN class TEXT;
-- Time-range prefilter: candidates of one collection and component whose bounds meet a window.
CREATE INDEX objects_time ON objects (collection_id, component, first_start);
CREATE INDEX objects_stale ON objects (index_version);
