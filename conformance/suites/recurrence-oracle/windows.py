"""The query windows of the recurrence-oracle suite, shared by generate.py (boundary probes) and
check.py (the REPORTs). Half-open [start, end) in UTC, as naive datetimes."""

import datetime as dt


def Z(s):
    return dt.datetime.strptime(s, "%Y%m%dT%H%M%SZ")


# Weeks around every DST change the generator's zones have in 2025-2026, a year change, odd
# boundaries, calendar months, and far-future windows for rules without end.
WINDOWS = [
    ("week  NY spring forward (2025-03-09)", Z("20250306T000000Z"), Z("20250313T000000Z")),
    ("week  Berlin spring forward (2025-03-30)", Z("20250326T000000Z"), Z("20250402T000000Z")),
    ("week  Sydney DST ends (2025-04-06), noon bounds", Z("20250403T120000Z"), Z("20250410T120000Z")),
    ("week  Berlin fall back (2025-10-26)", Z("20251023T000000Z"), Z("20251030T000000Z")),
    ("week  NY fall back (2025-11-02), 05:00Z bounds", Z("20251030T050000Z"), Z("20251106T050000Z")),
    ("week  year change 2025/2026", Z("20251229T000000Z"), Z("20260105T000000Z")),
    ("week  odd bounds 07:30Z", Z("20260615T073000Z"), Z("20260622T073000Z")),
    ("week  Sydney DST starts (2026-10-04)", Z("20261001T000000Z"), Z("20261008T000000Z")),
    ("week  2090, Berlin spring forward (2090-03-26)", Z("20900322T000000Z"), Z("20900329T000000Z")),
    # Hours around a change: a wall time in Berlin's spring-forward gap (02:00-03:00 local) is
    # 01:00Z-02:00Z by RFC 5545 §3.3.5; a time in New York's repeated hour (01:00-02:00 local)
    # is its first occurrence, 05:00Z-06:00Z.
    ("hour  Berlin spring-forward gap, 00:30Z-01:30Z", Z("20250330T003000Z"), Z("20250330T013000Z")),
    ("hour  New York repeated hour, 05:00Z-06:00Z", Z("20251102T050000Z"), Z("20251102T060000Z")),
    ("month 2025-03", Z("20250301T000000Z"), Z("20250401T000000Z")),
    ("month 2025-10-15..11-15 (Berlin+NY fall back)", Z("20251015T000000Z"), Z("20251115T000000Z")),
    ("month 2026-02", Z("20260201T000000Z"), Z("20260301T000000Z")),
    ("month 2026-10", Z("20261001T000000Z"), Z("20261101T000000Z")),
    ("month 2090-03", Z("20900301T000000Z"), Z("20900401T000000Z")),
]
