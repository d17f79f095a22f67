//! Time zones for DATE-TIME values "with local time and time zone reference" (RFC 5545 §3.3.5,
//! form #3): resolving a TZID parameter to a zone, and converting between a zone's wall-clock
//! time and UTC instants.
//!
//! Three kinds of zone exist because clients send three kinds of TZID: plain UTC, IANA names
//! (which chrono-tz knows with their full history), and everything else, which only the
//! object's own VTIMEZONE (RFC 5545 §3.6.5) can explain. Real clients add a fourth, Microsoft's
//! Windows zone names, which are mapped to IANA with the CLDR table in `windows_zones`.
//!
//! Instants are Unix seconds (`i64`) because the index and the query code compare instants,
//! never zoned values; offsets are seconds east of UTC (`i32`).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Weekday,
};
use chrono_tz::Tz;

use super::parse::Component;
use super::windows_zones::{WINDOWS_DISPLAY_NAMES, WINDOWS_TO_IANA};

/// Why a VTIMEZONE cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TzError {
    #[error("component {0} is not a VTIMEZONE")]
    NotVtimezone(String),
    #[error("VTIMEZONE without TZID")]
    MissingTzid,
    #[error("VTIMEZONE {0:?} has no STANDARD or DAYLIGHT observance")]
    NoObservances(String),
    #[error("VTIMEZONE {tzid:?}: an observance has no {property}")]
    MissingProperty {
        tzid: String,
        property: &'static str,
    },
    #[error("invalid UTC offset {0:?}")]
    InvalidOffset(String),
    #[error("invalid date or date-time {0:?}")]
    InvalidDateTime(String),
    #[error("invalid RRULE {rule:?}: {reason}")]
    InvalidRule { rule: String, reason: String },
    #[error("unsupported RRULE {rule:?} in a VTIMEZONE: {reason}")]
    UnsupportedRule { rule: String, reason: String },
}

// ---------------------------------------------------------------------------------------------
// Zone
// ---------------------------------------------------------------------------------------------

/// A time zone a DATE-TIME can be evaluated in.
#[derive(Debug, Clone)]
pub enum Zone {
    Utc,
    Iana(Tz),
    Custom(Arc<VTimezone>),
}

impl Zone {
    /// A name for logs and diagnostics: "UTC", the IANA name, or the VTIMEZONE's TZID.
    pub fn name(&self) -> &str {
        match self {
            Zone::Utc => "UTC",
            Zone::Iana(tz) => tz.name(),
            Zone::Custom(v) => &v.tzid,
        }
    }

    /// UTC instant (Unix seconds) of a local wall-clock time in this zone. RFC 5545 §3.3.5:
    /// a local time that occurs twice (fall back) means the FIRST occurrence (the earlier
    /// instant, i.e. with the offset in force before the transition); a local time that does not
    /// exist (spring forward gap) is interpreted with the UTC offset in force BEFORE the gap
    /// (so TZID=America/New_York:20070311T023000 is 03:30 EDT = 07:30Z, and
    /// TZID=America/New_York:20071104T013000 is 01:30 EDT = 05:30Z).
    pub fn local_to_utc(&self, local: NaiveDateTime) -> i64 {
        match self {
            Zone::Utc => ts(local),
            Zone::Iana(tz) => iana_local_to_utc(*tz, local),
            Zone::Custom(v) => v.local_to_utc(local),
        }
    }

    /// Local wall-clock time of a UTC instant.
    pub fn utc_to_local(&self, utc: i64) -> NaiveDateTime {
        naive(utc.saturating_add(i64::from(self.offset_at(utc))))
    }

    /// Offset (seconds east of UTC) in force at a UTC instant.
    pub fn offset_at(&self, utc: i64) -> i32 {
        match self {
            Zone::Utc => 0,
            Zone::Iana(tz) => tz
                .offset_from_utc_datetime(&naive(utc))
                .fix()
                .local_minus_utc(),
            Zone::Custom(v) => v.offset_at(utc),
        }
    }
}

/// chrono-tz answers the single and the ambiguous case exactly; only the gap needs the RFC 5545
/// §3.3.5 rule ("the UTC offset in force before the gap") applied by hand.
fn iana_local_to_utc(tz: Tz, local: NaiveDateTime) -> i64 {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(dt) => dt.timestamp(),
        LocalResult::Ambiguous(a, b) => a.timestamp().min(b.timestamp()),
        LocalResult::None => {
            let before = chrono_tz::GapInfo::new(&local, &tz)
                .and_then(|gap| gap.begin)
                .map(|(_, offset)| offset.fix().local_minus_utc())
                // Without gap information, a day earlier is before the transition for any zone
                // whose transitions are more than a day apart, which is all of them.
                .unwrap_or_else(|| Zone::Iana(tz).offset_at(ts(local) - DAY));
            ts(local) - i64::from(before)
        }
    }
}

const DAY: i64 = 86_400;

/// Seconds since the epoch of a wall-clock or UTC time read as if it were UTC.
fn ts(n: NaiveDateTime) -> i64 {
    n.and_utc().timestamp()
}

/// Inverse of [`ts`], saturating at chrono's range (±262,000 years) instead of failing, because
/// callers do arithmetic on instants that are never that far out for real calendar data.
fn naive(t: i64) -> NaiveDateTime {
    match DateTime::from_timestamp(t, 0) {
        Some(dt) => dt.naive_utc(),
        None if t < 0 => NaiveDateTime::MIN,
        None => NaiveDateTime::MAX,
    }
}

fn year_of(t: i64) -> i32 {
    naive(t).year()
}

/// UTC seconds of January 1st, 00:00 of `year` read as UTC.
fn year_start(year: i32) -> i64 {
    let year = year.clamp(MIN_YEAR - 1, MAX_YEAR + 1);
    // Infallible: the clamped year is well inside chrono's range.
    NaiveDate::from_ymd_opt(year, 1, 1).map_or(0, |d| ts(d.and_time(NaiveTime::MIN)))
}

// ---------------------------------------------------------------------------------------------
// VTIMEZONE
// ---------------------------------------------------------------------------------------------

/// iCalendar years have four digits; a UTC value shifted by an offset can spill one year over.
const MIN_YEAR: i32 = -1;
const MAX_YEAR: i32 = 10_000;
/// How far a COUNT-bounded rule is expanded to find its last instance. A rule that has not
/// produced COUNT instances in five centuries is treated as ending there.
const COUNT_HORIZON_YEARS: i32 = 500;
/// Per-VTIMEZONE cache of expanded years; a request touches a handful, so this only guards
/// against unbounded growth in a long-lived zone.
const CACHE_YEARS: usize = 512;

/// A VTIMEZONE definition (RFC 5545 §3.6.5): STANDARD/DAYLIGHT observances, each with DTSTART
/// (local time in TZOFFSETFROM), TZOFFSETFROM, TZOFFSETTO, optional RRULE and RDATEs.
///
/// Evaluation works on "onsets": the UTC instants at which an observance starts. The observance
/// in force at an instant is the one with the latest onset at or before it; before the first
/// onset, the TZOFFSETFROM of the earliest observance applies (the zone's offset before its
/// history begins). Onsets are computed per local year on demand and cached, because
/// recurrence expansion asks for thousands of instants in a few years, and a VTIMEZONE starting
/// in 1601 (as Exchange writes them) must not cost four centuries of expansion.
#[derive(Debug)]
pub struct VTimezone {
    pub tzid: String,
    observances: Vec<Observance>,
    /// Offset before the first onset.
    initial_offset: i32,
    /// Local years outside `min_year..=max_year` hold no onset.
    min_year: i32,
    max_year: i32,
    /// Extremes of TZOFFSETFROM, which bound how far an onset's UTC instant can stray from its
    /// local year.
    min_from: i32,
    max_from: i32,
    /// Onsets by local year, sorted by instant.
    years: RwLock<HashMap<i32, Arc<[Onset]>>>,
}

#[derive(Debug)]
struct Observance {
    offset_from: i32,
    offset_to: i32,
    /// Wall-clock time in `offset_from` (RFC 5545 §3.8.2.4 in a VTIMEZONE).
    dtstart: NaiveDateTime,
    /// Wall-clock times in `offset_from`, sorted.
    rdates: Vec<NaiveDateTime>,
    rules: Vec<BoundedRule>,
}

#[derive(Debug)]
struct BoundedRule {
    rule: Rule,
    /// Latest instance allowed by UNTIL and COUNT, as wall-clock time in TZOFFSETFROM.
    last: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Copy)]
struct Onset {
    utc: i64,
    offset_to: i32,
}

impl VTimezone {
    /// Builds a zone from a parsed VTIMEZONE. Strict about what decides an offset (every
    /// observance needs DTSTART, TZOFFSETTO, valid offsets and rules), because a silently wrong
    /// offset misplaces every event in the zone; lenient about what does not (unknown
    /// properties and sub-components, empty RRULE/RDATE values, missing TZOFFSETFROM).
    pub fn from_component(c: &Component) -> Result<VTimezone, TzError> {
        if c.name != "VTIMEZONE" {
            return Err(TzError::NotVtimezone(c.name.clone()));
        }
        let tzid = c
            .prop("TZID")
            .map(|p| p.value.clone())
            .filter(|v| !v.trim().is_empty())
            .ok_or(TzError::MissingTzid)?;
        let mut observances = Vec::new();
        for sub in &c.children {
            if sub.name == "STANDARD" || sub.name == "DAYLIGHT" {
                observances.push(Observance::from_component(sub, &tzid)?);
            }
        }
        if observances.is_empty() {
            return Err(TzError::NoObservances(tzid));
        }
        Ok(Self::from_observances(tzid, observances))
    }

