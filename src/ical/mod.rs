//! iCalendar (RFC 5545) as the server needs it: a tolerant reader that never alters the bytes
//! it was given, validation of calendar object resources (RFC 4791 §4.1), and the index
//! computed at write time. Pure: imports no axum, sqlx, tokio or reqwest.

pub mod expand;
pub mod freebusy;
pub mod index;
pub mod parse;
pub mod tz;
pub mod value;
mod windows_zones;
pub mod write;

pub use index::{Occurrence, Occurrences, TimeIndex, INDEX_VERSION};
pub use parse::{parse, Component, ParseError, Property};

use tz::{Zone, ZoneResolver};
use value::TimeCtx;

/// The kinds of calendar component a calendar collection can hold (RFC 4791 §5.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentKind {
    Event,
    Todo,
    Journal,
    FreeBusy,
    Availability,
}

impl ComponentKind {
    pub const ALL: [ComponentKind; 5] = [
        ComponentKind::Event,
        ComponentKind::Todo,
        ComponentKind::Journal,
        ComponentKind::FreeBusy,
        ComponentKind::Availability,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Event => "VEVENT",
            ComponentKind::Todo => "VTODO",
            ComponentKind::Journal => "VJOURNAL",
            ComponentKind::FreeBusy => "VFREEBUSY",
            ComponentKind::Availability => "VAVAILABILITY",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
}

/// Why a body is not acceptable as a calendar object resource; each maps to one RFC 4791
/// precondition element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidObject {
    /// Not iCalendar at all, or broken syntax → `CALDAV:valid-calendar-data`.
    #[error("not valid iCalendar data: {0}")]
    Data(String),
    /// iCalendar, but not one calendar object resource per RFC 4791 §4.1 →
    /// `CALDAV:valid-calendar-object-resource`.
    #[error("not a valid calendar object resource: {0}")]
    ObjectResource(String),
}

/// What the store keeps next to the raw bytes. Computed once at write time so that listing
/// and filtering never re-parse stored objects to answer what the index already knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectIndex {
    pub component: ComponentKind,
    pub uid: String,
    pub time: TimeIndex,
}

/// The evaluation context of one VCALENDAR: its own VTIMEZONEs, and the zone floating times
/// are read in (the calendar's `calendar-timezone`, or UTC).
pub fn time_ctx(cal: &Component, floating: Zone) -> TimeCtx {
    let vtz: Vec<&Component> = cal
        .children
        .iter()
        .filter(|c| c.name == "VTIMEZONE")
        .collect();
    TimeCtx {
        zones: ZoneResolver::new(&vtz),
        floating,
    }
}

/// The zone of a `calendar-timezone` property value (a VCALENDAR with one VTIMEZONE): its
/// TZID when that names a known zone, else the VTIMEZONE's own rules.
pub fn zone_of_calendar_timezone(text: &str) -> Option<Zone> {
    let tops = parse(text).ok()?;
    let vtz = calendar_timezone_vtimezone(&tops)?;
    let tzid = vtz.prop("TZID")?.value.clone();
    ZoneResolver::new(&[vtz]).resolve(&tzid)
}

/// The TZID of a `calendar-timezone` property value (X-WR-TIMEZONE of exports and feeds).
pub fn tzid_of_calendar_timezone(text: &str) -> Option<String> {
    let tops = parse(text).ok()?;
    Some(
        calendar_timezone_vtimezone(&tops)?
            .prop("TZID")?
            .value
            .clone(),
    )
}

fn calendar_timezone_vtimezone(tops: &[Component]) -> Option<&Component> {
    tops.first()?
        .children
        .iter()
        .find(|c| c.name == "VTIMEZONE")
}

/// Adds every TZID named by a property parameter of `c` or its subcomponents: the VTIMEZONEs
/// a component needs wherever it is written out (exports, feeds, imported resources).
pub fn tzids_used(c: &Component, out: &mut std::collections::HashSet<String>) {
    for p in &c.props {
        if let Some(t) = p.param("TZID") {
            out.insert(t.to_owned());
        }
    }
    for ch in &c.children {
        tzids_used(ch, out);
    }
}

