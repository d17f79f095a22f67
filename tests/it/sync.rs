//! RFC 6578 sync-collection on calendars and on the calendar home.

use crate::support::*;
use almanac::dav::xml::NS_DAV;

fn obj(n: &str) -> String {
    format!("/calendars/alice/default/{n}.ics")
}

async fn sync(s: &TestServer, path: &str, token: &str, extra: &str) -> Resp {
    let r = s
        .req("REPORT", path)
        .depth("1")
        .xml(&sync_body(token, extra))
        .send()
        .await;
    r.status(207);
    r
}

pub async fn initial_and_incremental_sync(s: &TestServer) {
    // Initial sync of an empty calendar: 207, no members, a token.
    let r = sync(s, CAL, "", "").await;
    assert!(r.hrefs().is_empty());
    let t0 = r.sync_token();
    for n in ["a", "b", "c"] {
        s.req("PUT", &obj(n))
            .ics(&event(n, n))
            .send()
            .await
            .status(201);
    }
    // Empty token: every member, each with getetag and a text/calendar content type.
    let r = sync(s, CAL, "", "").await;
    let mut hrefs = r.hrefs();
    hrefs.sort();
    assert_eq!(hrefs, vec![obj("a"), obj("b"), obj("c")]);
    for h in &hrefs {
        assert!(r.prop_text(h, NS_DAV, "getetag").starts_with('"'));
        assert!(r
            .prop_text(h, NS_DAV, "getcontenttype")
            .starts_with("text/calendar"));
    }
    let t1 = r.sync_token();
    // From t0: the three additions.
    assert_eq!(sync(s, CAL, &t0, "").await.hrefs().len(), 3);
    // No change: nothing, same token.
    let r = sync(s, CAL, &t1, "").await;
    assert!(r.hrefs().is_empty());
    assert_eq!(r.sync_token(), t1);
    // One add, one change, one delete: exactly those, the deletion as 404.
    s.req("PUT", &obj("d"))
        .ics(&event("d", "d"))
        .send()
        .await
        .status(201);
    s.req("PUT", &obj("a"))
        .ics(&event("a", "changed"))
        .send()
        .await
        .status(204);
    s.req("DELETE", &obj("b")).send().await.status(204);
    let r = sync(s, CAL, &t1, "").await;
    let mut hrefs = r.hrefs();
    hrefs.sort();
    assert_eq!(hrefs, vec![obj("a"), obj("b"), obj("d")]);
    assert_eq!(r.response_status(&obj("b")), Some(404));
    assert!(r.prop(&obj("a"), NS_DAV, "getetag").is_some());
    let t2 = r.sync_token();
    assert_ne!(t1, t2);
    // Initial listing after a deletion does not list it.
    let mut all = sync(s, CAL, "", "").await.hrefs();
    all.sort();
    assert_eq!(all, vec![obj("a"), obj("c"), obj("d")]);
    // The CTag moves with the token.
    let p = s.req("PROPFIND", CAL).depth("0").xml(r#"<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><CS:getctag/><D:sync-token/></D:prop></D:propfind>"#).send().await;
    assert_eq!(p.prop_text(CAL, NS_DAV, "sync-token"), t2);
}

pub async fn client_dialects(s: &TestServer) {
    s.req("PUT", &obj("x"))
        .ics(&event("x", "x"))
        .send()
        .await
        .status(201);
    let bodies = [
        // Thunderbird: Depth 1 + sync-level 1.
        ("1", "<D:sync-level>1</D:sync-level>"),
        // DAVx5 / Evolution: Depth 0 + sync-level 1.
        ("0", "<D:sync-level>1</D:sync-level>"),
        // Apple on calendars: Depth 1, no sync-level.
        ("1", ""),
        // No Depth header at all.
        ("", ""),
    ];
    for (depth, extra) in bodies {
        let mut req = s.req("REPORT", CAL).xml(&sync_body("", extra));
        if !depth.is_empty() {
            req = req.depth(depth);
        }
        let r = req.send().await;
        r.status(207);
        assert_eq!(r.hrefs(), vec![obj("x")], "depth {depth:?} extra {extra:?}");
    }
    // Apple's home sync: Depth 1, sync-level 1.
    let r = s
        .req("REPORT", "/calendars/alice/")
        .depth("1")
        .xml(&sync_body("", "<D:sync-level>1</D:sync-level>"))
        .send()
        .await;
    r.status(207);
    assert_eq!(r.hrefs(), vec![CAL]);
}

pub async fn limit_truncates_with_checkpoint(s: &TestServer) {
    let t0 = sync(s, CAL, "", "").await.sync_token();
    for i in 0..7 {
        s.req("PUT", &obj(&format!("l{i}")))
            .ics(&event(&format!("l{i}"), "x"))
            .send()
            .await
            .status(201);
    }
    s.req("DELETE", &obj("l3")).send().await.status(204);
    // Pages of 3 from t0 until the end: together they name every change exactly once.
    let mut token = t0.clone();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 10, "sync never finished");
        let r = sync(
            s,
            CAL,
            &token,
            "<D:limit><D:nresults>3</D:nresults></D:limit>",
        )
        .await;
        let truncated = r.response_status(CAL) == Some(507);
        for h in r.hrefs() {
            if h != CAL {
                seen.push(h);
            }
        }
        token = r.sync_token();
        if !truncated {
            break;
        }
    }
    assert!(
        pages >= 3,
        "7 changes in pages of 3 need 3 responses, got {pages}"
    );
    seen.sort();
    let mut expected: Vec<String> = (0..7).map(|i| obj(&format!("l{i}"))).collect();
    expected.sort();
    assert_eq!(seen, expected);
    // The last token is current.
    assert!(sync(s, CAL, &token, "").await.hrefs().is_empty());
    // Initial sync with a limit, too.
    let r = sync(s, CAL, "", "<D:limit><D:nresults>2</D:nresults></D:limit>").await;
    assert_eq!(r.response_status(CAL), Some(507));
    let rest = sync(s, CAL, &r.sync_token(), "").await;
    // The continuation may also name l3's tombstone (a 404 the client ignores).
    let live = rest
        .hrefs()
        .iter()
        .filter(|h| rest.response_status(h) != Some(404))
        .count();
    assert_eq!(r.hrefs().len() - 1 + live, 6);
    s.req("REPORT", CAL)
        .xml(&sync_body(
            "",
            "<D:limit><D:nresults>many</D:nresults></D:limit>",
        ))
        .send()
        .await
        .status(400);
}

