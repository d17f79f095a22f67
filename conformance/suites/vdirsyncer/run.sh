#!/usr/bin/env bash
# vdirsyncer (pinned in requirements.txt, own venv conformance/.work/venv-vdirsyncer) syncing a
# calendar of a fresh server with a local vdir, both ways; see scenario.py for the checks.
#   Almanac, SQLite (default):  conformance/run.sh vdirsyncer
#   Almanac, PostgreSQL:        ALMANAC_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test conformance/run.sh vdirsyncer
#   a peer server:              CONFORMANCE_SERVER=radicale|xandikos conformance/run.sh vdirsyncer
# Prints `N passed, M failed` (conformance_server_report: expected/vdirsyncer.xfail applies on
# Almanac only); exit 1 on any unexpected outcome. The scenario's work dir (configs, vdirs,
# vdirsyncer.log with every command's output) is CONF_TMP/vdirsyncer, kept when the run fails.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../lib.sh
. "$here/../../lib.sh"

conformance_named_venv vdirsyncer "$here/requirements.txt"
vds_venv="$CONFORMANCE_NAMED_VENV"
conformance_server_start

results="$CONF_TMP/vdirsyncer-results.txt"
VDIRSYNCER="$vds_venv/bin/vdirsyncer" VDS_RESULTS="$results" "$vds_venv/bin/python" "$here/scenario.py"
conformance_server_report vdirsyncer "$results"
