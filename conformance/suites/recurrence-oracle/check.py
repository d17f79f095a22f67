#!/usr/bin/env python3
"""Recurrence oracle: calendar-query time-range results vs. python `recurring-ical-events`.

    check.py EVENTS_DIR      (environment: ORACLE_URL, ORACLE_USER, ORACLE_PASSWORD)

1. MKCALENDAR /calendars/USER/bench/ and PUT every EVENTS_DIR/*.ics there (If-None-Match: *,
   8 requests in flight); meanwhile two worker processes (nice 19) compute the oracle's answers,
   or take them from conformance/.work/recurrence-oracle/ when a previous run had exactly the
   same inputs (files, this code, library versions, zone data); ORACLE_NO_CACHE=1 recomputes.
2. For each window, a calendar-query REPORT (Depth: 1, DAV:getetag, comp-filter VCALENDAR /
   VEVENT / time-range) and a comparison of the returned hrefs with the oracle's set of files.
3. Per-window counts and timings; on a mismatch up to 10 files with their recurrence data and the
   oracle's occurrences near the window. Last line `N passed, M failed`; exit 1 on any failure.

THE ORACLE AND RFC 4791 §9.9
----------------------------
A file belongs in a window [S, E) iff one of its VEVENT occurrences overlaps it by RFC 4791 §9.9:
    S < end AND E > start      for an occurrence with a positive length
    S <= start AND E > start   for a zero-length occurrence (DATE-TIME DTSTART without DTEND or
                               DURATION, or DURATION:PT0S)
with start and end as UTC instants; floating times and DATE values are taken as UTC, as the
server does for a calendar without CALDAV:calendar-timezone.

Which occurrences exist (RRULE with COUNT/UNTIL, RDATE, EXDATE, RECURRENCE-ID overrides) is
entirely `recurring_ical_events.of(calendar).between(...)`'s answer. Its own span test
(`time_span_contains_event`) is the same rule as §9.9, but three details are settled here, on
our side, so that the comparison follows the RFCs exactly:

  * the oracle is asked for a window widened by 3 days on each side and its occurrences are
    then filtered with the §9.9 rule above, so no boundary behaviour of the library matters;
  * the end of an occurrence is recomputed from the component that produced it: for an RRULE /
    RDATE instance of a master with DTEND, the master's EXACT duration (RFC 5545 §3.8.5.3: "the
    same exact duration will apply to all the members"), i.e. DTEND - DTSTART as instants; with
    DURATION, the NOMINAL duration (RFC 5545 §3.3.6: days and weeks in wall-clock time of the
    instance's zone, hours/minutes/seconds exact); with neither, one day for a DATE and zero
    length for a DATE-TIME (RFC 5545 §3.6.1). An override uses its own DTSTART/DTEND/DURATION.
    (The library computes ends with Python's wall-clock datetime arithmetic, which differs from
    this around DST transitions.);
  * a wall-clock time is turned into UTC by RFC 5545 §3.3.5: a time in a spring-forward gap
    uses the UTC offset in force before the gap, an ambiguous time its first occurrence. (The
    library keeps dateutil's zone for a VTIMEZONE it does not know by name -- our Outlook-style
    "W. Europe Standard Time" -- and that zone puts gap times after the gap.)
"""

import base64
import collections
import concurrent.futures
import datetime as dt
import hashlib
import http.client
import importlib.metadata
import json
import multiprocessing
import os
import re
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
import zoneinfo

import icalendar
import recurring_ical_events

from windows import WINDOWS

UTC = dt.timezone.utc
WIDEN = dt.timedelta(days=3)


# --------------------------------------------------------------------------------------------
# Raw iCalendar lines (for DURATION text, which icalendar normalises, and for reports)


def unfold(data):
    text = data.decode("utf-8").replace("\r\n", "\n")
    return re.sub(r"\n[ \t]", "", text).split("\n")


def raw_vevents(data):
    """[(recurrence-id raw value or None, {NAME: [raw line, ...]})] for each VEVENT."""
    out, cur, depth = [], None, 0
    for line in unfold(data):
        if line == "BEGIN:VEVENT":
            cur, depth = collections.defaultdict(list), 1
            continue
        if cur is None:
            continue
        if line.startswith("BEGIN:"):
            depth += 1
        elif line.startswith("END:"):
            depth -= 1
            if depth == 0:
                rid = cur["RECURRENCE-ID"][0].split(":", 1)[1] if cur.get("RECURRENCE-ID") else None
                out.append((rid, cur))
                cur = None
            continue
        if depth == 1:
            name = re.split(r"[;:]", line, maxsplit=1)[0].upper()
            cur[name].append(line)
    return out


