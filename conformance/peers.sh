#!/usr/bin/env bash
# shellcheck shell=bash
# Runs the conformance suites against Almanac or, side by side, against the peer servers
# Radicale and Xandikos.
#
# Sourced by lib.sh (suites get these functions with it):
#   conformance_server_start         start the server named by CONFORMANCE_SERVER and create a user
#   conformance_server_report S R    conformance_report on Almanac; plain counts on a peer
#   conformance_named_venv NAME REQ  create/reuse conformance/.work/venv-NAME from a pinned REQ file
#
# Executed:
#   conformance/peers.sh SUITE [SERVER...]
# runs SUITE once per server (default: almanac radicale xandikos) and prints one line per server
# with its `N passed, M failed`; logs go to conformance/.work/peers/SUITE-SERVER.log. Suites that
# start Almanac directly (almanac_start) instead of conformance_server_start are skipped on peers.
#
# CONFORMANCE_SERVER (default almanac):
#   almanac   almanac_start (SQLite, or PostgreSQL with ALMANAC_DATABASE_URL; see lib.sh), then
#             `almanac user add CONF_USER --password-stdin` on the same database while it runs
#   radicale  Radicale (pinned in conformance/peers/radicale.txt, venv conformance/.work/venv-radicale),
#             htpasswd auth with plain passwords, filesystem storage in a temp dir
#   xandikos  Xandikos (pinned in conformance/peers/xandikos.txt, venv conformance/.work/venv-xandikos),
#             `--defaults --current-user-principal /user/`: no authentication at all (its htpasswd
#             option needs HTTPS), so any credentials are accepted and every client is `/user/`
# Every server listens on a free 127.0.0.1 port; an EXIT trap stops it by PID.
#
# After conformance_server_start, for every server:
#   CONF_SERVER          almanac | radicale | xandikos
#   CONF_SERVER_VERSION  e.g. "radicale 3.9.0", "almanac 0.1.0 (b7828e7, sqlite)"
#   CONF_URL             base URL to give clients: http://127.0.0.1:PORT/
#   CONF_USER            CONF_USER if preset, else alice
#   CONF_PASSWORD        CONF_PASSWORD if preset, else password
#   CONF_TMP             a scratch dir for the suite (removed on success unless ALMANAC_CONF_KEEP=1)
#   CONF_SERVER_LOG, CONF_SERVER_PID
# and on Almanac all of lib.sh's ALMANAC_* variables as after almanac_start.

CONFORMANCE_PEERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/peers"

_conf_peer_log() { printf '[conformance] %s\n' "$*" >&2; }

# Creates (or reuses) conformance/.work/venv-NAME and installs the pinned requirements file REQ
# into it; reinstalls only when REQ changed. Exports CONFORMANCE_NAMED_VENV (the venv's dir).
# For tools whose dependencies must not mix with the shared conformance/.work/venv.
conformance_named_venv() {
    local name="$1" req="$2"
    if [[ -z "$name" || -z "$req" || ! -f "$req" ]]; then
        _conf_peer_log "conformance_named_venv: usage: conformance_named_venv NAME REQUIREMENTS (got '$name' '$req')"
        return 1
    fi
    local work="${CONFORMANCE_WORK:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.work}"
    local venv="$work/venv-$name"
    mkdir -p "$work"
    if [[ ! -x "$venv/bin/python" ]]; then
        _conf_peer_log "creating venv $venv"
        python3 -m venv "$venv" || return 1
    fi
    local want stamp="$venv/.requirements.sha256"
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        _conf_peer_log "installing $req into $venv"
        "$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$req" || return 1
        printf '%s\n' "$want" >"$stamp"
    fi
    CONFORMANCE_NAMED_VENV="$venv"
    export CONFORMANCE_NAMED_VENV
}

_conf_peer_on_exit() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    conf_stop_pid "${CONF_SERVER_PID:-}" "${CONF_SERVER:-server}"
    if [[ $status -ne 0 && -n "${CONF_SERVER_LOG:-}" && -f "$CONF_SERVER_LOG" ]]; then
        _conf_peer_log "run failed (exit $status); last lines of the $CONF_SERVER log $CONF_SERVER_LOG:"
        tail -n 40 "$CONF_SERVER_LOG" >&2
    fi
    if [[ -n "${CONF_TMP:-}" && -d "$CONF_TMP" ]]; then
        if [[ "${ALMANAC_CONF_KEEP:-0}" == 1 || $status -ne 0 ]]; then
            _conf_peer_log "kept $CONF_TMP (server log and storage)"
        else
            rm -rf "$CONF_TMP"
        fi
    fi
    exit "$status"
}

