//! A corpus of calendar objects in the shapes Google, Outlook/Exchange, Apple, Thunderbird and
//! Nextcloud export (`tests/fixtures/ics`): every file round-trips byte-exact through PUT/GET,
//! and its `expand`ed instances in chosen windows match the hand-computed expectations in
//! `tests/fixtures/ics/expected.tsv` (each group there explains its computation).

use crate::support::*;
use almanac::dav::xml::NS_CALDAV;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ics");
const CORPUS: &str = "/calendars/alice/corpus/";

/// (file name, contents) of every `.ics` fixture, sorted by name.
fn fixtures() -> Vec<(String, String)> {
    let dir = std::fs::read_dir(DIR).unwrap_or_else(|e| panic!("cannot read {DIR}: {e}"));
    let mut out = Vec::new();
    for entry in dir {
        let path = entry.expect("fixture directory entry").path();
        if path.extension().is_none_or(|e| e != "ics") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 fixture name")
            .to_owned();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
        let text = String::from_utf8(bytes).unwrap_or_else(|e| panic!("{name} is not UTF-8: {e}"));
        out.push((name, text));
    }
    out.sort();
    assert!(!out.is_empty(), "no .ics fixtures in {DIR}");
    out
}

/// One line of expected.tsv.
struct Expectation {
    line: usize,
    file: String,
    start: String,
    end: String,
    component: String,
    /// Sorted DTSTARTs: `YYYYMMDDTHHMMSSZ`, or `YYYYMMDD` for DATE instances.
    expected: Vec<String>,
}

fn is_utc_stamp(s: &str) -> bool {
    s.len() == 16
        && s.ends_with('Z')
        && s.as_bytes()[8] == b'T'
        && s[..8]
            .bytes()
            .chain(s[9..15].bytes())
            .all(|b| b.is_ascii_digit())
}

fn is_date(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit())
}

fn expectations() -> Vec<Expectation> {
    let path = format!("{DIR}/expected.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = raw.split('\t').collect();
        let [file, start, end, component, expected] = fields.as_slice() else {
            panic!("expected.tsv:{line}: want 5 tab-separated fields, got {raw:?}");
        };
        assert!(
            is_utc_stamp(start) && is_utc_stamp(end) && start < end,
            "expected.tsv:{line}: bad window {start} .. {end}"
        );
        assert!(
            matches!(*component, "VEVENT" | "VTODO" | "VJOURNAL"),
            "expected.tsv:{line}: bad component {component:?}"
        );
        let mut expected: Vec<String> = expected.split_whitespace().map(str::to_owned).collect();
        for v in &expected {
            assert!(
                is_utc_stamp(v) || is_date(v),
                "expected.tsv:{line}: bad instance {v:?}"
            );
        }
        expected.sort();
        out.push(Expectation {
            line,
            file: file.to_string(),
            start: start.to_string(),
            end: end.to_string(),
            component: component.to_string(),
            expected,
        });
    }
    assert!(!out.is_empty(), "{path} has no expectations");
    out
}

async fn make_corpus_calendar(s: &TestServer) {
    s.req("MKCALENDAR", CORPUS).send().await.status(201);
}

/// PUTs every fixture (create-only) and returns (name, contents, ETag).
async fn put_all(s: &TestServer) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (name, text) in fixtures() {
        let put = s
            .req("PUT", &format!("{CORPUS}{name}"))
            .header("If-None-Match", "*")
            .ics(&text)
            .send()
            .await;
        put.status(201);
        let etag = put
            .header("etag")
            .unwrap_or_else(|| panic!("{name}: no ETag on PUT"))
            .to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "{name}: not a strong ETag: {etag}"
        );
        out.push((name, text, etag));
    }
    out
}

