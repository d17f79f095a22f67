//! iCalendar semantics over HTTP: recurrence, time zones and DST, calendar-query filters,
//! expand, free-busy, and the index narrowing queries.

use crate::support::*;
use almanac::dav::xml::{NS_CALDAV, NS_DAV};

const BERLIN: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";

fn cal(body: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Almanac tests//EN\r\n{body}END:VCALENDAR\r\n"
    )
}

fn vevent(uid: &str, lines: &str) -> String {
    format!("BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n{lines}END:VEVENT\r\n")
}

async fn put(s: &TestServer, name: &str, ics: &str) {
    s.req("PUT", &format!("/calendars/alice/default/{name}.ics"))
        .ics(ics)
        .send()
        .await
        .status(201);
}

/// calendar-query for VEVENTs in [start, end) with expanded calendar-data.
async fn expand_query(s: &TestServer, start: &str, end: &str, tz: Option<&str>) -> Resp {
    let tz = tz
        .map(|t| format!("<C:timezone>{}</C:timezone>", t.replace('\r', "&#13;")))
        .unwrap_or_default();
    let body = format!(
        r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>
        <C:calendar-data><C:expand start="{start}" end="{end}"/></C:calendar-data></D:prop>
        <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter>{tz}</C:calendar-query>"#
    );
    let r = s.req("REPORT", CAL).depth("1").xml(&body).send().await;
    r.status(207);
    r
}

/// DTSTART values of the expanded components returned for one object.
fn starts(r: &Resp, name: &str) -> Vec<String> {
    let href = format!("/calendars/alice/default/{name}.ics");
    let Some(data) = r.prop(&href, NS_CALDAV, "calendar-data") else {
        return vec![];
    };
    let cal = almanac::ical::parse(&data.text())
        .expect("calendar-data parses")
        .pop()
        .expect("VCALENDAR");
    assert!(
        cal.children.iter().all(|c| c.name != "VTIMEZONE"),
        "expanded data has no VTIMEZONE"
    );
    let mut v: Vec<String> = cal
        .children
        .iter()
        .filter(|c| c.name == "VEVENT")
        .map(|c| {
            assert!(
                c.prop("RRULE").is_none() && c.prop("EXDATE").is_none(),
                "expanded instances carry no rules"
            );
            c.prop("DTSTART")
                .map(|p| p.value.clone())
                .unwrap_or_default()
        })
        .collect();
    v.sort();
    v
}

pub async fn weekly_meeting_keeps_local_time_across_dst(s: &TestServer) {
    // Mondays 09:00 Europe/Berlin: 08:00Z in winter, 07:00Z in summer.
    let ics = cal(&format!(
        "{BERLIN}{}",
        vevent("weekly", "DTSTART;TZID=Europe/Berlin:20240311T090000\r\nDTEND;TZID=Europe/Berlin:20240311T100000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO\r\nSUMMARY:Standup\r\n")
    ));
    put(s, "weekly", &ics).await;
    let r = expand_query(s, "20240318T000000Z", "20240409T000000Z", None).await;
    assert_eq!(
        starts(&r, "weekly"),
        vec![
            "20240318T080000Z",
            "20240325T080000Z",
            "20240401T070000Z",
            "20240408T070000Z"
        ]
    );
    let r = expand_query(s, "20241021T000000Z", "20241105T000000Z", None).await;
    assert_eq!(
        starts(&r, "weekly"),
        vec!["20241021T070000Z", "20241028T080000Z", "20241104T080000Z"]
    );
    // Expanded instances carry their RECURRENCE-ID in UTC.
    let href = "/calendars/alice/default/weekly.ics";
    let data = r.prop_text(href, NS_CALDAV, "calendar-data");
    assert!(data.contains("RECURRENCE-ID:20241028T080000Z"), "{data}");
}

