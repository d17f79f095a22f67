#!/usr/bin/env bash
# Runs one conformance suite: conformance/run.sh SUITE
# The exit code is the suite's. Suites live in conformance/suites/SUITE/run.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -lt 1 ]]; then
    echo "usage: $0 SUITE [ARGS...]" >&2
    echo "suites:" >&2
    for d in "$here"/suites/*/; do
        [[ -f "$d/run.sh" ]] && echo "  $(basename "$d")" >&2
    done
    exit 2
fi
suite="$1"
shift
if [[ ! "$suite" =~ ^[A-Za-z0-9._-]+$ || ! -f "$here/suites/$suite/run.sh" ]]; then
    echo "unknown suite: $suite" >&2
    exit 2
fi
exec bash "$here/suites/$suite/run.sh" "$@"
