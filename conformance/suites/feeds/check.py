"""Feed links and calendar export, read by python `icalendar`.

Uploads the real-world fixtures (tests/fixtures/ics) plus events whose details must never
appear in a public feed, creates one feed per mode over the owner's JSON API (the CLI-made
link comes in FEEDS_CLI_URL), fetches every feed and the owner's export, and checks each with
icalendar: it parses, holds one VCALENDAR with each needed VTIMEZONE once, the events it
should, nothing private, and a second fetch with the ETag is a 304. The bodies are written to
OUT_DIR for the ical.js half (check.mjs).

usage: check.py BASE_URL USER PASSWORD FIXTURES_DIR OUT_DIR RESULTS
"""

import base64
import json
import os
import sys
import urllib.error
import urllib.request

import icalendar

BASE, USER, PASSWORD, FIXTURES, OUT, RESULTS = sys.argv[1:7]
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
CAL = f"{BASE}calendars/{USER}/default/"
results = open(RESULTS, "a")

SECRETS = ["Secret diagnosis", "X-ray", "Clinic Street", "doctor@clinic.example", "Salary talk"]
ADDRESSES = ["carol@example.net"]

PRIVATE = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//feeds suite//EN\r
BEGIN:VEVENT\r
UID:feeds-private\r
DTSTAMP:20260101T000000Z\r
DTSTART:20260303T090000Z\r
DTEND:20260303T100000Z\r
CLASS:PRIVATE\r
SUMMARY:Secret diagnosis\r
DESCRIPTION:Bring the X-ray\r
LOCATION:Clinic Street 5\r
ATTENDEE;CN=Dr:mailto:doctor@clinic.example\r
END:VEVENT\r
END:VCALENDAR\r
"""
CONFIDENTIAL = PRIVATE.replace("feeds-private", "feeds-conf").replace(
    "CLASS:PRIVATE", "CLASS:CONFIDENTIAL").replace("Secret diagnosis", "Salary talk")
PUBLIC = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//feeds suite//EN\r
BEGIN:VEVENT\r
UID:feeds-public\r
DTSTAMP:20260101T000000Z\r
DTSTART:20260302T090000Z\r
DTEND:20260302T100000Z\r
SUMMARY:Team standup\r
ATTENDEE;CN=Carol:mailto:carol@example.net\r
BEGIN:VALARM\r
ACTION:DISPLAY\r
TRIGGER:-PT15M\r
DESCRIPTION:Standup alarm\r
END:VALARM\r
END:VEVENT\r
END:VCALENDAR\r
"""


def record(ok, check, detail=""):
    results.write(("PASS " if ok else "FAIL ") + check + ((" " + detail) if detail and not ok else "") + "\n")
    results.flush()


def request(method, url, body=None, headers=None, auth=True):
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if auth:
        req.add_header("Authorization", AUTH)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def put(name, text):
    status, _, body = request("PUT", CAL + name, text.encode(), {"Content-Type": "text/calendar"})
    if status == 403 and b"supported-calendar-component" in body:
        return False  # a journal: the default calendar takes events and to-dos
    if status not in (201, 204):
        raise SystemExit(f"PUT {name}: {status} {body!r}")
    return True


def main():
    uploaded = 0
    for f in sorted(os.listdir(FIXTURES)):
        if f.endswith(".ics"):
            uploaded += put(f, open(os.path.join(FIXTURES, f), encoding="utf-8").read())
    for name, text in (("private.ics", PRIVATE), ("conf.ics", CONFIDENTIAL), ("public.ics", PUBLIC)):
        put(name, text)
        uploaded += 1

    feeds = {}
    for mode, extra in (("full", {}), ("busy", {}), ("optin", {"include_alarms": True, "include_emails": True})):
        body = {"calendar": "default", "mode": "busy" if mode == "busy" else "full", **extra}
        status, _, answer = request("POST", BASE + "api/feeds", json.dumps(body).encode(),
                                    {"Content-Type": "application/json"})
        record(status == 201, f"api-create-{mode}", f"status {status}")
        feeds[mode] = json.loads(answer)["url"]
    feeds["cli-busy"] = os.environ["FEEDS_CLI_URL"]
    feeds["export"] = CAL

    for mode, url in feeds.items():
        auth = mode == "export"
        status, headers, body = request("GET", url, auth=auth)
        ok = status == 200 and headers.get("Content-Type") == "text/calendar; charset=utf-8"
        record(ok, f"{mode}-get", f"status {status} type {headers.get('Content-Type')}")
        if not ok:
            continue
        open(os.path.join(OUT, f"{mode}.ics"), "wb").write(body)
        text = body.decode("utf-8")
        try:
            cal = icalendar.Calendar.from_ical(text)
            record(True, f"{mode}-parses")
        except Exception as e:  # noqa: BLE001 - any parser failure is the finding
            record(False, f"{mode}-parses", repr(e))
            continue
        tzids = [str(z["TZID"]) for z in cal.walk("VTIMEZONE")]
        record(len(tzids) == len(set(tzids)), f"{mode}-zones-once", str(tzids))
        used = set()
        for comp in cal.walk():
            for prop in comp.property_items(recursive=False):
                params = getattr(prop[1], "params", {})
                if "TZID" in params:
                    used.add(str(params["TZID"]))
        missing = sorted(t for t in used if t not in tzids)
        record(not missing, f"{mode}-zones-present", f"missing {missing}")
        events = cal.walk("VEVENT")
        for e in events:
            # Every event must be readable as times: what a subscribing calendar needs.
            e.decoded("DTSTART")
        record(all("UID" in e and "DTSTART" in e for e in events), f"{mode}-events-usable")
        if mode != "export":
            leaked = [s for s in SECRETS if s in text]
            record(not leaked, f"{mode}-no-private-details", str(leaked))
            record("X-WR-CALNAME" in cal and "REFRESH-INTERVAL" in cal, f"{mode}-calendar-props")
        if mode in ("full", "cli-busy", "busy"):
            leaked = [a for a in ADDRESSES if a in text] + (["VALARM"] if cal.walk("VALARM") else [])
            record(not leaked, f"{mode}-no-addresses-or-alarms", str(leaked))
        if mode in ("busy", "cli-busy"):
            summaries = {str(e.get("SUMMARY")) for e in events}
            record(summaries == {"Busy"}, f"{mode}-only-busy", str(summaries))
            record(not cal.walk("VTODO") and not cal.walk("VJOURNAL"), f"{mode}-events-only")
        if mode == "optin":
            record("carol@example.net" in text and bool(cal.walk("VALARM")), "optin-keeps-opted-in")
        if mode in ("full", "export"):
            # The fixtures hold to-dos; a full feed and an export carry them.
            record(bool(cal.walk("VTODO")), f"{mode}-has-todos")
        etag = headers.get("ETag")
        status2, _, _ = request("GET", url, headers={"If-None-Match": etag}, auth=auth)
        record(status2 == 304, f"{mode}-second-fetch-304", f"status {status2}")
    record(uploaded > 20, "fixtures-uploaded", str(uploaded))


main()
