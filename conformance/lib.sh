# shellcheck shell=bash
# Shared helpers for the conformance suites. Source it; do not run it.
#
#   almanac_build          build target/release/almanac once (skipped when ALMANAC_BIN is preset)
#   almanac_start          start a throw-away server on 127.0.0.1:<free port> with its own database
#   almanac_cli ARGS...    run the almanac CLI against the started server's database
#   conformance_venv REQ   create/reuse conformance/.work/venv and install the pinned REQ file
#
# After almanac_start:
#   ALMANAC_URL             http://127.0.0.1:PORT/
#   ALMANAC_DB_URL_USED     the database URL the server runs on (a temp SQLite file, or a fresh
#                           PostgreSQL database when ALMANAC_DATABASE_URL is a postgres:// URL)
#   ALMANAC_ADMIN_PASSWORD  password of the `admin` user (preset or random)
#   ALMANAC_SERVER_PID, ALMANAC_SERVER_LOG, ALMANAC_CONF_TMP
# An EXIT trap stops the server (by PID), drops the PostgreSQL database it created, prints the
# server log tail when the run failed, and removes the temp dir (kept when the run failed or
# ALMANAC_CONF_KEEP=1).
#
# Environment read:
#   ALMANAC_BIN           use this binary instead of building
#   CARGO_TARGET_DIR      where cargo puts the build (default: <repo>/target)
#   ALMANAC_DATABASE_URL  unset/sqlite: temp SQLite; postgres://...: server to create a database on
#   ALMANAC_LOG           server log filter (default: almanac=debug,info)

CONFORMANCE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFORMANCE_ROOT="$(cd "$CONFORMANCE_DIR/.." && pwd)"
CONFORMANCE_WORK="$CONFORMANCE_DIR/.work"
export CONFORMANCE_DIR CONFORMANCE_ROOT CONFORMANCE_WORK

_conf_log() { printf '[conformance] %s\n' "$*" >&2; }

