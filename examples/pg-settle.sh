#!/usr/bin/env bash
# Waits until PostgreSQL's autovacuum has nothing left to do in one database: no table past its
# vacuum, insert-vacuum or analyze threshold (computed from the server's own autovacuum
# settings). bench-peers.sh runs it (through the bench tool's --after-load) between loading a
# calendar and timing the queries, so Almanac on PostgreSQL is measured in the state a database
# reaches by itself shortly after a bulk load (statistics gathered, visibility map set), not in
# the minute before autovacuum's first pass.
#
#   bash examples/pg-settle.sh DATABASE_URL [TIMEOUT_SECONDS]
#
# Exits 0 when settled, at once (with a warning) when autovacuum is off, and after
# TIMEOUT_SECONDS (default 300) with a warning on stderr (the measurement then shows an
# unsettled database; the bench notes say how long the wait took). Exits 2 when the database
# cannot be asked.
set -euo pipefail
URL="${1:?usage: pg-settle.sh DATABASE_URL [TIMEOUT_SECONDS]}"
TIMEOUT="${2:-300}"
PENDING_SQL="
SELECT count(*) FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.n_ins_since_vacuum > current_setting('autovacuum_vacuum_insert_threshold')::float8
        + current_setting('autovacuum_vacuum_insert_scale_factor')::float8 * greatest(c.reltuples, 0)
   OR s.n_dead_tup > current_setting('autovacuum_vacuum_threshold')::float8
        + current_setting('autovacuum_vacuum_scale_factor')::float8 * greatest(c.reltuples, 0)
   OR s.n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8
        + current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(c.reltuples, 0)"
case "$(psql "$URL" -Atc 'SHOW autovacuum' 2>/dev/null || echo error)" in
    on) ;;
    error)
        echo "pg-settle: the database does not answer at $URL" >&2
        exit 2
        ;;
    *)
        echo "pg-settle: autovacuum is off on this server; nothing to wait for" >&2
        exit 0
        ;;
esac
start=$SECONDS
while :; do
    # Statistics reach pg_stat_user_tables up to a second after a transaction ends.
    sleep 2
    pending="$(psql "$URL" -Atc "$PENDING_SQL")"
    [[ "$pending" == 0 ]] && exit 0
    if ((SECONDS - start >= TIMEOUT)); then
        echo "pg-settle: $pending table(s) still past an autovacuum threshold after ${TIMEOUT}s" >&2
        exit 0
    fi
done
