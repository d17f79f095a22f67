//! Property test: the SQL prefilter never drops an object the exact filter accepts.
//!
//! Seeded random objects (events, to-dos and journals; UTC, floating, zoned and all-day times;
//! recurring with COUNT/UNTIL/none, EXDATE, RDATE and overrides) go into the real store; for
//! random windows and calendar time zones, every object the exact filter (`caldav::filter`)
//! matches must be among the store's candidates. For events, the stored occurrences must
//! decide exactly as the filter does wherever they decide, and leave every other match to
//! parsing. Runs on both backends, so it checks the SQL each one actually executes.

use crate::support::*;
use almanac::caldav::filter::Filter;
use almanac::ical::expand::Budget;
use almanac::ical::freebusy::utc_stamp;
use almanac::ical::tz::Zone;
use almanac::ical::{self, CalendarObject, ComponentKind};
use almanac::store::{Candidates, Collection, NewCalendar};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const BERLIN_VTZ: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";

fn local_stamp(ts: i64) -> String {
    utc_stamp(ts).trim_end_matches('Z').to_string()
}

/// A time property in one of the four forms.
fn time_prop(rng: &mut Rng, name: &str, ts: i64, form: u64) -> String {
    match form {
        0 => format!("{name}:{}\r\n", utc_stamp(ts)),
        1 => format!("{name}:{}\r\n", local_stamp(ts)),
        2 => format!(
            "{name};TZID={}:{}\r\n",
            rng.pick(&[
                "Europe/Berlin",
                "America/New_York",
                "W. Europe Standard Time",
                "Asia/Tokyo"
            ]),
            local_stamp(ts)
        ),
        _ => format!("{name};VALUE=DATE:{}\r\n", &local_stamp(ts)[..8]),
    }
}

fn random_object(rng: &mut Rng, i: usize) -> (ComponentKind, String) {
    let kind = match rng.below(10) {
        0..=6 => ComponentKind::Event,
        7..=8 => ComponentKind::Todo,
        _ => ComponentKind::Journal,
    };
    let uid = format!("p{i}");
    let start = rng.range(1_672_531_200, 1_798_761_600) / 900 * 900; // 2023..2027, quarter hours
    let form = rng.below(4);
    let mut body = String::new();
    let has_start = kind != ComponentKind::Todo || rng.chance(70);
    if has_start {
        body.push_str(&time_prop(rng, "DTSTART", start, form));
    }
    let len = rng.range(0, 3 * 86_400) / 900 * 900;
    match (kind, rng.below(3)) {
        (ComponentKind::Event, 0) => body.push_str(&time_prop(
            rng,
            "DTEND",
            start + len.max(if form == 3 { 86_400 } else { 0 }),
            form,
        )),
        (ComponentKind::Event, 1) => body.push_str(&format!("DURATION:PT{}M\r\n", len / 60)),
        (ComponentKind::Todo, 0) if has_start => {
            body.push_str(&format!("DURATION:PT{}M\r\n", len / 60))
        }
        (ComponentKind::Todo, 0 | 1) => body.push_str(&time_prop(
            rng,
            "DUE",
            start + len.max(if form == 3 { 86_400 } else { 0 }),
            form,
        )),
        _ => {}
    }
    if kind == ComponentKind::Todo && rng.chance(30) {
        body.push_str(&format!("COMPLETED:{}\r\n", utc_stamp(start + len)));
    }
    if kind == ComponentKind::Todo && rng.chance(30) {
        body.push_str(&format!("CREATED:{}\r\n", utc_stamp(start - 86_400)));
    }
    let recurring = has_start && rng.chance(40);
    let mut overrides = String::new();
    if recurring {
        let freq = rng.pick(&["DAILY", "WEEKLY", "MONTHLY", "YEARLY", "HOURLY"]);
        let mut rule = format!("RRULE:FREQ={freq};INTERVAL={}", 1 + rng.below(3));
        match rng.below(3) {
            0 => rule.push_str(&format!(";COUNT={}", 1 + rng.below(30))),
            1 if form != 3 => rule.push_str(&format!(
                ";UNTIL={}",
                utc_stamp(start + rng.range(3600, 400 * 86_400))
            )),
            1 => rule.push_str(&format!(
                ";UNTIL={}",
                &local_stamp(start + rng.range(86_400, 400 * 86_400))[..8]
            )),
            _ => {}
        }
        if freq == "WEEKLY" && rng.chance(50) {
            rule.push_str(";BYDAY=MO,WE,FR");
        }
        body.push_str(&rule);
        body.push_str("\r\n");
        if rng.chance(30) {
            body.push_str(&time_prop(rng, "EXDATE", start + 86_400, form));
        }
        if rng.chance(20) && form != 3 {
            let at = start + rng.range(-40, 400) * 86_400;
            body.push_str(&time_prop(rng, "RDATE", at, form));
        }
        if rng.chance(30) && form == 0 && freq == "DAILY" {
            // Move the third occurrence (daily, interval 1 only) by up to ±20 days.
            let rid = start + 2 * 86_400;
            let range = if rng.chance(30) {
                ";RANGE=THISANDFUTURE"
            } else {
                ""
            };
            let moved = rid + rng.range(-20, 20) * 86_400;
            overrides = format!(
                "BEGIN:{k}\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nRECURRENCE-ID{range}:{}\r\nDTSTART:{}\r\nEND:{k}\r\n",
                utc_stamp(rid),
                utc_stamp(moved),
                k = kind.as_str()
            );
            if !body.contains("INTERVAL=1") {
                overrides.clear();
            }
        }
    }
    if kind == ComponentKind::Event && rng.chance(20) {
        body.push_str(
            "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n",
        );
    }
    let vtz = if body.contains("TZID=Europe/Berlin") {
        BERLIN_VTZ
    } else {
        ""
    };
    let ics = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//prop//EN\r\n{vtz}BEGIN:{k}\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n{body}END:{k}\r\n{overrides}END:VCALENDAR\r\n",
        k = kind.as_str()
    );
    (kind, ics)
}

