#!/usr/bin/env bash
# Crash safety: a concurrent PUT/DELETE load, SIGKILL of the server at a random moment, restart
# on the same database, and checks that every acknowledged write survived byte-exact, nothing
# half-written is visible, and sync tokens from before the crash still give correct deltas.
#   SQLite (default):  conformance/run.sh crash-safety
#   PostgreSQL:        ALMANAC_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test conformance/run.sh crash-safety
# Environment: CRASH_ROUNDS (default 5 kills), CRASH_WORKERS (default 6 writer threads),
# CRASH_SEED (random by default; printed so a failing run can be repeated).
# Python standard library only: no venv needed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../lib.sh
. "$here/../../lib.sh"

almanac_start

CRASH_PASSWORD="crash-$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')"
printf '%s\n' "$CRASH_PASSWORD" | almanac_cli user add crash --password-stdin >/dev/null

# The driver kills the server lib.sh started and runs the later ones itself; it records the PID
# of the one running so that nothing is left behind if the driver itself dies.
CRASH_PIDFILE="$ALMANAC_CONF_TMP/crash-server.pid"
_crash_on_exit() {
    local status=$?
    if [[ -f "$CRASH_PIDFILE" ]]; then
        local pid
        pid="$(cat "$CRASH_PIDFILE")"
        if [[ -n "$pid" && "$pid" != "$ALMANAC_SERVER_PID" ]] && kill -0 "$pid" 2>/dev/null &&
            grep -q almanac "/proc/$pid/cmdline" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    (exit "$status")
    _conf_on_exit
}
trap _crash_on_exit EXIT

# The driver kills lib.sh's server. Disowned, it is reaped by bash at once, without a "Killed"
# job notice and without leaving lib.sh's trap to wait on a zombie; if the driver fails before
# killing it, that trap still stops it.
disown "$ALMANAC_SERVER_PID"

export CRASH_URL="$ALMANAC_URL" CRASH_USER=crash CRASH_PASSWORD CRASH_PIDFILE
export CRASH_SERVER_PID="$ALMANAC_SERVER_PID"
python3 "$here/crash.py"
