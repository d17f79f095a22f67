#!/usr/bin/env python3
"""Crash safety of Almanac's writes (standard library only).

Each round runs a PUT/DELETE load from several writer threads, sends SIGKILL to the server
process at a random moment, restarts it on the same database and checks:

- every PUT acknowledged (2xx with an ETag) is served byte-exact with that ETag, and every
  acknowledged DELETE is a 404;
- a request whose outcome is unknown (the connection died with the server) left either the
  previous or the new complete body, never anything else;
- PROPFIND Depth 1, calendar-query and calendar-multiget list exactly the resources GET serves,
  with the same ETags and bytes;
- sync-collection from every token taken before any crash reports every resource acknowledged
  changed after that token (404 for acknowledged deletes), and no href that neither changed nor
  exists; the token it returns then reports nothing.

Every resource has exactly one writer, which sends its next request only after the previous
answer, so each resource's history is a sequence whose last acknowledged state is known.
A token is taken by PROPFIND DAV:sync-token; an operation sent after the token's answer came
back is "after" it, one answered before the token was asked for is "before", and one
overlapping the token request may fall either way.

Environment: CRASH_URL, CRASH_USER, CRASH_PASSWORD, CRASH_SERVER_PID, CRASH_PIDFILE,
ALMANAC_BIN, ALMANAC_DB_URL_USED, ALMANAC_ADMIN_PASSWORD, ALMANAC_SERVER_LOG (from lib.sh and
run.sh); CRASH_ROUNDS (5), CRASH_WORKERS (6), CRASH_SEED.
"""

import base64
import http.client
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"

URL = urllib.parse.urlsplit(os.environ["CRASH_URL"])
HOST, PORT = URL.hostname, URL.port
USER = os.environ["CRASH_USER"]
AUTH = "Basic " + base64.b64encode(f"{USER}:{os.environ['CRASH_PASSWORD']}".encode()).decode()
CAL = f"/calendars/{USER}/load/"
ROUNDS = int(os.environ.get("CRASH_ROUNDS", "5"))
WORKERS = int(os.environ.get("CRASH_WORKERS", "6"))
SEED = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
# Resources each worker may own after round r: r * NAMES_PER_ROUND (keeps verification short).
NAMES_PER_ROUND = 25
# The kill comes this many seconds after the load starts (uniformly drawn).
KILL_AFTER = (0.3, 2.5)


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.lock = threading.Lock()

    def ok(self, cond, what):
        with self.lock:
            if cond:
                self.passed += 1
            else:
                self.failed += 1
                print(f"FAIL {what}", flush=True)
        return cond


CHECKS = Checks()


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------


def connect():
    return http.client.HTTPConnection(HOST, PORT, timeout=60)


def call(conn, method, path, body=None, headers=None):
    """One request; returns (status, lower-cased headers, body bytes). Raises on a dead link."""
    h = {"Authorization": AUTH}
    h.update(headers or {})
    if isinstance(body, str):
        body = body.encode()
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def href_path(href):
    """A multistatus href as a decoded path."""
    return urllib.parse.unquote(urllib.parse.urlsplit(href.strip()).path)


def multistatus(data):
    """{path: (status code, etag or None, calendar-data or None)} of a 207 body."""
    out = {}
    root = ET.fromstring(data)
    for resp in root.findall(f"{DAV}response"):
        path = href_path(resp.findtext(f"{DAV}href"))
        status = resp.findtext(f"{DAV}status")
        etag = caldata = None
        code = int(status.split()[1]) if status else None
        for ps in resp.findall(f"{DAV}propstat"):
            pcode = int(ps.findtext(f"{DAV}status").split()[1])
            if pcode == 200:
                code = 200
                etag = ps.findtext(f"{DAV}prop/{DAV}getetag")
                caldata = ps.findtext(f"{DAV}prop/{CALDAV}calendar-data")
            elif code is None:
                code = pcode
        out[path] = (code, etag, caldata)
    return out, root


# ------------------------------------------------------------------------------------------------
# The server process
# ------------------------------------------------------------------------------------------------


