#!/usr/bin/env bash
# Side-by-side benchmark: Almanac (SQLite and PostgreSQL), Radicale and Xandikos on loopback,
# each measured by examples/bench.rs with the same generated calendar, then one table with the
# ratios Almanac / the better peer.
#
#   bash examples/bench-peers.sh
#
# Environment:
#   BENCH_EVENTS        calendar sizes, one fresh server each (default "1000 10000")
#   BENCH_RUNS          measured runs per operation (default 5)
#   BENCH_SERVERS       default "almanac-sqlite almanac-postgres radicale xandikos"
#   BENCH_SEED          generator seed (default 1)
#   BENCH_GET_REQUESTS  GETs per run in the GET load (default 2000)
#   BENCH_PRELOAD_ABOVE sizes above this (default 2000) time PUT on the last BENCH_PUT_SAMPLE
#   BENCH_PUT_SAMPLE    events only (default 250), on every server; the events before go in
#                       untimed: by PUT on Almanac, at file level on the peers (below)
#   BENCH_POSTGRES      unset (default): almanac-postgres runs on a private, throw-away PostgreSQL
#                       cluster with default settings (autovacuum on, as in production), made here
#                       by initdb (pg_config --bindir, else the newest /usr/lib/postgresql/*/bin),
#                       as the postgres OS user when run as root, trust auth, on 127.0.0.1 and a
#                       free port, its socket in its data directory; stopped and deleted on exit.
#                       postgres://USER@HOST:PORT/DB: the server to create the throw-away database
#                       on instead (dropped afterwards); warns when its autovacuum is off
#   BENCH_NGINX         auto (default): nginx serves the GET event as a static file when installed,
#                       and every server's GET runs are paired with the same load against it;
#                       1: apt-get install nginx when missing; 0: no nginx
#   BENCH_OUT           where the JSON, logs and the table go
#                       (default conformance/.work/bench/YYYYmmdd-HHMMSS)
#   ALMANAC_BIN, BENCH_BIN  use these binaries instead of building them (cargo build --release)
#   BENCH_TABLE_ONLY=1  run nothing: print the table again from BENCH_OUT's results (e.g. of an
#                       interrupted run: a server without results shows n/a)
#
# Radicale and Xandikos come from PyPI, pinned in conformance/peers/*.txt, in the venvs
# conformance/.work/venv-radicale and venv-xandikos (shared with the conformance suites).
# Radicale runs with htpasswd (plain) auth and filesystem storage; Xandikos with its defaults
# (--defaults: no authentication, principal /user/), so the tool sends it no credentials.
# Filling the peers by PUT takes quadratic time: each write gets slower as the calendar grows
# (measured here at 10,000 events: 1.7 PUT/s for Radicale, 1.3 for Xandikos, which commits to
# git per write; about 2 hours each to fill by PUT), so above BENCH_PRELOAD_ABOVE their
# calendar is created with MKCALENDAR and then filled while they are stopped, the way their
# storage keeps items: Radicale one file per item, Xandikos one git commit with all of them.
# The same bytes under the same names as the PUTs would have stored; every query is then
# checked against the same expectation as on Almanac.
# On almanac-postgres the tool waits after the upload, before the timed queries, until the
# database's autovacuum has caught up with the load (examples/pg-settle.sh; the table's notes
# give the wait), as it does by itself a minute or two after a bulk load.
# Each server gets a fresh storage per size; its PID goes to the tool for the peak RSS (for
# almanac-postgres that is Almanac alone, not the PostgreSQL server). Everything started here is
# stopped by PID on exit; the private PostgreSQL cluster by pg_ctl stop -m fast on its data
# directory, which is then deleted (its server log is kept as postgres.log in BENCH_OUT).
#
# Exit status: 1 when an Almanac run failed or one of its answers did not match the tool's
# expectation; a peer's mismatches are shown in the table (marked !) but do not fail the script.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=conformance/lib.sh
. conformance/lib.sh

