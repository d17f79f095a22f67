//! Authentication and isolation between users.

use crate::support::*;
use almanac::dav::xml::NS_DAV;

pub async fn unauthenticated_and_wrong_password(s: &TestServer) {
    let r = s.req_as(None, "PROPFIND", "/").depth("0").send().await;
    r.status(401)
        .has_header("www-authenticate", "Basic realm=\"Almanac\"");
    s.req_as(Some(("alice", "wrong")), "PROPFIND", "/")
        .depth("0")
        .send()
        .await
        .status(401);
    s.req_as(Some(("nobody", "x")), "PROPFIND", "/")
        .depth("0")
        .send()
        .await
        .status(401);
    s.req_as(None, "OPTIONS", CAL).send().await.status(401);
    s.req_as(None, "GET", "/calendars/alice/default/x.ics")
        .send()
        .await
        .status(401);
    // A malformed Authorization header is a challenge, not an error.
    let r = s
        .req_as(None, "PROPFIND", "/")
        .header("Authorization", "Basic !!!")
        .send()
        .await;
    r.status(401);
}

pub async fn other_users_data_is_invisible(s: &TestServer) {
    s.req("PUT", "/calendars/alice/default/secret.ics")
        .ics(&event("secret", "Secret"))
        .send()
        .await
        .status(201);
    let bob = Some(BOB);
    // Every way in answers "not found", for existing and non-existing things alike.
    for (m, p) in [
        ("PROPFIND", "/calendars/alice/"),
        ("PROPFIND", "/calendars/alice/default/"),
        ("PROPFIND", "/principals/alice/"),
        ("GET", "/calendars/alice/default/secret.ics"),
        ("GET", "/calendars/alice/default/none.ics"),
        ("DELETE", "/calendars/alice/default/secret.ics"),
        ("DELETE", "/calendars/alice/default/"),
        ("PROPPATCH", "/calendars/alice/default/"),
        ("MKCALENDAR", "/calendars/alice/x/"),
        ("REPORT", "/calendars/alice/default/"),
        ("OPTIONS", "/calendars/alice/default/"),
        ("PROPFIND", "/calendars/nobody/default/"),
    ] {
        let r = s.req_as(bob, m, p).depth("0").send().await;
        assert_eq!(r.status, 404, "{m} {p} as bob: {r:?}");
    }
    s.req_as(bob, "PUT", "/calendars/alice/default/evil.ics")
        .ics(&event("evil", "x"))
        .send()
        .await
        .status(404);
    // Listing the principal and calendar collections shows bob only himself.
    let r = s
        .req_as(bob, "PROPFIND", "/principals/")
        .depth("1")
        .send()
        .await;
    assert_eq!(r.hrefs(), vec!["/principals/", "/principals/bob/"]);
    let r = s
        .req_as(bob, "PROPFIND", "/calendars/")
        .depth("1")
        .send()
        .await;
    assert_eq!(r.hrefs(), vec!["/calendars/", "/calendars/bob/"]);
    // Alice's sync token gets bob nothing.
    let token = s
        .req("REPORT", CAL)
        .xml(&sync_body("", ""))
        .send()
        .await
        .sync_token();
    s.req_as(bob, "REPORT", "/calendars/bob/default/")
        .xml(&sync_body(&token, ""))
        .send()
        .await
        .status(403)
        .precondition(NS_DAV, "valid-sync-token");
    // Alice's object is untouched.
    assert_eq!(
        s.req("GET", "/calendars/alice/default/secret.ics")
            .send()
            .await
            .body,
        event("secret", "Secret")
    );
}

pub async fn app_passwords(s: &TestServer) {
    let pw = almanac::users::add_app_password(s.store.as_ref(), "alice", "phone")
        .await
        .expect("app password");
    s.req_as(Some(("alice", &pw)), "PROPFIND", CAL)
        .depth("0")
        .send()
        .await
        .status(207);
    // Bob cannot use alice's app password, nor alice bob's name with it.
    s.req_as(Some(("bob", &pw)), "PROPFIND", "/")
        .depth("0")
        .send()
        .await
        .status(401);
    let p = s.store.principal_by_name("alice").await.unwrap().unwrap();
    let list = s.store.app_passwords(p.id).await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].last_used_at.is_some(), "last use is recorded");
    // The account password keeps working; revocation stops the app password at once.
    s.store.revoke_app_password(p.id, "phone").await.unwrap();
    s.req_as(Some(("alice", &pw)), "PROPFIND", CAL)
        .depth("0")
        .send()
        .await
        .status(401);
    s.req("PROPFIND", CAL).depth("0").send().await.status(207);
}

