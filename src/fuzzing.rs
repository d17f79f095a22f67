//! Entry points for coverage-guided fuzzing (`fuzz/`, cargo-fuzz) and for the stable test that
//! replays the committed corpus (`tests/fuzz_replay.rs`). Both call the same functions, so a
//! crash found by the fuzzer stays a failing test on stable until it is fixed.
//!
//! Each entry takes arbitrary bytes, drives one untrusted-input surface of the server the way a
//! request would, and asserts only real invariants (our own output parses again, the index never
//! excludes an object a query matches, …). None may panic, and the work each does is bounded by
//! small recurrence budgets, so a slow input is a finding too. Not part of the server's API.
#![doc(hidden)]

use crate::caldav::caldata::CalendarData;
use crate::caldav::filter::{CompFilter, Filter, TimeRange};
use crate::dav::headers::{self, Depth};
use crate::dav::path::{encode_segment, DavPath, MAX_SEGMENT_LEN};
use crate::dav::xml::{self, Element, XmlWriter, NS_CALDAV, NS_DAV};
use crate::ical::expand::{Budget, Series};
use crate::ical::tz::Zone;
use crate::ical::{self, freebusy, write, CalendarObject, ComponentKind, TimeIndex};
use crate::store::EtagMatch;
use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// Instances one evaluation may generate: enough to exercise expansion, small enough that a
/// pathological rule costs milliseconds, as `limits.max_instances_per_request` does in a request.
const BUDGET: u64 = 500;

/// Objects the filters and calendar-data selections of fuzzed requests are evaluated against:
/// a zoned weekly series with an override, a floating all-day to-do, a VFREEBUSY.
const SAMPLES: &[&str] = &[
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fuzz//EN\r\nBEGIN:VTIMEZONE\r\nTZID:Custom/Zone\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:s1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART;TZID=Custom/Zone:20240105T090000\r\nDTEND;TZID=Custom/Zone:20240105T100000\r\nRRULE:FREQ=WEEKLY;BYDAY=FR,MO\r\nEXDATE;TZID=Custom/Zone:20240108T090000\r\nSUMMARY:Stand-up\r\nATTENDEE;CN=\"Doe, J\";PARTSTAT=ACCEPTED:mailto:j@example.com\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:x\r\nEND:VALARM\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:s1\r\nDTSTAMP:20240101T000000Z\r\nRECURRENCE-ID;TZID=Custom/Zone:20240112T090000\r\nDTSTART;TZID=Europe/Berlin:20240112T110000\r\nDURATION:PT2H\r\nSUMMARY:Moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fuzz//EN\r\nBEGIN:VTODO\r\nUID:s2\r\nDTSTAMP:20240101T000000Z\r\nDTSTART;VALUE=DATE:20240301\r\nDUE;VALUE=DATE:20240305\r\nRRULE:FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=12\r\nSTATUS:NEEDS-ACTION\r\nCATEGORIES:Work,Home\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fuzz//EN\r\nBEGIN:VFREEBUSY\r\nUID:s3\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240101T000000Z\r\nDTEND:20240201T000000Z\r\nFREEBUSY;FBTYPE=BUSY-TENTATIVE:20240102T100000Z/PT1H,20240103T100000Z/20240103T120000Z\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n",
];

