//! Recurrence expansion (RFC 5545 §3.8.5): RRULE, RDATE (dates, date-times and periods),
//! EXDATE, and RECURRENCE-ID overrides including RANGE=THISANDFUTURE.
//!
//! Rules are expanded on the wall clock of DTSTART's zone (a daily 09:00 meeting stays at
//! 09:00 local across DST changes) and each instance is then converted to UTC with the
//! zone's rules, gaps and overlaps as RFC 5545 §3.3.5 says. Expansion is bounded by the query
//! window, never by a fixed instance cap, so a series never "runs out"; what bounds the work is
//! a per-request [`Budget`] of generated instances.

use super::parse::{Component, Property};
use super::tz::Zone;
use super::value::{
    multi_values, parse_date, parse_date_time, parse_duration, prop_time, Dur, PeriodEnd, RDate,
    Time, TimeCtx,
};
use super::ComponentKind;
use chrono::{Datelike, Duration, Month, NaiveDateTime};
use rrule::{Frequency, NWeekday, RRule, RRuleSet, Tz as RTz};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Offsets can reach ±14 h, so anything floating (dates, floating times) can move that far
/// with the calendar's zone; index bounds are widened by this much to stay conservative.
pub const FLOATING_SLACK: i64 = 14 * 3600;

/// How many instances one request may generate before it is refused, and until when.
#[derive(Debug)]
pub struct Budget {
    // Atomic only so a request's futures stay `Send`; one request uses it from one task.
    left: AtomicU64,
    /// Expansion is CPU work that never yields to the runtime, so a request timeout around the
    /// handler could not interrupt it; the budget itself looks at the clock instead.
    deadline: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("the request needs more recurrence expansion than the server allows")]
    Instances,
    #[error("the request ran out of time while expanding recurrences")]
    Deadline,
}

/// Instances generated between two looks at the clock: cheap next to generating them.
const CLOCK_EVERY: u64 = 256;

impl Budget {
    pub fn new(instances: u64) -> Self {
        Budget {
            left: AtomicU64::new(instances),
            deadline: None,
        }
    }
    pub fn unlimited() -> Self {
        Budget::new(u64::MAX)
    }
    /// The same budget, also refused once `deadline` (if any) has passed.
    pub fn until(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }
    fn spend(&self) -> Result<(), LimitExceeded> {
        let before = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(1))
            .map_err(|_| LimitExceeded::Instances)?;
        match self.deadline {
            Some(d) if before % CLOCK_EVERY == 0 && Instant::now() >= d => {
                Err(LimitExceeded::Deadline)
            }
            _ => Ok(()),
        }
    }
}

/// One occurrence of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// UTC start; `None` for a to-do without DTSTART.
    pub start: Option<i64>,
    /// Effective UTC end per RFC 4791 §9.9 (DTEND, DTSTART+DURATION, DUE, or the default).
    pub end: Option<i64>,
    /// The RECURRENCE-ID instant of this occurrence (`None`: not part of a recurrence set).
    pub rid: Option<i64>,
    /// Index, among the object's components of the queried kind, of the one whose properties
    /// this occurrence has (the master, or an override).
    pub comp: usize,
    /// DTSTART is a DATE (all-day).
    pub date: bool,
    /// The occurrence has no DTEND/DURATION/DUE of its own, or a zero one: RFC 4791 §9.9
    /// then matches on `start <= DTSTART` instead of `start < end`.
    pub zero: bool,
}

/// The part of a component that decides where its occurrences end.
#[derive(Debug, Clone)]
enum EndRule {
    /// DTEND/DUE: the wall-clock distance from DTSTART (both in one zone), or the exact one.
    Fixed {
        local: Option<Duration>,
        exact: i64,
    },
    Duration(Dur),
    /// No end property: a DATE lasts one day; a DATE-TIME is a point.
    Default {
        date: bool,
    },
    /// A to-do or journal without DTSTART.
    None,
}

/// Parsed timing of one component.
#[derive(Debug, Clone)]
struct Timing {
    start: Option<Time>,
    end: EndRule,
}

