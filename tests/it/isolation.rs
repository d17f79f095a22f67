//! Isolation between users: bob can neither read, list, write, delete, copy or move into or
//! out of, nor learn the existence of alice's calendars and objects — through any method,
//! any report, hrefs inside request bodies, sync tokens or Destination headers.
//!
//! "Cannot learn the existence" is tested as indistinguishability: for every probe, the
//! answer about alice's real calendar or object is byte-for-byte the answer about one that
//! does not exist (in alice's namespace and in a user's that does not exist), and no answer
//! contains anything of alice's data.

use crate::support::*;
use almanac::dav::xml::{NS_CALDAV, NS_DAV};

const SECRET_CAL: &str = "/calendars/alice/secret-project/";
const SECRET_OBJ: &str = "/calendars/alice/secret-project/lawyer-meeting.ics";
/// What bob must never see: the calendar's name, the event's summary and UID, alice's
/// address. (Paths bob sends himself may come back, as in multiget's per-href 404.)
const SECRETS: [&str; 4] = [
    "Project Nightingale",
    "Meeting with divorce lawyer",
    "uid-lawyer-7f3a",
    "alice@example.com",
];

fn secret_event() -> String {
    event("uid-lawyer-7f3a", "Meeting with divorce lawyer")
}

/// alice's data: a named calendar with one event. Returns the event's ETag and the sync
/// tokens of the calendar and of alice's home.
async fn alice_setup(s: &TestServer) -> (String, String, String) {
    s.req("MKCALENDAR", SECRET_CAL)
        .xml(r#"<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:displayname>Project Nightingale</D:displayname></D:prop></D:set></C:mkcalendar>"#)
        .send()
        .await
        .status(201);
    let etag = s
        .req("PUT", SECRET_OBJ)
        .ics(&secret_event())
        .send()
        .await
        .status(201)
        .header("etag")
        .expect("etag")
        .to_owned();
    let cal_token = s
        .req("REPORT", SECRET_CAL)
        .xml(&sync_body("", ""))
        .send()
        .await
        .sync_token();
    let home_token = s
        .req("REPORT", "/calendars/alice/")
        .xml(&sync_body("", ""))
        .send()
        .await
        .sync_token();
    (etag, cal_token, home_token)
}

#[track_caller]
fn no_leak(r: &Resp, etag: &str, what: &str) {
    for secret in SECRETS.iter().copied().chain([etag]) {
        assert!(
            !r.body.contains(secret),
            "{what}: the answer contains {secret:?}: {r:?}"
        );
        for (k, v) in &r.headers {
            assert!(
                !v.to_str().unwrap_or_default().contains(secret),
                "{what}: header {k} contains {secret:?}"
            );
        }
    }
}

/// A request bob sends about `target`.
struct Probe {
    name: &'static str,
    method: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
}

fn probe(name: &'static str, method: &'static str) -> Probe {
    Probe {
        name,
        method,
        headers: Vec::new(),
        body: None,
    }
}

impl Probe {
    fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
    fn body(mut self, b: impl Into<String>) -> Self {
        self.body = Some(b.into());
        self
    }
}

/// Every way bob could ask about `target` (alice's token and ETag included, as if leaked).
fn probes(target: &str, etag: &str, cal_token: &str) -> Vec<Probe> {
    let xml = "application/xml; charset=utf-8";
    let query = r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>"#;
    let multiget = format!(
        r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop><D:href>{target}</D:href><D:href>{SECRET_OBJ}</D:href></C:calendar-multiget>"#
    );
    let free_busy = r#"<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="20240101T000000Z" end="20250101T000000Z"/></C:free-busy-query>"#;
    let expand_property = r#"<D:expand-property xmlns:D="DAV:"><D:property name="displayname"/><D:property name="calendar-home-set" namespace="urn:ietf:params:xml:ns:caldav"/><D:property name="calendar-user-address-set" namespace="urn:ietf:params:xml:ns:caldav"/></D:expand-property>"#;
    let proppatch = r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>owned by bob</D:displayname></D:prop></D:set></D:propertyupdate>"#;
    let mkcol = r#"<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:resourcetype><D:collection/><C:calendar/></D:resourcetype></D:prop></D:set></D:mkcol>"#;
    let evil = event("uid-lawyer-7f3a", "Overwritten by bob");
    vec![
        probe("OPTIONS", "OPTIONS"),
        probe("GET", "GET"),
        probe("HEAD", "HEAD"),
        probe("GET with If-None-Match", "GET").header("If-None-Match", etag),
        probe("DELETE", "DELETE"),
        probe("DELETE with If-Match", "DELETE").header("If-Match", etag),
        probe("PUT", "PUT").header("Content-Type", "text/calendar").body(evil.clone()),
        probe("PUT create-only", "PUT")
            .header("Content-Type", "text/calendar")
            .header("If-None-Match", "*")
            .body(evil.clone()),
        probe("PUT with If-Match", "PUT")
            .header("Content-Type", "text/calendar")
            .header("If-Match", etag)
            .body(evil),
        probe("PROPFIND allprop", "PROPFIND").header("Depth", "0"),
        probe("PROPFIND depth 1", "PROPFIND")
            .header("Depth", "1")
            .header("Content-Type", xml)
            .body(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:displayname/><D:getetag/><D:sync-token/></D:prop></D:propfind>"#),
        probe("PROPFIND propname", "PROPFIND")
            .header("Depth", "0")
            .header("Content-Type", xml)
            .body(r#"<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>"#),
        probe("PROPPATCH", "PROPPATCH").header("Content-Type", xml).body(proppatch),
        probe("MKCALENDAR", "MKCALENDAR"),
        probe("MKCOL", "MKCOL").header("Content-Type", xml).body(mkcol),
        probe("COPY out", "COPY").header("Destination", "/calendars/bob/default/stolen.ics"),
        probe("MOVE out", "MOVE").header("Destination", "/calendars/bob/default/stolen.ics"),
        probe("COPY onto itself", "COPY").header("Destination", target),
        probe("calendar-query", "REPORT")
            .header("Depth", "1")
            .header("Content-Type", xml)
            .body(query),
        probe("calendar-multiget", "REPORT")
            .header("Depth", "1")
            .header("Content-Type", xml)
            .body(multiget),
        probe("sync-collection, initial", "REPORT")
            .header("Content-Type", xml)
            .body(sync_body("", "<D:sync-level>1</D:sync-level>")),
        probe("sync-collection, alice's token", "REPORT")
            .header("Content-Type", xml)
            .body(sync_body(cal_token, "")),
        probe("free-busy-query", "REPORT")
            .header("Depth", "1")
            .header("Content-Type", xml)
            .body(free_busy),
        probe("expand-property", "REPORT")
            .header("Depth", "0")
            .header("Content-Type", xml)
            .body(expand_property),
        probe("POST", "POST").header("Content-Type", "text/calendar").body("x"),
        probe("LOCK", "LOCK"),
        probe("ACL", "ACL"),
    ]
}

/// What an answer says, with the asked-for path replaced so answers about different paths
/// compare equal when they carry the same information.
fn shape(r: &Resp, target: &str) -> String {
    let h = |k: &str| r.header(k).unwrap_or("-").to_owned();
    format!(
        "{} | content-type {} | allow {} | dav {} | etag {} | {}",
        r.status,
        h("content-type"),
        h("allow"),
        h("dav"),
        h("etag"),
        r.body.replace(target, "{TARGET}")
    )
}

async fn send_probe(s: &TestServer, p: &Probe, target: &str) -> Resp {
    let mut req = s.req_as(Some(BOB), p.method, target);
    for (k, v) in &p.headers {
        req = req.header(k, v);
    }
    if let Some(b) = &p.body {
        req = req.body(b.clone());
    }
    req.send().await
}

/// For every probe and every kind of target, the answer about alice's existing resource is
/// exactly the answer about a resource that does not exist, and it is a 404.
pub async fn foreign_resources_are_indistinguishable_from_missing(s: &TestServer) {
    let (etag, cal_token, _) = alice_setup(s).await;
    let before = snapshot(s, ALICE).await;
    let groups: [(&str, [&str; 3]); 4] = [
        (
            "object",
            [
                SECRET_OBJ,
                "/calendars/alice/secret-project/absent.ics",
                "/calendars/nobody/absent-cal/absent.ics",
            ],
        ),
        (
            "calendar",
            [
                SECRET_CAL,
                "/calendars/alice/absent-cal/",
                "/calendars/nobody/absent-cal/",
            ],
        ),
        (
            "home",
            [
                "/calendars/alice/",
                "/calendars/nobody/",
                "/calendars/nobody2/",
            ],
        ),
        (
            "principal",
            [
                "/principals/alice/",
                "/principals/nobody/",
                "/principals/nobody2/",
            ],
        ),
    ];
    let mut failures = Vec::new();
    let mut probed = 0;
    for (kind, targets) in groups {
        for (i, p) in probes(targets[0], &etag, &cal_token).iter().enumerate() {
            let mut answers = Vec::new();
            for t in targets {
                // The same probe, rebuilt for this target (multiget names the target).
                let p_t = &probes(t, &etag, &cal_token)[i];
                let r = send_probe(s, p_t, t).await;
                no_leak(&r, &etag, &format!("{} on {t}", p.name));
                if r.status != 404 {
                    failures.push(format!(
                        "{} on {kind} {t}: {} (expected 404)",
                        p.name, r.status
                    ));
                }
                answers.push(shape(&r, t));
                probed += 1;
            }
            if answers.iter().any(|a| *a != answers[0]) {
                failures.push(format!(
                    "{} on a {kind}: answers differ\n  {}",
                    p.name,
                    answers.join("\n  ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(probed > 300, "only {probed} probes ran");
    assert_eq!(
        snapshot(s, ALICE).await,
        before,
        "bob's probes changed alice's data"
    );
    assert_eq!(
        s.req("GET", SECRET_OBJ).send().await.status(200).body,
        secret_event()
    );
}

/// From his own calendars bob cannot reach into alice's: Destination headers pointing at her
/// calendars or objects (existing or not, any spelling) are refused alike; multiget hrefs of
/// hers in his calendar are 404s; her sync tokens are refused like made-up ones; her UID
/// does not collide with his; listings show him only himself.
pub async fn own_space_requests_cannot_reach_foreign_data(s: &TestServer) {
    let (etag, cal_token, home_token) = alice_setup(s).await;
    let before = snapshot(s, ALICE).await;
    let bob = Some(BOB);
    let mine = "/calendars/bob/default/mine.ics";
    s.req_as(bob, "PUT", mine)
        .ics(&event("bob-1", "Bob's"))
        .send()
        .await
        .status(201);
    let host = format!("http://{}", s.addr);
    // Destinations in alice's namespace, existing or not, in every spelling: one answer.
    let mut answers = Vec::new();
    for dest in [
        SECRET_OBJ.to_owned(),
        "/calendars/alice/secret-project/new.ics".to_owned(),
        "/calendars/alice/absent-cal/new.ics".to_owned(),
        "/calendars/nobody/absent-cal/new.ics".to_owned(),
        format!("{host}{SECRET_OBJ}"),
        "https://elsewhere.example/calendars/alice/secret-project/lawyer-meeting.ics".to_owned(),
        "/calendars/%61lice/secret-project/lawyer-meeting.ics".to_owned(),
    ] {
        for m in ["COPY", "MOVE"] {
            for overwrite in ["T", "F"] {
                let r = s
                    .req_as(bob, m, mine)
                    .header("Destination", &dest)
                    .header("Overwrite", overwrite)
                    .send()
                    .await;
                no_leak(&r, &etag, &format!("{m} to {dest}"));
                answers.push((format!("{m} {overwrite} → {dest}"), shape(&r, &dest)));
            }
        }
    }
    let first = answers[0].1.clone();
    assert!(first.starts_with("403 "), "{first}");
    for (what, a) in &answers {
        assert_eq!(a, &first, "{what} answers differently");
    }
    assert_eq!(
        s.req_as(bob, "GET", mine).send().await.status(200).body,
        event("bob-1", "Bob's"),
        "bob's own object stayed where it was"
    );
    // multiget in bob's calendar naming alice's resources in every spelling.
    let hrefs = [
        SECRET_OBJ.to_owned(),
        format!("{host}{SECRET_OBJ}"),
        "/calendars/%61lice/secret-project/lawyer-meeting.ics".to_owned(),
        "/calendars/alice/secret-project/absent.ics".to_owned(),
        "/calendars/bob/../alice/secret-project/lawyer-meeting.ics".to_owned(),
        SECRET_CAL.to_owned(),
    ];
    let body = format!(
        r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>{}<D:href>{mine}</D:href></C:calendar-multiget>"#,
        hrefs
            .iter()
            .map(|h| format!("<D:href>{h}</D:href>"))
            .collect::<String>()
    );
    let r = s
        .req_as(bob, "REPORT", "/calendars/bob/default/")
        .depth("1")
        .xml(&body)
        .send()
        .await;
    r.status(207);
    no_leak(&r, &etag, "multiget of alice's hrefs");
    for h in &hrefs {
        assert_eq!(r.response_status(h), Some(404), "multiget {h}: {r:?}");
    }
    assert!(
        r.prop(mine, NS_CALDAV, "calendar-data").is_some(),
        "bob's own href is served"
    );
    // alice's sync tokens on bob's collections are refused exactly like made-up ones.
    let forged = {
        let (head, rev) = cal_token.rsplit_once(':').expect("token");
        let (inst, _) = head.rsplit_once(':').expect("token");
        format!("{inst}:999999:{rev}")
    };
    for (path, token) in [
        ("/calendars/bob/default/", cal_token.as_str()),
        ("/calendars/bob/default/", home_token.as_str()),
        ("/calendars/bob/", home_token.as_str()),
        ("/calendars/bob/", cal_token.as_str()),
    ] {
        let real = s
            .req_as(bob, "REPORT", path)
            .xml(&sync_body(token, ""))
            .send()
            .await;
        real.status(403).precondition(NS_DAV, "valid-sync-token");
        no_leak(&real, &etag, "sync with alice's token");
        let made_up = s
            .req_as(bob, "REPORT", path)
            .xml(&sync_body(&forged, ""))
            .send()
            .await;
        assert_eq!(
            shape(&real, token),
            shape(&made_up, &forged),
            "{path} with {token}"
        );
    }
    // alice's UID is no conflict in bob's calendar (and names nothing of hers).
    s.req_as(bob, "PUT", "/calendars/bob/default/same-uid.ics")
        .ics(&event("uid-lawyer-7f3a", "Bob's own"))
        .send()
        .await
        .status(201);
    // Queries in bob's calendar find only bob's data, whatever they filter on.
    let q = r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match>lawyer</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#;
    let r = s
        .req_as(bob, "REPORT", "/calendars/bob/default/")
        .depth("1")
        .xml(q)
        .send()
        .await;
    r.status(207);
    assert!(r.hrefs().is_empty(), "{:?}", r.hrefs());
    let fb = r#"<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="20240101T000000Z" end="20250101T000000Z"/></C:free-busy-query>"#;
    let r = s
        .req_as(bob, "REPORT", "/calendars/bob/default/")
        .xml(fb)
        .send()
        .await;
    r.status(200);
    no_leak(&r, &etag, "bob's free-busy");
    // Listings and discovery show bob only himself.
    for (path, expected) in [
        ("/", vec!["/", "/principals/", "/calendars/"]),
        ("/principals/", vec!["/principals/", "/principals/bob/"]),
        ("/calendars/", vec!["/calendars/", "/calendars/bob/"]),
        (
            "/calendars/bob/",
            vec!["/calendars/bob/", "/calendars/bob/default/"],
        ),
    ] {
        let r = s.req_as(bob, "PROPFIND", path).depth("1").send().await;
        r.status(207);
        assert_eq!(r.hrefs(), expected, "PROPFIND {path}");
        no_leak(&r, &etag, &format!("PROPFIND {path}"));
        assert!(
            !r.body.contains("alice"),
            "PROPFIND {path} names alice: {}",
            r.body
        );
    }
    let r = s
        .req_as(bob, "REPORT", "/calendars/bob/")
        .depth("1")
        .xml(&sync_body("", "<D:sync-level>1</D:sync-level>"))
        .send()
        .await;
    assert_eq!(r.status(207).hrefs(), vec!["/calendars/bob/default/"]);
    let r = s
        .req_as(bob, "REPORT", "/principals/bob/")
        .depth("0")
        .xml(r#"<D:expand-property xmlns:D="DAV:"><D:property name="calendar-home-set" namespace="urn:ietf:params:xml:ns:caldav"/><D:property name="calendar-user-address-set" namespace="urn:ietf:params:xml:ns:caldav"/></D:expand-property>"#)
        .send()
        .await;
    r.status(207);
    assert!(!r.body.contains("alice"), "{}", r.body);
    // Principal searches are not offered at all.
    for body in [
        r#"<D:principal-property-search xmlns:D="DAV:"><D:property-search><D:prop><D:displayname/></D:prop><D:match>ali</D:match></D:property-search></D:principal-property-search>"#,
        r#"<D:principal-search-property-set xmlns:D="DAV:"/>"#,
    ] {
        let r = s
            .req_as(bob, "REPORT", "/principals/")
            .xml(body)
            .send()
            .await;
        assert!(matches!(r.status, 403 | 405), "{r:?}");
        assert!(!r.body.contains("alice"), "{}", r.body);
    }
    // Nothing of alice's changed; her sync from before shows no change at all.
    assert_eq!(snapshot(s, ALICE).await, before, "bob changed alice's data");
    let r = s
        .req("REPORT", SECRET_CAL)
        .xml(&sync_body(&cal_token, ""))
        .send()
        .await;
    assert!(r.status(207).hrefs().is_empty(), "{:?}", r.hrefs());
    let mut bobs = s
        .req_as(bob, "PROPFIND", "/calendars/bob/default/")
        .depth("1")
        .send()
        .await
        .hrefs();
    bobs.sort();
    assert_eq!(
        bobs,
        vec![
            "/calendars/bob/default/",
            "/calendars/bob/default/mine.ics",
            "/calendars/bob/default/same-uid.ics"
        ]
    );
}