pub async fn bad_tokens_are_refused(s: &TestServer) {
    s.req("MKCALENDAR", "/calendars/alice/other/")
        .send()
        .await
        .status(201);
    let other = sync(s, "/calendars/alice/other/", "", "")
        .await
        .sync_token();
    let mine = sync(s, CAL, "", "").await.sync_token();
    let future = {
        let (head, rev) = mine.rsplit_once(':').unwrap();
        format!("{head}:{}", rev.parse::<i64>().unwrap() + 100)
    };
    let bob_token = s
        .req_as(Some(BOB), "REPORT", "/calendars/bob/default/")
        .xml(&sync_body("", ""))
        .send()
        .await
        .sync_token();
    for bad in [
        other.as_str(),
        "garbage",
        "http://example.com/sync/1",
        future.as_str(),
        bob_token.as_str(),
        "urn:almanac:sync:0:1:0",
    ] {
        let r = s
            .req("REPORT", CAL)
            .depth("1")
            .xml(&sync_body(bad, ""))
            .send()
            .await;
        r.status(403).precondition(NS_DAV, "valid-sync-token");
    }
    // A deleted and re-created calendar does not accept the old calendar's tokens.
    s.req("DELETE", "/calendars/alice/other/")
        .send()
        .await
        .status(204);
    s.req("MKCALENDAR", "/calendars/alice/other/")
        .send()
        .await
        .status(201);
    s.req("REPORT", "/calendars/alice/other/")
        .xml(&sync_body(&other, ""))
        .send()
        .await
        .status(403);
}

pub async fn home_sync_reports_calendars(s: &TestServer) {
    let home = "/calendars/alice/";
    let r = sync(s, home, "", "<D:sync-level>1</D:sync-level>").await;
    assert_eq!(r.hrefs(), vec![CAL]);
    let t0 = r.sync_token();
    s.req("MKCALENDAR", "/calendars/alice/new/")
        .send()
        .await
        .status(201);
    let r = sync(s, home, &t0, "<D:sync-level>1</D:sync-level>").await;
    assert_eq!(r.hrefs(), vec!["/calendars/alice/new/"]);
    let t1 = r.sync_token();
    // A change inside a calendar shows the calendar as changed (Apple then syncs it).
    s.req("PUT", &obj("h"))
        .ics(&event("h", "h"))
        .send()
        .await
        .status(201);
    assert_eq!(sync(s, home, &t1, "").await.hrefs(), vec![CAL]);
    // Property changes too; deletion is a 404.
    let t2 = sync(s, home, "", "").await.sync_token();
    s.req("DELETE", "/calendars/alice/new/")
        .send()
        .await
        .status(204);
    let r = sync(s, home, &t2, "").await;
    assert_eq!(r.hrefs(), vec!["/calendars/alice/new/"]);
    assert_eq!(r.response_status("/calendars/alice/new/"), Some(404));
    // Deleted and re-created since a token: reported once, as existing.
    let t3 = r.sync_token();
    s.req("MKCALENDAR", "/calendars/alice/again/")
        .send()
        .await
        .status(201);
    let t4 = sync(s, home, &t3, "").await.sync_token();
    s.req("DELETE", "/calendars/alice/again/")
        .send()
        .await
        .status(204);
    s.req("MKCALENDAR", "/calendars/alice/again/")
        .send()
        .await
        .status(201);
    let again = sync(s, home, &t4, "").await;
    assert_eq!(again.hrefs(), vec!["/calendars/alice/again/"]);
    assert_eq!(
        again.response_status("/calendars/alice/again/"),
        None,
        "listed with properties, not as 404"
    );
    // The home's CTag follows.
    let p = s.req("PROPFIND", home).depth("0").xml(r#"<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><CS:getctag/></D:prop></D:propfind>"#).send().await;
    assert_eq!(
        p.prop_text(home, "http://calendarserver.org/ns/", "getctag"),
        again.sync_token()
    );
}
