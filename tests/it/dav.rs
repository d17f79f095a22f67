//! WebDAV/CalDAV core: discovery, OPTIONS, PROPFIND, PROPPATCH, MKCALENDAR, extended MKCOL.

use crate::support::*;
use almanac::dav::xml::{NS_CALDAV, NS_CS, NS_DAV, NS_ICAL};

const PROPFIND_DISCOVERY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:current-user-principal/><D:resourcetype/><C:calendar-home-set/></D:prop>
</D:propfind>"#;

pub async fn discovery_from_root(s: &TestServer) {
    // Root and every resource answer current-user-principal.
    let r = s
        .req("PROPFIND", "/")
        .depth("0")
        .xml(PROPFIND_DISCOVERY)
        .send()
        .await;
    r.status(207);
    let cup = r
        .prop("/", NS_DAV, "current-user-principal")
        .expect("current-user-principal on /");
    assert_eq!(
        cup.child(NS_DAV, "href").map(|h| h.text()).as_deref(),
        Some("/principals/alice/")
    );
    let p = s
        .req("PROPFIND", "/principals/alice/")
        .depth("0")
        .xml(
            r#"<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>
            <C:calendar-home-set/><C:calendar-user-address-set/><D:principal-URL/><D:resourcetype/>
            <D:displayname/><D:principal-collection-set/></D:prop></D:propfind>"#,
        )
        .send()
        .await;
    p.status(207);
    let home = p
        .prop("/principals/alice/", NS_CALDAV, "calendar-home-set")
        .expect("home set");
    let hrefs: Vec<String> = home
        .children_named(NS_DAV, "href")
        .map(|h| h.text())
        .collect();
    assert_eq!(
        hrefs,
        vec!["/calendars/alice/".to_string()],
        "exactly one calendar-home-set href"
    );
    let addrs = p
        .prop("/principals/alice/", NS_CALDAV, "calendar-user-address-set")
        .expect("address set");
    let first = addrs
        .children_named(NS_DAV, "href")
        .next()
        .map(|h| h.text());
    assert_eq!(first.as_deref(), Some("mailto:alice@example.com"));
    let rt = p
        .prop("/principals/alice/", NS_DAV, "resourcetype")
        .unwrap();
    assert!(rt.child(NS_DAV, "principal").is_some());
    // Home listing shows the default calendar with what clients need.
    let h = s
        .req("PROPFIND", "/calendars/alice/")
        .depth("1")
        .xml(
            r#"<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/"><D:prop>
            <D:resourcetype/><D:displayname/><C:supported-calendar-component-set/><D:current-user-privilege-set/>
            <D:supported-report-set/><D:sync-token/><CS:getctag/><D:owner/><D:quota-used-bytes/><D:quota-available-bytes/>
            </D:prop></D:propfind>"#,
        )
        .send()
        .await;
    h.status(207);
    assert_eq!(h.hrefs(), vec!["/calendars/alice/", CAL]);
    let rt = h.prop(CAL, NS_DAV, "resourcetype").unwrap();
    assert!(rt.child(NS_DAV, "collection").is_some() && rt.child(NS_CALDAV, "calendar").is_some());
    assert_eq!(h.prop_text(CAL, NS_DAV, "displayname"), "Calendar");
    let comps: Vec<String> = h
        .prop(CAL, NS_CALDAV, "supported-calendar-component-set")
        .unwrap()
        .children_named(NS_CALDAV, "comp")
        .map(|c| c.attr("name").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(comps, vec!["VEVENT", "VTODO"]);
    let privs = h.prop(CAL, NS_DAV, "current-user-privilege-set").unwrap();
    assert!(privs
        .children_named(NS_DAV, "privilege")
        .any(|p| p.child(NS_DAV, "write-content").is_some()));
    // Apple turns sync on only when the home advertises sync-collection.
    for href in ["/calendars/alice/", CAL] {
        let reports = h.prop(href, NS_DAV, "supported-report-set").unwrap();
        let has_sync = reports
            .children_named(NS_DAV, "supported-report")
            .any(|sr| {
                sr.child(NS_DAV, "report")
                    .and_then(|r| r.child(NS_DAV, "sync-collection"))
                    .is_some()
            });
        assert!(has_sync, "{href} advertises sync-collection");
        let token = h.prop_text(href, NS_DAV, "sync-token");
        assert!(
            token.starts_with("urn:"),
            "sync token is an absolute URI: {token}"
        );
        assert_eq!(h.prop_text(href, NS_CS, "getctag"), token);
    }
    assert_eq!(h.prop_text(CAL, NS_DAV, "quota-used-bytes"), "0");
    assert!(
        h.prop_text(CAL, NS_DAV, "quota-available-bytes")
            .parse::<u64>()
            .unwrap()
            > 0
    );
}

pub async fn well_known_redirects_without_auth(s: &TestServer) {
    for m in ["GET", "PROPFIND"] {
        let r = s.req_as(None, m, "/.well-known/caldav").send().await;
        r.status(301).has_header("location", "/");
    }
    // Everything else needs credentials.
    s.req_as(None, "PROPFIND", "/")
        .depth("0")
        .send()
        .await
        .status(401);
}

pub async fn options_advertise_calendar_access(s: &TestServer) {
    for (path, must_allow, must_not) in [
        ("/principals/alice/", "PROPFIND", "PUT"),
        ("/calendars/alice/", "PROPPATCH", "DELETE"),
        (CAL, "REPORT", "PUT"),
        ("/calendars/alice/default/new.ics", "PUT", "GET"),
        ("/calendars/alice/newcal/", "MKCALENDAR", "PUT"),
    ] {
        let r = s.req("OPTIONS", path).send().await;
        r.status(200)
            .has_header("dav", "calendar-access")
            .has_header("dav", "extended-mkcol");
        let allow = r.header("allow").unwrap_or_default().to_owned();
        assert!(
            allow.split(", ").any(|m| m == must_allow),
            "{path}: Allow {allow} lacks {must_allow}"
        );
        assert!(
            !allow.split(", ").any(|m| m == must_not),
            "{path}: Allow {allow} has {must_not}"
        );
    }
    // A method the resource does not support: 405 with Allow.
    let r = s.req("PUT", CAL).ics(&event("x", "x")).send().await;
    r.status(405).has_header("allow", "PROPFIND");
    s.req("BREW", CAL).send().await.status(405);
}

pub async fn propfind_depths_and_unknown_props(s: &TestServer) {
    let body = r#"<D:propfind xmlns:D="DAV:" xmlns:X="urn:example:x"><D:prop><D:displayname/><X:nothing/></D:prop></D:propfind>"#;
    let r = s.req("PROPFIND", CAL).depth("0").xml(body).send().await;
    r.status(207);
    assert_eq!(r.hrefs(), vec![CAL]);
    let st = r.prop_statuses(CAL);
    assert!(
        st.contains(&("displayname".into(), 200)) && st.contains(&("nothing".into(), 404)),
        "{st:?}"
    );
    // return=minimal leaves out the 404 propstat.
    let r = s
        .req("PROPFIND", CAL)
        .depth("0")
        .header("Prefer", "return=minimal")
        .xml(body)
        .send()
        .await;
    assert!(!r.prop_statuses(CAL).iter().any(|(_, c)| *c == 404));
    let r = s
        .req("PROPFIND", CAL)
        .depth("infinity")
        .xml(body)
        .send()
        .await;
    r.status(403).precondition(NS_DAV, "propfind-finite-depth");
    s.req("PROPFIND", CAL)
        .depth("2")
        .xml(body)
        .send()
        .await
        .status(400);
    s.req("PROPFIND", CAL)
        .depth("banana")
        .xml(body)
        .send()
        .await
        .status(400);
    // Objects are listed with getetag and a text/calendar content type (DAVx5, Thunderbird).
    s.req("PUT", "/calendars/alice/default/e1.ics")
        .ics(&event("e1", "One"))
        .send()
        .await
        .status(201);
    let r = s
        .req("PROPFIND", CAL)
        .depth("1")
        .xml(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:getcontenttype/><D:resourcetype/></D:prop></D:propfind>"#)
        .send()
        .await;
    let obj = "/calendars/alice/default/e1.ics";
    assert!(r.prop_text(obj, NS_DAV, "getetag").starts_with('"'));
    assert!(r
        .prop_text(obj, NS_DAV, "getcontenttype")
        .starts_with("text/calendar"));
    // Missing resource.
    s.req("PROPFIND", "/calendars/alice/nope/")
        .depth("0")
        .send()
        .await
        .status(404);
    s.req("PROPFIND", "/elsewhere/")
        .depth("0")
        .send()
        .await
        .status(404);
}

pub async fn propfind_propname_and_allprop(s: &TestServer) {
    let r = s
        .req("PROPFIND", CAL)
        .depth("0")
        .xml(r#"<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>"#)
        .send()
        .await;
    r.status(207);
    let names: Vec<String> = r.prop_statuses(CAL).into_iter().map(|(n, _)| n).collect();
    for n in [
        "resourcetype",
        "sync-token",
        "getctag",
        "supported-calendar-component-set",
    ] {
        assert!(
            names.contains(&n.to_string()),
            "propname lists {n}: {names:?}"
        );
    }
    assert!(
        r.prop(CAL, NS_DAV, "resourcetype")
            .unwrap()
            .elements()
            .next()
            .is_none(),
        "propname values are empty"
    );
    // An empty body is allprop.
    let r = s.req("PROPFIND", CAL).depth("0").send().await;
    r.status(207);
    assert_eq!(r.prop_text(CAL, NS_DAV, "displayname"), "Calendar");
    let r = s
        .req("PROPFIND", CAL)
        .depth("0")
        .xml(r#"<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:allprop/><D:include><CS:getctag/></D:include></D:propfind>"#)
        .send()
        .await;
    assert!(r.prop_text(CAL, NS_CS, "getctag").starts_with("urn:"));
}

pub async fn malformed_xml_is_400(s: &TestServer) {
    for body in [
        "<D:propfind xmlns:D=\"DAV:\"><D:prop>",
        "not xml at all",
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]><D:propfind xmlns:D=\"DAV:\">&a;</D:propfind>",
        "<x:propfind/>",
    ] {
        s.req("PROPFIND", CAL).depth("0").xml(body).send().await.status(400);
        s.req("REPORT", CAL).depth("0").xml(body).send().await.status(400);
        s.req("PROPPATCH", CAL).xml(body).send().await.status(400);
    }
    s.req("PROPFIND", CAL)
        .depth("0")
        .xml("<D:nope xmlns:D=\"DAV:\"/>")
        .send()
        .await
        .status(400);
}

const APPLE_MKCALENDAR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<B:mkcalendar xmlns:B="urn:ietf:params:xml:ns:caldav">
  <A:set xmlns:A="DAV:">
    <A:prop>
      <D:calendar-order xmlns:D="http://apple.com/ns/ical/">3</D:calendar-order>
      <B:supported-calendar-component-set><B:comp name="VEVENT"/></B:supported-calendar-component-set>
      <D:calendar-color xmlns:D="http://apple.com/ns/ical/" symbolic-color="custom">#3F51B5FF</D:calendar-color>
      <B:calendar-timezone><![CDATA[BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Apple Inc.//Mac OS X 10.11//EN
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
TZNAME:CET
END:STANDARD
END:VTIMEZONE
END:VCALENDAR
]]></B:calendar-timezone>
      <A:displayname>Work</A:displayname>
      <B:calendar-description>Meetings</B:calendar-description>
      <B:calendar-free-busy-set><NO/></B:calendar-free-busy-set>
    </A:prop>
  </A:set>
</B:mkcalendar>"#;

pub async fn mkcalendar_with_props(s: &TestServer) {
    let path = "/calendars/alice/work/";
    s.req("MKCALENDAR", path)
        .xml(APPLE_MKCALENDAR)
        .send()
        .await
        .status(201);
    s.req("MKCALENDAR", path)
        .xml(APPLE_MKCALENDAR)
        .send()
        .await
        .status(405)
        .precondition(NS_DAV, "resource-must-be-null");
    let r = s
        .req("PROPFIND", path)
        .depth("0")
        .xml(
            r#"<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/"><D:prop>
            <D:displayname/><C:calendar-description/><A:calendar-color/><A:calendar-order/><C:calendar-timezone/>
            <C:supported-calendar-component-set/><C:calendar-free-busy-set/></D:prop></D:propfind>"#,
        )
        .send()
        .await;
    r.status(207);
    assert_eq!(r.prop_text(path, NS_DAV, "displayname"), "Work");
    assert_eq!(
        r.prop_text(path, NS_CALDAV, "calendar-description"),
        "Meetings"
    );
    let color = r.prop(path, NS_ICAL, "calendar-color").unwrap();
    assert_eq!(color.text(), "#3F51B5FF");
    assert_eq!(
        color.attr("symbolic-color"),
        Some("custom"),
        "dead property kept verbatim, attributes too"
    );
    assert_eq!(r.prop_text(path, NS_ICAL, "calendar-order"), "3");
    assert!(r
        .prop_text(path, NS_CALDAV, "calendar-timezone")
        .contains("TZID:Europe/Berlin"));
    assert!(r
        .prop(path, NS_CALDAV, "calendar-free-busy-set")
        .unwrap()
        .child("", "NO")
        .is_some());
    // The calendar takes only VEVENT.
    s.req("PUT", "/calendars/alice/work/t.ics")
        .ics(&todo("t1"))
        .send()
        .await
        .status(403)
        .precondition(NS_CALDAV, "supported-calendar-component");
    // Invalid requests create nothing.
    let bad_tz = r#"<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:calendar-timezone>nope</C:calendar-timezone></D:prop></D:set></C:mkcalendar>"#;
    s.req("MKCALENDAR", "/calendars/alice/bad/")
        .xml(bad_tz)
        .send()
        .await
        .status(403)
        .precondition(NS_CALDAV, "valid-calendar-data");
    let bad_comp = r#"<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:supported-calendar-component-set><C:comp name="VCARD"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#;
    s.req("MKCALENDAR", "/calendars/alice/bad/")
        .xml(bad_comp)
        .send()
        .await
        .status(403);
    s.req("PROPFIND", "/calendars/alice/bad/")
        .depth("0")
        .send()
        .await
        .status(404);
    // Not in a calendar home: refused.
    s.req("MKCALENDAR", "/calendars/alice/default/inner/")
        .send()
        .await
        .status(403);
    s.req("MKCALENDAR", "/calendars/bob/mine/")
        .send()
        .await
        .status(404);
    // An empty MKCALENDAR makes a calendar for every component type.
    s.req("MKCALENDAR", "/calendars/alice/plain/")
        .send()
        .await
        .status(201);
    s.req("PUT", "/calendars/alice/plain/t.ics")
        .ics(&todo("t1"))
        .send()
        .await
        .status(201);
}

pub async fn extended_mkcol(s: &TestServer) {
    let body = r#"<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>
        <D:resourcetype><D:collection/><C:calendar/></D:resourcetype><D:displayname>Via MKCOL</D:displayname>
        </D:prop></D:set></D:mkcol>"#;
    s.req("MKCOL", "/calendars/alice/mk/")
        .xml(body)
        .send()
        .await
        .status(201);
    let r = s
        .req("PROPFIND", "/calendars/alice/mk/")
        .depth("0")
        .send()
        .await;
    assert_eq!(
        r.prop_text("/calendars/alice/mk/", NS_DAV, "displayname"),
        "Via MKCOL"
    );
    let plain = r#"<D:mkcol xmlns:D="DAV:"><D:set><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop></D:set></D:mkcol>"#;
    s.req("MKCOL", "/calendars/alice/plain/")
        .xml(plain)
        .send()
        .await
        .status(403)
        .precondition(NS_DAV, "valid-resourcetype");
    s.req("MKCOL", "/calendars/alice/plain2/")
        .send()
        .await
        .status(403);
}

pub async fn proppatch_is_atomic(s: &TestServer) {
    let ok = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/">
        <D:set><D:prop><D:displayname>Renamed</D:displayname><A:calendar-color>#FF0000</A:calendar-color>
        <C:calendar-description>Desc</C:calendar-description><A:calendar-order>2</A:calendar-order></D:prop></D:set></D:propertyupdate>"#;
    let r = s.req("PROPPATCH", CAL).xml(ok).send().await;
    r.status(207);
    assert!(
        r.prop_statuses(CAL).iter().all(|(_, c)| *c == 200),
        "{:?}",
        r.prop_statuses(CAL)
    );
    // One protected property fails the whole request: 403 for it, 424 for the rest, nothing applied.
    let bad = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:A="http://apple.com/ns/ical/">
        <D:set><D:prop><D:displayname>Should not stick</D:displayname><D:getetag>"x"</D:getetag></D:prop></D:set>
        <D:remove><D:prop><A:calendar-color/></D:prop></D:remove></D:propertyupdate>"#;
    let r = s.req("PROPPATCH", CAL).xml(bad).send().await;
    r.status(207);
    let st = r.prop_statuses(CAL);
    assert!(
        st.contains(&("getetag".into(), 403))
            && st.contains(&("displayname".into(), 424))
            && st.contains(&("calendar-color".into(), 424)),
        "{st:?}"
    );
    let r = s.req("PROPFIND", CAL).depth("0").xml(r#"<D:propfind xmlns:D="DAV:" xmlns:A="http://apple.com/ns/ical/"><D:prop><D:displayname/><A:calendar-color/></D:prop></D:propfind>"#).send().await;
    assert_eq!(r.prop_text(CAL, NS_DAV, "displayname"), "Renamed");
    assert_eq!(r.prop_text(CAL, NS_ICAL, "calendar-color"), "#FF0000");
    // Remove works; a removed dead property is then 404.
    let rm = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:A="http://apple.com/ns/ical/"><D:remove><D:prop><A:calendar-color/></D:prop></D:remove></D:propertyupdate>"#;
    s.req("PROPPATCH", CAL).xml(rm).send().await.status(207);
    let r = s.req("PROPFIND", CAL).depth("0").xml(r#"<D:propfind xmlns:D="DAV:" xmlns:A="http://apple.com/ns/ical/"><D:prop><A:calendar-color/></D:prop></D:propfind>"#).send().await;
    assert_eq!(
        r.prop_statuses(CAL),
        vec![("calendar-color".to_string(), 404)]
    );
    // Invalid calendar-timezone value fails.
    let tz = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:calendar-timezone>garbage</C:calendar-timezone></D:prop></D:set></D:propertyupdate>"#;
    let r = s.req("PROPPATCH", CAL).xml(tz).send().await;
    assert_eq!(
        r.prop_statuses(CAL),
        vec![("calendar-timezone".to_string(), 403)]
    );
    // Dead properties on the home (Apple's default alarms).
    let home = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:default-alarm-vevent-date>BEGIN:VALARM
END:VALARM</C:default-alarm-vevent-date></D:prop></D:set></D:propertyupdate>"#;
    s.req("PROPPATCH", "/calendars/alice/")
        .xml(home)
        .send()
        .await
        .status(207);
    let r = s.req("PROPFIND", "/calendars/alice/").depth("0").xml(r#"<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:default-alarm-vevent-date/></D:prop></D:propfind>"#).send().await;
    assert!(r
        .prop_text("/calendars/alice/", NS_CALDAV, "default-alarm-vevent-date")
        .contains("VALARM"));
}

pub async fn delete_calendar(s: &TestServer) {
    s.req("MKCALENDAR", "/calendars/alice/tmp/")
        .send()
        .await
        .status(201);
    s.req("PUT", "/calendars/alice/tmp/a.ics")
        .ics(&event("a", "A"))
        .send()
        .await
        .status(201);
    s.req("DELETE", "/calendars/alice/tmp/")
        .send()
        .await
        .status(204);
    s.req("GET", "/calendars/alice/tmp/a.ics")
        .send()
        .await
        .status(404);
    s.req("PROPFIND", "/calendars/alice/tmp/")
        .depth("0")
        .send()
        .await
        .status(404);
    s.req("DELETE", "/calendars/alice/tmp/")
        .send()
        .await
        .status(404);
    // The home and principal cannot be deleted.
    s.req("DELETE", "/calendars/alice/")
        .send()
        .await
        .status(405);
    s.req("DELETE", "/principals/alice/")
        .send()
        .await
        .status(405);
    // Quota accounting follows deletions.
    let r = s
        .req("PROPFIND", "/calendars/alice/")
        .depth("0")
        .xml(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:quota-used-bytes/></D:prop></D:propfind>"#)
        .send()
        .await;
    assert_eq!(
        r.prop_text("/calendars/alice/", NS_DAV, "quota-used-bytes"),
        "0"
    );
}

pub async fn healthz(s: &TestServer) {
    let r = s.req_as(None, "GET", "/healthz").send().await;
    r.status(200);
}
