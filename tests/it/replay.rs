//! Client replays (conformance suite `client-replays`): the discovery, first-sync and
//! incremental-sync request sequences of Thunderbird, Apple Calendar (macOS and iOS), DAVx5 and
//! Evolution, with the headers and XML bodies those clients send, asserting at each step what
//! the client's code needs of the answer. Source: `shared/research/caldav-anchors.md` §2
//! (client source for Thunderbird, DAVx5 and Evolution; Apple's CCS load simulator traces).
//!
//! Every PROPFIND/REPORT answer must be 207 with an XML content type (DAVx5, Thunderbird);
//! every listed object needs a strong `getetag` (DAVx5 aborts otherwise) and a `text/calendar`
//! `getcontenttype` (Thunderbird ignores the item otherwise); sync tokens must be absolute URIs
//! (Evolution drops anything else as a ctag); a stale token gets 403 with a non-empty
//! `DAV:error` naming `valid-sync-token` (Thunderbird takes an empty one for rate limiting),
//! after which the client's fallback, a sync with an empty token, must list everything.

use crate::support::*;
use almanac::config::Config;
use almanac::dav::xml::{escape, Element, NS_CALDAV, NS_CS, NS_DAV, NS_ICAL};
use std::collections::{BTreeMap, BTreeSet};

const HOME: &str = "/calendars/alice/";
const PRINCIPAL: &str = "/principals/alice/";

// ---------------------------------------------------------------------------------------------
// Shared checks
// ---------------------------------------------------------------------------------------------

fn dump(r: &Resp) -> String {
    let headers: Vec<String> = r
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
        .collect();
    format!(
        "--- {} → {}\n{}\n\n{}",
        r.desc,
        r.status,
        headers.join("\n"),
        r.body
    )
}

#[track_caller]
fn ensure(r: &Resp, ok: bool, what: &str) {
    if !ok {
        panic!("{what}\n{}", dump(r));
    }
}

/// 207, an XML content type and a DAV:multistatus root: what every client checks first
/// (Thunderbird `PropfindResponse.ok`, dav4jvm's 207 rule).
#[track_caller]
fn ms(r: Resp) -> Resp {
    ensure(&r, r.status == 207, "expected 207 Multi-Status");
    let ct = r.header("content-type").unwrap_or("").to_ascii_lowercase();
    ensure(
        &r,
        ct.starts_with("application/xml") || ct.starts_with("text/xml"),
        "a 207 needs an XML content type (dav4jvm refuses others)",
    );
    ensure(
        &r,
        r.xml().is(NS_DAV, "multistatus"),
        "the body is a DAV:multistatus",
    );
    r
}

fn is_strong_etag(e: &str) -> bool {
    e.len() >= 2 && e.starts_with('"') && e.ends_with('"')
}

/// A sync token must be an absolute URI; Evolution also discards a token without `:` or `/`.
#[track_caller]
fn assert_uri_token(t: &str) {
    let ok = t.split_once(':').is_some_and(|(scheme, rest)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
            && !rest.is_empty()
    });
    assert!(ok, "sync token {t:?} is not an absolute URI");
}

fn hrefs_in(e: &Element) -> Vec<String> {
    e.children_named(NS_DAV, "href").map(|h| h.text()).collect()
}

fn has_privilege(e: &Element, ns: &str, local: &str) -> bool {
    e.children_named(NS_DAV, "privilege")
        .any(|p| p.child(ns, local).is_some())
}

fn lists_report(e: &Element, ns: &str, local: &str) -> bool {
    e.children_named(NS_DAV, "supported-report").any(|sr| {
        sr.child(NS_DAV, "report")
            .and_then(|r| r.child(ns, local))
            .is_some()
    })
}

fn comps(e: &Element) -> Vec<String> {
    e.children_named(NS_CALDAV, "comp")
        .map(|c| c.attr("name").unwrap_or_default().to_owned())
        .collect()
}

#[track_caller]
fn is_calendar(r: &Resp, href: &str) -> bool {
    let rt = r
        .prop(href, NS_DAV, "resourcetype")
        .unwrap_or_else(|| panic!("no resourcetype for {href}\n{}", dump(r)));
    rt.child(NS_DAV, "collection").is_some() && rt.child(NS_CALDAV, "calendar").is_some()
}

/// The values of every `DAV:` header, split into compliance tokens.
fn dav_tokens(r: &Resp) -> Vec<String> {
    r.headers
        .get_all("dav")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .collect()
}

fn location_path(loc: &str) -> String {
    match loc
        .strip_prefix("http://")
        .or_else(|| loc.strip_prefix("https://"))
    {
        Some(rest) => rest.find('/').map_or("/".into(), |i| rest[i..].to_owned()),
        None => loc.to_owned(),
    }
}

/// The token a client holds when the server was restored from an older backup: it names a
/// revision the collection has not reached.
fn token_from_the_future(t: &str) -> String {
    let (head, rev) = t.rsplit_once(':').expect("token has a revision");
    let rev: i64 = rev.parse().expect("numeric revision");
    format!("{head}:{}", rev + 1000)
}

/// The 403 of a stale token as every client needs it: a DAV:error body naming
/// valid-sync-token (Thunderbird reads an *empty* DAV:error 403 as rate limiting and keeps the
/// token; DAVx5 and Evolution look for the element).
#[track_caller]
fn assert_stale_token_refused(r: &Resp) {
    ensure(r, r.status == 403, "a stale sync token gets 403");
    r.precondition(NS_DAV, "valid-sync-token");
}

/// One sync-collection answer on a calendar, checked member by member.
#[derive(Debug, Default)]
struct Delta {
    token: String,
    changed: Vec<String>,
    removed: Vec<String>,
    etags: BTreeMap<String, String>,
    truncated: bool,
}

/// Reads a calendar sync answer; every changed member needs a strong getetag, and with
/// `need_ctype` a text/calendar getcontenttype (Thunderbird, Apple ask for it).
#[track_caller]
fn read_sync(r: &Resp, collection: &str, need_ctype: bool) -> Delta {
    let mut d = Delta::default();
    for href in r.hrefs() {
        let st = r.response_status(&href);
        if href == collection {
            ensure(
                r,
                st == Some(507),
                "the collection itself appears only as the 507 truncation marker",
            );
            d.truncated = true;
            continue;
        }
        ensure(
            r,
            href.starts_with(collection),
            &format!("{href} is a member of {collection}"),
        );
        if st == Some(404) {
            d.removed.push(href);
            continue;
        }
        ensure(
            r,
            st.is_none(),
            &format!("{href}: unexpected status {st:?}"),
        );
        let etag = r.prop(&href, NS_DAV, "getetag").map(|e| e.text());
        ensure(
            r,
            etag.as_deref().is_some_and(is_strong_etag),
            &format!("{href}: every member needs a strong getetag (DAVx5 aborts without)"),
        );
        if need_ctype {
            let ct = r.prop(&href, NS_DAV, "getcontenttype").map(|e| e.text());
            ensure(
                r,
                ct.as_deref()
                    .is_some_and(|c| c.starts_with("text/calendar")),
                &format!("{href}: getcontenttype must be text/calendar (Thunderbird skips others)"),
            );
        }
        d.etags.insert(href.clone(), etag.unwrap_or_default());
        d.changed.push(href);
    }
    let token = r.xml().child(NS_DAV, "sync-token").map(|t| t.text());
    ensure(
        r,
        token.as_deref().is_some_and(|t| !t.is_empty()),
        "every sync answer carries a sync-token (DAVx5 throws without one)",
    );
    d.token = token.unwrap_or_default();
    assert_uri_token(&d.token);
    d.changed.sort();
    d.removed.sort();
    d
}

/// (href → (etag, calendar-data)) of a multiget answer; every asked href must be answered,
/// every found one with a strong getetag and the calendar data.
#[track_caller]
fn read_multiget(r: &Resp, asked: &[String]) -> BTreeMap<String, (String, String)> {
    let got = r.hrefs();
    for h in asked {
        ensure(r, got.contains(h), &format!("multiget answers {h}"));
    }
    let mut out = BTreeMap::new();
    for h in got {
        if r.response_status(&h) == Some(404) {
            continue;
        }
        let etag = r.prop(&h, NS_DAV, "getetag").map(|e| e.text());
        ensure(
            r,
            etag.as_deref().is_some_and(is_strong_etag),
            &format!("{h}: multiget needs getetag (DAVx5: \"Server didn't provide ETag\")"),
        );
        let data = r.prop(&h, NS_CALDAV, "calendar-data").map(|e| e.text());
        ensure(
            r,
            data.as_deref()
                .is_some_and(|d| d.starts_with("BEGIN:VCALENDAR")),
            &format!("{h}: calendar-data"),
        );
        out.insert(h, (etag.unwrap_or_default(), data.unwrap_or_default()));
    }
    out
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn href_elems(prefix: &str, hrefs: &[String], decl: &str) -> String {
    hrefs
        .iter()
        .map(|h| format!("<{prefix}href{decl}>{}</{prefix}href>", escape(h)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A client: its User-Agent and the Content-Type it puts on XML bodies
// ---------------------------------------------------------------------------------------------

struct Client<'a> {
    s: &'a TestServer,
    ua: &'static str,
    xml_type: &'static str,
}

impl<'a> Client<'a> {
    fn req(&self, method: &str, path: &str) -> Req {
        self.s.req(method, path).header("User-Agent", self.ua)
    }
    fn anon(&self, method: &str, path: &str) -> Req {
        self.s
            .req_as(None, method, path)
            .header("User-Agent", self.ua)
    }
    fn with_xml(&self, r: Req, depth: Option<&str>, body: &str) -> Req {
        let r = r
            .header("Content-Type", self.xml_type)
            .body(body.to_owned());
        match depth {
            Some(d) => r.depth(d),
            None => r,
        }
    }
    fn xml(&self, method: &str, path: &str, depth: Option<&str>, body: &str) -> Req {
        self.with_xml(self.req(method, path), depth, body)
    }
    fn anon_xml(&self, method: &str, path: &str, depth: Option<&str>, body: &str) -> Req {
        self.with_xml(self.anon(method, path), depth, body)
    }
    /// A PUT of calendar data with the client's Content-Type.
    fn put(&self, path: &str, content_type: &str, ics: &str) -> Req {
        self.req("PUT", path)
            .header("Content-Type", content_type)
            .body(ics.to_owned())
    }
}

/// Another device of the same user changing the calendar behind the client's back.
async fn other_device_put(s: &TestServer, path: &str, ics: &str) -> String {
    let r = s.req("PUT", path).ics(ics).send().await;
    ensure(&r, matches!(r.status, 201 | 204), "other device PUT");
    r.header("etag").unwrap_or_default().to_owned()
}

async fn other_device_delete(s: &TestServer, path: &str) {
    s.req("DELETE", path).send().await.status(204);
}

#[track_caller]
fn assert_strong_etag_header(r: &Resp) -> String {
    let e = r.header("etag").unwrap_or_default().to_owned();
    ensure(
        r,
        is_strong_etag(&e),
        "PUT returns a strong ETag (Evolution ignores weak ones; Apple GETs without one)",
    );
    e
}

// ---------------------------------------------------------------------------------------------
// iCalendar data as each client writes it (CRLF line endings)
// ---------------------------------------------------------------------------------------------

fn crlf(s: &str) -> String {
    s.lines().map(|l| format!("{l}\r\n")).collect()
}

const VTZ_BERLIN: &str = "BEGIN:VTIMEZONE
TZID:Europe/Berlin
X-TZINFO:Europe/Berlin[2024a]
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
END:STANDARD
END:VTIMEZONE";

const VTZ_LA: &str = "BEGIN:VTIMEZONE
TZID:America/Los_Angeles
BEGIN:DAYLIGHT
TZOFFSETFROM:-0800
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
DTSTART:20070311T020000
TZNAME:PDT
TZOFFSETTO:-0700
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:-0700
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
DTSTART:20071104T020000
TZNAME:PST
TZOFFSETTO:-0800
END:STANDARD
END:VTIMEZONE";

const VTZ_VIENNA: &str = "BEGIN:VTIMEZONE
TZID:Europe/Vienna
BEGIN:STANDARD
TZNAME:CET
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
DTSTART:19961027T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
TZNAME:CEST
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
DTSTART:19810329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
END:VTIMEZONE";

fn tb_event(uid: &str, summary: &str, generation: u32) -> String {
    crlf(&format!(
        "BEGIN:VCALENDAR
PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN
VERSION:2.0
{VTZ_BERLIN}
BEGIN:VEVENT
CREATED:20240108T090000Z
LAST-MODIFIED:20240108T09{generation:02}00Z
DTSTAMP:20240108T09{generation:02}00Z
UID:{uid}
SUMMARY:{summary}
DTSTART;TZID=Europe/Berlin:20240110T100000
DTEND;TZID=Europe/Berlin:20240110T110000
TRANSP:OPAQUE
X-MOZ-GENERATION:{generation}
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER;VALUE=DURATION:-PT15M
DESCRIPTION:Default Mozilla Description
END:VALARM
END:VEVENT
END:VCALENDAR"
    ))
}

fn apple_event(uid: &str, summary: &str, day: u32) -> String {
    crlf(&format!(
        "BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Apple Inc.//macOS 15.1//EN
CALSCALE:GREGORIAN
{VTZ_LA}
BEGIN:VEVENT
TRANSP:OPAQUE
DTEND;TZID=America/Los_Angeles:202401{day:02}T100000
UID:{uid}
DTSTAMP:20240108T170000Z
X-APPLE-CREATOR-IDENTITY:com.apple.calendar
X-APPLE-CREATOR-TEAM-IDENTITY:0000000000
SEQUENCE:0
SUMMARY:{summary}
LAST-MODIFIED:20240108T170000Z
DTSTART;TZID=America/Los_Angeles:202401{day:02}T090000
CREATED:20240108T165959Z
BEGIN:VALARM
X-WR-ALARMUID:{uid}-ALARM
UID:{uid}-ALARM
TRIGGER:-PT15M
ATTACH;VALUE=URI:Chord
ACTION:AUDIO
END:VALARM
END:VEVENT
END:VCALENDAR"
    ))
}

fn apple_reminder(uid: &str, summary: &str) -> String {
    crlf(&format!(
        "BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Apple Inc.//iOS 17.5//EN
CALSCALE:GREGORIAN
BEGIN:VTODO
CREATED:20240108T170500Z
UID:{uid}
SUMMARY:{summary}
LAST-MODIFIED:20240108T170500Z
DTSTAMP:20240108T170500Z
SEQUENCE:0
STATUS:NEEDS-ACTION
PRIORITY:0
END:VTODO
END:VCALENDAR"
    ))
}

fn davx5_event(uid: &str, summary: &str) -> String {
    // ical4j writes the VTIMEZONE after the event it serves.
    crlf(&format!(
        "BEGIN:VCALENDAR
VERSION:2.0
PRODID:+//IDN bitfire.at//DAVx5/4.4.3-ose ical4j/3.2.19 (com.google.android.calendar)
BEGIN:VEVENT
DTSTAMP:20240109T081500Z
UID:{uid}
SUMMARY:{summary}
DTSTART;TZID=Europe/Vienna:20240115T140000
DTEND;TZID=Europe/Vienna:20240115T150000
STATUS:CONFIRMED
BEGIN:VALARM
TRIGGER:-PT10M
ACTION:DISPLAY
DESCRIPTION:{summary}
END:VALARM
END:VEVENT
{VTZ_VIENNA}
END:VCALENDAR"
    ))
}

fn davx5_task(uid: &str, summary: &str) -> String {
    crlf(&format!(
        "BEGIN:VCALENDAR
VERSION:2.0
PRODID:+//IDN bitfire.at//DAVx5/4.4.3-ose ical4j/3.2.19 (org.dmfs.tasks)
BEGIN:VTODO
DTSTAMP:20240109T081600Z
UID:{uid}
SUMMARY:{summary}
STATUS:NEEDS-ACTION
DUE;VALUE=DATE:20240120
END:VTODO
END:VCALENDAR"
    ))
}

fn evo_event(uid: &str, summary: &str, (start, end): (&str, &str), sequence: u32) -> String {
    crlf(&format!(
        "BEGIN:VCALENDAR
CALSCALE:GREGORIAN
PRODID:-//Ximian//NONSGML Evolution Calendar//EN
VERSION:2.0
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20240110T090000Z
DTSTART;VALUE=DATE:{start}
DTEND;VALUE=DATE:{end}
SEQUENCE:{sequence}
SUMMARY:{summary}
TRANSP:TRANSPARENT
CLASS:PUBLIC
CREATED:20240110T090012Z
LAST-MODIFIED:20240110T0900{sequence:02}Z
END:VEVENT
END:VCALENDAR"
    ))
}

// ---------------------------------------------------------------------------------------------
// Thunderbird (calendar/providers/caldav, research §2.1)
// ---------------------------------------------------------------------------------------------

const TB_UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.2";
const TB_ICS: &str = "text/calendar; charset=utf-8";

fn thunderbird(s: &TestServer) -> Client<'_> {
    Client {
        s,
        ua: TB_UA,
        xml_type: "text/xml; charset=utf-8",
    }
}

/// `detectCollection` (CalDavDetectionSession): Depth 0 by default.
const TB_DETECT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/">
  <D:prop>
    <D:resourcetype/>
    <D:owner/>
    <D:displayname/>
    <D:current-user-principal/>
    <D:current-user-privilege-set/>
    <A:calendar-color/>
    <C:calendar-home-set/>
  </D:prop>
</D:propfind>"#;

const TB_PRINCIPAL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop>
    <C:calendar-home-set/>
  </D:prop>
</D:propfind>"#;

const TB_HOME: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/">
  <D:prop>
    <D:resourcetype/>
    <D:displayname/>
    <D:current-user-privilege-set/>
    <A:calendar-color/>
  </D:prop>
</D:propfind>"#;

/// `checkDavResourceType` on every start until cached.
const TB_RESOURCE_TYPE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop>
    <D:resourcetype/>
    <D:owner/>
    <D:current-user-principal/>
    <D:current-user-privilege-set/>
    <D:supported-report-set/>
    <C:supported-calendar-component-set/>
    <CS:getctag/>
  </D:prop>
</D:propfind>"#;

/// `webDavSyncHandler.doWebDAVSync`: default DAV: namespace, Depth 1, sync-level 1.
fn tb_sync_body(token: &str) -> String {
    let token = if token.is_empty() {
        "<sync-token/>".to_owned()
    } else {
        format!("<sync-token>{}</sync-token>", escape(token))
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<sync-collection xmlns="DAV:">{token}<sync-level>1</sync-level><prop><getcontenttype/><getetag/></prop></sync-collection>"#
    )
}

/// `multigetSyncHandler`: default CalDAV namespace, DAV: prefixed.
fn tb_multiget_body(hrefs: &[String]) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<calendar-multiget xmlns:D="DAV:" xmlns="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><calendar-data/></D:prop>{}</calendar-multiget>"#,
        href_elems("D:", hrefs, "")
    )
}