/// A request body as PROPFIND, PROPPATCH, MKCALENDAR and REPORT read it: the XML reader, then
/// the CalDAV interpretations of what it returned (filters, calendar-data, time zones), each
/// evaluated against sample objects.
pub fn xml_request(data: &[u8]) {
    let Ok(root) = xml::parse(data) else {
        return;
    };
    assert!(
        depth(&root) <= xml::MAX_DEPTH,
        "the reader enforces MAX_DEPTH"
    );

    // Dead properties are stored as fragments and embedded verbatim in later PROPFIND answers:
    // what a client sends must come back as the same element.
    let mut w = XmlWriter::new();
    w.start(NS_DAV, "multistatus")
        .start(NS_DAV, "prop")
        .raw_fragment(&root.to_fragment())
        .end()
        .end();
    let doc = w.finish();
    assert!(
        !doc.chars().any(not_xml_char),
        "our answer holds a character XML 1.0 forbids\n{doc:?}"
    );
    let back = xml::parse(doc.as_bytes())
        .unwrap_or_else(|e| panic!("fragment inside our multistatus does not parse: {e}\n{doc}"));
    let embedded = back
        .child(NS_DAV, "prop")
        .and_then(|p| p.elements().next())
        .expect("embedded fragment");
    assert_eq!(embedded, &root, "a dead property round-trips\n{doc}");

    // Text (hrefs, sync tokens, calendar-data) goes out through the writer's escaping.
    let text = root.text();
    let mut w = XmlWriter::new();
    w.text_element(NS_DAV, "href", &text);
    let back = xml::parse(w.finish().as_bytes()).expect("our text element parses");
    assert_eq!(back.text(), text, "text survives escaping");

    // Property names a client asks for come back as elements of our answer.
    if let Some(prop) = root.child(NS_DAV, "prop") {
        for n in prop.elements().take(8).map(|e| &e.name) {
            let mut w = XmlWriter::new();
            w.start(NS_DAV, "multistatus").empty(&n.ns, &n.local).end();
            let out = w.finish();
            let back = xml::parse(out.as_bytes())
                .unwrap_or_else(|e| panic!("our multistatus does not parse: {e}\n{out}"));
            let first = back.elements().next().expect("the property element");
            assert_eq!(&first.name, n, "a property name survives our writer\n{out}");
        }
    }

    let samples: Vec<ical::Component> = SAMPLES
        .iter()
        .filter_map(|s| ical::parse(s).ok().and_then(|mut t| t.pop()))
        .collect();
    let mut budgeted = 0;
    visit(&root, &mut |e| {
        if budgeted >= 4 {
            return;
        }
        if e.is(NS_CALDAV, "filter") {
            budgeted += 1;
            if let Ok(f) = Filter::parse(e) {
                let _ = f.prefilter();
                for cal in &samples {
                    let ctx = ical::time_ctx(cal, Zone::Utc);
                    let _ = f.matches(cal, &ctx, &Budget::new(BUDGET));
                }
            }
        } else if e.is(NS_CALDAV, "calendar-data") {
            budgeted += 1;
            if let Ok(cd) = CalendarData::parse(e) {
                for (raw, cal) in SAMPLES.iter().zip(&samples) {
                    let ctx = ical::time_ctx(cal, Zone::Utc);
                    if let Ok(out) = cd.render(raw, &ctx, &Budget::new(BUDGET)) {
                        ical::parse(&out).unwrap_or_else(|err| {
                            panic!("rendered calendar-data does not parse: {err}\n{out}")
                        });
                    }
                }
            }
        } else if e.is(NS_CALDAV, "time-range") {
            let _ = crate::caldav::filter::parse_time_range(e);
        } else if e.is(NS_CALDAV, "timezone") || e.is(NS_CALDAV, "calendar-timezone") {
            budgeted += 1;
            if let Some(zone) = ical::zone_of_calendar_timezone(&e.text()) {
                for cal in &samples {
                    let ctx = ical::time_ctx(cal, zone.clone());
                    let series = Series::new(cal, ComponentKind::Event);
                    let _ =
                        series.instances(&ctx, 1_700_000_000, 1_800_000_000, &Budget::new(BUDGET));
                }
            }
        }
    });
}

/// Outside XML 1.0 §2.2 `Char` (C0 controls other than tab, LF, CR; U+FFFE, U+FFFF).
fn not_xml_char(c: char) -> bool {
    matches!(c, '\0'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}')
        || matches!(c, '\u{fffe}' | '\u{ffff}')
}