pub async fn gap_and_overlap_times_land_where_rfc5545_says(s: &TestServer) {
    // 02:30 does not exist on 2024-03-31 in Berlin: read with the offset before the gap
    // (+01:00), i.e. 01:30Z (03:30 CEST). 02:30 happens twice on 2024-10-27: the first one
    // (CEST, +02:00), i.e. 00:30Z.
    put(
        s,
        "gap",
        &cal(&format!(
            "{BERLIN}{}",
            vevent(
                "gap",
                "DTSTART;TZID=Europe/Berlin:20240331T023000\r\nDURATION:PT30M\r\n"
            )
        )),
    )
    .await;
    put(
        s,
        "overlap",
        &cal(&format!(
            "{BERLIN}{}",
            vevent(
                "overlap",
                "DTSTART;TZID=Europe/Berlin:20241027T023000\r\nDURATION:PT30M\r\n"
            )
        )),
    )
    .await;
    let r = expand_query(s, "20240330T000000Z", "20240401T000000Z", None).await;
    assert_eq!(starts(&r, "gap"), vec!["20240331T013000Z"]);
    let r = expand_query(s, "20241026T000000Z", "20241028T000000Z", None).await;
    assert_eq!(starts(&r, "overlap"), vec!["20241027T003000Z"]);
    // Time ranges see the same instants: the gap event is not in [01:00Z, 01:30Z).
    let r = expand_query(s, "20240331T010000Z", "20240331T013000Z", None).await;
    assert!(
        !r.hrefs().iter().any(|h| h.ends_with("gap.ics")),
        "{:?}",
        r.hrefs()
    );
}

pub async fn all_day_events_stay_on_their_date(s: &TestServer) {
    put(
        s,
        "allday",
        &cal(&vevent(
            "allday",
            "DTSTART;VALUE=DATE:20240105\r\nDTEND;VALUE=DATE:20240106\r\nSUMMARY:Holiday\r\n",
        )),
    )
    .await;
    let la = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTIMEZONE\r\nTZID:America/Los_Angeles\r\nBEGIN:STANDARD\r\nDTSTART:19701101T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nTZOFFSETFROM:-0700\r\nTZOFFSETTO:-0800\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700308T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nTZOFFSETFROM:-0800\r\nTZOFFSETTO:-0700\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n";
    let tokyo = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTIMEZONE\r\nTZID:Asia/Tokyo\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0900\r\nTZOFFSETTO:+0900\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n";
    for (tz, start, end) in [
        (None, "20240105T000000Z", "20240106T000000Z"),
        (Some(la), "20240105T080000Z", "20240106T080000Z"),
        (Some(tokyo), "20240104T150000Z", "20240105T150000Z"),
    ] {
        let r = expand_query(s, start, end, tz).await;
        assert_eq!(
            starts(&r, "allday"),
            vec!["20240105"],
            "query zone {:?}",
            tz.map(|t| &t[60..90])
        );
        let data = r.prop_text(
            "/calendars/alice/default/allday.ics",
            NS_CALDAV,
            "calendar-data",
        );
        assert!(data.contains("DTSTART;VALUE=DATE:20240105"), "{data}");
    }
    // The day before, in the query zone, does not include it.
    let r = expand_query(s, "20240104T080000Z", "20240105T080000Z", Some(la)).await;
    assert!(starts(&r, "allday").is_empty());
}

pub async fn infinite_series_reach_far_windows(s: &TestServer) {
    put(
        s,
        "daily",
        &cal(&vevent(
            "daily",
            "DTSTART:20200101T070000Z\r\nDTEND:20200101T073000Z\r\nRRULE:FREQ=DAILY\r\n",
        )),
    )
    .await;
    put(
        s,
        "monthly",
        &cal(&vevent(
            "monthly",
            "DTSTART:20200131T120000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=MONTHLY;BYMONTHDAY=-1\r\n",
        )),
    )
    .await;
    let r = expand_query(s, "20900301T000000Z", "20900304T000000Z", None).await;
    assert_eq!(
        starts(&r, "daily"),
        vec!["20900301T070000Z", "20900302T070000Z", "20900303T070000Z"]
    );
    let r = expand_query(s, "20900201T000000Z", "20900301T000000Z", None).await;
    assert_eq!(starts(&r, "monthly"), vec!["20900228T120000Z"]);
}