pub async fn corpus_round_trips_byte_exact(s: &TestServer) {
    let all = fixtures();
    // Guard against a checkout that normalised line endings: the corpus has both kinds.
    assert!(
        all.iter().any(|(_, t)| !t.contains('\r')),
        "no LF-only fixture (line endings normalised on checkout?)"
    );
    assert!(
        all.iter().any(|(_, t)| t.contains("\r\n")),
        "no CRLF fixture (line endings normalised on checkout?)"
    );
    make_corpus_calendar(s).await;
    for (name, text, etag) in put_all(s).await {
        let get = s.req("GET", &format!("{CORPUS}{name}")).send().await;
        get.status(200).has_header("content-type", "text/calendar");
        if get.body.as_bytes() != text.as_bytes() {
            let at = get
                .body
                .bytes()
                .zip(text.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(get.body.len().min(text.len()));
            panic!(
                "{name}: GET differs from the PUT bytes at byte {at} (sent {} bytes, got {})\n--- got\n{:?}",
                text.len(),
                get.body.len(),
                get.body
            );
        }
        assert_eq!(
            get.header("etag"),
            Some(etag.as_str()),
            "{name}: GET ETag differs from PUT ETag"
        );
    }
}

fn query_body(e: &Expectation) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data><C:expand start="{s}" end="{e}"/></C:calendar-data></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="{c}"><C:time-range start="{s}" end="{e}"/></C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"#,
        s = e.start,
        e = e.end,
        c = e.component
    )
}

/// DTSTARTs of the `component`s in expanded calendar data, sorted. A value that is neither UTC
/// nor a DATE keeps its parameters so that the mismatch shows what came back.
fn instance_starts(data: &str, component: &str) -> Result<Vec<String>, String> {
    let tops = almanac::ical::parse(data).map_err(|e| format!("unparsable calendar-data: {e}"))?;
    let [cal] = tops.as_slice() else {
        return Err(format!("{} top-level components", tops.len()));
    };
    let mut out = Vec::new();
    for c in cal.children.iter().filter(|c| c.name == component) {
        let Some(p) = c.prop("DTSTART") else {
            out.push("<no DTSTART>".to_owned());
            continue;
        };
        let date = p
            .param("VALUE")
            .is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
        if (date && is_date(&p.value)) || (!date && is_utc_stamp(&p.value)) {
            out.push(p.value.clone());
        } else {
            let params: Vec<String> = p.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(format!("{};{}", params.join(";"), p.value));
        }
    }
    out.sort();
    Ok(out)
}

pub async fn corpus_instances_match_expectations(s: &TestServer) {
    let expectations = expectations();
    make_corpus_calendar(s).await;
    let names: Vec<String> = put_all(s).await.into_iter().map(|(n, _, _)| n).collect();
    for n in &names {
        assert!(
            expectations.iter().any(|e| &e.file == n),
            "{n} has no line in expected.tsv"
        );
    }
    let mut failures = Vec::new();
    for e in &expectations {
        assert!(
            names.contains(&e.file),
            "expected.tsv:{}: no fixture {}",
            e.line,
            e.file
        );
        let r = s
            .req("REPORT", CORPUS)
            .depth("1")
            .xml(&query_body(e))
            .send()
            .await;
        r.status(207);
        let href = format!("{CORPUS}{}", e.file);
        let what = format!(
            "expected.tsv:{} {} {} in [{}, {})",
            e.line, e.file, e.component, e.start, e.end
        );
        let returned = r.hrefs().contains(&href);
        if e.expected.is_empty() {
            if returned {
                let data = r
                    .prop(&href, NS_CALDAV, "calendar-data")
                    .map(|d| d.text())
                    .unwrap_or_default();
                failures.push(format!(
                    "{what}: expected no instance, but the object was returned\n{data}"
                ));
            }
            continue;
        }
        if !returned {
            failures.push(format!(
                "{what}: expected {:?}, but the object was not returned (hrefs: {:?})",
                e.expected,
                r.hrefs()
            ));
            continue;
        }
        let Some(data) = r.prop(&href, NS_CALDAV, "calendar-data").map(|d| d.text()) else {
            failures.push(format!("{what}: no calendar-data\n{}", r.body));
            continue;
        };
        match instance_starts(&data, &e.component) {
            Ok(got) if got == e.expected => {}
            Ok(got) => failures.push(format!(
                "{what}:\n  expected {:?}\n  got      {:?}\n{data}",
                e.expected, got
            )),
            Err(err) => failures.push(format!("{what}: {err}\n{data}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus expectations failed:\n\n{}",
        failures.len(),
        expectations.len(),
        failures.join("\n\n")
    );
}
