//! Importing a whole iCalendar file into a calendar: one VCALENDAR (or several) split into
//! one calendar object resource per UID, as RFC 4791 §4.1 requires, each carrying the
//! VTIMEZONEs its components name. Overrides (RECURRENCE-ID) stay with their master.
//!
//! Also used by subscriptions, which turn a fetched feed into the calendar's members the same
//! way. Pure: no store access here except in `import`, which writes everything in one
//! transaction or nothing.

use crate::ical::parse::{parse, Component, ParseError};
use crate::ical::write::write_component;
use crate::ical::{CalendarObject, ComponentKind};
use crate::store::{Collection, Store, StoreError};
use std::collections::{HashMap, HashSet};

/// A component that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The UID, or a description of the component when it has none.
    pub what: String,
    pub reason: String,
}

/// A file split into resources.
#[derive(Debug, Default)]
pub struct Split {
    /// (resource name, object), in the order the UIDs first appear in the file.
    pub objects: Vec<(String, CalendarObject)>,
    pub skipped: Vec<Skipped>,
}

/// The resource name of a UID: the UID itself where it is a safe path segment (what most
/// clients do), otherwise a hash of it. Stable, so a re-import or a subscription refresh
/// finds the same resource again.
pub fn object_name(uid: &str) -> String {
    let safe = !uid.is_empty()
        && uid.len() <= 200
        && !uid.starts_with('.')
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'+'));
    if safe {
        format!("{uid}.ics")
    } else {
        use sha2::Digest;
        let d = sha2::Sha256::digest(uid.as_bytes());
        let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex}.ics")
    }
}

