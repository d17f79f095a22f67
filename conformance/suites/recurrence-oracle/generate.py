#!/usr/bin/env python3
"""Deterministic generator of the recurrence-oracle test calendar.

    generate.py OUT_DIR [--count N] [--seed S]

Writes N files OUT_DIR/ev-NNNNN.ics, one VCALENDAR per event (CRLF line endings, folded at 75
octets, unique UIDs), from a fixed random seed, so every run and every backend sees the same
bytes. The mix (fractions of N):

  ~83%  single timed events over 2025-01-01 .. 2026-12-31 in Europe/Berlin, America/New_York,
        Asia/Tokyo, Australia/Sydney (southern-hemisphere DST) with VTIMEZONE components, or in
        UTC ("Z"); a few per cent sit on DST transition days at times in the gap / overlap;
        ends given by DTEND (mostly same zone, a few in UTC), DURATION (incl. nominal days
        "P1D", and PT0S), or neither (zero-length)
   ~5%  all-day events (VALUE=DATE), 1-3 days via DTEND or DURATION, or neither (one day)
  ~10%  recurring events: DAILY / WEEKLY (BYDAY) / MONTHLY (BYMONTHDAY incl. 29-31 and -1,
        BYDAY=2TU, -1FR, ...) / YEARLY, each with COUNT, UNTIL (UTC form for zoned DTSTART,
        sometimes exactly on an instance) or no end; some with EXDATEs (same TZID as DTSTART),
        some with 1-2 RECURRENCE-ID overrides moving an instance by hours or days, a few RDATEs;
        some all-day, some at 02:30 local (in the spring-forward gap once a year)
   ~1%  floating-time events (no TZID, no Z), single and recurring
  ~0.5% Outlook-style events with TZID "W. Europe Standard Time" and a matching VTIMEZONE
  a few RDATE-only events (no RRULE)

Only the standard library and python-dateutil (to list a rule's instances when choosing
EXDATEs, overrides and UNTIL values) are used; the oracle is elsewhere (check.py).
"""

import argparse
import datetime as dt
import os
import random
import sys
import zoneinfo

from dateutil import rrule as du_rrule

from windows import WINDOWS

DEFAULT_SEED = 4791
RANGE_START = dt.date(2025, 1, 1)
RANGE_DAYS = 730  # .. 2026-12-31
DTSTAMP = "20250101T000000Z"
PRODID = "-//Almanac conformance//recurrence-oracle//EN"

# ------------------------------------------------------------------------------------------
# VTIMEZONE definitions (current rules; valid for 2025-2026 and, rules unchanged, for 2090).

