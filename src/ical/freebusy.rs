//! Free/busy time (RFC 4791 §7.10, RFC 5545 §3.6.4): busy periods from events and VFREEBUSY
//! components within a window, merged per busy type. The booking module computes slots from
//! the same periods.

use super::expand::{Budget, LimitExceeded, Series};
use super::parse::{Component, Property};
use super::value::{parse_date_time, parse_duration, TimeCtx};
use super::ComponentKind;
use crate::timefmt::civil_from_days;

/// FBTYPE values (RFC 5545 §3.2.9), in the order clients list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FbType {
    Busy,
    BusyUnavailable,
    BusyTentative,
}

impl FbType {
    pub fn as_str(self) -> &'static str {
        match self {
            FbType::Busy => "BUSY",
            FbType::BusyUnavailable => "BUSY-UNAVAILABLE",
            FbType::BusyTentative => "BUSY-TENTATIVE",
        }
    }
    fn parse(s: &str) -> Option<FbType> {
        match s.trim().to_ascii_uppercase().as_str() {
            "BUSY" => Some(FbType::Busy),
            "BUSY-UNAVAILABLE" => Some(FbType::BusyUnavailable),
            "BUSY-TENTATIVE" => Some(FbType::BusyTentative),
            // FREE (and unknown types) take no time away.
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BusyPeriod {
    pub start: i64,
    pub end: i64,
    pub kind: FbType,
}

/// The UTC periods of a FREEBUSY property (`start/end` or `start/duration`, comma-separated).
pub fn periods_of(p: &Property, ctx: &TimeCtx) -> Vec<(i64, i64)> {
    let _ = ctx;
    let mut out = Vec::new();
    for v in p.value.split(',') {
        let Some((a, b)) = v.split_once('/') else {
            continue;
        };
        let Some((s, _)) = parse_date_time(a) else {
            continue;
        };
        let s = s.and_utc().timestamp();
        let e = if let Some((e, _)) = parse_date_time(b) {
            e.and_utc().timestamp()
        } else if let Some(d) = parse_duration(b) {
            s + d.approx_seconds()
        } else {
            continue;
        };
        if e > s {
            out.push((s, e));
        }
    }
    out
}

/// The busy time an occurrence of a VEVENT takes (from its own component: the master or the
/// override): none when transparent or cancelled, tentative when tentative.
pub fn event_busy_kind(c: &Component) -> Option<FbType> {
    let upper = |n: &str| c.prop(n).map(|p| p.value.trim().to_ascii_uppercase());
    if upper("TRANSP").as_deref() == Some("TRANSPARENT") {
        return None;
    }
    match upper("STATUS").as_deref() {
        Some("CANCELLED") => None,
        Some("TENTATIVE") => Some(FbType::BusyTentative),
        _ => Some(FbType::Busy),
    }
}

/// Busy periods of one calendar object within `[from, to)`, clipped to the window.
pub fn busy_periods(
    cal: &Component,
    ctx: &TimeCtx,
    from: i64,
    to: i64,
    budget: &Budget,
) -> Result<Vec<BusyPeriod>, LimitExceeded> {
    let mut out = Vec::new();
    let events = Series::new(cal, ComponentKind::Event);
    if !events.comps.is_empty() {
        for inst in events.instances(ctx, from, to, budget)? {
            let Some(kind) = event_busy_kind(events.comps[inst.comp]) else {
                continue;
            };
            let (Some(s), Some(e)) = (inst.start, inst.end) else {
                continue;
            };
            let (s, e) = (s.max(from), e.min(to));
            if e > s {
                out.push(BusyPeriod {
                    start: s,
                    end: e,
                    kind,
                });
            }
        }
    }
    for c in cal.children.iter().filter(|c| c.name == "VFREEBUSY") {
        for p in c.props_named("FREEBUSY") {
            let Some(kind) = FbType::parse(p.param("FBTYPE").unwrap_or("BUSY")) else {
                continue;
            };
            for (s, e) in periods_of(p, ctx) {
                let (s, e) = (s.max(from), e.min(to));
                if e > s {
                    out.push(BusyPeriod {
                        start: s,
                        end: e,
                        kind,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Merges overlapping and touching periods of the same type.
pub fn merge(mut periods: Vec<BusyPeriod>) -> Vec<BusyPeriod> {
    periods.sort_by_key(|p| (p.kind, p.start, p.end));
    let mut out: Vec<BusyPeriod> = Vec::with_capacity(periods.len());
    for p in periods {
        match out.last_mut() {
            Some(last) if last.kind == p.kind && p.start <= last.end => {
                last.end = last.end.max(p.end)
            }
            _ => out.push(p),
        }
    }
    out.sort_by_key(|p| (p.start, p.kind));
    out
}

/// `YYYYMMDDTHHMMSSZ`
pub fn utc_stamp(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// The VCALENDAR answering a free-busy-query: one VFREEBUSY over the window with one FREEBUSY
/// line per busy type.
pub fn render(periods: &[BusyPeriod], from: i64, to: i64, now: i64) -> String {
    let mut s = String::from(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Almanac//Almanac//EN\r\nBEGIN:VFREEBUSY\r\n",
    );
    s.push_str(&format!(
        "DTSTAMP:{}\r\nDTSTART:{}\r\nDTEND:{}\r\n",
        utc_stamp(now),
        utc_stamp(from),
        utc_stamp(to)
    ));
    for kind in [FbType::Busy, FbType::BusyUnavailable, FbType::BusyTentative] {
        let list: Vec<String> = periods
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| format!("{}/{}", utc_stamp(p.start), utc_stamp(p.end)))
            .collect();
        if !list.is_empty() {
            let line = format!("FREEBUSY;FBTYPE={}:{}", kind.as_str(), list.join(","));
            s.push_str(&super::write::fold(&line));
        }
    }
    s.push_str("END:VFREEBUSY\r\nEND:VCALENDAR\r\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_by_type() {
        let p = |s, e, k| BusyPeriod {
            start: s,
            end: e,
            kind: k,
        };
        let merged = merge(vec![
            p(0, 10, FbType::Busy),
            p(5, 20, FbType::Busy),
            p(20, 30, FbType::Busy),
            p(8, 9, FbType::BusyTentative),
        ]);
        assert_eq!(
            merged,
            vec![p(0, 30, FbType::Busy), p(8, 9, FbType::BusyTentative)]
        );
    }

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(1_704_067_200), "20240101T000000Z");
    }
}
