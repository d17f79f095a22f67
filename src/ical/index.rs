//! The index computed at write time (ARCHITECTURE: "store raw, index derived"): what SQL needs
//! to narrow a query to candidates without reading object text. The bounds are conservative:
//! an object's occurrences never start before `first_start` nor end after `last_end`, whatever
//! the calendar's time zone; `last_end` is `None` when the series has no end.

use super::expand::{Series, FLOATING_SLACK};
use super::parse::Component;
use super::value::{multi_values, prop_time, RDate, Time, TimeCtx};
use super::ComponentKind;

/// Bumped whenever the computation changes; rows with an older version are recomputed.
pub const INDEX_VERSION: i64 = 1;

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
    let (first, last) = match kind {
        ComponentKind::FreeBusy | ComponentKind::Availability => freebusy_bounds(&series, ctx),
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