fn depth(e: &Element) -> usize {
    1 + e.elements().map(depth).max().unwrap_or(0)
}

/// Pre-order walk; the reader bounds depth, so recursion is safe.
fn visit(e: &Element, f: &mut impl FnMut(&Element)) {
    f(e);
    for c in e.elements() {
        visit(c, f);
    }
}

/// A body as PUT reads it, then what queries do with a stored object: validation, the index,
/// expansion, filters, calendar-data `expand`, free/busy, and our serialiser.
pub fn ical(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tops) = ical::parse(text) {
        // Whatever we parsed, we can write, and what we write reads back as the same thing
        // (partial retrieval and expansion answers are built this way).
        for top in &tops {
            let out = write::to_string(top);
            let again = ical::parse(&out)
                .unwrap_or_else(|e| panic!("our serialisation does not parse: {e}\n{out}"));
            assert_eq!(again.as_slice(), std::slice::from_ref(top), "{out}");
        }
    }
    let Ok(obj) = CalendarObject::from_ics(text.to_owned()) else {
        return;
    };
    assert_eq!(obj.raw, text, "the stored bytes are the client's");
    let cal = ical::parse(text)
        .ok()
        .and_then(|mut t| t.pop())
        .expect("a valid object parses");
    let kind = obj.index.component;
    let idx = &obj.index.time;
    // UTC and the extreme IANA offsets: index bounds must hold whatever the calendar's zone.
    let zones = [
        Zone::Utc,
        Zone::Iana(chrono_tz::Tz::Pacific__Kiritimati),
        Zone::Iana(chrono_tz::Tz::Etc__GMTPlus12),
    ];
    for floating in zones {
        let ctx = ical::time_ctx(&cal, floating);
        let series = Series::new(&cal, kind);
        for (from, to) in windows(idx) {
            let range = TimeRange {
                start: from,
                end: to,
            };
            let _ = series.instances(&ctx, from, to, &Budget::new(BUDGET));
            // The SQL prefilter keeps `last_end >= from AND first_start <= to` (NULL passes):
            // an object the exact filter matches must be among those candidates.
            let filter = Filter {
                top: comp_filter(
                    "VCALENDAR",
                    None,
                    vec![comp_filter(kind.as_str(), Some(range), vec![])],
                ),
            };
            let matched = filter.matches(&cal, &ctx, &Budget::new(BUDGET));
            if let Ok(true) = matched {
                let kept = idx.last_end.is_none_or(|l| l >= from)
                    && idx.first_start.is_none_or(|f| f <= to);
                assert!(
                    kept,
                    "prefilter drops a match: window [{from}, {to}) in {}, index {idx:?}",
                    ctx.floating.name()
                );
            }
            // Where the stored occurrences decide (report::select_by_occurrences), they decide
            // as parsing does, for the query and for free/busy.
            let decided = idx
                .occurrences
                .as_ref()
                .filter(|o| to <= o.until && (!idx.floating || matches!(ctx.floating, Zone::Utc)));
            if let Some(occ) = decided {
                if let Ok(m) = matched {
                    let by_index = occ.rows.iter().any(|o| o.overlaps(from, to));
                    assert_eq!(by_index, m, "occurrence index vs parsing, [{from}, {to})");
                }
                if let Ok(parsed) =
                    freebusy::busy_periods(&cal, &ctx, from, to, &Budget::new(BUDGET))
                {
                    let stored: Vec<freebusy::BusyPeriod> = occ
                        .rows
                        .iter()
                        .filter(|o| o.overlaps(from, to))
                        .filter_map(|o| {
                            let (s, e) = (o.start.max(from), o.end.min(to));
                            Some(freebusy::BusyPeriod {
                                start: s,
                                end: e,
                                kind: o.busy?,
                            })
                            .filter(|_| e > s)
                        })
                        .collect();
                    assert_eq!(
                        freebusy::merge(stored),
                        freebusy::merge(parsed),
                        "occurrence index vs parsing, busy time in [{from}, {to})"
                    );
                }
            }
            let cd = CalendarData {
                expand: Some(range),
                ..Default::default()
            };
            if let Ok(out) = cd.render(text, &ctx, &Budget::new(BUDGET)) {
                ical::parse(&out).unwrap_or_else(|e| {
                    panic!("expanded calendar-data does not parse: {e}\n{out}")
                });
            }
            if let Ok(periods) = freebusy::busy_periods(&cal, &ctx, from, to, &Budget::new(BUDGET))
            {
                let merged = freebusy::merge(periods);
                for p in &merged {
                    assert!(from <= p.start && p.start < p.end && p.end <= to, "{p:?}");
                }
                let out = freebusy::render(&merged, from, to, 1_700_000_000);
                ical::parse(&out)
                    .unwrap_or_else(|e| panic!("free/busy answer does not parse: {e}\n{out}"));
            }
        }
    }
}