# Stops process $1 (if it still runs): SIGTERM, up to $3 tenths of a second (default 100) to
# exit, then SIGKILL with a line on stderr naming it as $2; reaps it when it is our child.
# By PID only: never by name, which could hit someone else's process.
conf_stop_pid() {
    local pid="$1" what="${2:-pid $1}" tenths="${3:-100}"
    [[ -n "$pid" ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    local _
    for _ in $(seq 1 "$tenths"); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        printf '[conformance] %s (pid %s) did not stop on SIGTERM; killing it\n' "$what" "$pid" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Builds the release binary once per shell (cargo itself makes repeated builds cheap).
almanac_build() {
    if [[ -n "${ALMANAC_BIN:-}" ]]; then
        if [[ ! -x "$ALMANAC_BIN" ]]; then
            _conf_log "ALMANAC_BIN=$ALMANAC_BIN is not an executable"
            return 1
        fi
        export ALMANAC_BIN
        return 0
    fi
    local target="${CARGO_TARGET_DIR:-$CONFORMANCE_ROOT/target}"
    _conf_log "building almanac (cargo build --release) ..."
    if ! (cd "$CONFORMANCE_ROOT" && cargo build --release --quiet); then
        _conf_log "cargo build failed"
        return 1
    fi
    ALMANAC_BIN="$target/release/almanac"
    if [[ ! -x "$ALMANAC_BIN" ]]; then
        _conf_log "build finished but $ALMANAC_BIN is missing"
        return 1
    fi
    export ALMANAC_BIN
}

_conf_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Prints URL with its database name replaced by $2 (keeps user, host, port and query).
_conf_pg_url_with_db() {
    python3 - "$1" "$2" <<'PY'
import sys
from urllib.parse import urlsplit, urlunsplit
u = urlsplit(sys.argv[1])
print(urlunsplit((u.scheme, u.netloc, "/" + sys.argv[2], u.query, u.fragment)))
PY
}

_conf_on_exit() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    conf_stop_pid "${ALMANAC_SERVER_PID:-}" server
    if [[ $status -ne 0 && -n "${ALMANAC_SERVER_LOG:-}" && -f "$ALMANAC_SERVER_LOG" ]]; then
        _conf_log "run failed (exit $status); last lines of the server log $ALMANAC_SERVER_LOG:"
        tail -n 60 "$ALMANAC_SERVER_LOG" >&2
    fi
    if [[ -n "${_CONF_PG_DROP_DB:-}" ]]; then
        if ! psql "$_CONF_PG_ADMIN_URL" -q -v ON_ERROR_STOP=1 \
            -c "DROP DATABASE IF EXISTS \"$_CONF_PG_DROP_DB\" WITH (FORCE)" >/dev/null; then
            _conf_log "could not drop database $_CONF_PG_DROP_DB"
        fi
    fi
    if [[ -n "${ALMANAC_CONF_TMP:-}" && -d "$ALMANAC_CONF_TMP" ]]; then
        if [[ "${ALMANAC_CONF_KEEP:-0}" == 1 || $status -ne 0 ]]; then
            _conf_log "kept $ALMANAC_CONF_TMP (server log, SQLite database if any)"
        else
            rm -rf "$ALMANAC_CONF_TMP"
        fi
    fi
    exit "$status"
}

# Starts one server for this shell. Call it at most once per run.
almanac_start() {
    if [[ -n "${ALMANAC_SERVER_PID:-}" ]]; then
        _conf_log "almanac_start called twice"
        return 1
    fi
    almanac_build || return 1
    trap _conf_on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    ALMANAC_CONF_TMP="$(mktemp -d "${TMPDIR:-/tmp}/almanac-conf.XXXXXX")"
    ALMANAC_SERVER_LOG="$ALMANAC_CONF_TMP/server.log"
    export ALMANAC_CONF_TMP ALMANAC_SERVER_LOG

    local requested="${ALMANAC_DATABASE_URL:-}"
    case "$requested" in
        postgres://* | postgresql://*)
            local db
            db="almanac_conf_$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
            if ! psql "$requested" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\"" >/dev/null; then
                _conf_log "could not create database $db via $requested"
                return 1
            fi
            _CONF_PG_ADMIN_URL="$requested"
            _CONF_PG_DROP_DB="$db"
            ALMANAC_DB_URL_USED="$(_conf_pg_url_with_db "$requested" "$db")"
            _conf_log "PostgreSQL database $db created"
            ;;
        "" | sqlite:*)
            ALMANAC_DB_URL_USED="sqlite://$ALMANAC_CONF_TMP/almanac.db"
            ;;
        *)
            _conf_log "unsupported ALMANAC_DATABASE_URL: $requested"
            return 1
            ;;
    esac
    export ALMANAC_DB_URL_USED

    if [[ -z "${ALMANAC_ADMIN_PASSWORD:-}" ]]; then
        ALMANAC_ADMIN_PASSWORD="admin-$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
    fi
    export ALMANAC_ADMIN_PASSWORD

    # A free port can be taken between probing and binding: retry a few times.
    local attempt port up
    for attempt in 1 2 3; do
        port="$(_conf_free_port)"
        ALMANAC_LISTEN="127.0.0.1:$port" \
            ALMANAC_DATABASE_URL="$ALMANAC_DB_URL_USED" \
            ALMANAC_ADMIN_PASSWORD="$ALMANAC_ADMIN_PASSWORD" \
            ALMANAC_LOG="${ALMANAC_LOG:-almanac=debug,info}" NO_COLOR=1 \
            "$ALMANAC_BIN" serve >>"$ALMANAC_SERVER_LOG" 2>&1 </dev/null &
        ALMANAC_SERVER_PID=$!
        export ALMANAC_SERVER_PID
        up=0
        local i
        for i in $(seq 1 300); do # 300 x 0.1 s = 30 s
            if ! kill -0 "$ALMANAC_SERVER_PID" 2>/dev/null; then
                break
            fi
            if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz" 2>/dev/null; then
                up=1
                break
            fi
            sleep 0.1
        done
        if [[ $up == 1 ]]; then
            break
        fi
        if kill -0 "$ALMANAC_SERVER_PID" 2>/dev/null; then
            _conf_log "server did not answer /healthz within 30 s"
            return 1 # the EXIT trap stops it and shows the log
        fi
        wait "$ALMANAC_SERVER_PID" 2>/dev/null
        ALMANAC_SERVER_PID=""
        if grep -qi "binding 127.0.0.1:$port" "$ALMANAC_SERVER_LOG"; then
            _conf_log "port $port was taken; retrying ($attempt)"
            continue
        fi
        _conf_log "server exited during start-up"
        return 1
    done
    if [[ $up != 1 ]]; then
        _conf_log "server could not be started"
        return 1
    fi
    ALMANAC_URL="http://127.0.0.1:$port/"
    export ALMANAC_URL
    _conf_log "almanac serving at $ALMANAC_URL (pid $ALMANAC_SERVER_PID, database ${ALMANAC_DB_URL_USED%%://*})"
}

# Runs the CLI on the same database as the running server.
almanac_cli() {
    ALMANAC_DATABASE_URL="$ALMANAC_DB_URL_USED" ALMANAC_LOG="${ALMANAC_LOG:-warn}" "$ALMANAC_BIN" "$@"
}