DURATION_RE = re.compile(r"^([+-])?P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def parse_duration(text):
    """(nominal days, exact seconds) of an RFC 5545 duration."""
    m = DURATION_RE.match(text.strip())
    if not m:
        raise ValueError(f"bad DURATION {text!r}")
    sign = -1 if m.group(1) == "-" else 1
    w, d, h, mi, s = (int(x) if x else 0 for x in m.groups()[1:])
    return sign * (7 * w + d), sign * (3600 * h + 60 * mi + s)


# --------------------------------------------------------------------------------------------
# Time arithmetic by the RFCs (results are naive datetimes in UTC)


def wall_to_utc(wall, tz):
    """RFC 5545 §3.3.5: gap -> offset before the gap; ambiguous -> first occurrence."""
    if tz is None:
        return wall
    offsets = set()
    for probe in (wall, wall - dt.timedelta(days=1), wall + dt.timedelta(days=1)):
        for fold in (0, 1):
            off = probe.replace(tzinfo=tz, fold=fold).utcoffset()
            if off is not None:
                offsets.add(off)
    valid = sorted(
        wall - off for off in offsets if (wall - off).replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None) == wall
    )
    if valid:
        return valid[0]
    return wall - (wall - dt.timedelta(days=1)).replace(tzinfo=tz).utcoffset()


def is_date(v):
    return isinstance(v, dt.date) and not isinstance(v, dt.datetime)


def instant(v):
    """UTC instant of a DATE (midnight UTC), floating (as UTC) or zoned DATE-TIME."""
    if is_date(v):
        return dt.datetime(v.year, v.month, v.day)
    if v.tzinfo is None:
        return v
    return wall_to_utc(v.replace(tzinfo=None), v.tzinfo)


def add_nominal(v, days, seconds):
    """v + a duration: days in wall-clock time of v's zone, seconds exact."""
    if is_date(v):
        if seconds:
            return instant(v) + dt.timedelta(days=days, seconds=seconds)
        return instant(v + dt.timedelta(days=days))
    wall = v.replace(tzinfo=None) + dt.timedelta(days=days)
    return wall_to_utc(wall, v.tzinfo) + dt.timedelta(seconds=seconds)


def rfc_overlaps(ws, we, start, end):
    """RFC 4791 §9.9 for VEVENT, with the occurrence's UTC start and end."""
    if end > start:
        return ws < end and we > start
    return ws <= start < we


class FileOracle:
    """One event file: the library's query object and what is needed for occurrence ends."""

    def __init__(self, data):
        self.cal = icalendar.Calendar.from_ical(data)
        self.query = recurring_ical_events.of(self.cal)
        self.master = None
        self.overrides = {}  # UTC instant of RECURRENCE-ID -> component
        self.raw_by_comp = {}  # id(component) -> its raw property lines (same order as the file)
        raws = raw_vevents(data)
        comps = list(self.cal.walk("VEVENT"))
        if len(raws) != len(comps):
            raise ValueError(f"{len(comps)} VEVENTs parsed but {len(raws)} in the text")
        for comp, (_, props) in zip(comps, raws):
            rid = comp.get("RECURRENCE-ID")
            if rid is None:
                self.master = comp
            else:
                self.overrides[instant(rid.dt)] = comp
            self.raw_by_comp[id(comp)] = props

    def end_of(self, comp, start):
        """UTC end of an occurrence of `comp` starting at `start` (a date/datetime)."""
        if comp.get("DTEND") is not None:
            exact = instant(comp["DTEND"].dt) - instant(comp["DTSTART"].dt)
            return instant(start) + exact
        raw = self.raw_by_comp[id(comp)].get("DURATION")
        if raw:
            days, seconds = parse_duration(raw[0].split(":", 1)[1])
            return add_nominal(start, days, seconds)
        if is_date(start):
            return instant(start + dt.timedelta(days=1))
        return instant(start)

    def occurrences(self, ws, we):
        """[(start UTC, end UTC, 'master'|'override')] of the library's occurrences within the
        window widened by WIDEN, with ends by the RFC rules (see the module docstring)."""
        out = []
        span = (ws - WIDEN).replace(tzinfo=UTC), (we + WIDEN).replace(tzinfo=UTC)
        for occ in self.query.between(*span):
            start = occ["DTSTART"].dt
            rid = occ.get("RECURRENCE-ID")
            src = self.overrides.get(instant(rid.dt)) if rid is not None else None
            if src is not None:
                out.append((instant(src["DTSTART"].dt), self.end_of(src, src["DTSTART"].dt), "override"))
            else:
                out.append((instant(start), self.end_of(self.master, start), "master"))
        return sorted(out)

    def matches(self, ws, we):
        return any(rfc_overlaps(ws, we, s, e) for s, e, _ in self.occurrences(ws, we))