fn timing(c: &Component, kind: ComponentKind, ctx: &TimeCtx) -> Timing {
    let start = c.prop("DTSTART").and_then(prop_time);
    let end_prop = match kind {
        ComponentKind::Todo => c.prop("DUE"),
        _ => c.prop("DTEND"),
    };
    let end_time = end_prop.and_then(prop_time);
    let dur = c.prop("DURATION").and_then(|p| parse_duration(&p.value));
    let end = match (&start, end_time, dur) {
        (Some(s), Some(e), _) => {
            // RFC 5545 §3.8.5.3: a length given by DTEND/DUE is the same *exact* duration for
            // every instance (an instance crossing a DST change keeps its real length). Dates
            // have no exact length but whole days, kept on the calendar.
            let local =
                matches!((s, &e), (Time::Date(_), Time::Date(_))).then(|| e.local() - s.local());
            EndRule::Fixed {
                local,
                exact: ctx.utc(&e) - ctx.utc(s),
            }
        }
        (Some(_), None, Some(d)) => EndRule::Duration(d),
        (Some(s), None, None) => EndRule::Default { date: s.is_date() },
        (None, _, _) => EndRule::None,
    };
    Timing { start, end }
}

impl Timing {
    /// (end, zero-length?) of an occurrence starting at `start_utc` whose wall-clock start in
    /// `zone` is `start_local`.
    fn end_of(
        &self,
        start_utc: i64,
        start_local: NaiveDateTime,
        zone: &Zone,
    ) -> (Option<i64>, bool) {
        match &self.end {
            EndRule::Fixed { local: Some(d), .. } => {
                let e = zone.local_to_utc(start_local + *d).max(start_utc);
                (Some(e), e == start_utc)
            }
            EndRule::Fixed { exact, .. } => {
                let e = start_utc + (*exact).max(0);
                (Some(e), e == start_utc)
            }
            EndRule::Duration(d) => {
                let e = d.add_to(start_utc, zone).max(start_utc);
                (Some(e), !d.is_positive())
            }
            EndRule::Default { date: true } => (
                Some(zone.local_to_utc(start_local + Duration::days(1))),
                false,
            ),
            EndRule::Default { date: false } => (Some(start_utc), true),
            EndRule::None => (None, true),
        }
    }

    /// A bound on how long an occurrence lasts, for window arithmetic.
    fn max_len(&self) -> i64 {
        match &self.end {
            EndRule::Fixed { local, exact } => {
                local.map_or(*exact, |d| d.num_seconds()).max(*exact).max(0) + 7200
            }
            EndRule::Duration(d) => d.approx_seconds().max(0) + 7200,
            EndRule::Default { date: true } => 86_400 + 7200,
            _ => 0,
        }
    }
}

/// The components of one kind in a VCALENDAR, with the master and overrides told apart.
pub struct Series<'a> {
    pub comps: Vec<&'a Component>,
    pub kind: ComponentKind,
    master: Option<usize>,
    /// (component index, RECURRENCE-ID value, THISANDFUTURE?)
    overrides: Vec<(usize, Time, bool)>,
}

