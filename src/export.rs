//! Whole-calendar iCalendar output: one VCALENDAR holding every object of a collection, for
//! export (`GET` on a calendar, `almanac export`) and for public feed links.
//!
//! The output is streamed page by page, so a calendar of any size is served in bounded
//! memory. Each stored object is parsed once on the way out; its VTIMEZONEs are emitted once
//! per TZID for the whole calendar (RFC 5545 §3.6.5), before the first component that needs
//! them where the first pass saw them, at the end otherwise (a zone added between the passes).
//!
//! Feeds are public, so what they show is decided here, component by component:
//! - `full`: details, except CLASS:PRIVATE/CONFIDENTIAL components (and any CLASS a reader
//!   would not understand, which RFC 5545 §3.8.1.3 says to treat as PRIVATE), which keep only
//!   their times and become "Busy"; VALARMs and attendee/organizer addresses are removed
//!   unless the owner opted in.
//! - `busy`: only when the owner is busy: VEVENT times as "Busy", UIDs replaced by a hash,
//!   transparent and cancelled events left out.

use crate::ical::parse::{parse, Component, Property};
use crate::ical::write::{fold, write_component};
use crate::store::{Collection, DynStore, FeedMode, FeedSettings, StoreError};
use bytes::Bytes;
use futures_util::Stream;
use std::collections::{HashMap, HashSet};

/// How long subscribers should wait between fetches of a feed (REFRESH-INTERVAL, RFC 7986
/// §5.7, and Outlook's X-PUBLISHED-TTL).
pub const FEED_REFRESH: &str = "PT1H";

/// Objects read from the store per page.
const PAGE: i64 = 500;

/// What a rendering shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// Everything, as stored (the owner's own export).
    Export,
    Feed(FeedSettings),
}

impl View {
    fn window_from(&self, now: i64) -> Option<i64> {
        match self {
            View::Feed(FeedSettings {
                window_days: Some(d),
                ..
            }) => Some(now - d * 86_400),
            _ => None,
        }
    }
}

/// Escapes a TEXT value (RFC 5545 §3.3.11).
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// The VCALENDAR's own lines, up to its first component.
pub fn header(c: &Collection, view: &View) -> String {
    let mut h = String::new();
    h.push_str("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n");
    h.push_str(&fold(concat!(
        "PRODID:-//Almanac//Almanac ",
        env!("CARGO_PKG_VERSION"),
        "//EN"
    )));
    h.push_str("CALSCALE:GREGORIAN\r\n");
    if matches!(view, View::Feed(_)) {
        h.push_str("METHOD:PUBLISH\r\n");
    }
    let name = c.displayname.as_deref().unwrap_or(&c.name);
    h.push_str(&fold(&format!("X-WR-CALNAME:{}", escape_text(name))));
    if let Some(tzid) = c
        .timezone
        .as_deref()
        .and_then(crate::ical::tzid_of_calendar_timezone)
    {
        h.push_str(&fold(&format!("X-WR-TIMEZONE:{}", escape_text(&tzid))));
    }
    if matches!(view, View::Feed(_)) {
        h.push_str(&format!(
            "REFRESH-INTERVAL;VALUE=DURATION:{FEED_REFRESH}\r\nX-PUBLISHED-TTL:{FEED_REFRESH}\r\n"
        ));
    }
    h
}

/// Properties a private or busy-only component keeps: when, how often, and nothing else.
const TIME_PROPS: &[&str] = &[
    "UID",
    "DTSTAMP",
    "DTSTART",
    "DTEND",
    "DURATION",
    "DUE",
    "RRULE",
    "RDATE",
    "EXDATE",
    "RECURRENCE-ID",
    "SEQUENCE",
    "TRANSP",
    "STATUS",
    "CLASS",
];

/// Parameters that carry addresses on ATTENDEE/ORGANIZER (RFC 5545 §3.2).
const ADDRESS_PARAMS: &[&str] = &[
    "EMAIL",
    "SENT-BY",
    "DIR",
    "DELEGATED-TO",
    "DELEGATED-FROM",
    "MEMBER",
];

