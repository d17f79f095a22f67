#!/usr/bin/env bash
# Feed links and calendar export, read by the parsers subscribers use: python `icalendar` and
# ical.js (Thunderbird's parser).
#   SQLite (default):  conformance/run.sh feeds
#   PostgreSQL:        ALMANAC_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test conformance/run.sh feeds
# Uploads tests/fixtures/ics/*.ics and events with private details, creates feeds in every mode
# (over the owner's JSON API and with `almanac feed create`), and checks what each serves (see
# check.py and check.mjs). Prints `N passed, M failed`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
suite="$(basename "$here")"
# shellcheck source=../../lib.sh
. "$here/../../lib.sh"

conformance_venv "$here/requirements.txt"
node_suite_install "$here"
almanac_start

PASSWORD="feeds-$("$CONFORMANCE_PYTHON" -c 'import secrets; print(secrets.token_urlsafe(16))')"
printf '%s\n' "$PASSWORD" | almanac_cli user add alice --password-stdin >/dev/null
cli_out="$(ALMANAC_PUBLIC_URL="${ALMANAC_URL%/}" almanac_cli feed create alice default --mode busy)"
FEEDS_CLI_URL="${cli_out%%$'\n'*}"
export FEEDS_CLI_URL

results="$ALMANAC_CONF_TMP/$suite-results.txt"
out="$ALMANAC_CONF_TMP/$suite-bodies"
mkdir -p "$out"
: >"$results"
status=0
"$CONFORMANCE_PYTHON" "$here/check.py" "$ALMANAC_URL" alice "$PASSWORD" \
    "$CONFORMANCE_ROOT/tests/fixtures/ics" "$out" "$results" || status=$?
node "$NODE_SUITE_DIR/check.mjs" "$out" "$results" || status=$?
report_status=0
conformance_report "$suite" "$results" || report_status=$?
if [[ $status -ne 0 ]]; then
    echo "$suite: a check script crashed (exit $status); results are incomplete" >&2
    exit 1
fi
exit "$report_status"
