#!/usr/bin/env bash
# calendar-query time-range results vs. an independent oracle (python recurring-ical-events).
#   SQLite (default):  conformance/run.sh recurrence-oracle
#   PostgreSQL:        ALMANAC_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test conformance/run.sh recurrence-oracle
# Environment: ORACLE_EVENTS (default 10000), ORACLE_SEED, ORACLE_CONCURRENCY (default 8 PUTs in
# flight), ORACLE_WORKERS (default 2 oracle processes).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../lib.sh
. "$here/../../lib.sh"

conformance_venv "$here/requirements.txt"
almanac_start

events="$ALMANAC_CONF_TMP/events"
seed_args=()
if [[ -n "${ORACLE_SEED:-}" ]]; then
    seed_args=(--seed "$ORACLE_SEED")
fi
"$CONFORMANCE_PYTHON" "$here/generate.py" "$events" --count "${ORACLE_EVENTS:-10000}" "${seed_args[@]}"

ORACLE_PASSWORD="oracle-$("$CONFORMANCE_PYTHON" -c 'import secrets; print(secrets.token_urlsafe(16))')"
printf '%s\n' "$ORACLE_PASSWORD" | almanac_cli user add oracle --password-stdin

export ORACLE_URL="$ALMANAC_URL" ORACLE_USER=oracle ORACLE_PASSWORD
"$CONFORMANCE_PYTHON" "$here/check.py" "$events"
