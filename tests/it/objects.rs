//! Calendar object resources: PUT/GET/DELETE with strong ETags and preconditions, validation,
//! COPY/MOVE, multiget, restarts.

use crate::support::*;
use almanac::dav::xml::{NS_CALDAV, NS_DAV};

const OBJ: &str = "/calendars/alice/default/meeting.ics";

pub async fn put_get_round_trip_with_strong_etags(s: &TestServer) {
    // Unknown properties, parameters, LF line endings and folding survive byte-exact.
    let ics = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//x//y//EN\nX-WR-CALNAME:Mine\nBEGIN:VEVENT\nUID:rt-1\nDTSTAMP:20240101T000000Z\nDTSTART;TZID=Europe/Berlin:20240105T100000\nSUMMARY;X-FOO=\"a;b\":Long summary that is\n  folded here\nX-CUSTOM;X-P=1:kept\nEND:VEVENT\nEND:VCALENDAR\n";
    let put = s
        .req("PUT", OBJ)
        .header("If-None-Match", "*")
        .ics(ics)
        .send()
        .await;
    put.status(201);
    let etag = put.header("etag").expect("strong ETag on PUT").to_owned();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    let get = s.req("GET", OBJ).send().await;
    get.status(200).has_header("content-type", "text/calendar");
    assert_eq!(get.body, ics, "stored bytes are returned unchanged");
    assert_eq!(get.header("etag"), Some(etag.as_str()));
    assert!(get.header("last-modified").is_some());
    let head = s.req("HEAD", OBJ).send().await;
    head.status(200);
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert!(head.body.is_empty());
    // Conditional GET.
    s.req("GET", OBJ)
        .header("If-None-Match", &etag)
        .send()
        .await
        .status(304);
    // Object names with characters that need escaping.
    let odd = "/calendars/alice/default/a%20b%40c.ics";
    s.req("PUT", odd)
        .ics(&event("odd", "Odd"))
        .send()
        .await
        .status(201);
    let r = s
        .req("PROPFIND", CAL)
        .depth("1")
        .xml(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#)
        .send()
        .await;
    assert!(
        r.hrefs()
            .contains(&"/calendars/alice/default/a%20b@c.ics".to_string()),
        "{:?}",
        r.hrefs()
    );
    s.req("GET", "/calendars/alice/default/a%20b@c.ics")
        .send()
        .await
        .status(200);
}

pub async fn conditional_writes(s: &TestServer) {
    let v1 = event("cw", "v1");
    let e1 = s
        .req("PUT", OBJ)
        .header("If-None-Match", "*")
        .ics(&v1)
        .send()
        .await
        .status(201)
        .header("etag")
        .unwrap()
        .to_owned();
    // Create-only on an existing resource: 412, nothing changed.
    s.req("PUT", OBJ)
        .header("If-None-Match", "*")
        .ics(&event("cw", "other"))
        .send()
        .await
        .status(412);
    // Update with the right ETag.
    let v2 = event("cw", "v2");
    let put = s
        .req("PUT", OBJ)
        .header("If-Match", &e1)
        .ics(&v2)
        .send()
        .await;
    put.status(204);
    let e2 = put.header("etag").unwrap().to_owned();
    assert_ne!(e1, e2);
    // Stale ETag: 412 and the stored data is untouched.
    s.req("PUT", OBJ)
        .header("If-Match", &e1)
        .ics(&event("cw", "lost update"))
        .send()
        .await
        .status(412);
    assert_eq!(s.req("GET", OBJ).send().await.body, v2);
    s.req("DELETE", OBJ)
        .header("If-Match", &e1)
        .send()
        .await
        .status(412);
    s.req("GET", OBJ).send().await.status(200);
    // Garbage in If-Match is a 400, not a guess.
    s.req("PUT", OBJ)
        .header("If-Match", "not-an-etag")
        .ics(&v2)
        .send()
        .await
        .status(400);
    // If-Match on a missing resource fails.
    s.req("PUT", "/calendars/alice/default/missing.ics")
        .header("If-Match", "*")
        .ics(&event("m", "m"))
        .send()
        .await
        .status(412);
    // Re-PUT of identical bytes keeps the ETag.
    let same = s.req("PUT", OBJ).ics(&v2).send().await;
    same.status(204);
    assert_eq!(same.header("etag"), Some(e2.as_str()));
    s.req("DELETE", OBJ)
        .header("If-Match", &e2)
        .send()
        .await
        .status(204);
    s.req("GET", OBJ).send().await.status(404);
    s.req("DELETE", OBJ).send().await.status(404);
}

pub async fn invalid_calendar_data_is_refused(s: &TestServer) {
    let cases: &[(&str, &str)] = &[
        ("hello world", "valid-calendar-data"),
        ("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n", "valid-calendar-data"),
        ("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:INVALID-DATE\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", "valid-calendar-data"),
        ("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", "valid-calendar-object-resource"),
        ("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\nBEGIN:VTODO\r\nUID:x\r\nEND:VTODO\r\nEND:VCALENDAR\r\n", "valid-calendar-object-resource"),
        ("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:20240101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", "valid-calendar-object-resource"),
        ("BEGIN:VCARD\r\nFN:x\r\nEND:VCARD\r\n", "valid-calendar-data"),
    ];
    for (body, cond) in cases {
        let r = s.req("PUT", OBJ).ics(body).send().await;
        r.status(403).precondition(NS_CALDAV, cond);
    }
    // Non-iCalendar content type.
    s.req("PUT", OBJ)
        .header("Content-Type", "text/plain")
        .body(event("x", "x"))
        .send()
        .await
        .status(403)
        .precondition(NS_CALDAV, "supported-calendar-data");
    // Not UTF-8.
    let r = s
        .req("PUT", OBJ)
        .header("Content-Type", "text/calendar")
        .body(String::from_utf8_lossy(b"BEGIN:VCALENDAR\r\n").to_string() + "\u{fffd}")
        .send()
        .await;
    assert!(r.status == 403, "{r:?}");
    // Nothing was stored.
    s.req("GET", OBJ).send().await.status(404);
    let r = s
        .req("PROPFIND", CAL)
        .depth("1")
        .xml(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#)
        .send()
        .await;
    assert_eq!(r.hrefs(), vec![CAL]);
    // PUT into a calendar that does not exist: 409.
    s.req("PUT", "/calendars/alice/none/x.ics")
        .ics(&event("x", "x"))
        .send()
        .await
        .status(409);
}

pub async fn duplicate_uid_conflict(s: &TestServer) {
    s.req("PUT", "/calendars/alice/default/first.ics")
        .ics(&event("dup", "one"))
        .send()
        .await
        .status(201);
    let r = s
        .req("PUT", "/calendars/alice/default/second.ics")
        .ics(&event("dup", "two"))
        .send()
        .await;
    r.status(409).precondition(NS_CALDAV, "no-uid-conflict");
    let href = r
        .xml()
        .child(NS_CALDAV, "no-uid-conflict")
        .unwrap()
        .child(NS_DAV, "href")
        .unwrap()
        .text();
    assert_eq!(href, "/calendars/alice/default/first.ics");
    s.req("GET", "/calendars/alice/default/second.ics")
        .send()
        .await
        .status(404);
    // The same UID in another calendar is fine.
    s.req("MKCALENDAR", "/calendars/alice/other/")
        .send()
        .await
        .status(201);
    s.req("PUT", "/calendars/alice/other/x.ics")
        .ics(&event("dup", "elsewhere"))
        .send()
        .await
        .status(201);
}

pub async fn component_set_is_enforced(s: &TestServer) {
    let body = r#"<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>
        <C:supported-calendar-component-set><C:comp name="VTODO"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#;
    s.req("MKCALENDAR", "/calendars/alice/tasks/")
        .xml(body)
        .send()
        .await
        .status(201);
    s.req("PUT", "/calendars/alice/tasks/e.ics")
        .ics(&event("e", "e"))
        .send()
        .await
        .status(403)
        .precondition(NS_CALDAV, "supported-calendar-component");
    s.req("PUT", "/calendars/alice/tasks/t.ics")
        .ics(&todo("t"))
        .send()
        .await
        .status(201);
    // The component set is protected once the calendar exists.
    let pp = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set></D:prop></D:set></D:propertyupdate>"#;
    let r = s
        .req("PROPPATCH", "/calendars/alice/tasks/")
        .xml(pp)
        .send()
        .await;
    assert_eq!(
        r.prop_statuses("/calendars/alice/tasks/"),
        vec![("supported-calendar-component-set".to_string(), 403)]
    );
}

pub async fn size_limits(s: &TestServer) {
    // Over max-resource-size (10 MiB by default) but under the request limit: the CalDAV precondition.
    let big = format!(
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:big\r\nDESCRIPTION:{}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        "x".repeat(11 * 1024 * 1024)
    );
    s.req("PUT", OBJ)
        .ics(&big)
        .send()
        .await
        .status(403)
        .precondition(NS_CALDAV, "max-resource-size");
    // Over the request body limit: 413 as soon as the headers say so, before any body is read.
    // (A raw client: an HTTP library still uploading the body would race the early answer.)
    let cl = format!(
        "Content-Type: text/calendar\r\nContent-Length: {}\r\n",
        17 * 1024 * 1024
    );
    assert_eq!(s.raw_status("PUT", OBJ, &cl).await, 413);
    assert_eq!(s.raw_status("PROPFIND", CAL, &cl).await, 413);
    assert_eq!(
        s.raw_status("PUT", OBJ, "Content-Length: banana\r\n").await,
        400
    );
    s.req("GET", OBJ).send().await.status(404);
    // Overlong paths.
    let long = format!("/calendars/alice/default/{}.ics", "a".repeat(5000));
    s.req("GET", &long).send().await.status(414);
}

/// A weekly series, ten occurrences from 2024-01-05 10:00 UTC, one hour each.
fn weekly(uid: &str, start: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Almanac tests//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:{start}\r\nDURATION:PT1H\r\nRRULE:FREQ=WEEKLY;COUNT=10\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// The hrefs a calendar-query with a VEVENT time-range finds in `cal`, sorted.
async fn found_in(s: &TestServer, cal: &str, start: &str, end: &str) -> Vec<String> {
    let query = |props: &str| {
        format!(
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>{props}</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#
        )
    };
    // ETags alone are answered from the occurrence index (names and ETags stored with each
    // occurrence); with another property the objects are read. Both must say the same, and
    // each ETag must be the one the resource itself carries now.
    let r = s
        .req("REPORT", cal)
        .depth("1")
        .xml(&query("<D:getetag/>"))
        .send()
        .await;
    r.status(207);
    let full = s
        .req("REPORT", cal)
        .depth("1")
        .xml(&query("<D:getetag/><D:getcontenttype/>"))
        .send()
        .await;
    full.status(207);
    let mut hrefs = r.hrefs();
    hrefs.sort();
    let mut full_hrefs = full.hrefs();
    full_hrefs.sort();
    assert_eq!(hrefs, full_hrefs, "getetag-only and general answers differ");
    for href in &hrefs {
        let etag = r.prop_text(href, NS_DAV, "getetag");
        assert_eq!(etag, full.prop_text(href, NS_DAV, "getetag"), "{href}");
        let head = s.req("HEAD", href).send().await;
        head.status(200);
        assert_eq!(head.header("ETag"), Some(etag.as_str()), "{href}");
    }
    hrefs
}

/// The FREEBUSY periods a free-busy-query over `[start, end)` reports for `cal`.
async fn busy_in(s: &TestServer, cal: &str, start: &str, end: &str) -> String {
    let r = s
        .req("REPORT", cal)
        .depth("1")
        .xml(&format!(
            r#"<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="{start}" end="{end}"/></C:free-busy-query>"#
        ))
        .send()
        .await;
    r.status(200);
    r.body
        .lines()
        .filter(|l| l.starts_with("FREEBUSY"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Time-range queries and free/busy are answered from stored occurrences: those must follow an
/// object through MOVE (across calendars and within one), COPY, a changed PUT and DELETE, and
/// go with a deleted calendar.
pub async fn time_queries_follow_copy_move_delete(s: &TestServer) {
    const DEF: &str = "/calendars/alice/default/";
    const WORK: &str = "/calendars/alice/work/";
    // The third occurrence (2024-01-19) and, later, the moved series' third (2024-03-15).
    let jan = ("20240119T000000Z", "20240120T000000Z");
    let mar = ("20240315T000000Z", "20240316T000000Z");
    let jan_busy = "FREEBUSY;FBTYPE=BUSY:20240119T100000Z/20240119T110000Z";
    s.req("MKCALENDAR", WORK).send().await.status(201);
    s.req("PUT", &format!("{DEF}r.ics"))
        .ics(&weekly("idx-r", "20240105T100000Z"))
        .send()
        .await
        .status(201);
    assert_eq!(
        found_in(s, DEF, jan.0, jan.1).await,
        [format!("{DEF}r.ics")]
    );
    assert!(found_in(s, WORK, jan.0, jan.1).await.is_empty());
    assert_eq!(busy_in(s, DEF, jan.0, jan.1).await, jan_busy);

    // MOVE to another calendar: found there, gone here, busy time follows.
    s.req("MOVE", &format!("{DEF}r.ics"))
        .header("Destination", &format!("{WORK}r.ics"))
        .send()
        .await
        .status(201);
    assert!(found_in(s, DEF, jan.0, jan.1).await.is_empty());
    assert_eq!(busy_in(s, DEF, jan.0, jan.1).await, "");
    assert_eq!(
        found_in(s, WORK, jan.0, jan.1).await,
        [format!("{WORK}r.ics")]
    );
    assert_eq!(busy_in(s, WORK, jan.0, jan.1).await, jan_busy);

    // COPY back across calendars: both copies are found.
    s.req("COPY", &format!("{WORK}r.ics"))
        .header("Destination", &format!("{DEF}r2.ics"))
        .send()
        .await
        .status(201);
    assert_eq!(
        found_in(s, DEF, jan.0, jan.1).await,
        [format!("{DEF}r2.ics")]
    );
    assert_eq!(
        found_in(s, WORK, jan.0, jan.1).await,
        [format!("{WORK}r.ics")]
    );

    // A PUT that moves the series replaces its occurrences; the copy keeps its own.
    s.req("PUT", &format!("{WORK}r.ics"))
        .ics(&weekly("idx-r", "20240301T100000Z"))
        .send()
        .await
        .status(204);
    assert!(found_in(s, WORK, jan.0, jan.1).await.is_empty());
    assert_eq!(
        found_in(s, WORK, mar.0, mar.1).await,
        [format!("{WORK}r.ics")]
    );
    assert_eq!(
        found_in(s, DEF, jan.0, jan.1).await,
        [format!("{DEF}r2.ics")]
    );
    assert!(found_in(s, DEF, mar.0, mar.1).await.is_empty());

    // MOVE within a calendar (a rename) and DELETE.
    s.req("MOVE", &format!("{WORK}r.ics"))
        .header("Destination", &format!("{WORK}r3.ics"))
        .send()
        .await
        .status(201);
    assert_eq!(
        found_in(s, WORK, mar.0, mar.1).await,
        [format!("{WORK}r3.ics")]
    );
    s.req("DELETE", &format!("{DEF}r2.ics"))
        .send()
        .await
        .status(204);
    assert!(found_in(s, DEF, jan.0, jan.1).await.is_empty());
    assert_eq!(busy_in(s, DEF, jan.0, jan.1).await, "");

    // Deleting the calendar takes its occurrence rows with it.
    let p = s.store.principal_by_name("alice").await.unwrap().unwrap();
    let work = s.store.calendar(p.id, "work").await.unwrap().unwrap();
    let (from, to) = (1_704_067_200, 1_735_689_600); // 2024
    assert_eq!(
        s.store
            .occurrences(work.id, from, to, 0)
            .await
            .unwrap()
            .len(),
        10
    );
    s.req("DELETE", WORK).send().await.status(204);
    assert!(s
        .store
        .occurrences(work.id, from, to, 0)
        .await
        .unwrap()
        .is_empty());
}

pub async fn copy_and_move(s: &TestServer) {
    s.req("MKCALENDAR", "/calendars/alice/work/")
        .send()
        .await
        .status(201);
    let a = "/calendars/alice/default/a.ics";
    let ics = event("cm-a", "A");
    s.req("PUT", a).ics(&ics).send().await.status(201);
    // MOVE to another calendar.
    let host = format!("http://{}", s.addr);
    s.req("MOVE", a)
        .header("Destination", &format!("{host}/calendars/alice/work/a.ics"))
        .send()
        .await
        .status(201);
    s.req("GET", a).send().await.status(404);
    assert_eq!(
        s.req("GET", "/calendars/alice/work/a.ics")
            .send()
            .await
            .body,
        ics
    );
    // COPY back (path-only Destination works too).
    s.req("COPY", "/calendars/alice/work/a.ics")
        .header("Destination", a)
        .send()
        .await
        .status(201);
    // COPY within one calendar would duplicate the UID.
    let r = s
        .req("COPY", a)
        .header("Destination", "/calendars/alice/default/b.ics")
        .send()
        .await;
    r.status(409).precondition(NS_CALDAV, "no-uid-conflict");
    // Overwrite: F onto an existing resource fails.
    s.req("PUT", "/calendars/alice/work/z.ics")
        .ics(&event("cm-z", "Z"))
        .send()
        .await
        .status(201);
    s.req("COPY", "/calendars/alice/default/a.ics")
        .header("Destination", "/calendars/alice/work/z.ics")
        .header("Overwrite", "F")
        .send()
        .await
        .status(412);
    // Rename within a calendar.
    s.req("MOVE", "/calendars/alice/work/z.ics")
        .header("Destination", "/calendars/alice/work/z2.ics")
        .send()
        .await
        .status(201);
    s.req("GET", "/calendars/alice/work/z2.ics")
        .send()
        .await
        .status(200);
    // Into another user's calendar: refused without revealing anything.
    for dest in [
        "/calendars/bob/default/x.ics",
        "/calendars/nobody/default/x.ics",
    ] {
        s.req("COPY", a)
            .header("Destination", dest)
            .send()
            .await
            .status(403);
        s.req("MOVE", a)
            .header("Destination", dest)
            .send()
            .await
            .status(403);
    }
    let bob = s
        .req_as(Some(BOB), "PROPFIND", "/calendars/bob/default/")
        .depth("1")
        .send()
        .await;
    assert_eq!(bob.hrefs(), vec!["/calendars/bob/default/"]);
    // Missing destination calendar, missing header, source onto itself.
    s.req("COPY", a)
        .header("Destination", "/calendars/alice/none/x.ics")
        .send()
        .await
        .status(409);
    s.req("COPY", a).send().await.status(400);
    s.req("MOVE", a)
        .header("Destination", a)
        .send()
        .await
        .status(403);
}

pub async fn multiget_and_query(s: &TestServer) {
    s.req("PUT", "/calendars/alice/default/m1.ics")
        .ics(&event("m1", "One"))
        .send()
        .await
        .status(201);
    s.req("PUT", "/calendars/alice/default/t1.ics")
        .ics(&todo("t1"))
        .send()
        .await
        .status(201);
    let body = r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>
        <D:href>/calendars/alice/default/m1.ics</D:href><D:href>/calendars/alice/default/missing.ics</D:href><D:href>/calendars/bob/default/x.ics</D:href></C:calendar-multiget>"#;
    let r = s.req("REPORT", CAL).depth("1").xml(body).send().await;
    r.status(207);
    assert_eq!(
        r.prop_text(
            "/calendars/alice/default/m1.ics",
            NS_CALDAV,
            "calendar-data"
        ),
        event("m1", "One")
    );
    assert_eq!(
        r.response_status("/calendars/alice/default/missing.ics"),
        Some(404)
    );
    assert_eq!(r.response_status("/calendars/bob/default/x.ics"), Some(404));

    // One multiget over two calendars, a name that needs percent-encoding, a missing calendar
    // and a repeated href: answers in request order, each object under its canonical href with
    // the ETag its PUT returned. Asking for one more property takes the general path; both
    // paths must agree on everything they share.
    s.req("MKCALENDAR", "/calendars/alice/work/")
        .send()
        .await
        .status(201);
    let put = s
        .req("PUT", "/calendars/alice/work/a%20b.ics")
        .ics(&event("ab", "Spaced"))
        .send()
        .await;
    put.status(201);
    let ab_etag = put.header("etag").unwrap().to_owned();
    let hrefs = [
        "/calendars/alice/work/a%20b.ics",
        "/calendars/alice/default/m1.ics",
        "/calendars/alice/nocal/m1.ics",
        "/calendars/alice/work/m1.ics",
        "/calendars/alice/default/m1.ics",
    ];
    let list: String = hrefs
        .iter()
        .map(|h| format!("<D:href>{h}</D:href>"))
        .collect();
    for extra in ["", "<D:getcontenttype/>"] {
        let body = format!(
            r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>{extra}<C:calendar-data/></D:prop>{list}</C:calendar-multiget>"#
        );
        let r = s.req("REPORT", CAL).depth("1").xml(&body).send().await;
        r.status(207);
        assert_eq!(r.hrefs(), hrefs, "{extra}");
        let data = |href| r.prop_text(href, NS_CALDAV, "calendar-data");
        assert_eq!(
            data("/calendars/alice/work/a%20b.ics"),
            event("ab", "Spaced")
        );
        assert_eq!(data("/calendars/alice/default/m1.ics"), event("m1", "One"));
        let etag = r.prop_text("/calendars/alice/work/a%20b.ics", NS_DAV, "getetag");
        assert_eq!(etag, ab_etag);
        for missing in [
            "/calendars/alice/nocal/m1.ics",
            "/calendars/alice/work/m1.ics",
        ] {
            assert_eq!(r.response_status(missing), Some(404), "{missing}");
        }
    }

    let q = r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>
        <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO"/></C:comp-filter></C:filter></C:calendar-query>"#;
    let r = s.req("REPORT", CAL).depth("1").xml(q).send().await;
    assert_eq!(r.hrefs(), vec!["/calendars/alice/default/t1.ics"]);
    // An empty result is a 207 with an empty multistatus, never a 404.
    let q = q.replace("VTODO", "VJOURNAL");
    let r = s.req("REPORT", CAL).depth("0").xml(&q).send().await;
    r.status(207);
    assert!(r.hrefs().is_empty());
    // Unknown report.
    s.req("REPORT", CAL)
        .xml(r#"<D:nope xmlns:D="DAV:"/>"#)
        .send()
        .await
        .status(403)
        .precondition(NS_DAV, "supported-report");
}

pub async fn etags_are_content_hashes(s: &TestServer) {
    // The ETag is a function of the bytes alone: identical on every backend and across
    // restarts (this exact value is asserted on both backends).
    let put = s.req("PUT", OBJ).ics(&event("fixed", "Fixed")).send().await;
    assert_eq!(
        put.header("etag"),
        Some("\"ee4843d87e43a4202804e57ba908fe03\"")
    );
}

/// Everything survives a restart: objects, ETags, hrefs, calendar properties and sync tokens.
pub async fn restart_keeps_everything(db: &TestDb) {
    let s = TestServer::start(db).await;
    s.req("MKCALENDAR", "/calendars/alice/keep/").xml(r#"<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:displayname>Keep</D:displayname></D:prop></D:set></C:mkcalendar>"#).send().await.status(201);
    let put = s
        .req("PUT", "/calendars/alice/keep/k.ics")
        .ics(&event("keep", "Kept"))
        .send()
        .await;
    let etag = put.header("etag").unwrap().to_owned();
    let sync = s
        .req("REPORT", "/calendars/alice/keep/")
        .xml(&sync_body("", "<D:sync-level>1</D:sync-level>"))
        .send()
        .await;
    let token = sync.sync_token();
    let listing = s.req("PROPFIND", "/calendars/alice/keep/").depth("1").xml(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:displayname/></D:prop></D:propfind>"#).send().await;
    s.stop().await;

    let s = TestServer::start_with(db, almanac::config::Config::default(), false).await;
    let again = s.req("PROPFIND", "/calendars/alice/keep/").depth("1").xml(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:displayname/></D:prop></D:propfind>"#).send().await;
    assert_eq!(
        again.body, listing.body,
        "same hrefs, ETags and properties after restart"
    );
    let get = s.req("GET", "/calendars/alice/keep/k.ics").send().await;
    assert_eq!(get.body, event("keep", "Kept"));
    assert_eq!(get.header("etag"), Some(etag.as_str()));
    // The pre-restart token still yields exact deltas.
    s.req("PUT", "/calendars/alice/keep/k2.ics")
        .ics(&event("keep2", "New"))
        .send()
        .await
        .status(201);
    let d = s
        .req("REPORT", "/calendars/alice/keep/")
        .xml(&sync_body(&token, ""))
        .send()
        .await;
    d.status(207);
    assert_eq!(d.hrefs(), vec!["/calendars/alice/keep/k2.ics"]);
    s.stop().await;
}

/// PROPFIND Depth 1 on a calendar lists its members page by page on the server; across page
/// boundaries every member appears exactly once, with its ETag.
pub async fn large_listing_is_complete(s: &TestServer) {
    // Pages of 1,000: a last page part full, and a last page that is full (the read ahead
    // then finds an empty one).
    for (cal, n) in [("big", 2345), ("even", 2000)] {
        listing_is_complete(s, cal, n).await;
    }
}

async fn listing_is_complete(s: &TestServer, cal: &str, n: usize) {
    use almanac::ical::{CalendarObject, ComponentKind};
    let p = s.store.principal_by_name("alice").await.unwrap().unwrap();
    let new = almanac::store::NewCalendar {
        name: cal.into(),
        components: vec![ComponentKind::Event],
        ..Default::default()
    };
    let col = s.store.create_calendar(p.id, &new).await.unwrap();
    let objs: Vec<(String, CalendarObject)> = (0..n)
        .map(|i| {
            let ics = format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Almanac tests//EN\r\nBEGIN:VEVENT\r\n\
                 UID:u{i}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240601T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
            );
            (format!("e{i:05}.ics"), CalendarObject::from_ics(ics).unwrap())
        })
        .collect();
    s.store
        .import_objects(col.id, &objs, i64::MAX)
        .await
        .unwrap();
    let r = s
        .req("PROPFIND", &format!("/calendars/alice/{cal}/"))
        .depth("1")
        .xml(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#)
        .send()
        .await;
    let hrefs = r.status(207).hrefs();
    let members: Vec<&String> = hrefs.iter().filter(|h| h.ends_with(".ics")).collect();
    let expected: Vec<String> = (0..n)
        .map(|i| format!("/calendars/alice/{cal}/e{i:05}.ics"))
        .collect();
    assert_eq!(members.len(), n, "members listed");
    let mut sorted: Vec<String> = members.iter().map(|h| h.to_string()).collect();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, expected);
    assert_eq!(hrefs.len(), n + 1, "the calendar itself and its members");
}
