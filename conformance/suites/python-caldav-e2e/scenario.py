#!/usr/bin/env python3
"""End-to-end scenario: the python `caldav` library against a running Almanac.

The client is given only the base URL and alice's credentials (environment variables
CALDAV_E2E_URL, CALDAV_E2E_USER, CALDAV_E2E_PASSWORD). Each check is a named step; a failed
step prints what went wrong and the last HTTP exchanges, and the run goes on where it can.
The last line is `N passed, M failed`; the exit status is 1 when anything failed.
"""

import base64
import collections
import logging
import os
import sys
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid

import caldav
from caldav.lib import error as caldav_error

BASE_URL = os.environ["CALDAV_E2E_URL"]
USER = os.environ["CALDAV_E2E_USER"]
PASSWORD = os.environ["CALDAV_E2E_PASSWORD"]

RUN = uuid.uuid4().hex[:8]  # keeps UIDs unique should the database ever be reused


# --------------------------------------------------------------------------------------------
# Protocol transcript: every request the library sends, kept so a failure can show it.

TRANSCRIPT = collections.deque(maxlen=6)
PUT_BODIES = {}  # path -> bytes of the last PUT body the library sent there


def _path(url):
    return urllib.parse.urlsplit(str(url)).path


def instrument(client):
    """Wraps the client's HTTP session so every exchange is recorded."""
    session = client.session
    original = session.request

    def request(method, url, *args, **kwargs):
        data = kwargs.get("data")
        if isinstance(data, str):
            data = data.encode("utf-8")
        resp = original(method, url, *args, **kwargs)
        TRANSCRIPT.append((method, str(url), data or b"", resp.status_code, dict(resp.headers), resp.content or b""))
        if method == "PUT" and resp.status_code in (200, 201, 204):
            PUT_BODIES[_path(url)] = data or b""
        return resp

    session.request = request
    return client


def _clip(b, n=1500):
    if isinstance(b, bytes):
        b = b.decode("utf-8", "replace")
    return b if len(b) <= n else b[:n] + f"... [{len(b) - n} more chars]"


def dump_transcript(n=3):
    items = list(TRANSCRIPT)[-n:]
    if not items:
        return
    print("    last HTTP exchanges (oldest first):")
    for method, url, body, status, headers, content in items:
        print(f"    >>> {method} {url}")
        if body:
            for line in _clip(body).splitlines():
                print(f"        {line}")
        print(f"    <<< {status}  {headers.get('content-type', headers.get('Content-Type', ''))}")
        for line in _clip(content).splitlines():
            print(f"        {line}")


# --------------------------------------------------------------------------------------------
# The library's own "deviation from expectations" warnings count as failures.

class DeviationCounter(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())


DEVIATIONS = DeviationCounter()
logging.getLogger("caldav").addHandler(DEVIATIONS)


# --------------------------------------------------------------------------------------------
# Checks