pub async fn password_change_drops_cached_login(s: &TestServer) {
    s.req("PROPFIND", CAL).depth("0").send().await.status(207);
    almanac::users::set_password(s.store.as_ref(), "alice", "new-password")
        .await
        .unwrap();
    s.req("PROPFIND", CAL).depth("0").send().await.status(401);
    s.req_as(Some(("alice", "new-password")), "PROPFIND", CAL)
        .depth("0")
        .send()
        .await
        .status(207);
}

/// A GET with credentials verified moments ago checks them and fetches the object in one
/// statement (`app::quick_get`): everything a GET answers must be the same as the ordinary
/// path's, and a password change or a revoked app password must stop it at the next request.
pub async fn cached_login_get(s: &TestServer) {
    let path = "/calendars/alice/default/quick.ics";
    s.req("PUT", path)
        .ics(&event("quick", "Quick"))
        .send()
        .await
        .status(201);
    // The first GET verifies the password; the second comes from the cache.
    let first = s.req("GET", path).send().await;
    first.status(200);
    let second = s.req("GET", path).send().await;
    second.status(200);
    assert_eq!(first.body, second.body);
    assert_eq!(first.header("etag"), second.header("etag"));
    assert!(second.body.contains("UID:quick"));
    let head = s.req("HEAD", path).send().await;
    head.status(200);
    assert_eq!(head.header("etag"), first.header("etag"));
    assert!(head.body.is_empty());
    // Conditional GET, a missing member, a missing calendar, and bob's namespace.
    let etag = first.header("etag").unwrap().to_owned();
    s.req("GET", path)
        .header("If-None-Match", &etag)
        .send()
        .await
        .status(304);
    s.req("GET", "/calendars/alice/default/nope.ics")
        .send()
        .await
        .status(404);
    s.req("GET", "/calendars/alice/nope/quick.ics")
        .send()
        .await
        .status(404);
    s.req_as(Some(BOB), "GET", "/calendars/bob/default/x.ics")
        .send()
        .await
        .status(404);
    s.req("GET", "/calendars/bob/default/quick.ics")
        .send()
        .await
        .status(404);
    // An app password verified once, then revoked: its next GET is refused.
    let pw = almanac::users::add_app_password(s.store.as_ref(), "alice", "tablet")
        .await
        .expect("app password");
    for _ in 0..2 {
        s.req_as(Some(("alice", &pw)), "GET", path)
            .send()
            .await
            .status(200);
    }
    let p = s.store.principal_by_name("alice").await.unwrap().unwrap();
    s.store.revoke_app_password(p.id, "tablet").await.unwrap();
    s.req_as(Some(("alice", &pw)), "GET", path)
        .send()
        .await
        .status(401);
    // A password changed elsewhere (the CLI writes the store directly) stops the cached login.
    almanac::users::set_password(s.store.as_ref(), "alice", "newer-password")
        .await
        .unwrap();
    s.req("GET", path).send().await.status(401);
    s.req_as(Some(("alice", "newer-password")), "GET", path)
        .send()
        .await
        .status(200);
}

