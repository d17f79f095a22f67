#!/usr/bin/env bash
# ical.js (the iCalendar parser inside Thunderbird) against the objects a fresh server serves.
#   SQLite (default):  conformance/run.sh icaljs
#   PostgreSQL:        ALMANAC_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test conformance/run.sh icaljs
#   a peer server:     CONFORMANCE_SERVER=radicale conformance/run.sh icaljs   (or xandikos;
#                      conformance/peers.sh icaljs runs all three)
# Node dependencies: package.json + package-lock.json here, installed with `npm ci` into
# conformance/.work/node-icaljs/.
# Uploads tests/fixtures/ics/*.ics (and objects shaped like python-caldav-e2e's) into a new
# calendar, parses what GET serves, and compares the server's <C:expand> of each window of
# tests/fixtures/ics/expected.tsv (plus wide windows) with ical.js's own expansion. See check.mjs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
suite="$(basename "$here")"
# shellcheck source=../../lib.sh
. "$here/../../lib.sh"

node_suite_install "$here"
# Almanac, or a peer server with CONFORMANCE_SERVER=radicale|xandikos (see peers.sh); exports
# CONF_URL, CONF_USER, CONF_PASSWORD, CONF_SERVER.
conformance_server_start

# In the run's scratch dir: kept with the server log when the run fails.
results="$CONF_TMP/$suite-results.txt"
status=0
ICALJS_FIXTURES="$CONFORMANCE_ROOT/tests/fixtures/ics" node "$NODE_SUITE_DIR/check.mjs" "$results" || status=$?
# The script reports failed checks in the results, not in its exit status: a non-zero exit means
# it crashed, and whatever checks it did not reach are missing.
report_status=0
if [[ -s "$results" ]]; then
    conformance_server_report "$suite" "$results" || report_status=$?
fi
if [[ $status -ne 0 ]]; then
    echo "$suite: the check script crashed (exit $status); results are incomplete" >&2
    exit 1
fi
exit "$report_status"