class Failed(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failed(what)


def expect_eq(actual, wanted, what):
    if actual != wanted:
        raise Failed(f"{what}: expected {wanted!r}, got {actual!r}")


PASSED = []
FAILED = []
STATE = {}


def step(name, needs=()):
    """Runs the decorated function at once as the check `name`."""

    def run(fn):
        missing = [n for n in needs if n not in STATE]
        if missing:
            FAILED.append(name)
            print(f"FAIL {name}: cannot run, an earlier step did not produce {', '.join(missing)}")
            return fn
        TRANSCRIPT.clear()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            FAILED.append(name)
            kind = "" if isinstance(e, Failed) else f"{type(e).__name__}: "
            print(f"FAIL {name}: {kind}{e}")
            if not isinstance(e, Failed):
                for line in traceback.format_exc().rstrip().splitlines()[-8:]:
                    print(f"    {line}")
            dump_transcript()
        else:
            PASSED.append(name)
            print(f"ok   {name}")
        return fn

    return run


def raw_get(url, user=USER, password=PASSWORD):
    """GET with the standard library, bypassing caldav's response handling (which rewrites
    CRLF): returns (status, headers, body bytes)."""
    req = urllib.request.Request(str(url), method="GET")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def ics(uid, summary, start="20300105T090000Z", end="20300105T100000Z", extra=""):
    return (
        "BEGIN:VCALENDAR\r\n"
        "VERSION:2.0\r\n"
        "PRODID:-//Almanac conformance//python-caldav-e2e//EN\r\n"
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\n"
        "DTSTAMP:20300101T000000Z\r\n"
        f"DTSTART:{start}\r\n"
        f"DTEND:{end}\r\n"
        f"SUMMARY:{summary}\r\n"
        f"{extra}"
        "END:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )


def todo_ics(uid, summary, completed=False):
    status = "STATUS:COMPLETED\r\nCOMPLETED:20300102T120000Z\r\n" if completed else "STATUS:NEEDS-ACTION\r\n"
    return (
        "BEGIN:VCALENDAR\r\n"
        "VERSION:2.0\r\n"
        "PRODID:-//Almanac conformance//python-caldav-e2e//EN\r\n"
        "BEGIN:VTODO\r\n"
        f"UID:{uid}\r\n"
        "DTSTAMP:20300101T000000Z\r\n"
        f"SUMMARY:{summary}\r\n"
        "DUE:20300110T170000Z\r\n"
        f"{status}"
        "END:VTODO\r\n"
        "END:VCALENDAR\r\n"
    )


def uid_of(obj):
    return str(obj.icalendar_component["UID"])


def summary_of(obj):
    return str(obj.icalendar_component["SUMMARY"])


def paths(objs):
    return sorted(_path(o.url.canonical()) for o in objs)


def check_stored_bytes(url, what):
    """The server must give back exactly the bytes the library PUT."""
    sent = PUT_BODIES.get(_path(url))
    expect(sent is not None, f"{what}: no successful PUT to {_path(url)} was recorded")
    status, headers, body = raw_get(url)
    expect_eq(status, 200, f"{what}: GET {_path(url)} status")
    if body != sent:
        raise Failed(f"{what}: GET {_path(url)} returned different bytes\n--- sent ---\n{sent!r}\n--- got ---\n{body!r}")
    return headers


# --------------------------------------------------------------------------------------------
# The scenario

client = instrument(caldav.DAVClient(url=BASE_URL, username=USER, password=PASSWORD))


@step("discovery: principal found from the base URL")
def _():
    principal = client.principal()
    expect(_path(principal.url).endswith(f"/principals/{USER}/"), f"principal URL is {principal.url}")
    STATE["principal"] = principal


@step("discovery: calendar home set", needs=["principal"])
def _():
    home = STATE["principal"].calendar_home_set
    expect(_path(home.url).endswith(f"/calendars/{USER}/"), f"calendar home set is {home.url}")


@step("discovery: default calendar listed as 'Calendar'", needs=["principal"])
def _():
    cals = STATE["principal"].calendars()
    defaults = [c for c in cals if _path(c.url).endswith(f"/calendars/{USER}/default/")]
    expect(defaults, f"no calendar at /calendars/{USER}/default/ among {[str(c.url) for c in cals]}")
    expect_eq(len(cals), 1, "number of calendars of a new user")
    cal = defaults[0]
    expect_eq(cal.name, "Calendar", "display name from the calendar listing")
    expect_eq(cal.get_display_name(), "Calendar", "DAV:displayname of the default calendar")
    STATE["default"] = cal


@step("discovery: default calendar supports VEVENT and VTODO", needs=["default"])
def _():
    comps = set(STATE["default"].get_supported_components())
    expect({"VEVENT", "VTODO"} <= comps, f"supported-calendar-component-set is {sorted(comps)}")


WORK_NAME = "Conformance Work ✓"
WORK_ID = f"conf-work-{RUN}"


@step("mkcalendar: principal.make_calendar creates a calendar", needs=["principal"])
def _():
    cal = STATE["principal"].make_calendar(name=WORK_NAME, cal_id=WORK_ID)
    expect(_path(cal.url).endswith(f"/calendars/{USER}/{WORK_ID}/"), f"new calendar URL is {cal.url}")
    STATE["work"] = cal


@step("mkcalendar: new calendar listed with its name", needs=["work"])
def _():
    cals = STATE["principal"].calendars()
    found = [c for c in cals if _path(c.url).endswith(f"/{WORK_ID}/")]
    expect(found, f"{WORK_ID} not among {[str(c.url) for c in cals]}")
    expect_eq(found[0].name, WORK_NAME, "display name in the listing")
    expect_eq(len(cals), 2, "number of calendars after MKCALENDAR")


@step("mkcalendar: new calendar is empty", needs=["work"])
def _():
    expect_eq(STATE["work"].events(), [], "events() of a new calendar")


EV = {name: f"{name}-{RUN}@conformance.almanac" for name in ("alpha", "beta", "gamma", "delta", "epsilon")}


@step("events: save_event stores three events", needs=["work"])
def _():
    cal = STATE["work"]
    saved = {}
    for i, name in enumerate(("alpha", "beta", "gamma")):
        ev = cal.save_event(ics(EV[name], f"Event {name}", start=f"2030010{i + 1}T090000Z", end=f"2030010{i + 1}T100000Z"))
        expect(isinstance(ev, caldav.Event), f"save_event returned {type(ev).__name__}")
        expect(_path(ev.url).startswith(_path(cal.url)), f"event URL {ev.url} is outside {cal.url}")
        saved[name] = ev
    STATE["events"] = saved


@step("events: stored bytes are exactly the bytes sent", needs=["events"])
def _():
    for name, ev in STATE["events"].items():
        check_stored_bytes(ev.url, f"event {name}")


RAW_UID = f"raw-{RUN}@conformance.almanac"
RAW_ICS = (
    "BEGIN:VCALENDAR\r\n"
    "VERSION:2.0\r\n"
    "PRODID:-//Almanac conformance//raw bytes//EN\r\n"
    "CALSCALE:GREGORIAN\r\n"
    "BEGIN:VEVENT\r\n"
    f"UID:{RAW_UID}\r\n"
    "DTSTAMP:20300101T000000Z\r\n"
    "DTSTART;VALUE=DATE:20300201\r\n"
    "DTEND;VALUE=DATE:20300202\r\n"
    "SUMMARY:Réunion — 会議 \\, with escapes\\; and a very long summary that is folde\r\n"
    " d across two lines\r\n"
    "DESCRIPTION:line one\\nline two\r\n"
    'X-ALMANAC-TEST;X-PARAM="quoted:value";Y=2:keep me exactly\r\n'
    "END:VEVENT\r\n"
    "END:VCALENDAR\r\n"
).encode("utf-8")


@step("events: raw PUT of hand-written iCalendar round-trips byte-exact", needs=["work"])
def _():
    url = STATE["work"].url.join("raw-bytes.ics")
    r = client.put(url, RAW_ICS, {"Content-Type": "text/calendar; charset=utf-8"})
    expect_eq(r.status, 201, "PUT of a new object")
    status, headers, body = raw_get(url)
    expect_eq(status, 200, "GET status")
    expect(headers.get("Content-Type", "").startswith("text/calendar"), f"Content-Type is {headers.get('Content-Type')!r}")
    if body != RAW_ICS:
        raise Failed(f"GET returned different bytes\n--- sent ---\n{RAW_ICS!r}\n--- got ---\n{body!r}")
    put_etag = r.headers.get("ETag")
    if put_etag is not None:  # RFC 4791 §5.3.4: only when stored unchanged; then it must match
        expect_eq(headers.get("ETag"), put_etag, "ETag of GET vs ETag of PUT")
    STATE["raw_url"] = url


@step("events: event_by_url loads what was saved", needs=["events"])
def _():
    cal = STATE["work"]
    for name, ev in STATE["events"].items():
        loaded = cal.event_by_url(ev.url)
        expect_eq(uid_of(loaded), EV[name], f"UID of {name}")
        expect_eq(summary_of(loaded), f"Event {name}", f"SUMMARY of {name}")
        expect(loaded.props.get("{DAV:}getetag"), f"no ETag on GET of {name}")


@step("events: raw event loads through the library", needs=["raw_url"])
def _():
    loaded = STATE["work"].event_by_url(STATE["raw_url"])
    expect_eq(uid_of(loaded), RAW_UID, "UID")
    expect_eq(summary_of(loaded), "Réunion — 会議 , with escapes; and a very long summary that is folded across two lines", "SUMMARY")


@step("events: modify and save() updates the event", needs=["events"])
def _():
    ev = STATE["work"].event_by_url(STATE["events"]["beta"].url)
    etag_before = ev.props.get("{DAV:}getetag")
    ev.icalendar_component["SUMMARY"] = "Event beta (moved)"
    ev.save()
    check_stored_bytes(ev.url, "updated beta")
    again = STATE["work"].event_by_url(ev.url)
    expect_eq(summary_of(again), "Event beta (moved)", "SUMMARY after update")
    expect(again.props.get("{DAV:}getetag") != etag_before, "ETag did not change after an update")


@step("events: delete() removes the event", needs=["events"])
def _():
    ev = STATE["events"]["gamma"]
    ev.delete()
    status, _, body = raw_get(ev.url)
    expect_eq(status, 404, f"GET after DELETE (body {body[:200]!r})")
    try:
        STATE["work"].event_by_url(ev.url)
    except caldav_error.NotFoundError:
        pass
    else:
        raise Failed("event_by_url of a deleted event did not raise NotFoundError")
    STATE["gamma_deleted"] = True


@step("events: calendar.events() returns exactly the remaining events", needs=["events", "raw_url", "gamma_deleted"])
def _():
    evs = STATE["work"].events()
    wanted = sorted([EV["alpha"], EV["beta"], RAW_UID])
    expect_eq(sorted(uid_of(e) for e in evs), wanted, "UIDs from events()")
    expect_eq(
        paths(evs),
        sorted([_path(STATE["events"]["alpha"].url), _path(STATE["events"]["beta"].url), _path(STATE["raw_url"])]),
        "URLs from events()",
    )
    by_uid = {uid_of(e): e for e in evs}
    expect_eq(summary_of(by_uid[EV["beta"]]), "Event beta (moved)", "SUMMARY of beta via events()")


# --- sync-collection (RFC 6578) --------------------------------------------------------------

ETAG = "{DAV:}getetag"


@step("sync: initial objects_by_sync_token lists every object", needs=["work", "raw_url", "gamma_deleted"])
def _():
    cal = STATE["work"]
    coll = cal.objects_by_sync_token(load_objects=True, disable_fallback=True)
    token = coll.sync_token
    expect(token and not str(token).startswith("fake-"), f"no real sync token: {token!r}")
    expect_eq(
        paths(coll),
        sorted([_path(STATE["events"]["alpha"].url), _path(STATE["events"]["beta"].url), _path(STATE["raw_url"])]),
        "objects of the initial sync",
    )
    for o in coll:
        expect(o.props.get(ETAG), f"no ETag for {o.url} in the initial sync")
        expect(o.data and "BEGIN:VCALENDAR" in o.data, f"no data loaded for {o.url}")
    STATE["sync0"] = coll
    STATE["token0"] = token
    # A second, independent snapshot for the library's own sync() later on.
    STATE["sync0_mirror"] = cal.objects_by_sync_token(load_objects=True, disable_fallback=True)


@step("sync: one add, one modify, one delete", needs=["token0"])
def _():
    cal = STATE["work"]
    added = cal.save_event(ics(EV["delta"], "Event delta", start="20300110T090000Z", end="20300110T100000Z"))
    alpha = cal.event_by_url(STATE["events"]["alpha"].url)
    alpha.icalendar_component["SUMMARY"] = "Event alpha (edited)"
    alpha.save()
    raw = cal.event_by_url(STATE["raw_url"])
    raw.delete()
    STATE["changes"] = {
        "added": _path(added.url),
        "modified": _path(alpha.url),
        "deleted": _path(STATE["raw_url"]),
    }


@step("sync: delta from the initial token is exactly those three changes", needs=["changes"])
def _():
    cal = STATE["work"]
    ch = STATE["changes"]
    delta = cal.objects_by_sync_token(sync_token=STATE["token0"], load_objects=False, disable_fallback=True)
    token1 = delta.sync_token
    expect(token1 and not str(token1).startswith("fake-"), f"no real sync token: {token1!r}")
    expect(token1 != STATE["token0"], "sync token did not change after three changes")
    expect_eq(paths(delta), sorted(ch.values()), "changed members reported")
    by_path = {_path(o.url.canonical()): o for o in delta}
    # Deletions come as a bare <response> with 404 status: the library leaves them without ETag
    # and without data; loading them fails with NotFoundError.
    gone = by_path[ch["deleted"]]
    expect(gone.props.get(ETAG) is None, f"deleted member reported with ETag {gone.props.get(ETAG)!r}")
    expect(gone.data is None, "deleted member has data")
    try:
        gone.load()
    except caldav_error.NotFoundError:
        pass
    else:
        raise Failed("loading the deleted member did not raise NotFoundError")
    for kind in ("added", "modified"):
        o = by_path[ch[kind]]
        etag = o.props.get(ETAG)
        expect(etag, f"{kind} member reported without ETag")
        status, headers, _ = raw_get(o.url)
        expect_eq(status, 200, f"GET of the {kind} member")
        expect_eq(headers.get("ETag"), etag, f"ETag of the {kind} member in the report vs GET")
    STATE["token1"] = token1


@step("sync: a second sync from the new token reports nothing", needs=["token1"])
def _():
    again = STATE["work"].objects_by_sync_token(sync_token=STATE["token1"], load_objects=False, disable_fallback=True)
    expect_eq(paths(again), [], "members reported with no change since the token")
    expect(again.sync_token and not str(again.sync_token).startswith("fake-"), f"no real sync token: {again.sync_token!r}")


@step("sync: SynchronizableCalendarObjectCollection.sync() applies the changes", needs=["changes", "sync0_mirror"])
def _():
    coll = STATE["sync0_mirror"]
    ch = STATE["changes"]
    updated, deleted = coll.sync()
    expect_eq(paths(updated), sorted([ch["added"], ch["modified"]]), "updated objects from sync()")
    expect_eq(paths(deleted), [ch["deleted"]], "deleted objects from sync()")
    expect(not str(coll.sync_token).startswith("fake-"), "sync() fell back to a fake token")
    expect_eq(
        paths(coll),
        sorted([ch["added"], ch["modified"], _path(STATE["events"]["beta"].url)]),
        "collection contents after sync()",
    )
    by_path = {_path(o.url.canonical()): o for o in coll}
    expect_eq(summary_of(by_path[ch["modified"]]), "Event alpha (edited)", "modified object's new SUMMARY")
    updated2, deleted2 = coll.sync()
    expect_eq((paths(updated2), paths(deleted2)), ([], []), "a second sync() with no changes")


@step("sync: unknown sync token is refused", needs=["work"])
def _():
    # RFC 6578 §3.2: an invalid token gets 403 DAV:valid-sync-token; never a silent full listing.
    try:
        res = STATE["work"].objects_by_sync_token(
            sync_token="urn:almanac:sync:not-a-real-token", load_objects=False, disable_fallback=True
        )
    except caldav_error.DAVError:
        # The library turns the 403 into an AuthorizationError; the answer itself is checked.
        method, _, _, status, _, body = TRANSCRIPT[-1]
        expect_eq((method, status), ("REPORT", 403), "method and status of the refusal")
        expect(b"valid-sync-token" in body, f"403 without DAV:valid-sync-token: {body[:300]!r}")
    else:
        raise Failed(f"a bogus sync token was accepted and answered with {len(res)} members")


# --- todos -----------------------------------------------------------------------------------

TODO_OPEN = f"todo-open-{RUN}@conformance.almanac"
TODO_DONE = f"todo-done-{RUN}@conformance.almanac"


@step("todos: save_todo into the default calendar", needs=["default"])
def _():
    cal = STATE["default"]
    t1 = cal.save_todo(todo_ics(TODO_OPEN, "Buy milk"))
    t2 = cal.save_todo(todo_ics(TODO_DONE, "File taxes", completed=True))
    for t in (t1, t2):
        expect(isinstance(t, caldav.Todo), f"save_todo returned {type(t).__name__}")
        check_stored_bytes(t.url, f"todo {uid_of(t)}")
    STATE["todos"] = {TODO_OPEN: t1, TODO_DONE: t2}


@step("todos: calendar.todos(include_completed=True) lists both", needs=["todos"])
def _():
    todos = STATE["default"].todos(include_completed=True)
    expect_eq(sorted(uid_of(t) for t in todos), sorted([TODO_OPEN, TODO_DONE]), "UIDs from todos(include_completed=True)")
    by_uid = {uid_of(t): t for t in todos}
    expect_eq(summary_of(by_uid[TODO_OPEN]), "Buy milk", "SUMMARY of the pending todo")


# calendar.todos() with its defaults asks the server to leave completed todos out with
# CALDAV:prop-filter (is-not-defined COMPLETED, STATUS text-match negate-condition).
@step("todos: calendar.todos() lists the pending todo only (prop-filter)", needs=["todos"])
def _():
    todos = STATE["default"].todos()
    expect_eq(sorted(uid_of(t) for t in todos), [TODO_OPEN], "UIDs from todos()")


@step("todos: events() of the default calendar does not list todos", needs=["todos"])
def _():
    expect_eq(STATE["default"].events(), [], "events() of a calendar holding only todos")


# --- calendar removal --------------------------------------------------------------------------


@step("calendar: delete() removes the created calendar", needs=["work", "principal"])
def _():
    STATE["work"].delete()
    cals = STATE["principal"].calendars()
    expect_eq(
        [_path(c.url) for c in cals], [f"/calendars/{USER}/default/"], "calendars after deleting the created one"
    )


# --- authentication ----------------------------------------------------------------------------


@step("auth: wrong password raises AuthorizationError")
def _():
    bad = instrument(caldav.DAVClient(url=BASE_URL, username=USER, password=PASSWORD + "-wrong"))
    try:
        bad.principal()
    except caldav_error.AuthorizationError:
        pass
    else:
        raise Failed("principal() with a wrong password succeeded")


@step("auth: unknown user raises AuthorizationError")
def _():
    bad = instrument(caldav.DAVClient(url=BASE_URL, username=f"nobody{RUN}", password="whatever"))
    try:
        bad.principal()
    except caldav_error.AuthorizationError:
        pass
    else:
        raise Failed("principal() as an unknown user succeeded")


@step("auth: the right password still works afterwards")
def _():
    fresh = instrument(caldav.DAVClient(url=BASE_URL, username=USER, password=PASSWORD))
    expect(_path(fresh.principal().url).endswith(f"/principals/{USER}/"), "principal not found")


@step("library: no protocol deviations logged by the caldav library")
def _():
    expect(not DEVIATIONS.records, "caldav logged warnings:\n      " + "\n      ".join(DEVIATIONS.records))


if FAILED:
    print("failed steps:")
    for name in FAILED:
        print(f"  - {name}")
print(f"{len(PASSED)} passed, {len(FAILED)} failed", flush=True)
sys.exit(1 if FAILED else 0)