/// The etag fallback when sync-collection is absent (`getUpdatedItems` without WebDAV sync).
const TB_ETAG_LISTING: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:getcontenttype/><D:resourcetype/><D:getetag/></D:prop></D:propfind>"#;

const TB_CTAG: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><CS:getctag/></D:prop></D:propfind>"#;

/// Thunderbird's object name: the UID with anything outside `[A-Za-z0-9_.-]` replaced by `_`.
fn tb_href(cal: &str, uid: &str) -> String {
    let name: String = uid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{cal}{name}.ics")
}

/// A full Thunderbird WebDAV sync: sync-collection (repeated while truncated), then
/// calendar-multiget of the hrefs whose etag differs from the cache. Returns the new token.
async fn tb_sync(
    tb: &Client<'_>,
    cal: &str,
    token: &str,
    cache: &mut BTreeMap<String, (String, String)>,
) -> (String, Delta) {
    let mut token = token.to_owned();
    let initial = token.is_empty();
    let mut all = Delta::default();
    for _ in 0..50 {
        let r = ms(tb
            .xml("REPORT", cal, Some("1"), &tb_sync_body(&token))
            .send()
            .await);
        let d = read_sync(&r, cal, true);
        all.changed.extend(d.changed.iter().cloned());
        all.removed.extend(d.removed.iter().cloned());
        all.etags.extend(d.etags.clone());
        token = d.token.clone();
        if !d.truncated {
            break;
        }
    }
    all.changed.sort();
    all.changed.dedup();
    all.removed.sort();
    for h in &all.removed {
        cache.remove(h);
    }
    if initial {
        // The first sync deletes local items the server did not report.
        cache.retain(|h, _| all.changed.contains(h));
    }
    let stale: Vec<String> = all
        .changed
        .iter()
        .filter(|h| cache.get(*h).map(|(e, _)| e) != all.etags.get(*h))
        .cloned()
        .collect();
    for batch in stale.chunks(100) {
        let r = ms(tb
            .xml("REPORT", cal, Some("1"), &tb_multiget_body(batch))
            .send()
            .await);
        let got = read_multiget(&r, batch);
        for h in batch {
            ensure(&r, got.contains_key(h), &format!("{h} is fetched"));
        }
        cache.extend(got);
    }
    all.token = token.clone();
    (token, all)
}

/// "New Calendar → On the Network": well-known, root, principal, home listing; and the typed
/// calendar and principal URLs.
pub async fn thunderbird_detects_calendars(s: &TestServer) {
    let tb = thunderbird(s);
    // wellKnown: no credentials yet (Necko answers a challenge).
    let r = tb
        .anon_xml("PROPFIND", "/.well-known/caldav", Some("0"), TB_DETECT)
        .send()
        .await;
    ensure(
        &r,
        matches!(r.status, 301 | 302 | 307 | 308),
        "the well-known URI redirects before authentication",
    );
    let target = location_path(r.header("location").unwrap_or_default());
    ensure(&r, target.starts_with('/'), "a usable Location");
    // Necko re-sends the PROPFIND there (Depth copied by asyncOnChannelRedirect).
    let r = tb
        .anon_xml("PROPFIND", &target, Some("0"), TB_DETECT)
        .send()
        .await;
    ensure(&r, r.status == 401, "401 challenge without credentials");
    ensure(
        &r,
        r.header("www-authenticate")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("basic")),
        "a Basic challenge (Thunderbird has no OAuth for us)",
    );
    let r = ms(tb
        .xml("PROPFIND", &target, Some("0"), TB_DETECT)
        .send()
        .await);
    ensure(
        &r,
        r.hrefs() == vec![target.clone()],
        "one response, for the target",
    );
    ensure(
        &r,
        !is_calendar(&r, &target),
        "the context root is no calendar",
    );
    // detectCollection: a home set found on a non-principal URL is used (first href only);
    // otherwise the principal is followed.
    let homes = match r.prop(&target, NS_CALDAV, "calendar-home-set") {
        Some(hs) => hrefs_in(&hs).into_iter().take(1).collect::<Vec<_>>(),
        None => {
            let cup = r
                .prop(&target, NS_DAV, "current-user-principal")
                .map(|e| hrefs_in(&e))
                .unwrap_or_default();
            ensure(
                &r,
                cup == vec![PRINCIPAL.to_owned()],
                "current-user-principal",
            );
            let p = ms(tb
                .xml("PROPFIND", PRINCIPAL, Some("0"), TB_PRINCIPAL)
                .send()
                .await);
            let hs = p
                .prop(PRINCIPAL, NS_CALDAV, "calendar-home-set")
                .map(|e| hrefs_in(&e))
                .unwrap_or_default();
            ensure(&p, !hs.is_empty(), "the principal names its calendar home");
            hs
        }
    };
    assert_eq!(homes, vec![HOME.to_owned()]);
    // handleHomeSet: Depth 1, only C:calendar children are calendars.
    let h = ms(tb.xml("PROPFIND", HOME, Some("1"), TB_HOME).send().await);
    let cals: Vec<String> = h
        .hrefs()
        .into_iter()
        .filter(|x| x != HOME && is_calendar(&h, x))
        .collect();
    ensure(
        &h,
        cals == vec![CAL.to_owned()],
        "the default calendar is found",
    );
    ensure(&h, !is_calendar(&h, HOME), "the home is no calendar");
    ensure(
        &h,
        !h.prop_text(CAL, NS_DAV, "displayname").is_empty(),
        "a display name for the calendar list",
    );
    let privs = h.prop(CAL, NS_DAV, "current-user-privilege-set");
    ensure(
        &h,
        privs.as_ref().is_some_and(|p| {
            has_privilege(p, NS_DAV, "write")
                || has_privilege(p, NS_DAV, "write-content")
                || has_privilege(p, NS_DAV, "all")
        }),
        "write privileges, else Thunderbird makes the calendar read-only",
    );
    // attemptLocation with a typed calendar URL: the resourcetype says "this is the calendar".
    let c = ms(tb.xml("PROPFIND", CAL, Some("0"), TB_DETECT).send().await);
    ensure(
        &c,
        is_calendar(&c, CAL),
        "the typed calendar URL is a calendar",
    );
    // ... and with a typed principal URL: the first home-set href.
    let p = ms(tb
        .xml("PROPFIND", PRINCIPAL, Some("0"), TB_DETECT)
        .send()
        .await);
    let hs = p
        .prop(PRINCIPAL, NS_CALDAV, "calendar-home-set")
        .map(|e| hrefs_in(&e))
        .unwrap_or_default();
    ensure(
        &p,
        hs.first().map(String::as_str) == Some(HOME),
        "home set on the principal",
    );
}