def oracle_chunk(paths):
    """Worker: {basename: [indices of WINDOWS the file belongs in]} and errors."""
    result, errors = {}, {}
    for path in paths:
        name = os.path.basename(path)
        try:
            with open(path, "rb") as f:
                fo = FileOracle(f.read())
            result[name] = [i for i, (_, ws, we) in enumerate(WINDOWS) if fo.matches(ws, we)]
        except Exception as e:  # noqa: BLE001 - reported as a failed oracle
            errors[name] = f"{type(e).__name__}: {e}"
    return result, errors


def oracle_cache_key(files):
    """Hash of everything the oracle's answer depends on: this file and windows.py, the
    library versions, the zone data, and every event file's name and bytes."""
    h = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("check.py", "windows.py"):
        with open(os.path.join(here, name), "rb") as f:
            h.update(f.read())
    for dist in ("icalendar", "recurring-ical-events", "python-dateutil", "tzdata", "x-wr-timezone"):
        try:
            h.update(f"{dist}=={importlib.metadata.version(dist)}\n".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{dist} missing\n".encode())
    h.update(repr(zoneinfo.TZPATH).encode())
    for zone in ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "UTC"):
        for d in zoneinfo.TZPATH:
            path = os.path.join(d, zone)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    h.update(f.read())
                break
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        h.update(f"{os.path.basename(path)}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# HTTP


class Client:
    def __init__(self, base_url, user, password):
        u = urllib.parse.urlsplit(base_url)
        self.host, self.port = u.hostname, u.port or 80
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.local = threading.local()

    def _conn(self, fresh=False):
        c = getattr(self.local, "conn", None)
        if c is None or fresh:
            if c is not None:
                c.close()
            c = http.client.HTTPConnection(self.host, self.port, timeout=300)
            self.local.conn = c
        return c

    def request(self, method, path, body=None, headers=None):
        """(status, headers, body). One retry on a connection the server had closed."""
        h = {"Authorization": self.auth}
        h.update(headers or {})
        for attempt in (0, 1):
            conn = self._conn(fresh=attempt > 0)
            try:
                conn.request(method, path, body=body, headers=h)
                r = conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self._conn(fresh=True)
                return r.status, r.headers, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if attempt:
                    raise
        raise AssertionError("unreachable")


def report_body(ws, we):
    f = "%Y%m%dT%H%M%SZ"
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">\n'
        "  <D:prop><D:getetag/></D:prop>\n"
        "  <C:filter>\n"
        '    <C:comp-filter name="VCALENDAR">\n'
        '      <C:comp-filter name="VEVENT">\n'
        f'        <C:time-range start="{ws.strftime(f)}" end="{we.strftime(f)}"/>\n'
        "      </C:comp-filter>\n"
        "    </C:comp-filter>\n"
        "  </C:filter>\n"
        "</C:calendar-query>\n"
    ).encode()


def multistatus_hrefs(body):
    """[(href path, ok)] of a multistatus: ok when a propstat (or the response) says 200."""
    root = ET.fromstring(body)
    out = []
    for resp in root.iter("{DAV:}response"):
        href = resp.findtext("{DAV:}href", "").strip()
        statuses = [s.text or "" for s in resp.iter("{DAV:}status")]
        out.append((urllib.parse.unquote(urllib.parse.urlsplit(href).path), any(" 200 " in s for s in statuses)))
    return out


# --------------------------------------------------------------------------------------------
# Reports on mismatches

SUMMARY_PROPS = ["RECURRENCE-ID", "DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE"]