EVENTS="${BENCH_EVENTS:-1000 10000}"
RUNS="${BENCH_RUNS:-5}"
SERVERS="${BENCH_SERVERS:-almanac-sqlite almanac-postgres radicale xandikos}"
SEED="${BENCH_SEED:-1}"
GET_REQUESTS="${BENCH_GET_REQUESTS:-2000}"
PRELOAD_ABOVE="${BENCH_PRELOAD_ABOVE:-2000}"
PUT_SAMPLE="${BENCH_PUT_SAMPLE:-250}"
PG_URL="${BENCH_POSTGRES:-}" # empty: a private cluster (start_pg_cluster) sets it
NGINX="${BENCH_NGINX:-auto}"
OUT="${BENCH_OUT:-$REPO/conformance/.work/bench/$(date -u +%Y%m%d-%H%M%S)}"
USER_NAME=alice
export BENCH_PASSWORD="bench-$RANDOM$RANDOM"
mkdir -p "$OUT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/almanac-bench.XXXXXX")"
chmod 755 "$TMP"

log() { printf '[bench] %s\n' "$*" >&2; }

SERVER_PID=""
PG_DB=""
PG_BIN=""  # the private cluster's binaries, its directory (data, log) and data directory
PG_DIR=""
PG_DATA=""
NGINX_PID=""
failed=0

stop_pid() {
    conf_stop_pid "$1" "pid $1" 150
}

drop_pg() {
    if [[ -n "$PG_DB" ]]; then
        psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null ||
            log "could not drop database $PG_DB"
        PG_DB=""
    fi
}

# Runs "$@" in $PG_DIR as the owner of the private cluster: the postgres OS user when run as
# root (initdb refuses root), else the caller.
as_pg_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        (cd "$PG_DIR" && runuser -u postgres -- "$@")
    else
        (cd "$PG_DIR" && "$@")
    fi
}

# Prints the directory of the PostgreSQL server binaries (initdb, pg_ctl, postgres).
pg_bindir() {
    local d=""
    if command -v pg_config >/dev/null; then
        d="$(pg_config --bindir 2>/dev/null || true)"
    fi
    if [[ ! -x "$d/initdb" ]]; then
        d="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    fi
    [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] || return 1
    echo "$d"
}

# Creates and starts the private cluster in $TMP/postgres with default settings but for where it
# listens; sets PG_URL to its postgres database.
start_pg_cluster() {
    local port
    PG_BIN="$(pg_bindir)" || {
        log "no PostgreSQL server binaries (initdb, pg_ctl): install postgresql, or set BENCH_POSTGRES"
        return 1
    }
    PG_DIR="$TMP/postgres"
    PG_DATA="$PG_DIR/data"
    mkdir -p "$PG_DIR"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres:postgres "$PG_DIR" || return 1
    fi
    # UTF8 and C.UTF-8 as the shared server has them, whatever the caller's locale.
    if ! as_pg_owner "$PG_BIN/initdb" -D "$PG_DATA" --auth=trust --username=postgres \
        --encoding=UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1; then
        log "initdb failed:"
        tail -n 20 "$PG_DIR/initdb.log" >&2
        return 1
    fi
    port="$(_conf_free_port)"
    {
        echo "# bench-peers.sh: only where this private cluster listens; the rest are the defaults"
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$PG_DATA'"
    } >>"$PG_DATA/postgresql.conf"
    if ! as_pg_owner "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_DIR/postgres.log" -w -t 60 \
        >>"$PG_DIR/pg_ctl.log" 2>&1; then
        log "the private PostgreSQL cluster did not start:"
        tail -n 20 "$PG_DIR/pg_ctl.log" "$PG_DIR/postgres.log" >&2
        return 1
    fi
    PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
    log "private PostgreSQL cluster: $PG_DATA, 127.0.0.1:$port, pid $(head -n 1 "$PG_DATA/postmaster.pid")"
}