/// Capability check, WebDAV sync, writes with If-None-Match/If-Match, re-fetch by multiget,
/// changes from another device, conflict (412 → HEAD) and delete (404 is success).
pub async fn thunderbird_sync_cycle(s: &TestServer) {
    let tb = thunderbird(s);
    // checkDavResourceType: any 4xx would disable the calendar.
    let r = ms(tb
        .xml("PROPFIND", CAL, Some("0"), TB_RESOURCE_TYPE)
        .send()
        .await);
    ensure(
        &r,
        is_calendar(&r, CAL),
        "a CalDAV calendar (not \"DAV but not CalDAV\")",
    );
    let reports = r.prop(CAL, NS_DAV, "supported-report-set");
    ensure(
        &r,
        reports
            .as_ref()
            .is_some_and(|e| lists_report(e, NS_DAV, "sync-collection")),
        "sync-collection advertised on the calendar: Thunderbird uses WebDAV sync",
    );
    let comp = r
        .prop(CAL, NS_CALDAV, "supported-calendar-component-set")
        .map(|e| comps(&e))
        .unwrap_or_default();
    ensure(&r, comp.iter().any(|c| c == "VEVENT"), "VEVENT supported");
    let ctag0 = r.prop_text(CAL, NS_CS, "getctag");
    // checkServerCaps: OPTIONS on the parent of the calendar URL (the assumed home).
    let o = tb.req("OPTIONS", HOME).send().await;
    ensure(&o, o.status == 200, "OPTIONS on the home");
    ensure(
        &o,
        dav_tokens(&o).iter().any(|t| t == "calendar-access"),
        "DAV: calendar-access",
    );

    // First sync of an empty calendar.
    let mut cache = BTreeMap::new();
    let (t0, d) = tb_sync(&tb, CAL, "", &mut cache).await;
    assert!(d.changed.is_empty() && d.removed.is_empty(), "{d:?}");

    // New events: PUT <sanitised UID>.ics with If-None-Match: *.
    let uid_a = "7d4c1e0a-3b9f-4d8e-a1c2-5f6e7d8c9b0a";
    let uid_b = "040000008200E00074C5B7101A82E00800000000@outlook.com";
    let (a, b) = (tb_href(CAL, uid_a), tb_href(CAL, uid_b));
    assert!(b.ends_with("/040000008200E00074C5B7101A82E00800000000_outlook.com.ics"));
    let mut sent = BTreeMap::new();
    for (href, uid, summary) in [(&a, uid_a, "Standup"), (&b, uid_b, "Imported")] {
        let ics = tb_event(uid, summary, 1);
        let r = tb
            .put(href, TB_ICS, &ics)
            .header("If-None-Match", "*")
            .send()
            .await;
        ensure(&r, matches!(r.status, 200 | 201 | 204), "create accepted");
        sent.insert(href.clone(), ics);
    }
    // A second create at the same href must not overwrite.
    let r = tb
        .put(&a, TB_ICS, &tb_event(uid_a, "Dup", 1))
        .header("If-None-Match", "*")
        .send()
        .await;
    ensure(
        &r,
        r.status == 412,
        "If-None-Match: * on an existing href is 412",
    );
    // doAdoptItem: "servers may modify items on PUT", so Thunderbird re-fetches by multiget.
    let hrefs = vec![a.clone(), b.clone()];
    let r = ms(tb
        .xml("REPORT", CAL, Some("1"), &tb_multiget_body(&hrefs))
        .send()
        .await);
    let got = read_multiget(&r, &hrefs);
    for h in &hrefs {
        assert_eq!(got[h].1, sent[h], "{h}: stored as sent");
    }
    cache.extend(got);

    // Incremental sync: its own two creations, already cached with the same etags.
    let (t1, d) = tb_sync(&tb, CAL, &t0, &mut cache).await;
    assert_eq!(d.changed, sorted(&[&a, &b]));
    assert!(d.removed.is_empty());
    for h in &hrefs {
        assert_eq!(
            d.etags[h], cache[h].0,
            "sync and multiget agree on {h}'s etag"
        );
    }
    let r = ms(tb
        .xml("PROPFIND", CAL, Some("0"), TB_RESOURCE_TYPE)
        .send()
        .await);
    assert_ne!(r.prop_text(CAL, NS_CS, "getctag"), ctag0, "the ctag moved");

    // Another device: adds c, changes a, deletes b.
    let c = tb_href(CAL, "c0ffee00-1111-2222-3333-444455556666");
    let c_ics = tb_event("c0ffee00-1111-2222-3333-444455556666", "Lunch", 1);
    other_device_put(s, &c, &c_ics).await;
    let a_other = tb_event(uid_a, "Standup (moved)", 2);
    other_device_put(s, &a, &a_other).await;
    other_device_delete(s, &b).await;
    let (t2, d) = tb_sync(&tb, CAL, &t1, &mut cache).await;
    assert_eq!(d.changed, sorted(&[&a, &c]), "exactly the changes");
    assert_eq!(d.removed, vec![b.clone()], "the deletion as 404");
    assert_eq!(cache[&a].1, a_other);
    assert_eq!(cache[&c].1, c_ics);
    assert!(!cache.contains_key(&b));

    // A multiget naming an item that is gone: that href alone is a 404, the rest is served.
    let both = vec![a.clone(), b.clone()];
    let r = ms(tb
        .xml("REPORT", CAL, Some("1"), &tb_multiget_body(&both))
        .send()
        .await);
    let got = read_multiget(&r, &both);
    ensure(
        &r,
        r.response_status(&b) == Some(404),
        "a per-href 404 for the deleted item",
    );
    ensure(&r, got.contains_key(&a), "the live item is still served");

    // Modify with a stale etag: 412 → conflict prompt; Thunderbird looks with HEAD.
    let stale_etag = d.etags[&a].clone();
    other_device_put(s, &a, &tb_event(uid_a, "Standup (again)", 3)).await;
    let r = tb
        .put(&a, TB_ICS, &tb_event(uid_a, "Mine", 4))
        .header("If-Match", &stale_etag)
        .send()
        .await;
    ensure(
        &r,
        matches!(r.status, 409 | 412),
        "a stale If-Match is a conflict",
    );
    let head = tb.req("HEAD", &a).send().await;
    ensure(&head, head.status == 200, "HEAD of the object");
    let current = head.header("etag").unwrap_or_default().to_owned();
    ensure(
        &head,
        is_strong_etag(&current) && current != stale_etag,
        "HEAD gives the new ETag",
    );
    // "Overwrite": PUT with the current etag.
    let mine = tb_event(uid_a, "Mine", 4);
    let r = tb
        .put(&a, TB_ICS, &mine)
        .header("If-Match", &current)
        .send()
        .await;
    ensure(
        &r,
        matches!(r.status, 200 | 201 | 204),
        "overwrite accepted",
    );

    // Delete with If-Match; a repeated delete (already gone) counts as success via 404.
    let etag_c = cache[&c].0.clone();
    let r = tb
        .req("DELETE", &c)
        .header("If-Match", &etag_c)
        .send()
        .await;
    ensure(&r, matches!(r.status, 200 | 204), "delete accepted");
    let r = tb
        .req("DELETE", &c)
        .header("If-Match", &etag_c)
        .send()
        .await;
    match r.status {
        404 => {}
        409 | 412 => {
            // doDeleteItem: HEAD decides; gone is success.
            tb.req("HEAD", &c).send().await.status(404);
        }
        _ => ensure(&r, false, "a second delete is 404 (or 412 with HEAD 404)"),
    }

    let (t3, d) = tb_sync(&tb, CAL, &t2, &mut cache).await;
    assert_eq!(d.changed, vec![a.clone()]);
    assert_eq!(d.removed, vec![c.clone()]);
    assert_eq!(cache[&a].1, mine);
    // Nothing changed: nothing listed.
    let (_, d) = tb_sync(&tb, CAL, &t3, &mut cache).await;
    assert!(d.changed.is_empty() && d.removed.is_empty(), "{d:?}");
}

/// A token the server no longer knows: 403 valid-sync-token (not an empty DAV:error, which
/// Thunderbird reads as rate limiting), then the full resync with an empty token works; and a
/// long change list is paged with 507 (DAV:limit here; see `server_truncation_loops` for the
/// server's own cap).
pub async fn thunderbird_stale_token_resync(s: &TestServer) {
    let tb = thunderbird(s);
    let cal = "/calendars/alice/tb-team/";
    s.req("MKCALENDAR", cal).send().await.status(201);
    for i in 0..3 {
        let uid = format!("old-{i}");
        other_device_put(s, &tb_href(cal, &uid), &tb_event(&uid, "Old", 1)).await;
    }
    let mut cache = BTreeMap::new();
    let (token, d) = tb_sync(&tb, cal, "", &mut cache).await;
    assert_eq!(d.changed.len(), 3);

    // Stale: the calendar was deleted and re-created at the same URL elsewhere.
    s.req("DELETE", cal).send().await.status(204);
    s.req("MKCALENDAR", cal).send().await.status(201);
    for i in 0..2 {
        let uid = format!("new-{i}");
        other_device_put(s, &tb_href(cal, &uid), &tb_event(&uid, "New", 1)).await;
    }
    let r = tb
        .xml("REPORT", cal, Some("1"), &tb_sync_body(&token))
        .send()
        .await;
    assert_stale_token_refused(&r);
    // 4xx with a stored token: drop it, sync from scratch; the old items disappear locally.
    let (fresh, d) = tb_sync(&tb, cal, "", &mut cache).await;
    let expected: Vec<String> = (0..2).map(|i| tb_href(cal, &format!("new-{i}"))).collect();
    assert_eq!(d.changed, expected);
    assert_eq!(cache.keys().cloned().collect::<Vec<_>>(), expected);

    // Stale: the server was restored from an older backup; and a token of a previous server.
    for bad in [
        token_from_the_future(&fresh),
        "http://old-server.example.com/dav/sync/4711".to_owned(),
    ] {
        let r = tb
            .xml("REPORT", cal, Some("1"), &tb_sync_body(&bad))
            .send()
            .await;
        assert_stale_token_refused(&r);
    }

    // Paging: 7 changes with DAV:limit 3; Thunderbird saves the token on 507 and asks again.
    for i in 0..7 {
        let uid = format!("page-{i}");
        other_device_put(s, &tb_href(cal, &uid), &tb_event(&uid, "Paged", 1)).await;
    }
    let mut token = fresh.clone();
    let mut seen = BTreeSet::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 20, "paging never ends");
        let body = tb_sync_body(&token).replace(
            "<sync-level>1</sync-level>",
            "<sync-level>1</sync-level><limit><nresults>3</nresults></limit>",
        );
        let r = ms(tb.xml("REPORT", cal, Some("1"), &body).send().await);
        let d = read_sync(&r, cal, true);
        ensure(&r, d.changed.len() <= 3, "at most DAV:limit members");
        seen.extend(d.changed);
        token = d.token;
        if !d.truncated {
            break;
        }
    }
    assert!(
        rounds >= 3,
        "7 changes in pages of 3 take 3 rounds, took {rounds}"
    );
    let expected: BTreeSet<String> = (0..7).map(|i| tb_href(cal, &format!("page-{i}"))).collect();
    assert_eq!(seen, expected);
}

/// Without WebDAV sync Thunderbird polls the ctag, lists etags at Depth 1 and multigets what
/// changed.
pub async fn thunderbird_ctag_polling(s: &TestServer) {
    let tb = thunderbird(s);
    let uids = ["p-1", "p-2", "p-3"];
    for u in uids {
        other_device_put(s, &tb_href(CAL, u), &tb_event(u, "Poll", 1)).await;
    }
    let ctag = ms(tb.xml("PROPFIND", CAL, Some("0"), TB_CTAG).send().await)
        .prop_text(CAL, NS_CS, "getctag");
    let listing = |r: &Resp| -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for h in r.hrefs() {
            if h == CAL {
                continue;
            }
            let ct = r.prop(&h, NS_DAV, "getcontenttype").map(|e| e.text());
            ensure(
                r,
                ct.as_deref()
                    .is_some_and(|c| c.starts_with("text/calendar")),
                &format!("{h}: text/calendar getcontenttype"),
            );
            let e = r.prop(&h, NS_DAV, "getetag").map(|e| e.text());
            ensure(
                r,
                e.as_deref().is_some_and(is_strong_etag),
                &format!("{h}: getetag"),
            );
            out.insert(h, e.unwrap_or_default());
        }
        out
    };
    let r = ms(tb
        .xml("PROPFIND", CAL, Some("1"), TB_ETAG_LISTING)
        .send()
        .await);
    ensure(
        &r,
        is_calendar(&r, CAL),
        "the calendar itself is listed as a collection",
    );
    let before = listing(&r);
    assert_eq!(before.len(), 3);
    let hrefs: Vec<String> = before.keys().cloned().collect();
    let r = ms(tb
        .xml("REPORT", CAL, Some("1"), &tb_multiget_body(&hrefs))
        .send()
        .await);
    let got = read_multiget(&r, &hrefs);
    for (h, e) in &before {
        assert_eq!(&got[h].0, e, "listing and multiget agree on {h}");
    }
    // Unchanged: same ctag.
    let again = ms(tb.xml("PROPFIND", CAL, Some("0"), TB_CTAG).send().await)
        .prop_text(CAL, NS_CS, "getctag");
    assert_eq!(again, ctag);
    // A change elsewhere moves the ctag, and the listing shows which etag differs.
    other_device_put(s, &tb_href(CAL, "p-2"), &tb_event("p-2", "Poll (moved)", 2)).await;
    other_device_delete(s, &tb_href(CAL, "p-3")).await;
    let moved = ms(tb.xml("PROPFIND", CAL, Some("0"), TB_CTAG).send().await)
        .prop_text(CAL, NS_CS, "getctag");
    assert_ne!(moved, ctag);
    let after = listing(&ms(tb
        .xml("PROPFIND", CAL, Some("1"), TB_ETAG_LISTING)
        .send()
        .await));
    let p1 = tb_href(CAL, "p-1");
    let p2 = tb_href(CAL, "p-2");
    assert_eq!(
        after.keys().cloned().collect::<Vec<_>>(),
        sorted(&[&p1, &p2])
    );
    assert_eq!(after[&p1], before[&p1]);
    assert_ne!(after[&p2], before[&p2]);
}

// ---------------------------------------------------------------------------------------------
// Apple Calendar / Reminders (CCS simulator traces, research §2.2)
// ---------------------------------------------------------------------------------------------

const MACOS_SETUP_UA: &str = "macOS/15.1 (24B83) accountsd/1.0";
const MACOS_UA: &str = "macOS/15.1 (24B83) CalendarAgent/1000.2.1";
const IOS_UA: &str = "iOS/17.5.1 (21F90) dataaccessd/1.0";

fn apple<'a>(s: &'a TestServer, ua: &'static str) -> Client<'a> {
    Client {
        s,
        ua,
        xml_type: "text/xml",
    }
}

/// Apple's PROPFIND headers (research §2.2).
fn apple_headers(r: Req) -> Req {
    r.header("Brief", "t")
        .header("Prefer", "return=minimal")
        .header("Accept", "*/*")
        .header("Accept-Encoding", "gzip, deflate")
}

const APPLE_WELL_KNOWN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<A:propfind xmlns:A="DAV:">
  <A:prop>
    <A:current-user-principal/>
    <A:principal-URL/>
    <A:resourcetype/>
  </A:prop>
</A:propfind>"#;

/// OS_X_10_11/startup_principal_propfind.request (`extra` for iOS's additions).
fn apple_principal_body(extra: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<A:propfind xmlns:A="DAV:">
  <A:prop>
    <B:calendar-home-set xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <B:calendar-user-address-set xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <A:current-user-principal/>
    <A:displayname/>
    <C:dropbox-home-URL xmlns:C="http://calendarserver.org/ns/"/>
    <C:email-address-set xmlns:C="http://calendarserver.org/ns/"/>
    <C:notification-URL xmlns:C="http://calendarserver.org/ns/"/>
    <A:principal-collection-set/>
    <A:principal-URL/>
    <A:resource-id/>
    <B:schedule-inbox-URL xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <B:schedule-outbox-URL xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <A:supported-report-set/>{extra}
  </A:prop>
</A:propfind>"#
    )
}