def describe(path, ws, we):
    with open(path, "rb") as f:
        data = f.read()
    lines = []
    for rid, props in raw_vevents(data):
        lines.append("      VEVENT " + ("(override)" if rid else "(master)"))
        for name in SUMMARY_PROPS:
            for line in props.get(name, []):
                lines.append(f"        {line}")
    try:
        fo = FileOracle(data)
        occ = fo.occurrences(ws, we)
        lines.append(f"      oracle occurrences within {WIDEN.days} days of the window (UTC; end by RFC 5545):")
        if not occ:
            lines.append("        (none)")
        for s, e, src in occ[:12]:
            hit = "OVERLAPS" if rfc_overlaps(ws, we, s, e) else "outside"
            lines.append(f"        {s:%Y-%m-%d %H:%M}Z .. {e:%Y-%m-%d %H:%M}Z  {src:8}  {hit}")
        if len(occ) > 12:
            lines.append(f"        ... {len(occ) - 12} more")
        raw = fo.query.between(ws.replace(tzinfo=UTC), we.replace(tzinfo=UTC))
        lines.append(
            f"      for comparison, the library's own between(S, E), with its wall-clock ends: "
            f"{len(raw)} occurrence(s)" + "".join(f"; {c['DTSTART'].dt} .. {c['DTEND'].dt if 'DTEND' in c else '-'}" for c in raw[:3])
        )
    except Exception as e:  # noqa: BLE001
        lines.append(f"      oracle failed: {type(e).__name__}: {e}")
    return lines


# --------------------------------------------------------------------------------------------


