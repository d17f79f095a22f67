//! The index computed at write time (ARCHITECTURE: "store raw, index derived"): what SQL needs
//! to narrow a query to candidates without reading object text. The bounds are conservative:
//! an object's occurrences never start before `first_start` nor end after `last_end`, whatever
//! the calendar's time zone; `last_end` is `None` when the series has no end.

use super::expand::{Budget, Series, FLOATING_SLACK};
use super::freebusy::{event_busy_kind, FbType};
use super::parse::Component;
use super::value::{multi_values, prop_time, RDate, Time, TimeCtx};
use super::ComponentKind;

/// Bumped whenever the computation changes; rows with an older version are recomputed.
pub const INDEX_VERSION: i64 = 2;

/// Instances enumerated at write time to find where a bounded series ends; beyond this the
/// series is indexed as open-ended (still correct, merely a wider candidate).
const BOUNDS_BUDGET: u64 = 20_000;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimeIndex {
    pub first_start: Option<i64>,
    pub last_end: Option<i64>,
    pub recurring: bool,
    /// Some time is floating or a DATE: its instant depends on the calendar's zone.
    pub floating: bool,
    /// DTSTART is a DATE.
    pub all_day: bool,
    pub transp: Option<String>,
    pub status: Option<String>,
    pub class: Option<String>,
    /// Every occurrence of a VEVENT object, when there are few enough to store: calendar-query
    /// and free-busy-query over a time range are then answered from an index of occurrences
    /// instead of parsing and expanding each candidate (`None`: always parse).
    pub occurrences: Option<Occurrences>,
}

/// The stored occurrences of one object and how far they reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrences {
    /// Every occurrence that starts before `until` is in `rows`, so a window `[from, to)` with
    /// `to <= until` is answered exactly. `i64::MAX` for a series that ends; an open-ended rule
    /// is stored up to a horizon and windows beyond it fall back to parsing.
    pub until: i64,
    pub rows: Vec<Occurrence>,
}

/// One occurrence (RFC 4791 §9.9 terms): UTC start and effective end, and its busy time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub start: i64,
    /// Equal to `start` for an occurrence that matches as a point (no or zero duration).
    pub end: i64,
    /// What the occurrence contributes to free/busy: `None` when transparent or cancelled.
    pub busy: Option<FbType>,
}

impl Occurrence {
    /// RFC 4791 §9.9 for a VEVENT occurrence: `start < to` and `end > from`, or, for a point,
    /// `from <= start`.
    pub fn overlaps(&self, from: i64, to: i64) -> bool {
        self.start < to && (self.end > from || self.start >= from)
    }
}

/// Objects with more occurrences than this (before the horizon) are not stored occurrence by
/// occurrence; their queries parse the object as before.
pub const MAX_OCCURRENCES: usize = 4096;

/// How far past the later of its start and now an open-ended series is stored.
const HORIZON: i64 = 2 * 366 * 86_400;

/// Occurrences are grouped by length so that one index range per group finds every occurrence
/// overlapping a window: group `l` holds occurrences at most `span_limit(l)` long, so those
/// overlapping `[from, to)` start within `(from - span_limit(l), to)`. Lengths double from one
/// day; the last group is unbounded.
pub const SPAN_LEVELS: i64 = 21;

/// The group of an occurrence of `span` seconds.
pub fn span_level(span: i64) -> i64 {
    let mut level = 0;
    while level < SPAN_LEVELS - 1 && span > span_limit(level) {
        level += 1;
    }
    level
}