VTIMEZONES = {
    "Europe/Berlin": [
        "BEGIN:VTIMEZONE",
        "TZID:Europe/Berlin",
        "BEGIN:DAYLIGHT",
        "TZOFFSETFROM:+0100",
        "TZOFFSETTO:+0200",
        "TZNAME:CEST",
        "DTSTART:19810329T020000",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "END:DAYLIGHT",
        "BEGIN:STANDARD",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "TZNAME:CET",
        "DTSTART:19961027T030000",
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
        "END:STANDARD",
        "END:VTIMEZONE",
    ],
    "America/New_York": [
        "BEGIN:VTIMEZONE",
        "TZID:America/New_York",
        "BEGIN:DAYLIGHT",
        "TZOFFSETFROM:-0500",
        "TZOFFSETTO:-0400",
        "TZNAME:EDT",
        "DTSTART:20070311T020000",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU",
        "END:DAYLIGHT",
        "BEGIN:STANDARD",
        "TZOFFSETFROM:-0400",
        "TZOFFSETTO:-0500",
        "TZNAME:EST",
        "DTSTART:20071104T020000",
        "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU",
        "END:STANDARD",
        "END:VTIMEZONE",
    ],
    "Asia/Tokyo": [
        "BEGIN:VTIMEZONE",
        "TZID:Asia/Tokyo",
        "BEGIN:STANDARD",
        "TZOFFSETFROM:+0900",
        "TZOFFSETTO:+0900",
        "TZNAME:JST",
        "DTSTART:19700101T000000",
        "END:STANDARD",
        "END:VTIMEZONE",
    ],
    "Australia/Sydney": [
        "BEGIN:VTIMEZONE",
        "TZID:Australia/Sydney",
        "BEGIN:STANDARD",
        "TZOFFSETFROM:+1100",
        "TZOFFSETTO:+1000",
        "TZNAME:AEST",
        "DTSTART:20080406T030000",
        "RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU",
        "END:STANDARD",
        "BEGIN:DAYLIGHT",
        "TZOFFSETFROM:+1000",
        "TZOFFSETTO:+1100",
        "TZNAME:AEDT",
        "DTSTART:20081005T020000",
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU",
        "END:DAYLIGHT",
        "END:VTIMEZONE",
    ],
    # What Outlook / Exchange write: a Windows zone name as TZID, observances anchored in 1601.
    "W. Europe Standard Time": [
        "BEGIN:VTIMEZONE",
        "TZID:W. Europe Standard Time",
        "BEGIN:STANDARD",
        "DTSTART:16010101T030000",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10",
        "END:STANDARD",
        "BEGIN:DAYLIGHT",
        "DTSTART:16010101T020000",
        "TZOFFSETFROM:+0100",
        "TZOFFSETTO:+0200",
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3",
        "END:DAYLIGHT",
        "END:VTIMEZONE",
    ],
}

IANA_ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
WINDOWS_ZONE = "W. Europe Standard Time"
# The generator needs real instants only to place UNTIL values; the Windows zone is Berlin's.
ZONEINFO = {name: zoneinfo.ZoneInfo(name) for name in IANA_ZONES}
ZONEINFO[WINDOWS_ZONE] = ZONEINFO["Europe/Berlin"]

# DST transition days in 2025-2026 and wall times around the change (gap or overlap).
TRANSITIONS = {
    "Europe/Berlin": [dt.date(2025, 3, 30), dt.date(2025, 10, 26), dt.date(2026, 3, 29), dt.date(2026, 10, 25)],
    WINDOWS_ZONE: [dt.date(2025, 3, 30), dt.date(2025, 10, 26), dt.date(2026, 3, 29), dt.date(2026, 10, 25)],
    "America/New_York": [dt.date(2025, 3, 9), dt.date(2025, 11, 2), dt.date(2026, 3, 8), dt.date(2026, 11, 1)],
    "Australia/Sydney": [dt.date(2025, 4, 6), dt.date(2025, 10, 5), dt.date(2026, 4, 5), dt.date(2026, 10, 4)],
}
TRANSITION_TIMES = [dt.time(0, 30), dt.time(1, 0), dt.time(1, 30), dt.time(2, 0), dt.time(2, 30), dt.time(3, 0), dt.time(3, 30)]

MINUTES = [0, 0, 0, 15, 30, 30, 45]
DST_PROBE_VARIANTS = ["dst-nominal-days", "dst-exact-hours", "dst-master-spans"]
PROBE_VARIANTS = [
    "ends-at", "starts-at", "zero-at", "pt0s-at", "zero-before", "duration-ends-at", "nominal-day-ends-near",
    "allday", "daily-ends-at", "daily-exdate-at", "weekly-override-to", "weekly-override-away",
]
DURATION_MINUTES = [15, 30, 45, 60, 60, 60, 90, 120, 180, 240, 480, 1440, 1560, 2880]


# ------------------------------------------------------------------------------------------
# Value formatting. A "mode" says how times of an event are written:
#   ("tz", TZID)   DTSTART;TZID=...:YYYYMMDDTHHMMSS   (local wall-clock time)
#   ("utc",)       DTSTART:YYYYMMDDTHHMMSSZ
#   ("float",)     DTSTART:YYYYMMDDTHHMMSS           (floating)
#   ("date",)      DTSTART;VALUE=DATE:YYYYMMDD
# Values are naive wall-clock datetimes (or dates for "date").