# Stops the private cluster (if one was made) by its data directory and deletes it.
# shellcheck disable=SC2317 # run by the EXIT trap
stop_pg_cluster() {
    local pid
    [[ -n "$PG_DIR" ]] || return 0
    if [[ -f "$PG_DATA/postmaster.pid" ]]; then
        pid="$(head -n 1 "$PG_DATA/postmaster.pid")"
        if ! as_pg_owner "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 60 >>"$PG_DIR/pg_ctl.log" 2>&1; then
            log "pg_ctl stop failed on $PG_DATA; stopping pid $pid"
            stop_pid "$pid"
        fi
    fi
    cp "$PG_DIR/postgres.log" "$OUT/postgres.log" 2>/dev/null || true
    rm -rf "$PG_DIR"
    PG_DIR=""
    PG_DATA=""
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    stop_pid "$SERVER_PID"
    stop_pid "$NGINX_PID"
    drop_pg
    stop_pg_cluster
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Prints the header saved at the start of a run and the table of the results in $OUT.
print_table() {
    local meta="$OUT/meta.txt"
    grep -v -e '^sizes: ' -e '^servers: ' "$meta"
    echo "finished: $(date -u '+%Y-%m-%d %H:%M UTC')"
    python3 - "$OUT" "$(sed -n 's/^sizes: //p' "$meta")" "$(sed -n 's/^servers: //p' "$meta")" <<'PY'
import json, os, sys

out, sizes, servers = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
ops = [  # name, label, higher is better
    ("put", "PUT (conc. 8), events/s", True),
    ("propfind_depth1", "PROPFIND Depth 1, ms", False),
    ("query_week", "calendar-query week, ms", False),
    ("query_month", "calendar-query month, ms", False),
    ("multiget_100", "multiget 100, ms", False),
    ("sync_initial", "sync-collection initial, ms", False),
    ("sync_incremental", "sync-collection incr., ms", False),
    ("freebusy_month", "free-busy-query month, ms", False),
    ("get", "GET one event (conc. 16), req/s", True),
    ("rss", "peak RSS, MiB", False),
]
almanacs = [s for s in servers if s.startswith("almanac")]
peers = [s for s in servers if not s.startswith("almanac")]

def load(n, s):
    p = os.path.join(out, f"{n}-{s}.json")
    return json.load(open(p)) if os.path.exists(p) else None

def value(rep, op):
    if rep is None:
        return None
    if op == "rss":
        k = rep.get("peak_rss_kib")
        return k / 1024 if k else None
    for o in rep["operations"]:
        if o["name"] == op:
            return o["median"]
    return None

def failed(rep, op):
    return rep is not None and any(f["operation"] == op for f in rep["checks"]["failures"])

def fmt(v, bad):
    if v is None:
        return "n/a"
    s = f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"
    return s + ("!" if bad else "")

for n in sizes:
    reps = {s: load(n, s) for s in servers}
    nginx = load(n, "nginx")
    cols = servers + [f"{a} / best peer" for a in almanacs if peers]
    print(f"\n{n} events, median of {next((r['runs'] for r in reps.values() if r), '?')} runs "
          "(ratio: times better than the better peer, >1 = Almanac ahead)")
    rows = [["metric"] + cols]
    put_from = max((r.get("put_from", 0) for r in reps.values() if r), default=0)
    for op, label, higher in ops:
        if op == "put" and put_from:
            label = f"PUT events {put_from}..{n}, events/s"
        row = [label]
        for s in servers:
            row.append(fmt(value(reps[s], op), failed(reps[s], op)))
        good = [value(reps[p], op) for p in peers if value(reps[p], op) and not failed(reps[p], op)]
        best = (max(good) if higher else min(good)) if good else None
        for a in almanacs if peers else []:
            v = value(reps[a], op)
            if v and best:
                row.append(f"{(v / best) if higher else (best / v):.1f}x")
            else:
                row.append("n/a")
        rows.append(row)
    if any(value(reps[s], "get_baseline") for s in servers):
        # Paired: each server's GET runs alternated with nginx's (bench.rs --get-baseline).
        row = ["GET: nginx alongside, req/s"] + ["" for _ in cols]
        ratio = ["GET / nginx alongside (median of pairs)"] + ["" for _ in cols]
        for i, s in enumerate(servers):
            row[i + 1] = fmt(value(reps[s], "get_baseline"), failed(reps[s], "get_baseline"))
            v = value(reps[s], "get_vs_baseline")
            ratio[i + 1] = f"{v:.0f}%" if v else "n/a"
        rows += [row, ratio]
    elif nginx:
        # Results of runs before ca8f056: nginx measured once per size, after the servers.
        ng = value(nginx, "get")
        row = ["GET: nginx static file, req/s"] + ["" for _ in cols]
        row[1] = fmt(ng, False)
        rows.append(row)
        for a in almanacs:
            v = value(reps[a], "get")
            if v and ng:
                rows.append([f"GET: {a} / nginx"] + [f"{100 * v / ng:.0f}%"] + ["" for _ in cols[1:]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) + " |")
        if k == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for s, rep in reps.items():
        if rep is None:
            print(f"{s}: no result")
            continue
        fails = rep["checks"]["failures"]
        if fails:
            print(f"{s}: {len(fails)} mismatches (marked !), e.g.:")
            seen = set()
            for f in fails:
                if f["operation"] in seen:
                    continue
                seen.add(f["operation"])
                print(f"  {f['operation']}: {f['detail'][:200]}")
        for note in rep.get("notes", []):
            print(f"{s}: {note}")
print("\nRSS: VmHWM of the server process only (almanac-postgres: without the PostgreSQL server).")
PY
}

if [[ "${BENCH_TABLE_ONLY:-0}" == 1 ]]; then
    [[ -n "${BENCH_OUT:-}" && -f "$OUT/meta.txt" ]] || { log "BENCH_TABLE_ONLY=1 needs BENCH_OUT=DIR of a run"; exit 2; }
    print_table | tee "$OUT/table.md"
    exit 0
fi

# --- binaries and peers --------------------------------------------------------------------
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
if [[ -z "${ALMANAC_BIN:-}" || -z "${BENCH_BIN:-}" ]]; then
    log "building almanac and the bench tool (cargo build --release) ..."
    cargo build --release --quiet --bin almanac --example bench
fi
ALMANAC_BIN="${ALMANAC_BIN:-$TARGET/release/almanac}"
BENCH_BIN="${BENCH_BIN:-$TARGET/release/examples/bench}"

declare -A VERSION
for s in $SERVERS; do
    case "$s" in
    radicale | xandikos)
        conformance_named_venv "$s" "conformance/peers/$s.txt"
        VERSION[$s]="$s $("$CONFORMANCE_NAMED_VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$s'))")"
        ;;
    almanac-sqlite | almanac-postgres)
        commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
        [[ -z "$(git status --porcelain -- src migrations Cargo.toml Cargo.lock 2>/dev/null)" ]] || commit="$commit+dirty"
        VERSION[$s]="$("$ALMANAC_BIN" --version | head -n1) ($commit)"
        ;;
    *)
        log "unknown server $s (almanac-sqlite, almanac-postgres, radicale, xandikos)"
        exit 2
        ;;
    esac
