#!/usr/bin/env bash
# The tsdav CalDAV client (npm `tsdav`, used by Cal.com) end to end against a fresh server.
#   SQLite (default):  conformance/run.sh tsdav
#   PostgreSQL:        ALMANAC_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test conformance/run.sh tsdav
#   a peer server:     CONFORMANCE_SERVER=radicale conformance/run.sh tsdav   (or xandikos;
#                      conformance/peers.sh tsdav runs all three)
# Node dependencies: package.json + package-lock.json here, installed with `npm ci` into
# conformance/.work/node-tsdav/.
# Given only the base URL and alice's credentials (Basic auth): discovery, fetchCalendars,
# makeCalendar, create/update/delete of objects (with ETag preconditions), fetchCalendarObjects
# with timeRange (single, all-day and recurring events in and out of the range), expand and
# multiget, freeBusyQuery, and change detection by sync-collection, by ctag and by
# syncCalendars. See scenario.mjs.
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
node "$NODE_SUITE_DIR/scenario.mjs" "$results" || status=$?
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