pub async fn exdates_and_overrides(s: &TestServer) {
    let ics = cal(&format!(
        "{}{}{}",
        vevent("ser", "DTSTART:20240101T100000Z\r\nDTEND:20240101T110000Z\r\nRRULE:FREQ=DAILY;COUNT=10\r\nEXDATE:20240103T100000Z,20240104T100000Z\r\n"),
        vevent("ser", "RECURRENCE-ID:20240105T100000Z\r\nDTSTART:20240105T150000Z\r\nDTEND:20240105T160000Z\r\nSUMMARY:moved\r\n"),
        vevent("ser", "RECURRENCE-ID;RANGE=THISANDFUTURE:20240108T100000Z\r\nDTSTART:20240108T120000Z\r\nDTEND:20240108T130000Z\r\nSUMMARY:later\r\n")
    ));
    put(s, "ser", &ics).await;
    let r = expand_query(s, "20240101T000000Z", "20240201T000000Z", None).await;
    assert_eq!(
        starts(&r, "ser"),
        vec![
            "20240101T100000Z",
            "20240102T100000Z",
            "20240105T150000Z",
            "20240106T100000Z",
            "20240107T100000Z",
            "20240108T120000Z",
            "20240109T120000Z",
            "20240110T120000Z",
        ]
    );
    // A window holding only an excluded instance does not match.
    let r = expand_query(s, "20240103T000000Z", "20240105T000000Z", None).await;
    assert!(!r.hrefs().iter().any(|h| h.ends_with("ser.ics")));
    // The moved instance matches where it moved to, not where it was.
    let r = expand_query(s, "20240105T090000Z", "20240105T120000Z", None).await;
    assert!(!r.hrefs().iter().any(|h| h.ends_with("ser.ics")));
    // limit-recurrence-set returns the master and only the overrides in range.
    let body = r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data><C:limit-recurrence-set start="20240105T000000Z" end="20240106T000000Z"/></C:calendar-data></D:prop><D:href>/calendars/alice/default/ser.ics</D:href></C:calendar-multiget>"#;
    let r = s.req("REPORT", CAL).xml(body).send().await;
    let data = r.prop_text(
        "/calendars/alice/default/ser.ics",
        NS_CALDAV,
        "calendar-data",
    );
    assert!(
        data.contains("SUMMARY:moved") && !data.contains("SUMMARY:later") && data.contains("RRULE"),
        "{data}"
    );
}

pub async fn windows_time_zone_names(s: &TestServer) {
    // Outlook: a Windows zone name with its own VTIMEZONE, and one without (mapped via CLDR).
    let wtz = "BEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\nBEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";
    put(s, "outlook", &cal(&format!("{wtz}{}", vevent("outlook", "DTSTART;TZID=W. Europe Standard Time:20240715T140000\r\nDTEND;TZID=W. Europe Standard Time:20240715T150000\r\n")))).await;
    put(s, "pst", &cal(&vevent("pst", "DTSTART;TZID=\"Pacific Standard Time\":20240115T090000\r\nDTEND;TZID=\"Pacific Standard Time\":20240115T100000\r\n"))).await;
    let r = expand_query(s, "20240715T000000Z", "20240716T000000Z", None).await;
    assert_eq!(starts(&r, "outlook"), vec!["20240715T120000Z"]);
    let r = expand_query(s, "20240115T000000Z", "20240116T000000Z", None).await;
    assert_eq!(starts(&r, "pst"), vec!["20240115T170000Z"]);
}

