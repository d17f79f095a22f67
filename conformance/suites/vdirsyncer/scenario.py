#!/usr/bin/env python3
"""vdirsyncer (the real CLI) syncing a CalDAV calendar with a local vdir, both ways.

Environment: CONF_URL, CONF_USER, CONF_PASSWORD, CONF_SERVER, CONF_TMP (see conformance/peers.sh),
VDIRSYNCER (the vdirsyncer executable), VDS_RESULTS (results file to write), VDS_NO_PROXY=1 to let
vdirsyncer talk to the server directly instead of through the recording proxy.

vdirsyncer is given generated config files (pair `main`: storage `local`, type filesystem with
fileext .ics = side a; storage `server`, type caldav with url/username/password = side b) and run
as `vdirsyncer -c CONFIG discover|sync|metasync`, stdin closed (`implicit = "create"` answers the
only question discover asks). Server-side state is checked with plain HTTP (PROPFIND/GET) by this
script, playing "another client" when it changes things on the server.

vdirsyncer's HTTP traffic goes through a small pass-through proxy on 127.0.0.1 that records every
exchange, so a failed check can show the exact requests and responses.

Every check writes `PASS id` or `FAIL id detail` to VDS_RESULTS; details go to stdout. The exit
status is 0 when the scenario ran to its end (whatever the checks said).
"""

import base64
import collections
import http.client
import os
import re
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BASE_URL = os.environ["CONF_URL"]
USER = os.environ["CONF_USER"]
PASSWORD = os.environ["CONF_PASSWORD"]
SERVER = os.environ.get("CONF_SERVER", "almanac")
VDIRSYNCER = os.environ["VDIRSYNCER"]
RESULTS = os.environ["VDS_RESULTS"]
WORK = os.path.join(os.environ["CONF_TMP"], "vdirsyncer")

RUN = uuid.uuid4().hex[:8]
COLL = f"vds-{RUN}"  # the calendar made with MKCALENDAR and synced by pair `main`
NEWCOLL = f"vds-new-{RUN}"  # a local-only collection vdirsyncer itself must create on the server
DISPLAYNAME = "vdirsyncer conformance"
COLOR = "#1E90FF"

_up = urllib.parse.urlsplit(BASE_URL)
UP_HOST, UP_PORT = _up.hostname, _up.port or 80
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

DAV = "{DAV:}"
CAL = "{urn:ietf:params:xml:ns:caldav}"
CS = "{http://calendarserver.org/ns/}"
ICAL = "{http://apple.com/ns/ical/}"


# --------------------------------------------------------------------------------------------
# Recording pass-through proxy in front of the server, for vdirsyncer.

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
EXCHANGES = []  # every exchange vdirsyncer had with the server, in order
_ex_lock = threading.Lock()


class _Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _forward(self):
        body = self._body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        if body or "content-length" in (k.lower() for k in self.headers.keys()):
            headers["Content-Length"] = str(len(body))
        try:
            conn = http.client.HTTPConnection(UP_HOST, UP_PORT, timeout=120)
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status, reason, rheaders = resp.status, resp.reason, resp.getheaders()
            conn.close()
        except Exception as e:  # noqa: BLE001
            status, reason, rheaders, data = 502, "Bad Gateway", [("Content-Type", "text/plain")], f"proxy: {e}".encode()
        with _ex_lock:
            EXCHANGES.append((self.command, self.path, dict(self.headers.items()), body, status, rheaders, data))
        self.send_response_only(status, reason)
        proxy_base = f"http://127.0.0.1:{self.server.server_address[1]}"
        for k, v in rheaders:
            if k.lower() in HOP or k.lower() == "content-length":
                continue
            if k.lower() == "location":
                v = v.replace(f"http://{UP_HOST}:{UP_PORT}", proxy_base)
            self.send_header(k, v)
        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        if self.command == "HEAD":
            length = dict((k.lower(), v) for k, v in rheaders).get("content-length")
            if length is not None:
                self.send_header("Content-Length", length)
        elif not no_body:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not no_body:
            self.wfile.write(data)

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._forward
        raise AttributeError(name)


def start_proxy():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_address[1]}{_up.path or '/'}"


# --------------------------------------------------------------------------------------------
# Plain HTTP, as "another client" and to inspect the server.

CHECKER = collections.deque(maxlen=8)  # this script's own last exchanges


def http_req(method, path, body=None, headers=None):
    """One request straight to the server with alice's credentials: (status, headers, body)."""
    h = {"Authorization": AUTH}
    h.update(headers or {})
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn = http.client.HTTPConnection(UP_HOST, UP_PORT, timeout=60)
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    CHECKER.append((method, path, h, body or b"", r.status, list(hdrs.items()), data))
    return r.status, hdrs, data


