//! iCalendar value types the server computes with (RFC 5545 §3.3): DATE, DATE-TIME in its three
//! forms (floating, UTC, with TZID), DURATION and PERIOD, and their evaluation to UTC instants.

use super::parse::Property;
use super::tz::{Zone, ZoneResolver};
use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};

/// A DATE or DATE-TIME as written (RFC 5545 §3.3.4, §3.3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Time {
    Date(NaiveDate),
    /// FORM #1: evaluated in the calendar's time zone.
    Floating(NaiveDateTime),
    /// FORM #2.
    Utc(NaiveDateTime),
    /// FORM #3: local time in the zone named by TZID.
    Zoned(NaiveDateTime, String),
}

impl Time {
    pub fn is_date(&self) -> bool {
        matches!(self, Time::Date(_))
    }

    /// Wall-clock time (midnight for a DATE).
    pub fn local(&self) -> NaiveDateTime {
        match self {
            Time::Date(d) => d.and_time(NaiveTime::MIN),
            Time::Floating(t) | Time::Utc(t) | Time::Zoned(t, _) => *t,
        }
    }

    /// Same form and zone, another wall-clock time.
    pub fn with_local(&self, t: NaiveDateTime) -> Time {
        match self {
            Time::Date(_) => Time::Date(t.date()),
            Time::Floating(_) => Time::Floating(t),
            Time::Utc(_) => Time::Utc(t),
            Time::Zoned(_, z) => Time::Zoned(t, z.clone()),
        }
    }

    /// Whether the value depends on the calendar's time zone (DATE and floating DATE-TIME).
    pub fn is_floating(&self) -> bool {
        matches!(self, Time::Date(_) | Time::Floating(_))
    }
}

/// How values are turned into instants: the object's zones, and the zone floating times and
/// dates are evaluated in (the calendar's `calendar-timezone`, UTC when unset; RFC 4791 §7.3).
pub struct TimeCtx {
    pub zones: ZoneResolver,
    pub floating: Zone,
}

impl TimeCtx {
    /// The zone a value's wall-clock time is read in. An unknown TZID is read as floating:
    /// the writer meant some local time, and the calendar's zone is the best guess there is.
    pub fn zone_of(&self, t: &Time) -> Zone {
        match t {
            Time::Utc(_) => Zone::Utc,
            Time::Zoned(_, tzid) => self
                .zones
                .resolve(tzid)
                .unwrap_or_else(|| self.floating.clone()),
            Time::Date(_) | Time::Floating(_) => self.floating.clone(),
        }
    }

    pub fn utc(&self, t: &Time) -> i64 {
        match t {
            Time::Utc(l) => l.and_utc().timestamp(),
            _ => self.zone_of(t).local_to_utc(t.local()),
        }
    }
}

/// A DURATION (RFC 5545 §3.3.6). Weeks and days are nominal (calendar days, which may be 23
/// or 25 hours long across a DST change); hours, minutes and seconds are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dur {
    pub days: i64,
    pub seconds: i64,
}

impl Dur {
    pub fn is_zero(&self) -> bool {
        self.days == 0 && self.seconds == 0
    }
    pub fn is_positive(&self) -> bool {
        self.days * 86_400 + self.seconds > 0
    }
    /// Nominal length in seconds, for ordering and bounds.
    pub fn approx_seconds(&self) -> i64 {
        self.days * 86_400 + self.seconds
    }
    /// `start + self`, with the nominal part applied on the wall clock of `zone`.
    pub fn add_to(&self, start_utc: i64, zone: &Zone) -> i64 {
        if self.days == 0 {
            return start_utc + self.seconds;
        }
        let local = zone.utc_to_local(start_utc) + Duration::days(self.days);
        zone.local_to_utc(local) + self.seconds
    }
}

pub fn parse_duration(s: &str) -> Option<Dur> {
    let s = s.trim();
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let rest = rest.strip_prefix('P').or_else(|| rest.strip_prefix('p'))?;
    let (date_part, time_part) = match rest.find(['T', 't']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let mut d = Dur::default();
    let mut any = false;
    let mut num = String::new();
    for c in date_part.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().ok()?;
        num.clear();
        any = true;
        match c.to_ascii_uppercase() {
            'W' => d.days = d.days.checked_add(n.checked_mul(7)?)?,
            'D' => d.days = d.days.checked_add(n)?,
            _ => return None,
        }
    }
    if !num.is_empty() {
        return None;
    }
    if let Some(tp) = time_part {
        if tp.is_empty() {
            return None;
        }
        for c in tp.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: i64 = num.parse().ok()?;
            num.clear();
            any = true;
            let mul = match c.to_ascii_uppercase() {
                'H' => 3600,
                'M' => 60,
                'S' => 1,
                _ => return None,
            };
            d.seconds = d.seconds.checked_add(n.checked_mul(mul)?)?;
        }
        if !num.is_empty() {
            return None;
        }
    }
    // Bounded to what a calendar can mean (±100 years) so later arithmetic cannot overflow.
    if !any || d.days.abs() > 36_600 || d.seconds.abs() > 36_600 * 86_400 {
        return None;
    }
    if neg {
        d.days = -d.days;
        d.seconds = -d.seconds;
    }
    Some(d)
}