/// Many GETs at once, of different users, calendars and objects, some missing: on PostgreSQL
/// their lookups go out together as one statement (`store::pg_batch`), and each request must
/// still get its own answer, the same as when asked alone.
pub async fn concurrent_gets_get_their_own_answers(s: &TestServer) {
    s.req_as(Some(BOB), "MKCALENDAR", "/calendars/bob/work/")
        .send()
        .await
        .status(201);
    let mut paths = Vec::new();
    for i in 0..12 {
        let (who, path) = match i % 3 {
            0 => (ALICE, format!("/calendars/alice/default/e{i}.ics")),
            1 => (BOB, format!("/calendars/bob/default/e{i}.ics")),
            _ => (BOB, format!("/calendars/bob/work/e{i}.ics")),
        };
        s.req_as(Some(who), "PUT", &path)
            .ics(&event(&format!("uid-{i}"), &format!("Event {i}")))
            .send()
            .await
            .status(201);
        paths.push((who, path));
    }
    // Asked for, but not there: a member, a calendar, a name that only another calendar holds;
    // and another user's object.
    paths.push((ALICE, "/calendars/alice/default/none.ics".into()));
    paths.push((BOB, "/calendars/bob/nope/e1.ics".into()));
    paths.push((ALICE, "/calendars/alice/default/e1.ics".into()));
    paths.push((ALICE, "/calendars/bob/default/e1.ics".into()));
    // Each alone first: the expected status, body and ETag (logins are cached from here on).
    let mut expected = Vec::new();
    for (who, path) in &paths {
        let r = s.req_as(Some(*who), "GET", path).send().await;
        expected.push((
            r.status,
            r.body.clone(),
            r.header("etag").map(str::to_owned),
        ));
    }
    assert_eq!(expected.iter().filter(|e| e.0 == 200).count(), 12);
    for round in 0..4 {
        let gets = (0..paths.len() * 4).map(|k| {
            let i = (k + round) % paths.len();
            let (who, path) = &paths[i];
            async move { (i, s.req_as(Some(*who), "GET", path).send().await) }
        });
        for (i, r) in futures_util::future::join_all(gets).await {
            let path = &paths[i].1;
            let got = (r.status, &r.body, r.header("etag").map(str::to_owned));
            assert_eq!(
                got,
                (expected[i].0, &expected[i].1, expected[i].2.clone()),
                "{path}"
            );
            if r.status == 200 {
                let n: String = path.chars().filter(char::is_ascii_digit).collect();
                assert!(
                    r.body.contains(&format!("UID:uid-{n}\r\n")),
                    "{path}: {}",
                    r.body
                );
            }
        }
    }
}

pub async fn repeated_failures_are_throttled(s: &TestServer) {
    // alice's phone logged in earlier; its verified credentials keep working below.
    s.req("PROPFIND", "/").depth("0").send().await.status(207);
    // The default allows 5 failures per user and address; then 429 with Retry-After, without
    // running argon2, for any password not verified before (until the delay has passed).
    for _ in 0..5 {
        s.req_as(Some(("alice", "wrong")), "PROPFIND", "/")
            .depth("0")
            .send()
            .await
            .status(401);
    }
    let r = s
        .req_as(Some(("alice", "wrong")), "PROPFIND", "/")
        .depth("0")
        .send()
        .await;
    r.status(429);
    assert!(r
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|v| v >= 1));
    // A password not verified before is not tried while throttled…
    s.req_as(Some(("alice", "alice-secret-pw-2")), "PROPFIND", "/")
        .depth("0")
        .send()
        .await
        .status(429);
    // …but alice's already verified credentials still work (no lockout of her other devices).
    s.req("PROPFIND", "/").depth("0").send().await.status(207);
    // Another user from the same address is not locked out by alice's failures.
    s.req_as(Some(BOB), "PROPFIND", "/")
        .depth("0")
        .send()
        .await
        .status(207);
}

pub async fn early_answers_keep_the_connection_usable(s: &TestServer) {
    // A client sends PROPFIND with a body and no credentials, gets 401, and retries with
    // credentials on the same keep-alive connection (python-caldav, Apple). The server must
    // have read the small body so the connection stays usable.
    let body =
        r#"<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>"#;
    for _ in 0..3 {
        s.req_as(None, "PROPFIND", "/")
            .depth("0")
            .xml(body)
            .send()
            .await
            .status(401);
        s.req("PROPFIND", "/")
            .depth("0")
            .xml(body)
            .send()
            .await
            .status(207);
    }
    // A body too large to drain: the early answer says the connection ends.
    let cl = format!("Content-Length: {}\r\n", 17 * 1024 * 1024);
    assert_eq!(
        s.raw_status("PUT", "/calendars/alice/default/x.ics", &cl)
            .await,
        413
    );
}