fn filter_for(kind: ComponentKind, from: i64, to: i64) -> Filter {
    let xml = format!(
        r#"<C:filter xmlns:C="urn:ietf:params:xml:ns:caldav"><C:comp-filter name="VCALENDAR"><C:comp-filter name="{}"><C:time-range start="{}" end="{}"/></C:comp-filter></C:comp-filter></C:filter>"#,
        kind.as_str(),
        utc_stamp(from),
        utc_stamp(to)
    );
    Filter::parse(&almanac::dav::xml::parse(xml.as_bytes()).unwrap()).unwrap()
}

/// alice's calendar `name` for events, to-dos and journals, made through the store.
async fn mixed_calendar(s: &TestServer, name: &str) -> Collection {
    let p = s.store.principal_by_name("alice").await.unwrap().unwrap();
    let new = NewCalendar {
        name: name.into(),
        components: vec![
            ComponentKind::Event,
            ComponentKind::Todo,
            ComponentKind::Journal,
        ],
        ..Default::default()
    };
    s.store.create_calendar(p.id, &new).await.unwrap()
}

pub async fn prefilter_never_drops_a_match(s: &TestServer) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let col = mixed_calendar(s, "prop").await;
    let mut objs = Vec::new();
    let mut parsed = Vec::new();
    for i in 0..400 {
        let (kind, ics) = random_object(&mut rng, i);
        let obj = CalendarObject::from_ics(ics.clone())
            .unwrap_or_else(|e| panic!("generated object {i} invalid: {e}\n{ics}"));
        parsed.push((
            format!("p{i}.ics"),
            kind,
            ical::parse(&ics).unwrap().pop().unwrap(),
        ));
        objs.push((format!("p{i}.ics"), obj));
    }
    s.store
        .import_objects(col.id, &objs, i64::MAX)
        .await
        .unwrap();
    let zones = [
        Zone::Utc,
        ical::tz::ZoneResolver::default()
            .resolve("Pacific/Kiritimati")
            .unwrap(),
        ical::tz::ZoneResolver::default()
            .resolve("Etc/GMT+12")
            .unwrap(),
        ical::tz::ZoneResolver::default()
            .resolve("Europe/Berlin")
            .unwrap(),
    ];
    // One evaluation context per object and calendar zone, built once.
    let ctxs: Vec<Vec<_>> = parsed
        .iter()
        .map(|(_, _, cal)| {
            zones
                .iter()
                .map(|z| ical::time_ctx(cal, z.clone()))
                .collect()
        })
        .collect();
    let budget = Budget::unlimited();
    let (mut checked, mut matched, mut decided_hits) = (0usize, 0usize, 0usize);
    for w in 0..60 {
        let from = if w == 0 {
            3_786_912_000
        } else {
            rng.range(1_640_995_200, 1_830_297_600)
        }; // 2022..2028, and 2090
        let to = from + rng.range(3600, 60 * 86_400);
        for kind in [
            ComponentKind::Event,
            ComponentKind::Todo,
            ComponentKind::Journal,
        ] {
            let filter = filter_for(kind, from, to);
            let pre = filter.prefilter();
            assert_eq!(pre.component, Some(kind));
            let cand = Candidates {
                component: pre.component,
                from: pre.window.map(|x| x.0),
                to: pre.window.map(|x| x.1),
            };
            let names: std::collections::HashSet<String> = s
                .store
                .candidates(col.id, &cand)
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.meta.name)
                .collect();
            for (zi, zone) in zones.iter().enumerate() {
                // For events, the stored occurrences: what they decide must be exactly the
                // filter's answer, and what they leave open must include every other match.
                let decided = if kind == ComponentKind::Event {
                    Some(occurrence_answer(s, col.id, from, to, zone).await)
                } else {
                    None
                };
                for (oi, (name, k, cal)) in parsed.iter().enumerate() {
                    if *k != kind {
                        continue;
                    }
                    checked += 1;
                    let exact = filter.matches(cal, &ctxs[oi][zi], &budget).unwrap();
                    if let Some((hits, open)) = &decided {
                        assert!(
                            !hits.contains(name) || exact,
                            "occurrences matched {name}, the filter does not: [{}, {}) in {}",
                            utc_stamp(from),
                            utc_stamp(to),
                            zone.name()
                        );
                        assert!(
                            !exact || hits.contains(name) || open.contains(name),
                            "occurrences dropped {name}: [{}, {}) in {}",
                            utc_stamp(from),
                            utc_stamp(to),
                            zone.name()
                        );
                        if exact {
                            decided_hits += hits.contains(name) as usize;
                        }
                    }
                    if exact {
                        matched += 1;
                        assert!(
                            names.contains(name),
                            "prefilter dropped {name} for {} [{}, {}) in zone {:?}:\n{}",
                            kind.as_str(),
                            utc_stamp(from),
                            utc_stamp(to),
                            zone.name(),
                            objs.iter()
                                .find(|(n, _)| n == name)
                                .map(|(_, o)| o.raw.as_str())
                                .unwrap_or("")
                        );
                    }
                }
            }
        }
    }
    // The property means something only if plenty of cases matched and the rest did not, and
    // if the occurrence index decided most event matches itself.
    assert!(
        matched > 500 && matched < checked / 2,
        "matched {matched} of {checked}"
    );
    assert!(
        decided_hits > 200,
        "occurrences decided only {decided_hits} matches"
    );
}