/// Splits iCalendar text into resources. `accepts` says which component types the target
/// calendar takes; `max_size` is its max-resource-size. Fails only when the text is not
/// iCalendar at all; a bad component is skipped with its reason.
pub fn split(text: &str, accepts: &[ComponentKind], max_size: u64) -> Result<Split, ParseError> {
    let tops = parse(text)?;
    let mut out = Split::default();
    let mut zones: HashMap<String, &Component> = HashMap::new();
    // UID → components, in order of first appearance.
    let mut groups: Vec<(String, Vec<&Component>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut prodid = None;
    let mut calscale = None;
    for top in &tops {
        if top.name != "VCALENDAR" {
            out.skipped.push(Skipped {
                what: format!("top-level {}", top.name),
                reason: "not inside a VCALENDAR".into(),
            });
            continue;
        }
        prodid = prodid.or_else(|| top.prop("PRODID"));
        calscale = calscale.or_else(|| top.prop("CALSCALE"));
        for (n, c) in top.children.iter().enumerate() {
            if c.name == "VTIMEZONE" {
                if let Some(id) = c.prop("TZID") {
                    zones.entry(id.value.clone()).or_insert(c);
                }
                continue;
            }
            let Some(kind) = ComponentKind::parse(&c.name) else {
                out.skipped.push(Skipped {
                    what: format!("{} #{}", c.name, n + 1),
                    reason: format!("{} is not a calendar object component", c.name),
                });
                continue;
            };
            if !accepts.is_empty() && !accepts.contains(&kind) {
                out.skipped.push(Skipped {
                    what: c
                        .prop("UID")
                        .map_or(format!("{} #{}", c.name, n + 1), |u| u.value.clone()),
                    reason: format!("the calendar does not accept {}", c.name),
                });
                continue;
            }
            let Some(uid) = c.prop("UID").map(|u| u.value.trim().to_owned()) else {
                out.skipped.push(Skipped {
                    what: format!("{} #{}", c.name, n + 1),
                    reason: "no UID".into(),
                });
                continue;
            };
            match index.get(&uid) {
                Some(&i) => groups[i].1.push(c),
                None => {
                    index.insert(uid.clone(), groups.len());
                    groups.push((uid, vec![c]));
                }
            }
        }
    }
    let prodid = prodid.map_or("-//Almanac//import//EN".to_string(), |p| p.value.clone());
    for (uid, comps) in groups {
        let mut used = HashSet::new();
        for c in &comps {
            crate::ical::tzids_used(c, &mut used);
        }
        let mut used: Vec<String> = used.into_iter().collect();
        used.sort();
        let mut text = String::new();
        text.push_str("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n");
        text.push_str(&crate::ical::write::fold(&format!("PRODID:{prodid}")));
        if let Some(cs) = calscale {
            text.push_str(&crate::ical::write::fold(&format!("CALSCALE:{}", cs.value)));
        }
        for id in &used {
            if let Some(z) = zones.get(id) {
                write_component(z, &mut text);
            }
        }
        for c in &comps {
            write_component(c, &mut text);
        }
        text.push_str("END:VCALENDAR\r\n");
        if text.len() as u64 > max_size {
            out.skipped.push(Skipped {
                what: uid,
                reason: format!(
                    "{} bytes is over the calendar's max-resource-size ({max_size})",
                    text.len()
                ),
            });
            continue;
        }
        match CalendarObject::from_ics(text) {
            Ok(obj) => out.objects.push((object_name(&uid), obj)),
            Err(e) => out.skipped.push(Skipped {
                what: uid,
                reason: e.to_string(),
            }),
        }
    }
    Ok(out)
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub imported: usize,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not an iCalendar file: {0}")]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Imports `text` into calendar `c`: UIDs already in the calendar are skipped (an import never
/// overwrites), everything else is written in one transaction.
pub async fn import(
    store: &dyn Store,
    c: &Collection,
    text: &str,
    max_size: u64,
    quota: u64,
) -> Result<ImportReport, ImportError> {
    let split = split(text, &c.components, max_size)?;
    let mut report = ImportReport {
        skipped: split.skipped,
        ..Default::default()
    };
    let existing = store.object_metas(c.id).await?;
    let names: HashMap<&str, &str> = existing
        .iter()
        .map(|m| (m.name.as_str(), m.uid.as_str()))
        .collect();
    let uids: HashMap<&str, &str> = existing
        .iter()
        .map(|m| (m.uid.as_str(), m.name.as_str()))
        .collect();
    let mut fresh = Vec::with_capacity(split.objects.len());
    for (name, obj) in split.objects {
        if let Some(holder) = uids.get(obj.index.uid.as_str()) {
            report.skipped.push(Skipped {
                what: obj.index.uid.clone(),
                reason: format!("already in the calendar as {holder}"),
            });
        } else if names.contains_key(name.as_str()) {
            report.skipped.push(Skipped {
                what: obj.index.uid.clone(),
                reason: format!("the resource name {name} is taken"),
            });
        } else {
            fresh.push((name, obj));
        }
    }
    store
        .import_objects(c.id, &fresh, i64::try_from(quota).unwrap_or(i64::MAX))
        .await?;
    report.imported = fresh.len();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nMETHOD:PUBLISH\r\n\
BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n\
BEGIN:VTIMEZONE\r\nTZID:Unused\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:series\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260105T090000\r\nRRULE:FREQ=DAILY;COUNT=5\r\nSUMMARY:s\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:single\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260110T090000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:series\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260106T090000\r\nDTSTART;TZID=Europe/Berlin:20260106T100000\r\nSUMMARY:moved\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260110T090000Z\r\nSUMMARY:no uid\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:bad date\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:2026-01-10\r\nEND:VEVENT\r\n\
BEGIN:VTODO\r\nUID:todo\r\nDTSTAMP:20260101T000000Z\r\nEND:VTODO\r\n\
END:VCALENDAR\r\n";

    #[test]
    fn splits_by_uid_keeping_overrides_and_needed_zones() {
        let s = split(FILE, &[ComponentKind::Event], 1 << 20).unwrap();
        let names: Vec<&str> = s.objects.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["series.ics", "single.ics"]);
        let series = &s.objects[0].1.raw;
        assert!(series.contains("TZID:Europe/Berlin") && !series.contains("TZID:Unused"));
        assert_eq!(series.matches("BEGIN:VEVENT").count(), 2);
        assert!(!series.contains("METHOD"));
        assert!(!s.objects[1].1.raw.contains("VTIMEZONE"));
        let why: Vec<(&str, &str)> = s
            .skipped
            .iter()
            .map(|k| (k.what.as_str(), k.reason.as_str()))
            .collect();
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(why[0].1.contains("no UID"));
        assert!(why[1].0 == "todo" && why[1].1.contains("does not accept VTODO"));
        assert_eq!(why[2].0, "bad date");
    }

    #[test]
    fn unsafe_uids_get_hashed_names() {
        assert_eq!(object_name("abc@x.org"), "abc@x.org.ics");
        let n = object_name("a/b c");
        assert!(n.len() == 36 && n.ends_with(".ics"));
        assert_eq!(n, object_name("a/b c"));
    }

    #[test]
    fn oversized_resources_are_skipped() {
        let s = split(FILE, &[ComponentKind::Event], 100).unwrap();
        assert!(s.objects.is_empty());
        assert!(s
            .skipped
            .iter()
            .any(|k| k.reason.contains("max-resource-size")));
    }
}