pub async fn floating_times_follow_the_calendar_zone(s: &TestServer) {
    put(
        s,
        "float",
        &cal(&vevent(
            "float",
            "DTSTART:20240110T090000\r\nDTEND:20240110T100000\r\n",
        )),
    )
    .await;
    // No calendar-timezone: UTC.
    assert_eq!(
        starts(
            &expand_query(s, "20240110T000000Z", "20240111T000000Z", None).await,
            "float"
        ),
        vec!["20240110T090000Z"]
    );
    // Setting the calendar's zone moves it (index bounds are widened for floating times).
    let pp = format!(
        r#"<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:calendar-timezone>BEGIN:VCALENDAR&#13;
VERSION:2.0&#13;
PRODID:x&#13;
{}END:VCALENDAR&#13;
</C:calendar-timezone></D:prop></D:set></D:propertyupdate>"#,
        BERLIN.replace("\r\n", "&#13;\n")
    );
    s.req("PROPPATCH", CAL).xml(&pp).send().await.status(207);
    assert_eq!(
        starts(
            &expand_query(s, "20240110T000000Z", "20240111T000000Z", None).await,
            "float"
        ),
        vec!["20240110T080000Z"]
    );
    let r = expand_query(s, "20240110T090000Z", "20240110T100000Z", None).await;
    assert!(
        !r.hrefs().iter().any(|h| h.ends_with("float.ics")),
        "09:00-10:00 Berlin is 08:00Z-09:00Z"
    );
}

async fn query_hrefs(s: &TestServer, filter: &str) -> Vec<String> {
    let body = format!(
        r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter>{filter}</C:filter></C:calendar-query>"#
    );
    let r = s.req("REPORT", CAL).depth("1").xml(&body).send().await;
    r.status(207);
    let mut h: Vec<String> = r
        .hrefs()
        .into_iter()
        .map(|h| {
            h.rsplit('/')
                .next()
                .unwrap_or_default()
                .trim_end_matches(".ics")
                .to_string()
        })
        .collect();
    h.sort();
    h
}