fn is_private(c: &Component) -> bool {
    c.prop("CLASS")
        .is_some_and(|p| !p.value.trim().eq_ignore_ascii_case("PUBLIC"))
}

fn busy_summary() -> Property {
    Property {
        name: "SUMMARY".into(),
        params: Vec::new(),
        value: "Busy".into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// A stand-in address that names nobody: a `urn:uuid:` derived from the object and the
/// attendee's position, so attendees stay distinct without revealing who they are.
fn hidden_address(uid: &str, n: usize) -> String {
    let d = digest(&[uid.as_bytes(), &n.to_be_bytes()]);
    let h = hex(&d[..16]);
    format!(
        "urn:uuid:{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn only_times(c: &Component, keep_class: bool) -> Component {
    let mut props: Vec<Property> = c
        .props
        .iter()
        .filter(|p| TIME_PROPS.contains(&p.name.as_str()) && (keep_class || p.name != "CLASS"))
        .cloned()
        .collect();
    props.push(busy_summary());
    Component {
        name: c.name.clone(),
        props,
        children: Vec::new(),
    }
}

/// One component as a feed shows it, or `None` when the feed leaves it out.
fn feed_component(c: &Component, s: &FeedSettings) -> Option<Component> {
    match s.mode {
        FeedMode::Busy => {
            if c.name != "VEVENT" {
                return None;
            }
            let is_override = c.prop("RECURRENCE-ID").is_some();
            let free = c
                .prop("TRANSP")
                .is_some_and(|p| p.value.trim().eq_ignore_ascii_case("TRANSPARENT"));
            let cancelled = c
                .prop("STATUS")
                .is_some_and(|p| p.value.trim().eq_ignore_ascii_case("CANCELLED"));
            // An override stays even when free or cancelled: it is what removes the time
            // from its series.
            if (free || cancelled) && !is_override {
                return None;
            }
            let mut out = only_times(c, false);
            // UIDs often embed addresses or host names; a hash keeps overrides linked.
            for p in &mut out.props {
                if p.name == "UID" {
                    let d = digest(&[b"almanac-busy-uid", p.value.as_bytes()]);
                    p.value = format!("{}@busy.almanac", hex(&d[..16]));
                }
            }
            Some(out)
        }
        FeedMode::Full => {
            if !matches!(c.name.as_str(), "VEVENT" | "VTODO" | "VJOURNAL") {
                return None;
            }
            if is_private(c) {
                return Some(only_times(c, true));
            }
            let uid = c.prop("UID").map(|p| p.value.as_str()).unwrap_or("");
            let mut out = c.clone();
            if !s.include_alarms {
                out.children.retain(|ch| ch.name != "VALARM");
            }
            if !s.include_emails {
                let mut n = 0;
                for p in &mut out.props {
                    if p.name == "ATTENDEE" || p.name == "ORGANIZER" {
                        p.params
                            .retain(|(k, _)| !ADDRESS_PARAMS.contains(&k.as_str()));
                        p.value = hidden_address(uid, n);
                        n += 1;
                    }
                }
            }
            Some(out)
        }
    }
}

/// What one stored object contributes: its zones (TZID → serialised VTIMEZONE) and its
/// components as the view shows them.
#[derive(Debug, Default)]
pub struct Rendered {
    pub zones: Vec<(String, String)>,
    pub body: String,
}

/// Renders one stored object for a view. Objects that no longer parse (written by an older,
/// more lenient server) contribute nothing rather than breaking the whole calendar.
pub fn render_object(ics: &str, view: &View) -> Rendered {
    render(ics, view, true)
}

/// `render_object`, or with `with_body` false only the zones the view's components need (the
/// first pass of `stream`, which must not serialise every component twice).
fn render(ics: &str, view: &View, with_body: bool) -> Rendered {
    let mut r = Rendered::default();
    let Ok(tops) = parse(ics) else {
        return r;
    };
    let mut used = HashSet::new();
    let mut zones: HashMap<String, &Component> = HashMap::new();
    for cal in tops.iter().filter(|c| c.name == "VCALENDAR") {
        for ch in &cal.children {
            if ch.name == "VTIMEZONE" {
                if let Some(id) = ch.prop("TZID") {
                    zones.entry(id.value.clone()).or_insert(ch);
                }
                continue;
            }
            let shown = match view {
                View::Export => Some(ch.clone()),
                View::Feed(s) => feed_component(ch, s),
            };
            if let Some(c) = shown {
                crate::ical::tzids_used(&c, &mut used);
                if with_body {
                    write_component(&c, &mut r.body);
                }
            }
        }
    }
    let mut used: Vec<String> = used.into_iter().collect();
    used.sort();
    for id in used {
        if let Some(z) = zones.get(&id) {
            let mut text = String::new();
            write_component(z, &mut text);
            r.zones.push((id, text));
        }
    }
    r
}

/// A strong entity-tag for a rendering: changes whenever the collection does (every member
/// change moves its revision, every property change its `updated_at`), and for windowed feeds
/// every day, as the window slides.
pub fn etag(instance: &str, c: &Collection, view: &View, feed_id: Option<i64>, now: i64) -> String {
    let view_key = match view {
        View::Export => "export".to_string(),
        View::Feed(s) => format!(
            "feed:{}:{}:{:?}:{}:{}:{}",
            feed_id.unwrap_or(0),
            s.mode.as_str(),
            s.window_days,
            s.include_alarms,
            s.include_emails,
            s.window_days.map_or(0, |_| now.div_euclid(86_400))
        ),
    };
    let d = digest(&[
        instance.as_bytes(),
        &c.id.to_be_bytes(),
        &c.revision.to_be_bytes(),
        &c.updated_at.to_be_bytes(),
        view_key.as_bytes(),
    ]);
    format!("\"{}\"", hex(&d[..16]))
}

enum Phase {
    /// First pass: collecting the zones the components will need.
    Zones {
        after: Option<String>,
    },
    /// Second pass: components, page by page.
    Body {
        after: Option<String>,
    },
    Done,
}

struct Cursor {
    store: DynStore,
    collection_id: i64,
    view: View,
    from: Option<i64>,
    header: Option<String>,
    zones: HashMap<String, String>,
    emitted: HashSet<String>,
    phase: Phase,
}

impl Cursor {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        loop {
            match &mut self.phase {
                Phase::Zones { after } => {
                    let page = self
                        .store
                        .objects_page(self.collection_id, after.as_deref(), self.from, PAGE)
                        .await?;
                    match page.last() {
                        None => {
                            // Header and every zone seen, before the first component.
                            let mut out = self.header.take().unwrap_or_default();
                            let mut ids: Vec<&String> = self.zones.keys().collect();
                            ids.sort();
                            for id in ids {
                                out.push_str(&self.zones[id]);
                                self.emitted.insert(id.clone());
                            }
                            self.phase = Phase::Body { after: None };
                            return Ok(Some(Bytes::from(out)));
                        }
                        Some(last) => {
                            *after = Some(last.meta.name.clone());
                            for o in page.iter().filter(|o| o.ics.contains("BEGIN:VTIMEZONE")) {
                                for (id, text) in render(&o.ics, &self.view, false).zones {
                                    self.zones.entry(id).or_insert(text);
                                }
                            }
                        }
                    }
                }
                Phase::Body { after } => {
                    let page = self
                        .store
                        .objects_page(self.collection_id, after.as_deref(), self.from, PAGE)
                        .await?;
                    let Some(last) = page.last() else {
                        let mut out = String::new();
                        // Zones of objects written between the two passes.
                        let mut late: Vec<(&String, &String)> = self
                            .zones
                            .iter()
                            .filter(|(id, _)| !self.emitted.contains(*id))
                            .collect();
                        late.sort();
                        for (_, text) in late {
                            out.push_str(text);
                        }
                        out.push_str("END:VCALENDAR\r\n");
                        self.phase = Phase::Done;
                        return Ok(Some(Bytes::from(out)));
                    };
                    *after = Some(last.meta.name.clone());
                    let mut out = String::new();
                    for o in &page {
                        let r = render_object(&o.ics, &self.view);
                        for (id, text) in r.zones {
                            self.zones.entry(id).or_insert(text);
                        }
                        out.push_str(&r.body);
                    }
                    if !out.is_empty() {
                        return Ok(Some(Bytes::from(out)));
                    }
                }
                Phase::Done => return Ok(None),
            }
        }
    }
}

/// The whole calendar as a stream of chunks. A store error ends the stream with an error, so
/// the HTTP connection is cut rather than a truncated calendar passing for a complete one.
pub fn stream(
    store: DynStore,
    c: &Collection,
    view: View,
    now: i64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let cursor = Cursor {
        store,
        collection_id: c.id,
        from: view.window_from(now),
        header: Some(header(c, &view)),
        view,
        zones: HashMap::new(),
        emitted: HashSet::new(),
        phase: Phase::Zones { after: None },
    };
    futures_util::stream::unfold(Some(cursor), |cursor| async move {
        let mut cursor = cursor?;
        match cursor.next_chunk().await {
            Ok(Some(b)) => Some((Ok(b), Some(cursor))),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "calendar output failed midway");
                Some((Err(std::io::Error::other(e.to_string())), None))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:secret-uid@example.com\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260301T100000\r\nDTEND;TZID=Europe/Berlin:20260301T110000\r\nCLASS:PRIVATE\r\nSUMMARY:Doctor\r\nLOCATION:Clinic\r\nDESCRIPTION:Checkup\r\nATTENDEE;CN=Me:mailto:me@example.com\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT10M\r\nDESCRIPTION:x\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    fn feed(mode: FeedMode) -> View {
        View::Feed(FeedSettings {
            mode,
            window_days: None,
            include_alarms: false,
            include_emails: false,
        })
    }

    #[test]
    fn private_events_keep_only_their_times() {
        let r = render_object(PRIVATE, &feed(FeedMode::Full));
        for secret in [
            "Doctor",
            "Clinic",
            "Checkup",
            "me@example.com",
            "VALARM",
            "CN=Me",
        ] {
            assert!(!r.body.contains(secret), "{secret} leaked: {}", r.body);
        }
        assert!(r.body.contains("SUMMARY:Busy"));
        assert!(r
            .body
            .contains("DTSTART;TZID=Europe/Berlin:20260301T100000"));
        assert_eq!(r.zones.len(), 1);
        assert_eq!(r.zones[0].0, "Europe/Berlin");
    }

    #[test]
    fn busy_mode_hashes_uids() {
        let r = render_object(PRIVATE, &feed(FeedMode::Busy));
        assert!(!r.body.contains("secret-uid") && !r.body.contains("CLASS"));
        assert!(r.body.contains("@busy.almanac"));
    }

    #[test]
    fn export_keeps_everything() {
        let r = render_object(PRIVATE, &View::Export);
        assert!(r.body.contains("SUMMARY:Doctor") && r.body.contains("BEGIN:VALARM"));
    }

    #[test]
    fn public_events_lose_addresses_not_names() {
        let ics = PRIVATE.replace("CLASS:PRIVATE\r\n", "");
        let r = render_object(&ics, &feed(FeedMode::Full));
        assert!(r.body.contains("SUMMARY:Doctor") && r.body.contains("CN=Me"));
        assert!(!r.body.contains("me@example.com") && !r.body.contains("VALARM"));
        assert!(r.body.contains("urn:uuid:"));
    }

    #[test]
    fn text_escaping() {
        assert_eq!(escape_text("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
    }
}