/// OS_X_10_11/poll_calendarhome_depth1_propfind.request: the ~40 properties of the home poll,
/// used by the home PROPFIND and the home sync-collection alike.
const APPLE_HOME_PROPS: &str = r#"<A:prop>
    <A:add-member/>
    <C:allowed-sharing-modes xmlns:C="http://calendarserver.org/ns/"/>
    <D:autoprovisioned xmlns:D="http://apple.com/ns/ical/"/>
    <E:bulk-requests xmlns:E="http://me.com/_namespace/"/>
    <B:calendar-alarm xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <D:calendar-color xmlns:D="http://apple.com/ns/ical/"/>
    <B:calendar-description xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <B:calendar-free-busy-set xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <D:calendar-order xmlns:D="http://apple.com/ns/ical/"/>
    <B:calendar-timezone xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <A:current-user-privilege-set/>
    <B:default-alarm-vevent-date xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <B:default-alarm-vevent-datetime xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <A:displayname/>
    <C:getctag xmlns:C="http://calendarserver.org/ns/"/>
    <C:invite xmlns:C="http://calendarserver.org/ns/"/>
    <D:language-code xmlns:D="http://apple.com/ns/ical/"/>
    <D:location-code xmlns:D="http://apple.com/ns/ical/"/>
    <A:owner/>
    <C:pre-publish-url xmlns:C="http://calendarserver.org/ns/"/>
    <C:publish-url xmlns:C="http://calendarserver.org/ns/"/>
    <C:push-transports xmlns:C="http://calendarserver.org/ns/"/>
    <C:pushkey xmlns:C="http://calendarserver.org/ns/"/>
    <A:quota-available-bytes/>
    <A:quota-used-bytes/>
    <D:refreshrate xmlns:D="http://apple.com/ns/ical/"/>
    <A:resource-id/>
    <A:resourcetype/>
    <B:schedule-calendar-transp xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <B:schedule-default-calendar-URL xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <C:source xmlns:C="http://calendarserver.org/ns/"/>
    <C:subscribed-strip-alarms xmlns:C="http://calendarserver.org/ns/"/>
    <C:subscribed-strip-attachments xmlns:C="http://calendarserver.org/ns/"/>
    <C:subscribed-strip-todos xmlns:C="http://calendarserver.org/ns/"/>
    <B:supported-calendar-component-set xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <B:supported-calendar-component-sets xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <A:supported-report-set/>
    <A:sync-token/>
    <B:managed-attachments-server-URL xmlns:B="urn:ietf:params:xml:ns:caldav"/>
  </A:prop>"#;

fn apple_home_propfind() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<A:propfind xmlns:A=\"DAV:\">\n  {APPLE_HOME_PROPS}\n</A:propfind>"
    )
}

/// OS_X_10_11/poll_calendarhome_sync.request: Depth 1, sync-level 1, the home props.
fn apple_home_sync(token: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<A:sync-collection xmlns:A=\"DAV:\">\n  <A:sync-token>{}</A:sync-token>\n  <A:sync-level>1</A:sync-level>\n  {APPLE_HOME_PROPS}\n</A:sync-collection>",
        escape(token)
    )
}

/// OS_X_10_7/poll_calendar_sync.request: no sync-level at all.
fn apple_calendar_sync(token: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<A:sync-collection xmlns:A="DAV:">
  <A:sync-token>{}</A:sync-token>
  <A:prop>
    <A:getcontenttype/>
    <A:getetag/>
  </A:prop>
</A:sync-collection>"#,
        escape(token)
    )
}

fn apple_multiget(hrefs: &[String]) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<B:calendar-multiget xmlns:B="urn:ietf:params:xml:ns:caldav">
  <A:prop xmlns:A="DAV:">
    <A:getetag/>
    <B:calendar-data/>
    <B:schedule-tag/>
  </A:prop>
  {}
</B:calendar-multiget>"#,
        href_elems("A:", hrefs, " xmlns:A=\"DAV:\"")
    )
}

/// VTIMEZONE with CR LF written as `&#13;` plus newline, as Apple sends it.
fn apple_tz_value() -> String {
    let cal = format!(
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Apple Inc.//macOS 15.1//EN\nCALSCALE:GREGORIAN\n{VTZ_LA}\nEND:VCALENDAR"
    );
    cal.lines().map(|l| format!("{l}&#13;\n")).collect()
}

/// OS_X_10_11/startup_create_calendar.request, with the unnamespaced `<NO/>`.
fn apple_mkcalendar(name: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<B:mkcalendar xmlns:B="urn:ietf:params:xml:ns:caldav">
  <A:set xmlns:A="DAV:">
    <A:prop>
      <D:calendar-order xmlns:D="http://apple.com/ns/ical/">2</D:calendar-order>
      <B:supported-calendar-component-set>
        <B:comp name="VEVENT"/>
      </B:supported-calendar-component-set>
      <D:calendar-color xmlns:D="http://apple.com/ns/ical/" symbolic-color="custom">#63DA38FF</D:calendar-color>
      <B:calendar-timezone>{}</B:calendar-timezone>
      <A:displayname>{name}</A:displayname>
      <B:calendar-free-busy-set>
        <NO/>
      </B:calendar-free-busy-set>
      <B:schedule-calendar-transp>
        <B:opaque/>
      </B:schedule-calendar-transp>
    </A:prop>
  </A:set>
</B:mkcalendar>"#,
        apple_tz_value()
    )
}

fn apple_proppatch(prop: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<A:propertyupdate xmlns:A="DAV:">
  <A:set>
    <A:prop>
      {prop}
    </A:prop>
  </A:set>
</A:propertyupdate>"#
    )
}

#[track_caller]
fn assert_all_200(r: &Resp, href: &str) {
    let st = r.prop_statuses(href);
    ensure(
        r,
        !st.is_empty() && st.iter().all(|(_, c)| *c == 200),
        &format!("every property set on {href}: {st:?}"),
    );
}

#[track_caller]
fn assert_no_404_propstat(r: &Resp) {
    for h in r.hrefs() {
        ensure(
            r,
            !r.prop_statuses(&h).iter().any(|(_, c)| *c == 404),
            &format!("{h}: Brief/return=minimal leaves out the 404 propstat"),
        );
    }
}

/// Apple's home poll checks: sync advertised on the home, ctag and token on home and
/// calendars, calendars classified by resourcetype (never calendar + inbox/outbox).
#[track_caller]
fn check_apple_home_poll(h: &Resp) {
    let hrefs = h.hrefs();
    ensure(
        h,
        hrefs.first().map(String::as_str) == Some(HOME),
        "the home comes first",
    );
    ensure(
        h,
        hrefs.contains(&CAL.to_owned()),
        "the default calendar is listed",
    );
    let reports = h.prop(HOME, NS_DAV, "supported-report-set");
    ensure(
        h,
        reports
            .as_ref()
            .is_some_and(|e| lists_report(e, NS_DAV, "sync-collection")),
        "sync-collection on the *home*: Apple only syncs when the home advertises it",
    );
    for href in &hrefs {
        let token = h.prop(href, NS_DAV, "sync-token").map(|e| e.text());
        ensure(
            h,
            token.is_some() && h.prop(href, NS_CS, "getctag").is_some(),
            &format!("{href}: getctag and sync-token (iOS stops syncing without the home ctag)"),
        );
        assert_uri_token(&token.unwrap_or_default());
        if href == HOME {
            continue;
        }
        let rt = h.prop(href, NS_DAV, "resourcetype").expect("resourcetype");
        if rt.child(NS_CALDAV, "calendar").is_some() {
            ensure(
                h,
                rt.child(NS_CALDAV, "schedule-inbox").is_none()
                    && rt.child(NS_CALDAV, "schedule-outbox").is_none(),
                "a calendar is never also an inbox/outbox (Apple ignores it)",
            );
            let privs = h.prop(href, NS_DAV, "current-user-privilege-set");
            ensure(
                h,
                privs.as_ref().is_some_and(|p| {
                    has_privilege(p, NS_DAV, "write") || has_privilege(p, NS_DAV, "all")
                }),
                &format!("{href}: writable"),
            );
            ensure(
                h,
                h.prop(href, NS_CALDAV, "supported-calendar-component-set")
                    .is_some(),
                &format!("{href}: supported-calendar-component-set"),
            );
        }
    }
    ensure(
        h,
        h.prop(HOME, NS_DAV, "quota-available-bytes").is_some()
            && h.prop(HOME, NS_DAV, "quota-used-bytes").is_some(),
        "quota on the home",
    );
}

/// Account setup by accountsd: unauthenticated well-known, the 401, the principal, the
/// macOS 26 probes, OPTIONS on the principal.
pub async fn apple_macos_account_setup(s: &TestServer) {
    let ac = apple(s, MACOS_SETUP_UA);
    let r = ac
        .anon_xml(
            "PROPFIND",
            "/.well-known/caldav",
            Some("0"),
            APPLE_WELL_KNOWN,
        )
        .send()
        .await;
    ensure(
        &r,
        matches!(r.status, 301 | 302),
        "301/302 from the well-known URI without credentials",
    );
    let target = location_path(r.header("location").unwrap_or_default());
    // The PROPFIND is re-issued at the Location, first without credentials.
    let r = ac
        .anon_xml("PROPFIND", &target, Some("0"), APPLE_WELL_KNOWN)
        .send()
        .await;
    ensure(
        &r,
        r.status == 401,
        "401 + challenge, not 403 and not anonymous 200",
    );
    ensure(
        &r,
        r.header("www-authenticate").is_some(),
        "WWW-Authenticate on the 401",
    );
    let r = ms(
        apple_headers(ac.xml("PROPFIND", &target, Some("0"), APPLE_WELL_KNOWN))
            .send()
            .await,
    );
    let cup = r
        .prop(&target, NS_DAV, "current-user-principal")
        .map(|e| hrefs_in(&e))
        .unwrap_or_default();
    ensure(
        &r,
        cup == vec![PRINCIPAL.to_owned()],
        "current-user-principal at the target",
    );
    // macOS 26 also probes `/` and `/principals/` (and a Google-style path, which may 404).
    for probe in ["/", "/principals/"] {
        let r = ms(
            apple_headers(ac.xml("PROPFIND", probe, Some("0"), APPLE_WELL_KNOWN))
                .send()
                .await,
        );
        let cup = r
            .prop(probe, NS_DAV, "current-user-principal")
            .map(|e| hrefs_in(&e))
            .unwrap_or_default();
        ensure(
            &r,
            cup == vec![PRINCIPAL.to_owned()],
            "current-user-principal on the probe",
        );
    }
    let r = ac
        .xml(
            "PROPFIND",
            "/calendar/dav/alice/user/",
            Some("0"),
            APPLE_WELL_KNOWN,
        )
        .send()
        .await;
    ensure(&r, r.status == 404, "an unknown probe path is a plain 404");
    // The principal, with Brief and return=minimal.
    let p = ms(
        apple_headers(ac.xml("PROPFIND", PRINCIPAL, Some("0"), &apple_principal_body("")))
            .send()
            .await,
    );
    let homes = p
        .prop(PRINCIPAL, NS_CALDAV, "calendar-home-set")
        .map(|e| hrefs_in(&e))
        .unwrap_or_default();
    ensure(
        &p,
        homes == vec![HOME.to_owned()],
        "exactly one calendar-home-set href (Apple picks one at random otherwise)",
    );
    let addrs = p
        .prop(PRINCIPAL, NS_CALDAV, "calendar-user-address-set")
        .map(|e| hrefs_in(&e))
        .unwrap_or_default();
    ensure(
        &p,
        addrs.first().map(String::as_str) == Some("mailto:alice@example.com"),
        "the mailto: address first",
    );
    ensure(
        &p,
        p.prop(PRINCIPAL, NS_DAV, "principal-URL")
            .map(|e| hrefs_in(&e))
            == Some(vec![PRINCIPAL.to_owned()]),
        "principal-URL",
    );
    ensure(
        &p,
        !p.prop_text(PRINCIPAL, NS_DAV, "displayname").is_empty(),
        "displayname",
    );
    assert_no_404_propstat(&p);
    // Invitations are gated on what OPTIONS advertises.
    let o = ac.req("OPTIONS", PRINCIPAL).send().await;
    ensure(&o, o.status == 200, "OPTIONS on the principal");
    ensure(
        &o,
        dav_tokens(&o).iter().any(|t| t == "calendar-access"),
        "calendar-access on the principal",
    );
}

/// Delegation lookup right after setup: expand-property on the principal
/// (OS_X_10_11/startup_principal_expand.request). Unsupported should still be an empty 207.
pub async fn apple_macos_delegation_probe(s: &TestServer) {
    let ac = apple(s, MACOS_SETUP_UA);
    let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<A:expand-property xmlns:A="DAV:">
  <A:property name="calendar-proxy-write-for" namespace="http://calendarserver.org/ns/">
    <A:property name="displayname" namespace="DAV:"/>
    <A:property name="calendar-user-address-set" namespace="urn:ietf:params:xml:ns:caldav"/>
    <A:property name="email-address-set" namespace="http://calendarserver.org/ns/"/>
  </A:property>
  <A:property name="calendar-proxy-read-for" namespace="http://calendarserver.org/ns/">
    <A:property name="displayname" namespace="DAV:"/>
    <A:property name="calendar-user-address-set" namespace="urn:ietf:params:xml:ns:caldav"/>
    <A:property name="email-address-set" namespace="http://calendarserver.org/ns/"/>
  </A:property>
</A:expand-property>"#;
    let r = ms(apple_headers(ac.xml("REPORT", PRINCIPAL, Some("0"), body))
        .send()
        .await);
    // No delegations: nothing may be named as a proxy target.
    for h in r.hrefs() {
        ensure(&r, h == PRINCIPAL, "only the principal itself is answered");
    }
}