/// The names the stored occurrences say match `[from, to)` read in `zone`, and the names they
/// leave to parsing (floating objects in another zone, objects indexed short of `to`, other
/// component types).
async fn occurrence_answer(
    s: &TestServer,
    collection_id: i64,
    from: i64,
    to: i64,
    zone: &Zone,
) -> (
    std::collections::HashSet<String>,
    std::collections::HashSet<String>,
) {
    let utc = matches!(zone, Zone::Utc);
    let slack = if utc { 0 } else { 14 * 3600 };
    let rows = s
        .store
        .occurrences(collection_id, from, to, slack)
        .await
        .unwrap();
    // The same rows with their objects' names and ETags, which must be the objects' own.
    let members = s
        .store
        .occurrence_members(collection_id, from, to, slack)
        .await
        .unwrap();
    let order = |r: &almanac::store::OccurrenceRow| (r.object_id, r.occ.start, r.occ.end);
    let mut plain = rows.clone();
    plain.sort_by_key(order);
    let mut with_keys: Vec<_> = members.iter().map(|m| m.row).collect();
    with_keys.sort_by_key(order);
    assert_eq!(plain, with_keys, "occurrence_members returned other rows");
    let mut ids: Vec<i64> = rows.iter().map(|r| r.object_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let stored: std::collections::HashSet<(String, String)> = s
        .store
        .objects_by_ids(collection_id, &ids, false)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.meta.name, o.meta.etag))
        .collect();
    let keyed: std::collections::HashSet<(String, String)> =
        members.into_iter().map(|m| (m.name, m.etag)).collect();
    assert_eq!(keyed, stored, "occurrence rows carry stale names or ETags");
    let (mut hit_ids, mut open_ids) = (Vec::new(), Vec::new());
    for r in rows.iter().filter(|r| r.until >= to) {
        if r.floating && !utc {
            open_ids.push(r.object_id);
        } else if r.occ.start < to && (r.occ.end > from || r.occ.start >= from) {
            hit_ids.push(r.object_id);
        }
    }
    let names = |v: Vec<almanac::store::StoredObject>| -> std::collections::HashSet<String> {
        v.into_iter().map(|o| o.meta.name).collect()
    };
    let hits = names(
        s.store
            .objects_by_ids(collection_id, &hit_ids, false)
            .await
            .unwrap(),
    );
    let mut open = names(
        s.store
            .objects_by_ids(collection_id, &open_ids, false)
            .await
            .unwrap(),
    );
    let cand = Candidates {
        component: Some(ComponentKind::Event),
        from: Some(from),
        to: Some(to),
    };
    open.extend(names(
        s.store
            .unindexed_candidates(collection_id, &cand)
            .await
            .unwrap(),
    ));
    (hits, open)
}

