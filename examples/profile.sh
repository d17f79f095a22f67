#!/usr/bin/env bash
# CPU profile of one CalDAV operation on a running Almanac: samples the server process with
# `perf record` while the operation is repeated, then writes a flamegraph (SVG) and prints the
# functions where the samples fall, by self and by inclusive time.
#
#   bash examples/profile.sh CALENDAR_URL USER PASSWORD PID OPERATION [SECONDS]
#
# CALENDAR_URL  a calendar filled by the bench tool (`--keep`), e.g.
#               http://127.0.0.1:18777/calendars/alice/bench-1-…/
# PID           the almanac process (perf samples it only, not the client)
# OPERATION     propfind | week | month | multiget | freebusy | get
# SECONDS       how long to sample (default 8)
#
# GET runs under the bench tool's keep-alive load ($BENCH_BIN, default the release build);
# the others are repeated with curl, four at a time.
# Needs perf (Debian: linux-perf) and inferno (`cargo install inferno`). Output goes to
# $PROFILE_OUT (default conformance/.work/profiles): OPERATION.data, .folded, .svg, .txt.
# Call graphs come from DWARF unwinding (release builds keep line tables), which costs the
# server time while sampling: read the proportions, not the request rate, off a profile.
set -euo pipefail
if [[ $# -lt 5 ]]; then
    sed -n '2,/^set -e/p' "$0" | grep '^#'
    exit 2
fi
CAL="${1%/}/"
USER_NAME="$2"
PASS="$3"
PID="$4"
OP="$5"
SECS="${6:-8}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${PROFILE_OUT:-$REPO/conformance/.work/profiles}"
mkdir -p "$OUT"
for tool in perf inferno-collapse-perf inferno-flamegraph curl python3; do
    command -v "$tool" >/dev/null || { echo "profile: $tool not found" >&2; exit 2; }
done

DAV='xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"'
range() {
    echo "<C:calendar-query $DAV><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name=\"VCALENDAR\"><C:comp-filter name=\"VEVENT\"><C:time-range start=\"$1\" end=\"$2\"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
}
listing() {
    curl -sf -u "$USER_NAME:$PASS" -X PROPFIND -H 'Depth: 1' \
        --data-binary "<D:propfind $DAV><D:prop><D:getetag/></D:prop></D:propfind>" "$CAL" |
        grep -o '<D:href>[^<]*\.ics</D:href>' | sed 's/<[^>]*>//g'
}
method=REPORT
depth=1
case "$OP" in
    propfind)
        method=PROPFIND
        body="<D:propfind $DAV><D:prop><D:resourcetype/><D:getetag/><D:getcontenttype/></D:prop></D:propfind>"
        ;;
    week) body="$(range 20261026T000000Z 20261102T000000Z)" ;;
    month) body="$(range 20260301T000000Z 20260401T000000Z)" ;;
    freebusy)
        body="<C:free-busy-query $DAV><C:time-range start=\"20260301T000000Z\" end=\"20260401T000000Z\"/></C:free-busy-query>"
        ;;
    multiget)
        hrefs="$(listing | sed -n 1,100p | sed 's|.*|<D:href>&</D:href>|' | tr -d '\n')"
        body="<C:calendar-multiget $DAV><D:prop><D:getetag/><C:calendar-data/></D:prop>$hrefs</C:calendar-multiget>"
        ;;
    get)
        method=GET
        body=""
        target="$(listing | sed -n 1p)"
        ;;
    *)
        echo "profile: unknown operation $OP" >&2
        exit 2
        ;;
esac
url="$CAL"
if [[ "$OP" == get ]]; then
    url="$(printf '%s' "$CAL" | sed -E 's|^(https?://[^/]+).*|\1|')$target"
fi

perf record -F 999 -g --call-graph dwarf,16384 -p "$PID" -o "$OUT/$OP.data" -- sleep "$SECS" \
    >/dev/null 2>&1 &
perf_pid=$!
sleep 0.5
count=0
end=$((SECONDS + SECS - 1))
if [[ "$method" == GET ]]; then
    # GET is measured under keep-alive load by the bench tool, so profile it the same way.
    bench="${BENCH_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/examples/bench}"
    [[ -x "$bench" ]] || { echo "profile: build the bench tool first ($bench)" >&2; exit 2; }
    "$bench" --get-only "$url" --user "$USER_NAME" --password "$PASS" --runs 1000 \
        --get-requests 2000 >/dev/null 2>&1 &
    load=$!
    sleep "$SECS"
    kill "$load" 2>/dev/null || true
    wait "$load" 2>/dev/null || true
    count="keep-alive load"
fi
while ((SECONDS < end)); do
    # Four requests in parallel keep both cores of a small machine busy with the server.
    clients=()
    for _ in 1 2 3 4; do
        if [[ "$method" == GET ]]; then
            curl -sf -o /dev/null -u "$USER_NAME:$PASS" "$url" &
        else
            curl -sf -o /dev/null -u "$USER_NAME:$PASS" -X "$method" -H "Depth: $depth" \
                -H 'Content-Type: application/xml' --data-binary "$body" "$url" &
        fi
        clients+=("$!")
    done
    wait "${clients[@]}" || true
    count=$((count + 4))
done
wait "$perf_pid" || true
perf script -i "$OUT/$OP.data" 2>/dev/null | inferno-collapse-perf >"$OUT/$OP.folded"
inferno-flamegraph --title "almanac $OP" <"$OUT/$OP.folded" >"$OUT/$OP.svg"
python3 - "$OUT/$OP.folded" "$count" >"$OUT/$OP.txt" <<'PY'
import collections, sys
folded, count = sys.argv[1], sys.argv[2]
own, incl, total = collections.Counter(), collections.Counter(), 0
for line in open(folded):
    stack, _, n = line.rstrip().rpartition(" ")
    n = int(n)
    total += n
    frames = stack.split(";")
    own[frames[-1]] += n
    for f in set(frames):
        incl[f] += n
print(f"{count} requests, {total} samples")
print("self time:")
for f, n in own.most_common(25):
    print(f"  {100 * n / total:5.1f}%  {f[:140]}")
print("inclusive time, almanac and SQLite functions:")
shown = 0
for f, n in incl.most_common():
    if ("almanac::" in f or f.startswith("sqlite3")) and "{{closure}}" not in f:
        print(f"  {100 * n / total:5.1f}%  {f[:140]}")
        shown += 1
        if shown == 25:
            break
PY
cat "$OUT/$OP.txt"
echo "profile: flamegraph in $OUT/$OP.svg"
