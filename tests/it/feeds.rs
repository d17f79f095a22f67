//! Feed links, export (GET on a calendar), import, and subscriptions to external feeds.

use crate::support::*;
use almanac::dav::xml::{NS_CALDAV, NS_DAV};
use almanac::ical::parse::{parse, Component};
use almanac::ical::write::to_string;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BERLIN: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";

fn cal(body: &str, with_zone: bool) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Almanac tests//EN\r\n{}{body}END:VCALENDAR\r\n",
        if with_zone { BERLIN } else { "" }
    )
}

/// The events of the feed tests: details that must never leak, and what must stay.
async fn seed_events(s: &TestServer) {
    let public = cal("BEGIN:VEVENT\r\nUID:public-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260302T100000\r\nDTEND;TZID=Europe/Berlin:20260302T110000\r\nSUMMARY:Team standup\r\nLOCATION:Room 4\r\nORGANIZER;CN=Alice:mailto:alice@example.com\r\nATTENDEE;CN=Carol;PARTSTAT=ACCEPTED:mailto:carol@example.net\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:Standup alarm\r\nEND:VALARM\r\nEND:VEVENT\r\n", true);
    let private = cal("BEGIN:VEVENT\r\nUID:private-1@clinic.example\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260303T090000\r\nDTEND;TZID=Europe/Berlin:20260303T100000\r\nCLASS:PRIVATE\r\nSUMMARY:Secret diagnosis\r\nDESCRIPTION:Bring the X-ray results\r\nLOCATION:Clinic Street 5\r\nATTENDEE;CN=Dr Who:mailto:doctor@clinic.example\r\nEND:VEVENT\r\n", true);
    let confidential = cal("BEGIN:VEVENT\r\nUID:conf-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260304T120000Z\r\nDTEND:20260304T130000Z\r\nCLASS:CONFIDENTIAL\r\nSUMMARY:Salary talk\r\nEND:VEVENT\r\n", false);
    let free = cal("BEGIN:VEVENT\r\nUID:free-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260305T120000Z\r\nDTEND:20260305T130000Z\r\nTRANSP:TRANSPARENT\r\nSUMMARY:Optional webinar\r\nEND:VEVENT\r\n", false);
    let series = cal("BEGIN:VEVENT\r\nUID:series-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260302T140000\r\nDTEND;TZID=Europe/Berlin:20260302T150000\r\nRRULE:FREQ=WEEKLY;COUNT=10\r\nSUMMARY:Weekly review\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:series-1\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260309T140000\r\nDTSTART;TZID=Europe/Berlin:20260309T160000\r\nDTEND;TZID=Europe/Berlin:20260309T170000\r\nSUMMARY:Weekly review (moved)\r\nEND:VEVENT\r\n", true);
    let old = cal("BEGIN:VEVENT\r\nUID:old-1\r\nDTSTAMP:20200101T000000Z\r\nDTSTART:20200105T100000Z\r\nDTEND:20200105T110000Z\r\nSUMMARY:Long ago\r\nEND:VEVENT\r\n", false);
    for (name, body) in [
        ("public.ics", public),
        ("private.ics", private),
        ("conf.ics", confidential),
        ("free.ics", free),
        ("series.ics", series),
        ("old.ics", old),
    ] {
        s.req("PUT", &format!("{CAL}{name}"))
            .ics(&body)
            .send()
            .await
            .status(201);
    }
}

/// Creates a feed over the owner's API; returns (id, path of the link).
async fn create_feed(s: &TestServer, json: &str) -> (i64, String) {
    let r = s
        .req("POST", "/api/feeds")
        .header("Content-Type", "application/json")
        .body(json.to_owned())
        .send()
        .await;
    r.status(201);
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON answer");
    let url = v["url"].as_str().expect("url").to_owned();
    let webcal = v["webcal_url"].as_str().expect("webcal_url");
    assert!(webcal.starts_with("webcal://") && url.starts_with("http://"));
    assert_eq!(
        webcal.split_once("://").unwrap().1,
        url.split_once("://").unwrap().1
    );
    let path = format!("/feeds/{}", url.rsplit_once("/feeds/").unwrap().1);
    (v["id"].as_i64().expect("id"), path)
}