def utc_transitions(zone, lo, hi):
    """UTC instants (naive) in [lo, hi) at which `zone` changes its UTC offset (hourly scan)."""
    tz = ZONEINFO[zone]
    out = []
    t = lo.replace(minute=0, second=0)
    prev = t.replace(tzinfo=dt.timezone.utc).astimezone(tz).utcoffset()
    while t < hi:
        t += dt.timedelta(hours=1)
        off = t.replace(tzinfo=dt.timezone.utc).astimezone(tz).utcoffset()
        if off != prev:
            out.append(t)
            prev = off
    return out


def fmt_value(v, mode):
    if mode[0] == "date":
        return v.strftime("%Y%m%d")
    s = v.strftime("%Y%m%dT%H%M%S")
    return s + "Z" if mode[0] == "utc" else s


def prop(name, values, mode):
    if not isinstance(values, (list, tuple)):
        values = [values]
    joined = ",".join(fmt_value(v, mode) for v in values)
    if mode[0] == "tz":
        return f"{name};TZID={mode[1]}:{joined}"
    if mode[0] == "date":
        return f"{name};VALUE=DATE:{joined}"
    return f"{name}:{joined}"


def to_utc(v, mode):
    """Instant of a wall-clock value (fold=0: a gap time uses the offset before the gap, an
    ambiguous time its first occurrence, as RFC 5545 §3.3.5 says)."""
    if mode[0] == "tz":
        return v.replace(tzinfo=ZONEINFO[mode[1]]).astimezone(dt.timezone.utc).replace(tzinfo=None)
    return v  # utc and floating (evaluated in UTC)


def fmt_duration(minutes, nominal_days=False):
    """RFC 5545 duration. nominal_days writes whole days as "P<n>D" (a nominal day: the same
    wall-clock time next day) instead of hours."""
    if minutes == 0:
        return "PT0S"
    days, rem = divmod(minutes, 1440) if nominal_days else (0, minutes)
    hours, mins = divmod(rem, 60)
    out = "P"
    if days:
        out += f"{days}D"
    if hours or mins:
        out += "T"
        if hours:
            out += f"{hours}H"
        if mins:
            out += f"{mins}M"
    return out


def fold(line):
    """RFC 5545 §3.1 folding at 75 octets (ASCII content here)."""
    out = []
    while len(line) > 75:
        out.append(line[:75])
        line = " " + line[75:]
    out.append(line)
    return out


def calendar(vevents, tzids):
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN"]
    for tzid in sorted(tzids):
        lines.extend(VTIMEZONES[tzid])
    for ev in vevents:
        lines.append("BEGIN:VEVENT")
        lines.extend(ev)
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    out = []
    for line in lines:
        out.extend(fold(line))
    return ("\r\n".join(out) + "\r\n").encode("ascii")


