#!/usr/bin/env bash
# End-to-end run of the python `caldav` library against a fresh Almanac.
#   SQLite (default):  conformance/run.sh python-caldav-e2e
#   PostgreSQL:        ALMANAC_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test conformance/run.sh python-caldav-e2e
# (with PostgreSQL a fresh database almanac_conf_<random> is created on that server and dropped)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../lib.sh
. "$here/../../lib.sh"

conformance_venv "$here/requirements.txt"
almanac_start

# The user is made with the CLI while the server runs, on the same database: the CLI must be
# safe alongside `serve`, and the running server must see the new user at once.
ALICE_PASSWORD="alice-$("$CONFORMANCE_PYTHON" -c 'import secrets; print(secrets.token_urlsafe(16))')"
printf '%s\n' "$ALICE_PASSWORD" | almanac_cli user add alice --email alice@example.com --password-stdin
if ! almanac_cli user list | grep -q '^alice[[:space:]]alice@example.com$'; then
    echo "almanac user list does not show alice <alice@example.com>:" >&2
    almanac_cli user list >&2
    exit 1
fi
if ! curl -fsS -o /dev/null --max-time 5 "${ALMANAC_URL}healthz"; then
    echo "server unhealthy after running the CLI alongside it" >&2
    exit 1
fi

export CALDAV_E2E_URL="$ALMANAC_URL"
export CALDAV_E2E_USER=alice
export CALDAV_E2E_PASSWORD="$ALICE_PASSWORD"
# Make the library raise on protocol deviations it would otherwise only log.
export PYTHON_CALDAV_DEBUGMODE=DEVELOPMENT
"$CONFORMANCE_PYTHON" "$here/scenario.py"