impl<'a> Series<'a> {
    pub fn new(cal: &'a Component, kind: ComponentKind) -> Series<'a> {
        let comps: Vec<&Component> = cal
            .children
            .iter()
            .filter(|c| c.name == kind.as_str())
            .collect();
        let mut master = None;
        let mut overrides = Vec::new();
        for (i, c) in comps.iter().enumerate() {
            match c.prop("RECURRENCE-ID") {
                None => master = master.or(Some(i)),
                Some(p) => {
                    if let Some(t) = prop_time(p) {
                        let future = p
                            .param("RANGE")
                            .is_some_and(|r| r.eq_ignore_ascii_case("THISANDFUTURE"));
                        overrides.push((i, t, future));
                    }
                }
            }
        }
        Series {
            comps,
            kind,
            master,
            overrides,
        }
    }

    pub fn is_recurring(&self) -> bool {
        self.master.is_some_and(|m| {
            self.comps[m].prop("RRULE").is_some() || self.comps[m].prop("RDATE").is_some()
        })
    }

    /// Occurrences that may overlap `[from, to)` (the exact test is the caller's), in no
    /// particular order.
    pub fn instances(
        &self,
        ctx: &TimeCtx,
        from: i64,
        to: i64,
        budget: &Budget,
    ) -> Result<Vec<Instance>, LimitExceeded> {
        let mut out = Vec::new();
        let ovr: Vec<(usize, i64, bool, Time)> = self
            .overrides
            .iter()
            .map(|(i, t, f)| (*i, ctx.utc(t), *f, t.clone()))
            .collect();
        let by_rid: HashMap<i64, usize> = ovr.iter().map(|(i, r, _, _)| (*r, *i)).collect();
        let mut future: Vec<(i64, usize)> =
            ovr.iter().filter(|o| o.2).map(|o| (o.1, o.0)).collect();
        future.sort_unstable();

        if let Some(m) = self.master {
            let master = self.comps[m];
            let t = timing(master, self.kind, ctx);
            match &t.start {
                None => {
                    // No DTSTART: one occurrence defined by its other properties.
                    budget.spend()?;
                    let end = master
                        .prop(if self.kind == ComponentKind::Todo {
                            "DUE"
                        } else {
                            "DTEND"
                        })
                        .and_then(prop_time);
                    out.push(Instance {
                        start: None,
                        end: end.map(|e| ctx.utc(&e)),
                        rid: None,
                        comp: m,
                        date: false,
                        zero: true,
                    });
                }
                Some(start) => {
                    let zone = ctx.zone_of(start);
                    if self.is_recurring() {
                        self.expand_master(
                            m, &t, start, &zone, ctx, from, to, budget, &by_rid, &future, &mut out,
                        )?;
                    } else {
                        budget.spend()?;
                        let s = ctx.utc(start);
                        let (end, zero) = t.end_of(s, start.local(), &zone);
                        out.push(Instance {
                            start: Some(s),
                            end,
                            rid: None,
                            comp: m,
                            date: start.is_date(),
                            zero,
                        });
                    }
                }
            }
        }
        // Overrides stand for their occurrence wherever they moved it.
        for (i, rid, _, _) in &ovr {
            budget.spend()?;
            let c = self.comps[*i];
            let t = timing(c, self.kind, ctx);
            let Some(start) = &t.start else { continue };
            let zone = ctx.zone_of(start);
            let s = ctx.utc(start);
            let (end, zero) = t.end_of(s, start.local(), &zone);
            out.push(Instance {
                start: Some(s),
                end,
                rid: Some(*rid),
                comp: *i,
                date: start.is_date(),
                zero,
            });
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn expand_master(
        &self,
        m: usize,
        t: &Timing,
        start: &Time,
        zone: &Zone,
        ctx: &TimeCtx,
        from: i64,
        to: i64,
        budget: &Budget,
        by_rid: &HashMap<i64, usize>,
        future: &[(i64, usize)],
        out: &mut Vec<Instance>,
    ) -> Result<(), LimitExceeded> {
        let master = self.comps[m];
        let dtstart_utc = ctx.utc(start);
        let max_len = t.max_len().max(future_max_len(self, future, ctx));
        // RANGE=THISANDFUTURE overrides move later occurrences by their own shift: one
        // generated after the window may be moved into it (a negative shift), as may one
        // generated before it (a positive shift).
        let (shift_lo, shift_hi) = future
            .iter()
            .filter_map(|&(_, fi)| {
                let fs = timing(self.comps[fi], self.kind, ctx).start?;
                let orig = self.overrides.iter().find(|o| o.0 == fi)?;
                Some(ctx.utc(&fs) - ctx.utc(&orig.1))
            })
            .fold((0i64, 0i64), |(lo, hi), d| (lo.min(d), hi.max(d)));
        // Occurrences generated before `lower` or from `upper` on cannot reach the window.
        let lower = from.saturating_sub(max_len).saturating_sub(shift_hi);
        let upper = to.saturating_sub(shift_lo);
        let (ex_instants, ex_dates) = exdates(master, ctx);
        let excluded = |rid: i64, local: NaiveDateTime| {
            ex_instants.contains(&rid) || ex_dates.contains(&local.date())
        };

        let emit = |rid: i64,
                    local: NaiveDateTime,
                    period_end: Option<i64>,
                    out: &mut Vec<Instance>|
         -> Result<(), LimitExceeded> {
            if excluded(rid, local) || by_rid.contains_key(&rid) {
                return Ok(());
            }
            // RANGE=THISANDFUTURE: the latest such override at or before this occurrence
            // moves it and lends it its properties.
            let mut comp = m;
            let mut s = rid;
            let mut s_local = local;
            let mut timing_used = None;
            if let Some(&(frid, fi)) = future.iter().rev().find(|(r, _)| *r <= rid) {
                let fc = self.comps[fi];
                let ft = timing(fc, self.kind, ctx);
                let found = match (&ft.start, self.overrides.iter().find(|o| o.0 == fi)) {
                    (Some(fs), Some(orig)) => {
                        Some((ctx.utc(fs) - ctx.utc(&orig.1), ctx.zone_of(fs)))
                    }
                    _ => None,
                };
                if let Some((shift, fzone)) = found {
                    let _ = frid;
                    s = rid + shift;
                    s_local = fzone.utc_to_local(s);
                    comp = fi;
                    timing_used = Some((ft, fzone));
                }
            }
            let (end, zero) = match (&timing_used, period_end) {
                (_, Some(e)) => (Some(e.max(s)), e <= s),
                (Some((ft, fz)), None) => ft.end_of(s, s_local, fz),
                (None, None) => t.end_of(s, s_local, zone),
            };
            if s < to && end.unwrap_or(s) >= from {
                out.push(Instance {
                    start: Some(s),
                    end,
                    rid: Some(rid),
                    comp,
                    date: start.is_date(),
                    zero,
                });
            }
            Ok(())
        };

        let mut seen: HashSet<i64> = HashSet::new();
        let rrules: Vec<&Property> = master.props_named("RRULE").collect();
        let mut dtstart_from_rule = false;
        for rp in &rrules {
            let Ok(rule) = build_rrule(&rp.value, start, zone) else {
                continue;
            };
            let mut anchor = start.local();
            // Skip whole periods before the window so a 2090 query of a 2020 daily series
            // does not walk seventy years of days.
            if rule.get_count().is_none() {
                let period_days = match rule.get_freq() {
                    Frequency::Daily => i64::from(rule.get_interval()),
                    Frequency::Weekly => 7 * i64::from(rule.get_interval()),
                    _ => 0,
                };
                if period_days > 0 {
                    let gap_days = (lower - dtstart_utc) / 86_400 - 2 * period_days - 2;
                    if gap_days > 0 {
                        anchor += Duration::days(gap_days / period_days * period_days);
                    }
                }
            }
            let Ok(set) = rule_set(rp, start, zone, anchor) else {
                continue;
            };
            for occ in &set {
                budget.spend()?;
                let local = occ.naive_utc();
                let rid = zone.local_to_utc(local);
                if rid >= upper {
                    break;
                }
                if local == start.local() {
                    dtstart_from_rule = true;
                }
                if rid < lower || !seen.insert(rid) {
                    continue;
                }
                emit(rid, local, None, out)?;
            }
        }
        // RFC 5545 §3.8.5.3: DTSTART is the first occurrence. A rule whose UNTIL lies before
        // DTSTART describes an empty set, as the reference implementations read it.
        let empty_rule = rrules
            .iter()
            .any(|rp| until_before_start(&rp.value, start, zone));
        if !dtstart_from_rule
            && !empty_rule
            && dtstart_utc < upper
            && seen.insert(dtstart_utc)
            && dtstart_utc >= lower
        {
            budget.spend()?;
            emit(dtstart_utc, start.local(), None, out)?;
        }
        for rp in master.props_named("RDATE") {
            for v in multi_values(rp).unwrap_or_default() {
                budget.spend()?;
                let (time, end) = match v {
                    RDate::Time(t) => (t, None),
                    RDate::Period(s, PeriodEnd::End(e)) => {
                        let e = ctx.utc(&e);
                        (s, Some(e))
                    }
                    RDate::Period(s, PeriodEnd::Duration(d)) => {
                        let z = ctx.zone_of(&s);
                        let e = d.add_to(ctx.utc(&s), &z);
                        (s, Some(e))
                    }
                };
                let rid = ctx.utc(&time);
                if rid >= upper || rid < lower || !seen.insert(rid) {
                    continue;
                }
                let local = zone.utc_to_local(rid);
                emit(rid, local, end, out)?;
            }
        }
        Ok(())
    }

    /// (earliest start, latest end or `None` when unbounded) over all occurrences, for the
    /// index. Floating values are read in UTC and the caller widens by [`FLOATING_SLACK`].
    pub fn bounds(&self, ctx: &TimeCtx, max_instances: u64) -> (Option<i64>, Option<i64>) {
        let budget = Budget::new(max_instances);
        let unbounded = self.is_open_ended();
        // Bounded series: expand everything (within the budget) from the beginning of time.
        let (from, to) = (i64::MIN / 4, i64::MAX / 4);
        let insts = if unbounded {
            // Only the start matters; the first few occurrences are enough to find it.
            self.first_occurrences(ctx)
        } else {
            self.instances(ctx, from, to, &budget).ok()
        };
        let Some(insts) = insts else {
            // Too many to enumerate: open-ended for the prefilter, start from DTSTART.
            return (self.first_start(ctx), None);
        };
        let first = insts.iter().filter_map(|i| i.start.or(i.end)).min();
        let last = insts.iter().filter_map(|i| i.end.or(i.start)).max();
        if unbounded {
            (first.or_else(|| self.first_start(ctx)), None)
        } else {
            (first, last)
        }
    }

    /// The master has an RRULE with neither COUNT nor UNTIL: occurrences go on forever.
    pub fn is_open_ended(&self) -> bool {
        self.master.is_some_and(|m| {
            self.comps[m].props_named("RRULE").any(|r| {
                let v = r.value.to_ascii_uppercase();
                !v.contains("COUNT=") && !v.contains("UNTIL=")
            })
        })
    }

    /// The earliest DTSTART among the components, in UTC.
    pub fn first_start(&self, ctx: &TimeCtx) -> Option<i64> {
        self.comps
            .iter()
            .filter_map(|c| c.prop("DTSTART").and_then(prop_time))
            .map(|t| ctx.utc(&t))
            .min()
    }

    fn first_occurrences(&self, ctx: &TimeCtx) -> Option<Vec<Instance>> {
        let start = self.first_start(ctx)?;
        self.instances(ctx, i64::MIN / 4, start + 1, &Budget::new(10_000))
            .ok()
    }
}

fn future_max_len(s: &Series<'_>, future: &[(i64, usize)], ctx: &TimeCtx) -> i64 {
    future
        .iter()
        .map(|(rid, i)| {
            let t = timing(s.comps[*i], s.kind, ctx);
            let shift = t.start.as_ref().map_or(0, |st| (ctx.utc(st) - rid).abs());
            t.max_len() + shift
        })
        .max()
        .unwrap_or(0)
}

/// EXDATE instants, and the dates of DATE-valued EXDATEs (which exclude every occurrence on
/// that day, as clients that write them intend).
fn exdates(c: &Component, ctx: &TimeCtx) -> (HashSet<i64>, HashSet<chrono::NaiveDate>) {
    let mut instants = HashSet::new();
    let mut dates = HashSet::new();
    for p in c.props_named("EXDATE") {
        for v in multi_values(p).unwrap_or_default() {
            if let RDate::Time(t) = v {
                match &t {
                    Time::Date(d) => {
                        dates.insert(*d);
                    }
                    _ => {
                        instants.insert(ctx.utc(&t));
                    }
                }
            }
        }
    }
    (instants, dates)
}

/// The naive stand-in: wall-clock times are carried as UTC date-times, so the rule engine does
/// calendar arithmetic only and never applies a zone itself.
fn naive(t: NaiveDateTime) -> chrono::DateTime<RTz> {
    t.and_utc().with_timezone(&RTz::UTC)
}

fn until_local(v: &str, start: &Time, zone: &Zone) -> Option<NaiveDateTime> {
    if let Some((t, utc)) = parse_date_time(v) {
        return Some(
            if utc && !matches!(start, Time::Utc(_)) && !start.is_floating() {
                zone.utc_to_local(t.and_utc().timestamp())
            } else {
                t
            },
        );
    }
    // UNTIL as DATE: inclusive of that whole day.
    parse_date(v).map(|d| d.and_hms_opt(23, 59, 59).unwrap_or_default())
}

fn until_before_start(rule: &str, start: &Time, zone: &Zone) -> bool {
    rule.split(';')
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, v)| {
            k.trim().eq_ignore_ascii_case("UNTIL")
                && until_local(v, start, zone).is_some_and(|u| u < start.local())
        })
}

fn rule_set(
    rp: &Property,
    start: &Time,
    zone: &Zone,
    anchor: NaiveDateTime,
) -> Result<RRuleSet, String> {
    let unvalidated = parse_rrule(&rp.value, start, zone)?;
    let validated = unvalidated
        .validate(naive(anchor))
        .map_err(|e| e.to_string())?;
    // `limit()` caps the rule engine's search for the next occurrence (100,000 steps of the
    // rule's frequency). Unlimited, a rule that never matches (FREQ=SECONDLY;BYMONTHDAY=30;
    // BYMONTH=2) walks to year 9999 without producing an instance, so the instance budget never
    // sees the work; a real rule has its next occurrence far sooner than 100,000 periods.
    Ok(RRuleSet::new(naive(anchor)).rrule(validated).limit())
}

/// Validates an RRULE value against DTSTART (used at write time to refuse bad rules).
pub fn build_rrule(value: &str, start: &Time, zone: &Zone) -> Result<RRule, String> {
    parse_rrule(value, start, zone)?
        .validate(naive(start.local()))
        .map_err(|e| e.to_string())
}

fn nums<T: std::str::FromStr>(v: &str) -> Result<Vec<T>, String> {
    let out: Vec<T> = v
        .split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| {
            x.trim()
                .trim_start_matches('+')
                .parse::<T>()
                .map_err(|_| format!("bad number {x:?}"))
        })
        .collect::<Result<_, _>>()?;
    // An empty BYxxx list would silently mean "no restriction".
    if out.is_empty() {
        return Err("empty list".into());
    }
    Ok(out)
}