# ------------------------------------------------------------------------------------------
# Events


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def rand_date(self, lo=RANGE_START, days=RANGE_DAYS):
        return lo + dt.timedelta(days=self.r.randrange(days))

    def rand_time(self):
        return dt.time(self.r.randrange(24), self.r.choice(MINUTES))

    def zoned_mode(self, utc_share=0.15):
        if self.r.random() < utc_share:
            return ("utc",)
        return ("tz", self.r.choice(IANA_ZONES))

    def start_for(self, mode, transition_share=0.05):
        """A wall-clock start; sometimes on a DST transition day at a gap/overlap time."""
        if mode[0] == "tz" and mode[1] in TRANSITIONS and self.r.random() < transition_share:
            day = self.r.choice(TRANSITIONS[mode[1]])
            return dt.datetime.combine(day, self.r.choice(TRANSITION_TIMES))
        return dt.datetime.combine(self.rand_date(), self.rand_time())

    def end_lines(self, start, mode, allow_none=True):
        """DTEND / DURATION / nothing for a timed event starting at wall time `start`."""
        minutes = self.r.choice(DURATION_MINUTES)
        x = self.r.random()
        if x < 0.55:
            return [prop("DTEND", start + dt.timedelta(minutes=minutes), mode)]
        if x < 0.60 and mode[0] == "tz":
            # DTEND in UTC while DTSTART is zoned: same exact length.
            end = to_utc(start, mode) + dt.timedelta(minutes=minutes)
            return [prop("DTEND", end, ("utc",))]
        if x < 0.90:
            return [f"DURATION:{fmt_duration(minutes, nominal_days=self.r.random() < 0.5)}"]
        if x < 0.92:
            return ["DURATION:PT0S"]
        if allow_none:
            return []  # zero-length (RFC 5545 §3.6.1: DTEND = DTSTART)
        return [prop("DTEND", start + dt.timedelta(minutes=minutes), mode)]

    def date_end_lines(self, start):
        days = self.r.choice([1, 1, 1, 2, 3])
        x = self.r.random()
        if x < 0.6:
            return [prop("DTEND", start + dt.timedelta(days=days), ("date",))]
        if x < 0.85:
            return [f"DURATION:P{days}D"]
        return []  # one day

    def header(self, i, summary):
        return [f"UID:oracle-{i:05d}@conformance.almanac", f"DTSTAMP:{DTSTAMP}", f"SUMMARY:{summary}"]

    # --- single events ---------------------------------------------------------------------

    def single(self, i, mode):
        start = self.start_for(mode)
        ev = self.header(i, f"single {i}")
        ev.append(prop("DTSTART", start, mode))
        ev.extend(self.end_lines(start, mode))
        return calendar([ev], {mode[1]} if mode[0] == "tz" else set())

    def allday(self, i):
        start = self.rand_date()
        ev = self.header(i, f"all-day {i}")
        ev.append(prop("DTSTART", start, ("date",)))
        ev.extend(self.date_end_lines(start))
        return calendar([ev], set())

    def rdate_only(self, i, mode):
        start = self.start_for(mode)
        ev = self.header(i, f"rdate-only {i}")
        ev.append(prop("DTSTART", start, mode))
        ev.extend(self.end_lines(start, mode, allow_none=False))
        extra = sorted({start + dt.timedelta(days=self.r.randrange(1, 300), hours=self.r.choice([0, 0, 1, -2])) for _ in range(self.r.randint(1, 3))})
        ev.append(prop("RDATE", extra, mode))
        return calendar([ev], {mode[1]} if mode[0] == "tz" else set())

    # --- boundary probes -------------------------------------------------------------------

    def probe(self, i, boundary, variant):
        """An event placed exactly against a query window boundary (a UTC instant): ending at
        it, starting at it, zero-length at it, recurring into it, ..."""
        x = self.r.random()
        if x < 0.55:
            mode = ("tz", self.r.choice(IANA_ZONES + [WINDOWS_ZONE]))
        elif x < 0.85:
            mode = ("utc",)
        else:
            mode = ("float",)
        tzids = {mode[1]} if mode[0] == "tz" else set()

        def local(instant):
            if mode[0] != "tz":
                return instant
            return instant.replace(tzinfo=dt.timezone.utc).astimezone(ZONEINFO[mode[1]]).replace(tzinfo=None)

        d = dt.timedelta(minutes=self.r.choice([15, 60, 90, 1440]))
        ev = self.header(i, f"probe {i} {variant} {boundary:%Y%m%dT%H%M%SZ}")
        extra = []
        if variant == "ends-at":
            ev += [prop("DTSTART", local(boundary - d), mode), prop("DTEND", local(boundary), mode)]
        elif variant == "starts-at":
            ev += [prop("DTSTART", local(boundary), mode), prop("DTEND", local(boundary + d), mode)]
        elif variant == "zero-at":
            ev += [prop("DTSTART", local(boundary), mode)]
        elif variant == "pt0s-at":
            ev += [prop("DTSTART", local(boundary), mode), "DURATION:PT0S"]
        elif variant == "zero-before":
            ev += [prop("DTSTART", local(boundary - dt.timedelta(seconds=1)), mode)]
        elif variant == "duration-ends-at":
            ev += [prop("DTSTART", local(boundary - d), mode), f"DURATION:{fmt_duration(int(d.total_seconds()) // 60)}"]
        elif variant == "nominal-day-ends-near":
            # P1D from the same wall time a day earlier: ends at the boundary unless the zone
            # changed its offset during that day.
            ev += [prop("DTSTART", local(boundary) - dt.timedelta(days=1), mode), "DURATION:P1D"]
        elif variant == "allday":
            day = boundary.date()
            if self.r.random() < 0.5:
                day -= dt.timedelta(days=1)
            ev += [prop("DTSTART", day, ("date",)), prop("DTEND", day + dt.timedelta(days=1), ("date",))]
            tzids = set()
        elif variant == "daily-ends-at":
            w0 = local(boundary - d) - dt.timedelta(days=3)
            ev += [prop("DTSTART", w0, mode), prop("DTEND", w0 + d, mode), "RRULE:FREQ=DAILY;COUNT=4"]
        elif variant == "daily-exdate-at":
            w0 = local(boundary) - dt.timedelta(days=2)
            ev += [prop("DTSTART", w0, mode), prop("DTEND", w0 + d, mode), "RRULE:FREQ=DAILY;COUNT=5"]
            ev.append(prop("EXDATE", w0 + dt.timedelta(days=2), mode))
        elif variant == "weekly-override-to":
            w0 = local(boundary) - dt.timedelta(days=self.r.choice([10, 17, 40]), hours=self.r.choice([0, 3]))
            ev += [prop("DTSTART", w0, mode), prop("DTEND", w0 + d, mode), "RRULE:FREQ=WEEKLY;COUNT=3"]
            rid = w0 + dt.timedelta(days=7)
            ov = self.header(i, f"probe {i} moved onto the boundary")
            start = local(boundary) if self.r.random() < 0.5 else local(boundary - d)
            ov += [prop("RECURRENCE-ID", rid, mode), prop("DTSTART", start, mode), prop("DTEND", start + d, mode)]
            extra.append(ov)
        elif variant == "weekly-override-away":
            # The instance touching the window is moved away from it.
            w0 = local(boundary) - dt.timedelta(days=7, minutes=30)
            ev += [prop("DTSTART", w0, mode), prop("DTEND", w0 + dt.timedelta(hours=1), mode), "RRULE:FREQ=WEEKLY;COUNT=3"]
            rid = w0 + dt.timedelta(days=7)
            away = rid + dt.timedelta(days=self.r.choice([-3, 12, 60]))
            ov = self.header(i, f"probe {i} moved away from the boundary")
            ov += [prop("RECURRENCE-ID", rid, mode), prop("DTSTART", away, mode), prop("DTEND", away + dt.timedelta(hours=1), mode)]
            extra.append(ov)
        else:
            raise ValueError(variant)
        return calendar([ev] + extra, tzids)

    def dst_probe(self, i, boundary, zone, transition, variant):
        """An event that crosses a DST change of `zone` (at UTC instant `transition`, a few days
        before the window start `boundary`) and ends at or within an hour of the boundary:
        nominal days (DURATION:P<n>D) and exact hours (DURATION:PT<n>H) differ by the change,
        and so does a master's exact DTEND-DTSTART from its wall-clock difference."""
        mode = ("tz", zone)
        tz = ZONEINFO[zone]

        def local(instant):
            return instant.replace(tzinfo=dt.timezone.utc).astimezone(tz).replace(tzinfo=None)

        days = (boundary - transition).days + 1
        ev = self.header(i, f"probe {i} {variant} {zone} {boundary:%Y%m%dT%H%M%SZ}")
        if variant == "dst-nominal-days":
            ev += [prop("DTSTART", local(boundary) - dt.timedelta(days=days), mode), f"DURATION:P{days}D"]
        elif variant == "dst-exact-hours":
            ev += [prop("DTSTART", local(boundary) - dt.timedelta(days=days), mode), f"DURATION:PT{24 * days}H"]
        elif variant == "dst-master-spans":
            # Master from a few hours before the change to a day before the boundary (wall
            # clock); its second daily instance, after the change, ends near the boundary.
            w_s = local(transition - dt.timedelta(hours=self.r.randint(2, 20)))
            w_e = local(boundary) - dt.timedelta(days=1)
            ev += [prop("DTSTART", w_s, mode), prop("DTEND", w_e, mode), "RRULE:FREQ=DAILY;COUNT=2"]
        else:
            raise ValueError(variant)
        return calendar([ev], {zone})

    # --- recurring events ------------------------------------------------------------------

    def rule(self, mode):
        """(rule parts without end, start value synchronised with the rule)."""
        is_date = mode[0] == "date"
        day = self.rand_date(dt.date(2024, 6, 1), 880)  # 2024-06-01 .. ~2026-10-28
        if is_date:
            t = None
        elif mode[0] == "tz" and mode[1] in ("Europe/Berlin", "America/New_York", WINDOWS_ZONE) and self.r.random() < 0.06:
            t = dt.time(2, 30)  # in the spring-forward gap once a year
        else:
            t = self.rand_time()
        kind = self.r.choices(
            ["DAILY", "WEEKLY", "MDAY", "NTH", "YEARLY"], weights=[20, 32, 14, 14, 10] if not is_date else [5, 30, 15, 10, 40]
        )[0]
        parts = []
        if kind == "DAILY":
            parts.append("FREQ=DAILY")
            interval = self.r.choice([1, 1, 2, 3])
            if interval > 1:
                parts.append(f"INTERVAL={interval}")
        elif kind == "WEEKLY":
            parts.append("FREQ=WEEKLY")
            interval = self.r.choice([1, 1, 1, 2])
            if interval > 1:
                parts.append(f"INTERVAL={interval}")
            if self.r.random() < 0.6:
                names = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
                days = {day.weekday()} | set(self.r.sample(range(7), self.r.randint(0, 2)))
                parts.append("BYDAY=" + ",".join(names[d] for d in sorted(days)))
        elif kind == "MDAY":
            parts.append("FREQ=MONTHLY")
            which = self.r.choice([1, 10, 15, 28, 29, 30, 31, -1])
            if which == -1:
                nxt = dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)
                day = nxt - dt.timedelta(days=1)
            else:
                while True:  # first month from `day` on that has this day
                    try:
                        day = day.replace(day=which)
                        break
                    except ValueError:
                        day = dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)
            parts.append(f"BYMONTHDAY={which}")
        elif kind == "NTH":
            parts.append("FREQ=MONTHLY")
            # (n-th, weekday Monday=0, BYDAY value)
            nth, wd, label = self.r.choice([(2, 1, "2TU"), (-1, 4, "-1FR"), (1, 0, "1MO"), (3, 2, "3WE"), (4, 3, "4TH")])
            days = [d for d in (day.replace(day=1) + dt.timedelta(days=k) for k in range(31)) if d.month == day.month and d.weekday() == wd]
            day = days[nth - 1] if nth > 0 else days[-1]
            parts.append(f"BYDAY={label}")
        else:
            parts.append("FREQ=YEARLY")
            if self.r.random() < 0.3:
                parts.append(f"BYMONTH={day.month}")
            if self.r.random() < 0.1:
                day = dt.date(2024, 2, 29)  # leap day: only leap years
        start = day if is_date else dt.datetime.combine(day, t)
        return parts, start

    def instances(self, parts, start, limit=60):
        """The first wall-clock instances of the rule (no end), as naive datetimes/dates."""
        naive = start if isinstance(start, dt.datetime) else dt.datetime.combine(start, dt.time())
        rule = du_rrule.rrulestr(";".join(parts), dtstart=naive)
        out = []
        for x in rule:
            out.append(x if isinstance(start, dt.datetime) else x.date())
            if len(out) >= limit:
                break
        return out

    def recurring(self, i, mode):
        is_date = mode[0] == "date"
        parts, start = self.rule(mode)
        inst = self.instances(parts, start)
        # End of the series.
        x = self.r.random()
        last = len(inst)  # instances[:last] are in the series (as far as we listed)
        infinite_ok = not (parts[0] == "FREQ=DAILY" and self.r.random() < 0.6)  # keep 2090 cheap
        if x < 0.35 or (x >= 0.70 and not infinite_ok):
            count = self.r.randint(2, 40)
            parts.append(f"COUNT={count}")
            last = min(count, len(inst))
        elif x < 0.70:
            k = self.r.randint(1, min(40, len(inst) - 1))
            last = k + 1
            u = inst[k]
            if is_date:
                until = fmt_value(u, mode)
            elif mode[0] == "float":
                until = fmt_value(u if self.r.random() < 0.5 else u + dt.timedelta(hours=self.r.randint(1, 20)), mode)
            else:
                uu = to_utc(u, mode)
                if self.r.random() < 0.5:  # exactly on the k-th instance (inclusive)
                    until = fmt_value(uu, ("utc",))
                else:  # somewhere before the next one
                    nxt = to_utc(inst[k + 1], mode) if k + 1 < len(inst) else uu + dt.timedelta(days=1)
                    gap = max(1, int((nxt - uu).total_seconds() // 60) - 1)
                    until = fmt_value(uu + dt.timedelta(minutes=self.r.randrange(gap)), ("utc",))
            parts.append(f"UNTIL={until}")
        series = inst[:last]
        tzids = {mode[1]} if mode[0] == "tz" else set()

        master = self.header(i, f"recurring {i}")
        master.append(prop("DTSTART", start, mode))
        if is_date:
            master.extend(self.date_end_lines(start))
        else:
            master.extend(self.end_lines(start, mode, allow_none=self.r.random() < 0.3))
        master.append("RRULE:" + ";".join(parts))

        candidates = series[1:]  # keep DTSTART itself as an instance
        exdates = []
        if candidates and self.r.random() < 0.35:
            exdates = sorted(self.r.sample(candidates, min(len(candidates), self.r.randint(1, 3))))
            if self.r.random() < 0.5:
                master.append(prop("EXDATE", exdates, mode))
            else:
                for e in exdates:  # one EXDATE property per value, as many clients write
                    master.append(prop("EXDATE", e, mode))
        if self.r.random() < 0.05:  # an EXDATE matching no instance: harmless
            if is_date:
                master.append(prop("EXDATE", start + dt.timedelta(days=400 * 7 + 3), mode))
            else:
                master.append(prop("EXDATE", start + dt.timedelta(minutes=17), mode))
        if self.r.random() < 0.08:
            if is_date:
                rd = [start + dt.timedelta(days=self.r.randrange(1, 400)) for _ in range(self.r.randint(1, 2))]
            else:
                rd = [start + dt.timedelta(days=self.r.randrange(1, 400), hours=self.r.choice([1, 3, -5])) for _ in range(self.r.randint(1, 2))]
            rd = sorted(set(rd) - set(series))
            if rd:
                master.append(prop("RDATE", rd, mode))

        vevents = [master]
        remaining = [c for c in candidates if c not in exdates]
        if remaining and self.r.random() < 0.25:
            for rid in sorted(self.r.sample(remaining, min(len(remaining), self.r.randint(1, 2)))):
                ov = self.header(i, f"recurring {i} (moved)")
                ov.append(prop("RECURRENCE-ID", rid, mode))
                if is_date:
                    shift = dt.timedelta(days=self.r.choice([-2, -1, 1, 1, 2, 7, 30]))
                    new = rid + shift
                    ov.append(prop("DTSTART", new, mode))
                    ov.extend(self.date_end_lines(new))
                else:
                    shift = self.r.choice(
                        [dt.timedelta(hours=h) for h in (-3, -1, 1, 2, 5, 26)] + [dt.timedelta(days=d) for d in (-2, -1, 1, 3, 9, 40)]
                    )
                    new = rid + shift
                    ov.append(prop("DTSTART", new, mode))
                    ov.extend(self.end_lines(new, mode, allow_none=False))
                ov.append("SEQUENCE:1")
                vevents.append(ov)
            if self.r.random() < 0.2:  # overrides written before the master, as some clients do
                vevents = vevents[1:] + vevents[:1]
        return calendar(vevents, tzids)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args()
    n = args.count
    g = Gen(args.seed)

    n_rec = round(n * 0.10)
    n_allday = round(n * 0.05)
    n_float = max(5, round(n * 0.01))
    n_win = max(5, round(n * 0.005))
    n_rdate = max(3, round(n * 0.002))
    # Boundary probes: every variant at both boundaries of every window (fewer for a small N).
    probes = [(b, v) for _, ws, we in WINDOWS for b in (ws, we) for v in PROBE_VARIANTS]
    # DST probes at window starts that follow a zone's offset change by 2-20 days.
    for _, ws, _ in WINDOWS:
        for zone in ["Europe/Berlin", WINDOWS_ZONE, "America/New_York", "Australia/Sydney"]:
            for t in utc_transitions(zone, ws - dt.timedelta(days=20), ws - dt.timedelta(days=2)):
                probes += [(ws, (zone, t, v)) for v in DST_PROBE_VARIANTS]
    probes = probes[: n // 20]
    n_single = n - n_rec - n_allday - n_float - n_win - n_rdate - len(probes)
    if n_single < 0:
        sys.exit("--count too small")
    kinds = ["single"] * n_single + ["allday"] * n_allday + ["recurring"] * n_rec + ["floating"] * n_float
    kinds += ["windows"] * n_win + ["rdate"] * n_rdate
    kinds += [("probe", b, v) for b, v in probes]
    g.r.shuffle(kinds)

    os.makedirs(args.out_dir, exist_ok=True)
    stats = {}
    for i, kind in enumerate(kinds, start=1):
        if isinstance(kind, tuple) and isinstance(kind[2], tuple):
            data = g.dst_probe(i, kind[1], *kind[2])
            kind = "probe-dst"
        elif isinstance(kind, tuple):
            data = g.probe(i, kind[1], kind[2])
            kind = "probe"
        elif kind == "single":
            data = g.single(i, g.zoned_mode())
        elif kind == "allday":
            data = g.allday(i)
        elif kind == "recurring":
            x = g.r.random()
            mode = ("date",) if x < 0.12 else g.zoned_mode(utc_share=0.12)
            kind = f"recurring-{mode[0]}"
            data = g.recurring(i, mode)
        elif kind == "floating":
            if g.r.random() < 0.3:
                kind = "recurring-float"
                data = g.recurring(i, ("float",))
            else:
                data = g.single(i, ("float",))
        elif kind == "windows":
            if g.r.random() < 0.4:
                kind = "recurring-windows"
                data = g.recurring(i, ("tz", WINDOWS_ZONE))
            else:
                data = g.single(i, ("tz", WINDOWS_ZONE))
        else:
            data = g.rdate_only(i, g.zoned_mode())
        stats[kind] = stats.get(kind, 0) + 1
        with open(os.path.join(args.out_dir, f"ev-{i:05d}.ics"), "wb") as f:
            f.write(data)
    print(f"generated {n} events in {args.out_dir}: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())))


if __name__ == "__main__":
    main()