    /// A zone with one offset forever, for TZIDs that carry nothing but an offset.
    pub fn fixed(tzid: impl Into<String>, offset: i32) -> VTimezone {
        // The Unix epoch; any start works for an observance that never changes.
        let epoch = NaiveDateTime::default();
        let obs = Observance {
            offset_from: offset,
            offset_to: offset,
            dtstart: epoch,
            rdates: Vec::new(),
            rules: Vec::new(),
        };
        Self::from_observances(tzid.into(), vec![obs])
    }

    fn from_observances(tzid: String, observances: Vec<Observance>) -> VTimezone {
        let mut initial_offset = 0;
        let mut first_onset = i64::MAX;
        let mut min_year = i32::MAX;
        let mut max_year = i32::MIN;
        for obs in &observances {
            let first = obs
                .rdates
                .first()
                .map_or(obs.dtstart, |&r| r.min(obs.dtstart));
            let first_utc = ts(first) - i64::from(obs.offset_from);
            // Ties keep the observance listed first.
            if first_utc < first_onset {
                first_onset = first_utc;
                initial_offset = obs.offset_from;
            }
            min_year = min_year.min(first.year());
            let mut last_year = obs
                .rdates
                .last()
                .map_or(obs.dtstart, |&r| r.max(obs.dtstart))
                .year();
            for r in &obs.rules {
                last_year = last_year.max(r.last.map_or(MAX_YEAR, |l| l.year()));
            }
            max_year = max_year.max(last_year);
        }
        let min_from = observances.iter().map(|o| o.offset_from).min().unwrap_or(0);
        let max_from = observances.iter().map(|o| o.offset_from).max().unwrap_or(0);
        VTimezone {
            tzid,
            observances,
            initial_offset,
            min_year: min_year.max(MIN_YEAR),
            max_year: max_year.min(MAX_YEAR),
            min_from,
            max_from,
            years: RwLock::new(HashMap::new()),
        }
    }

    /// Offset (seconds east of UTC) in force at a UTC instant.
    pub fn offset_at(&self, utc: i64) -> i32 {
        self.onset_at_or_before(utc)
            .map_or(self.initial_offset, |o| o.offset_to)
    }

    /// See [`Zone::local_to_utc`] for the RFC 5545 §3.3.5 rules.
    ///
    /// Every instant that can show wall time `l` lies within a day of `l` read as UTC (offsets
    /// are below 24 hours), so the offsets in force over `l ± 2 days` form a short list of
    /// segments; the first segment whose wall-clock span contains `l` gives the earliest instant,
    /// and if none does, `l` is in a gap and the segment before the gap gives the offset.
    pub fn local_to_utc(&self, local: NaiveDateTime) -> i64 {
        let l = ts(local);
        let lo = l.saturating_sub(2 * DAY);
        let hi = l.saturating_add(2 * DAY);
        let mut offset = i64::from(self.offset_at(lo));
        let mut start = lo;
        // The first segment's wall clock starts before `l`, so this is always set sensibly.
        let mut before_gap = l - offset;
        for onset in self.onsets_between(lo, hi) {
            if start.saturating_add(offset) <= l {
                if l < onset.utc.saturating_add(offset) {
                    return l - offset;
                }
                before_gap = l - offset;
            }
            start = onset.utc;
            offset = i64::from(onset.offset_to);
        }
        if start.saturating_add(offset) <= l {
            return l - offset;
        }
        before_gap
    }

    /// Local wall-clock time of a UTC instant.
    pub fn utc_to_local(&self, utc: i64) -> NaiveDateTime {
        naive(utc.saturating_add(i64::from(self.offset_at(utc))))
    }

    /// Latest onset at or before `t`. Walks local years downwards from the last one that can
    /// hold an onset at or before `t`, and stops as soon as no earlier year can beat what was
    /// found: onsets of local year `y` lie before `start(y + 1) - min_from`.
    fn onset_at_or_before(&self, t: i64) -> Option<Onset> {
        let mut year = year_of(t.saturating_add(i64::from(self.max_from))).min(self.max_year);
        let mut best: Option<Onset> = None;
        while year >= self.min_year {
            if let Some(b) = best {
                if b.utc >= year_start(year + 1) - i64::from(self.min_from) {
                    break;
                }
            }
            let onsets = self.year(year);
            let i = onsets.partition_point(|o| o.utc <= t);
            if i > 0 {
                let found = onsets[i - 1];
                if best.is_none_or(|b| found.utc > b.utc) {
                    best = Some(found);
                }
            }
            year -= 1;
        }
        best
    }

    /// Onsets with `lo < utc <= hi`, sorted by instant.
    fn onsets_between(&self, lo: i64, hi: i64) -> Vec<Onset> {
        let first = (year_of(lo) - 1).max(self.min_year);
        let last = (year_of(hi) + 1).min(self.max_year);
        let mut out = Vec::new();
        for year in first..=last {
            let onsets = self.year(year);
            out.extend(onsets.iter().filter(|o| o.utc > lo && o.utc <= hi).copied());
        }
        out.sort_by_key(|o| o.utc);
        out
    }

    /// The onsets whose wall-clock time falls in local year `year`, sorted by instant; equal
    /// instants keep document order, so the observance listed last wins a tie.
    fn year(&self, year: i32) -> Arc<[Onset]> {
        let cached = self
            .years
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&year)
            .cloned();
        if let Some(onsets) = cached {
            return onsets;
        }
        let mut onsets = Vec::new();
        let mut locals = Vec::new();
        for obs in &self.observances {
            locals.clear();
            obs.onsets_in_year(year, &mut locals);
            onsets.extend(locals.iter().map(|&l| Onset {
                utc: ts(l) - i64::from(obs.offset_from),
                offset_to: obs.offset_to,
            }));
        }
        onsets.sort_by_key(|o| o.utc);
        let onsets: Arc<[Onset]> = onsets.into();
        let mut cache = self
            .years
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= CACHE_YEARS {
            cache.clear();
        }
        cache.insert(year, Arc::clone(&onsets));
        onsets
    }
}

impl Observance {
    fn from_component(c: &Component, tzid: &str) -> Result<Observance, TzError> {
        let missing = |property| TzError::MissingProperty {
            tzid: tzid.to_owned(),
            property,
        };
        let offset_to = parse_utc_offset(
            &c.prop("TZOFFSETTO")
                .ok_or_else(|| missing("TZOFFSETTO"))?
                .value,
        )?;
        // RFC 5545 §3.6.5 requires TZOFFSETFROM, but some producers drop it from the first
        // observance; the offset it changes into is the only sensible stand-in.
        let offset_from = match c.prop("TZOFFSETFROM") {
            Some(p) => parse_utc_offset(&p.value)?,
            None => offset_to,
        };
        let dtstart = c.prop("DTSTART").ok_or_else(|| missing("DTSTART"))?;
        let dtstart = parse_stamp(&dtstart.value)?.wall_clock(offset_from);
        let mut rdates = Vec::new();
        for p in c.props_named("RDATE") {
            for v in p.value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                // RFC 5545 §3.8.5.2: a PERIOD starts the observance at its start.
                let start = v.split('/').next().unwrap_or(v);
                rdates.push(parse_stamp(start)?.wall_clock(offset_from));
            }
        }
        rdates.sort();
        rdates.dedup();
        let mut rules = Vec::new();
        for p in c.props_named("RRULE") {
            if p.value.trim().is_empty() {
                continue;
            }
            let rule = Rule::parse(&p.value)?;
            let last = rule.last_instance(dtstart, offset_from);
            rules.push(BoundedRule { rule, last });
        }
        Ok(Observance {
            offset_from,
            offset_to,
            dtstart,
            rdates,
            rules,
        })
    }

    /// Onsets in local year `year` as wall-clock times in TZOFFSETFROM: DTSTART (always the
    /// first onset, RFC 5545 §3.8.5.3, even when the rule would not produce it), RDATEs, and
    /// the RRULE instances after DTSTART up to UNTIL/COUNT.
    fn onsets_in_year(&self, year: i32, out: &mut Vec<NaiveDateTime>) {
        if self.dtstart.year() == year {
            out.push(self.dtstart);
        }
        out.extend(self.rdates.iter().filter(|r| r.year() == year));
        if year >= self.dtstart.year() {
            for r in &self.rules {
                if r.last.is_some_and(|l| l.year() < year) {
                    continue;
                }
                out.extend(
                    r.rule
                        .instances_in_year(year, self.dtstart)
                        .into_iter()
                        .filter(|&i| i > self.dtstart && r.last.is_none_or(|l| i <= l)),
                );
            }
        }
        out.sort();
        out.dedup();
    }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// UTC-OFFSET (RFC 5545 §3.3.14): `+HHMM` or `+HHMMSS`, sign required. Also accepts `+HH:MM`
/// since some producers write the ISO 8601 extended form. `-0000` is read as zero.
pub fn parse_utc_offset(s: &str) -> Result<i32, TzError> {
    let err = || TzError::InvalidOffset(s.to_owned());
    let t = s.trim();
    let (sign, rest) = if let Some(r) = t.strip_prefix('+') {
        (1, r)
    } else if let Some(r) = t.strip_prefix('-') {
        (-1, r)
    } else {
        return Err(err());
    };
    let digits: Vec<i32> = rest
        .chars()
        .filter(|&c| c != ':')
        .map(|c| c.to_digit(10).and_then(|d| i32::try_from(d).ok()))
        .collect::<Option<_>>()
        .ok_or_else(err)?;
    let pair = |i: usize| digits[i] * 10 + digits[i + 1];
    let (h, m, sec) = match digits.len() {
        4 => (pair(0), pair(2), 0),
        6 => (pair(0), pair(2), pair(4)),
        _ => return Err(err()),
    };
    if h > 23 || m > 59 || sec > 59 {
        return Err(err());
    }
    Ok(sign * (h * 3600 + m * 60 + sec))
}