/// CalendarAgent's first poll: the ~40-property home PROPFIND (return=minimal), the first-poll
/// PROPPATCHes (color with symbolic-color, order, timezone; default alarms on the home),
/// MKCALENDAR with `<NO/>`, and home-level sync seeing every one of those changes.
pub async fn apple_macos_first_poll(s: &TestServer) {
    let ca = apple(s, MACOS_UA);
    let h = ms(
        apple_headers(ca.xml("PROPFIND", HOME, Some("1"), &apple_home_propfind()))
            .send()
            .await,
    );
    check_apple_home_poll(&h);
    assert_no_404_propstat(&h);
    let home_token = h.prop_text(HOME, NS_DAV, "sync-token");

    // First-poll PROPPATCHes onto the calendar.
    let color = r##"<D:calendar-color xmlns:D="http://apple.com/ns/ical/" symbolic-color="orange">#FF9500FF</D:calendar-color>"##;
    let r = ms(ca
        .xml("PROPPATCH", CAL, None, &apple_proppatch(color))
        .send()
        .await);
    assert_all_200(&r, CAL);
    let order = r#"<D:calendar-order xmlns:D="http://apple.com/ns/ical/">1</D:calendar-order>"#;
    let r = ms(ca
        .xml("PROPPATCH", CAL, None, &apple_proppatch(order))
        .send()
        .await);
    assert_all_200(&r, CAL);
    let tz = format!(
        r#"<B:calendar-timezone xmlns:B="urn:ietf:params:xml:ns:caldav">{}</B:calendar-timezone>"#,
        apple_tz_value()
    );
    let r = ms(ca
        .xml("PROPPATCH", CAL, None, &apple_proppatch(&tz))
        .send()
        .await);
    assert_all_200(&r, CAL);
    // Default alarms on the home.
    let alarms = "<B:default-alarm-vevent-datetime xmlns:B=\"urn:ietf:params:xml:ns:caldav\">BEGIN:VALARM&#13;\nX-WR-ALARMUID:4C3A0E12-0000-0000-0000-000000000001&#13;\nUID:4C3A0E12-0000-0000-0000-000000000001&#13;\nTRIGGER:-PT15M&#13;\nACTION:AUDIO&#13;\nEND:VALARM&#13;\n</B:default-alarm-vevent-datetime>";
    let r = ms(ca
        .xml("PROPPATCH", HOME, None, &apple_proppatch(alarms))
        .send()
        .await);
    assert_all_200(&r, HOME);

    // A new calendar from the Calendar app.
    let newcal = "/calendars/alice/5B0E7E7A-9C43-4C4B-8E1E-3A1C2E0F6D11/";
    let r = ca
        .xml("MKCALENDAR", newcal, None, &apple_mkcalendar("Family"))
        .send()
        .await;
    ensure(
        &r,
        r.status == 201,
        "MKCALENDAR with Apple's body (incl. <NO/>)",
    );

    // Home sync from the poll's token: the re-coloured calendar and the new one, with props.
    let r = ms(ca
        .xml("REPORT", HOME, Some("1"), &apple_home_sync(&home_token))
        .send()
        .await);
    let listed = {
        let mut v = r.hrefs();
        v.sort();
        v
    };
    ensure(
        &r,
        listed == sorted(&[CAL, newcal]),
        "home sync lists exactly the changed and the new calendar",
    );
    for href in [CAL, newcal] {
        ensure(
            &r,
            r.response_status(href).is_none(),
            "changed, not removed",
        );
        ensure(&r, is_calendar(&r, href), "a calendar");
        ensure(
            &r,
            r.prop(href, NS_CS, "getctag").is_some(),
            "getctag in home sync",
        );
    }
    let color = r.prop(CAL, NS_ICAL, "calendar-color").expect("color");
    assert_eq!(color.text(), "#FF9500FF");
    assert_eq!(color.attr("symbolic-color"), Some("orange"));
    assert_eq!(r.prop_text(CAL, NS_ICAL, "calendar-order"), "1");
    assert!(r
        .prop_text(CAL, NS_CALDAV, "calendar-timezone")
        .contains("TZID:America/Los_Angeles"));
    let color = r.prop(newcal, NS_ICAL, "calendar-color").expect("color");
    assert_eq!(
        (color.text().as_str(), color.attr("symbolic-color")),
        ("#63DA38FF", Some("custom"))
    );
    assert_eq!(r.prop_text(newcal, NS_DAV, "displayname"), "Family");
    assert_eq!(r.prop_text(newcal, NS_ICAL, "calendar-order"), "2");
    assert_eq!(
        r.prop(newcal, NS_CALDAV, "supported-calendar-component-set")
            .map(|e| comps(&e)),
        Some(vec!["VEVENT".to_owned()])
    );
    assert!(r
        .prop(newcal, NS_CALDAV, "calendar-free-busy-set")
        .is_some_and(|e| e.child("", "NO").is_some()));
    let t1 = r.sync_token();
    assert_uri_token(&t1);
    // The home's default alarms stick.
    let r = ms(
        apple_headers(ca.xml("PROPFIND", HOME, Some("0"), &apple_home_propfind()))
            .send()
            .await,
    );
    assert!(r
        .prop_text(HOME, NS_CALDAV, "default-alarm-vevent-datetime")
        .contains("TRIGGER:-PT15M"));

    // An event in the new calendar shows the calendar as changed, with a new ctag.
    let ev = format!("{newcal}0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0.ics");
    let r = ca
        .put(
            &ev,
            "text/calendar",
            &apple_event("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0", "Dinner", 12),
        )
        .send()
        .await;
    ensure(&r, r.status == 201, "create is 201");
    let r = ms(ca
        .xml("REPORT", HOME, Some("1"), &apple_home_sync(&t1))
        .send()
        .await);
    ensure(
        &r,
        r.hrefs() == vec![newcal.to_owned()],
        "only the new calendar changed",
    );
    let t2 = r.sync_token();
    // Removing it: a 404 in home sync.
    ca.req("DELETE", newcal).send().await.status(204);
    let r = ms(ca
        .xml("REPORT", HOME, Some("1"), &apple_home_sync(&t2))
        .send()
        .await);
    ensure(
        &r,
        r.hrefs() == vec![newcal.to_owned()],
        "the removal is listed",
    );
    ensure(&r, r.response_status(newcal) == Some(404), "as 404");
    // Stale home token: 403, after which Apple falls back to a full home PROPFIND.
    let r = ca
        .xml(
            "REPORT",
            HOME,
            Some("1"),
            &apple_home_sync(&token_from_the_future(&t2)),
        )
        .send()
        .await;
    assert_stale_token_refused(&r);
    let h = ms(
        apple_headers(ca.xml("PROPFIND", HOME, Some("1"), &apple_home_propfind()))
            .send()
            .await,
    );
    check_apple_home_poll(&h);
}

/// CalendarAgent syncing a calendar: sync-collection without sync-level, PUT without
/// precondition (201 + ETag), If-Match updates, multiget in batches of 50, 403 → empty token.
pub async fn apple_macos_calendar_sync(s: &TestServer) {
    let ca = apple(s, MACOS_UA);
    let r = ms(ca
        .xml("REPORT", CAL, Some("1"), &apple_calendar_sync(""))
        .send()
        .await);
    let d0 = read_sync(&r, CAL, true);
    assert!(d0.changed.is_empty());

    // Calendar and Reminders write events and a VTODO; Apple sends only Content-Type.
    let mut etags = BTreeMap::new();
    let mut sent = BTreeMap::new();
    for i in 0..3u32 {
        let uid = format!("A1B2C3D4-0000-4000-8000-00000000000{i}");
        let href = format!("{CAL}{uid}.ics");
        let ics = apple_event(&uid, &format!("Meeting {i}"), 10 + i);
        let r = ca.put(&href, "text/calendar", &ics).send().await;
        ensure(&r, r.status == 201, "create is 201");
        etags.insert(href.clone(), assert_strong_etag_header(&r));
        sent.insert(href, ics);
    }
    let rem = format!("{CAL}E5F6A7B8-1111-4222-8333-444444444444.ics");
    let rem_ics = apple_reminder("E5F6A7B8-1111-4222-8333-444444444444", "Buy milk");
    let r = apple(s, "macOS/15.1 (24B83) remindd/1.0")
        .put(&rem, "text/calendar", &rem_ics)
        .send()
        .await;
    ensure(&r, r.status == 201, "reminder create is 201");
    etags.insert(rem.clone(), assert_strong_etag_header(&r));
    sent.insert(rem.clone(), rem_ics);
    // The ETag from PUT is what GET and the sync report say.
    let first = etags.keys().next().cloned().unwrap();
    let g = ca.req("GET", &first).send().await;
    g.status(200);
    ensure(
        &g,
        g.header("etag") == Some(etags[&first].as_str()),
        "GET ETag = PUT ETag",
    );
    ensure(
        &g,
        g.header("content-type")
            .is_some_and(|c| c.starts_with("text/calendar")),
        "GET content type",
    );
    assert_eq!(g.body, sent[&first]);

    let r = ms(ca
        .xml("REPORT", CAL, Some("1"), &apple_calendar_sync(&d0.token))
        .send()
        .await);
    let d1 = read_sync(&r, CAL, true);
    assert_eq!(d1.changed, etags.keys().cloned().collect::<Vec<_>>());
    for (h, e) in &etags {
        assert_eq!(&d1.etags[h], e, "{h}: sync etag = PUT ETag");
    }

    // Update with If-Match: 204 and the new ETag; a stale If-Match: 412.
    let updated = apple_event(
        "A1B2C3D4-0000-4000-8000-000000000000",
        "Meeting 0 (moved)",
        15,
    );
    let r = ca
        .put(&first, "text/calendar", &updated)
        .header("If-Match", &etags[&first])
        .send()
        .await;
    ensure(&r, matches!(r.status, 200 | 204), "update accepted");
    let new_etag = assert_strong_etag_header(&r);
    assert_ne!(new_etag, etags[&first]);
    let r = ca
        .put(&first, "text/calendar", &updated)
        .header("If-Match", &etags[&first])
        .send()
        .await;
    ensure(&r, r.status == 412, "a stale If-Match is 412");

    // Another device adds many events: the multiget runs in batches of 50.
    let mut expected: Vec<String> = vec![first.clone()];
    for i in 0..55u32 {
        let uid = format!("BULK-{i:03}");
        let href = format!("{CAL}{uid}.ics");
        other_device_put(s, &href, &apple_event(&uid, "Bulk", 20)).await;
        expected.push(href);
    }
    let gone = format!("{CAL}A1B2C3D4-0000-4000-8000-000000000002.ics");
    other_device_delete(s, &gone).await;
    expected.sort();
    let r = ms(ca
        .xml("REPORT", CAL, Some("1"), &apple_calendar_sync(&d1.token))
        .send()
        .await);
    let d2 = read_sync(&r, CAL, true);
    assert_eq!(d2.changed, expected, "exactly the changes");
    assert_eq!(d2.removed, vec![gone.clone()]);
    assert_eq!(d2.etags[&first], new_etag);
    let mut fetched = 0;
    for batch in d2.changed.chunks(50) {
        let r = ms(ca
            .xml("REPORT", CAL, Some("1"), &apple_multiget(batch))
            .send()
            .await);
        let got = read_multiget(&r, batch);
        for h in batch {
            assert_eq!(got[h].0, d2.etags[h], "{h}: multiget etag = sync etag");
        }
        fetched += got.len();
    }
    assert_eq!(fetched, expected.len());

    // A token the server no longer has: 403, then Apple retries with an empty token.
    let r = ca
        .xml(
            "REPORT",
            CAL,
            Some("1"),
            &apple_calendar_sync(&token_from_the_future(&d2.token)),
        )
        .send()
        .await;
    assert_stale_token_refused(&r);
    let r = ms(ca
        .xml("REPORT", CAL, Some("1"), &apple_calendar_sync(""))
        .send()
        .await);
    let full = read_sync(&r, CAL, true);
    assert!(full.removed.is_empty(), "an initial sync lists no removals");
    assert_eq!(full.changed.len(), 3 + 55, "every member: {full:?}");
    assert!(!full.changed.contains(&gone));
}

/// iOS dataaccessd: principal (with CS:allowed-calendar-component-set) and home poll *without*
/// return=minimal, where unknown properties must come back as a 404 propstat.
pub async fn apple_ios_setup_and_home_poll(s: &TestServer) {
    let ios = apple(s, IOS_UA);
    let r = ios
        .anon_xml(
            "PROPFIND",
            "/.well-known/caldav",
            Some("0"),
            APPLE_WELL_KNOWN,
        )
        .send()
        .await;
    ensure(&r, matches!(r.status, 301 | 302), "well-known redirect");
    let extra =
        "\n    <C:allowed-calendar-component-set xmlns:C=\"http://calendarserver.org/ns/\"/>";
    let p = ms(ios
        .xml(
            "PROPFIND",
            PRINCIPAL,
            Some("0"),
            &apple_principal_body(extra),
        )
        .header("Accept", "*/*")
        .send()
        .await);
    let homes = p
        .prop(PRINCIPAL, NS_CALDAV, "calendar-home-set")
        .map(|e| hrefs_in(&e))
        .unwrap_or_default();
    ensure(&p, homes == vec![HOME.to_owned()], "exactly one home");
    let st = p.prop_statuses(PRINCIPAL);
    for unknown in [
        "dropbox-home-URL",
        "notification-URL",
        "allowed-calendar-component-set",
    ] {
        ensure(
            &p,
            st.iter()
                .any(|(n, c)| n == unknown && matches!(*c, 200 | 404)),
            &format!("{unknown} is answered (200, or a 404 propstat)"),
        );
    }
    ensure(
        &p,
        st.iter().all(|(_, c)| matches!(*c, 200 | 404)),
        &format!("only 200/404 propstats: {st:?}"),
    );

    let h = ms(ios
        .xml("PROPFIND", HOME, Some("1"), &apple_home_propfind())
        .header("Accept", "*/*")
        .send()
        .await);
    check_apple_home_poll(&h);
    for href in [HOME, CAL] {
        let st = h.prop_statuses(href);
        for unknown in [
            "pushkey",
            "push-transports",
            "bulk-requests",
            "invite",
            "add-member",
        ] {
            ensure(
                &h,
                st.iter()
                    .any(|(n, c)| n == unknown && matches!(*c, 200 | 404)),
                &format!("{href}: {unknown} answered as 404 propstat (or a value)"),
            );
        }
        ensure(
            &h,
            st.iter().all(|(_, c)| matches!(*c, 200 | 404)),
            &format!("{href}: only 200/404 propstats: {st:?}"),
        );
    }
}

