#!/usr/bin/env bash
# python-caldav's own functional test suite, from the pinned sdist, against a fresh server.
#   SQLite (default):  conformance/run.sh python-caldav
#   PostgreSQL:        ALMANAC_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test conformance/run.sh python-caldav
#   a peer server:     CONFORMANCE_SERVER=radicale|xandikos conformance/run.sh python-caldav
#   debugging:         conformance/run.sh python-caldav tests/test_caldav.py -k testSearchEvent -x -vv
#                      (extra arguments go to pytest, run in the unpacked sdist, in place of
#                      the suite's selection, so name the test file; the results are printed
#                      but not compared with the xfail list; add PYTHON_CALDAV_COMMDUMP=1 to
#                      keep every request/response the library sends, one file each, in the
#                      run directory's out/commdump/)
#
# The caldav version is the one pinned in ../python-caldav-e2e/requirements.txt; the sdist of
# that version is fetched once with `pip download --no-binary :all: --no-deps`, checked against
# sdist.sha256, and its tests/, examples/ and docs/source/tutorial.rst are unpacked afresh into
# conformance/.work/python-caldav/run-SERVER/src/ on every run, with conf_private.py (the server
# configuration and Almanac's feature claims) and conftest.py (binds TestProxy's proxy to
# 127.0.0.1 on a free port) copied into tests/. Tests run against the installed caldav==VERSION.
#
# Selection: tests/test_caldav.py (all of it: the functional tests parametrised for the server,
# get_davclient, the proxy tests), tests/test_examples.py (the examples against the server) and
# tests/test_docs.py (the tutorial run as a doctest against the server). Not selected: the unit
# test files (no server involved). Deselected, and listed as skipped:
# test_examples.py::test_rfc8764_test_conf, which does DNS SRV/TXT and HTTPS .well-known look-ups
# for the public domains named in caldav's compatibility hints (no network here but loopback).
#
# Output: one `PASS <id>` / `FAIL <id> ...` line per pytest node id goes to the results file and
# through conformance_server_report (conformance/expected/python-caldav.xfail on Almanac);
# skipped tests are printed as `SKIP <id>  <reason>` and never counted as passed. Everything of
# the last run (pytest log, JUnit XML, results, skips) stays in conformance/.work/python-caldav/run-SERVER/out/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../lib.sh
. "$here/../../lib.sh"

e2e_req="$here/../python-caldav-e2e/requirements.txt"
version="$(sed -n 's/^caldav==\([0-9A-Za-z.+-]*\).*/\1/p' "$e2e_req")"
if [[ -z "$version" ]]; then
    echo "no caldav==VERSION pin in $e2e_req" >&2
    exit 1
fi
conformance_venv "$e2e_req"
conformance_venv "$here/requirements.txt"
installed="$("$CONFORMANCE_PYTHON" -c 'import importlib.metadata as m; print(m.version("caldav"))')"
if [[ "$installed" != "$version" ]]; then
    echo "the venv has caldav $installed, the pin is $version" >&2
    exit 1
fi

work="$CONFORMANCE_WORK/python-caldav"
mkdir -p "$work"
sdist="$work/caldav-$version.tar.gz"
if ! grep -q " caldav-$version.tar.gz\$" "$here/sdist.sha256"; then
    echo "caldav is pinned at $version but $here/sdist.sha256 has no checksum for caldav-$version.tar.gz;" >&2
    echo "download it once, check it against PyPI's published sha256, and record it there" >&2
    exit 1
fi
if [[ ! -f "$sdist" ]]; then
    _conf_log "downloading the caldav $version sdist from PyPI"
    dl="$(mktemp -d "$work/download.XXXXXX")"
    "$CONFORMANCE_PYTHON" -m pip download --disable-pip-version-check --quiet \
        --no-binary :all: --no-deps "caldav==$version" -d "$dl"
    mv "$dl/caldav-$version.tar.gz" "$sdist"
    rm -rf "$dl"
fi
if ! (cd "$work" && sha256sum --quiet -c <(grep " caldav-$version.tar.gz\$" "$here/sdist.sha256")); then
    echo "checksum mismatch for $sdist (removed; the next run downloads it again)" >&2
    rm -f "$sdist"
    exit 1
fi

# One directory per server, so runs against different servers do not share files (two runs
# against the same server at once are not supported).
run_dir="$work/run-${CONFORMANCE_SERVER:-almanac}"
src="$run_dir/src"
out="$run_dir/out"
rm -rf "$run_dir"
mkdir -p "$src" "$out"
tar -xzf "$sdist" -C "$src" --strip-components=1 \
    "caldav-$version/tests" "caldav-$version/examples" "caldav-$version/docs/source/tutorial.rst"