def propfind(path, props, depth="0"):
    body = '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:" ' \
           'xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/" ' \
           'xmlns:I="http://apple.com/ns/ical/"><D:prop>' + "".join(props) + "</D:prop></D:propfind>"
    status, _, data = http_req("PROPFIND", path, body,
                               {"Depth": depth, "Content-Type": "application/xml; charset=utf-8"})
    if status != 207:
        raise Failed(f"PROPFIND {path} (Depth {depth}) answered {status}: {clip(data, 300)}")
    return ET.fromstring(data)


def ok_props(response):
    """The properties a <response> reports with a 2xx status."""
    out = {}
    for ps in response.findall(f"{DAV}propstat"):
        st = ps.findtext(f"{DAV}status") or ""
        if " 2" in st:
            for p in ps.find(f"{DAV}prop") or []:
                out[p.tag] = p
    return out


def norm_path(href):
    return urllib.parse.quote(urllib.parse.unquote(urllib.parse.urlsplit(href).path), "/@")


def find_home():
    root = propfind(_up.path or "/", ["<D:current-user-principal/>"])
    href = root.findtext(f".//{DAV}current-user-principal/{DAV}href")
    if not href:
        raise Failed("no DAV:current-user-principal on the base URL")
    root = propfind(norm_path(href), ["<C:calendar-home-set/>"])
    home = root.findtext(f".//{CAL}calendar-home-set/{DAV}href")
    if not home:
        raise Failed(f"no calendar-home-set on the principal {href}")
    home = norm_path(home)
    return home if home.endswith("/") else home + "/"


def server_items(coll_path):
    """{uid: (href, etag, summary, body)} of the calendar objects in the collection, read with
    PROPFIND Depth 1 and one GET each. Raises Failed on duplicates or unreadable members."""
    root = propfind(coll_path, ["<D:resourcetype/>", "<D:getetag/>", "<D:getcontenttype/>"], depth="1")
    items = {}
    for resp in root.findall(f"{DAV}response"):
        href = norm_path(resp.findtext(f"{DAV}href") or "")
        props = ok_props(resp)
        rt = props.get(f"{DAV}resourcetype")
        if rt is not None and rt.find(f"{DAV}collection") is not None:
            continue
        if href.rstrip("/") == coll_path.rstrip("/"):
            continue
        etag = props.get(f"{DAV}getetag")
        status, hdrs, body = http_req("GET", href)
        if status != 200:
            raise Failed(f"GET {href} (listed by PROPFIND) answered {status}")
        uid, summary = parse_ics(body.decode("utf-8", "replace"))
        if uid in items:
            raise Failed(f"UID {uid} stored twice on the server: {items[uid][0]} and {href}")
        items[uid] = (href, etag.text if etag is not None else None, summary, body)
    return items


def server_collection_state(coll_path):
    """(sorted [(href, etag)], sync-token, getctag) of a collection."""
    items = server_items(coll_path)
    root = propfind(coll_path, ["<D:sync-token/>", "<CS:getctag/>"])
    resp = root.find(f"{DAV}response")
    props = ok_props(resp) if resp is not None else {}
    tok = props.get(f"{DAV}sync-token")
    ctag = props.get(f"{CS}getctag")
    return (sorted((h, e) for h, e, _, _ in items.values()),
            tok.text if tok is not None else None,
            ctag.text if ctag is not None else None)


def server_put(path, text, etag=None):
    h = {"Content-Type": "text/calendar; charset=utf-8"}
    if etag is None:
        h["If-None-Match"] = "*"
    else:
        h["If-Match"] = etag
    status, hdrs, body = http_req("PUT", path, text, h)
    if status not in (200, 201, 204):
        raise Failed(f"PUT {path} answered {status}: {clip(body, 300)}")
    return hdrs.get("etag")


def server_delete(path, etag):
    h = {"If-Match": etag} if etag else {}
    status, _, body = http_req("DELETE", path, None, h)
    if status not in (200, 204):
        raise Failed(f"DELETE {path} answered {status}: {clip(body, 300)}")


# --------------------------------------------------------------------------------------------
# iCalendar, local vdir