/// A two-letter weekday of RRULE's BYDAY/WKST (RFC 5545 §3.3.10).
pub fn parse_weekday(s: &str) -> Option<chrono::Weekday> {
    use chrono::Weekday;
    Some(match s.to_ascii_uppercase().as_str() {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::from_ymd_opt(
        s[0..4].parse().ok()?,
        s[4..6].parse().ok()?,
        s[6..8].parse().ok()?,
    )
}

/// `YYYYMMDDTHHMMSS[Z]` → (wall-clock time, is UTC). A leap second (60) is read as 59.
pub fn parse_date_time(s: &str) -> Option<(NaiveDateTime, bool)> {
    let s = s.trim();
    let (body, utc) = match s.strip_suffix(['Z', 'z']) {
        Some(b) => (b, true),
        None => (s, false),
    };
    let (d, t) = body.split_once(['T', 't'])?;
    let date = parse_date(d)?;
    if t.len() != 6 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sec: u32 = t[4..6].parse().ok()?;
    let time = NaiveTime::from_hms_opt(t[0..2].parse().ok()?, t[2..4].parse().ok()?, sec.min(59))?;
    Some((date.and_time(time), utc))
}

/// One DATE or DATE-TIME value with the property's VALUE and TZID parameters applied.
pub fn parse_time(v: &str, p: &Property) -> Option<Time> {
    let value_date = p
        .param("VALUE")
        .is_some_and(|x| x.eq_ignore_ascii_case("DATE"));
    if value_date || (v.trim().len() == 8 && p.param("VALUE").is_none()) {
        return parse_date(v).map(Time::Date);
    }
    let (t, utc) = parse_date_time(v)?;
    Some(if utc {
        Time::Utc(t)
    } else if let Some(tz) = p.param("TZID") {
        Time::Zoned(t, tz.to_owned())
    } else {
        Time::Floating(t)
    })
}

/// A property's single DATE/DATE-TIME value (DTSTART, DTEND, DUE, RECURRENCE-ID…).
pub fn prop_time(p: &Property) -> Option<Time> {
    parse_time(&p.value, p)
}

/// An RDATE value: a time, or a PERIOD with its own end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RDate {
    Time(Time),
    Period(Time, PeriodEnd),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeriodEnd {
    End(Time),
    Duration(Dur),
}

/// Parses a `start/end` or `start/duration` PERIOD (RFC 5545 §3.3.9).
pub fn parse_period(v: &str, p: &Property) -> Option<(Time, PeriodEnd)> {
    let (a, b) = v.split_once('/')?;
    let start = parse_time(a, p)?;
    let end = if b.trim_start().starts_with(['P', 'p', '+', '-']) {
        PeriodEnd::Duration(parse_duration(b)?)
    } else {
        PeriodEnd::End(parse_time(b, p)?)
    };
    Some((start, end))
}

/// Every value of a multi-valued RDATE/EXDATE property. Empty values (seen in the wild) are
/// skipped; malformed ones are an error.
pub fn multi_values(p: &Property) -> Option<Vec<RDate>> {
    let mut out = Vec::new();
    for v in p.value.split(',') {
        if v.trim().is_empty() {
            continue;
        }
        let is_period = p
            .param("VALUE")
            .is_some_and(|x| x.eq_ignore_ascii_case("PERIOD"))
            || v.contains('/');
        if is_period {
            let (s, e) = parse_period(v, p)?;
            out.push(RDate::Period(s, e));
        } else {
            out.push(RDate::Time(parse_time(v, p)?));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("PT1H30M"),
            Some(Dur {
                days: 0,
                seconds: 5400
            })
        );
        assert_eq!(
            parse_duration("P1W"),
            Some(Dur {
                days: 7,
                seconds: 0
            })
        );
        assert_eq!(
            parse_duration("-P1DT2H"),
            Some(Dur {
                days: -1,
                seconds: -7200
            })
        );
        assert_eq!(parse_duration("P0D"), Some(Dur::default()));
        for bad in ["", "P", "PT", "1H", "PT1X", "P99999999W", "PT1"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn date_times() {
        let (t, utc) = parse_date_time("20240229T235960Z").unwrap();
        assert!(utc);
        assert_eq!(t.to_string(), "2024-02-29 23:59:59");
        assert!(parse_date_time("20240230T000000").is_none());
        assert!(parse_date("20241301").is_none());
    }
}