def main():
    events_dir = sys.argv[1]
    base = os.environ["ORACLE_URL"]
    user = os.environ["ORACLE_USER"]
    password = os.environ["ORACLE_PASSWORD"]
    concurrency = int(os.environ.get("ORACLE_CONCURRENCY", "8"))
    workers = int(os.environ.get("ORACLE_WORKERS", "2"))

    files = sorted(os.path.join(events_dir, f) for f in os.listdir(events_dir) if f.endswith(".ics"))
    n = len(files)
    passed, failed = [], []

    def check(name, ok, detail=()):
        (passed if ok else failed).append(name)
        print(f"{'ok  ' if ok else 'FAIL'} {name}", flush=True)
        for line in detail:
            print(line, flush=True)

    # The oracle runs in worker processes while the events are uploaded, at the lowest priority:
    # the server (and its database) must not wait for them (2 cores in CI). Its answer is a
    # pure function of the files, this code and the library versions, so it is kept in
    # conformance/.work and reused by the next run with the same inputs (e.g. the PostgreSQL run
    # after the SQLite one); ORACLE_NO_CACHE=1 recomputes it.
    t_oracle0 = time.monotonic()
    cache_dir = os.path.join(os.environ.get("CONFORMANCE_WORK", os.path.join(events_dir, "..")), "recurrence-oracle")
    cache_key = oracle_cache_key(files)
    cache_file = os.path.join(cache_dir, f"oracle-{cache_key[:32]}.json")
    cached = None
    if os.environ.get("ORACLE_NO_CACHE") != "1" and os.path.isfile(cache_file):
        try:
            with open(cache_file, encoding="utf-8") as f:
                cached = json.load(f)
            if cached.get("key") != cache_key:
                cached = None
        except (OSError, ValueError):
            cached = None
    pool = None
    futures = []
    if cached is None:
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("fork"), initializer=os.nice, initargs=(19,)
        )
        chunk = 250
        futures = [pool.submit(oracle_chunk, files[i : i + chunk]) for i in range(0, n, chunk)]
    oracle_done = [t_oracle0]

    def done(_fut):
        oracle_done[0] = max(oracle_done[0], time.monotonic())

    for fut in futures:
        fut.add_done_callback(done)

    client = Client(base, user, password)
    home = urllib.parse.urlsplit(base).path.rstrip("/") + f"/calendars/{user}/"
    cal_path = home + "bench/"

    mk = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">\n'
        "  <D:set><D:prop><D:displayname>Recurrence oracle bench</D:displayname></D:prop></D:set>\n"
        "</C:mkcalendar>\n"
    ).encode()
    status, _, body = client.request("MKCALENDAR", cal_path, mk, {"Content-Type": "application/xml; charset=utf-8"})
    if status != 201:
        check(f"MKCALENDAR {cal_path}", False, [f"    status {status}: {body[:500]!r}"])
        print(f"{len(passed)} passed, {len(failed)} failed")
        sys.exit(1)

    # --- upload ---
    def put(path):
        with open(path, "rb") as f:
            data = f.read()
        name = os.path.basename(path)
        try:
            st, _, resp = client.request(
                "PUT", cal_path + name, data, {"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"}
            )
        except Exception as e:  # noqa: BLE001
            return name, None, f"{type(e).__name__}: {e}".encode()
        return name, st, resp

    t0 = time.monotonic()
    statuses = collections.Counter()
    bad_puts = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as ex:
        for name, st, resp in ex.map(put, files):
            statuses[st] += 1
            if st != 201:
                bad_puts.append((name, st, resp))
    t_upload = time.monotonic() - t0
    print(
        f"upload: {n} PUTs in {t_upload:.1f} s ({n / t_upload:.0f}/s, concurrency {concurrency}); statuses "
        + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))),
        flush=True,
    )
    detail = [f"    {name}: {st} {resp[:300]!r}" for name, st, resp in bad_puts[:10]]
    check(f"upload: all {n} PUTs answered 201 Created", not bad_puts and n > 0, detail)

    # --- oracle ---
    oracle = {}
    oracle_errors = {}
    if cached is not None:
        oracle, oracle_errors = cached["matches"], cached["errors"]
        print(f"oracle: answers for these {n} files reused from {cache_file}", flush=True)
    else:
        for fut in futures:
            res, errs = fut.result()
            oracle.update(res)
            oracle_errors.update(errs)
        pool.shutdown()
        t_oracle = oracle_done[0] - t_oracle0
        print(
            f"oracle: {n} files x {len(WINDOWS)} windows done {t_oracle:.1f} s after the start "
            f"({workers} processes at nice 19, alongside the upload)",
            flush=True,
        )
        if not oracle_errors:
            try:
                os.makedirs(cache_dir, exist_ok=True)
                for old in os.listdir(cache_dir):  # keep one answer set only
                    if old.startswith("oracle-") and old.endswith(".json"):
                        os.remove(os.path.join(cache_dir, old))
                tmp = cache_file + ".tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump({"key": cache_key, "matches": oracle, "errors": oracle_errors}, f)
                os.replace(tmp, cache_file)
            except OSError as e:
                print(f"note: could not store the oracle's answers in {cache_dir}: {e}")
    if oracle_errors:  # every window check fails then: the oracle's answer is incomplete
        print(f"oracle FAILED on {len(oracle_errors)} files:")
        for k, v in sorted(oracle_errors.items())[:10]:
            print(f"    {k}: {v}")
    expected = [set() for _ in WINDOWS]
    for name, idx in oracle.items():
        for i in idx:
            expected[i].add(name)

    # --- queries ---
    prefix = cal_path
    query_times = []
    for i, (label, ws, we) in enumerate(WINDOWS):
        name = f"{label}: [{ws:%Y-%m-%dT%H:%MZ}, {we:%Y-%m-%dT%H:%MZ})"
        t0 = time.monotonic()
        try:
            status, _, body = client.request(
                "REPORT", cal_path, report_body(ws, we), {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"}
            )
        except Exception as e:  # noqa: BLE001
            check(name, False, [f"    REPORT failed: {type(e).__name__}: {e}"])
            continue
        secs = time.monotonic() - t0
        query_times.append(secs)
        if status != 207:
            check(name, False, [f"    REPORT status {status} ({secs:.2f} s): {body[:800]!r}"])
            continue
        try:
            hrefs = multistatus_hrefs(body)
        except ET.ParseError as e:
            check(name, False, [f"    unparsable multistatus: {e}: {body[:800]!r}"])
            continue
        got, problems = set(), []
        for href, ok in hrefs:
            base_name = href[len(prefix) :] if href.startswith(prefix) else None
            if not ok or base_name is None or "/" in base_name or not base_name.endswith(".ics"):
                problems.append(f"    unexpected response for {href!r} (200 propstat: {ok})")
                continue
            if base_name in got:
                problems.append(f"    {href} listed twice")
            got.add(base_name)
        want = expected[i]
        extra, missing = sorted(got - want), sorted(want - got)
        mism = len(extra) + len(missing)
        print(
            f"     {label}: server {len(got)}, oracle {len(want)}, mismatches {mism} "
            f"(server only {len(extra)}, oracle only {len(missing)}), {secs:.3f} s",
            flush=True,
        )
        detail = list(problems[:10])
        shown = 0
        for kind, names in (("server lists it, oracle does not", extra), ("oracle has it, server does not", missing)):
            for fname in names:
                if shown >= 10:
                    break
                shown += 1
                detail.append(f"    {fname}: {kind}")
                detail.extend(describe(os.path.join(events_dir, fname), ws, we))
        if mism > shown:
            detail.append(f"    ... {mism - shown} more mismatching files")
        if oracle_errors:
            detail.append(f"    the oracle failed on {len(oracle_errors)} files (see above)")
        check(name, mism == 0 and not problems and not oracle_errors, detail)

    if query_times:
        print(
            f"queries: {len(query_times)} REPORTs, total {sum(query_times):.2f} s, "
            f"max {max(query_times):.3f} s, mean {sum(query_times) / len(query_times):.3f} s",
            flush=True,
        )
    if failed:
        print("failed checks:")
        for f in failed:
            print(f"  - {f}")
    print(f"{len(passed)} passed, {len(failed)} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
