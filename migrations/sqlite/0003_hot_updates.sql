-- Postgres-only tuning (page fill factor for in-place updates); nothing to do on SQLite. Kept so
-- both dialects have the same migration numbers.
SELECT 1;