/// Occurrences one period of a rule may produce. The rule engine materialises a whole period
/// (every combination of the BYxxx lists in it) before yielding its first occurrence, so a
/// one-line YEARLY rule listing every month, day, hour, minute and second would allocate 31
/// million date-times (gigabytes) per period, beyond the reach of any instance budget. Real
/// rules stay far below this.
pub const MAX_OCCURRENCES_PER_PERIOD: u64 = 100_000;

/// An upper bound of the occurrences one period of the rule can hold: the days of the period
/// its BYxxx parts allow, times the times of day (RFC 5545 §3.3.10 expansion table).
fn period_bound(freq: Frequency, parts: &[(String, String)]) -> u64 {
    let len = |name: &str| {
        parts
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.split(',').filter(|x| !x.trim().is_empty()).count() as u64)
    };
    let times = |names: &[&str]| names.iter().map(|n| len(n).unwrap_or(1)).product::<u64>();
    let (mut days, per_day) = match freq {
        Frequency::Yearly => (366, times(&["BYHOUR", "BYMINUTE", "BYSECOND"])),
        Frequency::Monthly => (31, times(&["BYHOUR", "BYMINUTE", "BYSECOND"])),
        Frequency::Weekly => (7, times(&["BYHOUR", "BYMINUTE", "BYSECOND"])),
        Frequency::Daily => (1, times(&["BYHOUR", "BYMINUTE", "BYSECOND"])),
        Frequency::Hourly => (1, times(&["BYMINUTE", "BYSECOND"])),
        Frequency::Minutely => (1, times(&["BYSECOND"])),
        Frequency::Secondly => (1, 1),
    };
    if matches!(freq, Frequency::Yearly | Frequency::Monthly) {
        let months = len("BYMONTH").unwrap_or(12);
        for bound in [
            len("BYYEARDAY"),
            len("BYWEEKNO").map(|n| 7 * n),
            len("BYMONTH").map(|n| 31 * n),
            len("BYMONTHDAY").map(|n| n * months),
            len("BYDAY").map(|n| 53 * n),
        ]
        .into_iter()
        .flatten()
        {
            days = days.min(bound);
        }
    }
    days.saturating_mul(per_day)
}

