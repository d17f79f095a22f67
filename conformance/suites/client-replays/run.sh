#!/usr/bin/env bash
# Client replays: the discovery, first-sync and incremental-sync request sequences of
# Thunderbird, Apple Calendar (macOS CalendarAgent/accountsd, iOS dataaccessd), DAVx5 and
# Evolution, replayed at the HTTP level with the clients' own headers and XML bodies, asserting
# at every step what the client's code needs of the answer. The scenarios are Rust integration
# tests (tests/it/replay.rs, run by `cargo test --test it -- replay::`); each trial
# (scenario::backend) is one check of this suite.
#   SQLite only:       conformance/run.sh client-replays
#   SQLite + Postgres: ALMANAC_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test conformance/run.sh client-replays
#                      (ALMANAC_DATABASE_URL=postgres://... works as well, as in the other suites;
#                      each trial gets a fresh database there, dropped afterwards)
# Known failures: conformance/expected/client-replays.xfail.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
suite="$(basename "$here")"
# shellcheck source=../../lib.sh
. "$here/../../lib.sh"

if [[ -z "${ALMANAC_TEST_POSTGRES:-}" ]]; then
    case "${ALMANAC_DATABASE_URL:-}" in
    postgres://* | postgresql://*) export ALMANAC_TEST_POSTGRES="$ALMANAC_DATABASE_URL" ;;
    esac
fi
if [[ -n "${ALMANAC_TEST_POSTGRES:-}" ]]; then
    _conf_log "$suite: SQLite and PostgreSQL trials"
else
    _conf_log "$suite: SQLite trials only (set ALMANAC_TEST_POSTGRES for PostgreSQL)"
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/almanac-$suite.XXXXXX")"
status=0
cleanup() {
    # Kept when the run failed: the full cargo output is the place to read a failure.
    if [[ $status -eq 0 && "${ALMANAC_CONF_KEEP:-0}" != 1 ]]; then
        rm -rf "$tmp"
    else
        _conf_log "kept $tmp (cargo output in $tmp/cargo-test.log)"
    fi
}
trap cleanup EXIT

log="$tmp/cargo-test.log"
results="$tmp/results.txt"
cargo_status=0
(cd "$CONFORMANCE_ROOT" && cargo test --test it -- replay:: --color never) >"$log" 2>&1 ||
    cargo_status=$?

# libtest lines: `test replay::NAME::BACKEND ... ok|FAILED|ignored`. Ignored trials (PostgreSQL
# without ALMANAC_TEST_POSTGRES) are not checks of this run. A failure's detail is the first line
# of its panic message (from the `---- replay::NAME::BACKEND ----` section).
awk '
    /^---- replay::[A-Za-z0-9_:]+ ----$/ {
        id = $2; sub(/^replay::/, "", id); want = id; next
    }
    want != "" {
        line = $0; sub(/^test panicked: /, "", line); gsub(/[[:space:]]+/, " ", line)
        detail[want] = line; want = ""
    }
    /^test replay::[A-Za-z0-9_:]+ +\.\.\. (ok|FAILED)$/ {
        id = $2; sub(/^replay::/, "", id)
        order[++n] = id; verdict[id] = ($NF == "ok") ? "PASS" : "FAIL"
    }
    END {
        for (i = 1; i <= n; i++) {
            id = order[i]
            if (verdict[id] == "PASS") print "PASS " id
            else print "FAIL " id (detail[id] != "" ? " " detail[id] : "")
        }
    }
' "$log" >"$results"

if ! grep -q '^test result: ' "$log" || [[ ! -s "$results" ]]; then
    echo "$suite: cargo test did not run the replays (exit $cargo_status); last output:" >&2
    tail -n 60 "$log" >&2
    status=1
    exit 1
fi
if grep -q '^FAIL ' "$results"; then
    # The assertion messages carry the whole request/response; show them.
    sed -n '/^failures:$/,/^test result: /p' "$log" | sed -n '/^---- /,$p' >&2 || true
fi
conformance_report "$suite" "$results" || status=$?
exit "$status"