pub async fn property_and_text_filters(s: &TestServer) {
    put(s, "a", &cal(&vevent("uid-a", "DTSTART:20240101T100000Z\r\nSUMMARY:Team Meeting\r\nLOCATION:Straße 1\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:x@y\r\n"))).await;
    put(
        s,
        "b",
        &cal(&vevent(
            "uid-b",
            "DTSTART:20240101T100000Z\r\nSUMMARY:Lunch\\, later\r\nSTATUS:CANCELLED\r\n",
        )),
    )
    .await;
    s.req("PUT", "/calendars/alice/default/t.ics")
        .ics(&todo("uid-t"))
        .send()
        .await
        .status(201);
    let f = |inner: &str| format!(r#"<C:comp-filter name="VCALENDAR">{inner}</C:comp-filter>"#);
    let ev = |inner: &str| {
        f(&format!(
            r#"<C:comp-filter name="VEVENT">{inner}</C:comp-filter>"#
        ))
    };
    assert_eq!(query_hrefs(s, &ev(r#"<C:prop-filter name="SUMMARY"><C:text-match>meeting</C:text-match></C:prop-filter>"#)).await, vec!["a"]);
    assert_eq!(query_hrefs(s, &ev(r#"<C:prop-filter name="SUMMARY"><C:text-match collation="i;octet">meeting</C:text-match></C:prop-filter>"#)).await, Vec::<String>::new());
    assert_eq!(query_hrefs(s, &ev(r#"<C:prop-filter name="SUMMARY"><C:text-match negate-condition="yes">meeting</C:text-match></C:prop-filter>"#)).await, vec!["b"]);
    assert_eq!(query_hrefs(s, &ev(r#"<C:prop-filter name="SUMMARY"><C:text-match>lunch, later</C:text-match></C:prop-filter>"#)).await, vec!["b"]);
    assert_eq!(query_hrefs(s, &ev(r#"<C:prop-filter name="LOCATION"><C:text-match collation="i;unicode-casemap">STRASSE</C:text-match></C:prop-filter>"#)).await, vec!["a"]);
    assert_eq!(
        query_hrefs(
            s,
            &ev(r#"<C:prop-filter name="STATUS"><C:is-not-defined/></C:prop-filter>"#)
        )
        .await,
        vec!["a"]
    );
    assert_eq!(query_hrefs(s, &ev(r#"<C:prop-filter name="ATTENDEE"><C:param-filter name="PARTSTAT"><C:text-match>accepted</C:text-match></C:param-filter></C:prop-filter>"#)).await, vec!["a"]);
    // A prop-filter directly under VCALENDAR looks into the components (UID lookups).
    assert_eq!(query_hrefs(s, &f(r#"<C:prop-filter name="UID"><C:text-match collation="i;octet">uid-b</C:text-match></C:prop-filter>"#)).await, vec!["b"]);
    assert_eq!(
        query_hrefs(s, &f(r#"<C:comp-filter name="VTODO"/>"#)).await,
        vec!["t"]
    );
    assert_eq!(
        query_hrefs(
            s,
            &f(r#"<C:comp-filter name="VEVENT"><C:is-not-defined/></C:comp-filter>"#)
        )
        .await,
        vec!["t"]
    );
    // The default python-caldav todos() query: VTODO without COMPLETED, status neither COMPLETED nor CANCELLED.
    let todos = r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO"><C:prop-filter name="COMPLETED"><C:is-not-defined/></C:prop-filter><C:prop-filter name="STATUS"><C:text-match negate-condition="yes">COMPLETED</C:text-match></C:prop-filter><C:prop-filter name="STATUS"><C:text-match negate-condition="yes">CANCELLED</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter>"#;
    assert_eq!(
        query_hrefs(s, todos).await,
        Vec::<String>::new(),
        "a todo without STATUS fails the STATUS text-matches"
    );
    // Unknown collation and bad time-range: preconditions.
    let body = |filter: String| {
        format!(
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter>{filter}</C:filter></C:calendar-query>"#
        )
    };
    let r = s.req("REPORT", CAL).xml(&body(ev(r#"<C:prop-filter name="SUMMARY"><C:text-match collation="i;klingon">x</C:text-match></C:prop-filter>"#))).send().await;
    r.status(403).precondition(NS_CALDAV, "supported-collation");
    let r = s
        .req("REPORT", CAL)
        .xml(&body(ev(r#"<C:time-range start="2024-01-01"/>"#)))
        .send()
        .await;
    r.status(403).precondition(NS_CALDAV, "valid-filter");
    let r = s
        .req("REPORT", CAL)
        .xml(&body(r#"<C:comp-filter name="VEVENT"/>"#.to_string()))
        .send()
        .await;
    r.status(403).precondition(NS_CALDAV, "valid-filter");
}

pub async fn todo_and_alarm_time_ranges(s: &TestServer) {
    let t = |uid: &str, lines: &str| {
        cal(&format!(
            "BEGIN:VTODO\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n{lines}END:VTODO\r\n"
        ))
    };
    s.req("PUT", "/calendars/alice/default/due.ics")
        .ics(&t("due", "DUE:20240110T120000Z\r\n"))
        .send()
        .await
        .status(201);
    s.req("PUT", "/calendars/alice/default/span.ics")
        .ics(&t(
            "span",
            "DTSTART:20240101T000000Z\r\nDUE:20240120T000000Z\r\n",
        ))
        .send()
        .await
        .status(201);
    s.req("PUT", "/calendars/alice/default/done.ics")
        .ics(&t("done", "COMPLETED:20240105T000000Z\r\n"))
        .send()
        .await
        .status(201);
    put(s, "alarm", &cal(&vevent("alarm", "DTSTART:20240201T100000Z\r\nDTEND:20240201T110000Z\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-P1D\r\nEND:VALARM\r\n"))).await;
    let todo_tr = |a: &str, b: &str| {
        format!(
            r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO"><C:time-range start="{a}" end="{b}"/></C:comp-filter></C:comp-filter>"#
        )
    };
    assert_eq!(
        query_hrefs(s, &todo_tr("20240110T000000Z", "20240111T000000Z")).await,
        vec!["due", "span"]
    );
    assert_eq!(
        query_hrefs(s, &todo_tr("20240104T000000Z", "20240106T000000Z")).await,
        vec!["done", "span"]
    );
    assert_eq!(
        query_hrefs(s, &todo_tr("20240201T000000Z", "20240202T000000Z")).await,
        Vec::<String>::new()
    );
    // The alarm fires a day before the event: found by a VALARM time-range on that day only.
    let alarm_tr = |a: &str, b: &str| {
        format!(
            r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"><C:time-range start="{a}" end="{b}"/></C:comp-filter></C:comp-filter></C:comp-filter>"#
        )
    };
    assert_eq!(
        query_hrefs(s, &alarm_tr("20240131T000000Z", "20240201T000000Z")).await,
        vec!["alarm"]
    );
    assert_eq!(
        query_hrefs(s, &alarm_tr("20240201T000000Z", "20240202T000000Z")).await,
        Vec::<String>::new()
    );
}

pub async fn free_busy_query(s: &TestServer) {
    put(
        s,
        "b1",
        &cal(&vevent(
            "b1",
            "DTSTART:20240301T090000Z\r\nDTEND:20240301T100000Z\r\n",
        )),
    )
    .await;
    put(
        s,
        "b2",
        &cal(&vevent(
            "b2",
            "DTSTART:20240301T093000Z\r\nDTEND:20240301T110000Z\r\n",
        )),
    )
    .await;
    put(
        s,
        "tent",
        &cal(&vevent(
            "tent",
            "DTSTART:20240301T120000Z\r\nDTEND:20240301T130000Z\r\nSTATUS:TENTATIVE\r\n",
        )),
    )
    .await;
    put(
        s,
        "free",
        &cal(&vevent(
            "free",
            "DTSTART:20240301T140000Z\r\nDTEND:20240301T150000Z\r\nTRANSP:TRANSPARENT\r\n",
        )),
    )
    .await;
    put(
        s,
        "gone",
        &cal(&vevent(
            "gone",
            "DTSTART:20240301T160000Z\r\nDTEND:20240301T170000Z\r\nSTATUS:CANCELLED\r\n",
        )),
    )
    .await;
    put(
        s,
        "rec",
        &cal(&vevent(
            "rec",
            "DTSTART:20240225T080000Z\r\nDTEND:20240225T083000Z\r\nRRULE:FREQ=DAILY\r\n",
        )),
    )
    .await;
    let body = r#"<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="20240301T000000Z" end="20240302T000000Z"/></C:free-busy-query>"#;
    let r = s.req("REPORT", CAL).depth("1").xml(body).send().await;
    r.status(200).has_header("content-type", "text/calendar");
    let cal = almanac::ical::parse(&r.body).unwrap().pop().unwrap();
    let fb = cal
        .children
        .iter()
        .find(|c| c.name == "VFREEBUSY")
        .expect("VFREEBUSY");
    let lines: Vec<String> = fb
        .props_named("FREEBUSY")
        .map(|p| format!("{}={}", p.param("FBTYPE").unwrap_or(""), p.value))
        .collect();
    assert_eq!(
        lines,
        vec![
            "BUSY=20240301T080000Z/20240301T083000Z,20240301T090000Z/20240301T110000Z",
            "BUSY-TENTATIVE=20240301T120000Z/20240301T130000Z",
        ]
    );
    assert_eq!(fb.prop("DTSTART").unwrap().value, "20240301T000000Z");
    let _ = NS_DAV;
}

pub async fn partial_retrieval(s: &TestServer) {
    put(s, "p", &cal(&vevent("p", "DTSTART:20240101T100000Z\r\nSUMMARY:Secret plans\r\nDESCRIPTION:long text\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n"))).await;
    let body = r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data>
        <C:comp name="VCALENDAR"><C:allprop/><C:comp name="VEVENT"><C:prop name="UID"/><C:prop name="DTSTART"/><C:prop name="SUMMARY" novalue="yes"/></C:comp></C:comp>
        </C:calendar-data></D:prop><D:href>/calendars/alice/default/p.ics</D:href></C:calendar-multiget>"#;
    let r = s.req("REPORT", CAL).xml(body).send().await;
    let data = r.prop_text("/calendars/alice/default/p.ics", NS_CALDAV, "calendar-data");
    assert!(
        data.contains("UID:p")
            && data.contains("DTSTART:20240101T100000Z")
            && data.contains("SUMMARY:\r\n"),
        "{data}"
    );
    assert!(
        !data.contains("DESCRIPTION") && !data.contains("VALARM") && !data.contains("Secret"),
        "{data}"
    );
    assert!(
        data.contains("PRODID"),
        "VCALENDAR allprop keeps its properties: {data}"
    );
    let bad = r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data content-type="application/json"/></D:prop><D:href>/calendars/alice/default/p.ics</D:href></C:calendar-multiget>"#;
    s.req("REPORT", CAL)
        .xml(bad)
        .send()
        .await
        .status(403)
        .precondition(NS_CALDAV, "supported-calendar-data");
}

pub async fn invalid_recurrence_is_refused(s: &TestServer) {
    for lines in [
        "DTSTART:20240101T100000Z\r\nRRULE:FREQ=SOMETIMES\r\n",
        "DTSTART:20240101T100000Z\r\nRRULE:FREQ=DAILY;BYHOUR=25\r\n",
        "DTSTART:20240101T100000Z\r\nRRULE:FREQ=MONTHLY;BYMONTHDAY=40\r\n",
        "DTSTART:20240101T100000Z\r\nRRULE:FREQ=DAILY;INTERVAL=0\r\n",
        "DTSTART:20240101T100000Z\r\nRRULE:COUNT=3\r\n",
        "DTSTART:20240101T100000Z\r\nEXDATE:2024-01-02\r\n",
        "RRULE:FREQ=DAILY\r\n",
    ] {
        let r = s
            .req("PUT", "/calendars/alice/default/bad.ics")
            .ics(&cal(&vevent("bad", lines)))
            .send()
            .await;
        r.status(403).precondition(NS_CALDAV, "valid-calendar-data");
    }
    // An absurd COUNT is valid: it is merely a long series, bounded by query windows.
    put(
        s,
        "long",
        &cal(&vevent(
            "long",
            "DTSTART:20240101T100000Z\r\nRRULE:FREQ=SECONDLY;COUNT=4000000000\r\n",
        )),
    )
    .await;
    let r = expand_query(s, "20240101T100000Z", "20240101T100003Z", None).await;
    assert_eq!(
        starts(&r, "long"),
        vec!["20240101T100000Z", "20240101T100001Z", "20240101T100002Z"]
    );
}

pub async fn work_limit_is_enforced(s: &TestServer) {
    put(
        s,
        "sec",
        &cal(&vevent(
            "sec",
            "DTSTART:20240101T000000Z\r\nRRULE:FREQ=SECONDLY\r\n",
        )),
    )
    .await;
    // A year of every second is ~31 million instances: refused with a clear error, not computed.
    let body = r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>
        <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20240101T000000Z" end="20250101T000000Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#;
    let r = s.req("REPORT", CAL).depth("1").xml(body).send().await;
    r.status(507)
        .precondition(NS_DAV, "number-of-matches-within-limits");
    let r = expand_query_raw(s, "20240101T000000Z", "20250101T000000Z").await;
    r.status(507)
        .precondition(NS_DAV, "number-of-matches-within-limits");
}

async fn expand_query_raw(s: &TestServer, start: &str, end: &str) -> Resp {
    let body = format!(
        r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>
        <C:calendar-data><C:expand start="{start}" end="{end}"/></C:calendar-data></D:prop>
        <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#
    );
    s.req("REPORT", CAL).depth("1").xml(&body).send().await
}

/// The SQL prefilter hands the exact filter only the objects whose bounds meet the window, so
/// a query costs the same in a calendar of 100 unrelated events as in one of 100,000.
pub async fn query_cost_follows_candidates(s: &TestServer) {
    use almanac::ical::{CalendarObject, ComponentKind};
    use almanac::store::{Candidates, NewCalendar};
    let p = s.store.principal_by_name("alice").await.unwrap().unwrap();
    let (from, to) = (1_717_372_800, 1_717_977_600); // 2024-06-03 .. 2024-06-10
    for (name, unrelated) in [("small", 100usize), ("large", 100_000)] {
        let new = NewCalendar {
            name: name.into(),
            components: vec![ComponentKind::Event],
            ..Default::default()
        };
        let col = s.store.create_calendar(p.id, &new).await.unwrap();
        let mut objs = Vec::with_capacity(unrelated + 10);
        for i in 0..unrelated {
            // Spread over 2019-2023, far from the query week.
            let day = 1_546_300_800 + (i as i64 % 1800) * 86_400;
            let ics = cal(&vevent(
                &format!("u{i}"),
                &format!(
                    "DTSTART:{}\r\nDURATION:PT1H\r\n",
                    almanac::ical::freebusy::utc_stamp(day + 36_000)
                ),
            ));
            objs.push((format!("u{i}.ics"), CalendarObject::from_ics(ics).unwrap()));
        }
        for i in 0..10 {
            let ics = cal(&vevent(
                &format!("r{i}"),
                &format!(
                    "DTSTART:{}\r\nDURATION:PT1H\r\n",
                    almanac::ical::freebusy::utc_stamp(from + i * 3600 * 12)
                ),
            ));
            objs.push((format!("r{i}.ics"), CalendarObject::from_ics(ics).unwrap()));
        }
        for chunk in objs.chunks(20_000) {
            s.store
                .import_objects(col.id, chunk, i64::MAX)
                .await
                .unwrap();
        }
        let cand = Candidates {
            component: Some(ComponentKind::Event),
            from: Some(from),
            to: Some(to),
        };
        let n = s.store.candidates(col.id, &cand).await.unwrap().len();
        assert_eq!(
            n,
            10,
            "{name}: the index yields only the 10 events of the week out of {}",
            unrelated + 10
        );
        let body = r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20240603T000000Z" end="20240610T000000Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#;
        let r = s
            .req("REPORT", &format!("/calendars/alice/{name}/"))
            .depth("1")
            .xml(body)
            .send()
            .await;
        assert_eq!(r.status(207).hrefs().len(), 10);
    }
}

pub async fn recurring_length_is_exact_across_dst(s: &TestServer) {
    // RFC 5545 §3.8.5.3: DTEND fixes the exact length of every instance. The first instance
    // spans the October change (91 h); the second, which does not, still lasts 91 h.
    let ics = cal(&format!(
        "{BERLIN}{}",
        vevent("len", "DTSTART;TZID=Europe/Berlin:20251025T120000\r\nDTEND;TZID=Europe/Berlin:20251029T060000\r\nRRULE:FREQ=DAILY;COUNT=2\r\n")
    ));
    put(s, "len", &ics).await;
    let hit = expand_query(s, "20251030T050000Z", "20251030T060000Z", None).await;
    assert_eq!(starts(&hit, "len"), vec!["20251026T110000Z"]);
    let data = hit.prop_text(
        "/calendars/alice/default/len.ics",
        NS_CALDAV,
        "calendar-data",
    );
    assert!(data.contains("DTEND:20251030T060000Z"), "{data}");
    let miss = expand_query(s, "20251030T060000Z", "20251030T070000Z", None).await;
    assert!(starts(&miss, "len").is_empty());
}

pub async fn time_range_on_vcalendar_matches_components(s: &TestServer) {
    // python-caldav's search(start, end) without a component type puts the time-range on
    // VCALENDAR itself; it means "has an occurrence in the range".
    put(
        s,
        "in",
        &cal(&vevent(
            "in",
            "DTSTART:20240301T100000Z\r\nDURATION:PT1H\r\n",
        )),
    )
    .await;
    put(
        s,
        "out",
        &cal(&vevent(
            "out",
            "DTSTART:20240401T100000Z\r\nDURATION:PT1H\r\n",
        )),
    )
    .await;
    let f = r#"<C:comp-filter name="VCALENDAR"><C:time-range start="20240301T000000Z" end="20240302T000000Z"/></C:comp-filter>"#;
    assert_eq!(query_hrefs(s, f).await, vec!["in"]);
}