/// iOS without sync-collection (the iOS 16 trace in research §2.2): PROPFIND getctag +
/// sync-token, Depth 1 getcontenttype + getetag, multiget; and iOS 5's time-range VEVENT query
/// (start only) and unfiltered VTODO query.
pub async fn apple_ios_ctag_fallback(s: &TestServer) {
    let ios = apple(s, IOS_UA);
    let ctag_body = r#"<?xml version="1.0" encoding="UTF-8"?>
<A:propfind xmlns:A="DAV:">
  <A:prop>
    <C:getctag xmlns:C="http://calendarserver.org/ns/"/>
    <A:sync-token/>
  </A:prop>
</A:propfind>"#;
    let list_body = r#"<?xml version="1.0" encoding="UTF-8"?>
<A:propfind xmlns:A="DAV:">
  <A:prop>
    <A:getcontenttype/>
    <A:getetag/>
  </A:prop>
</A:propfind>"#;
    let ev = |i: u32| format!("{CAL}IOS-EV-{i}.ics");
    for i in 0..4u32 {
        other_device_put(
            s,
            &ev(i),
            &apple_event(&format!("IOS-EV-{i}"), "Ev", 10 + i),
        )
        .await;
    }
    let todo_href = format!("{CAL}IOS-TODO-1.ics");
    other_device_put(s, &todo_href, &apple_reminder("IOS-TODO-1", "Call back")).await;

    let poll = |r: &Resp| -> (String, String) {
        (
            r.prop_text(CAL, NS_CS, "getctag"),
            r.prop_text(CAL, NS_DAV, "sync-token"),
        )
    };
    let listing = |r: &Resp| -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for h in r.hrefs().into_iter().filter(|h| h != CAL) {
            let e = r.prop(&h, NS_DAV, "getetag").map(|e| e.text());
            let ct = r.prop(&h, NS_DAV, "getcontenttype").map(|e| e.text());
            ensure(
                r,
                e.as_deref().is_some_and(is_strong_etag)
                    && ct
                        .as_deref()
                        .is_some_and(|c| c.starts_with("text/calendar")),
                &format!("{h}: getetag and text/calendar getcontenttype"),
            );
            out.insert(h, e.unwrap_or_default());
        }
        out
    };
    let (ctag0, tok0) = poll(&ms(ios
        .xml("PROPFIND", CAL, Some("0"), ctag_body)
        .send()
        .await));
    assert_uri_token(&tok0);
    let before = listing(&ms(ios
        .xml("PROPFIND", CAL, Some("1"), list_body)
        .send()
        .await));
    assert_eq!(before.len(), 5);
    let hrefs: Vec<String> = before.keys().cloned().collect();
    let got = read_multiget(
        &ms(ios
            .xml("REPORT", CAL, Some("1"), &apple_multiget(&hrefs))
            .send()
            .await),
        &hrefs,
    );
    assert_eq!(got.len(), 5);

    // Nothing changed: same ctag, iOS stops there.
    let (ctag, _) = poll(&ms(ios
        .xml("PROPFIND", CAL, Some("0"), ctag_body)
        .send()
        .await));
    assert_eq!(ctag, ctag0);
    // A change and a deletion elsewhere.
    other_device_put(s, &ev(1), &apple_event("IOS-EV-1", "Ev (moved)", 18)).await;
    other_device_delete(s, &ev(2)).await;
    let (ctag1, tok1) = poll(&ms(ios
        .xml("PROPFIND", CAL, Some("0"), ctag_body)
        .send()
        .await));
    assert_ne!(ctag1, ctag0);
    assert_ne!(tok1, tok0);
    let after = listing(&ms(ios
        .xml("PROPFIND", CAL, Some("1"), list_body)
        .send()
        .await));
    assert!(!after.contains_key(&ev(2)));
    assert_eq!(after.len(), 4);
    let changed: Vec<String> = after
        .iter()
        .filter(|(h, e)| before.get(*h) != Some(*e))
        .map(|(h, _)| h.clone())
        .collect();
    assert_eq!(changed, vec![ev(1)]);
    let got = read_multiget(
        &ms(ios
            .xml("REPORT", CAL, Some("1"), &apple_multiget(&changed))
            .send()
            .await),
        &changed,
    );
    assert!(got[&ev(1)].1.contains("Ev (moved)"));

    // iOS 5: time-range VEVENT query with a start only, and every VTODO.
    let vevent_q = r#"<?xml version="1.0" encoding="UTF-8"?>
<B:calendar-query xmlns:B="urn:ietf:params:xml:ns:caldav">
  <A:prop xmlns:A="DAV:">
    <A:getetag/>
  </A:prop>
  <B:filter>
    <B:comp-filter name="VCALENDAR">
      <B:comp-filter name="VEVENT">
        <B:time-range start="20240112T000000Z"/>
      </B:comp-filter>
    </B:comp-filter>
  </B:filter>
</B:calendar-query>"#;
    let r = ms(ios.xml("REPORT", CAL, Some("1"), vevent_q).send().await);
    let mut got: Vec<String> = r.hrefs();
    got.sort();
    // IOS-EV-0 (Jan 10) and IOS-EV-1's old day are before the start; the moved one is not.
    assert_eq!(got, vec![ev(1), ev(3)], "{}", dump(&r));
    for h in &got {
        assert!(r.prop(h, NS_DAV, "getetag").is_some());
    }
    let vtodo_q = r#"<?xml version="1.0" encoding="UTF-8"?>
<B:calendar-query xmlns:B="urn:ietf:params:xml:ns:caldav">
  <A:prop xmlns:A="DAV:">
    <A:getetag/>
  </A:prop>
  <B:filter>
    <B:comp-filter name="VCALENDAR">
      <B:comp-filter name="VTODO"/>
    </B:comp-filter>
  </B:filter>
</B:calendar-query>"#;
    let r = ms(ios.xml("REPORT", CAL, Some("1"), vtodo_q).send().await);
    assert_eq!(r.hrefs(), vec![todo_href.clone()]);
    assert!(r.prop(&todo_href, NS_DAV, "getetag").is_some());
}

// ---------------------------------------------------------------------------------------------
// DAVx5 (davx5-ose + dav4jvm, research §2.3)
// ---------------------------------------------------------------------------------------------

const DAVX5_UA: &str = "DAVx5/4.4.3-ose (2024/10/08; dav4jvm; okhttp/4.12.0) Android/14";
const DAVX5_ICS: &str = "text/calendar; charset=utf-8";

fn davx5(s: &TestServer) -> Client<'_> {
    Client {
        s,
        ua: DAVX5_UA,
        xml_type: "application/xml; charset=utf-8",
    }
}

const DX_HEAD: &str = "<?xml version='1.0' encoding='UTF-8' ?>";
const DX_NS: &str = r#"xmlns="DAV:" xmlns:CAL="urn:ietf:params:xml:ns:caldav" xmlns:CARD="urn:ietf:params:xml:ns:carddav" xmlns:CS="http://calendarserver.org/ns/" xmlns:ICAL="http://apple.com/ns/ical/""#;

fn dx_propfind(props: &str) -> String {
    format!("{DX_HEAD}<propfind {DX_NS}><prop>{props}</prop></propfind>")
}

fn dx_sync(token: &str, limit: Option<u32>) -> String {
    let token = if token.is_empty() {
        "<sync-token />".to_owned()
    } else {
        format!("<sync-token>{}</sync-token>", escape(token))
    };
    let limit = limit
        .map(|n| format!("<limit><nresults>{n}</nresults></limit>"))
        .unwrap_or_default();
    format!(
        "{DX_HEAD}<sync-collection xmlns=\"DAV:\">{token}<sync-level>1</sync-level>{limit}<prop><getetag /><resourcetype /></prop></sync-collection>"
    )
}

fn dx_multiget(hrefs: &[String]) -> String {
    format!(
        "{DX_HEAD}<CAL:calendar-multiget xmlns=\"DAV:\" xmlns:CAL=\"urn:ietf:params:xml:ns:caldav\"><prop><getcontenttype /><getetag /><CAL:schedule-tag /><CAL:calendar-data /></prop>{}</CAL:calendar-multiget>",
        href_elems("", hrefs, "")
    )
}

/// COLLECTION_SYNC: sync-collection Depth 0 (looping on 507), then multiget without Depth in
/// batches of 10. Returns (token, changed, removed) and fills `cache` (href → etag).
async fn dx_collection_sync(
    dx: &Client<'_>,
    cal: &str,
    token: &str,
    limit: Option<u32>,
    cache: &mut BTreeMap<String, String>,
) -> (String, Vec<String>, Vec<String>, usize) {
    let mut token = token.to_owned();
    let mut changed = BTreeSet::new();
    let mut removed = BTreeSet::new();
    let mut etags = BTreeMap::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 50, "sync never ends");
        let r = ms(dx
            .xml("REPORT", cal, Some("0"), &dx_sync(&token, limit))
            .send()
            .await);
        let d = read_sync(&r, cal, false);
        for h in &d.changed {
            // An object's resourcetype is empty (not a collection).
            let rt = r.prop(h, NS_DAV, "resourcetype");
            ensure(
                &r,
                rt.as_ref().is_none_or(|e| e.elements().next().is_none()),
                "objects have an empty resourcetype",
            );
        }
        for h in d.removed {
            changed.remove(&h);
            removed.insert(h);
        }
        for h in d.changed {
            removed.remove(&h);
            changed.insert(h);
        }
        etags.extend(d.etags);
        token = d.token;
        if !d.truncated {
            break;
        }
    }
    for h in &removed {
        cache.remove(h);
    }
    let fetch: Vec<String> = changed
        .iter()
        .filter(|h| cache.get(*h) != etags.get(*h))
        .cloned()
        .collect();
    for batch in fetch.chunks(10) {
        // dav4jvm sends calendar-multiget without a Depth header.
        let r = ms(dx
            .xml("REPORT", cal, None, &dx_multiget(batch))
            .send()
            .await);
        let got = read_multiget(&r, batch);
        for h in batch {
            let ct = r.prop(h, NS_DAV, "getcontenttype").map(|e| e.text());
            ensure(
                &r,
                ct.as_deref()
                    .is_some_and(|c| c.starts_with("text/calendar")),
                "getcontenttype in multiget",
            );
            cache.insert(h.clone(), got[h].0.clone());
        }
    }
    (
        token,
        changed.into_iter().collect(),
        removed.into_iter().collect(),
        rounds,
    )
}

/// DavResourceFinder and the refreshers: user URL, OPTIONS on the principal (calendar-access
/// required), address set, home sets, home listing; and the well-known fallback.
pub async fn davx5_service_detection(s: &TestServer) {
    let dx = davx5(s);
    // The well-known fallback: dav4jvm follows the redirect itself.
    let r = dx
        .xml(
            "PROPFIND",
            "/.well-known/caldav",
            Some("0"),
            &dx_propfind("<current-user-principal />"),
        )
        .send()
        .await;
    ensure(&r, matches!(r.status, 301 | 302 | 307 | 308), "redirect");
    let target = location_path(r.header("location").unwrap_or_default());
    // 1. PROPFIND Depth 0 on the user URL.
    let user_url_props = "<resourcetype /><displayname /><current-user-principal /><current-user-privilege-set /><CAL:calendar-home-set /><CAL:supported-calendar-component-set /><ICAL:calendar-color /><CAL:calendar-description /><CAL:calendar-timezone />";
    let r = ms(dx
        .xml("PROPFIND", &target, Some("0"), &dx_propfind(user_url_props))
        .send()
        .await);
    let principal = r
        .prop(&target, NS_DAV, "current-user-principal")
        .map(|e| hrefs_in(&e))
        .unwrap_or_default();
    ensure(
        &r,
        principal == vec![PRINCIPAL.to_owned()],
        "current-user-principal",
    );
    // 2. OPTIONS on the principal must say calendar-access, or the principal is dropped.
    let o = dx.req("OPTIONS", PRINCIPAL).send().await;
    ensure(&o, o.status == 200, "OPTIONS on the principal");
    ensure(
        &o,
        dav_tokens(&o).iter().any(|t| t == "calendar-access"),
        "\"Principal doesn't provide caldav service\" without calendar-access",
    );
    // 5. The address set: mailto: becomes the account name.
    let r = ms(dx
        .xml(
            "PROPFIND",
            PRINCIPAL,
            Some("0"),
            &dx_propfind("<CAL:calendar-user-address-set />"),
        )
        .send()
        .await);
    let addrs = r
        .prop(PRINCIPAL, NS_CALDAV, "calendar-user-address-set")
        .map(|e| hrefs_in(&e))
        .unwrap_or_default();
    ensure(
        &r,
        addrs.iter().any(|a| a == "mailto:alice@example.com"),
        "a mailto: address",
    );
    // B. Home sets (groups and proxies are recursed into when present).
    let r = ms(dx
        .xml(
            "PROPFIND",
            PRINCIPAL,
            Some("0"),
            &dx_propfind("<displayname /><group-membership /><resourcetype /><CAL:calendar-home-set /><CS:calendar-proxy-read-for /><CS:calendar-proxy-write-for />"),
        )
        .send()
        .await);
    let rt = r
        .prop(PRINCIPAL, NS_DAV, "resourcetype")
        .expect("resourcetype");
    ensure(&r, rt.child(NS_DAV, "principal").is_some(), "a principal");
    let homes = r
        .prop(PRINCIPAL, NS_CALDAV, "calendar-home-set")
        .map(|e| hrefs_in(&e))
        .unwrap_or_default();
    ensure(&r, homes == vec![HOME.to_owned()], "the home set");
    for (n, c) in r.prop_statuses(PRINCIPAL) {
        ensure(&r, matches!(c, 200 | 404), &format!("{n}: {c}"));
    }
    // C. Collections of the home.
    let home_props = r#"<current-user-privilege-set /><displayname /><owner /><resourcetype /><push:transports xmlns:push="https://bitfire.at/webdav-push" /><push:topic xmlns:push="https://bitfire.at/webdav-push" /><ICAL:calendar-color /><CAL:calendar-description /><CAL:calendar-timezone /><CAL:calendar-timezone-id /><CAL:supported-calendar-component-set /><CS:source />"#;
    let h = ms(dx
        .xml("PROPFIND", HOME, Some("1"), &dx_propfind(home_props))
        .send()
        .await);
    ensure(
        &h,
        is_calendar(&h, CAL),
        "the default calendar is a calendar",
    );
    let privs = h
        .prop(CAL, NS_DAV, "current-user-privilege-set")
        .expect("privileges");
    let all = has_privilege(&privs, NS_DAV, "all");
    for p in ["write-content", "bind", "unbind"] {
        ensure(
            &h,
            all || has_privilege(&privs, NS_DAV, p),
            &format!("{p}: mayWriteContent/mayBind/mayUnbind"),
        );
    }
    let owner = h.prop(CAL, NS_DAV, "owner").map(|e| hrefs_in(&e));
    ensure(&h, owner == Some(vec![PRINCIPAL.to_owned()]), "owner");
}

