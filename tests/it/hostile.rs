//! Hostile input: every kind of bad request gets a clear 4xx (with the RFC precondition
//! element where DAV has one), never a 500, never a partial write; and the limits that keep
//! one client from exhausting the server (header read time, connections, request time,
//! argon2 slots, expansion and result budgets), each with a small configured value.
//!
//! Each case that attempts a write compares a snapshot of the user's data (the home's
//! revision moves with every change) before and after.

use crate::support::*;
use almanac::config::Config;
use almanac::dav::xml::{NS_CALDAV, NS_DAV};
use std::time::Duration;

const KEEP: &str = "/calendars/alice/default/keep.ics";
const PROPFIND_ETAG: &str =
    r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#;

/// Stores one object that every hostile request must leave alone; returns the snapshot.
async fn seed(s: &TestServer) -> String {
    s.req("PUT", KEEP)
        .ics(&event("keep", "Keep me"))
        .send()
        .await
        .status(201);
    snapshot(s, ALICE).await
}

#[track_caller]
fn assert_same(before: &str, after: &str, what: &str) {
    assert!(
        before == after,
        "{what} changed stored data:\n--- before\n{before}\n--- after\n{after}"
    );
}

async fn unchanged(s: &TestServer, before: &str, what: &str) {
    assert_same(before, &snapshot(s, ALICE).await, what);
    assert_eq!(
        s.req("GET", KEEP).send().await.status(200).body,
        event("keep", "Keep me"),
        "{what}"
    );
}

/// A request line and headers as alice, a body, and the answer.
async fn raw_req(
    s: &TestServer,
    method: &str,
    target: &[u8],
    extra: &[u8],
    body: &[u8],
) -> RawResp {
    let mut bytes = s.raw_head(method, target, extra);
    bytes.extend_from_slice(body);
    s.raw(&bytes).await
}

#[track_caller]
fn raw_status(r: &RawResp, code: u16, what: &str) {
    assert_eq!(r.status, code, "{what}: {r:?} {}", r.text());
}

// ---------------------------------------------------------------------------------------------
// XML

/// Truncated, mismatched, undeclared, duplicated, unterminated: all 400 on every method that
/// reads XML, and MKCALENDAR/MKCOL create nothing.
pub async fn malformed_xml_is_refused(s: &TestServer) {
    let before = seed(s).await;
    let bodies: &[&str] = &[
        r#"<D:propfind xmlns:D="DAV:"><D:prop>"#,
        r#"<D:propfind xmlns:D="DAV:"><D:prop></D:propfind>"#,
        r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag></D:prop></D:propfind>"#,
        r#"<D:propfind xmlns:D="DAV:"/><D:propfind xmlns:D="DAV:"/>"#,
        r#"<D:propfind xmlns:D="DAV:"/>trailing text"#,
        "not xml at all",
        "<x:propfind/>",
        r#"<D:propfind xmlns:D="DAV:" a="1" a="2"/>"#,
        r#"<D:propfind xmlns:D="DAV:"><![CDATA[ never closed"#,
        r#"<D:propfind xmlns:D="DAV:"><!-- never closed"#,
        r#"<D:propfind xmlns:D="DAV:">&#0;</D:propfind>"#,
        r#"<D:propfind xmlns:D="DAV:">&#xD800;</D:propfind>"#,
        r#"<D:propfind xmlns:D="DAV:">&#99999999999;</D:propfind>"#,
        r#"<?xml version="1.0"?>"#,
        "<>",
        "</D:propfind>",
    ];
    for body in bodies {
        for (method, path) in [
            ("PROPFIND", CAL),
            ("PROPPATCH", CAL),
            ("REPORT", CAL),
            ("MKCALENDAR", "/calendars/alice/made/"),
            ("MKCOL", "/calendars/alice/made/"),
        ] {
            let r = s.req(method, path).depth("0").xml(body).send().await;
            assert_eq!(r.status, 400, "{method} with {body:?}: {r:?}");
        }
    }
    unchanged(s, &before, "malformed XML").await;
}