class Server:
    """The almanac process itself (never a wrapper shell): started by lib.sh, then by us."""

    def __init__(self, pid):
        self.pid = pid
        self.proc = None
        self.binary = os.path.realpath(os.environ["ALMANAC_BIN"])

    def is_almanac(self):
        try:
            exe = os.readlink(f"/proc/{self.pid}/exe")
        except OSError:
            return False
        return exe.removesuffix(" (deleted)") == self.binary

    def gone(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)
        else:
            deadline = time.monotonic() + 30
            while not self.gone():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server {self.pid} survived SIGKILL")
                time.sleep(0.01)

    def start(self):
        env = dict(os.environ)
        env.update(
            ALMANAC_LISTEN=f"{HOST}:{PORT}",
            ALMANAC_DATABASE_URL=os.environ["ALMANAC_DB_URL_USED"],
            ALMANAC_LOG=os.environ.get("ALMANAC_LOG", "almanac=debug,info"),
            NO_COLOR="1",
        )
        log = open(os.environ["ALMANAC_SERVER_LOG"], "ab")
        started = time.monotonic()
        # The port was ours a moment ago; retry briefly should the bind race anything.
        for _ in range(50):
            self.proc = subprocess.Popen(
                [self.binary, "serve"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
            self.pid = self.proc.pid
            with open(os.environ["CRASH_PIDFILE"], "w") as f:
                f.write(str(self.pid))
            while self.proc.poll() is None:
                if healthy():
                    log.close()
                    return time.monotonic() - started
                if time.monotonic() - started > 60:
                    raise RuntimeError("restarted server did not answer /healthz within 60 s")
                time.sleep(0.02)
            time.sleep(0.1)
        raise RuntimeError("restarted server keeps exiting; see the server log")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def healthy():
    try:
        c = http.client.HTTPConnection(HOST, PORT, timeout=2)
        c.request("GET", "/healthz")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


# ------------------------------------------------------------------------------------------------
# Load
# ------------------------------------------------------------------------------------------------


class Op:
    __slots__ = ("kind", "body", "t_sent", "t_done", "outcome", "applied", "round")

    def __init__(self, kind, body, rnd):
        self.kind = kind  # "put" | "delete"
        self.body = body
        self.t_sent = self.t_done = None
        self.outcome = None  # "acked" | "failed" | "unknown"
        self.applied = None  # known after the round's verification for unknown outcomes
        self.round = rnd


class Resource:
    def __init__(self, name):
        self.name = name
        self.path = CAL + name
        self.state = None  # None (absent) or (body bytes, etag): the last known state
        self.ops = []
        self.pending = None  # an op of unknown outcome


def event_body(uid, worker, rnd, seq, rng):
    big = rng.random() < 0.12
    size = rng.randrange(100_000, 300_000) if big else rng.randrange(100, 8_000)
    pad = base64.b64encode(rng.randbytes(size * 3 // 4 + 3)).decode()[:size]
    line = f"DESCRIPTION:worker {worker} round {rnd} write {seq} " + pad
    folded = "\r\n ".join(line[i : i + 74] for i in range(0, len(line), 74))
    day = 1 + seq % 28
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Almanac//crash-safety//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n"
        f"DTSTART:202402{day:02d}T100000Z\r\nDTEND:202402{day:02d}T110000Z\r\n"
        f"SUMMARY:w{worker} r{rnd} #{seq}\r\n{folded}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


class Worker(threading.Thread):
    def __init__(self, idx, resources, rnd, stop, killed, rng):
        super().__init__(daemon=True)
        self.idx = idx
        self.resources = resources  # this worker's own, across rounds
        self.rnd = rnd
        self.stop = stop
        self.killed = killed
        self.rng = rng
        self.stats = {"put": 0, "delete": 0, "unknown": 0, "failed": 0, "bytes": 0, "largest": 0}
        self.seq = 0

    def pick(self):
        rng = self.rng
        present = [r for r in self.resources if r.state is not None]
        absent = [r for r in self.resources if r.state is None]
        may_create = len(self.resources) < NAMES_PER_ROUND * self.rnd
        roll = rng.random()
        if may_create and (roll < 0.45 or not present):
            r = Resource(f"w{self.idx}-{len(self.resources)}.ics")
            self.resources.append(r)
            return r, "put"
        if absent and roll < 0.55:
            return rng.choice(absent), "put"
        if not present:
            return None, None
        return rng.choice(present), ("delete" if roll > 0.75 else "put")

    def run(self):
        conn = connect()
        while not self.stop.is_set():
            res, kind = self.pick()
            if res is None:
                time.sleep(0.01)
                continue
            self.seq += 1
            headers = {}
            body = None
            if kind == "put":
                body = event_body(res.name[:-4], self.idx, self.rnd, self.seq, self.rng)
                headers["Content-Type"] = "text/calendar; charset=utf-8"
            if res.state is None:
                headers["If-None-Match"] = "*"
            else:
                headers["If-Match"] = res.state[1]
            op = Op(kind, body, self.rnd)
            res.ops.append(op)
            op.t_sent = time.monotonic()
            try:
                status, hdrs, data = call(
                    conn, "PUT" if kind == "put" else "DELETE", res.path, body, headers
                )
            except (OSError, http.client.HTTPException) as e:
                op.t_done = time.monotonic()
                op.outcome = "unknown"
                res.pending = op
                self.stats["unknown"] += 1
                CHECKS.ok(
                    self.killed.is_set(),
                    f"{kind} {res.path}: connection lost while the server was up ({e!r})",
                )
                return
            op.t_done = time.monotonic()
            if kind == "put" and status in (200, 201, 204) and hdrs.get("etag"):
                op.outcome, op.applied = "acked", True
                res.state = (body, hdrs["etag"])
                self.stats["put"] += 1
                self.stats["bytes"] += len(body)
                self.stats["largest"] = max(self.stats["largest"], len(body))
            elif kind == "delete" and status in (200, 204):
                op.outcome, op.applied = "acked", True
                res.state = None
                self.stats["delete"] += 1
            else:
                # The only writer of this resource sent a correct precondition: nothing but
                # success is right. Recorded as not applied and checked again by GET.
                op.outcome, op.applied = "failed", False
                self.stats["failed"] += 1
                CHECKS.ok(False, f"{kind} {res.path} answered {status}: {data[:300]!r}")


class Token:
    def __init__(self, value, ts, tr, rnd):
        self.value, self.ts, self.tr, self.round = value, ts, tr, rnd


def take_token(conn, rnd):
    ts = time.monotonic()
    status, _, data = call(
        conn,
        "PROPFIND",
        CAL,
        '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>',
        {"Depth": "0", "Content-Type": "application/xml"},
    )
    tr = time.monotonic()
    if status != 207:
        raise RuntimeError(f"PROPFIND sync-token answered {status}: {data[:300]!r}")
    value = ET.fromstring(data).findtext(f".//{DAV}sync-token")
    return Token(value.strip(), ts, tr, rnd)


class TokenTaker(threading.Thread):
    """Takes sync tokens while the load runs, keeping a few per round."""

    def __init__(self, rnd, stop, rng):
        super().__init__(daemon=True)
        self.rnd, self.stop, self.rng = rnd, stop, rng
        self.tokens = []

    def run(self):
        conn = connect()
        while not self.stop.wait(self.rng.uniform(0.1, 0.4)):
            try:
                self.tokens.append(take_token(conn, self.rnd))
            except (OSError, http.client.HTTPException):
                return


# ------------------------------------------------------------------------------------------------
# Verification
# ------------------------------------------------------------------------------------------------


def looks_complete(body):
    """A light iCalendar parse: unfolded lines, balanced BEGIN/END, one VCALENDAR."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    lines = text.replace("\r\n ", "").split("\r\n")
    if lines[-1] != "":
        return False
    stack = []
    for line in lines[:-1]:
        if ":" not in line:
            return False
        name, value = line.split(":", 1)
        if name == "BEGIN":
            stack.append(value)
        elif name == "END":
            if not stack or stack.pop() != value:
                return False
    return not stack and lines[0] == "BEGIN:VCALENDAR" and lines[-2] == "END:VCALENDAR"


def verify(conn, resources, tokens, rnd):
    figures = {"unknown_applied": 0, "unknown_not_applied": 0, "present": 0, "absent": 0}
    # 1. Unknown outcomes: the previous state or the new one, complete.
    for r in resources:
        op = r.pending
        if op is None:
            continue
        status, hdrs, body = call(conn, "GET", r.path)
        prev = r.state
        applied = None
        if op.kind == "put":
            if status == 200 and body == op.body:
                applied = True
                r.state = (body, hdrs.get("etag"))
            elif prev is not None and status == 200 and body == prev[0]:
                applied = False
                CHECKS.ok(hdrs.get("etag") == prev[1], f"{r.path}: previous body, new ETag")
            elif prev is None and status == 404:
                applied = False
        else:
            if status == 404:
                applied = True
                r.state = None
            elif status == 200 and prev is not None and body == prev[0]:
                applied = False
                CHECKS.ok(hdrs.get("etag") == prev[1], f"{r.path}: previous body, new ETag")
        CHECKS.ok(
            applied is not None,
            f"{r.path}: unknown-outcome {op.kind} left neither the old nor the new state "
            f"(GET {status}, {len(body)} bytes, complete: {looks_complete(body)}, "
            f"old {len(prev[0]) if prev else 'absent'}, new {len(op.body) if op.body else 'absent'})",
        )
        op.applied = bool(applied)
        figures["unknown_applied" if applied else "unknown_not_applied"] += 1
        r.pending = None

    # 2. Every resource as its last acknowledged state says.
    for r in resources:
        status, hdrs, body = call(conn, "GET", r.path)
        if r.state is None:
            figures["absent"] += 1
            CHECKS.ok(status == 404, f"{r.path}: acknowledged deleted (or never written), GET {status}")
        else:
            figures["present"] += 1
            CHECKS.ok(
                status == 200 and body == r.state[0] and looks_complete(body),
                f"{r.path}: acknowledged write not served byte-exact "
                f"(GET {status}, {len(body)} bytes, expected {len(r.state[0])})",
            )
            CHECKS.ok(
                hdrs.get("etag") == r.state[1],
                f"{r.path}: ETag {hdrs.get('etag')} != acknowledged {r.state[1]}",
            )
    expected = {r.path: r.state[1] for r in resources if r.state is not None}

    # 3. Listings: exactly what GET serves.
    status, _, data = call(
        conn,
        "PROPFIND",
        CAL,
        '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>',
        {"Depth": "1", "Content-Type": "application/xml"},
    )
    CHECKS.ok(status == 207, f"PROPFIND Depth 1 answered {status}")
    listed, _ = multistatus(data)
    listed = {p: e for p, (c, e, _) in listed.items() if p != CAL}
    CHECKS.ok(listed == expected, f"PROPFIND lists {diff(listed, expected)}")
    status, _, data = call(
        conn,
        "REPORT",
        CAL,
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
        '<C:comp-filter name="VEVENT"/></C:comp-filter></C:filter></C:calendar-query>',
        {"Depth": "1", "Content-Type": "application/xml"},
    )
    CHECKS.ok(status == 207, f"calendar-query answered {status}")
    queried, _ = multistatus(data)
    queried = {p: e for p, (c, e, _) in queried.items()}
    CHECKS.ok(queried == expected, f"calendar-query lists {diff(queried, expected)}")
    paths = sorted(expected)
    bodies = {r.path: r.state[0] for r in resources if r.state is not None}
    for i in range(0, len(paths), 100):
        chunk = paths[i : i + 100]
        hrefs = "".join(f"<D:href>{urllib.parse.quote(p)}</D:href>" for p in chunk)
        status, _, data = call(
            conn,
            "REPORT",
            CAL,
            '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f"<D:prop><D:getetag/><C:calendar-data/></D:prop>{hrefs}</C:calendar-multiget>",
            {"Depth": "1", "Content-Type": "application/xml"},
        )
        got, _ = multistatus(data)
        for p in chunk:
            code, etag, caldata = got.get(p, (None, None, None))
            CHECKS.ok(
                code == 200
                and etag == expected[p]
                and caldata is not None
                and caldata.encode() == bodies[p],
                f"multiget {p}: status {code}, ETag {etag} (want {expected[p]}), "
                f"{len(caldata or '')} bytes (want {len(bodies[p])})",
            )

    # 4. Sync from every token kept so far, all taken before a crash.
    by_path = {r.path: r for r in resources}
    reported_unchanged = 0
    newest = None
    for t in tokens:
        status, _, data = call(
            conn,
            "REPORT",
            CAL,
            '<D:sync-collection xmlns:D="DAV:">'
            f"<D:sync-token>{t.value}</D:sync-token><D:sync-level>1</D:sync-level>"
            "<D:prop><D:getetag/></D:prop></D:sync-collection>",
            {"Content-Type": "application/xml"},
        )
        if not CHECKS.ok(status == 207, f"sync from {t.value} (round {t.round}) answered {status}"):
            continue
        got, root = multistatus(data)
        problems = []
        for p, r in by_path.items():
            before = [o for o in r.ops if o.t_done < t.ts]
            straddle = [o for o in r.ops if o.t_done >= t.ts and o.t_sent <= t.tr]
            after = [o for o in r.ops if o.t_sent > t.tr]
            existed = False
            for o in before:
                if o.applied:
                    existed = o.kind == "put"
            existed_surely = existed and not any(o.applied and o.kind == "delete" for o in straddle)
            changed_after = any(o.applied for o in after)
            maybe_changed = changed_after or any(o.applied for o in straddle)
            exists = r.state is not None
            if p in got:
                code, etag, _ = got[p]
                if exists:
                    if code != 200 or etag != r.state[1]:
                        problems.append(f"{p}: {code} {etag}, exists with {r.state[1]}")
                    if not maybe_changed:
                        reported_unchanged += 1
                elif code != 404:
                    problems.append(f"{p}: {code}, but it does not exist")
                elif not maybe_changed:
                    problems.append(f"{p}: 404 but neither changed since the token nor existing")
            elif changed_after and (exists or existed_surely):
                problems.append(
                    f"{p}: acknowledged {'write' if exists else 'delete'} after the token not reported"
                )
        for p in got:
            if p not in by_path:
                problems.append(f"{p}: reported but never written")
        CHECKS.ok(
            not problems,
            f"sync from {t.value} (round {t.round}): " + "; ".join(problems[:10]),
        )
        newest = root.findtext(f"{DAV}sync-token")
    # The token a sync returns covers everything: nothing changed since.
    if newest:
        status, _, data = call(
            conn,
            "REPORT",
            CAL,
            '<D:sync-collection xmlns:D="DAV:">'
            f"<D:sync-token>{newest.strip()}</D:sync-token><D:sync-level>1</D:sync-level>"
            "<D:prop><D:getetag/></D:prop></D:sync-collection>",
            {"Content-Type": "application/xml"},
        )
        got, _ = multistatus(data) if status == 207 else ({"?": None}, None)
        CHECKS.ok(status == 207 and not got, f"sync from the newest token: {status}, {sorted(got)[:5]}")
    figures["reported_unchanged"] = reported_unchanged
    return figures


def diff(got, want):
    extra = sorted(set(got) - set(want))[:5]
    missing = sorted(set(want) - set(got))[:5]
    etags = sorted(p for p in set(got) & set(want) if got[p] != want[p])[:5]
    return f"extra {extra}, missing {missing}, ETag differs {etags}"


# ------------------------------------------------------------------------------------------------


def main():
    print(f"crash-safety: {ROUNDS} rounds, {WORKERS} writers, seed {SEED}", flush=True)
    rng = random.Random(SEED)
    server = Server(int(os.environ["CRASH_SERVER_PID"]))
    conn = connect()
    status, _, data = call(
        conn,
        "MKCALENDAR",
        CAL,
        '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
        "<D:displayname>crash load</D:displayname></D:prop></D:set></C:mkcalendar>",
        {"Content-Type": "application/xml"},
    )
    if not CHECKS.ok(status == 201, f"MKCALENDAR answered {status}: {data[:300]!r}"):
        return 1
    tokens = [take_token(conn, 0)]
    conn.close()
    owned = [[] for _ in range(WORKERS)]
    try:
        for rnd in range(1, ROUNDS + 1):
            stop, killed = threading.Event(), threading.Event()
            workers = [
                Worker(i, owned[i], rnd, stop, killed, random.Random(rng.random()))
                for i in range(WORKERS)
            ]
            taker = TokenTaker(rnd, stop, random.Random(rng.random()))
            delay = rng.uniform(*KILL_AFTER)
            for w in workers:
                w.start()
            taker.start()
            time.sleep(delay)
            if not CHECKS.ok(server.is_almanac(), f"pid {server.pid} is not the almanac binary"):
                return 1
            # Writers between two requests stop here; only requests in flight meet the kill.
            killed.set()
            stop.set()
            server.kill()
            for w in workers + [taker]:
                w.join(timeout=60)
                if w.is_alive():
                    CHECKS.ok(False, f"{w.name} did not stop after the kill")
                    return 1
            restart = server.start()
            # Keep the first token of each round and one more taken mid-load.
            picks = sorted({0, len(taker.tokens) // 2}) if taker.tokens else []
            tokens.extend(taker.tokens[i] for i in picks)
            resources = [r for rs in owned for r in rs]
            conn = connect()
            before = CHECKS.failed
            figures = verify(conn, resources, tokens, rnd)
            conn.close()
            s = {k: sum(w.stats[k] for w in workers) for k in ("put", "delete", "unknown", "failed", "bytes")}
            largest = max(w.stats["largest"] for w in workers)
            print(
                f"round {rnd}: killed after {delay:.2f} s; acknowledged {s['put']} PUT "
                f"({s['bytes'] / 1e6:.1f} MB, largest {largest // 1000} KB) and {s['delete']} DELETE; "
                f"{s['unknown']} in flight at the kill ({figures['unknown_applied']} had been applied, "
                f"{figures['unknown_not_applied']} not); {s['failed']} refused; restart {restart:.2f} s; "
                f"checked {figures['present']} present + {figures['absent']} absent resources, "
                f"{len(tokens)} sync tokens ({figures['reported_unchanged']} unchanged hrefs reported); "
                f"{'ok' if CHECKS.failed == before else 'FAILED'}",
                flush=True,
            )
    finally:
        server.stop()
    print(f"{CHECKS.passed} passed, {CHECKS.failed} failed", flush=True)
    return 1 if CHECKS.failed else 0


if __name__ == "__main__":
    sys.exit(main())