fn components(text: &str) -> Vec<Component> {
    let tops = parse(text).unwrap_or_else(|e| panic!("feed does not parse: {e}\n{text}"));
    assert_eq!(tops.len(), 1, "one VCALENDAR");
    assert_eq!(tops[0].name, "VCALENDAR");
    tops[0].children.clone()
}

pub async fn feed_links_hide_private_details(s: &TestServer) {
    seed_events(s).await;
    let (full_id, full) = create_feed(s, r#"{"calendar": "default", "mode": "full"}"#).await;
    let r = s.req_as(None, "GET", &full).send().await;
    r.status(200)
        .has_header("content-type", "text/calendar; charset=utf-8");
    let etag = r.header("etag").expect("ETag").to_owned();
    assert!(etag.starts_with('"'), "strong ETag: {etag}");
    let modified = r.header("last-modified").expect("Last-Modified").to_owned();
    let body = r.body.clone();
    for needed in [
        "X-WR-CALNAME:",
        "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        "X-PUBLISHED-TTL:PT1H",
        "SUMMARY:Team standup",
        "LOCATION:Room 4",
        "CN=Carol",
        "SUMMARY:Weekly review (moved)",
        "SUMMARY:Long ago",
    ] {
        assert!(
            body.contains(needed),
            "{needed} missing from the feed:\n{body}"
        );
    }
    for secret in [
        "Secret diagnosis",
        "X-ray",
        "Clinic Street",
        "doctor@clinic.example",
        "Dr Who",
        "Salary talk",
        "carol@example.net",
        "alice@example.com",
        "Standup alarm",
        "VALARM",
    ] {
        assert!(
            !body.contains(secret),
            "{secret:?} leaked into the feed:\n{body}"
        );
    }
    let comps = components(&body);
    let zones = comps.iter().filter(|c| c.name == "VTIMEZONE").count();
    assert_eq!(zones, 1, "Europe/Berlin once, though three events use it");
    let first_event = comps.iter().position(|c| c.name == "VEVENT").unwrap();
    assert!(comps[..first_event].iter().any(|c| c.name == "VTIMEZONE"));
    assert_eq!(comps.iter().filter(|c| c.name == "VEVENT").count(), 7);
    let busy_count = comps
        .iter()
        .filter(|c| c.prop("SUMMARY").is_some_and(|p| p.value == "Busy"))
        .count();
    assert_eq!(busy_count, 2, "the private and the confidential event");

    // Conditional requests and HEAD.
    s.req_as(None, "GET", &full)
        .header("If-None-Match", &etag)
        .send()
        .await
        .status(304);
    s.req_as(None, "GET", &full)
        .header("If-Modified-Since", &modified)
        .send()
        .await
        .status(304);
    let head = s.req_as(None, "HEAD", &full).send().await;
    head.status(200);
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert!(head.body.is_empty());
    s.req_as(None, "POST", &full).send().await.status(405);

    // A change gives a new ETag, and the old one no longer matches.
    s.req("PUT", &format!("{CAL}new.ics"))
        .ics(&event("new-1", "Added later"))
        .send()
        .await
        .status(201);
    let r = s
        .req_as(None, "GET", &full)
        .header("If-None-Match", &etag)
        .send()
        .await;
    r.status(200);
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    assert!(r.body.contains("SUMMARY:Added later"));

    // Busy mode: times only.
    let (_, busy) = create_feed(s, r#"{"calendar": "default", "mode": "busy"}"#).await;
    let r = s.req_as(None, "GET", &busy).send().await;
    r.status(200);
    let comps = components(&r.body);
    let events: Vec<&Component> = comps.iter().filter(|c| c.name == "VEVENT").collect();
    // The transparent event is left out; the override stays with its series.
    assert_eq!(events.len(), 7, "{}", r.body);
    for e in &events {
        assert_eq!(e.prop("SUMMARY").map(|p| p.value.as_str()), Some("Busy"));
        for p in &e.props {
            assert!(
                [
                    "UID",
                    "DTSTAMP",
                    "DTSTART",
                    "DTEND",
                    "DURATION",
                    "RRULE",
                    "RDATE",
                    "EXDATE",
                    "RECURRENCE-ID",
                    "SEQUENCE",
                    "TRANSP",
                    "STATUS",
                    "SUMMARY"
                ]
                .contains(&p.name.as_str()),
                "busy feed shows {}",
                p.name
            );
        }
    }
    for secret in [
        "Team standup",
        "private-1@clinic.example",
        "Optional webinar",
        "Room 4",
    ] {
        assert!(!r.body.contains(secret), "{secret:?} in the busy feed");
    }
    let series_uids: std::collections::HashSet<&str> = events
        .iter()
        .filter(|e| e.prop("RRULE").is_some() || e.prop("RECURRENCE-ID").is_some())
        .map(|e| e.prop("UID").unwrap().value.as_str())
        .collect();
    assert_eq!(
        series_uids.len(),
        1,
        "the override keeps its series' (hashed) UID"
    );

    // Opt-ins and the window.
    let (_, optin) = create_feed(
        s,
        r#"{"calendar": "default", "include_alarms": true, "include_emails": true, "window_days": 400}"#,
    )
    .await;
    let r = s.req_as(None, "GET", &optin).send().await;
    r.status(200);
    assert!(r.body.contains("carol@example.net") && r.body.contains("BEGIN:VALARM"));
    assert!(
        !r.body.contains("Long ago"),
        "ended years ago: outside the window"
    );
    assert!(!r.body.contains("Secret diagnosis") && !r.body.contains("doctor@clinic"));

    // The owner's list, and what others can do.
    let list = s.req("GET", "/api/feeds").send().await;
    list.status(200);
    let v: serde_json::Value = serde_json::from_str(&list.body).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(3));
    assert!(
        !list.body.contains("/feeds/"),
        "tokens are not stored, so not listed"
    );
    s.req_as(Some(BOB), "GET", "/api/feeds")
        .send()
        .await
        .status(200);
    s.req_as(Some(BOB), "DELETE", &format!("/api/feeds/{full_id}"))
        .send()
        .await
        .status(404);
    s.req_as(None, "GET", "/api/feeds").send().await.status(401);
    let r = s
        .req_as(Some(BOB), "POST", "/api/feeds")
        .header("Content-Type", "application/json")
        .body(r#"{"calendar": "default", "mode": "full"}"#)
        .send()
        .await;
    r.status(201);
    s.req("POST", "/api/feeds")
        .header("Content-Type", "application/json")
        .body(r#"{"calendar": "nope"}"#)
        .send()
        .await
        .status(404);
    s.req("POST", "/api/feeds")
        .header("Content-Type", "application/json")
        .body(r#"{"calendar": "default", "mode": "everything"}"#)
        .send()
        .await
        .status(400);
    s.req("POST", "/api/feeds")
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .status(400);
    s.req("POST", "/api/feeds")
        .body(r#"{"calendar": "default"}"#)
        .send()
        .await
        .status(415);

    // Revoked: 404 at once. Unknown and malformed tokens: 404.
    s.req("DELETE", &format!("/api/feeds/{full_id}"))
        .send()
        .await
        .status(204);
    s.req_as(None, "GET", &full).send().await.status(404);
    s.req("DELETE", &format!("/api/feeds/{full_id}"))
        .send()
        .await
        .status(404);
    s.req_as(None, "GET", "/feeds/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.ics")
        .send()
        .await
        .status(404);
    s.req_as(None, "GET", "/feeds/..%2f..%2fetc.ics")
        .send()
        .await
        .status(404);
    s.req_as(None, "GET", "/feeds/short.ics")
        .send()
        .await
        .status(404);
}

pub async fn get_on_a_calendar_exports_it(s: &TestServer) {
    seed_events(s).await;
    let r = s.req("GET", CAL).send().await;
    r.status(200)
        .has_header("content-type", "text/calendar; charset=utf-8");
    let comps = components(&r.body);
    assert_eq!(comps.iter().filter(|c| c.name == "VEVENT").count(), 7);
    assert!(r.body.contains("Secret diagnosis") && r.body.contains("BEGIN:VALARM"));
    assert!(
        !r.body.contains("METHOD:"),
        "an export is not an iTIP message"
    );
    let etag = r.header("etag").unwrap().to_owned();
    s.req("GET", CAL)
        .header("If-None-Match", &etag)
        .send()
        .await
        .status(304);
    let head = s.req("HEAD", CAL).send().await;
    head.status(200);
    assert!(head.body.is_empty());
    s.req("DELETE", &format!("{CAL}old.ics"))
        .send()
        .await
        .status(204);
    let r = s.req("GET", CAL).send().await;
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    assert!(!r.body.contains("Long ago"));
    // Another user learns nothing.
    s.req_as(Some(BOB), "GET", CAL).send().await.status(404);
    s.req_as(Some(BOB), "GET", "/calendars/alice/nothing/")
        .send()
        .await
        .status(404);
    let allow = s.req("OPTIONS", CAL).send().await;
    assert!(allow.header("allow").unwrap().contains("GET"));
}

/// A file of 5,000 events: single events in two zones, all-day events, recurring series with
/// EXDATEs and overrides, a to-do the calendar does not take, and broken components.
fn big_file() -> (String, usize) {
    let mut s = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Big export//EN\r\nMETHOD:PUBLISH\r\nX-WR-CALNAME:Big\r\n");
    s.push_str(BERLIN);
    s.push_str("BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\nBEGIN:STANDARD\r\nDTSTART:19701101T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700308T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n");
    let mut uids = 0;
    let mut overrides = Vec::new();
    for i in 0..5000 {
        let day = 1 + i % 28;
        let month = 1 + (i / 28) % 12;
        let tz = if i % 2 == 0 {
            "Europe/Berlin"
        } else {
            "America/New_York"
        };
        let uid = format!("big-{i}@example.com");
        if i % 10 == 0 {
            s.push_str(&format!("BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID={tz}:2026{month:02}{day:02}T090000\r\nDTEND;TZID={tz}:2026{month:02}{day:02}T100000\r\nRRULE:FREQ=WEEKLY;COUNT=8\r\nEXDATE;TZID={tz}:2026{month:02}{day:02}T090000\r\nSUMMARY:Series {i}\r\nEND:VEVENT\r\n"));
            // Overrides come later in the file, away from their master.
            overrides.push(format!("BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID={tz}:2026{month:02}{day:02}T090000\r\nDTSTART;TZID={tz}:2026{month:02}{day:02}T113000\r\nDTEND;TZID={tz}:2026{month:02}{day:02}T123000\r\nSUMMARY:Series {i}\\, moved\r\nEND:VEVENT\r\n"));
        } else if i % 20 == 1 {
            s.push_str(&format!("BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:2026{month:02}{day:02}\r\nSUMMARY:Holiday {i}\r\nEND:VEVENT\r\n"));
        } else {
            s.push_str(&format!("BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID={tz}:2026{month:02}{day:02}T{:02}0000\r\nDURATION:PT45M\r\nSUMMARY:Meeting {i}\r\nDESCRIPTION:Agenda: item one\\nitem two\r\nATTENDEE;CN=\"Doe, Jane\":mailto:jane{i}@example.com\r\nEND:VEVENT\r\n", 8 + i % 9));
        }
        uids += 1;
    }
    for o in overrides {
        s.push_str(&o);
    }
    s.push_str("BEGIN:VTODO\r\nUID:todo-1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Not here\r\nEND:VTODO\r\n");
    s.push_str("BEGIN:VEVENT\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260101T000000Z\r\nSUMMARY:No UID\r\nEND:VEVENT\r\n");
    s.push_str("BEGIN:VEVENT\r\nUID:bad-date\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:2026-13-45\r\nEND:VEVENT\r\n");
    s.push_str("END:VCALENDAR\r\n");
    (s, uids)
}

/// UID → its components, each as canonical text, sorted.
fn by_uid(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for top in parse(text).expect("parses") {
        for c in top.children {
            if matches!(c.name.as_str(), "VEVENT" | "VTODO" | "VJOURNAL") {
                if let Some(uid) = c.prop("UID").map(|p| p.value.clone()) {
                    m.entry(uid).or_default().push(to_string(&c));
                }
            }
        }
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

pub async fn import_then_export_round_trips(s: &TestServer) {
    let (file, uids) = big_file();
    let alice = s.store.principal_by_name("alice").await.unwrap().unwrap();
    // A calendar for events only, so the file's VTODO has nowhere to go.
    let new = almanac::store::NewCalendar {
        name: "big".into(),
        components: vec![almanac::ical::ComponentKind::Event],
        ..Default::default()
    };
    let c = s.store.create_calendar(alice.id, &new).await.unwrap();
    let big = "/calendars/alice/big/";
    // Revisions come from the owner's counter, kept on the home.
    let before = s.store.home(alice.id).await.unwrap().revision;
    let report = almanac::import::import(s.store.as_ref(), &c, &file, 10 << 20, 1 << 30)
        .await
        .expect("import");
    assert_eq!(report.imported, uids, "skipped: {:?}", report.skipped);
    let reasons: Vec<String> = report
        .skipped
        .iter()
        .map(|k| format!("{}: {}", k.what, k.reason))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].starts_with("todo-1: the calendar does not accept VTODO"));
    assert!(reasons[1].contains("no UID"));
    assert!(reasons[2].starts_with("bad-date: "));
    let after = s.store.home(alice.id).await.unwrap().revision;
    assert_eq!(
        after - before,
        uids as i64,
        "one change per resource, one transaction"
    );
    let c = s.store.calendar(alice.id, "big").await.unwrap().unwrap();
    assert_eq!(c.revision, after);

    let export = s.req("GET", big).send().await;
    export.status(200);
    let mut expected = by_uid(&file);
    expected.remove("todo-1");
    expected.remove("bad-date");
    let got = by_uid(&export.body);
    assert_eq!(got.len(), uids);
    assert!(got == expected, "export differs from the imported file");
    let comps = components(&export.body);
    assert_eq!(comps.iter().filter(|c| c.name == "VTIMEZONE").count(), 2);
    // A series and its override live in one resource.
    let r = s
        .req("GET", &format!("{big}big-0@example.com.ics"))
        .send()
        .await;
    r.status(200);
    assert_eq!(r.body.matches("BEGIN:VEVENT").count(), 2);

    // Importing again changes nothing and says why.
    let again = almanac::import::import(s.store.as_ref(), &c, &file, 10 << 20, 1 << 30)
        .await
        .unwrap();
    assert_eq!(again.imported, 0);
    assert!(again
        .skipped
        .iter()
        .any(|k| k.what == "big-7@example.com" && k.reason.contains("already in the calendar")));
    // Not iCalendar at all: an error, nothing written.
    assert!(almanac::import::import(
        s.store.as_ref(),
        &c,
        "BEGIN:VCALENDAR\r\nno end",
        1 << 20,
        1 << 30
    )
    .await
    .is_err());
}

/// A source feed the test controls: what it serves and how it fails.
#[derive(Clone, Default)]
struct Source {
    inner: Arc<Mutex<SourceState>>,
}

#[derive(Default)]
struct SourceState {
    body: String,
    version: u32,
    mode: SourceMode,
    requests: u32,
    conditional_hits: u32,
}

#[derive(Default, Clone, Copy, PartialEq)]
enum SourceMode {
    #[default]
    Ok,
    Fail,
    Hang,
}

impl Source {
    fn set(&self, body: String) {
        let mut st = self.inner.lock().unwrap();
        st.body = body;
        st.version += 1;
    }
    fn mode(&self, m: SourceMode) {
        self.inner.lock().unwrap().mode = m;
    }
    fn requests(&self) -> u32 {
        self.inner.lock().unwrap().requests
    }
    fn conditional_hits(&self) -> u32 {
        self.inner.lock().unwrap().conditional_hits
    }

    async fn serve(self) -> std::net::SocketAddr {
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let src = self.clone();
        let app = axum::Router::new().route(
            "/cal.ics",
            axum::routing::get(move |headers: HeaderMap| {
                let src = src.clone();
                async move {
                    let (mode, body, etag) = {
                        let mut st = src.inner.lock().unwrap();
                        st.requests += 1;
                        (st.mode, st.body.clone(), format!("\"v{}\"", st.version))
                    };
                    match mode {
                        SourceMode::Fail => {
                            return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()
                        }
                        SourceMode::Hang => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                        }
                        SourceMode::Ok => {}
                    }
                    if headers
                        .get("if-none-match")
                        .is_some_and(|v| v.to_str().unwrap_or("") == etag)
                    {
                        src.inner.lock().unwrap().conditional_hits += 1;
                        return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
                    }
                    (
                        StatusCode::OK,
                        [
                            ("content-type", "text/calendar".to_string()),
                            ("etag", etag),
                        ],
                        body,
                    )
                        .into_response()
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }
}

fn source_feed(events: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Source//EN\r\nMETHOD:PUBLISH\r\n",
    );
    s.push_str(BERLIN);
    for (uid, summary) in events {
        s.push_str(&format!("BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260310T100000\r\nDTEND;TZID=Europe/Berlin:20260310T110000\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\n"));
    }
    s.push_str("END:VCALENDAR\r\n");
    s
}

/// Polls until `cond` holds; the deadline only bounds a hung test, it measures nothing.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn subscriptions_follow_their_source(db: &TestDb) {
    let mut config = almanac::config::Config::default();
    config.subscriptions.poll_seconds = 1;
    config.subscriptions.timeout_seconds = 2;
    let s = TestServer::start_with(db, config, true).await;
    let src = Source::default();
    src.set(source_feed(&[("a@src", "Alpha"), ("b@src", "Bravo")]));
    let addr = src.clone().serve().await;
    let alice = s.store.principal_by_name("alice").await.unwrap().unwrap();
    let new = almanac::store::NewCalendar {
        name: "holidays".into(),
        displayname: Some("Holidays".into()),
        components: vec![almanac::ical::ComponentKind::Event],
        ..Default::default()
    };
    let c = s
        .store
        .create_subscription(alice.id, &new, &format!("http://{addr}/cal.ics"), 2)
        .await
        .unwrap();
    assert!(c.read_only);
    let sub_cal = "/calendars/alice/holidays/";
    let members = |s: &TestServer| {
        let req = s.req("PROPFIND", sub_cal).depth("1");
        async move {
            let r = req.send().await;
            let mut h: Vec<String> = r
                .hrefs()
                .into_iter()
                .filter(|h| h.ends_with(".ics"))
                .collect();
            h.sort();
            h
        }
    };
    eventually("first refresh", || async { members(&s).await.len() == 2 }).await;
    let r = s.req("GET", &format!("{sub_cal}a@src.ics")).send().await;
    r.status(200);
    assert!(r.body.contains("SUMMARY:Alpha") && r.body.contains("TZID:Europe/Berlin"));
    let token = s
        .req("REPORT", sub_cal)
        .xml(r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#)
        .send()
        .await
        .sync_token();

    // Unchanged source: a conditional GET answered 304, nothing rewritten.
    eventually("a 304 refresh", || async { src.conditional_hits() >= 1 }).await;
    let subs = s.store.subscriptions(Some(alice.id)).await.unwrap();
    eventually("304 recorded", || async {
        s.store.subscriptions(Some(alice.id)).await.unwrap()[0]
            .last_status
            .as_deref()
            == Some("not modified (304)")
    })
    .await;
    assert_eq!(subs.len(), 1);

    // The source changes: one edited, one removed, one added.
    src.set(source_feed(&[("a@src", "Alpha v2"), ("c@src", "Charlie")]));
    eventually("the change arrives", || async {
        members(&s).await == vec![format!("{sub_cal}a@src.ics"), format!("{sub_cal}c@src.ics")]
    })
    .await;
    let delta = s
        .req("REPORT", sub_cal)
        .xml(&format!(r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#))
        .send()
        .await;
    delta.status(207);
    let mut changed = delta.hrefs();
    changed.sort();
    assert_eq!(
        changed,
        vec![
            format!("{sub_cal}a@src.ics"),
            format!("{sub_cal}b@src.ics"),
            format!("{sub_cal}c@src.ics"),
        ]
    );
    assert_eq!(
        delta.response_status(&format!("{sub_cal}b@src.ics")),
        Some(404)
    );

    // Read-only for CalDAV clients, with the privilege that is missing.
    let put = s
        .req("PUT", &format!("{sub_cal}mine.ics"))
        .ics(&event("mine", "Mine"))
        .send()
        .await;
    put.status(403).precondition(NS_DAV, "need-privileges");
    assert!(put.body.contains("bind"));
    s.req("PUT", &format!("{sub_cal}a@src.ics"))
        .ics(&event("a@src", "Overwrite"))
        .send()
        .await
        .status(403)
        .precondition(NS_DAV, "need-privileges");
    s.req("DELETE", &format!("{sub_cal}a@src.ics"))
        .send()
        .await
        .status(403);
    s.req("MOVE", &format!("{sub_cal}a@src.ics"))
        .header("Destination", &s.url(&format!("{CAL}moved.ics")))
        .send()
        .await
        .status(403);
    s.req("PUT", &format!("{CAL}x.ics"))
        .ics(&event("x", "x"))
        .send()
        .await
        .status(201);
    s.req("COPY", &format!("{CAL}x.ics"))
        .header("Destination", &s.url(&format!("{sub_cal}x.ics")))
        .send()
        .await
        .status(403);
    let privs = s
        .req("PROPFIND", sub_cal)
        .depth("0")
        .xml(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-privilege-set/></D:prop></D:propfind>"#)
        .send()
        .await;
    assert!(
        privs.body.contains("read")
            && !privs.body.contains(":bind")
            && !privs.body.contains(":write-content")
    );
    // Its events count for free/busy.
    let fb = s
        .req("REPORT", sub_cal)
        .xml(r#"<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="20260310T000000Z" end="20260311T000000Z"/></C:free-busy-query>"#)
        .send()
        .await;
    fb.status(200);
    assert!(
        fb.body.contains("FREEBUSY") && fb.body.contains("20260310T090000Z/"),
        "{}",
        fb.body
    );
    let _ = NS_CALDAV;

    // Errors are recorded for the owner; the last good copy stays.
    src.mode(SourceMode::Fail);
    eventually("the 500 is recorded", || async {
        let sub = &s.store.subscriptions(Some(alice.id)).await.unwrap()[0];
        sub.last_error.as_deref().is_some_and(|e| e.contains("500"))
    })
    .await;
    assert_eq!(members(&s).await.len(), 2, "a failed fetch removes nothing");
    src.mode(SourceMode::Hang);
    eventually("the timeout is recorded", || async {
        let sub = &s.store.subscriptions(Some(alice.id)).await.unwrap()[0];
        sub.last_error
            .as_deref()
            .is_some_and(|e| e.contains("timed out"))
    })
    .await;
    src.mode(SourceMode::Ok);
    src.set("this is not a calendar".into());
    eventually("a broken feed is an error", || async {
        let sub = &s.store.subscriptions(Some(alice.id)).await.unwrap()[0];
        sub.last_error
            .as_deref()
            .is_some_and(|e| e.contains("not an iCalendar feed"))
    })
    .await;
    assert_eq!(members(&s).await.len(), 2);
    src.set(source_feed(&[("d@src", "Delta")]));
    eventually("recovery", || async {
        members(&s).await == vec![format!("{sub_cal}d@src.ics")]
    })
    .await;
    assert!(src.requests() >= 5);
    // Removing the subscription removes its calendar and its refreshes.
    s.req("DELETE", sub_cal).send().await.status(204);
    assert!(s
        .store
        .subscriptions(Some(alice.id))
        .await
        .unwrap()
        .is_empty());
    s.stop().await;
}

/// The command line: import, export, feed create/list/revoke, subscribe/list, against a
/// running server on the same database.
pub async fn command_line_round_trip(db: &TestDb) {
    let s = TestServer::start(db).await;
    let bin = env!("CARGO_BIN_EXE_almanac");
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .env("ALMANAC_DATABASE_URL", &db.url)
            .env("ALMANAC_PUBLIC_URL", format!("http://{}", s.addr))
            .env_remove("ALMANAC_LISTEN")
            .output()
            .expect("run almanac");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let file = dir.path().join("in.ics");
    let input = cal(
        "BEGIN:VEVENT\r\nUID:cli-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260302T100000\r\nSUMMARY:From the CLI\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nSUMMARY:no uid\r\nDTSTART:20260302T100000Z\r\nEND:VEVENT\r\n",
        true,
    );
    std::fs::write(&file, &input).unwrap();
    let (ok, out, err) = run(&["import", "alice", "default", file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("imported 1 resources") && out.contains("skipped 1"),
        "{out}"
    );
    assert!(err.contains("no UID"), "{err}");
    let (ok, out, err) = run(&["export", "alice", "default"]);
    assert!(ok, "{err}");
    assert!(out.contains("SUMMARY:From the CLI") && out.starts_with("BEGIN:VCALENDAR"));
    let (ok, _, err) = run(&["import", "alice", "nope", file.to_str().unwrap()]);
    assert!(!ok && err.contains("no calendar"), "{err}");

    let (ok, out, err) = run(&["feed", "create", "alice", "default", "--mode", "busy"]);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    let url = lines.next().unwrap().to_owned();
    let webcal = lines.next().unwrap();
    assert!(url.starts_with(&format!("http://{}/feeds/", s.addr)) && url.ends_with(".ics"));
    assert!(webcal.starts_with("webcal://"));
    let path = url.split_once(&s.addr.to_string()).unwrap().1.to_owned();
    let r = s.req_as(None, "GET", &path).send().await;
    r.status(200);
    assert!(r.body.contains("SUMMARY:Busy") && !r.body.contains("From the CLI"));
    let (ok, out, _) = run(&["feed", "list", "alice"]);
    assert!(ok && out.contains("busy") && !out.contains(&url));
    let id = out
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_owned();
    let (ok, _, _) = run(&["feed", "revoke", "bob", &id]);
    assert!(!ok, "bob cannot revoke alice's feed");
    let (ok, out, _) = run(&["feed", "revoke", "alice", &id]);
    assert!(ok && out.contains("revoked"));
    s.req_as(None, "GET", &path).send().await.status(404);

    // Subscribing to a URL that fails: created, and the error is shown.
    let (ok, out, err) = run(&[
        "subscribe",
        "alice",
        "broken",
        "http://127.0.0.1:9/nothing.ics",
        "--every",
        "1h",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("first fetch failed"), "{out}");
    let (ok, out, _) = run(&["subscribe", "list", "alice"]);
    assert!(
        ok && out.contains("alice/broken") && out.contains("could not connect"),
        "{out}"
    );
    let (ok, _, err) = run(&["subscribe", "alice", "bad", "file:///etc/passwd"]);
    assert!(!ok && err.contains("unsupported URL scheme"), "{err}");
    let (ok, out, _) = run(&["subscribe", "remove", "alice", "broken"]);
    assert!(ok && out.contains("removed"));
    let (ok, _, err) = run(&["subscribe", "remove", "alice", "default"]);
    assert!(!ok && err.contains("not a subscription"), "{err}");
    s.stop().await;
}