cp "$here/conf_private.py" "$here/conftest.py" "$src/tests/"


conformance_server_start
if [[ "$CONF_SERVER" == xandikos ]]; then
    # Xandikos runs without authentication (see peers.sh); the library's own configuration for
    # it gives no password, which skips the wrong-password tests instead of failing them.
    export CONF_PASSWORD=""
fi
export CONF_URL CONF_USER CONF_PASSWORD CONF_SERVER

# The library's default login sends each new connection's first request without credentials and
# repeats it after the 401 on the same connection. early_401_check.py checks, deterministically,
# that a server which answers 401 before reading the request body either keeps the connection
# usable or says `Connection: close` (its result is part of the results). When it fails, the
# close races the client's retry and random tests die with "Remote end closed connection without
# response": then pytest runs with credentials sent on every request (CONF_AUTH_TYPE=basic for
# the configured client, CALDAV_AUTH_TYPE=basic for the clients the tests build from CALDAV_*),
# so one known bug does not turn into random failures elsewhere. Once the check passes, pytest
# is back on the library's default login.
results_pre="$out/results-http.txt"
: >"$results_pre"
early_rc=0
"$CONFORMANCE_PYTHON" "$here/early_401_check.py" "$CONF_URL" "$CONF_USER" "$CONF_PASSWORD" "$results_pre" \
    | tee "$out/skipped-http.txt" || early_rc=$?
case "$early_rc" in
0) ;;
1)
    _conf_log "early-401 check failed: pytest sends credentials on every request (CONF_AUTH_TYPE=basic)"
    export CONF_AUTH_TYPE=basic CALDAV_AUTH_TYPE=basic
    ;;
*)
    echo "early_401_check.py could not run (exit $early_rc)" >&2
    exit 1
    ;;
esac
grep '^SKIP ' "$out/skipped-http.txt" >"$out/skipped-http.tmp" || true
mv "$out/skipped-http.tmp" "$out/skipped-http.txt"
# DEVELOPMENT makes the library raise on protocol deviations it would only log in PRODUCTION
# (the mode a release version picks by itself; a checkout's "dev" version picks DEVELOPMENT).
export PYTHON_CALDAV_DEBUGMODE=DEVELOPMENT
if [[ -n "${PYTHON_CALDAV_COMMDUMP:-}" ]]; then
    # The library writes each exchange to a NamedTemporaryFile: keep them with the run.
    mkdir -p "$out/commdump"
    export TMPDIR="$out/commdump"
fi

deselect_id="tests/test_examples.py::TestExamples::test_rfc8764_test_conf"
deselect_reason="DNS SRV/TXT and HTTPS .well-known look-ups for public domains (no network but loopback)"
if [[ $# -gt 0 ]]; then
    selection=("$@")
    deselected=()
else
    selection=(tests/test_caldav.py tests/test_examples.py tests/test_docs.py --deselect "$deselect_id")
    deselected=("$deselect_id" "$deselect_reason")
fi

_conf_log "pytest (caldav $version tests) against $CONF_SERVER_VERSION; log: $out/pytest.log"
rc=0
(cd "$src" && "$CONFORMANCE_PYTHON" -m pytest -p no:cacheprovider -rA -q --color=no \
    --junitxml="$out/junit.xml" -o junit_family=xunit2 "${selection[@]}") >"$out/pytest.log" 2>&1 || rc=$?
tail -n 1 "$out/pytest.log"
# 0: all passed, 1: some failed; anything else (interrupted, internal error, usage error, no
# tests collected) means the run itself is broken.
if [[ $rc -ne 0 && $rc -ne 1 ]]; then
    echo "pytest exited with $rc; see $out/pytest.log" >&2
    tail -n 30 "$out/pytest.log" >&2
    exit 1
fi

"$CONFORMANCE_PYTHON" "$here/junit_results.py" "$out/junit.xml" "$src" \
    "$out/results.txt" "$out/skipped.txt" "${deselected[@]}"
cat "$results_pre" >>"$out/results.txt"
cat "$out/skipped-http.txt" >>"$out/skipped.txt"
rm -f "$results_pre" "$out/skipped-http.txt"
if [[ $# -gt 0 ]]; then
    cat "$out/results.txt"
    echo "(pytest arguments given: results not compared with python-caldav.xfail)"
    exit "$rc"
fi
conformance_server_report python-caldav "$out/results.txt"