# Waits until URL answers an authenticated PROPFIND with 207 while PID lives (30 s at most).
# Returns 0 when up, 1 when the process died, 2 on time-out.
_conf_peer_wait() {
    local pid="$1" url="$2" code
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || return 1
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X PROPFIND -H 'Depth: 0' \
            -H 'Content-Type: application/xml; charset=utf-8' -u "$CONF_USER:$CONF_PASSWORD" \
            --data '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><current-user-principal/></prop></propfind>' \
            "$url" 2>/dev/null)"
        [[ "$code" == 207 ]] && return 0
        sleep 0.1
    done
    return 2
}

# Starts the peer named $1 (radicale|xandikos). See the header for what it exports.
_conf_peer_start() {
    local server="$1"
    conformance_named_venv "$server" "$CONFORMANCE_PEERS_DIR/$server.txt" || return 1
    local venv="$CONFORMANCE_NAMED_VENV"
    trap _conf_peer_on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    CONF_TMP="$(mktemp -d "${TMPDIR:-/tmp}/almanac-conf-$server.XXXXXX")"
    CONF_SERVER_LOG="$CONF_TMP/server.log"
    export CONF_TMP CONF_SERVER_LOG
    local storage="$CONF_TMP/storage"
    mkdir -p "$storage"

    local -a cmd
    case "$server" in
    radicale)
        # htpasswd with plain passwords: one `user:password` line.
        printf '%s:%s\n' "$CONF_USER" "$CONF_PASSWORD" >"$CONF_TMP/users"
        CONF_SERVER_VERSION="radicale $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("radicale"))')"
        ;;
    xandikos)
        CONF_SERVER_VERSION="xandikos $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("xandikos"))')"
        ;;
    esac
    export CONF_SERVER_VERSION

    local attempt port rc
    for attempt in 1 2 3; do
        port="$(_conf_free_port)"
        case "$server" in
        radicale)
            # `--config` with no value: read no configuration file, only these options.
            cmd=("$venv/bin/radicale" --config
                --server-hosts "127.0.0.1:$port"
                --storage-filesystem-folder "$storage/collections"
                --auth-type htpasswd --auth-htpasswd-filename "$CONF_TMP/users"
                --auth-htpasswd-encryption plain
                --logging-level info)
            ;;
        xandikos)
            cmd=("$venv/bin/xandikos" serve -d "$storage/data" --state-dir "$storage/state"
                --defaults --current-user-principal /user/
                -l 127.0.0.1 -p "$port" --no-detect-systemd)
            ;;
        esac
        printf '$ %s\n' "${cmd[*]}" >>"$CONF_SERVER_LOG"
        "${cmd[@]}" >>"$CONF_SERVER_LOG" 2>&1 </dev/null &
        CONF_SERVER_PID=$!
        export CONF_SERVER_PID
        rc=0
        _conf_peer_wait "$CONF_SERVER_PID" "http://127.0.0.1:$port/" || rc=$?
        if [[ $rc == 0 ]]; then
            break
        fi
        if [[ $rc == 2 ]]; then
            _conf_peer_log "$server did not answer an authenticated PROPFIND with 207 within 30 s"
            return 1 # the EXIT trap stops it and shows the log
        fi
        wait "$CONF_SERVER_PID" 2>/dev/null
        CONF_SERVER_PID=""
        if grep -qiE "address already in use|errno 98" "$CONF_SERVER_LOG"; then
            _conf_peer_log "port $port was taken; retrying ($attempt)"
            continue
        fi
        _conf_peer_log "$server exited during start-up"
        tail -n 20 "$CONF_SERVER_LOG" >&2
        return 1
    done
    if [[ $rc != 0 ]]; then
        _conf_peer_log "$server could not be started"
        return 1
    fi
    CONF_URL="http://127.0.0.1:$port/"
    export CONF_URL
    _conf_peer_log "$CONF_SERVER_VERSION serving at $CONF_URL (pid $CONF_SERVER_PID, storage $storage)"
}