/// DTDs are refused outright, so no entity is ever expanded: billion laughs, external
/// entities (XXE), external DTDs and parameter entities all get 400 and leave nothing behind.
pub async fn dtd_and_entities_are_refused(s: &TestServer) {
    let before = seed(s).await;
    let mut laughs = String::from(r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">"#);
    for i in 1..10 {
        let refs = format!("&lol{};", i - 1).repeat(10);
        laughs.push_str(&format!(r#"<!ENTITY lol{i} "{refs}">"#));
    }
    laughs.push_str(r#"]><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><X:p xmlns:X="urn:x">&lol9;</X:p></D:prop></D:set></D:propertyupdate>"#);
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE p [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><X:p xmlns:X="urn:x">&xxe;</X:p></D:prop></D:set></D:propertyupdate>"#;
    let external_dtd = r#"<?xml version="1.0"?><!DOCTYPE D:propertyupdate SYSTEM "http://127.0.0.1:9/evil.dtd"><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><X:p xmlns:X="urn:x">x</X:p></D:prop></D:set></D:propertyupdate>"#;
    let parameter = r#"<?xml version="1.0"?><!DOCTYPE p [<!ENTITY % ext SYSTEM "file:///etc/passwd"> %ext;]><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><X:p xmlns:X="urn:x">x</X:p></D:prop></D:set></D:propertyupdate>"#;
    let quadratic = format!(
        r#"<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "{}">]><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><X:p xmlns:X="urn:x">{}</X:p></D:prop></D:set></D:propertyupdate>"#,
        "a".repeat(50_000),
        "&a;".repeat(5_000)
    );
    let undeclared = r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><X:p xmlns:X="urn:x">&undeclared;</X:p></D:prop></D:set></D:propertyupdate>"#;
    for (name, body) in [
        ("billion laughs", laughs.as_str()),
        ("external entity", xxe),
        ("external DTD", external_dtd),
        ("parameter entity", parameter),
        ("quadratic blowup", quadratic.as_str()),
        ("undeclared entity", undeclared),
    ] {
        for (method, path) in [
            ("PROPPATCH", CAL),
            ("PROPFIND", CAL),
            ("REPORT", CAL),
            ("MKCALENDAR", "/calendars/alice/made/"),
        ] {
            let r = s.req(method, path).depth("0").xml(body).send().await;
            assert_eq!(r.status, 400, "{name} on {method}: {r:?}");
            assert!(
                !r.body.contains("root:"),
                "{name}: the response shows a file"
            );
        }
    }
    unchanged(s, &before, "DTD/entity bodies").await;
}

fn nested(depth: usize) -> String {
    format!(
        r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><X:p xmlns:X="urn:x">{}{}</X:p></D:prop></D:set></D:propertyupdate>"#,
        "<X:n>".repeat(depth),
        "</X:n>".repeat(depth)
    )
}

/// Nesting beyond 64 levels and more than 100,000 elements are refused (400) before any
/// recursion or allocation they were built to exhaust; sensible depths still work.
pub async fn deep_and_huge_xml_is_refused(s: &TestServer) {
    let before = seed(s).await;
    for depth in [61, 1_000, 500_000] {
        let r = s.req("PROPPATCH", CAL).xml(&nested(depth)).send().await;
        assert_eq!(r.status, 400, "nesting {depth}: {r:?}");
        let r = s
            .req("REPORT", CAL)
            .xml(&nested(depth).replace("propertyupdate", "sync-collection"))
            .send()
            .await;
        assert_eq!(r.status, 400, "REPORT nesting {depth}: {r:?}");
    }
    let many = format!(
        r#"<D:propfind xmlns:D="DAV:"><D:prop>{}</D:prop></D:propfind>"#,
        "<D:getetag/>".repeat(100_001)
    );
    s.req("PROPFIND", CAL)
        .depth("0")
        .xml(&many)
        .send()
        .await
        .status(400);
    // Many small hrefs in a multiget are fine up to the element limit.
    let hrefs = format!(
        r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>{}</C:calendar-multiget>"#,
        "<D:href>/calendars/alice/default/none.ics</D:href>".repeat(100_001)
    );
    s.req("REPORT", CAL).xml(&hrefs).send().await.status(400);
    unchanged(s, &before, "deep XML").await;
    // A dead property ten levels deep is ordinary and is kept verbatim.
    s.req("PROPPATCH", CAL)
        .xml(&nested(10))
        .send()
        .await
        .status(207);
}

// ---------------------------------------------------------------------------------------------
// Methods and headers

/// Unknown methods get 405 with `Allow`; a method token with bytes HTTP does not allow is a
/// 400 from the HTTP layer; neither writes anything.
pub async fn unknown_and_malformed_methods(s: &TestServer) {
    let before = seed(s).await;
    for m in [
        "BREW", "PATCH", "TRACE", "LOCK", "UNLOCK", "SEARCH", "ACL", "propfind", "put",
    ] {
        for path in [KEEP, CAL, "/calendars/alice/", "/"] {
            let r = s.req(m, path).send().await;
            r.status(405);
            assert!(r.header("allow").is_some(), "{m} {path}: 405 without Allow");
        }
    }
    for (what, method) in [
        ("bracket in method", "PROP{FIND"),
        ("colon in method", "PUT:"),
        ("8-bit method", "PR\u{e9}FIND"),
    ] {
        let r = raw_req(s, method, CAL.as_bytes(), b"", b"").await;
        raw_status(&r, 400, what);
    }
    let long = "X".repeat(70_000);
    let r = raw_req(s, &long, CAL.as_bytes(), b"", b"").await;
    assert!(r.status == 400 || r.status == 405, "70 KB method: {r:?}");
    unchanged(s, &before, "unknown methods").await;
}

/// Depth takes 0, 1 or infinity (refused for PROPFIND with its precondition); anything else
/// is a 400.
pub async fn depth_garbage_is_400(s: &TestServer) {
    seed(s).await;
    for d in [
        "2",
        "-1",
        "01",
        "one",
        "0,1",
        "1;q=1",
        "infinityy",
        "",
        "0 1",
        "\t",
    ] {
        let r = s
            .req("PROPFIND", CAL)
            .depth(d)
            .xml(PROPFIND_ETAG)
            .send()
            .await;
        assert_eq!(r.status, 400, "PROPFIND Depth {d:?}: {r:?}");
        let r = s
            .req("REPORT", CAL)
            .depth(d)
            .xml(&sync_body("", ""))
            .send()
            .await;
        assert_eq!(r.status, 400, "REPORT Depth {d:?}: {r:?}");
    }
    let r = raw_req(
        s,
        "PROPFIND",
        CAL.as_bytes(),
        "Depth: \u{ff11}\r\n".as_bytes(),
        b"",
    )
    .await;
    raw_status(&r, 400, "full-width digit in Depth");
    let r = raw_req(s, "PROPFIND", CAL.as_bytes(), b"Depth: \xff\r\n", b"").await;
    raw_status(&r, 400, "8-bit byte in Depth");
    s.req("PROPFIND", CAL)
        .depth("infinity")
        .send()
        .await
        .status(403)
        .precondition(NS_DAV, "propfind-finite-depth");
}

/// Invalid UTF-8 in the request target, in percent-escapes, in headers and in bodies: each
/// a clear 4xx, nothing stored.
pub async fn invalid_utf8_is_refused(s: &TestServer) {
    let before = seed(s).await;
    // (what, method, request target, extra header lines, expected status)
    type Case<'a> = (&'a str, &'a str, &'a [u8], &'a [u8], u16);
    let cases: &[Case] = &[
        (
            "raw 8-bit byte in the path",
            "GET",
            b"/calendars/alice/default/\xff.ics",
            b"",
            400,
        ),
        (
            "escaped invalid UTF-8 in the path",
            "GET",
            b"/calendars/alice/default/%ff.ics",
            b"",
            400,
        ),
        (
            "overlong UTF-8 for '..'",
            "GET",
            b"/calendars/alice/%c0%ae%c0%ae/default/keep.ics",
            b"",
            400,
        ),
        (
            "lone surrogate, escaped",
            "PUT",
            b"/calendars/alice/default/%ed%a0%80.ics",
            b"Content-Type: text/calendar\r\nContent-Length: 0\r\n",
            400,
        ),
        (
            "8-bit If-Match",
            "DELETE",
            KEEP.as_bytes(),
            b"If-Match: \"\xff\"\r\n",
            400,
        ),
        (
            "8-bit If-None-Match",
            "GET",
            KEEP.as_bytes(),
            b"If-None-Match: \xff\r\n",
            400,
        ),
        (
            "8-bit Destination",
            "MOVE",
            KEEP.as_bytes(),
            b"Destination: /calendars/alice/default/\xff.ics\r\n",
            400,
        ),
        (
            "8-bit Overwrite",
            "COPY",
            KEEP.as_bytes(),
            b"Destination: /calendars/alice/default/c.ics\r\nOverwrite: \xff\r\n",
            400,
        ),
    ];
    for (what, method, target, extra, code) in cases {
        let r = raw_req(s, method, target, extra, b"").await;
        raw_status(&r, *code, what);
    }
    // Credentials that are not UTF-8 are no credentials.
    let head = format!("PROPFIND {CAL} HTTP/1.1\r\nHost: x\r\nDepth: 0\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(b"Authorization: Basic \xff\xfe\r\n\r\n");
    raw_status(&s.raw(&bytes).await, 401, "8-bit Authorization");
    use base64::Engine;
    let mut bad_cred = b"alice:".to_vec();
    bad_cred.extend_from_slice(b"\xff\xfe");
    let enc = base64::engine::general_purpose::STANDARD.encode(&bad_cred);
    s.req_as(None, "PROPFIND", CAL)
        .header("Authorization", &format!("Basic {enc}"))
        .send()
        .await
        .status(401);
    // Bodies.
    let mut xml =
        br#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><X:p xmlns:X="urn:x">"#.to_vec();
    xml.extend_from_slice(b"\xff\xfe\xc0\xaf");
    xml.extend_from_slice(br#"</X:p></D:prop></D:set></D:propertyupdate>"#);
    for m in ["PROPPATCH", "PROPFIND", "REPORT"] {
        let r = s
            .req(m, CAL)
            .depth("0")
            .header("Content-Type", "application/xml")
            .bytes(xml.clone())
            .send()
            .await;
        assert_eq!(r.status, 400, "{m} with a non-UTF-8 body: {r:?}");
    }
    let latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop><D:displayname>Caf\xe9</D:displayname></D:prop></D:set></D:propertyupdate>".to_vec();
    s.req("PROPPATCH", CAL)
        .header("Content-Type", "application/xml")
        .bytes(latin1)
        .send()
        .await
        .status(400);
    let mut ics = event("keep", "Keep me").into_bytes();
    let at = ics.len() - 30;
    ics.splice(at..at, b"\xff\xfe".iter().copied());
    for href in [KEEP, "/calendars/alice/default/new.ics"] {
        s.req("PUT", href)
            .header("Content-Type", "text/calendar")
            .bytes(ics.clone())
            .send()
            .await
            .status(403)
            .precondition(NS_CALDAV, "valid-calendar-data");
    }
    unchanged(s, &before, "invalid UTF-8").await;
}

/// `..`, encoded dots and slashes, backslashes, NUL and overlong forms never name another
/// place than they appear to: refused with 400, or (double encoding) a harmless literal name.
/// As bob, none of them reaches alice's data.
pub async fn path_traversal_is_refused(s: &TestServer) {
    let before = seed(s).await;
    // (target, GET status, PUT status) as bob.
    for (target, get, put) in [
        ("/calendars/bob/../alice/default/keep.ics", 400, 400),
        (
            "/calendars/bob/default/../../alice/default/keep.ics",
            400,
            400,
        ),
        ("/calendars/bob/%2e%2e/alice/default/keep.ics", 400, 400),
        ("/calendars/bob/%2E%2E/alice/default/keep.ics", 400, 400),
        ("/calendars/bob/.%2e/alice/default/keep.ics", 400, 400),
        (
            "/calendars/bob/default/..%2f..%2falice%2fdefault%2fkeep.ics",
            400,
            400,
        ),
        (
            "/calendars/bob/default/..%5c..%5calice%5cdefault%5ckeep.ics",
            400,
            400,
        ),
        ("/calendars/bob/default/%2e%2e%2f%2e%2e%2falice", 400, 400),
        ("/calendars/bob/./default/", 400, 400),
        ("/calendars/bob/default/keep.ics%00.txt", 400, 400),
        ("/calendars/bob/default/%0d%0aX-Injected:%20yes", 400, 400),
        // Double encoding decodes once: a literal name with percent signs, in bob's calendar.
        ("/calendars/bob/default/%252e%252e%252falice", 404, 201),
        // Empty segments collapse; the owner is still alice, so bob gets nothing.
        ("//calendars//alice//default//keep.ics", 404, 404),
        ("/calendars/alice/default/keep.ics/", 404, 404),
        ("/calendars/%61lice/default/keep.ics", 404, 404),
        ("/calendars/ALICE/default/keep.ics", 404, 404),
    ] {
        let bytes = format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
            basic(BOB)
        )
        .into_bytes();
        let r = s.raw(&bytes).await;
        raw_status(&r, get, &format!("bob GET {target}"));
        assert!(
            !r.text().contains("Keep me"),
            "{target} served alice's data"
        );
        let mut req = format!(
            "PUT {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: text/calendar\r\nContent-Length: {}\r\n\r\n",
            basic(BOB),
            event("evil", "Evil").len()
        )
        .into_bytes();
        req.extend_from_slice(event("evil", "Evil").as_bytes());
        raw_status(&s.raw(&req).await, put, &format!("bob PUT {target}"));
    }
    // Alice's own traversal attempts are refused the same way (no aliasing of her own data).
    for target in [
        "/calendars/alice/x/../default/keep.ics",
        "/calendars/alice/default/%2e%2e",
    ] {
        raw_status(
            &raw_req(s, "DELETE", target.as_bytes(), b"", b"").await,
            400,
            target,
        );
    }
    // In Destination headers too.
    for dest in [
        "/calendars/alice/default/../../bob/default/x.ics",
        "/calendars/alice/%2e%2e/bob/default/x.ics",
        "/calendars/alice/default/a%2fb.ics",
        "http://evil.example/calendars/alice/default/%00.ics",
    ] {
        for m in ["COPY", "MOVE"] {
            let extra = format!("Destination: {dest}\r\n");
            let r = raw_req(s, m, KEEP.as_bytes(), extra.as_bytes(), b"").await;
            raw_status(&r, 400, &format!("{m} to {dest}"));
        }
    }
    // A segment longer than 255 bytes is refused; so is a calendar named that way.
    let long = format!("/calendars/alice/default/{}.ics", "a".repeat(256));
    s.req("PUT", &long)
        .ics(&event("l", "l"))
        .send()
        .await
        .status(400);
    s.req(
        "MKCALENDAR",
        &format!("/calendars/alice/{}/", "c".repeat(256)),
    )
    .send()
    .await
    .status(400);
    unchanged(s, &before, "path traversal").await;
    assert_eq!(
        s.req_as(Some(BOB), "PROPFIND", "/calendars/bob/default/")
            .depth("1")
            .xml(PROPFIND_ETAG)
            .send()
            .await
            .hrefs(),
        vec![
            "/calendars/bob/default/",
            "/calendars/bob/default/%252e%252e%252falice"
        ],
        "bob stored only the literal name, in his own calendar"
    );
}

/// A path over 4096 bytes is 414; a header section beyond what the HTTP layer buffers is 431
/// (too long a header, too many headers); the server serves normally afterwards.
pub async fn overlong_paths_and_headers(s: &TestServer) {
    let before = seed(s).await;
    let path = format!("/calendars/alice/default/{}", "a/".repeat(2100));
    raw_status(
        &raw_req(s, "GET", path.as_bytes(), b"", b"").await,
        414,
        "4 KiB path",
    );
    let path = format!("/calendars/alice/default/{}", "%61".repeat(20_000));
    raw_status(
        &raw_req(s, "PUT", path.as_bytes(), b"Content-Length: 0\r\n", b"").await,
        414,
        "60 KB path",
    );
    let path = format!("/{}", "a".repeat(1024 * 1024));
    raw_status(
        &raw_req(s, "GET", path.as_bytes(), b"", b"").await,
        431,
        "1 MiB request line",
    );
    let big = format!("X-Filler: {}\r\n", "b".repeat(1024 * 1024));
    raw_status(
        &raw_req(s, "GET", KEEP.as_bytes(), big.as_bytes(), b"").await,
        431,
        "1 MiB header",
    );
    let many: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    raw_status(
        &raw_req(s, "GET", KEEP.as_bytes(), many.as_bytes(), b"").await,
        431,
        "500 headers",
    );
    // Long but bufferable garbage in meaningful headers is read and refused.
    let long_auth = format!("Authorization: Basic {}\r\n", "QUFB".repeat(16_000));
    let mut bytes = format!("GET {KEEP} HTTP/1.1\r\nHost: x\r\n{long_auth}\r\n").into_bytes();
    raw_status(&s.raw(&bytes).await, 401, "64 KB Authorization");
    bytes.clear();
    let long_match = format!("If-Match: \"{}\"\r\n", "e".repeat(60_000));
    raw_status(
        &raw_req(s, "DELETE", KEEP.as_bytes(), long_match.as_bytes(), b"").await,
        412,
        "60 KB entity-tag",
    );
    let long_dest = format!(
        "Destination: /calendars/alice/default/{}\r\n",
        "d".repeat(5000)
    );
    raw_status(
        &raw_req(s, "COPY", KEEP.as_bytes(), long_dest.as_bytes(), b"").await,
        400,
        "5 KB Destination",
    );
    unchanged(s, &before, "overlong heads").await;
}

/// Framing the HTTP layer must refuse: conflicting lengths, unknown codings, bad chunks,
/// garbage request lines. Each gets 400 (or the connection is closed), never a body read
/// the wrong way; the server keeps serving.
pub async fn broken_framing_is_refused(s: &TestServer) {
    let before = seed(s).await;
    let ics = event("keep", "Smuggled");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "negative Content-Length",
            s.raw_head(
                "PUT",
                KEEP.as_bytes(),
                b"Content-Type: text/calendar\r\nContent-Length: -1\r\n",
            ),
        ),
        ("two different Content-Lengths", {
            let mut v = s.raw_head(
                "PUT",
                KEEP.as_bytes(),
                format!(
                    "Content-Type: text/calendar\r\nContent-Length: {}\r\nContent-Length: 5\r\n",
                    ics.len()
                )
                .as_bytes(),
            );
            v.extend_from_slice(ics.as_bytes());
            v
        }),
        ("unknown transfer coding", {
            let mut v = s.raw_head(
                "PUT",
                KEEP.as_bytes(),
                b"Content-Type: text/calendar\r\nTransfer-Encoding: gzip\r\n",
            );
            v.extend_from_slice(ics.as_bytes());
            v
        }),
        ("bad chunk size", {
            let mut v = s.raw_head(
                "PUT",
                KEEP.as_bytes(),
                b"Content-Type: text/calendar\r\nTransfer-Encoding: chunked\r\n",
            );
            v.extend_from_slice(b"zz\r\nBEGIN\r\n0\r\n\r\n");
            v
        }),
        ("request line without version", b"GET /\r\n\r\n".to_vec()),
        ("garbage request line", b"HELLO\r\n\r\n".to_vec()),
        (
            "header without colon",
            s.raw_head("GET", KEEP.as_bytes(), b"NoColonHere\r\n"),
        ),
        (
            "space in header name",
            s.raw_head("GET", KEEP.as_bytes(), b"Bad Name: x\r\n"),
        ),
        (
            "NUL in header value",
            s.raw_head("GET", KEEP.as_bytes(), b"X-A: a\x00b\r\n"),
        ),
        (
            "obsolete line folding",
            s.raw_head("GET", KEEP.as_bytes(), b"X-A: a\r\n folded\r\n"),
        ),
        (
            "HTTP version 9.9",
            format!("GET {KEEP} HTTP/9.9\r\nHost: x\r\n\r\n").into_bytes(),
        ),
    ];
    for (what, bytes) in cases {
        let r = s.raw(&bytes).await;
        assert!(
            r.status == 400
                || r.status == 0
                || (r.status == 501 && what.contains("coding"))
                || (r.status == 505 && what.contains("version")),
            "{what}: {r:?}"
        );
    }
    // Content-Length and Transfer-Encoding together (request smuggling): the chunked framing
    // wins (RFC 9112 §6.3) and the request is refused or read as chunked — never as both.
    let mut smuggle = s.raw_head(
        "PUT",
        KEEP.as_bytes(),
        b"Content-Type: text/calendar\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n",
    );
    smuggle.extend_from_slice(
        b"0\r\n\r\nGET /calendars/alice/default/keep.ics HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let r = s.raw(&smuggle).await;
    assert!(matches!(r.status, 400 | 403), "CL+TE: {r:?}");
    unchanged(s, &before, "broken framing").await;
}

/// Garbage in If-Match / If-None-Match is a 400, never read as "no condition"; a weak or
/// unknown tag simply does not match (412). Nothing changes either way.
pub async fn if_match_garbage_is_400(s: &TestServer) {
    let before = seed(s).await;
    let etag = s
        .req("GET", KEEP)
        .send()
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let garbage = [
        "garbage",
        "\"unterminated",
        "W/",
        "\"a\" \"b\"",
        "\"a\",,",
        ",",
        "*, \"a\"",
        "\"a\" trailing",
        "\"in\"side\"",
        "'single'",
        "\"tab\there\"",
    ];
    for g in garbage {
        for hdr in ["If-Match", "If-None-Match"] {
            let ics = event("keep", "Overwritten");
            let put = s.req("PUT", KEEP).header(hdr, g).ics(&ics).send().await;
            assert_eq!(put.status, 400, "PUT {hdr}: {g:?}: {put:?}");
            let new = s
                .req("PUT", "/calendars/alice/default/new.ics")
                .header(hdr, g)
                .ics(&event("new", "New"))
                .send()
                .await;
            assert_eq!(new.status, 400, "PUT new {hdr}: {g:?}: {new:?}");
            let del = s.req("DELETE", KEEP).header(hdr, g).send().await;
            assert_eq!(del.status, 400, "DELETE {hdr}: {g:?}: {del:?}");
            let get = s.req("GET", KEEP).header(hdr, g).send().await;
            assert_eq!(get.status, 400, "GET {hdr}: {g:?}: {get:?}");
            for m in ["COPY", "MOVE"] {
                let r = s
                    .req(m, KEEP)
                    .header("Destination", "/calendars/alice/default/copy.ics")
                    .header(hdr, g)
                    .send()
                    .await;
                assert_eq!(r.status, 400, "{m} {hdr}: {g:?}: {r:?}");
            }
        }
    }
    // An empty header is garbage too (reqwest cannot send it; the raw client can).
    for hdr in ["If-Match", "If-None-Match"] {
        let extra = format!("{hdr}: \r\n");
        raw_status(
            &raw_req(s, "DELETE", KEEP.as_bytes(), extra.as_bytes(), b"").await,
            400,
            &format!("empty {hdr}"),
        );
    }
    // Well-formed but not matching: 412.
    let weak = format!("W/{etag}");
    for m in [weak.as_str(), "\"0000\"", "\"a\", \"b\""] {
        s.req("PUT", KEEP)
            .header("If-Match", m)
            .ics(&event("keep", "x"))
            .send()
            .await
            .status(412);
        s.req("DELETE", KEEP)
            .header("If-Match", m)
            .send()
            .await
            .status(412);
    }
    unchanged(s, &before, "If-Match garbage").await;
}

/// Destination and Overwrite garbage: 400; another user's namespace: 403 whether or not
/// anything exists there; nothing moves.
pub async fn destination_and_overwrite_garbage(s: &TestServer) {
    let before = seed(s).await;
    for (dest, code) in [
        ("relative/path.ics", 400),
        ("ftp://example.com/calendars/alice/default/x.ics", 400),
        ("mailto:alice@example.com", 400),
        ("//", 403),
        ("http://", 403),
        ("/", 403),
        ("/calendars/alice/default/", 403),
        ("/calendars/alice/", 403),
        ("/principals/alice/", 403),
        ("/calendars/alice/default/keep.ics", 403),
        ("/calendars/alice/none/x.ics", 409),
        ("/calendars/bob/default/x.ics", 403),
        ("/calendars/nobody/default/x.ics", 403),
        ("/nowhere/at/all/x.ics", 409),
    ] {
        for m in ["COPY", "MOVE"] {
            let r = s.req(m, KEEP).header("Destination", dest).send().await;
            assert_eq!(r.status, code, "{m} to {dest:?}: {r:?}");
        }
    }
    for o in ["maybe", "TF", "1", "yes", "t f"] {
        let r = s
            .req("COPY", KEEP)
            .header("Destination", "/calendars/alice/default/x.ics")
            .header("Overwrite", o)
            .send()
            .await;
        assert_eq!(r.status, 400, "Overwrite {o:?}: {r:?}");
    }
    raw_status(
        &raw_req(s, "COPY", KEEP.as_bytes(), b"Destination: \r\n", b"").await,
        400,
        "empty Destination",
    );
    raw_status(
        &raw_req(s, "MOVE", KEEP.as_bytes(), b"", b"").await,
        400,
        "no Destination",
    );
    unchanged(s, &before, "Destination garbage").await;
}

// ---------------------------------------------------------------------------------------------
// iCalendar

fn vcal(body: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Almanac tests//EN\r\n{body}END:VCALENDAR\r\n"
    )
}

fn vevent(lines: &str) -> String {
    format!("BEGIN:VEVENT\r\nUID:bad\r\nDTSTAMP:20240101T000000Z\r\n{lines}END:VEVENT\r\n")
}

/// Structurally broken, badly dated and self-contradictory objects: 403 with the CalDAV
/// precondition, whether they would create an object or replace one; nothing is stored.
pub async fn invalid_icalendar_is_refused(s: &TestServer) {
    let before = seed(s).await;
    let ok_start = "DTSTART:20240105T100000Z\r\n";
    let data = "valid-calendar-data";
    let object = "valid-calendar-object-resource";
    let nested17 = format!(
        "{}{}",
        (0..17)
            .map(|i| format!("BEGIN:X-N{i}\r\n"))
            .collect::<String>(),
        (0..17)
            .rev()
            .map(|i| format!("END:X-N{i}\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty body", String::new(), data),
        ("whitespace only", "\r\n \r\n".into(), data),
        ("missing END:VCALENDAR", vcal(&vevent(ok_start)).replace("END:VCALENDAR\r\n", ""), data),
        ("missing END:VEVENT", vcal(&vevent(ok_start).replace("END:VEVENT\r\n", "")), data),
        ("END without BEGIN", format!("{}END:VTODO\r\n", vcal(&vevent(ok_start))), data),
        ("mismatched END", vcal(&vevent(ok_start).replace("END:VEVENT", "END:VTODO")), data),
        ("truncated mid-line", vcal(&vevent(ok_start))[..60].to_owned(), data),
        ("components nested 17 deep", vcal(&format!("{}{nested17}", vevent(ok_start))), data),
        ("property outside any component", format!("UID:x\r\n{}", vcal(&vevent(ok_start))), data),
        ("line without a colon", vcal(&vevent(&format!("{ok_start}SUMMARY\r\n"))), data),
        ("NUL in a line", vcal(&vevent(&format!("{ok_start}SUMMARY:a\u{0}b\r\n"))), data),
        ("unterminated quoted parameter", vcal(&vevent(&format!("{ok_start}ATTENDEE;CN=\"x:mailto:a@b\r\n"))), data),
        ("month 13", vcal(&vevent("DTSTART:20241301T100000Z\r\n")), data),
        ("hour 25", vcal(&vevent("DTSTART:20240105T250000Z\r\n")), data),
        ("February 30", vcal(&vevent("DTSTART;VALUE=DATE:20240230\r\n")), data),
        ("ISO 8601 with dashes", vcal(&vevent("DTSTART:2024-01-05T10:00:00Z\r\n")), data),
        ("garbage DTEND", vcal(&vevent(&format!("{ok_start}DTEND:tomorrow\r\n"))), data),
        ("garbage EXDATE", vcal(&vevent(&format!("{ok_start}RRULE:FREQ=DAILY\r\nEXDATE:20240106T100000Z,never\r\n"))), data),
        ("garbage RECURRENCE-ID", vcal(&format!("{}{}", vevent(ok_start), vevent("RECURRENCE-ID:soon\r\nDTSTART:20240106T100000Z\r\n"))), data),
        ("garbage DTSTAMP", vcal(&vevent(ok_start).replace("DTSTAMP:20240101T000000Z", "DTSTAMP:yesterday")), data),
        ("broken VTIMEZONE", vcal(&format!("BEGIN:VTIMEZONE\r\nTZID:Broken\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+99\r\nTZOFFSETTO:banana\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n{}", vevent("DTSTART;TZID=Broken:20240105T100000\r\n"))), data),
        ("not a VCALENDAR", "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nEND:VCARD\r\n".into(), data),
        ("two VCALENDARs", format!("{}{}", vcal(&vevent(ok_start)), vcal(&vevent(ok_start))), object),
        ("no component", vcal(""), object),
        ("unknown component", vcal("BEGIN:VFOO\r\nUID:x\r\nEND:VFOO\r\n"), object),
        ("two masters", vcal(&format!("{}{}", vevent(ok_start), vevent(ok_start))), object),
        ("different UIDs", vcal(&format!("{}{}", vevent(ok_start), vevent("RECURRENCE-ID:20240106T100000Z\r\nDTSTART:20240106T100000Z\r\n").replace("UID:bad", "UID:other"))), object),
        ("duplicate RECURRENCE-ID", vcal(&format!("{}{}{}", vevent(&format!("{ok_start}RRULE:FREQ=DAILY\r\n")), vevent("RECURRENCE-ID:20240106T100000Z\r\nDTSTART:20240106T120000Z\r\n"), vevent("RECURRENCE-ID:20240106T100000Z\r\nDTSTART:20240106T130000Z\r\n"))), object),
        ("no UID", vcal(&vevent(ok_start).replace("UID:bad\r\n", "")), object),
        ("METHOD", vcal(&format!("METHOD:REQUEST\r\n{}", vevent(ok_start))), object),
        ("event and to-do", vcal(&format!("{}BEGIN:VTODO\r\nUID:bad\r\nEND:VTODO\r\n", vevent(ok_start))), object),
    ];
    for (what, body, cond) in &cases {
        for href in [KEEP, "/calendars/alice/default/new.ics"] {
            let r = s.req("PUT", href).ics(body).send().await;
            if r.status != 403 {
                panic!("{what} on {href}: expected 403 {cond}, got {r:?}");
            }
            r.precondition(NS_CALDAV, cond);
        }
    }
    unchanged(s, &before, "invalid iCalendar").await;
}

/// RRULEs with out-of-range or malformed parts are refused (403 valid-calendar-data). An
/// absurd COUNT, every BYxxx value at once, a rule that never occurs and override chains are
/// valid iCalendar: stored, and every query over them finishes with 207 or 507, never 500.
pub async fn absurd_recurrence_is_refused_or_bounded(s: &TestServer) {
    let before = seed(s).await;
    let start = "DTSTART:20240101T100000Z\r\n";
    let list = |from: u32, to: u32| {
        (from..=to)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let clock = format!(
        "BYHOUR={};BYMINUTE={};BYSECOND={}",
        list(0, 23),
        list(0, 59),
        list(0, 59)
    );
    // Every month, day, hour, minute and second: 31 million occurrences in each year, which
    // the rule engine would build at once (gigabytes) before yielding the first.
    let every_by = format!(
        "FREQ=YEARLY;BYMONTH={};BYMONTHDAY={};{clock}",
        list(1, 12),
        list(1, 31)
    );
    let every_second_daily = format!("FREQ=MONTHLY;{clock}");
    let mut bad = Vec::new();
    for rule in [
        every_by.as_str(),
        every_second_daily.as_str(),
        "FREQ=DAILY;BYSECOND=61",
        "FREQ=DAILY;BYMINUTE=60",
        "FREQ=DAILY;BYHOUR=24",
        "FREQ=MONTHLY;BYMONTHDAY=0",
        "FREQ=MONTHLY;BYMONTHDAY=32",
        "FREQ=YEARLY;BYYEARDAY=367",
        "FREQ=YEARLY;BYYEARDAY=0",
        "FREQ=YEARLY;BYWEEKNO=54",
        "FREQ=YEARLY;BYMONTH=13",
        "FREQ=YEARLY;BYMONTH=0",
        "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=0",
        "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=367",
        "FREQ=MONTHLY;BYDAY=6MO",
        "FREQ=WEEKLY;BYDAY=XX",
        "FREQ=WEEKLY;WKST=XX",
        "FREQ=DAILY;INTERVAL=-1",
        "FREQ=DAILY;INTERVAL=99999999999999999999",
        "FREQ=DAILY;COUNT=-1",
        "FREQ=DAILY;COUNT=99999999999999999999",
        "FREQ=DAILY;UNTIL=someday",
        "FREQ=DAILY;FREQ=WEEKLY",
        "FREQ=WEEKLY;BYDAY=MO;BYDAY=TU",
        "FREQ=FORTNIGHTLY",
        "FREQ=DAILY;BYHOUR=",
        "FREQ=DAILY;BYMONTHDAY=,",
        "FREQ=DAILY;COUNT",
        "",
    ] {
        let ics = vcal(&vevent(&format!("{start}RRULE:{rule}\r\n")));
        let r = s.req("PUT", KEEP).ics(&ics).send().await;
        if r.status != 403 || !r.body.contains("valid-calendar-data") {
            bad.push(format!("RRULE:{rule}: {} {}", r.status, r.body));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    unchanged(s, &before, "invalid RRULEs").await;

    let mut overrides = vevent(&format!("{start}RRULE:FREQ=DAILY\r\n"));
    for d in 2..300 {
        let day = chrono_day(d);
        overrides.push_str(&vevent(&format!(
            "RECURRENCE-ID;RANGE=THISANDFUTURE:{day}T100000Z\r\nDTSTART:{day}T1{}0000Z\r\n",
            d % 10
        )));
    }
    let self_rule_override = format!(
        "{}{}",
        vevent(&format!("{start}RRULE:FREQ=DAILY\r\n")),
        vevent(
            "RECURRENCE-ID:20240103T100000Z\r\nDTSTART:20240103T100000Z\r\nRRULE:FREQ=SECONDLY\r\n"
        )
    );
    let swapped = format!(
        "{}{}{}",
        vevent(&format!("{start}RRULE:FREQ=DAILY;COUNT=10\r\n")),
        vevent("RECURRENCE-ID:20240103T100000Z\r\nDTSTART:20240104T100000Z\r\n"),
        vevent("RECURRENCE-ID:20240104T100000Z\r\nDTSTART:20240103T100000Z\r\n")
    );
    let accepted: Vec<(&str, String)> = vec![
        (
            "absurd COUNT",
            vevent(&format!("{start}RRULE:FREQ=SECONDLY;COUNT=4000000000\r\n")),
        ),
        // Tolerated as real clients write them: stray separators, lower case, both ends given.
        (
            "stray separators",
            vevent(&format!("{start}RRULE:;FREQ=DAILY;;COUNT=3;\r\n")),
        ),
        (
            "lower case",
            vevent(&format!("{start}RRULE:freq=daily;count=3\r\n")),
        ),
        (
            "COUNT and UNTIL both",
            vevent(&format!(
                "{start}RRULE:FREQ=DAILY;COUNT=5;UNTIL=20250101T000000Z\r\n"
            )),
        ),
        // Every second of one day a year: dense, but one period is 86,400 occurrences.
        (
            "every second of New Year's Day",
            vevent(&format!(
                "{start}RRULE:FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=1;{clock}\r\n"
            )),
        ),
        (
            "never occurs (30 February)",
            vevent(&format!(
                "{start}RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30\r\n"
            )),
        ),
        (
            "never occurs, secondly",
            vevent(&format!(
                "{start}RRULE:FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30\r\n"
            )),
        ),
        ("300 THISANDFUTURE overrides", overrides),
        ("override with its own RRULE", self_rule_override),
        ("overrides swapping two instances", swapped),
        (
            "RDATE list of 5000",
            vevent(&format!(
                "{start}RDATE:{}\r\n",
                (0..5000)
                    .map(|i| format!("2024{:02}{:02}T{:02}0000Z", 1 + i % 12, 1 + i % 28, i % 24))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
        ),
    ];
    for (i, (what, body)) in accepted.iter().enumerate() {
        let href = format!("/calendars/alice/default/absurd{i}.ics");
        let body = body.replace("UID:bad", &format!("UID:absurd{i}"));
        let r = s.req("PUT", &href).ics(&vcal(&body)).send().await;
        assert_eq!(r.status, 201, "{what}: {r:?}");
    }
    // Queries over all of them at once for a century: plain, expanded, free-busy.
    for (from, to) in [("20240101T000000Z", "21240101T000000Z")] {
        let query = format!(
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="{from}" end="{to}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#
        );
        let expand = query.replace(
            "<D:getetag/>",
            &format!(r#"<C:calendar-data><C:expand start="{from}" end="{to}"/></C:calendar-data>"#),
        );
        let fb = format!(
            r#"<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="{from}" end="{to}"/></C:free-busy-query>"#
        );
        for body in [&query, &expand, &fb] {
            let r = s.req("REPORT", CAL).depth("1").xml(body).send().await;
            assert!(matches!(r.status, 200 | 207 | 507), "{from}..{to}: {r:?}");
            if r.status == 507 {
                r.precondition(NS_DAV, "number-of-matches-within-limits");
            }
        }
    }
    // A window where the bounded series are cheap answers exactly.
    let r = s
        .req("REPORT", CAL)
        .depth("1")
        .xml(r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20240103T095959Z" end="20240103T100001Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#)
        .send()
        .await;
    r.status(207);
    assert!(
        r.hrefs()
            .contains(&"/calendars/alice/default/absurd0.ics".to_string()),
        "{:?}",
        r.hrefs()
    );
}

/// The date `d` days into 2024 (1-based), as YYYYMMDD.
fn chrono_day(d: u32) -> String {
    let date = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("date")
        + chrono::Duration::days(i64::from(d) - 1);
    date.format("%Y%m%d").to_string()
}

/// Report arguments that make no sense: 403 with `valid-filter` / `supported-collation` /
/// `valid-calendar-data` / `supported-report`, or 400 for malformed DAV elements.
pub async fn bad_report_arguments(s: &TestServer) {
    let before = seed(s).await;
    let q = |inner: &str| {
        format!(
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>{inner}</C:calendar-query>"#
        )
    };
    let tr = |a: &str| {
        q(&format!(
            r#"<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range {a}/></C:comp-filter></C:comp-filter></C:filter>"#
        ))
    };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("no filter", q(""), 403, "valid-filter"),
        (
            "filter not on VCALENDAR",
            q(r#"<C:filter><C:comp-filter name="VEVENT"/></C:filter>"#),
            403,
            "valid-filter",
        ),
        (
            "garbage time-range",
            tr(r#"start="soon" end="later""#),
            403,
            "valid-filter",
        ),
        ("time-range without bounds", tr(""), 403, "valid-filter"),
        (
            "time-range ending before it starts",
            tr(r#"start="20250101T000000Z" end="20240101T000000Z""#),
            403,
            "valid-filter",
        ),
        (
            "time-range not in UTC",
            tr(r#"start="20240101T000000" end="20250101T000000""#),
            403,
            "valid-filter",
        ),
        (
            "unknown collation",
            q(
                r#"<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match collation="i;klingon">x</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter></C:filter>"#,
            ),
            403,
            "supported-collation",
        ),
        (
            "garbage CALDAV:timezone",
            q(
                r#"<C:filter><C:comp-filter name="VCALENDAR"/></C:filter><C:timezone>not a calendar</C:timezone>"#,
            ),
            403,
            "valid-calendar-data",
        ),
        (
            "expand without a range",
            q(r#"<C:filter><C:comp-filter name="VCALENDAR"/></C:filter>"#).replace(
                "<D:getetag/>",
                "<C:calendar-data><C:expand/></C:calendar-data>",
            ),
            403,
            "valid-filter",
        ),
        (
            "unknown report",
            r#"<X:whatever xmlns:X="urn:x"/>"#.into(),
            403,
            "supported-report",
        ),
        (
            "free-busy without a range",
            r#"<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"/>"#.into(),
            403,
            "valid-filter",
        ),
    ];
    for (what, body, code, cond) in &cases {
        let r = s.req("REPORT", CAL).depth("1").xml(body).send().await;
        if r.status != *code {
            panic!("{what}: expected {code}, got {r:?}");
        }
        let ns = if *cond == "supported-report" {
            NS_DAV
        } else {
            NS_CALDAV
        };
        r.precondition(ns, cond);
    }
    for (what, extra) in [
        ("garbage sync-level", "<D:sync-level>2</D:sync-level>"),
        (
            "negative nresults",
            "<D:limit><D:nresults>-1</D:nresults></D:limit>",
        ),
        (
            "huge nresults",
            "<D:limit><D:nresults>99999999999999999999999</D:nresults></D:limit>",
        ),
    ] {
        let r = s.req("REPORT", CAL).xml(&sync_body("", extra)).send().await;
        assert_eq!(r.status, 400, "{what}: {r:?}");
    }
    // Hrefs that are not paths at all get their own 404 inside a 207.
    let mg = r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><D:href>%ff%fe</D:href><D:href>../../etc/passwd</D:href><D:href></D:href><D:href>/calendars/alice/default/%2e%2e</D:href></C:calendar-multiget>"#;
    let r = s.req("REPORT", CAL).xml(mg).send().await;
    r.status(207);
    for (h, resp) in r.responses() {
        assert_eq!(r.response_status(&h), Some(404), "{h}: {resp:?}");
    }
    unchanged(s, &before, "bad REPORTs").await;
}

// ---------------------------------------------------------------------------------------------
// Limits, each with a small configured value

async fn server_with(db: &TestDb, f: impl FnOnce(&mut Config)) -> TestServer {
    let mut cfg = Config::default();
    f(&mut cfg);
    TestServer::start_with(db, cfg, true).await
}

/// `max_request_body` and `max_resource_size`: over the request limit 413 (by Content-Length
/// before reading, or while reading a chunked body), over the object limit 403
/// `max-resource-size`; the boundary itself is accepted; nothing partial is stored.
pub async fn body_and_object_limits(db: &TestDb) {
    let s = server_with(db, |c| {
        c.limits.max_request_body = 4096;
        c.limits.max_resource_size = 2048;
    })
    .await;
    let before = seed(&s).await;
    let padded = |n: usize| {
        let base = event("keep", "Keep me");
        let pad = n - base.len() - "X-PAD:\r\n".len();
        base.replace(
            "END:VEVENT",
            &format!("X-PAD:{}\r\nEND:VEVENT", "p".repeat(pad)),
        )
    };
    // Declared too large: 413 and Connection: close, before a byte of the body is read.
    let r = raw_req(
        &s,
        "PUT",
        KEEP.as_bytes(),
        b"Content-Type: text/calendar\r\nContent-Length: 4097\r\n",
        b"",
    )
    .await;
    raw_status(&r, 413, "Content-Length over the limit");
    assert_eq!(r.header("connection"), Some("close"));
    let r = raw_req(
        &s,
        "PROPPATCH",
        CAL.as_bytes(),
        b"Content-Length: 1000000000000\r\n",
        b"",
    )
    .await;
    raw_status(&r, 413, "a terabyte announced");
    // Chunked, no length announced: refused once the limit is crossed.
    let big = padded(5000);
    let mut chunked = Vec::new();
    for part in big.as_bytes().chunks(1000) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = raw_req(
        &s,
        "PUT",
        KEEP.as_bytes(),
        b"Content-Type: text/calendar\r\nTransfer-Encoding: chunked\r\n",
        &chunked,
    )
    .await;
    raw_status(&r, 413, "chunked body over the limit");
    // Under the request limit, over the object limit: the CalDAV precondition.
    for href in [KEEP, "/calendars/alice/default/big.ics"] {
        s.req("PUT", href)
            .ics(&padded(2049))
            .send()
            .await
            .status(403)
            .precondition(NS_CALDAV, "max-resource-size");
    }
    unchanged(&s, &before, "oversized bodies").await;
    // Exactly at the limit is fine.
    s.req("PUT", "/calendars/alice/default/edge.ics")
        .ics(&padded(2048).replace("UID:keep", "UID:edge"))
        .send()
        .await
        .status(201);
    // The advertised limit is the configured one.
    let r = s
        .req("PROPFIND", CAL)
        .depth("0")
        .xml(r#"<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:max-resource-size/></D:prop></D:propfind>"#)
        .send()
        .await;
    assert_eq!(r.prop_text(CAL, NS_CALDAV, "max-resource-size"), "2048");
    s.stop().await;
}

/// `header_read_timeout_seconds`: a client that sends its headers a byte at a time
/// (slowloris), one that stops halfway, and one that connects and says nothing are all
/// disconnected; a normal request on the same server is answered.
pub async fn slow_headers_are_cut_off(db: &TestDb) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = server_with(db, |c| c.limits.header_read_timeout_seconds = 1).await;
    // Trickle: one byte every 100 ms, forever; the server must end it.
    let mut trickle = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let head = s.raw_head("PROPFIND", CAL.as_bytes(), b"X-Slow: ");
    let trickler = async {
        for b in head.iter().chain(std::iter::repeat(&b'z')) {
            if trickle.write_all(&[*b]).await.is_err() {
                return "closed";
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut probe = [0u8; 64];
            // A zero-length read or an error means the server hung up.
            match tokio::time::timeout(Duration::from_millis(1), trickle.read(&mut probe)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return "closed",
                Ok(Ok(_)) => return "answered",
                Err(_) => {}
            }
        }
        "never"
    };
    let outcome = tokio::time::timeout(Duration::from_secs(60), trickler)
        .await
        .expect("a slowloris client was never disconnected");
    assert_eq!(outcome, "closed");
    // Half a request head, then silence.
    let mut half = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let r = read_response(&mut half).await;
    assert_eq!(r.status, 0, "half a head got an answer: {r:?}");
    // Nothing at all.
    let mut silent = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let r = read_response(&mut silent).await;
    assert_eq!(r.status, 0, "a silent connection got an answer: {r:?}");
    // A complete request is served.
    s.req("PROPFIND", CAL).depth("0").send().await.status(207);
    s.stop().await;
}

/// `max_connections`: connections beyond the limit, idle ones counted, get an immediate 503
/// with Retry-After and are closed; once a connection ends, new ones are served again.
pub async fn connection_limit_answers_503(db: &TestDb) {
    use tokio::io::AsyncWriteExt;
    let s = server_with(db, |c| c.limits.max_connections = 2).await;
    // One idle connection, one that made a request and stays open (keep-alive).
    let idle = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let mut kept = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    kept.write_all(&s.raw_head("PROPFIND", CAL.as_bytes(), b"Depth: 0\r\n"))
        .await
        .expect("write");
    assert_eq!(read_response(&mut kept).await.status, 207);
    // Both hold their slots: the next connection is refused, with or without a request.
    for _ in 0..3 {
        let r = raw_exchange(
            s.addr,
            &s.raw_head("PROPFIND", CAL.as_bytes(), b"Depth: 0\r\n"),
        )
        .await;
        assert_eq!(r.status, 503, "{r:?}");
        assert!(
            r.header("retry-after")
                .is_some_and(|v| v.parse::<u64>().is_ok()),
            "{r:?}"
        );
        assert_eq!(r.header("connection"), Some("close"));
        let mut quiet = tokio::net::TcpStream::connect(s.addr)
            .await
            .expect("connect");
        assert_eq!(read_response(&mut quiet).await.status, 503);
    }
    // The kept connection still works.
    kept.write_all(&s.raw_head("PROPFIND", CAL.as_bytes(), b"Depth: 0\r\n"))
        .await
        .expect("write");
    assert_eq!(read_response(&mut kept).await.status, 207);
    // Closing one frees its slot; the server notices the close asynchronously, so a few
    // refusals may still come first.
    drop(idle);
    let mut served = false;
    for _ in 0..200 {
        let r = raw_exchange(
            s.addr,
            &s.raw_head(
                "PROPFIND",
                CAL.as_bytes(),
                b"Depth: 0\r\nConnection: close\r\n",
            ),
        )
        .await;
        match r.status {
            207 => {
                served = true;
                break;
            }
            503 => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("unexpected {other}: {r:?}"),
        }
    }
    assert!(served, "a freed slot was never reused");
    drop(kept);
    s.stop().await;
}

/// A second connection to the database that holds the write lock until dropped: SQLite's
/// `BEGIN IMMEDIATE`; on Postgres, the `changes` table locked against inserts, so a write
/// blocks *after* it has written its object row and bumped the revision.
enum Blocker {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Blocker {
    async fn hold(url: &str) -> Blocker {
        use sqlx::Connection;
        if url.starts_with("postgres") {
            let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query("BEGIN").execute(&mut c).await.expect("begin");
            sqlx::query("LOCK TABLE changes IN EXCLUSIVE MODE")
                .execute(&mut c)
                .await
                .expect("lock");
            Blocker::Postgres(c)
        } else {
            let mut c = sqlx::SqliteConnection::connect(url).await.expect("connect");
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut c)
                .await
                .expect("begin");
            Blocker::Sqlite(c)
        }
    }

    async fn release(self) {
        match self {
            Blocker::Sqlite(mut c) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut c)
                    .await
                    .expect("rollback");
            }
            Blocker::Postgres(mut c) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut c)
                    .await
                    .expect("rollback");
            }
        }
    }
}

/// `request_timeout_seconds`: a write stuck behind a database lock is answered 503 with
/// Retry-After when its time is up, and its transaction is rolled back: once the lock is
/// gone nothing of it is visible (no object, no revision, no change-log entry), and the
/// server writes normally again.
pub async fn request_timeout_rolls_back_writes(db: &TestDb) {
    let s = server_with(db, |c| c.limits.request_timeout_seconds = 1).await;
    let before = seed(&s).await;
    let token = s
        .req("REPORT", CAL)
        .xml(&sync_body("", ""))
        .send()
        .await
        .sync_token();
    // Authenticate once so the cached login keeps argon2 out of the measured request.
    s.req("PROPFIND", CAL).depth("0").send().await.status(207);
    let blocker = Blocker::hold(&s.db_url).await;
    for (m, href, body) in [
        (
            "PUT",
            "/calendars/alice/default/late.ics",
            Some(event("late", "Late")),
        ),
        ("PUT", KEEP, Some(event("keep", "Changed late"))),
        ("DELETE", KEEP, None),
    ] {
        let mut req = s.req(m, href);
        if let Some(b) = &body {
            req = req.ics(b);
        }
        // Without a request timeout this would wait for the lock, which is only released
        // below: the guard turns that into a failure instead of a hang.
        let r = tokio::time::timeout(Duration::from_secs(30), req.send())
            .await
            .unwrap_or_else(|_| panic!("{m} {href} was not cut off by the request timeout"));
        r.status(503);
        assert!(r.header("retry-after").is_some(), "{r:?}");
    }
    blocker.release().await;
    unchanged(&s, &before, "timed-out writes").await;
    s.req("GET", "/calendars/alice/default/late.ics")
        .send()
        .await
        .status(404);
    let r = s
        .req("REPORT", CAL)
        .xml(&sync_body(&token, ""))
        .send()
        .await;
    r.status(207);
    assert!(
        r.hrefs().is_empty(),
        "timed-out writes left changes: {:?}",
        r.hrefs()
    );
    // The server (and its database connections) write normally again.
    s.req("PUT", "/calendars/alice/default/after.ics")
        .ics(&event("after", "After"))
        .send()
        .await
        .status(201);
    let r = s
        .req("REPORT", CAL)
        .xml(&sync_body(&token, ""))
        .send()
        .await;
    assert_eq!(r.hrefs(), vec!["/calendars/alice/default/after.ics"]);
    s.stop().await;
}

/// `request_timeout_seconds` also bounds CPU work that never waits: a query whose
/// recurrence expansion would take far longer (hundreds of series, every second of a day
/// each, with no instance budget) is stopped and answered 503 with Retry-After; cheap
/// requests on the same server are answered normally.
pub async fn request_timeout_bounds_expansion(db: &TestDb) {
    use almanac::ical::{CalendarObject, ComponentKind};
    let s = server_with(db, |c| {
        c.limits.request_timeout_seconds = 1;
        c.limits.max_instances_per_request = u64::MAX;
    })
    .await;
    let p = s.store.principal_by_name("alice").await.unwrap().unwrap();
    let col = s
        .store
        .create_calendar(
            p.id,
            &almanac::store::NewCalendar {
                name: "busy".into(),
                components: vec![ComponentKind::Event],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // 400 series of one instance per second: a day of them is 34,560,000 instances.
    let objs: Vec<(String, CalendarObject)> = (0..400)
        .map(|i| {
            let ics = vcal(
                &vevent("DTSTART:20240601T000000Z\r\nRRULE:FREQ=SECONDLY\r\n")
                    .replace("UID:bad", &format!("UID:s{i}")),
            );
            (format!("s{i}.ics"), CalendarObject::from_ics(ics).unwrap())
        })
        .collect();
    s.store
        .import_objects(col.id, &objs, i64::MAX)
        .await
        .unwrap();
    let body = r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20240601T000000Z" end="20240602T000000Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#;
    let r = tokio::time::timeout(
        Duration::from_secs(120),
        s.req("REPORT", "/calendars/alice/busy/")
            .depth("1")
            .xml(body)
            .send(),
    )
    .await
    .expect("the expensive query was not cut off by the request timeout");
    r.status(503);
    assert!(r.header("retry-after").is_some(), "{r:?}");
    // Narrow windows over the same series are cheap and answered.
    let narrow = body.replace("20240602T000000Z", "20240601T000001Z");
    let r = s
        .req("REPORT", "/calendars/alice/busy/")
        .depth("1")
        .xml(&narrow)
        .send()
        .await;
    assert_eq!(r.status(207).hrefs().len(), 400);
    s.stop().await;
}

/// `auth.argon2_concurrency`: however many first logins arrive at once, no more argon2
/// verifications run together than configured; every login still succeeds.
pub async fn argon2_concurrency_is_bounded(db: &TestDb) {
    for (round, limit) in [1usize, 2].into_iter().enumerate() {
        let mut cfg = Config::default();
        cfg.auth.argon2_concurrency = limit;
        // A new server has nothing cached: every one of these logins runs argon2.
        let s = TestServer::start_with(db, cfg, round == 0).await;
        let logins = (0..8).map(|i| {
            let user = if i % 2 == 0 { ALICE } else { BOB };
            s.req_as(Some(user), "PROPFIND", &format!("/calendars/{}/", user.0))
                .depth("0")
                .send()
        });
        for r in futures_util::future::join_all(logins).await {
            r.status(207);
        }
        let peak = s.auth.peak_concurrent_verifications();
        assert!(
            (1..=limit).contains(&peak),
            "argon2_concurrency {limit}: {peak} verifications ran at once"
        );
        s.stop().await;
    }
}

/// `max_instances_per_request` and `max_sync_results` take the configured values: a small
/// expansion budget turns a month of a daily series into 507 when the filter needs parsing
/// (a prop-filter), a week still answers, and a plain time-range, answered from the stored
/// occurrences, expands nothing at query time; a small result limit truncates sync-collection
/// with 507 and a continuation token.
pub async fn work_limits_are_configurable(db: &TestDb) {
    let s = server_with(db, |c| {
        c.limits.max_instances_per_request = 20;
        c.limits.max_sync_results = 2;
    })
    .await;
    s.req("PUT", "/calendars/alice/default/daily.ics")
        .ics(&vcal(&vevent(
            "DTSTART:20240101T100000Z\r\nRRULE:FREQ=DAILY\r\n",
        )))
        .send()
        .await
        .status(201);
    let q = |end: &str| {
        format!(
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20240301T000000Z" end="{end}"/><C:prop-filter name="DTSTART"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#
        )
    };
    s.req("REPORT", CAL)
        .depth("1")
        .xml(&q("20240401T000000Z"))
        .send()
        .await
        .status(507)
        .precondition(NS_DAV, "number-of-matches-within-limits");
    let plain = q("20240401T000000Z").replace(r#"<C:prop-filter name="DTSTART"/>"#, "");
    let r = s.req("REPORT", CAL).depth("1").xml(&plain).send().await;
    assert_eq!(
        r.status(207).hrefs(),
        vec!["/calendars/alice/default/daily.ics"]
    );
    let r = s
        .req("REPORT", CAL)
        .depth("1")
        .xml(&q("20240308T000000Z"))
        .send()
        .await;
    assert_eq!(
        r.status(207).hrefs(),
        vec!["/calendars/alice/default/daily.ics"]
    );
    for i in 0..4 {
        s.req("PUT", &format!("/calendars/alice/default/m{i}.ics"))
            .ics(&event(&format!("m{i}"), "m"))
            .send()
            .await
            .status(201);
    }
    let r = s.req("REPORT", CAL).xml(&sync_body("", "")).send().await;
    r.status(207);
    assert_eq!(r.response_status(CAL), Some(507), "truncated at 2");
    assert_eq!(r.hrefs().len(), 3, "two members and the truncation marker");
    s.stop().await;
}