/// SyncManager on a calendar: capabilities, uploads first (If-None-Match / If-Match, ETag
/// stored), sync-collection Depth 0 level 1, multiget in tens without Depth, incremental sync,
/// conflicts, the 403 restart, DAV:limit paging, and the PROPFIND_REPORT fallback query.
pub async fn davx5_collection_sync(s: &TestServer) {
    let dx = davx5(s);
    // Objects already on the server from elsewhere.
    for i in 0..20 {
        other_device_put(
            s,
            &format!("{CAL}srv-{i:02}.ics"),
            &event(&format!("srv-{i:02}"), "Srv"),
        )
        .await;
    }
    // D1. queryCapabilities.
    let r = ms(dx
        .xml(
            "PROPFIND",
            CAL,
            Some("0"),
            &dx_propfind("<supported-report-set /><sync-token /><CS:getctag /><CAL:max-resource-size /><CARD:max-resource-size />"),
        )
        .send()
        .await);
    ensure(
        &r,
        r.prop(CAL, NS_DAV, "supported-report-set")
            .is_some_and(|e| lists_report(&e, NS_DAV, "sync-collection")),
        "COLLECTION_SYNC needs sync-collection in supported-report-set",
    );
    assert_uri_token(&r.prop_text(CAL, NS_DAV, "sync-token"));
    ensure(
        &r,
        r.prop_text(CAL, NS_CALDAV, "max-resource-size")
            .parse::<u64>()
            .is_ok(),
        "max-resource-size is a number",
    );

    // D2. Local changes are uploaded first: new → If-None-Match: *, ETag stored.
    let mut local: BTreeMap<String, String> = BTreeMap::new();
    for (uid, ics) in [
        (
            "6f1d2c3b-aaaa-4bbb-8ccc-000000000001",
            davx5_event("6f1d2c3b-aaaa-4bbb-8ccc-000000000001", "Dentist"),
        ),
        (
            "6f1d2c3b-aaaa-4bbb-8ccc-000000000002",
            davx5_event("6f1d2c3b-aaaa-4bbb-8ccc-000000000002", "Gym"),
        ),
        (
            "6f1d2c3b-aaaa-4bbb-8ccc-000000000003",
            davx5_task("6f1d2c3b-aaaa-4bbb-8ccc-000000000003", "Taxes"),
        ),
    ] {
        let href = format!("{CAL}{uid}.ics");
        let r = dx
            .put(&href, DAVX5_ICS, &ics)
            .header("If-None-Match", "*")
            .send()
            .await;
        ensure(&r, r.status == 201, "created");
        local.insert(href, assert_strong_etag_header(&r));
    }

    // D4. Initial COLLECTION_SYNC.
    let mut cache = local.clone();
    let (t0, changed, removed, _) = dx_collection_sync(&dx, CAL, "", None, &mut cache).await;
    assert_eq!(changed.len(), 23, "every member");
    assert!(removed.is_empty());
    assert_eq!(cache.len(), 23);
    for (h, e) in &local {
        assert_eq!(
            &cache[h], e,
            "{h}: stored PUT ETag = listed getetag (no re-download)"
        );
    }

    // Local edit and delete, with the stored ETags; Push-Dont-Notify as when push is active.
    let (e1, e2) = {
        let mut it = local.keys();
        (it.next().unwrap().clone(), it.next().unwrap().clone())
    };
    let r = dx
        .put(
            &e1,
            DAVX5_ICS,
            &davx5_event("6f1d2c3b-aaaa-4bbb-8ccc-000000000001", "Dentist (moved)"),
        )
        .header("If-Match", &local[&e1])
        .header("Push-Dont-Notify", "\"https://push.example.net/sub/1\"")
        .send()
        .await;
    ensure(&r, matches!(r.status, 200 | 204), "update accepted");
    let e1_new = assert_strong_etag_header(&r);
    cache.insert(e1.clone(), e1_new.clone());
    let r = dx
        .req("DELETE", &e2)
        .header("If-Match", &local[&e2])
        .send()
        .await;
    ensure(&r, matches!(r.status, 200 | 204), "delete accepted");
    cache.remove(&e2);
    // Conflicts are 412 (ignored: the server wins and is re-downloaded).
    let r = dx
        .put(
            &e1,
            DAVX5_ICS,
            &davx5_event("6f1d2c3b-aaaa-4bbb-8ccc-000000000001", "Old"),
        )
        .header("If-Match", &local[&e1])
        .send()
        .await;
    ensure(&r, r.status == 412, "stale If-Match on PUT: 412");
    let srv0 = format!("{CAL}srv-00.ics");
    other_device_put(s, &srv0, &event("srv-00", "Srv changed")).await;
    let r = dx
        .req("DELETE", &srv0)
        .header("If-Match", &cache[&srv0])
        .send()
        .await;
    ensure(&r, r.status == 412, "stale If-Match on DELETE: 412");
    // Update of something deleted elsewhere: refused (412, or 404 → DAVx5 re-creates).
    let srv1 = format!("{CAL}srv-01.ics");
    other_device_delete(s, &srv1).await;
    let r = dx
        .put(&srv1, DAVX5_ICS, &event("srv-01", "Mine"))
        .header("If-Match", &cache[&srv1])
        .send()
        .await;
    ensure(
        &r,
        matches!(r.status, 404 | 412),
        "If-Match on a deleted object fails",
    );

    // Incremental sync: exactly what changed since t0 (own changes included, not re-fetched).
    let (t1, changed, removed, _) = dx_collection_sync(&dx, CAL, &t0, None, &mut cache).await;
    assert_eq!(changed, sorted(&[&e1, &srv0]));
    assert_eq!(removed, sorted(&[&e2, &srv1]));
    assert_eq!(cache[&e1], e1_new);
    assert_eq!(cache.len(), 21);

    // D4: an error naming valid-sync-token restarts as initial sync.
    let r = dx
        .xml(
            "REPORT",
            CAL,
            Some("0"),
            &dx_sync(&token_from_the_future(&t1), None),
        )
        .send()
        .await;
    assert_stale_token_refused(&r);
    let mut fresh = BTreeMap::new();
    let (t2, changed, _, _) = dx_collection_sync(&dx, CAL, "", None, &mut fresh).await;
    assert_eq!(changed.len(), 21);
    assert_eq!(fresh, cache, "a full resync yields the same state");

    // Paging with DAV:limit: DAVx5 loops while the collection is 507.
    for i in 0..9 {
        other_device_put(
            s,
            &format!("{CAL}pg-{i}.ics"),
            &event(&format!("pg-{i}"), "Pg"),
        )
        .await;
    }
    let (_, changed, _, rounds) = dx_collection_sync(&dx, CAL, &t2, Some(4), &mut cache).await;
    assert_eq!(changed.len(), 9);
    assert!(rounds >= 3, "9 changes in pages of 4: {rounds} rounds");
    assert_eq!(cache.len(), 30);

    // PROPFIND_REPORT (past-days limit): calendar-query Depth 1 with a start-only time-range.
    let q = format!(
        "{DX_HEAD}<CAL:calendar-query xmlns=\"DAV:\" xmlns:CAL=\"urn:ietf:params:xml:ns:caldav\"><prop><getetag /></prop><CAL:filter><CAL:comp-filter name=\"VCALENDAR\"><CAL:comp-filter name=\"VEVENT\"><CAL:time-range start=\"20240112T000000Z\" /></CAL:comp-filter></CAL:comp-filter></CAL:filter></CAL:calendar-query>"
    );
    let r = ms(dx.xml("REPORT", CAL, Some("1"), &q).send().await);
    // Only DAVx5's own events (Jan 15) are after the start; the srv-/pg- ones are on Jan 5.
    assert_eq!(r.hrefs(), vec![e1.clone()], "{}", dump(&r));
    assert!(is_strong_etag(&r.prop_text(&e1, NS_DAV, "getetag")));
    let tasks = format!(
        "{DX_HEAD}<CAL:calendar-query xmlns=\"DAV:\" xmlns:CAL=\"urn:ietf:params:xml:ns:caldav\"><prop><getetag /></prop><CAL:filter><CAL:comp-filter name=\"VCALENDAR\"><CAL:comp-filter name=\"VTODO\" /></CAL:comp-filter></CAL:filter></CAL:calendar-query>"
    );
    let r = ms(dx.xml("REPORT", CAL, Some("1"), &tasks).send().await);
    assert_eq!(
        r.hrefs(),
        vec![format!("{CAL}6f1d2c3b-aaaa-4bbb-8ccc-000000000003.ics")]
    );
}

/// "Create calendar" in DAVx5: MKCALENDAR with resourcetype inside, #RRGGBBAA colour,
/// calendar-timezone-id and calendar-timezone, a VTODO-only component set.
pub async fn davx5_creates_calendar(s: &TestServer) {
    let dx = davx5(s);
    let path = "/calendars/alice/3f2b9c1e-7a4d-4e8f-9b6a-1c2d3e4f5a6b/";
    let tz: String = VTZ_VIENNA.lines().map(|l| format!("{l}&#13;\n")).collect();
    let tz = format!(
        "BEGIN:VCALENDAR&#13;\nVERSION:2.0&#13;\nPRODID:+//IDN bitfire.at//DAVx5/4.4.3-ose ical4j/3.2.19&#13;\n{tz}END:VCALENDAR&#13;\n"
    );
    let body = format!(
        "{DX_HEAD}<CAL:mkcalendar xmlns=\"DAV:\" xmlns:CAL=\"urn:ietf:params:xml:ns:caldav\" xmlns:ICAL=\"http://apple.com/ns/ical/\"><set><prop><resourcetype><collection /><CAL:calendar /></resourcetype><displayname>Tasks</displayname><CAL:calendar-description>Things to do</CAL:calendar-description><ICAL:calendar-color>#FF5722FF</ICAL:calendar-color><CAL:calendar-timezone-id>Europe/Vienna</CAL:calendar-timezone-id><CAL:calendar-timezone>{tz}</CAL:calendar-timezone><CAL:supported-calendar-component-set><CAL:comp name=\"VTODO\" /></CAL:supported-calendar-component-set></prop></set></CAL:mkcalendar>"
    );
    let r = dx.xml("MKCALENDAR", path, None, &body).send().await;
    ensure(
        &r,
        r.status == 201,
        "MKCALENDAR with resourcetype inside is accepted",
    );

    let home_props = r#"<current-user-privilege-set /><displayname /><owner /><resourcetype /><ICAL:calendar-color /><CAL:calendar-description /><CAL:calendar-timezone /><CAL:calendar-timezone-id /><CAL:supported-calendar-component-set /><CS:source />"#;
    let h = ms(dx
        .xml("PROPFIND", HOME, Some("1"), &dx_propfind(home_props))
        .send()
        .await);
    ensure(&h, is_calendar(&h, path), "listed as a calendar");
    assert_eq!(h.prop_text(path, NS_DAV, "displayname"), "Tasks");
    assert_eq!(
        h.prop_text(path, NS_CALDAV, "calendar-description"),
        "Things to do"
    );
    assert_eq!(h.prop_text(path, NS_ICAL, "calendar-color"), "#FF5722FF");
    assert_eq!(
        h.prop_text(path, NS_CALDAV, "calendar-timezone-id"),
        "Europe/Vienna"
    );
    assert!(h
        .prop_text(path, NS_CALDAV, "calendar-timezone")
        .contains("TZID:Europe/Vienna"));
    assert_eq!(
        h.prop(path, NS_CALDAV, "supported-calendar-component-set")
            .map(|e| comps(&e)),
        Some(vec!["VTODO".to_owned()])
    );
    // An empty calendar: queries and sync answer an empty 207, never 404.
    let q = format!(
        "{DX_HEAD}<CAL:calendar-query xmlns=\"DAV:\" xmlns:CAL=\"urn:ietf:params:xml:ns:caldav\"><prop><getetag /></prop><CAL:filter><CAL:comp-filter name=\"VCALENDAR\"><CAL:comp-filter name=\"VTODO\" /></CAL:comp-filter></CAL:filter></CAL:calendar-query>"
    );
    let r = ms(dx.xml("REPORT", path, Some("1"), &q).send().await);
    ensure(&r, r.hrefs().is_empty(), "no members");
    let r = ms(dx
        .xml("REPORT", path, Some("0"), &dx_sync("", None))
        .send()
        .await);
    ensure(&r, r.hrefs().is_empty(), "no members");
    // Tasks go in; events are refused with the CalDAV precondition.
    let t = format!("{path}0b1c2d3e-0000-4000-8000-000000000001.ics");
    let r = dx
        .put(
            &t,
            DAVX5_ICS,
            &davx5_task("0b1c2d3e-0000-4000-8000-000000000001", "File taxes"),
        )
        .header("If-None-Match", "*")
        .send()
        .await;
    ensure(&r, r.status == 201, "a task");
    assert_strong_etag_header(&r);
    let r = dx
        .put(
            &format!("{path}ev.ics"),
            DAVX5_ICS,
            &davx5_event("ev-x", "No"),
        )
        .header("If-None-Match", "*")
        .send()
        .await;
    r.status(403)
        .precondition(NS_CALDAV, "supported-calendar-component");
    let mut cache = BTreeMap::new();
    let (_, changed, _, _) = dx_collection_sync(&dx, path, "", None, &mut cache).await;
    assert_eq!(changed, vec![t]);
}