/// A validated calendar object resource: the client's bytes, untouched, plus the index.
#[derive(Debug, Clone)]
pub struct CalendarObject {
    pub raw: String,
    pub index: ObjectIndex,
}

impl CalendarObject {
    /// Validates `raw` as one calendar object resource (RFC 4791 §4.1): exactly one VCALENDAR,
    /// no METHOD, one component type (VTIMEZONE aside), one UID shared by the master and its
    /// overrides, no two overrides for the same RECURRENCE-ID.
    pub fn from_ics(raw: String) -> Result<Self, InvalidObject> {
        let tops = parse(&raw).map_err(|e| InvalidObject::Data(e.to_string()))?;
        let cal = match tops.as_slice() {
            [c] if c.name == "VCALENDAR" => c,
            [c] => {
                return Err(InvalidObject::Data(format!(
                    "top-level component is {}, not VCALENDAR",
                    c.name
                )))
            }
            [] => return Err(InvalidObject::Data("no VCALENDAR".into())),
            _ => {
                return Err(InvalidObject::ObjectResource(
                    "more than one VCALENDAR".into(),
                ))
            }
        };
        if cal.prop("METHOD").is_some() {
            return Err(InvalidObject::ObjectResource(
                "METHOD is not allowed in a stored calendar object".into(),
            ));
        }
        let mut kind: Option<ComponentKind> = None;
        let mut uid: Option<&str> = None;
        let mut masters = 0usize;
        let mut recurrence_ids: Vec<&str> = Vec::new();
        for comp in &cal.children {
            if comp.name == "VTIMEZONE" {
                validate_dates(comp)?;
                continue;
            }
            let Some(k) = ComponentKind::parse(&comp.name) else {
                if comp.name.starts_with("X-") {
                    continue;
                }
                return Err(InvalidObject::ObjectResource(format!(
                    "unexpected component {}",
                    comp.name
                )));
            };
            match kind {
                None => kind = Some(k),
                Some(prev) if prev != k => {
                    return Err(InvalidObject::ObjectResource(format!(
                        "mixes {} and {} components",
                        prev.as_str(),
                        k.as_str()
                    )))
                }
                Some(_) => {}
            }
            let this_uid = comp
                .prop("UID")
                .map(|p| p.value.as_str())
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| {
                    InvalidObject::ObjectResource(format!("{} without UID", comp.name))
                })?;
            match uid {
                None => uid = Some(this_uid),
                Some(u) if u != this_uid => {
                    return Err(InvalidObject::ObjectResource(
                        "components with different UIDs".into(),
                    ))
                }
                Some(_) => {}
            }
            match comp.prop("RECURRENCE-ID") {
                None => masters += 1,
                Some(rid) => {
                    if recurrence_ids.contains(&rid.value.as_str()) {
                        return Err(InvalidObject::ObjectResource(format!(
                            "two overrides for RECURRENCE-ID {}",
                            rid.value
                        )));
                    }
                    recurrence_ids.push(&rid.value);
                }
            }
            validate_dates(comp)?;
        }
        let kind =
            kind.ok_or_else(|| InvalidObject::ObjectResource("no calendar component".into()))?;
        if masters > 1 {
            return Err(InvalidObject::ObjectResource(
                "more than one component without RECURRENCE-ID".into(),
            ));
        }
        for c in cal.children.iter().filter(|c| c.name == "VTIMEZONE") {
            match tz::VTimezone::from_component(c) {
                // Valid iCalendar the zone engine cannot evaluate (e.g. an HOURLY rule): kept;
                // its TZID resolves through the other means or reads as floating.
                Ok(_) | Err(tz::TzError::UnsupportedRule { .. }) => {}
                Err(e) => return Err(InvalidObject::Data(format!("VTIMEZONE: {e}"))),
            }
        }
        let ctx = time_ctx(cal, Zone::Utc);
        for c in cal.children.iter().filter(|c| c.name == kind.as_str()) {
            expand::validate_rules(c, &ctx).map_err(InvalidObject::Data)?;
        }
        let time = index::compute(cal, kind, &ctx);
        let uid = uid.unwrap_or_default().to_owned();
        Ok(CalendarObject {
            index: ObjectIndex {
                component: kind,
                uid,
                time,
            },
            raw,
        })
    }
}