/// Runs one statement on the test database directly, as an older server's rows would look.
async fn raw_sql(db_url: &str, sql: &str) {
    if db_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(db_url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(db_url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

/// Every stored occurrence overlapping one of `windows`, in a stable order.
async fn occurrences_in(
    s: &TestServer,
    collection_id: i64,
    windows: &[(i64, i64)],
) -> Vec<Vec<(i64, i64, i64)>> {
    let mut all = Vec::new();
    for &(from, to) in windows {
        let mut rows: Vec<(i64, i64, i64)> = s
            .store
            .occurrences(collection_id, from, to, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.object_id, r.occ.start, r.occ.end))
            .collect();
        rows.sort_unstable();
        all.push(rows);
    }
    all
}

/// Objects indexed by an older server (behind `INDEX_VERSION`, no occurrence rows) are
/// reindexed at start in batches, one transaction each: afterwards the index is exactly what
/// writing the objects produced, and a second pass finds nothing to do.
pub async fn reindex_restores_a_stale_index(s: &TestServer) {
    let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
    let col = mixed_calendar(s, "stale").await;
    // More than one reindex batch (500).
    let objs: Vec<(String, CalendarObject)> = (0..1_100)
        .map(|i| {
            let (_, ics) = random_object(&mut rng, i);
            (format!("s{i}.ics"), CalendarObject::from_ics(ics).unwrap())
        })
        .collect();
    s.store
        .import_objects(col.id, &objs, i64::MAX)
        .await
        .unwrap();
    let windows: Vec<(i64, i64)> = (0..20)
        .map(|_| {
            let from = rng.range(1_640_995_200, 1_830_297_600);
            (from, from + rng.range(3600, 60 * 86_400))
        })
        .collect();
    let written = occurrences_in(s, col.id, &windows).await;
    assert!(
        written.iter().map(Vec::len).sum::<usize>() > 100,
        "the windows hold occurrences"
    );

    raw_sql(
        &s.db_url,
        "UPDATE objects SET index_version = 0, occ_until = 0, first_start = NULL, last_end = NULL",
    )
    .await;
    raw_sql(&s.db_url, "DELETE FROM occurrences").await;
    assert!(occurrences_in(s, col.id, &windows)
        .await
        .iter()
        .all(Vec::is_empty));

    let done = almanac::reindex::reindex_stale(s.store.as_ref())
        .await
        .unwrap();
    assert_eq!(done, 1_100);
    assert_eq!(occurrences_in(s, col.id, &windows).await, written);
    assert_eq!(
        almanac::reindex::reindex_stale(s.store.as_ref())
            .await
            .unwrap(),
        0
    );
}