/// A DATE or DATE-TIME value (RFC 5545 §3.3.4, §3.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    Date(NaiveDate),
    Local(NaiveDateTime),
    Utc(NaiveDateTime),
}

impl Stamp {
    /// The wall-clock time this value names in a zone at `offset`; VTIMEZONE values are local
    /// times in TZOFFSETFROM, but a stray UTC value still names a definite instant.
    fn wall_clock(self, offset: i32) -> NaiveDateTime {
        match self {
            Stamp::Date(d) => d.and_time(NaiveTime::MIN),
            Stamp::Local(n) => n,
            Stamp::Utc(n) => naive(ts(n) + i64::from(offset)),
        }
    }
}

fn parse_stamp(s: &str) -> Result<Stamp, TzError> {
    let err = || TzError::InvalidDateTime(s.to_owned());
    let t = s.trim();
    if !t.is_ascii() {
        return Err(err());
    }
    let num = |r: &str| -> Result<u32, TzError> {
        if r.bytes().all(|b| b.is_ascii_digit()) {
            r.parse().map_err(|_| err())
        } else {
            Err(err())
        }
    };
    let date = |d: &str| -> Result<NaiveDate, TzError> {
        if d.len() != 8 {
            return Err(err());
        }
        let y = i32::try_from(num(&d[0..4])?).map_err(|_| err())?;
        NaiveDate::from_ymd_opt(y, num(&d[4..6])?, num(&d[6..8])?).ok_or_else(err)
    };
    if t.len() == 8 {
        return Ok(Stamp::Date(date(t)?));
    }
    let (body, utc) = match t.strip_suffix(['Z', 'z']) {
        Some(b) => (b, true),
        None => (t, false),
    };
    let (d, tm) = body.split_once(['T', 't']).ok_or_else(err)?;
    if tm.len() != 6 {
        return Err(err());
    }
    // A leap second (60) has no place in a zone definition; read it as :59.
    let time = NaiveTime::from_hms_opt(num(&tm[0..2])?, num(&tm[2..4])?, num(&tm[4..6])?.min(59))
        .ok_or_else(err)?;
    let n = date(d)?.and_time(time);
    Ok(if utc { Stamp::Utc(n) } else { Stamp::Local(n) })
}

// ---------------------------------------------------------------------------------------------
// Recurrence rules of observances
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freq {
    Yearly,
    Monthly,
    Weekly,
    Daily,
}

/// An RRULE (RFC 5545 §3.3.10) as VTIMEZONE observances use it. Expansion is by local year and
/// written here rather than delegated to the `rrule` crate: zones need "the onsets of year Y"
/// thousands of times, not "the first N instances", and the crate insists on zoned start times
/// where a VTIMEZONE has only wall-clock ones. Sub-daily frequencies and BYWEEKNO never
/// describe a time zone and are refused.
#[derive(Debug, Clone)]
struct Rule {
    freq: Freq,
    interval: u32,
    until: Option<Stamp>,
    count: Option<u32>,
    by_month: Vec<u32>,
    by_monthday: Vec<i32>,
    by_yearday: Vec<i32>,
    /// (ordinal, weekday); ordinal 0 means every such weekday.
    by_day: Vec<(i32, Weekday)>,
    by_setpos: Vec<i32>,
    by_hour: Vec<u32>,
    by_minute: Vec<u32>,
    by_second: Vec<u32>,
    wkst: Weekday,
}