def ics(uid, summary, day="05"):
    return (
        "BEGIN:VCALENDAR\r\n"
        "VERSION:2.0\r\n"
        "PRODID:-//Almanac conformance//vdirsyncer//EN\r\n"
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\n"
        "DTSTAMP:20300101T000000Z\r\n"
        f"DTSTART:203001{day}T090000Z\r\n"
        f"DTEND:203001{day}T100000Z\r\n"
        f"SUMMARY:{summary}\r\n"
        "END:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )


def fold(line):
    """Folds one content line at 75 octets (RFC 5545 §3.1) without splitting a UTF-8 sequence."""
    out, cur = [], b""
    for ch in line:
        b = ch.encode("utf-8")
        if len(cur) + len(b) > (75 if not out else 74):
            out.append(cur)
            cur = b""
        cur += b
    out.append(cur)
    return "\r\n ".join(x.decode("utf-8") for x in out) + "\r\n"


VTIMEZONE_BERLIN = (
    "BEGIN:VTIMEZONE\r\n"
    "TZID:Europe/Berlin\r\n"
    "BEGIN:DAYLIGHT\r\n"
    "TZOFFSETFROM:+0100\r\n"
    "TZOFFSETTO:+0200\r\n"
    "TZNAME:CEST\r\n"
    "DTSTART:19700329T020000\r\n"
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n"
    "END:DAYLIGHT\r\n"
    "BEGIN:STANDARD\r\n"
    "TZOFFSETFROM:+0200\r\n"
    "TZOFFSETTO:+0100\r\n"
    "TZNAME:CET\r\n"
    "DTSTART:19701025T030000\r\n"
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n"
    "END:STANDARD\r\n"
    "END:VTIMEZONE\r\n"
)


def rich_ics(uid_, where):
    """A weekly event in Europe/Berlin with VTIMEZONE, EXDATE, an alarm, an overridden
    occurrence (a second VEVENT with RECURRENCE-ID), non-ASCII text, escapes, a folded line and
    an X- property with a quoted parameter."""
    return (
        "BEGIN:VCALENDAR\r\n"
        "VERSION:2.0\r\n"
        "PRODID:-//Almanac conformance//vdirsyncer//EN\r\n"
        + VTIMEZONE_BERLIN
        + "BEGIN:VEVENT\r\n"
        f"UID:{uid_}\r\n"
        "DTSTAMP:20300101T000000Z\r\n"
        "DTSTART;TZID=Europe/Berlin:20300107T090000\r\n"
        "DTEND;TZID=Europe/Berlin:20300107T100000\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=10\r\n"
        "EXDATE;TZID=Europe/Berlin:20300114T090000\r\n"
        + fold(f"SUMMARY:Réunion hebdo ({where}) — 会議 \\, with escapes\\; and a summary long enough to be folded")
        + "DESCRIPTION:line one\\nline two\r\n"
        'X-ALMANAC-TEST;X-PARAM="quoted:value";Y=2:keep me\r\n'
        "BEGIN:VALARM\r\n"
        "ACTION:DISPLAY\r\n"
        "DESCRIPTION:Reminder\r\n"
        "TRIGGER:-PT15M\r\n"
        "END:VALARM\r\n"
        "END:VEVENT\r\n"
        "BEGIN:VEVENT\r\n"
        f"UID:{uid_}\r\n"
        "RECURRENCE-ID;TZID=Europe/Berlin:20300121T090000\r\n"
        "DTSTAMP:20300101T000000Z\r\n"
        "DTSTART;TZID=Europe/Berlin:20300121T110000\r\n"
        "DTEND;TZID=Europe/Berlin:20300121T120000\r\n"
        "SUMMARY:Réunion hebdo (moved)\r\n"
        "END:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )


def todo_ics(uid_):
    return (
        "BEGIN:VCALENDAR\r\n"
        "VERSION:2.0\r\n"
        "PRODID:-//Almanac conformance//vdirsyncer//EN\r\n"
        "BEGIN:VTODO\r\n"
        f"UID:{uid_}\r\n"
        "DTSTAMP:20300101T000000Z\r\n"
        "DUE:20300110T170000Z\r\n"
        "STATUS:NEEDS-ACTION\r\n"
        "SUMMARY:Buy milk\r\n"
        "END:VTODO\r\n"
        "END:VCALENDAR\r\n"
    )


def _canonical_line(line):
    """NAME;PARAMS:VALUE with the name upper-cased, the parameters sorted and, for RRULE, the
    rule parts sorted: the same property the same way, however a server reorders it."""
    i, quoted = 0, False
    while i < len(line):  # the first ':' outside a quoted parameter value ends name and params
        c = line[i]
        if c == '"':
            quoted = not quoted
        elif c == ":" and not quoted:
            break
        i += 1
    head, value = line[:i], line[i + 1:]
    parts, cur, quoted = [], "", False
    for c in head:
        if c == '"':
            quoted = not quoted
        if c == ";" and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    name, params = parts[0].upper(), sorted(p.split("=", 1)[0].upper() + "=" + p.split("=", 1)[-1] for p in parts[1:])
    if name in ("RRULE", "EXRULE"):
        value = ";".join(sorted(value.split(";")))
    return ";".join([name, *params]) + ":" + value


def semantic(text):
    """The content lines of an iCalendar text, unfolded, canonical (_canonical_line), without
    PRODID, sorted: equal when the same properties with the same parameters and values are there,
    whatever their order, folding and line endings."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = re.sub(r"\r?\n[ \t]", "", text).splitlines()
    return sorted(_canonical_line(ln) for ln in lines if ln and not ln.upper().startswith("PRODID"))


def semantic_diff(a, b):
    sa, sb = collections.Counter(semantic(a)), collections.Counter(semantic(b))
    return sorted((sa - sb).elements()), sorted((sb - sa).elements())


def parse_ics(text):
    """(UID, SUMMARY) of the first component (lines unfolded, parameters ignored)."""
    lines = re.sub(r"\r?\n[ \t]", "", text).splitlines()
    uid = summary = None
    for line in lines:
        name = line.split(":", 1)[0].split(";", 1)[0].upper()
        value = line.split(":", 1)[1] if ":" in line else ""
        if name == "UID" and uid is None:
            uid = value
        elif name == "SUMMARY" and summary is None:
            summary = value.replace("\\,", ",").replace("\\;", ";")
    return uid, summary


def local_items(dirpath):
    """{uid: (filename, summary, text)} of the .ics files in a vdir collection."""
    items = {}
    for name in sorted(os.listdir(dirpath)):
        if not name.endswith(".ics"):
            continue
        with open(os.path.join(dirpath, name), encoding="utf-8") as f:
            text = f.read()
        uid, summary = parse_ics(text)
        if uid in items:
            raise Failed(f"UID {uid} twice in the vdir: {items[uid][0]} and {name}")
        items[uid] = (name, summary, text)
    return items


def local_state(dirpath):
    """Every file of the collection dir with its content, mtime and inode."""
    out = []
    for name in sorted(os.listdir(dirpath)):
        p = os.path.join(dirpath, name)
        st = os.stat(p)
        with open(p, "rb") as f:
            out.append((name, f.read(), st.st_mtime_ns, st.st_ino))
    return out


def write_local(dirpath, filename, text):
    tmp = os.path.join(dirpath, f".{filename}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, os.path.join(dirpath, filename))


# --------------------------------------------------------------------------------------------
# vdirsyncer

PROXY_URL = BASE_URL if os.environ.get("VDS_NO_PROXY") == "1" else None


def write_configs():
    status = os.path.join(WORK, "status")
    common_storages = f"""
[storage local]
type = "filesystem"
path = "{os.path.join(WORK, 'vdir')}/"
fileext = ".ics"

[storage local_new]
type = "filesystem"
path = "{os.path.join(WORK, 'vdir-new')}/"
fileext = ".ics"

[storage server]
type = "caldav"
url = "{PROXY_URL}"
username = "{USER}"
password = "{PASSWORD}"
"""
    main_pair = f"""
[general]
status_path = "{status}/"

[pair main]
a = "local"
b = "server"
collections = ["{COLL}"]
metadata = ["displayname", "color"]
implicit = "create"
{{resolution}}

[pair created]
a = "local_new"
b = "server"
collections = ["from a"]
implicit = "create"
"""
    configs = {
        # No conflict_resolution: a conflict must be reported and nothing overwritten.
        "strict": main_pair.format(resolution="") + common_storages,
        # conflict_resolution = "a wins": the local (side a) version goes to the server.
        "a-wins": main_pair.format(resolution='conflict_resolution = "a wins"') + common_storages,
    }
    paths = {}
    for name, text in configs.items():
        p = os.path.join(WORK, f"config-{name}")
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)
        paths[name] = p
    return paths


class Run:
    def __init__(self, args, rc, out, first_exchange, seconds):
        self.args, self.rc, self.out, self.first, self.seconds = args, rc, out, first_exchange, seconds

    @property
    def exchanges(self):
        return EXCHANGES[self.first:]

    def actions(self):
        """vdirsyncer's own report of what it changed (its INFO lines)."""
        return [ln for ln in self.out.splitlines()
                if ln.startswith(("Copying", "Deleting"))]

    def errors(self):
        return [ln for ln in self.out.splitlines() if ln.lower().startswith(("error:", "critical:"))]


RUNS = []
LAST_RUN = [None]


def vds(config, *args):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    first = len(EXCHANGES)
    t0 = time.monotonic()
    p = subprocess.run([VDIRSYNCER, "-c", config, *args], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=300)
    r = Run(args, p.returncode, p.stdout.decode("utf-8", "replace"), first, time.monotonic() - t0)
    RUNS.append(r)
    LAST_RUN[0] = r
    with open(os.path.join(WORK, "vdirsyncer.log"), "a", encoding="utf-8") as f:
        f.write(f"$ vdirsyncer -c {os.path.basename(config)} {' '.join(args)}   # exit {r.rc}, {r.seconds:.1f} s\n")
        f.write(r.out)
        f.write("\n")
    return r


def expect_clean(r, what):
    if r.rc != 0 or r.errors():
        raise Failed(f"`vdirsyncer {' '.join(r.args)}` ({what}) exited {r.rc}; errors: {r.errors() or 'none printed'}")


# --------------------------------------------------------------------------------------------
# Checks

class Failed(Exception):
    pass


PASSED, FAILED = [], []
STATE = {}
_results = open(RESULTS, "w", encoding="utf-8")


def clip(b, n=1200):
    if isinstance(b, bytes):
        b = b.decode("utf-8", "replace")
    return b if len(b) <= n else b[:n] + f"... [{len(b) - n} more chars]"


def show_exchange(prefix, ex):
    method, path, reqh, body, status, resph, data = ex
    print(f"{prefix}>>> {method} {path}")
    for k, v in reqh.items():
        if k.lower() in ("if-match", "if-none-match", "depth", "content-type", "destination", "overwrite"):
            print(f"{prefix}    {k}: {v}")
    if body:
        for line in clip(body).splitlines():
            print(f"{prefix}    {line}")
    print(f"{prefix}<<< {status}")
    for k, v in resph:
        if k.lower() in ("etag", "content-type", "location", "dav"):
            print(f"{prefix}    {k}: {v}")
    for line in clip(data).splitlines():
        print(f"{prefix}    {line}")


def dump_context():
    r = LAST_RUN[0]
    if r is not None:
        print(f"    last vdirsyncer run: `vdirsyncer {' '.join(r.args)}` exit {r.rc}; output (tail):")
        for line in r.out.rstrip().splitlines()[-25:]:
            print(f"      | {line}")
        exs = r.exchanges
        interesting = [e for e in exs if e[4] >= 400 or e[0] not in ("PROPFIND", "REPORT", "GET")]
        if interesting:
            print(f"    vdirsyncer's writes and failed requests in that run ({len(interesting)} of {len(exs)} exchanges):")
            for ex in interesting[-6:]:
                show_exchange("      ", ex)
    if CHECKER:
        print("    this script's last plain-HTTP exchanges:")
        for ex in list(CHECKER)[-3:]:
            show_exchange("      ", ex)


def check(cid, needs=()):
    """Runs the decorated function at once as check `cid`."""

    def run(fn):
        missing = [n for n in needs if n not in STATE]
        if missing:
            detail = f"cannot run: an earlier step did not produce {', '.join(missing)}"
            FAILED.append(cid)
            print(f"FAIL {cid}: {detail}")
            _results.write(f"FAIL {cid} {detail}\n")
            _results.flush()
            return fn
        CHECKER.clear()
        LAST_RUN[0] = None
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            FAILED.append(cid)
            kind = "" if isinstance(e, Failed) else f"{type(e).__name__}: "
            first_line = f"{kind}{e}".splitlines()[0] if str(e) else kind
            print(f"FAIL {cid}: {kind}{e}")
            if not isinstance(e, Failed):
                for line in traceback.format_exc().rstrip().splitlines()[-8:]:
                    print(f"    {line}")
            dump_context()
            _results.write(f"FAIL {cid} {first_line[:300]}\n")
        else:
            PASSED.append(cid)
            print(f"ok   {cid}")
            _results.write(f"PASS {cid}\n")
        _results.flush()
        return fn

    return run


def expect(cond, what):
    if not cond:
        raise Failed(what)


def expect_eq(actual, wanted, what):
    if actual != wanted:
        raise Failed(f"{what}: expected {wanted!r}, got {actual!r}")


def uid(name):
    if name == "plain":  # only characters vdirsyncer puts into an href as they are
        return f"plain-{RUN}"
    return f"{name}-{RUN}@vdirsyncer.conformance"


ODD_HREF = f"odd%20{RUN}%40x.ics"  # "odd <run>@x.ics": vdirsyncer asks for it as odd%20<run>@x.ics


def fname(name):
    return f"{name}-{RUN}.ics"


def expect_item(side, items, name, summary):
    u = uid(name)
    expect(u in items, f"{side}: {name} ({u}) is missing; {side} holds {sorted(items)}")
    got = items[u][2] if side == "server" else items[u][1]
    expect_eq(got, summary, f"{side}: SUMMARY of {name}")


def expect_absent(side, items, name):
    expect(uid(name) not in items, f"{side}: {name} ({uid(name)}) is still there")


def expect_same_uids(local, server):
    expect_eq(sorted(server), sorted(local), "UIDs on the server vs in the vdir")


# --------------------------------------------------------------------------------------------
# The scenario

os.makedirs(os.path.join(WORK, "vdir"), exist_ok=True)
os.makedirs(os.path.join(WORK, "vdir-new"), exist_ok=True)
if PROXY_URL is None:
    PROXY_URL = start_proxy()
print(f"server {SERVER} at {BASE_URL}; vdirsyncer talks to {PROXY_URL}; work dir {WORK}")
CONFIG = write_configs()
LOCAL = os.path.join(WORK, "vdir", COLL)


@check("setup.mkcalendar")
def _():
    home = find_home()
    path = f"{home}{COLL}/"
    body = ('<?xml version="1.0" encoding="utf-8"?>\n<C:mkcalendar xmlns:D="DAV:" '
            'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
            f"<D:displayname>{DISPLAYNAME}</D:displayname>"
            "</D:prop></D:set></C:mkcalendar>")
    status, _, data = http_req("MKCALENDAR", path, body, {"Content-Type": "application/xml; charset=utf-8"})
    expect_eq(status, 201, f"MKCALENDAR {path} status")
    STATE["home"] = home
    STATE["coll"] = path
    print(f"    calendar home {home}, calendar {path}")


@check("discover.finds-calendar", needs=["coll"])
def _():
    r = vds(CONFIG["strict"], "discover", "main")
    expect_clean(r, "discover")
    expect(f'"{COLL}"' in r.out, f"discover's listing does not show {COLL!r}")
    expect(os.path.isdir(LOCAL), f"discover did not create the local collection {LOCAL}")
    STATE["discovered"] = True


@check("first-sync.server-to-local", needs=["discovered"])
def _():
    coll = STATE["coll"]
    for name, day in (("s1", "01"), ("s2", "02")):
        server_put(f"{coll}{fname(name)}", ics(uid(name), f"{name} from the server", day))
    for name, day in (("l1", "03"), ("l2", "04")):
        write_local(LOCAL, fname(name), ics(uid(name), f"{name} from the vdir", day))
    server_put(f"{coll}{fname('rs')}", rich_ics(uid("rs"), "server"))
    server_put(f"{coll}{ODD_HREF}", ics(uid("odd"), "odd from the server", "09"))
    write_local(LOCAL, fname("plain"), ics(uid("plain"), "plain from the vdir", "10"))
    write_local(LOCAL, fname("rl"), rich_ics(uid("rl"), "vdir"))
    write_local(LOCAL, fname("todo"), todo_ics(uid("todo")))
    r = vds(CONFIG["strict"], "sync", "main")
    STATE["first_sync"] = r
    expect_clean(r, "first sync")
    local = local_items(LOCAL)
    for name in ("s1", "s2", "odd"):
        expect_item("vdir", local, name, f"{name} from the server")


@check("first-sync.local-to-server", needs=["first_sync"])
def _():
    r = LAST_RUN[0] = STATE["first_sync"]
    expect_clean(r, "first sync")
    server = server_items(STATE["coll"])
    for name in ("l1", "l2", "plain"):
        expect_item("server", server, name, f"{name} from the vdir")
    href = server[uid("plain")][0]
    expect(href.endswith(f"/{uid('plain')}.ics"), f"plain was stored at {href}, not at <its UID>.ics")
    expect_same_uids(local_items(LOCAL), server)
    STATE["synced"] = True


def idempotent_sync(config):
    before_local = local_state(LOCAL)
    before_server = server_collection_state(STATE["coll"])
    r = vds(config, "sync", "main")
    expect_clean(r, "sync with nothing to do")
    expect_eq(r.actions(), [], "changes vdirsyncer reported")
    writes = [f"{e[0]} {e[1]} -> {e[4]}" for e in r.exchanges if e[0] not in ("PROPFIND", "REPORT", "GET", "OPTIONS", "HEAD")]
    expect_eq(writes, [], "requests that change the server")
    after_local = local_state(LOCAL)
    if after_local != before_local:
        changed = sorted({n for n, *_ in before_local} ^ {n for n, *_ in after_local}
                         | {a[0] for a, b in zip(before_local, after_local) if a != b})
        raise Failed(f"the vdir changed (files {changed})")
    after_server = server_collection_state(STATE["coll"])
    expect_eq(after_server[0], before_server[0], "server members and ETags")
    expect_eq(after_server[1], before_server[1], "server DAV:sync-token")
    expect_eq(after_server[2], before_server[2], "server CS:getctag")


@check("first-sync.second-run-changes-nothing", needs=["synced"])
def _():
    idempotent_sync(CONFIG["strict"])


@check("first-sync.rich-items-preserved", needs=["synced"])
def _():
    local, server = local_items(LOCAL), server_items(STATE["coll"])
    problems = []
    for side, items, name, original in (
        ("vdir", local, "rs", rich_ics(uid("rs"), "server")),
        ("server", server, "rl", rich_ics(uid("rl"), "vdir")),
        ("server", server, "todo", todo_ics(uid("todo"))),
    ):
        if uid(name) not in items:
            problems.append(f"{name} missing on the {side}")
            continue
        text = items[uid(name)][2] if side == "vdir" else items[uid(name)][3]
        lost, added = semantic_diff(original, text)
        if lost or added:
            problems.append(f"{name} on the {side}: lost {lost}, gained {added}")
    expect(not problems, "; ".join(problems))


def content_agrees():
    local, server = local_items(LOCAL), server_items(STATE["coll"])
    expect_same_uids(local, server)
    problems = []
    for u, (name, _, text) in sorted(local.items()):
        lost, added = semantic_diff(text, server[u][3])
        if lost or added:
            problems.append(f"{u}: vdir {name} has {lost} where the server's {server[u][0]} has {added}")
    expect(not problems, "vdir and server disagree: " + "; ".join(problems))


@check("first-sync.content-agrees", needs=["synced"])
def _():
    content_agrees()


@check("metasync.displayname-server-to-local", needs=["synced"])
def _():
    r = vds(CONFIG["strict"], "metasync", "main")
    expect_clean(r, "metasync")
    p = os.path.join(LOCAL, "displayname")
    expect(os.path.exists(p), "no displayname file in the vdir after metasync")
    with open(p, encoding="utf-8") as f:
        expect_eq(f.read().strip(), DISPLAYNAME, "displayname in the vdir")
    STATE["metasynced"] = True


@check("metasync.color-local-to-server", needs=["metasynced"])
def _():
    with open(os.path.join(LOCAL, "color"), "w", encoding="utf-8") as f:
        f.write(COLOR)
    r = vds(CONFIG["strict"], "metasync", "main")
    expect_clean(r, "metasync")
    root = propfind(STATE["coll"], ["<I:calendar-color/>"])
    resp = root.find(f"{DAV}response")
    el = ok_props(resp).get(f"{ICAL}calendar-color") if resp is not None else None
    got = (el.text or "").strip() if el is not None else None
    expect(got is not None and got.upper() in (COLOR, COLOR + "FF"),
           f"calendar-color on the server is {got!r}, expected {COLOR!r}")


@check("changes.sync", needs=["synced"])
def _():
    coll = STATE["coll"]
    server = server_items(coll)
    # the vdir: create l3, modify l1, delete l2
    write_local(LOCAL, fname("l3"), ics(uid("l3"), "l3 created in the vdir", "06"))
    write_local(LOCAL, fname("l1"), ics(uid("l1"), "l1 edited in the vdir", "03"))
    os.remove(os.path.join(LOCAL, fname("l2")))
    odd_local = local_items(LOCAL)[uid("odd")][0]
    write_local(LOCAL, odd_local, ics(uid("odd"), "odd edited in the vdir", "09"))
    # the server, as another client: create s3, modify s1, delete s2
    server_put(f"{coll}{fname('s3')}", ics(uid("s3"), "s3 created on the server", "07"))
    href, etag, _, _ = server[uid("s1")]
    server_put(href, ics(uid("s1"), "s1 edited on the server", "01"), etag)
    href, etag, _, _ = server[uid("s2")]
    server_delete(href, etag)
    r = vds(CONFIG["strict"], "sync", "main")
    STATE["changes"] = r
    expect_clean(r, "sync after changes on both sides")
    STATE["after_changes"] = (local_items(LOCAL), server_items(coll))


def changes_check(cid, fn):
    @check(cid, needs=["after_changes"])
    def _():
        LAST_RUN[0] = STATE["changes"]  # on failure, show that sync's output and writes
        local, server = STATE["after_changes"]
        fn(local, server)


changes_check("create.local-to-server", lambda lo, se: expect_item("server", se, "l3", "l3 created in the vdir"))
changes_check("create.server-to-local", lambda lo, se: expect_item("vdir", lo, "s3", "s3 created on the server"))
changes_check("modify.local-to-server", lambda lo, se: expect_item("server", se, "l1", "l1 edited in the vdir"))
changes_check("modify.server-to-local", lambda lo, se: expect_item("vdir", lo, "s1", "s1 edited on the server"))
changes_check("modify.local-to-server-encoded-href", lambda lo, se: (
    expect_item("server", se, "odd", "odd edited in the vdir"),
    expect_eq(se[uid("odd")][0].rsplit("/", 1)[1], ODD_HREF.replace("%40", "@"), "href of odd (normalized)")))
changes_check("delete.local-to-server", lambda lo, se: expect_absent("server", se, "l2"))
changes_check("delete.server-to-local", lambda lo, se: expect_absent("vdir", lo, "s2"))


@check("changes.both-sides-agree", needs=["after_changes"])
def _():
    LAST_RUN[0] = STATE["changes"]
    local, server = STATE["after_changes"]
    expect_same_uids(local, server)
    for u, (_, summary, _) in local.items():
        expect_eq(server[u][2], summary, f"SUMMARY of {u} on the server vs in the vdir")
    expect_eq(len(local), 9, "number of items (s1, s3, l1, l3, rs, rl, todo, plain, odd)")


@check("conflict.reported-without-resolution", needs=["after_changes"])
def _():
    coll = STATE["coll"]
    server = server_items(coll)
    href, etag, _, _ = server[uid("l1")]
    local_name = local_items(LOCAL)[uid("l1")][0]
    write_local(LOCAL, local_name, ics(uid("l1"), "l1 conflict: vdir version", "03"))
    server_put(href, ics(uid("l1"), "l1 conflict: server version", "03"), etag)
    STATE["conflict_made"] = True
    r = vds(CONFIG["strict"], "sync", "main")
    expect(r.rc != 0, "sync exited 0 although one item changed on both sides and no conflict_resolution is set")
    expect("changed on both sides" in r.out and uid("l1") in r.out,
           f"sync did not report the conflict on {uid('l1')}")
    expect_item("vdir", local_items(LOCAL), "l1", "l1 conflict: vdir version")
    expect_item("server", server_items(coll), "l1", "l1 conflict: server version")


@check("conflict.a-wins-resolution", needs=["conflict_made"])
def _():
    r = vds(CONFIG["a-wins"], "sync", "main")
    expect_clean(r, 'sync with conflict_resolution = "a wins"')
    local, server = local_items(LOCAL), server_items(STATE["coll"])
    expect_item("vdir", local, "l1", "l1 conflict: vdir version")
    expect_item("server", server, "l1", "l1 conflict: vdir version")
    expect_same_uids(local, server)
    STATE["resolved"] = True


@check("final.second-run-changes-nothing", needs=["resolved"])
def _():
    idempotent_sync(CONFIG["a-wins"])


@check("final.content-agrees", needs=["resolved"])
def _():
    content_agrees()


@check("create-collection.discover-makes-calendar", needs=["home"])
def _():
    d = os.path.join(WORK, "vdir-new", NEWCOLL)
    os.makedirs(d, exist_ok=True)
    write_local(d, fname("n1"), ics(uid("n1"), "n1 in a collection only the vdir had", "08"))
    r = vds(CONFIG["strict"], "discover", "created")
    expect_clean(r, "discover with implicit create")
    path = f"{STATE['home']}{NEWCOLL}/"
    root = propfind(path, ["<D:resourcetype/>", "<C:supported-calendar-component-set/>"])
    resp = root.find(f"{DAV}response")
    rt = ok_props(resp).get(f"{DAV}resourcetype") if resp is not None else None
    expect(rt is not None and rt.find(f"{CAL}calendar") is not None,
           f"{path} is not a calendar collection after vdirsyncer created it")
    STATE["newcoll"] = path


@check("create-collection.sync-uploads", needs=["newcoll"])
def _():
    r = vds(CONFIG["strict"], "sync", "created")
    expect_clean(r, "sync of the new collection")
    expect_item("server", server_items(STATE["newcoll"]), "n1", "n1 in a collection only the vdir had")


_results.close()
with open(os.path.join(WORK, "http.log"), "w", encoding="utf-8") as _f:
    _stdout, sys.stdout = sys.stdout, _f
    try:
        for _ex in EXCHANGES:
            show_exchange("", _ex)
    finally:
        sys.stdout = _stdout
_statuses = collections.Counter(f"{e[0]} {e[4]}" for e in EXCHANGES)
print("vdirsyncer's requests by method and status: " + ", ".join(f"{k} x{v}" for k, v in sorted(_statuses.items())))
print(f"vdirsyncer runs: {len(RUNS)}, {sum(r.seconds for r in RUNS):.1f} s; {len(EXCHANGES)} HTTP exchanges "
      f"(full output in {os.path.join(WORK, 'vdirsyncer.log')})")
print(f"scenario: {len(PASSED)} checks passed, {len(FAILED)} failed")
sys.exit(0)