done

if [[ "$NGINX" == 1 ]] && ! command -v nginx >/dev/null; then
    log "installing nginx (BENCH_NGINX=1)"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null
fi
[[ "$NGINX" != 0 ]] && command -v nginx >/dev/null && HAVE_NGINX=1 || HAVE_NGINX=0

# A server with autovacuum off (as test set-ups often are) never prunes the rows every write
# updates nor gathers statistics: Almanac's PostgreSQL figures then degrade with the run's
# length. Hence the private cluster with the defaults unless BENCH_POSTGRES names a server;
# recorded in the header, and warned about.
PG_INFO=""
if [[ " $SERVERS " == *" almanac-postgres "* ]]; then
    if [[ -z "$PG_URL" ]]; then
        start_pg_cluster || exit 1
        pg_where="private cluster, default settings"
    else
        pg_where="external server BENCH_POSTGRES"
    fi
    pg_version="$(psql "$PG_URL" -AtXc 'SHOW server_version' 2>/dev/null || true)"
    pg_autovacuum="$(psql "$PG_URL" -AtXc 'SHOW autovacuum' 2>/dev/null || true)"
    PG_INFO="${pg_version:-unknown version}, autovacuum ${pg_autovacuum:-unknown} ($pg_where)"
    log "postgresql: $PG_INFO"
    if [[ "$pg_autovacuum" == off ]]; then
        log "WARNING: autovacuum is off on $PG_URL: PostgreSQL figures will degrade as tables bloat"
    fi
fi

{
    echo "started: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, $(uname -sr)"
    for s in $SERVERS; do echo "$s: ${VERSION[$s]}"; done
    [[ -n "$PG_INFO" ]] && echo "postgresql: $PG_INFO"
    [[ $HAVE_NGINX == 1 ]] && echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "command: BENCH_EVENTS=\"$EVENTS\" BENCH_RUNS=$RUNS BENCH_SEED=$SEED BENCH_GET_REQUESTS=$GET_REQUESTS BENCH_PRELOAD_ABOVE=$PRELOAD_ABOVE BENCH_PUT_SAMPLE=$PUT_SAMPLE bash examples/bench-peers.sh"
    echo "sizes: $EVENTS"
    echo "servers: $SERVERS"
} >"$OUT/meta.txt"

# --- servers -------------------------------------------------------------------------------
# Waits until $2 answers (curl args in the rest) with $1 while SERVER_PID lives.
wait_up() {
    local want="$1" code
    shift
    for _ in $(seq 1 300); do
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" 2>/dev/null || true)"
        [[ "$code" == "$want" ]] && return 0
        sleep 0.1
    done
    return 1
}