// ---------------------------------------------------------------------------------------------
// Evolution (evolution-data-server, research §2.4)
// ---------------------------------------------------------------------------------------------

const EVO_UA: &str = "Evolution/3.52.4";
const EVO_ICS: &str = "text/calendar; charset=\"utf-8\"";

fn evolution(s: &TestServer) -> Client<'_> {
    Client {
        s,
        ua: EVO_UA,
        xml_type: "application/xml; charset=\"utf-8\"",
    }
}

fn evo_sync(token: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<D:sync-collection xmlns:D="DAV:"><D:sync-token>{}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#,
        escape(token)
    )
}

fn evo_multiget(hrefs: &[String]) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>{}</C:calendar-multiget>"#,
        href_elems("D:", hrefs, "")
    )
}

fn evo_query(range: Option<(&str, &str)>) -> String {
    let tr = range
        .map(|(a, b)| format!(r#"<C:time-range start="{a}" end="{b}"/>"#))
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">{tr}</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#
    )
}

/// Discovery, connect (OPTIONS calendar-access, privileges, ctag + reports), sync-collection
/// Depth 0, writes with quoted charset + return=minimal (strong ETag kept), escaped-quote
/// If-Match, Schedule-Reply: F delete, stale token retry, and the ctag/calendar-query fallback.
pub async fn evolution_discovery_and_sync(s: &TestServer) {
    let ev = evolution(s);
    // A. Discovery from the typed URL, following current-user-principal.
    let disc = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:prop><D:resourcetype/><D:current-user-principal/><D:principal-URL/><C:calendar-home-set/><C:calendar-user-address-set/><CR:addressbook-home-set/></D:prop></D:propfind>"#;
    let r = ms(ev.xml("PROPFIND", "/", Some("0"), disc).send().await);
    let cup = r
        .prop("/", NS_DAV, "current-user-principal")
        .map(|e| hrefs_in(&e))
        .unwrap_or_default();
    assert_eq!(cup, vec![PRINCIPAL.to_owned()]);
    let p = ms(ev.xml("PROPFIND", PRINCIPAL, Some("0"), disc).send().await);
    let homes = p
        .prop(PRINCIPAL, NS_CALDAV, "calendar-home-set")
        .map(|e| hrefs_in(&e))
        .unwrap_or_default();
    assert_eq!(homes, vec![HOME.to_owned()]);
    let listing = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/" xmlns:IC="http://apple.com/ns/ical/"><D:prop><D:resourcetype/><CS:source/><C:supported-calendar-component-set/><D:displayname/><D:getetag/><CS:getctag/><D:getcontenttype/><D:getcontentlength/><D:creationdate/><D:getlastmodified/><C:calendar-description/><IC:calendar-color/><IC:calendar-order/></D:prop></D:propfind>"#;
    let h = ms(ev.xml("PROPFIND", HOME, Some("1"), listing).send().await);
    ensure(&h, is_calendar(&h, CAL), "calendar found");
    let c = h
        .prop(CAL, NS_CALDAV, "supported-calendar-component-set")
        .map(|e| comps(&e))
        .unwrap_or_default();
    ensure(&h, c.iter().any(|x| x == "VEVENT"), "events source");
    // B. Connect.
    let o = ev.req("OPTIONS", CAL).send().await;
    ensure(
        &o,
        o.status == 200 && dav_tokens(&o).iter().any(|t| t == "calendar-access"),
        "\"Given URL doesn't reference CalDAV calendar\" without calendar-access",
    );
    let r = ms(ev
        .xml("PROPFIND", CAL, Some("0"), r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:current-user-privilege-set/></D:prop></D:propfind>"#)
        .send()
        .await);
    let privs = r
        .prop(CAL, NS_DAV, "current-user-privilege-set")
        .expect("privileges");
    ensure(
        &r,
        ["write", "write-content", "all"]
            .iter()
            .any(|p| has_privilege(&privs, NS_DAV, p)),
        "writable",
    );
    let r = ms(ev
        .xml("PROPFIND", CAL, Some("0"), r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><CS:getctag/><D:supported-report-set/></D:prop></D:propfind>"#)
        .send()
        .await);
    ensure(
        &r,
        r.prop(CAL, NS_DAV, "supported-report-set")
            .is_some_and(|e| lists_report(&e, NS_DAV, "sync-collection")),
        "supports_sync_collection",
    );
    let ctag0 = r.prop_text(CAL, NS_CS, "getctag");

    // C. Initial sync.
    let r = ms(ev.xml("REPORT", CAL, Some("0"), &evo_sync("")).send().await);
    let d0 = read_sync(&r, CAL, false);
    assert!(d0.changed.is_empty());
    assert!(
        d0.token.contains(':') || d0.token.contains('/'),
        "not taken for a ctag"
    );

    // D. Writes: <uid>.ics, quoted charset, return=minimal, If-None-Match.
    let uid1 = "20240110T090012Z-4242-1000-1-7@laptop";
    let uid2 = "20240110T090013Z-4242-1000-1-8@laptop";
    let h1 = format!("{CAL}{uid1}.ics");
    let h2 = format!("{CAL}{uid2}.ics");
    let mut etags = BTreeMap::new();
    let mut sent = BTreeMap::new();
    for (href, uid, date) in [
        (&h1, uid1, ("20240118", "20240119")),
        (&h2, uid2, ("20240119", "20240120")),
    ] {
        let ics = evo_event(uid, "Conference", date, 1);
        let r = ev
            .put(href, EVO_ICS, &ics)
            .header("Prefer", "return=minimal")
            .header("If-None-Match", "*")
            .send()
            .await;
        ensure(&r, matches!(r.status, 201 | 204), "created");
        etags.insert(href.clone(), assert_strong_etag_header(&r));
        sent.insert(href.clone(), ics);
    }
    let r = ms(ev
        .xml("REPORT", CAL, Some("0"), &evo_sync(&d0.token))
        .send()
        .await);
    let d1 = read_sync(&r, CAL, false);
    ensure(
        &r,
        d1.changed == sorted(&[&h1, &h2]),
        "hrefs come back exactly as Evolution wrote them",
    );
    for (h, e) in &etags {
        assert_eq!(&d1.etags[h], e, "{h}: the kept strong ETag is current");
    }
    let hrefs: Vec<String> = etags.keys().cloned().collect();
    let got = read_multiget(
        &ms(ev
            .xml("REPORT", CAL, Some("1"), &evo_multiget(&hrefs))
            .send()
            .await),
        &hrefs,
    );
    for h in &hrefs {
        assert_eq!(got[h].1, sent[h]);
    }

    // Update with the escaped-quote If-Match Evolution is known to send.
    let inner = etags[&h1].trim_matches('"').to_owned();
    let r = ev
        .put(
            &h1,
            EVO_ICS,
            &evo_event(uid1, "Conference (room 2)", ("20240118", "20240119"), 2),
        )
        .header("Prefer", "return=minimal")
        .header("If-Match", &format!("\\\"{inner}\\\""))
        .send()
        .await;
    ensure(
        &r,
        matches!(r.status, 200 | 204),
        "update with \\\"etag\\\" accepted",
    );
    let e1 = assert_strong_etag_header(&r);
    // OUT_OF_SYNC on a stale one.
    let r = ev
        .put(
            &h1,
            EVO_ICS,
            &evo_event(uid1, "Old", ("20240118", "20240119"), 2),
        )
        .header("If-Match", &etags[&h1])
        .send()
        .await;
    ensure(&r, r.status == 412, "stale If-Match is 412");
    // Delete without iTIP: Schedule-Reply: F.
    let r = ev
        .req("DELETE", &h2)
        .header("If-Match", &etags[&h2])
        .header("Schedule-Reply", "F")
        .send()
        .await;
    ensure(&r, matches!(r.status, 200 | 204), "delete accepted");
    let r = ms(ev
        .xml("REPORT", CAL, Some("0"), &evo_sync(&d1.token))
        .send()
        .await);
    let d2 = read_sync(&r, CAL, false);
    assert_eq!(d2.changed, vec![h1.clone()]);
    assert_eq!(d2.removed, vec![h2.clone()]);
    assert_eq!(d2.etags[&h1], e1);

    // A 403 containing valid-sync-token: retry with an empty token.
    let r = ev
        .xml(
            "REPORT",
            CAL,
            Some("0"),
            &evo_sync(&token_from_the_future(&d2.token)),
        )
        .send()
        .await;
    assert_stale_token_refused(&r);
    let r = ms(ev.xml("REPORT", CAL, Some("0"), &evo_sync("")).send().await);
    assert_eq!(read_sync(&r, CAL, false).changed, vec![h1.clone()]);

    // list_existing: calendar-query with Depth 0 on the collection means its members.
    let far = format!("{CAL}far-away@laptop.ics");
    other_device_put(
        s,
        &far,
        &evo_event("far-away@laptop", "Summer", ("20240601", "20240602"), 1),
    )
    .await;
    let r = ms(ev
        .xml("REPORT", CAL, Some("0"), &evo_query(None))
        .send()
        .await);
    let mut all = r.hrefs();
    all.sort();
    ensure(
        &r,
        all == sorted(&[&h1, &far]),
        "Depth 0 calendar-query lists the members",
    );
    // Fallback without sync: ctag changed, then ±35 days around "now", then unlimited.
    let r = ms(ev
        .xml("PROPFIND", CAL, Some("0"), r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><CS:getctag/></D:prop></D:propfind>"#)
        .send()
        .await);
    assert_ne!(r.prop_text(CAL, NS_CS, "getctag"), ctag0);
    let r = ms(ev
        .xml(
            "REPORT",
            CAL,
            Some("1"),
            &evo_query(Some(("20231206T000000Z", "20240214T000000Z"))),
        )
        .send()
        .await);
    assert_eq!(r.hrefs(), vec![h1.clone()], "{}", dump(&r));
    let r = ms(ev
        .xml("REPORT", CAL, Some("1"), &evo_query(None))
        .send()
        .await);
    assert_eq!(r.hrefs().len(), 2);
    for h in r.hrefs() {
        assert!(is_strong_etag(&r.prop_text(&h, NS_DAV, "getetag")));
    }
}

// ---------------------------------------------------------------------------------------------
// The server's own sync cap (a DbScenario: it needs its own configuration)
// ---------------------------------------------------------------------------------------------

/// With `limits.max_sync_results` small, a client that sends no DAV:limit gets 507-truncated
/// pages; Thunderbird (Depth 1), DAVx5 and Evolution (Depth 0) loop until they have everything.
pub async fn server_truncation_loops(db: &TestDb) {
    let mut config = Config::default();
    config.limits.max_sync_results = 4;
    let s = TestServer::start_with(db, config, true).await;
    for i in 0..10 {
        other_device_put(
            &s,
            &format!("{CAL}t-{i}.ics"),
            &event(&format!("t-{i}"), "T"),
        )
        .await;
    }
    let all: BTreeSet<String> = (0..10).map(|i| format!("{CAL}t-{i}.ics")).collect();
    let tb = thunderbird(&s);
    let mut cache = BTreeMap::new();
    let (t_tb, d) = tb_sync(&tb, CAL, "", &mut cache).await;
    assert_eq!(d.changed.iter().cloned().collect::<BTreeSet<_>>(), all);
    assert_eq!(cache.len(), 10);
    let dx = davx5(&s);
    let mut dcache = BTreeMap::new();
    let (t_dx, changed, _, rounds) = dx_collection_sync(&dx, CAL, "", None, &mut dcache).await;
    assert_eq!(changed.into_iter().collect::<BTreeSet<_>>(), all);
    assert!(rounds >= 3, "10 members with a cap of 4: {rounds} rounds");
    let ev = evolution(&s);
    let mut seen = BTreeSet::new();
    let mut token = String::new();
    for _ in 0..20 {
        let r = ms(ev
            .xml("REPORT", CAL, Some("0"), &evo_sync(&token))
            .send()
            .await);
        let d = read_sync(&r, CAL, false);
        ensure(&r, d.changed.len() <= 4, "no more than the cap");
        seen.extend(d.changed);
        token = d.token;
        if !d.truncated {
            break;
        }
    }
    assert_eq!(seen, all);
    // Incremental: six changes page through as well.
    for i in 0..5 {
        other_device_put(
            &s,
            &format!("{CAL}t-{i}.ics"),
            &event(&format!("t-{i}"), "T2"),
        )
        .await;
    }
    other_device_delete(&s, &format!("{CAL}t-9.ics")).await;
    let (_, d) = tb_sync(&tb, CAL, &t_tb, &mut cache).await;
    assert_eq!(d.changed.len(), 5);
    assert_eq!(d.removed, vec![format!("{CAL}t-9.ics")]);
    assert_eq!(cache.len(), 9);
    let (_, changed, removed, _) = dx_collection_sync(&dx, CAL, &t_dx, None, &mut dcache).await;
    assert_eq!(changed.len(), 5);
    assert_eq!(removed, vec![format!("{CAL}t-9.ics")]);
    s.stop().await;
}