/// Date and date-time properties must be well-formed; a broken DTSTART would otherwise sit in
/// the store and fail every later query.
fn validate_dates(comp: &Component) -> Result<(), InvalidObject> {
    for p in &comp.props {
        if matches!(
            p.name.as_str(),
            "DTSTART"
                | "DTEND"
                | "DUE"
                | "RECURRENCE-ID"
                | "EXDATE"
                | "COMPLETED"
                | "DTSTAMP"
                | "CREATED"
                | "LAST-MODIFIED"
        ) {
            let is_date = p
                .param("VALUE")
                .is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
            for v in p.value.split(',') {
                let ok = if is_date {
                    parse::is_date(v)
                } else {
                    parse::is_date_time(v) || parse::is_date(v)
                };
                if !ok {
                    return Err(InvalidObject::Data(format!(
                        "{} has an invalid value {:?}",
                        p.name, v
                    )));
                }
            }
        }
    }
    for c in &comp.children {
        validate_dates(c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(body: &str) -> String {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{body}END:VCALENDAR\r\n")
    }

    #[test]
    fn accepts_event_with_override() {
        let raw = ev("BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20240101T100000Z\r\nRRULE:FREQ=DAILY\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:a\r\nRECURRENCE-ID:20240102T100000Z\r\nDTSTART:20240102T110000Z\r\nEND:VEVENT\r\n");
        let o = CalendarObject::from_ics(raw.clone()).unwrap();
        assert_eq!(
            (
                o.index.component,
                o.index.uid.as_str(),
                o.index.time.recurring,
                o.index.time.last_end
            ),
            (ComponentKind::Event, "a", true, None)
        );
        assert_eq!(o.index.time.first_start, Some(1_704_103_200));
        assert_eq!(o.raw, raw);
    }

    #[test]
    fn rejects_what_rfc4791_forbids() {
        let mixed =
            ev("BEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\nBEGIN:VTODO\r\nUID:a\r\nEND:VTODO\r\n");
        assert!(matches!(
            CalendarObject::from_ics(mixed),
            Err(InvalidObject::ObjectResource(_))
        ));
        let two_uids = ev("BEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:b\r\nRECURRENCE-ID:20240101T000000Z\r\nEND:VEVENT\r\n");
        assert!(matches!(
            CalendarObject::from_ics(two_uids),
            Err(InvalidObject::ObjectResource(_))
        ));
        let method = ev("METHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\n");
        assert!(matches!(
            CalendarObject::from_ics(method),
            Err(InvalidObject::ObjectResource(_))
        ));
        let no_uid = ev("BEGIN:VEVENT\r\nDTSTART:20240101T000000Z\r\nEND:VEVENT\r\n");
        assert!(matches!(
            CalendarObject::from_ics(no_uid),
            Err(InvalidObject::ObjectResource(_))
        ));
        let bad_date = ev("BEGIN:VEVENT\r\nUID:a\r\nDTSTART:INVALID-DATE\r\nEND:VEVENT\r\n");
        assert!(matches!(
            CalendarObject::from_ics(bad_date),
            Err(InvalidObject::Data(_))
        ));
        assert!(matches!(
            CalendarObject::from_ics("hello".into()),
            Err(InvalidObject::Data(_))
        ));
        let unterminated = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\n".to_string();
        assert!(matches!(
            CalendarObject::from_ics(unterminated),
            Err(InvalidObject::Data(_))
        ));
    }
}
