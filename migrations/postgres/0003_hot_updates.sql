-- Every write updates the owner's home row (revision counter, quota) and the calendar's row.
-- Free space in each page lets Postgres update them in place (HOT: no new index entries, no
-- dead versions for lookups to step over), so write speed does not decay as a calendar fills.
ALTER TABLE collections SET (fillfactor = 50);
ALTER TABLE changes SET (fillfactor = 80);