# Starts the server named by CONFORMANCE_SERVER (default almanac) for this shell, with the user
# CONF_USER/CONF_PASSWORD, and exports the CONF_* variables (see the header). Call it at most once.
conformance_server_start() {
    local server="${CONFORMANCE_SERVER:-almanac}"
    if [[ -n "${CONF_SERVER:-}" ]]; then
        _conf_peer_log "conformance_server_start called twice"
        return 1
    fi
    CONF_USER="${CONF_USER:-alice}"
    CONF_PASSWORD="${CONF_PASSWORD:-password}"
    export CONF_USER CONF_PASSWORD
    case "$server" in
    almanac)
        almanac_start || return 1
        printf '%s\n' "$CONF_PASSWORD" | almanac_cli user add "$CONF_USER" --password-stdin >/dev/null || {
            _conf_peer_log "almanac user add $CONF_USER failed"
            return 1
        }
        local commit backend
        commit="$(git -C "$CONFORMANCE_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
        # "+dirty": the server's sources differ from that commit (changes elsewhere do not count).
        if [[ -n "$(git -C "$CONFORMANCE_ROOT" status --porcelain -- src migrations Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
            commit="$commit+dirty"
        fi
        backend="${ALMANAC_DB_URL_USED%%://*}"
        CONF_SERVER_VERSION="$("$ALMANAC_BIN" --version 2>/dev/null | head -n1) ($commit, ${backend/postgresql/postgres})"
        CONF_URL="$ALMANAC_URL"
        CONF_TMP="$ALMANAC_CONF_TMP"
        CONF_SERVER_LOG="$ALMANAC_SERVER_LOG"
        CONF_SERVER_PID="$ALMANAC_SERVER_PID"
        export CONF_SERVER_VERSION CONF_URL CONF_TMP CONF_SERVER_LOG CONF_SERVER_PID
        ;;
    radicale | xandikos)
        _conf_peer_start "$server" || return 1
        ;;
    *)
        _conf_peer_log "unknown CONFORMANCE_SERVER=$server (almanac, radicale or xandikos)"
        return 1
        ;;
    esac
    CONF_SERVER="$server"
    export CONF_SERVER
    _conf_peer_log "server: $CONF_SERVER_VERSION at $CONF_URL, user $CONF_USER"
}

# On Almanac: conformance_report (the suite's xfail list applies). On a peer the xfail lists,
# which are about Almanac, do not apply: prints the failures and `N passed, M failed` as counted.
# Exit status 1 when anything failed (unexpectedly, on Almanac).
conformance_server_report() {
    local suite="$1" results="$2"
    if [[ "${CONF_SERVER:-almanac}" == almanac ]]; then
        conformance_report "$suite" "$results"
        return
    fi
    local passed failed
    passed="$(grep -c '^PASS ' "$results" || true)"
    failed="$(grep -c '^FAIL ' "$results" || true)"
    grep '^FAIL ' "$results" | sed 's/^FAIL /PEER-FAILURE /' || true
    echo "$suite on $CONF_SERVER_VERSION (peer; $suite.xfail not applied): $passed passed, $failed failed"
    echo "$passed passed, $failed failed"
    [[ $failed -eq 0 ]]
}

# --- executed: one suite against several servers -------------------------------------------
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -uo pipefail
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    if [[ $# -lt 1 ]]; then
        echo "usage: $0 SUITE [almanac|radicale|xandikos ...]" >&2
        exit 2
    fi
    suite="$1"
    shift
    servers=("$@")
    [[ ${#servers[@]} -gt 0 ]] || servers=(almanac radicale xandikos)
    if [[ ! "$suite" =~ ^[A-Za-z0-9._-]+$ || ! -f "$here/suites/$suite/run.sh" ]]; then
        echo "unknown suite: $suite" >&2
        exit 2
    fi
    mkdir -p "$here/.work/peers"
    overall=0
    rows=()
    for server in "${servers[@]}"; do
        log="$here/.work/peers/$suite-$server.log"
        if [[ "$server" != almanac ]] && ! grep -q conformance_server_start "$here/suites/$suite/run.sh"; then
            rows+=("$(printf '%-10s %-30s %s' "$server" "n/a" "(the suite starts Almanac itself)")")
            continue
        fi
        echo "== $suite on $server (log: $log)" >&2
        CONFORMANCE_SERVER="$server" bash "$here/run.sh" "$suite" >"$log" 2>&1
        rc=$?
        counts="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n1)"
        version="$(sed -n 's/^\[conformance\] server: \(.*\) at http.*/\1/p' "$log" | head -n1)"
        [[ -n "$counts" ]] || counts="no result (exit $rc; see the log)"
        rows+=("$(printf '%-10s %-30s exit %s  %s' "$server" "$counts" "$rc" "$version")")
        [[ "$server" == almanac && $rc -ne 0 ]] && overall=1
    done
    printf '%s\n' "${rows[@]}"
    exit "$overall"
fi