/// The longest occurrence in group `level` (`i64::MAX / 4` for the last, unbounded one).
pub fn span_limit(level: i64) -> i64 {
    if level >= SPAN_LEVELS - 1 {
        i64::MAX / 4
    } else {
        86_400i64 << level
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The occurrences of a VEVENT series, all of them or up to the horizon of an open-ended rule;
/// `None` when there are too many to store, or an occurrence has no start.
fn event_occurrences(series: &Series<'_>, ctx: &TimeCtx, now: i64) -> Option<Occurrences> {
    let until = if series.is_open_ended() {
        series.first_start(ctx)?.max(now).saturating_add(HORIZON)
    } else {
        i64::MAX
    };
    let budget = Budget::new(MAX_OCCURRENCES as u64 * 2);
    let to = until.min(i64::MAX / 4);
    let instances = series.instances(ctx, i64::MIN / 4, to, &budget).ok()?;
    let mut rows = Vec::with_capacity(instances.len());
    for x in instances {
        let start = x.start?;
        if start >= until {
            continue;
        }
        let end = match x.end {
            Some(e) if !x.zero && e > start => e,
            _ => start,
        };
        rows.push(Occurrence {
            start,
            end,
            busy: event_busy_kind(series.comps[x.comp]),
        });
    }
    if rows.len() > MAX_OCCURRENCES {
        return None;
    }
    rows.sort_by_key(|o| (o.start, o.end));
    Some(Occurrences { until, rows })
}

fn time_values(c: &Component) -> Vec<Time> {
    let mut out = Vec::new();
    for name in ["DTSTART", "DTEND", "DUE", "RECURRENCE-ID"] {
        if let Some(t) = c.prop(name).and_then(prop_time) {
            out.push(t);
        }
    }
    for name in ["RDATE", "EXDATE"] {
        for p in c.props_named(name) {
            for v in multi_values(p).unwrap_or_default() {
                match v {
                    RDate::Time(t) | RDate::Period(t, _) => out.push(t),
                }
            }
        }
    }
    out
}

/// Computes the index of the components of `kind` in a VCALENDAR.
pub fn compute(cal: &Component, kind: ComponentKind, ctx: &TimeCtx) -> TimeIndex {
    let series = Series::new(cal, kind);
    let master = series
        .comps
        .iter()
        .find(|c| c.prop("RECURRENCE-ID").is_none())
        .or(series.comps.first());
    let text = |name: &str| {
        master
            .and_then(|m| m.prop(name))
            .map(|p| p.value.trim().to_ascii_uppercase())
    };
    let mut idx = TimeIndex {
        recurring: series.is_recurring(),
        all_day: master
            .and_then(|m| m.prop("DTSTART"))
            .and_then(prop_time)
            .is_some_and(|t| t.is_date()),
        transp: text("TRANSP"),
        status: text("STATUS"),
        class: text("CLASS"),
        ..Default::default()
    };
    idx.floating = series
        .comps
        .iter()
        .flat_map(|c| time_values(c))
        .any(|t| match &t {
            Time::Zoned(_, tz) => ctx.zones.resolve(tz).is_none(),
            other => other.is_floating(),
        });
    if kind == ComponentKind::Event {
        idx.occurrences = event_occurrences(&series, ctx, unix_now());
    }
    let (first, last) = match (kind, &idx.occurrences) {
        (ComponentKind::FreeBusy | ComponentKind::Availability, _) => freebusy_bounds(&series, ctx),
        // Every occurrence is known: the bounds are theirs, no second expansion needed.
        (_, Some(o)) if o.until == i64::MAX => (
            o.rows.iter().map(|r| r.start).min(),
            o.rows.iter().map(|r| r.end).max(),
        ),
        _ => series.bounds(ctx, BOUNDS_BUDGET),
    };
    // A to-do with neither DTSTART nor DUE matches time ranges through CREATED/COMPLETED
    // (RFC 4791 §9.9): leave it unbounded rather than guess.
    let unbounded_todo = kind == ComponentKind::Todo
        && series
            .comps
            .iter()
            .any(|c| c.prop("DTSTART").is_none() && c.prop("DUE").is_none());
    if unbounded_todo || first.is_none() && last.is_none() {
        return TimeIndex {
            first_start: None,
            last_end: None,
            ..idx
        };
    }
    let slack = if idx.floating { FLOATING_SLACK } else { 0 };
    idx.first_start = first.map(|f| f - slack);
    idx.last_end = last.map(|l| l + slack);
    idx
}

fn freebusy_bounds(series: &Series<'_>, ctx: &TimeCtx) -> (Option<i64>, Option<i64>) {
    let mut lo: Option<i64> = None;
    let mut hi: Option<i64> = None;
    let mut open = false;
    for c in &series.comps {
        let s = c.prop("DTSTART").and_then(prop_time).map(|t| ctx.utc(&t));
        let e = c.prop("DTEND").and_then(prop_time).map(|t| ctx.utc(&t));
        if s.is_none() || e.is_none() {
            open = true;
        }
        for v in [s, e].into_iter().flatten() {
            lo = Some(lo.map_or(v, |x| x.min(v)));
            hi = Some(hi.map_or(v, |x| x.max(v)));
        }
        for p in c.props_named("FREEBUSY") {
            for (a, b) in super::freebusy::periods_of(p, ctx) {
                lo = Some(lo.map_or(a, |x| x.min(a)));
                hi = Some(hi.map_or(b, |x| x.max(b)));
            }
        }
    }
    if open {
        (None, None)
    } else {
        (lo, hi)
    }
}