# Starts server $1 in dir $2 on port $3; sets SERVER_PID, URL, AUTH (bench arguments) and
# SETTLE (bench arguments run between the upload and the timed queries).
start_server() {
    local s="$1" dir="$2" port="$3" db_url
    mkdir -p "$dir"
    AUTH=(--user "$USER_NAME" --password-env BENCH_PASSWORD)
    SETTLE=()
    case "$s" in
    almanac-sqlite | almanac-postgres)
        if [[ "$s" == almanac-postgres ]]; then
            PG_DB="almanac_bench_$(date +%s)_$RANDOM"
            psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
            db_url="$(_conf_pg_url_with_db "$PG_URL" "$PG_DB")"
            SETTLE=(--after-load "bash '$REPO/examples/pg-settle.sh' '$db_url'")
        else
            db_url="sqlite://$dir/almanac.db"
        fi
        ALMANAC_LISTEN="127.0.0.1:$port" ALMANAC_DATABASE_URL="$db_url" ALMANAC_LOG=warn NO_COLOR=1 \
            ALMANAC_ADMIN_PASSWORD="$BENCH_PASSWORD" \
            "$ALMANAC_BIN" serve >>"$dir/server.log" 2>&1 </dev/null &
        SERVER_PID=$!
        wait_up 200 "http://127.0.0.1:$port/healthz" || return 1
        printf '%s\n' "$BENCH_PASSWORD" | ALMANAC_DATABASE_URL="$db_url" ALMANAC_LOG=warn \
            "$ALMANAC_BIN" user add "$USER_NAME" --password-stdin >/dev/null
        ;;
    radicale)
        printf '%s:%s\n' "$USER_NAME" "$BENCH_PASSWORD" >"$dir/users"
        "$REPO/conformance/.work/venv-radicale/bin/radicale" --config \
            --server-hosts "127.0.0.1:$port" \
            --storage-filesystem-folder "$dir/collections" \
            --auth-type htpasswd --auth-htpasswd-filename "$dir/users" \
            --auth-htpasswd-encryption plain --logging-level warning \
            >>"$dir/server.log" 2>&1 </dev/null &
        SERVER_PID=$!
        ;;
    xandikos)
        AUTH=()
        "$REPO/conformance/.work/venv-xandikos/bin/xandikos" serve -d "$dir/data" \
            --state-dir "$dir/state" --defaults --current-user-principal /user/ \
            -l 127.0.0.1 -p "$port" --no-detect-systemd >>"$dir/server.log" 2>&1 </dev/null &
        SERVER_PID=$!
        ;;
    esac
    URL="http://127.0.0.1:$port/"
    wait_up 207 -X PROPFIND -H 'Depth: 0' -u "$USER_NAME:$BENCH_PASSWORD" \
        -H 'Content-Type: application/xml; charset=utf-8' \
        --data '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><current-user-principal/></prop></propfind>' \
        "$URL"
}

# Creates the calendar bench-preloaded on the running peer $1 and fills it with events 0..$4 of
# $3 while the peer is stopped (see the header); starts it again on a new port. Sets CAL_URL.
preload_peer() {
    local s="$1" dir="$2" n="$3" m="$4" cal_path store code
    case "$s" in
    radicale)
        cal_path="$USER_NAME/bench-preloaded/"
        store="$dir/collections/collection-root/$USER_NAME/bench-preloaded"
        ;;
    xandikos)
        cal_path="user/calendars/bench-preloaded/"
        store="$dir/data/user/calendars/bench-preloaded"
        ;;
    esac
    code="$(curl -s -o /dev/null -w '%{http_code}' -X MKCALENDAR -u "$USER_NAME:$BENCH_PASSWORD" "$URL$cal_path")"
    if [[ "$code" != 201 ]]; then
        log "MKCALENDAR $URL$cal_path answered $code"
        return 1
    fi
    "$BENCH_BIN" --emit-events "$dir/preload" --events "$n" --put-from "$m" --seed "$SEED" 2>/dev/null
    stop_pid "$SERVER_PID"
    SERVER_PID=""
    if [[ ! -d "$store" ]]; then
        log "$s: no $store after MKCALENDAR"
        return 1
    fi
    find "$dir/preload" -name '*.ics' -exec cp -t "$store" {} +
    if [[ "$s" == xandikos ]]; then
        git -C "$store" add -A . &&
            git -C "$store" -c user.name=bench -c user.email=bench@localhost commit -q -m "preload $m events"
    fi
    rm -rf "$dir/preload"
    start_server "$s" "$dir" "$(_conf_free_port)" || return 1
    CAL_URL="$URL$cal_path"
}