fn comp_filter(name: &str, time_range: Option<TimeRange>, comps: Vec<CompFilter>) -> CompFilter {
    CompFilter {
        name: name.to_owned(),
        is_not_defined: false,
        time_range,
        props: Vec::new(),
        comps,
    }
}

/// Query windows: the sharp ones just outside the index bounds (a match there means the index
/// is wrong), the bounds themselves, and a few fixed ranges.
fn windows(idx: &TimeIndex) -> Vec<(i64, i64)> {
    const DAY: i64 = 86_400;
    let mut w = vec![(1_704_067_200, 1_735_689_600), (0, 4_102_444_800)];
    if let Some(f) = idx.first_start {
        w.push((f - 2 * DAY, f - 1));
        w.push((f, f + 1));
    }
    if let Some(l) = idx.last_end {
        w.push((l + 1, l + 2 * DAY));
        w.push((l - 1, l));
    }
    w
}

/// Request paths and the WebDAV headers that carry paths, entity tags and flags.
pub fn path(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    if let Ok(p) = DavPath::parse(&s) {
        // Hrefs we hand out name the same resource when a client sends them back.
        let href = p.href();
        assert!(href.starts_with('/'), "{href}");
        assert_eq!(DavPath::parse(&href).as_ref(), Ok(&p), "{s:?} → {href}");
    }
    let decoded_len = s.len();
    if decoded_len <= MAX_SEGMENT_LEN && !s.is_empty() && s != "." && s != ".." {
        let segment_ok = !s.contains(['/', '\\']) && !s.chars().any(char::is_control);
        let enc = encode_segment(&s);
        assert!(!enc.contains('/'), "{enc}");
        if segment_ok {
            let obj = DavPath::Object("u".into(), "c".into(), s.clone().into_owned());
            assert_eq!(DavPath::parse(&obj.href()).as_ref(), Ok(&obj));
        }
    }
    let _ = crate::auth::parse_basic(&s);

    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let one = |name: &'static str| {
        let mut h = HeaderMap::new();
        h.insert(HeaderName::from_static(name), value.clone());
        h
    };
    let _ = headers::depth(&one("depth"), Depth::One);
    let _ = headers::overwrite(&one("overwrite"));
    let _ = headers::prefer_minimal(&one("prefer"));
    let _ = headers::prefer_minimal(&one("brief"));
    for name in ["if-match", "if-none-match"] {
        if let Ok(pre) = headers::precondition(&one(name)) {
            for m in [pre.if_match, pre.if_none_match].into_iter().flatten() {
                if let EtagMatch::List(tags) = m {
                    for t in tags {
                        assert!(
                            t.len() >= 2 && t.starts_with('"') && t.ends_with('"'),
                            "{t}"
                        );
                    }
                }
            }
        }
    }
    if let Ok(dest) = headers::destination(&one("destination")) {
        assert!(
            dest.starts_with('/') && !dest.contains(['?', '#']),
            "{dest}"
        );
        let _ = DavPath::parse(&dest);
    }
}
