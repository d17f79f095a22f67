#!/usr/bin/env bash
# CI smoke run of the benchmark tool (examples/bench.rs) against a throw-away Almanac: a small
# calendar, one run. It checks that the tool runs end to end and that every answer matches the
# tool's own expectation; it asserts no timing (figures on a shared CI machine mean nothing).
#
#   bash examples/bench-smoke.sh                                   # SQLite
#   ALMANAC_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test bash examples/bench-smoke.sh
#
# Fails when the tool errors, a check fails, or an operation has no sample. Twice: once given the
# base URL (discovery) and once given the calendar-home URL; the GET load paired with the same
# load against a static copy of the event (python3 -m http.server), as bench-peers.sh does with
# nginx.
# Environment: BENCH_SMOKE_EVENTS (default 200: enough for several events in each query window),
# ALMANAC_BIN / BENCH_BIN to skip building, and lib.sh's (ALMANAC_DATABASE_URL, CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=conformance/lib.sh
. conformance/lib.sh

if [[ -z "${BENCH_BIN:-}" ]]; then
    echo "[bench-smoke] building the bench tool (cargo build --release --example bench) ..." >&2
    cargo build --release --quiet --example bench
    BENCH_BIN="${CARGO_TARGET_DIR:-$CONFORMANCE_ROOT/target}/release/examples/bench"
fi
ALMANAC_LOG="${ALMANAC_LOG:-warn}" almanac_start
export BENCH_PASSWORD="smoke-$RANDOM$RANDOM"
printf '%s\n' "$BENCH_PASSWORD" | almanac_cli user add bench --password-stdin >/dev/null

# The GET event as a static file, for the paired GET baseline (--get-baseline), as
# bench-peers.sh does with nginx.
mkdir -p "$ALMANAC_CONF_TMP/static"
"$BENCH_BIN" --emit-event "$ALMANAC_CONF_TMP/static/event.ics" 2>/dev/null
static_port="$(_conf_free_port)"
python3 -m http.server --bind 127.0.0.1 --directory "$ALMANAC_CONF_TMP/static" "$static_port" \
    >/dev/null 2>&1 </dev/null &
STATIC_PID=$!
trap 's=$?; conf_stop_pid "$STATIC_PID" static; (exit $s); _conf_on_exit' EXIT
baseline="http://127.0.0.1:$static_port/event.ics"
for _ in $(seq 1 100); do
    curl -fs -o /dev/null "$baseline" && break
    sleep 0.1
done

events="${BENCH_SMOKE_EVENTS:-200}"
for url in "$ALMANAC_URL" "${ALMANAC_URL}calendars/bench/"; do
    json="$ALMANAC_CONF_TMP/bench-$RANDOM.json"
    echo "[bench-smoke] $events events against $url" >&2
    "$BENCH_BIN" --url "$url" --user bench --password-env BENCH_PASSWORD --events "$events" \
        --runs 1 --get-requests 200 --pid "$ALMANAC_SERVER_PID" --json "$json" \
        --get-baseline "$baseline"
    python3 - "$json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
want = ["put", "propfind_depth1", "query_week", "query_month", "multiget_100", "sync_initial",
        "sync_incremental", "freebusy_month", "get", "get_baseline", "get_vs_baseline"]
have = {o["name"]: o["samples"] for o in r["operations"]}
missing = [w for w in want if not have.get(w)]
problems = []
if missing:
    problems.append(f"operations without a sample: {', '.join(missing)}")
if r["checks"]["failures"] or not r["ok"]:
    problems.append(f"{len(r['checks']['failures'])} checks failed")
if r["checks"]["passed"] < len(want) - 2:  # put and get_vs_baseline are measured, not checked
    problems.append(f"only {r['checks']['passed']} checks ran")
if min(r["expected"].get("query_week", 0), r["expected"].get("query_month", 0)) == 0:
    problems.append(f"a query window holds no event, its check proves nothing: {r['expected']}")
if not r.get("peak_rss_kib"):
    problems.append("no peak RSS")
for p in problems:
    print(f"[bench-smoke] FAIL: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
done
echo "[bench-smoke] ok" >&2