impl Rule {
    fn parse(value: &str) -> Result<Rule, TzError> {
        let invalid = |reason: String| TzError::InvalidRule {
            rule: value.to_owned(),
            reason,
        };
        let unsupported = |reason: &str| TzError::UnsupportedRule {
            rule: value.to_owned(),
            reason: reason.to_owned(),
        };
        let mut rule = Rule {
            freq: Freq::Yearly,
            interval: 1,
            until: None,
            count: None,
            by_month: Vec::new(),
            by_monthday: Vec::new(),
            by_yearday: Vec::new(),
            by_day: Vec::new(),
            by_setpos: Vec::new(),
            by_hour: Vec::new(),
            by_minute: Vec::new(),
            by_second: Vec::new(),
            wkst: Weekday::Mon,
        };
        let mut freq = None;
        for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, val) = part
                .split_once('=')
                .ok_or_else(|| invalid(format!("{part:?} is not NAME=VALUE")))?;
            let key = key.trim().to_ascii_uppercase();
            let val = val.trim();
            let ints = |lo: i32, hi: i32, nonzero: bool| -> Result<Vec<i32>, TzError> {
                val.split(',')
                    .map(|v| {
                        v.trim()
                            .parse::<i32>()
                            .ok()
                            .filter(|n| {
                                let mag = if nonzero { n.abs() } else { *n };
                                (lo..=hi).contains(&mag) && (!nonzero || *n != 0)
                            })
                            .ok_or_else(|| invalid(format!("bad {key} value {v:?}")))
                    })
                    .collect()
            };
            let uints = |lo: i32, hi: i32| -> Result<Vec<u32>, TzError> {
                Ok(ints(lo, hi, false)?
                    .into_iter()
                    .filter_map(|n| u32::try_from(n).ok())
                    .collect())
            };
            match key.as_str() {
                "FREQ" => {
                    freq = Some(match val.to_ascii_uppercase().as_str() {
                        "YEARLY" => Freq::Yearly,
                        "MONTHLY" => Freq::Monthly,
                        "WEEKLY" => Freq::Weekly,
                        "DAILY" => Freq::Daily,
                        "HOURLY" | "MINUTELY" | "SECONDLY" => {
                            return Err(unsupported("sub-daily frequency"))
                        }
                        _ => return Err(invalid(format!("unknown FREQ {val:?}"))),
                    })
                }
                "INTERVAL" => {
                    rule.interval = val
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| invalid(format!("bad INTERVAL {val:?}")))?
                }
                "COUNT" => {
                    rule.count = Some(
                        val.parse()
                            .map_err(|_| invalid(format!("bad COUNT {val:?}")))?,
                    )
                }
                "UNTIL" => rule.until = Some(parse_stamp(val)?),
                "BYMONTH" => rule.by_month = uints(1, 12)?,
                "BYMONTHDAY" => rule.by_monthday = ints(1, 31, true)?,
                "BYYEARDAY" => rule.by_yearday = ints(1, 366, true)?,
                "BYSETPOS" => rule.by_setpos = ints(1, 366, true)?,
                "BYHOUR" => rule.by_hour = uints(0, 23)?,
                "BYMINUTE" => rule.by_minute = uints(0, 59)?,
                "BYSECOND" => {
                    rule.by_second = uints(0, 60)?.into_iter().map(|s| s.min(59)).collect()
                }
                "BYDAY" => {
                    for d in val.split(',').map(str::trim) {
                        let split = d.len().saturating_sub(2);
                        let (n, wd) = (d.get(..split), d.get(split..));
                        let wd = wd.and_then(super::value::parse_weekday);
                        let n = match n {
                            Some("") => Some(0),
                            Some(n) => n
                                .strip_prefix('+')
                                .unwrap_or(n)
                                .parse::<i32>()
                                .ok()
                                .filter(|n| *n != 0 && n.abs() <= 53),
                            None => None,
                        };
                        match (n, wd) {
                            (Some(n), Some(wd)) => rule.by_day.push((n, wd)),
                            _ => return Err(invalid(format!("bad BYDAY value {d:?}"))),
                        }
                    }
                }
                "WKST" => {
                    rule.wkst = super::value::parse_weekday(val)
                        .ok_or_else(|| invalid(format!("bad WKST {val:?}")))?
                }
                "BYWEEKNO" => return Err(unsupported("BYWEEKNO")),
                // RFC 7529: only the Gregorian calendar can be evaluated here.
                "RSCALE" if !val.eq_ignore_ascii_case("GREGORIAN") => {
                    return Err(unsupported("non-Gregorian RSCALE"))
                }
                // RSCALE=GREGORIAN, SKIP (meaningless without RSCALE), extensions.
                _ => {}
            }
        }
        rule.freq = freq.ok_or_else(|| invalid("no FREQ".into()))?;
        Ok(rule)
    }

    /// Whether the rule says which days it falls on; without one, the day comes from DTSTART.
    fn has_day_filter(&self) -> bool {
        !(self.by_monthday.is_empty() && self.by_yearday.is_empty() && self.by_day.is_empty())
    }

    /// The last instance allowed by UNTIL and COUNT, as wall-clock time in TZOFFSETFROM.
    fn last_instance(&self, dtstart: NaiveDateTime, offset_from: i32) -> Option<NaiveDateTime> {
        let until = self.until.map(|u| match u {
            // UNTIL is inclusive; a DATE ends with its last second.
            Stamp::Date(d) => d.and_hms_opt(23, 59, 59).unwrap_or_default(),
            // RFC 5545 §3.3.10 wants UTC in a VTIMEZONE: an onset qualifies when
            // local - TZOFFSETFROM <= UNTIL. Local values (common in practice) compare directly.
            other => other.wall_clock(offset_from),
        });
        let Some(count) = self.count else {
            return until;
        };
        // RFC 5545 §3.3.10: DTSTART counts as the first instance.
        if count <= 1 {
            return Some(dtstart);
        }
        let mut seen = 1;
        let horizon = (dtstart.year() + COUNT_HORIZON_YEARS).min(MAX_YEAR);
        for year in dtstart.year()..=horizon {
            for i in self.instances_in_year(year, dtstart) {
                if i <= dtstart {
                    continue;
                }
                if until.is_some_and(|u| i > u) {
                    return until;
                }
                seen += 1;
                if seen == count {
                    return Some(i);
                }
            }
        }
        let end = NaiveDate::from_ymd_opt(horizon, 12, 31).and_then(|d| d.and_hms_opt(23, 59, 59));
        match (until, end) {
            (Some(u), Some(e)) => Some(u.min(e)),
            (u, e) => u.or(e),
        }
    }

    /// Instances of the rule whose wall-clock time falls in `year`, sorted, ignoring DTSTART,
    /// UNTIL and COUNT (the caller applies those). Each period the frequency defines (a year,
    /// month, week or day, skipping those INTERVAL excludes) contributes the days matching the
    /// BYxxx parts at the BYHOUR/BYMINUTE/BYSECOND times, narrowed by BYSETPOS.
    fn instances_in_year(&self, year: i32, dtstart: NaiveDateTime) -> Vec<NaiveDateTime> {
        let mut out = Vec::new();
        let d0 = dtstart.date();
        if year < d0.year() {
            return out;
        }
        let times = self.times(dtstart.time());
        let interval = i64::from(self.interval);
        let mut period: Vec<NaiveDate> = Vec::new();
        match self.freq {
            Freq::Yearly => {
                if i64::from(year - d0.year()) % interval != 0 {
                    return out;
                }
                let months: Vec<u32> = if !self.by_month.is_empty() {
                    self.by_month.clone()
                } else if self.has_day_filter() {
                    (1..=12).collect()
                } else {
                    vec![d0.month()]
                };
                for m in months {
                    period.extend(days_of_month(year, m).filter(|d| self.matches(*d, d0)));
                }
                period.sort();
                self.emit(&period, &times, year, &mut out);
            }
            Freq::Monthly => {
                for m in 1..=12u32 {
                    let elapsed =
                        i64::from(year - d0.year()) * 12 + i64::from(m) - i64::from(d0.month());
                    if elapsed < 0 || elapsed % interval != 0 {
                        continue;
                    }
                    period.clear();
                    period.extend(days_of_month(year, m).filter(|d| self.matches(*d, d0)));
                    self.emit(&period, &times, year, &mut out);
                }
            }
            Freq::Weekly => {
                let week0 = week_start(d0, self.wkst);
                let (Some(jan1), Some(dec31)) = (
                    NaiveDate::from_ymd_opt(year, 1, 1),
                    NaiveDate::from_ymd_opt(year, 12, 31),
                ) else {
                    return out;
                };
                let mut week = week_start(jan1, self.wkst);
                while week <= dec31 {
                    let weeks = (week - week0).num_days() / 7;
                    if weeks >= 0 && weeks % interval == 0 {
                        period.clear();
                        period.extend(week.iter_days().take(7).filter(|d| self.matches(*d, d0)));
                        self.emit(&period, &times, year, &mut out);
                    }
                    match week.checked_add_days(Days::new(7)) {
                        Some(next) => week = next,
                        None => break,
                    }
                }
            }
            Freq::Daily => {
                for m in 1..=12 {
                    for d in days_of_month(year, m) {
                        let elapsed = (d - d0).num_days();
                        if elapsed >= 0 && elapsed % interval == 0 && self.matches(d, d0) {
                            self.emit(&[d], &times, year, &mut out);
                        }
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Times of day: the BYHOUR × BYMINUTE × BYSECOND product, DTSTART's parts where absent.
    fn times(&self, t0: NaiveTime) -> Vec<NaiveTime> {
        let or = |v: &Vec<u32>, d: u32| if v.is_empty() { vec![d] } else { v.clone() };
        let mut out = Vec::new();
        for h in or(&self.by_hour, t0.hour()) {
            for m in or(&self.by_minute, t0.minute()) {
                for s in or(&self.by_second, t0.second()) {
                    out.extend(NaiveTime::from_hms_opt(h, m, s));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Adds one period's instances (its matching days at every time, narrowed by BYSETPOS)
    /// that fall in `year`.
    fn emit(
        &self,
        days: &[NaiveDate],
        times: &[NaiveTime],
        year: i32,
        out: &mut Vec<NaiveDateTime>,
    ) {
        let all = days
            .iter()
            .flat_map(|d| times.iter().map(move |t| d.and_time(*t)));
        if self.by_setpos.is_empty() {
            out.extend(all.filter(|i| i.year() == year));
            return;
        }
        let all: Vec<NaiveDateTime> = all.collect();
        let len = i64::try_from(all.len()).unwrap_or(i64::MAX);
        for &pos in &self.by_setpos {
            let pos = i64::from(pos);
            let idx = if pos > 0 { pos - 1 } else { len + pos };
            if let Some(i) = usize::try_from(idx).ok().and_then(|i| all.get(i)) {
                if i.year() == year {
                    out.push(*i);
                }
            }
        }
    }

    /// Whether day `d` satisfies the BYxxx parts (or, without day parts, DTSTART's day).
    fn matches(&self, d: NaiveDate, d0: NaiveDate) -> bool {
        if !self.by_month.is_empty() && !self.by_month.contains(&d.month()) {
            return false;
        }
        let dom = i32::try_from(d.day()).unwrap_or(0);
        let dim = i32::try_from(days_in_month(d.year(), d.month())).unwrap_or(31);
        let doy = i32::try_from(d.ordinal()).unwrap_or(0);
        let diy = if d.leap_year() { 366 } else { 365 };
        if !self.by_yearday.is_empty()
            && !self
                .by_yearday
                .iter()
                .any(|&n| n == doy || n == doy - diy - 1)
        {
            return false;
        }
        if !self.by_monthday.is_empty()
            && !self
                .by_monthday
                .iter()
                .any(|&n| n == dom || n == dom - dim - 1)
        {
            return false;
        }
        if !self.by_day.is_empty() {
            // RFC 5545 §3.3.10: an ordinal counts within the month for MONTHLY (and YEARLY
            // with BYMONTH), within the year for plain YEARLY; other frequencies take none.
            let (index, len) = match self.freq {
                Freq::Monthly => (dom, dim),
                Freq::Yearly if !self.by_month.is_empty() => (dom, dim),
                Freq::Yearly => (doy, diy),
                Freq::Weekly | Freq::Daily => (0, 0),
            };
            let ok = self.by_day.iter().any(|&(n, wd)| {
                wd == d.weekday()
                    && (n == 0
                        || len == 0
                        || (n > 0 && (index - 1) / 7 + 1 == n)
                        || (n < 0 && (len - index) / 7 + 1 == -n))
            });
            if !ok {
                return false;
            }
        }
        if !self.has_day_filter() {
            return match self.freq {
                Freq::Yearly | Freq::Monthly => d.day() == d0.day(),
                Freq::Weekly => d.weekday() == d0.weekday(),
                Freq::Daily => true,
            };
        }
        true
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if NaiveDate::from_ymd_opt(year, 1, 1).is_some_and(|d| d.leap_year()) => 29,
        2 => 28,
        _ => 0,
    }
}

fn days_of_month(year: i32, month: u32) -> impl Iterator<Item = NaiveDate> {
    (1..=days_in_month(year, month)).filter_map(move |d| NaiveDate::from_ymd_opt(year, month, d))
}

fn week_start(d: NaiveDate, wkst: Weekday) -> NaiveDate {
    let back = (7 + d.weekday().num_days_from_monday() - wkst.num_days_from_monday()) % 7;
    d.checked_sub_days(Days::new(u64::from(back))).unwrap_or(d)
}

// ---------------------------------------------------------------------------------------------
// Resolving TZIDs
// ---------------------------------------------------------------------------------------------

/// All zones a calendar object can refer to.
#[derive(Debug, Default)]
pub struct ZoneResolver {
    /// Usable VTIMEZONEs of the object; the first one wins when a TZID repeats.
    custom: Vec<Arc<VTimezone>>,
    /// VTIMEZONEs that could not be used, with why, for diagnostics. Their TZIDs still
    /// resolve through the other steps (an IANA or Windows name needs no definition).
    unusable: Vec<(String, TzError)>,
}

impl ZoneResolver {
    /// Builds the resolver from the object's VTIMEZONE components. Invalid ones are skipped
    /// and remembered in [`ZoneResolver::unusable`].
    pub fn new(vtimezones: &[&Component]) -> ZoneResolver {
        let mut r = ZoneResolver::default();
        for c in vtimezones {
            match VTimezone::from_component(c) {
                Ok(v) => {
                    if !r.custom.iter().any(|o| o.tzid == v.tzid) {
                        r.custom.push(Arc::new(v));
                    }
                }
                Err(e) => {
                    let tzid = c.prop("TZID").map(|p| p.value.clone()).unwrap_or_default();
                    r.unusable.push((tzid, e));
                }
            }
        }
        r
    }

    /// The VTIMEZONEs that were skipped: (TZID, reason).
    pub fn unusable(&self) -> &[(String, TzError)] {
        &self.unusable
    }

    /// The object's own definition of `tzid`, if it has a usable one.
    pub fn vtimezone(&self, tzid: &str) -> Option<&Arc<VTimezone>> {
        let wanted = clean_tzid(tzid);
        self.custom
            .iter()
            .find(|v| v.tzid == tzid)
            .or_else(|| self.custom.iter().find(|v| clean_tzid(&v.tzid) == wanted))
    }

    /// Resolves a TZID parameter value. Order: (1) "UTC"/"Z"/"Etc/UTC"/"GMT" etc. → Zone::Utc;
    /// (2) an IANA name known to chrono-tz (exact, then case-insensitive); (3) a VTIMEZONE of
    /// the object with that TZID; (4) a Windows zone name as Outlook/Exchange send it, mapped
    /// to IANA with the CLDR windowsZones "001" mapping; (5) tolerant forms: Mozilla-style
    /// prefixes ("/mozilla.org/20050126_1/Europe/Berlin": the longest suffix that is an IANA
    /// name), Windows display names ("(UTC+01:00) Amsterdam, Berlin, …"), and bare offsets
    /// ("GMT+01:00", "GMT +0100 (Standard) / GMT +0200 (Daylight)") as a fixed-offset zone.
    /// Surrounding whitespace and quotes are ignored throughout (DAVx5 reports Microsoft TZIDs
    /// with trailing spaces). Returns None when nothing matches.
    ///
    /// An IANA name beats the object's VTIMEZONE of the same name: clients usually embed only
    /// the current rules, while chrono-tz has the zone's whole history, so events from before
    /// the last rule change land right. A VTIMEZONE whose TZID is not an IANA name is always
    /// used, ahead of the Windows mapping, because then the definition is the only authority
    /// on what the sender meant (custom zones, or a Windows name with the sender's own rules).
    pub fn resolve(&self, tzid: &str) -> Option<Zone> {
        let name = clean_tzid(tzid);
        if name.is_empty() {
            return None;
        }
        if is_utc_alias(name) {
            return Some(Zone::Utc);
        }
        if let Some(tz) = iana(name) {
            return Some(Zone::Iana(tz));
        }
        if let Some(v) = self.vtimezone(tzid) {
            return Some(Zone::Custom(Arc::clone(v)));
        }
        if let Some(tz) = windows_to_iana(name) {
            return Some(Zone::Iana(tz));
        }
        prefixed_iana(name)
            .map(Zone::Iana)
            .or_else(|| display_name_zone(name))
            .or_else(|| offset_label(name).map(|off| fixed_zone(name, off)))
    }
}

/// Strips whitespace and surrounding quotes (a TZID parameter's quotes are normally removed by
/// the parser, but some producers quote inside the value or pad it).
fn clean_tzid(s: &str) -> &str {
    let mut t = s.trim();
    while t.len() >= 2
        && ((t.starts_with('"') && t.ends_with('"')) || (t.starts_with('\'') && t.ends_with('\'')))
    {
        t = t[1..t.len() - 1].trim();
    }
    t
}

fn is_utc_alias(s: &str) -> bool {
    const ALIASES: &[&str] = &[
        "UTC",
        "Z",
        "GMT",
        "UCT",
        "Zulu",
        "Universal",
        "Greenwich",
        "GMT0",
        "GMT+0",
        "GMT-0",
        "UTC0",
        "UTC+0",
        "UTC-0",
        "Etc/UTC",
        "Etc/UCT",
        "Etc/GMT",
        "Etc/GMT0",
        "Etc/GMT+0",
        "Etc/GMT-0",
        "Etc/Zulu",
        "Etc/Universal",
        "Etc/Greenwich",
        "Coordinated Universal Time",
    ];
    ALIASES.iter().any(|a| a.eq_ignore_ascii_case(s))
}

/// An IANA name known to chrono-tz, exact or ignoring case.
fn iana(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok().or_else(|| {
        chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(name))
            .copied()
    })
}

fn cmp_ignore_case(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// A Windows zone name ("W. Europe Standard Time") mapped with CLDR's territory "001" row.
fn windows_to_iana(name: &str) -> Option<Tz> {
    let i = WINDOWS_TO_IANA
        .binary_search_by(|(win, _)| cmp_ignore_case(win, name))
        .ok()?;
    WINDOWS_TO_IANA[i].1.parse().ok()
}

/// Thunderbird/Lightning ("/mozilla.org/20050126_1/Europe/Berlin"), Citadel
/// ("/citadel.org/20190914_1/Europe/Berlin") and similar path-prefixed IANA names: the longest
/// suffix after a '/' that chrono-tz knows.
fn prefixed_iana(name: &str) -> Option<Tz> {
    name.match_indices('/')
        .map(|(i, _)| &name[i + 1..])
        .find_map(iana)
}

/// Normalised city list of a display name: lower case, Latin accents dropped, punctuation runs
/// as single spaces, so that "Amsterdam, Berlin, Bern" and Outlook 2000's "Amsterdam / Berlin /
/// Bern" compare equal, and a localised "Brasília" finds CLDR's "Brasilia".
fn city_key(s: &str) -> String {
    let mut out = String::new();
    for word in s
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase).map(fold_accent));
    }
    out
}

fn fold_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        other => other,
    }
}

fn display_name_index() -> &'static [(String, &'static str)] {
    static INDEX: OnceLock<Vec<(String, &'static str)>> = OnceLock::new();
    INDEX.get_or_init(|| {
        WINDOWS_DISPLAY_NAMES
            .iter()
            .filter_map(|(display, win)| {
                let (_, cities) = display.split_once(')')?;
                Some((city_key(cities), *win))
            })
            .collect()
    })
}

/// Outlook's display-name TZIDs: "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm,
/// Vienna" or the older "(GMT+01.00) …". The city list picks the Windows zone (its offset may
/// have changed since the name was written); failing that, the offset alone is used.
fn display_name_zone(name: &str) -> Option<Zone> {
    let rest = name.strip_prefix('(')?;
    let (label, cities) = rest.split_once(')')?;
    let offset = offset_label(label)?;
    let key = city_key(cities);
    if !key.is_empty() {
        if let Some((_, win)) = display_name_index().iter().find(|(k, _)| *k == key) {
            if let Some(tz) = windows_to_iana(win) {
                return Some(Zone::Iana(tz));
            }
        }
    }
    Some(fixed_zone(name, offset))
}

/// Offset named by a label such as "UTC", "UTC+01:00", "GMT-5", "GMT+01.00", "GMT +0100",
/// followed by nothing or by a parenthesised/space-separated remark ("GMT +0100 (Standard) /
/// GMT +0200 (Daylight)", where the first, standard offset is taken). Signs are read as people
/// write them (east positive), not the POSIX way "Etc/GMT+1" reads them; "Etc/" names never
/// get here because chrono-tz resolves them first.
fn offset_label(s: &str) -> Option<i32> {
    let t = s.trim();
    let head = t.get(..3)?;
    if !head.eq_ignore_ascii_case("UTC") && !head.eq_ignore_ascii_case("GMT") {
        return None;
    }
    let rest = t[3..].trim_start();
    let sign = match rest.chars().next() {
        None => return Some(0),
        Some('+') => 1,
        Some('-') => -1,
        Some(c) if c == '(' || c.is_whitespace() => return Some(0),
        Some(_) => return None,
    };
    let body = rest[1..].trim_start();
    let end = body
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(body.len());
    let (num, tail) = body.split_at(end);
    if !(tail.is_empty() || tail.starts_with([' ', '('])) {
        return None;
    }
    let (h, m) = match num.split_once([':', '.']) {
        Some((h, m)) => (h, m),
        None if num.len() > 2 => num.split_at(num.len() - 2),
        None => (num, "00"),
    };
    let h: i32 = h.parse().ok().filter(|_| (1..=2).contains(&h.len()))?;
    let m: i32 = m.parse().ok().filter(|_| m.len() == 2)?;
    let total = h * 3600 + m * 60;
    (m < 60 && total <= 14 * 3600).then_some(sign * total)
}

/// A zone for a bare offset: the matching "Etc/GMT∓h" zone for whole hours (its POSIX sign is
/// inverted), else a one-observance VTIMEZONE named after the TZID.
fn fixed_zone(tzid: &str, offset: i32) -> Zone {
    if offset == 0 {
        return Zone::Utc;
    }
    if offset % 3600 == 0 {
        let etc = format!("Etc/GMT{:+}", -offset / 3600);
        if let Ok(tz) = etc.parse::<Tz>() {
            return Zone::Iana(tz);
        }
    }
    Zone::Custom(Arc::new(VTimezone::fixed(tzid, offset)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::parse::parse;
    use std::path::{Path, PathBuf};

    fn dt(s: &str) -> NaiveDateTime {
        match parse_stamp(s).unwrap() {
            Stamp::Local(n) | Stamp::Utc(n) => n,
            Stamp::Date(d) => d.and_time(NaiveTime::MIN),
        }
    }

    fn utc(s: &str) -> i64 {
        ts(dt(s))
    }

    fn vtz(text: &str) -> VTimezone {
        let tops = parse(text).unwrap();
        VTimezone::from_component(&tops[0]).unwrap()
    }

    fn custom(text: &str) -> Zone {
        Zone::Custom(Arc::new(vtz(text)))
    }

    const US_EASTERN: &str = "BEGIN:VTIMEZONE\r\nTZID:US-Eastern\r\n\
        BEGIN:STANDARD\r\nDTSTART:20071104T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\n\
        TZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nTZNAME:EST\r\nEND:STANDARD\r\n\
        BEGIN:DAYLIGHT\r\nDTSTART:20070311T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\n\
        TZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nTZNAME:EDT\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";

    const EU_BERLIN: &str = "BEGIN:VTIMEZONE\nTZID:My Berlin\n\
        BEGIN:DAYLIGHT\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nTZNAME:CEST\n\
        DTSTART:19810329T020000\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\nEND:DAYLIGHT\n\
        BEGIN:STANDARD\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nTZNAME:CET\n\
        DTSTART:19961027T030000\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\nEND:STANDARD\n\
        END:VTIMEZONE\n";

    fn check_new_york(z: &Zone) {
        let name = z.name().to_owned();
        // RFC 5545 §3.3.5: the gap 02:00-03:00 on 2007-03-11 takes the offset before it.
        assert_eq!(
            z.local_to_utc(dt("20070311T023000")),
            utc("20070311T073000Z"),
            "{name}"
        );
        // The overlap 01:00-02:00 on 2007-11-04 means the first (EDT) occurrence.
        assert_eq!(
            z.local_to_utc(dt("20071104T013000")),
            utc("20071104T053000Z"),
            "{name}"
        );
        assert_eq!(
            z.local_to_utc(dt("20240115T120000")),
            utc("20240115T170000Z"),
            "{name}"
        );
        assert_eq!(
            z.local_to_utc(dt("20240715T120000")),
            utc("20240715T160000Z"),
            "{name}"
        );
        // Just either side of both 2024 transitions.
        assert_eq!(
            z.local_to_utc(dt("20240310T015959")),
            utc("20240310T065959Z"),
            "{name}"
        );
        assert_eq!(
            z.local_to_utc(dt("20240310T030000")),
            utc("20240310T070000Z"),
            "{name}"
        );
        assert_eq!(
            z.local_to_utc(dt("20241103T005959")),
            utc("20241103T045959Z"),
            "{name}"
        );
        assert_eq!(
            z.local_to_utc(dt("20241103T020000")),
            utc("20241103T070000Z"),
            "{name}"
        );
        assert_eq!(z.offset_at(utc("20240310T065959Z")), -5 * 3600, "{name}");
        assert_eq!(z.offset_at(utc("20240310T070000Z")), -4 * 3600, "{name}");
        assert_eq!(z.offset_at(utc("20241103T055959Z")), -4 * 3600, "{name}");
        assert_eq!(z.offset_at(utc("20241103T060000Z")), -5 * 3600, "{name}");
        assert_eq!(
            z.utc_to_local(utc("20240715T160000Z")),
            dt("20240715T120000"),
            "{name}"
        );
        assert_eq!(
            z.utc_to_local(utc("20241103T053000Z")),
            dt("20241103T013000"),
            "{name}"
        );
        assert_eq!(
            z.utc_to_local(utc("20241103T063000Z")),
            dt("20241103T013000"),
            "{name}"
        );
    }

    #[test]
    fn rfc5545_new_york_iana_and_vtimezone() {
        check_new_york(&Zone::Iana(Tz::America__New_York));
        let z = custom(US_EASTERN);
        check_new_york(&z);
        // Before its first onset the zone keeps the first observance's TZOFFSETFROM.
        assert_eq!(
            z.local_to_utc(dt("20000101T120000")),
            utc("20000101T170000Z")
        );
        assert_eq!(z.offset_at(utc("19000101T000000Z")), -5 * 3600);
    }

    fn check_berlin(z: &Zone) {
        let name = z.name().to_owned();
        // Gap: 02:30 does not exist on 2024-03-31; +01:00 was in force before it.
        assert_eq!(
            z.local_to_utc(dt("20240331T023000")),
            utc("20240331T013000Z"),
            "{name}"
        );
        // Overlap: 02:30 on 2024-10-27 happens twice; the first is CEST (+02:00).
        assert_eq!(
            z.local_to_utc(dt("20241027T023000")),
            utc("20241027T003000Z"),
            "{name}"
        );
        assert_eq!(
            z.local_to_utc(dt("20240101T000000")),
            utc("20231231T230000Z"),
            "{name}"
        );
        assert_eq!(
            z.local_to_utc(dt("20240801T120000")),
            utc("20240801T100000Z"),
            "{name}"
        );
        assert_eq!(z.offset_at(utc("20241027T005959Z")), 7200, "{name}");
        assert_eq!(z.offset_at(utc("20241027T010000Z")), 3600, "{name}");
        assert_eq!(z.offset_at(utc("20500701T000000Z")), 7200, "{name}");
    }

    #[test]
    fn berlin_iana_and_vtimezone() {
        check_berlin(&Zone::Iana(Tz::Europe__Berlin));
        check_berlin(&custom(EU_BERLIN));
    }

    #[test]
    fn round_trip_for_non_gap_times() {
        let zones = [
            Zone::Utc,
            Zone::Iana(Tz::America__New_York),
            Zone::Iana(Tz::Europe__Berlin),
            Zone::Iana(Tz::Australia__Lord_Howe),
            Zone::Iana(Tz::Asia__Kolkata),
            custom(US_EASTERN),
            custom(EU_BERLIN),
        ];
        let mut t = utc("19990101T000000Z");
        let end = utc("20310101T000000Z");
        while t < end {
            for z in &zones {
                let local = z.utc_to_local(t);
                assert_eq!(
                    z.utc_to_local(z.local_to_utc(local)),
                    local,
                    "{} at {t}",
                    z.name()
                );
            }
            t += 7 * 3600 + 13 * 60; // odd step: lands on all times of day over the years
        }
        // And from wall-clock times: every non-gap local time round-trips exactly.
        let z = custom(EU_BERLIN);
        let mut local = dt("20240330T000000");
        while local < dt("20240402T000000") {
            let back = z.utc_to_local(z.local_to_utc(local));
            let in_gap = local >= dt("20240331T020000") && local < dt("20240331T030000");
            assert_eq!(back == local, !in_gap, "{local}");
            local += chrono::Duration::minutes(15);
        }
    }

    #[test]
    fn vtimezone_matches_chrono_tz_for_current_rules() {
        let ours = custom(EU_BERLIN);
        let theirs = Zone::Iana(Tz::Europe__Berlin);
        let ny = custom(US_EASTERN);
        let ny_iana = Zone::Iana(Tz::America__New_York);
        let mut t = utc("20080101T000000Z");
        while t < utc("20400101T000000Z") {
            assert_eq!(ours.offset_at(t), theirs.offset_at(t), "Berlin at {t}");
            assert_eq!(ny.offset_at(t), ny_iana.offset_at(t), "New York at {t}");
            t += 3 * 3600 + 17;
        }
    }

    #[test]
    fn later_transition_only_ambiguity() {
        // From icalendar's issue 722: +12:00 until 2024-05-05 08:00, then +10:00.
        let z = custom(
            "BEGIN:VTIMEZONE\nTZID:MyTimezone\nBEGIN:STANDARD\nTZOFFSETFROM:+1000\n\
             TZOFFSETTO:+1200\nDTSTART:20240101T000000\nEND:STANDARD\nBEGIN:DAYLIGHT\n\
             TZOFFSETFROM:+1200\nTZOFFSETTO:+1000\nDTSTART:20240505T080000\nEND:DAYLIGHT\n\
             END:VTIMEZONE\n",
        );
        assert_eq!(z.offset_at(utc("20231231T120000Z")), 10 * 3600);
        assert_eq!(z.offset_at(utc("20240303T000000Z")), 12 * 3600);
        assert_eq!(z.offset_at(utc("20240804T000000Z")), 10 * 3600);
        // 07:00:01 happens twice: the first is in +12:00.
        assert_eq!(
            z.local_to_utc(dt("20240505T070001")),
            utc("20240504T190001Z")
        );
        // 08:00:01 exists only after the change.
        assert_eq!(
            z.local_to_utc(dt("20240505T080001")),
            utc("20240504T220001Z")
        );
    }

    #[test]
    fn utc_offsets() {
        assert_eq!(parse_utc_offset("+0100"), Ok(3600));
        assert_eq!(parse_utc_offset("-0500"), Ok(-18000));
        assert_eq!(parse_utc_offset("+053000"), Ok(19800));
        assert_eq!(parse_utc_offset("-075258"), Ok(-(7 * 3600 + 52 * 60 + 58)));
        assert_eq!(parse_utc_offset("+01:00"), Ok(3600));
        assert_eq!(parse_utc_offset("-0000"), Ok(0));
        for bad in [
            "+5744",
            "+0160",
            "+010060",
            "0100",
            "+100",
            "+01000",
            "",
            "+",
            "+01a0",
            "+０１００",
        ] {
            assert!(
                matches!(parse_utc_offset(bad), Err(TzError::InvalidOffset(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn invalid_vtimezones() {
        let one = |text: &str| VTimezone::from_component(&parse(text).unwrap()[0]);
        assert!(matches!(
            one("BEGIN:VTIMEZONE\nTZID:X\nEND:VTIMEZONE\n"),
            Err(TzError::NoObservances(_))
        ));
        assert!(matches!(
            one("BEGIN:VTIMEZONE\nBEGIN:STANDARD\nDTSTART:20000101T000000\nTZOFFSETTO:+0100\nEND:STANDARD\nEND:VTIMEZONE\n"),
            Err(TzError::MissingTzid)
        ));
        assert!(matches!(
            one("BEGIN:VTIMEZONE\nTZID:Europe/Prague\nBEGIN:STANDARD\nDTSTART:18500101T000000\nTZOFFSETFROM:+5744\nTZOFFSETTO:+5744\nEND:STANDARD\nEND:VTIMEZONE\n"),
            Err(TzError::InvalidOffset(_))
        ));
        assert!(matches!(
            one("BEGIN:VTIMEZONE\nTZID:X\nBEGIN:STANDARD\nTZOFFSETTO:+0100\nEND:STANDARD\nEND:VTIMEZONE\n"),
            Err(TzError::MissingProperty { property: "DTSTART", .. })
        ));
        assert!(matches!(
            one("BEGIN:VTIMEZONE\nTZID:X\nBEGIN:STANDARD\nDTSTART:2000\nTZOFFSETTO:+0100\nEND:STANDARD\nEND:VTIMEZONE\n"),
            Err(TzError::InvalidDateTime(_))
        ));
        assert!(matches!(
            one("BEGIN:VTIMEZONE\nTZID:X\nBEGIN:STANDARD\nDTSTART:20000101T000000\nTZOFFSETTO:+0100\nRRULE:FREQ=HOURLY\nEND:STANDARD\nEND:VTIMEZONE\n"),
            Err(TzError::UnsupportedRule { .. })
        ));
        assert!(matches!(
            one("BEGIN:VTIMEZONE\nTZID:X\nBEGIN:STANDARD\nDTSTART:20000101T000000\nTZOFFSETTO:+0100\nRRULE:BYMONTH=3\nEND:STANDARD\nEND:VTIMEZONE\n"),
            Err(TzError::InvalidRule { .. })
        ));
        assert!(matches!(
            one("BEGIN:VEVENT\nEND:VEVENT\n"),
            Err(TzError::NotVtimezone(_))
        ));
    }

    /// Local onsets of one observance in a year, for checking rule expansion.
    fn onsets(rule: &str, dtstart: &str, year: i32) -> Vec<NaiveDateTime> {
        let text = format!(
            "BEGIN:VTIMEZONE\nTZID:T\nBEGIN:DAYLIGHT\nDTSTART:{dtstart}\nRRULE:{rule}\n\
             TZOFFSETFROM:+0000\nTZOFFSETTO:+0100\nEND:DAYLIGHT\nEND:VTIMEZONE\n"
        );
        let v = vtz(&text);
        let mut out = Vec::new();
        v.observances[0].onsets_in_year(year, &mut out);
        out
    }

    #[test]
    fn rule_forms_used_by_vtimezones() {
        let d = |s: &str| vec![dt(s)];
        assert_eq!(
            onsets("FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "19810329T020000", 2024),
            d("20240331T020000")
        );
        assert_eq!(
            onsets("FREQ=YEARLY;BYDAY=2SU;BYMONTH=3", "20070311T020000", 2025),
            d("20250309T020000")
        );
        // Sunday on or after the 21st (old Mozilla/Lightning output).
        assert_eq!(
            onsets(
                "FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=21,22,23,24,25,26,27;BYDAY=SU",
                "19701025T030000",
                2024
            ),
            d("20241027T030000")
        );
        // UNTIL, local and UTC; instances after it stop.
        let until = "FREQ=YEARLY;BYMONTH=4;BYDAY=3SU;UNTIL=19590419T020000";
        assert_eq!(onsets(until, "19530419T020000", 1959), d("19590419T020000"));
        assert!(onsets(until, "19530419T020000", 1960).is_empty());
        let until_z = "FREQ=YEARLY;BYMONTH=4;BYDAY=1SU;UNTIL=20060402T070000Z";
        assert_eq!(
            onsets(until_z, "19870405T020000", 2006),
            d("20060402T020000")
        );
        assert!(onsets(until_z, "19870405T020000", 2007).is_empty());
        // COUNT includes DTSTART: 15 onsets are 1981..=1995.
        let count = "FREQ=YEARLY;COUNT=15;BYDAY=-1SU;BYMONTH=9";
        assert_eq!(onsets(count, "19810927T030000", 1995), d("19950924T030000"));
        assert!(onsets(count, "19810927T030000", 1996).is_empty());
        // No BYxxx: the anniversary of DTSTART; INTERVAL skips years.
        assert_eq!(
            onsets("FREQ=YEARLY", "20000315T020000", 2024),
            d("20240315T020000")
        );
        assert!(onsets("FREQ=YEARLY;INTERVAL=2", "20000315T020000", 2023).is_empty());
        // Exchange's unsynchronised 1601 DTSTART is an onset of its own, then the rule follows.
        assert_eq!(
            onsets(
                "FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=11",
                "16010101T020000",
                1601
            ),
            vec![dt("16010101T020000"), dt("16011104T020000")]
        );
        // Year-relative ordinal, BYSETPOS, MONTHLY and BYYEARDAY.
        assert_eq!(
            onsets("FREQ=YEARLY;BYDAY=1MO", "20000103T000000", 2024),
            d("20240101T000000")
        );
        assert_eq!(
            onsets("FREQ=YEARLY;BYDAY=-1FR", "20001229T000000", 2024),
            d("20241227T000000")
        );
        assert_eq!(
            onsets(
                "FREQ=YEARLY;BYMONTH=3;BYDAY=SU;BYSETPOS=-1",
                "20000326T010000",
                2024
            ),
            d("20240331T010000")
        );
        assert_eq!(
            onsets(
                "FREQ=MONTHLY;INTERVAL=12;BYDAY=2SA",
                "20001014T000000",
                2024
            ),
            d("20241012T000000")
        );
        assert_eq!(
            onsets("FREQ=YEARLY;BYYEARDAY=-1", "20001231T000000", 2024),
            d("20241231T000000")
        );
        assert_eq!(
            onsets(
                "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=-1;BYHOUR=1,3",
                "20000331T010000",
                2024
            )
            .len(),
            2
        );
        assert_eq!(
            onsets("FREQ=WEEKLY;INTERVAL=26;BYDAY=SU", "20240107T020000", 2024).len(),
            2
        );
    }

    #[test]
    fn rdate_based_zone() {
        // America/Los_Angeles before standard time, as in icalendar's issue 55 (offset with
        // seconds), plus RDATE lists and a PERIOD.
        let z = custom(
            "BEGIN:VTIMEZONE\nTZID:America/Los Angeles\nBEGIN:STANDARD\nDTSTART:18831118T120702\n\
             RDATE:18831118T120702\nTZNAME:PST\nTZOFFSETFROM:-075258\nTZOFFSETTO:-0800\n\
             END:STANDARD\nBEGIN:DAYLIGHT\nDTSTART:19180331T020000\n\
             RDATE:19180331T020000,19190330T020000\nRDATE;VALUE=PERIOD:19420209T020000/PT1H\n\
             TZOFFSETFROM:-0800\nTZOFFSETTO:-0700\nEND:DAYLIGHT\nBEGIN:STANDARD\n\
             DTSTART:19181027T020000\nRDATE:19191026T020000\nTZOFFSETFROM:-0700\n\
             TZOFFSETTO:-0800\nEND:STANDARD\nEND:VTIMEZONE\n",
        );
        assert_eq!(
            z.offset_at(utc("18800101T000000Z")),
            -(7 * 3600 + 52 * 60 + 58)
        );
        assert_eq!(z.offset_at(utc("19000101T000000Z")), -8 * 3600);
        assert_eq!(z.offset_at(utc("19180601T000000Z")), -7 * 3600);
        assert_eq!(z.offset_at(utc("19181201T000000Z")), -8 * 3600);
        assert_eq!(z.offset_at(utc("19190601T000000Z")), -7 * 3600);
        assert_eq!(z.offset_at(utc("19300601T000000Z")), -8 * 3600);
        assert_eq!(z.offset_at(utc("20240601T000000Z")), -7 * 3600);
        // Through the resolver: not an IANA name (space, not underscore), so the VTIMEZONE.
        let Zone::Custom(v) = z else { unreachable!() };
        assert_eq!(v.tzid, "America/Los Angeles");
    }

    fn resolver(texts: &[&str]) -> ZoneResolver {
        let comps: Vec<Component> = texts.iter().flat_map(|t| parse(t).unwrap()).collect();
        let refs: Vec<&Component> = comps.iter().collect();
        ZoneResolver::new(&refs)
    }

    fn iana_name(z: Option<Zone>) -> String {
        match z {
            Some(Zone::Iana(tz)) => tz.name().to_owned(),
            Some(Zone::Utc) => "UTC".into(),
            Some(Zone::Custom(v)) => format!("custom:{}", v.tzid),
            None => "none".into(),
        }
    }

    #[test]
    fn resolves_utc_iana_and_windows_names() {
        let r = ZoneResolver::default();
        for u in ["UTC", "Z", "Etc/UTC", "GMT", "utc", "Etc/GMT", "Zulu"] {
            assert!(matches!(r.resolve(u), Some(Zone::Utc)), "{u}");
        }
        assert_eq!(iana_name(r.resolve("Europe/Berlin")), "Europe/Berlin");
        assert_eq!(iana_name(r.resolve("europe/berlin")), "Europe/Berlin");
        assert_eq!(
            iana_name(r.resolve("W. Europe Standard Time")),
            "Europe/Berlin"
        );
        assert_eq!(
            iana_name(r.resolve("Pacific Standard Time")),
            "America/Los_Angeles"
        );
        assert_eq!(
            iana_name(r.resolve("Eastern Standard Time")),
            "America/New_York"
        );
        assert_eq!(iana_name(r.resolve("Tokyo Standard Time")), "Asia/Tokyo");
        assert_eq!(iana_name(r.resolve("tokyo standard time")), "Asia/Tokyo");
        assert_eq!(
            iana_name(r.resolve("W. Europe Standard Time ")),
            "Europe/Berlin"
        );
        assert_eq!(
            iana_name(r.resolve("  Pacific Standard Time\t")),
            "America/Los_Angeles"
        );
        assert_eq!(
            iana_name(r.resolve("\"Tokyo Standard Time\"")),
            "Asia/Tokyo"
        );
        assert_eq!(
            iana_name(r.resolve("\"Eastern Standard Time \"")),
            "America/New_York"
        );
        assert_eq!(
            iana_name(r.resolve("/mozilla.org/20050126_1/Europe/Berlin")),
            "Europe/Berlin"
        );
        assert_eq!(
            iana_name(r.resolve("/citadel.org/20190914_1/America/Argentina/Buenos_Aires")),
            "America/Argentina/Buenos_Aires"
        );
        assert_eq!(
            iana_name(r.resolve("/softwarestudio.org/Olson_20011030_5/America/New_York")),
            "America/New_York"
        );
        assert_eq!(
            iana_name(r.resolve("(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna")),
            "Europe/Berlin"
        );
        assert_eq!(
            iana_name(
                r.resolve("(GMT+01.00) Amsterdam / Berlin / Bern / Rome / Stockholm / Vienna")
            ),
            "Europe/Berlin"
        );
        assert_eq!(
            iana_name(r.resolve("(UTC-05:00) Eastern Time (US & Canada)")),
            "America/New_York"
        );
        assert_eq!(
            iana_name(r.resolve("(UTC-03:00) Brasília")),
            "America/Sao_Paulo"
        );
        assert_eq!(
            iana_name(r.resolve("(UTC) Dublin, Edinburgh, Lisbon, London")),
            "Europe/London"
        );
        assert_eq!(
            iana_name(r.resolve("(UTC+00:00) Dublin, Edinburgh, Lisbon, London")),
            "Europe/London"
        );
        // Offsets only: a fixed zone.
        assert_eq!(
            iana_name(r.resolve("(UTC+02:00) Somewhere New")),
            "Etc/GMT-2"
        );
        assert_eq!(
            iana_name(r.resolve("GMT +0100 (Standard) / GMT +0200 (Daylight)")),
            "Etc/GMT-1"
        );
        assert_eq!(iana_name(r.resolve("GMT-05:00")), "Etc/GMT+5");
        let india = r.resolve("(UTC+05:30) Nowhere").unwrap();
        assert_eq!(india.offset_at(0), 19800);
        assert_eq!(
            india.local_to_utc(dt("20240101T053000")),
            utc("20240101T000000Z")
        );
        for none in [
            "",
            "  ",
            "\"\"",
            "Mars/Olympus_Mons",
            "/mozilla.org/x/Nowhere",
            "GMTx",
            "(UTC+99:00) X",
        ] {
            assert!(r.resolve(none).is_none(), "{none:?}");
        }
    }

    #[test]
    fn resolver_prefers_iana_over_vtimezone_but_uses_custom_names() {
        let bogus_berlin = "BEGIN:VTIMEZONE\nTZID:Europe/Berlin\nBEGIN:STANDARD\n\
            DTSTART:19700101T000000\nTZOFFSETFROM:+0500\nTZOFFSETTO:+0500\nEND:STANDARD\n\
            END:VTIMEZONE\n";
        let exchange_pacific = "BEGIN:VTIMEZONE\nTZID:Pacific Standard Time\nBEGIN:STANDARD\n\
            DTSTART:16010101T020000\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=11\n\
            TZOFFSETFROM:-0700\nTZOFFSETTO:-0800\nEND:STANDARD\nBEGIN:DAYLIGHT\n\
            DTSTART:16010101T020000\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=2SU;BYMONTH=3\n\
            TZOFFSETFROM:-0800\nTZOFFSETTO:-0700\nEND:DAYLIGHT\nEND:VTIMEZONE\n";
        let broken = "BEGIN:VTIMEZONE\nTZID:Tokyo Standard Time\nEND:VTIMEZONE\n";
        let r = resolver(&[bogus_berlin, exchange_pacific, broken, EU_BERLIN]);
        assert_eq!(iana_name(r.resolve("Europe/Berlin")), "Europe/Berlin");
        let pst = r.resolve("Pacific Standard Time").unwrap();
        assert_eq!(iana_name(Some(pst.clone())), "custom:Pacific Standard Time");
        assert_eq!(
            pst.local_to_utc(dt("20170224T120000")),
            utc("20170224T200000Z")
        );
        assert_eq!(
            pst.local_to_utc(dt("20170724T120000")),
            utc("20170724T190000Z")
        );
        // The broken VTIMEZONE is remembered, and its name still resolves through CLDR.
        assert_eq!(r.unusable().len(), 1);
        assert_eq!(r.unusable()[0].0, "Tokyo Standard Time");
        assert_eq!(iana_name(r.resolve("Tokyo Standard Time")), "Asia/Tokyo");
        assert_eq!(iana_name(r.resolve("My Berlin")), "custom:My Berlin");
        assert_eq!(iana_name(r.resolve("\"My Berlin \"")), "custom:My Berlin");
        check_berlin(&r.resolve("My Berlin").unwrap());
    }

    #[test]
    fn windows_table_is_sorted_and_complete() {
        assert!(WINDOWS_TO_IANA.len() >= 135, "{}", WINDOWS_TO_IANA.len());
        for w in WINDOWS_TO_IANA.windows(2) {
            assert_eq!(cmp_ignore_case(w[0].0, w[1].0), Ordering::Less, "{:?}", w);
        }
        for (win, iana_name) in WINDOWS_TO_IANA {
            assert!(iana_name.parse::<Tz>().is_ok(), "{win} → {iana_name}");
            assert!(windows_to_iana(win).is_some(), "{win}");
        }
        for (display, win) in WINDOWS_DISPLAY_NAMES {
            assert!(windows_to_iana(win).is_some(), "{display} → {win}");
            assert!(
                matches!(
                    ZoneResolver::default().resolve(display),
                    Some(Zone::Iana(_) | Zone::Utc)
                ),
                "{display}"
            );
        }
    }

    // ---- corpus ------------------------------------------------------------------------------

    fn corpus_dir() -> PathBuf {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus"));
        assert!(
            dir.is_dir(),
            "test corpus not found at {}: the VTIMEZONE corpus tests need shared/corpus next to \
             the repository",
            dir.display()
        );
        dir
    }

    fn ics_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "ics"))
            .collect();
        files.sort();
        files
    }

    fn collect_vtimezones(c: &Component, out: &mut Vec<Component>) {
        if c.name == "VTIMEZONE" {
            out.push(c.clone());
        }
        for child in &c.children {
            collect_vtimezones(child, out);
        }
    }

    /// The VTIMEZONEs of a corpus file. Some files are deliberately broken elsewhere; their
    /// VTIMEZONE blocks are then cut out and parsed on their own.
    fn corpus_vtimezones_of(text: &str) -> Vec<Component> {
        let mut out = Vec::new();
        if let Ok(tops) = parse(text) {
            for t in &tops {
                collect_vtimezones(t, &mut out);
            }
            return out;
        }
        let mut rest = text;
        while let Some(start) = rest.find("BEGIN:VTIMEZONE") {
            let Some(len) = rest[start..].find("END:VTIMEZONE") else {
                break;
            };
            let block = &rest[start..start + len + "END:VTIMEZONE".len()];
            if let Ok(tops) = parse(block) {
                for t in &tops {
                    collect_vtimezones(t, &mut out);
                }
            }
            rest = &rest[start + len..];
        }
        out
    }

    #[test]
    fn corpus_vtimezones() {
        let root = corpus_dir();
        let mut files = ics_files(&root.join("icalendar/timezones"));
        files.extend(ics_files(&root.join("icalendar/calendars")));
        files.extend(ics_files(&root.join("recurring-ical-events")));
        assert!(files.len() > 100, "too few corpus files: {}", files.len());
        let instants = [
            utc("19000101T000000Z"),
            utc("19700101T000000Z"),
            utc("20010909T014640Z"),
            utc("20240331T010000Z"),
            utc("20241027T003000Z"),
            utc("20330518T033320Z"),
            utc("20960101T000000Z"),
        ];
        let (mut ok, mut bad) = (0, Vec::new());
        let mut seen_issue_55 = false;
        for path in &files {
            let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
            let vtzs = corpus_vtimezones_of(&text);
            let refs: Vec<&Component> = vtzs.iter().collect();
            let resolver = ZoneResolver::new(&refs);
            for c in &vtzs {
                let tzid = c.prop("TZID").map(|p| p.value.clone()).unwrap_or_default();
                let where_ = format!("{} {tzid:?}", path.display());
                let v = match VTimezone::from_component(c) {
                    Ok(v) => v,
                    Err(e) => {
                        bad.push(format!("{where_}: {e}"));
                        continue;
                    }
                };
                ok += 1;
                let z = Zone::Custom(Arc::new(v));
                for &t in &instants {
                    let off = z.offset_at(t);
                    assert!(off.abs() <= 14 * 3600, "{where_}: offset {off} at {t}");
                    let local = z.utc_to_local(t);
                    assert_eq!(
                        z.utc_to_local(z.local_to_utc(local)),
                        local,
                        "{where_} at {t}"
                    );
                }
                assert!(
                    resolver.resolve(&tzid).is_some(),
                    "{where_} does not resolve"
                );
                if path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("issue_55_"))
                {
                    seen_issue_55 = true;
                    assert_eq!(
                        z.offset_at(utc("18800101T000000Z")),
                        -(7 * 3600 + 52 * 60 + 58)
                    );
                    assert_eq!(z.offset_at(utc("20240101T000000Z")), -8 * 3600);
                }
            }
        }
        eprintln!(
            "{} corpus files, {ok} usable VTIMEZONEs, {} unusable",
            files.len(),
            bad.len()
        );
        assert!(seen_issue_55, "icalendar/timezones/issue_55_* not found");
        // The corpus has a hundred-odd VTIMEZONEs; only deliberately broken ones may fail.
        assert!(ok >= 80, "only {ok} usable VTIMEZONEs; failures: {bad:#?}");
        assert!(
            bad.iter()
                .all(|b| b.contains("parsing_error_in_UTC_offset")),
            "unexpected failures: {bad:#?}"
        );
        assert!(
            !bad.is_empty(),
            "the +5744 offset in parsing_error_in_UTC_offset.ics must fail"
        );
    }

    #[test]
    fn corpus_vaduz_rdate_zone_agrees_with_chrono_tz() {
        let path = corpus_dir().join("icalendar/calendars/timezone_rdate.ics");
        let text = std::fs::read_to_string(&path).unwrap();
        let vtzs = corpus_vtimezones_of(&text);
        let r = ZoneResolver::new(&vtzs.iter().collect::<Vec<_>>());
        // "posix/Europe/Vaduz" is not a chrono-tz name, so the object's definition is used.
        let ours = r.resolve("posix/Europe/Vaduz").unwrap();
        assert!(matches!(ours, Zone::Custom(_)));
        let theirs = Zone::Iana(Tz::Europe__Vaduz);
        let mut t = utc("19820101T000000Z");
        while t < utc("20300101T000000Z") {
            assert_eq!(ours.offset_at(t), theirs.offset_at(t), "at {}", naive(t));
            t += 5 * 3600 + 7;
        }
    }
}