/// RRULE value → the rule engine's builder. Parsed here rather than by the engine so that what
/// real clients send (lower case, stray `;`, UNTIL in the wrong form) is read tolerantly and
/// consistently with the rest of the module.
fn parse_rrule(
    value: &str,
    start: &Time,
    zone: &Zone,
) -> Result<RRule<rrule::Unvalidated>, String> {
    let mut freq = None;
    let mut parts = Vec::new();
    let mut seen = HashSet::new();
    for kv in value.split(';') {
        if kv.trim().is_empty() {
            continue;
        }
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("bad RRULE part {kv:?}"))?;
        let k = k.trim().to_ascii_uppercase();
        // RFC 5545 §3.3.10: no rule part twice; "last one wins" would be a guess.
        if !seen.insert(k.clone()) {
            return Err(format!("RRULE part {k} appears twice"));
        }
        if k == "FREQ" {
            freq = Some(match v.trim().to_ascii_uppercase().as_str() {
                "YEARLY" => Frequency::Yearly,
                "MONTHLY" => Frequency::Monthly,
                "WEEKLY" => Frequency::Weekly,
                "DAILY" => Frequency::Daily,
                "HOURLY" => Frequency::Hourly,
                "MINUTELY" => Frequency::Minutely,
                "SECONDLY" => Frequency::Secondly,
                other => return Err(format!("unknown FREQ {other}")),
            });
        } else {
            parts.push((k, v.trim().to_owned()));
        }
    }
    let freq = freq.ok_or("RRULE without FREQ")?;
    let bound = period_bound(freq, &parts);
    if bound > MAX_OCCURRENCES_PER_PERIOD {
        return Err(format!(
            "up to {bound} occurrences per period; at most {MAX_OCCURRENCES_PER_PERIOD} are supported"
        ));
    }
    let mut r = RRule::new(freq);
    for (k, v) in parts {
        r = match k.as_str() {
            "INTERVAL" => {
                let n: u16 = v.parse().map_err(|_| format!("bad INTERVAL {v}"))?;
                if n == 0 {
                    return Err("INTERVAL=0".into());
                }
                r.interval(n)
            }
            "COUNT" => r.count(v.parse().map_err(|_| format!("bad COUNT {v}"))?),
            "UNTIL" => r.until(naive(
                until_local(&v, start, zone).ok_or_else(|| format!("bad UNTIL {v}"))?,
            )),
            "WKST" => r.week_start(
                super::value::parse_weekday(&v).ok_or_else(|| format!("bad WKST {v}"))?,
            ),
            "BYSETPOS" => r.by_set_pos(nums(&v)?),
            "BYMONTH" => {
                let ms: Vec<u8> = nums(&v)?;
                let months: Result<Vec<Month>, String> = ms
                    .iter()
                    .map(|m| Month::try_from(*m).map_err(|_| format!("bad BYMONTH {m}")))
                    .collect();
                r.by_month(&months?)
            }
            "BYMONTHDAY" => {
                let days: Vec<i8> = nums(&v)?;
                if days.contains(&0) {
                    return Err("BYMONTHDAY=0".into());
                }
                r.by_month_day(days)
            }
            "BYYEARDAY" => r.by_year_day(nums(&v)?),
            "BYWEEKNO" => r.by_week_no(nums(&v)?),
            "BYHOUR" => r.by_hour(nums(&v)?),
            "BYMINUTE" => r.by_minute(nums(&v)?),
            "BYSECOND" => {
                let secs: Vec<u8> = nums(&v)?;
                if secs.iter().any(|s| *s > 60) {
                    return Err(format!("bad BYSECOND {v}"));
                }
                // 60 (a leap second) is valid iCalendar the engine cannot represent.
                r.by_second(secs.into_iter().map(|s| s.min(59)).collect())
            }
            "BYDAY" => {
                let mut days = Vec::new();
                for d in v.split(',').filter(|x| !x.trim().is_empty()) {
                    let d = d.trim();
                    let (n, wd) = d.split_at(d.len().saturating_sub(2));
                    let wd =
                        super::value::parse_weekday(wd).ok_or_else(|| format!("bad BYDAY {d}"))?;
                    days.push(if n.is_empty() {
                        NWeekday::Every(wd)
                    } else {
                        let n: i16 = n
                            .trim_start_matches('+')
                            .parse()
                            .map_err(|_| format!("bad BYDAY {d}"))?;
                        if n == 0 || n.abs() > 53 {
                            return Err(format!("bad BYDAY {d}"));
                        }
                        NWeekday::Nth(n, wd)
                    });
                }
                r.by_weekday(days)
            }
            // Unknown parts (X- names, RSCALE, SKIP) do not change the Gregorian expansion.
            _ => r,
        };
    }
    Ok(r)
}

/// Checks every RRULE of a component at write time.
pub fn validate_rules(c: &Component, ctx: &TimeCtx) -> Result<(), String> {
    let Some(start) = c.prop("DTSTART").and_then(prop_time) else {
        if c.prop("RRULE").is_some() {
            return Err("RRULE without DTSTART".into());
        }
        return Ok(());
    };
    let zone = ctx.zone_of(&start);
    for rp in c.props_named("RRULE") {
        match build_rrule(&rp.value, &start, &zone) {
            Ok(_) => {}
            // An UNTIL before DTSTART is an empty series, not an error (clients write them).
            Err(_) if until_before_start(&rp.value, &start, &zone) => {}
            Err(e) => return Err(format!("RRULE {}: {e}", rp.value)),
        }
    }
    for name in ["RDATE", "EXDATE"] {
        for p in c.props_named(name) {
            if multi_values(p).is_none() {
                return Err(format!("invalid {name} value {:?}", p.value));
            }
        }
    }
    let _ = start.local().year();
    Ok(())
}