# Creates (or reuses) conformance/.work/venv and installs the pinned requirements file;
# reinstalls only when the file changed. Exports CONFORMANCE_PYTHON.
conformance_venv() {
    local req="$1"
    if [[ -z "$req" || ! -f "$req" ]]; then
        _conf_log "conformance_venv: no requirements file '$req'"
        return 1
    fi
    local venv="$CONFORMANCE_WORK/venv"
    mkdir -p "$CONFORMANCE_WORK"
    if [[ ! -x "$venv/bin/python" ]]; then
        _conf_log "creating venv $venv"
        python3 -m venv "$venv" || return 1
    fi
    local want stamp
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    stamp="$venv/.requirements-$(basename "$(dirname "$req")").sha256"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        _conf_log "installing $req into the venv"
        "$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$req" || return 1
        printf '%s\n' "$want" >"$stamp"
    fi
    CONFORMANCE_PYTHON="$venv/bin/python"
    export CONFORMANCE_PYTHON
}

# Installs package.json + package-lock.json of a suite with `npm ci` into
# conformance/.work/node-SUITE/ (again only when either file changed) and copies the suite's
# scripts next to node_modules so their imports resolve there. Sets NODE_SUITE_DIR.
#   node_suite_install SUITE_DIR
node_suite_install() {
    local here="$1" suite dir want stamp
    suite="$(basename "$here")"
    dir="$CONFORMANCE_WORK/node-$suite"
    mkdir -p "$dir"
    want="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)"
    stamp="$dir/.installed.sha256"
    if [[ ! -d "$dir/node_modules" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        _conf_log "npm ci ($suite) into $dir"
        cp "$here/package.json" "$here/package-lock.json" "$dir/"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || return 1
        printf '%s\n' "$want" >"$stamp"
    fi
    cp "$here"/*.mjs "$dir/"
    NODE_SUITE_DIR="$dir"
}

# Compares a suite's results with its list of known failures and prints the verdict.
#   conformance_report SUITE RESULTS_FILE
# RESULTS_FILE has one line per check: `PASS <id>` or `FAIL <id> [detail]` (ids without spaces).
# conformance/expected/SUITE.xfail lists known failures, one `<id>  # reason` per line (blank
# lines and lines starting with # are ignored); every entry needs a reason.
# The run fails on a failure that is not listed, on a listed failure that passed (the list must
# stay true), on a listed id that did not run, and on an entry without a reason.
# The last line printed is `N passed, M failed` (M = unexpected outcomes), plus `, K xfailed`.
conformance_report() {
    local suite="$1" results="$2"
    local xfail="$CONFORMANCE_DIR/expected/$suite.xfail"
    local -A expected=()
    local bad=0 passed=0 xfailed=0 line id reason
    if [[ -f "$xfail" ]]; then
        while IFS= read -r line || [[ -n "$line" ]]; do
            [[ -z "${line//[[:space:]]/}" || "$line" =~ ^[[:space:]]*# ]] && continue
            id="${line%%#*}"
            id="${id//[[:space:]]/}"
            reason="${line#*#}"
            if [[ "$line" != *"#"* || -z "${reason//[[:space:]]/}" ]]; then
                echo "XFAIL-ERROR $id: no reason given in $xfail"
                bad=$((bad + 1))
            fi
            expected["$id"]=1
        done <"$xfail"
    fi
    local -A seen=()
    while IFS= read -r line || [[ -n "$line" ]]; do
        [[ -z "$line" ]] && continue
        local verdict="${line%% *}" rest="${line#* }"
        id="${rest%% *}"
        seen["$id"]=1
        case "$verdict" in
        PASS)
            if [[ -n "${expected[$id]:-}" ]]; then
                echo "UNEXPECTED-PASS $id (listed in $suite.xfail: remove it)"
                bad=$((bad + 1))
            else
                passed=$((passed + 1))
            fi
            ;;
        FAIL)
            if [[ -n "${expected[$id]:-}" ]]; then
                xfailed=$((xfailed + 1))
            else
                echo "NEW-FAILURE $rest"
                bad=$((bad + 1))
            fi
            ;;
        *)
            echo "MALFORMED-RESULT $line"
            bad=$((bad + 1))
            ;;
        esac
    done <"$results"
    for id in "${!expected[@]}"; do
        if [[ -z "${seen[$id]:-}" ]]; then
            echo "STALE-XFAIL $id (listed in $suite.xfail but did not run)"
            bad=$((bad + 1))
        fi
    done
    echo "$suite: $passed passed, $bad failed, $xfailed xfailed"
    echo "$passed passed, $bad failed"
    [[ $bad -eq 0 ]]
}

# Server-agnostic start (Almanac, or the peers Radicale and Xandikos via CONFORMANCE_SERVER):
# conformance_server_start, conformance_server_report, conformance_named_venv. See peers.sh.
# shellcheck source=peers.sh
. "$CONFORMANCE_DIR/peers.sh"