start_nginx() {
    local dir="$1" port="$2"
    mkdir -p "$dir/www" "$dir/tmp"
    "$BENCH_BIN" --emit-event "$dir/www/event.ics" --seed "$SEED" 2>/dev/null
    local user_line=""
    [[ "$(id -u)" == 0 ]] && user_line="user root;"
    cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes auto;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 100000;
    types { text/calendar ics; }
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server { listen 127.0.0.1:$port; root $dir/www; }
}
EOF
    nginx -p "$dir" -c "$dir/nginx.conf" >>"$dir/server.log" 2>&1 </dev/null &
    NGINX_PID=$!
    for _ in $(seq 1 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$port/event.ics" && return 0
        sleep 0.1
    done
    return 1
}

# --- the runs ------------------------------------------------------------------------------
log "results in $OUT"
for n in $EVENTS; do
    # nginx serves the GET event as a static file while the servers run: each server's GET runs
    # are paired with the same load against it (the tool's --get-baseline), a second apart.
    BASELINE=()
    if [[ $HAVE_NGINX == 1 ]]; then
        ndir="$TMP/$n-nginx"
        nport="$(_conf_free_port)"
        log "== nginx, static copy of the GET event: the GET loads' baseline at $n events"
        if start_nginx "$ndir" "$nport"; then
            BASELINE=(--get-baseline "http://127.0.0.1:$nport/event.ics")
        else
            log "nginx did not start: $(tail -n 3 "$ndir/error.log" "$ndir/server.log" 2>/dev/null)"
            stop_pid "$NGINX_PID"
            NGINX_PID=""
        fi
    fi
    for s in $SERVERS; do
        dir="$TMP/$n-$s"
        port="$(_conf_free_port)"
        log "== $s, $n events (${VERSION[$s]})"
        if ! start_server "$s" "$dir" "$port"; then
            log "$s did not start; last lines of its log:"
            tail -n 20 "$dir/server.log" >&2 || true
            stop_pid "$SERVER_PID"
            SERVER_PID=""
            drop_pg
            [[ "$s" == almanac-* ]] && failed=1
            continue
        fi
        target=(--url "$URL")
        put_args=()
        if ((n > PRELOAD_ABOVE && n > PUT_SAMPLE)); then
            m=$((n - PUT_SAMPLE))
            put_args=(--put-from "$m")
            if [[ "$s" == radicale || "$s" == xandikos ]]; then
                log "$s: events 0..$m loaded at file level; PUT timed for $m..$n"
                if ! preload_peer "$s" "$dir" "$n" "$m"; then
                    log "$s: preloading failed; last lines of its log:"
                    tail -n 20 "$dir/server.log" >&2 || true
                    stop_pid "$SERVER_PID"
                    SERVER_PID=""
                    continue
                fi
                target=(--calendar "$CAL_URL" --preloaded)
            fi
        fi
        rc=0
        "$BENCH_BIN" "${target[@]}" "${AUTH[@]}" --events "$n" --runs "$RUNS" --seed "$SEED" \
            --get-requests "$GET_REQUESTS" --pid "$SERVER_PID" --label "$s" "${put_args[@]}" "${SETTLE[@]}" \
            "${BASELINE[@]}" \
            --json "$OUT/$n-$s.json" >"$OUT/$n-$s.txt" 2>"$OUT/$n-$s.log" || rc=$?
        cat "$OUT/$n-$s.txt"
        if [[ $rc != 0 ]]; then
            log "$s at $n events: the tool exited $rc (see $OUT/$n-$s.log)"
            tail -n 5 "$OUT/$n-$s.log" >&2
            [[ "$s" == almanac-* ]] && failed=1
        fi
        stop_pid "$SERVER_PID"
        SERVER_PID=""
        cp "$dir/server.log" "$OUT/$n-$s.server.log" 2>/dev/null || true
        drop_pg
        rm -rf "$dir"
    done
    stop_pid "$NGINX_PID"
    NGINX_PID=""
done

# --- the table -----------------------------------------------------------------------------
print_table | tee "$OUT/table.md"
log "table: $OUT/table.md"
exit "$failed"
