//! REPORTs: sync-collection (RFC 6578 §3) on calendars and on the calendar home,
//! calendar-query (RFC 4791 §7.8), calendar-multiget (§7.9) and free-busy-query (§7.10).
//!
//! sync-collection accepts every dialect real clients send (research §0.2): Depth 0 or 1, with
//! or without `sync-level`. Tokens of another collection, another database or a pruned range
//! are refused with 403 `valid-sync-token`, never answered with a silent full listing.
//!
//! calendar-query narrows candidates with the SQL prefilter the filter derives, then decides
//! with the exact filter (`filter.rs`), which expands recurrences within the query window.

use super::caldata::CalendarData;
use super::filter::{Filter, FilterError, TimeRange};
use super::methods::{multistatus, prop_names, prop_response, PropFind};
use super::resource::{Ctx, Res};
use super::Request;
use crate::dav::headers::{self, Depth};
use crate::dav::multistatus::{write_found_texts, write_status_response, PropValue};
use crate::dav::path::{self, DavPath};
use crate::dav::xml::{self, Element, QName, XmlWriter, NS_CALDAV, NS_DAV};
use crate::dav::{DavError, DavResult};
use crate::ical::expand::{Budget, LimitExceeded, FLOATING_SLACK};
use crate::ical::tz::Zone;
use crate::ical::{self, freebusy};
use crate::store::{Candidates, Collection, ObjectText, StoreError, StoredObject};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;

pub async fn report(ctx: &mut Ctx<'_>, r: &Res, req: &Request<'_>) -> DavResult<Response> {
    let root = xml::parse(&req.body)?;
    // Depth is meaningless for these reports on a calendar (Evolution sends 0 for a query that
    // means 1), but garbage is still refused.
    let _ = headers::depth(req.headers, Depth::Zero)?;
    ctx.load_home_for(asked_names(&root)).await?;
    match (root.name.ns.as_str(), root.name.local.as_str(), r) {
        (NS_DAV, "sync-collection", Res::Home(c) | Res::Calendar(c)) => {
            sync_collection(ctx, r, c, &root).await
        }
        (NS_CALDAV, "calendar-multiget", Res::Calendar(c)) => multiget(ctx, c, &root).await,
        (NS_CALDAV, "calendar-query", Res::Calendar(c)) => query(ctx, c, &root).await,
        (NS_CALDAV, "free-busy-query", Res::Calendar(c)) => free_busy(ctx, c, &root).await,
        (NS_DAV, "expand-property", Res::Principal) => expand_property(ctx, r, &root).await,
        _ => Err(
            DavError::precondition(StatusCode::FORBIDDEN, NS_DAV, "supported-report")
                .with_detail(format!("{} is not supported here", root.name)),
        ),
    }
}

fn filter_error(e: FilterError) -> DavError {
    match e {
        FilterError::Invalid(d) => {
            DavError::precondition(StatusCode::FORBIDDEN, NS_CALDAV, "valid-filter").with_detail(d)
        }
        FilterError::Collation(c) => {
            DavError::precondition(StatusCode::FORBIDDEN, NS_CALDAV, "supported-collation")
                .with_detail(format!("collation {c:?} is not supported"))
        }
    }
}

fn too_much_work(e: LimitExceeded) -> DavError {
    if e == LimitExceeded::Deadline {
        // Out of time, not out of work budget: the caller answers 503 with Retry-After.
        return DavError::Status(StatusCode::SERVICE_UNAVAILABLE);
    }
    DavError::precondition(
        StatusCode::INSUFFICIENT_STORAGE,
        NS_DAV,
        "number-of-matches-within-limits",
    )
    .with_detail(
        "the request needs more recurrence expansion than limits.max_instances_per_request allows",
    )
}

/// What a report asks to see of each object.
struct Wanted {
    props: PropFind,
    data: Option<CalendarData>,
}

fn report_props(root: &Element) -> DavResult<Wanted> {
    let prop = root.child(NS_DAV, "prop");
    let names = prop.map(prop_names).unwrap_or_default();
    let data = match prop.and_then(|p| p.child(NS_CALDAV, "calendar-data")) {
        None => None,
        Some(e) => Some(CalendarData::parse(e).map_err(|e| match e {
            None => {
                DavError::precondition(StatusCode::FORBIDDEN, NS_CALDAV, "supported-calendar-data")
            }
            Some(f) => filter_error(f),
        })?),
    };
    let names = names
        .into_iter()
        .filter(|n| !n.is(NS_CALDAV, "calendar-data"))
        .collect();
    Ok(Wanted {
        props: PropFind::Prop(names),
        data,
    })
}

/// The zone floating times of a calendar are read in: its calendar-timezone, else UTC.
fn floating_zone(c: &Collection) -> Zone {
    c.timezone
        .as_deref()
        .and_then(ical::zone_of_calendar_timezone)
        .unwrap_or(Zone::Utc)
}

async fn write_object(
    ctx: &Ctx<'_>,
    w: &mut XmlWriter,
    c: &Arc<Collection>,
    obj: &StoredObject,
    wanted: &Wanted,
    floating: &Zone,
    budget: &Budget,
) -> DavResult<()> {
    ctx.check_deadline()?;
    let res = Res::Object(c.clone(), obj.meta.clone());
    let mut resp = prop_response(ctx, &res, &wanted.props).await?;
    if let Some(cd) = &wanted.data {
        let text = if cd.is_plain() {
            obj.ics.clone()
        } else {
            let cal = ical::parse(&obj.ics).ok().and_then(|mut t| t.pop());
            match cal {
                Some(cal) => {
                    let tctx = ical::time_ctx(&cal, floating.clone());
                    cd.render(&obj.ics, &tctx, budget).map_err(too_much_work)?
                }
                None => obj.ics.clone(),
            }
        };
        resp.found.push((
            QName::new(NS_CALDAV, "calendar-data"),
            PropValue::Text(text),
        ));
    }
    resp.write(w, false);
    Ok(())
}

async fn sync_collection(
    ctx: &Ctx<'_>,
    r: &Res,
    c: &Collection,
    root: &Element,
) -> DavResult<Response> {
    let token = root
        .child(NS_DAV, "sync-token")
        .map(|t| t.text())
        .unwrap_or_default();
    let token = token.trim();
    let since = if token.is_empty() {
        None
    } else {
        Some(
            ctx.parse_sync_token(c, token)
                .ok_or(DavError::Store(StoreError::InvalidSyncToken))?,
        )
    };
    if let Some(level) = root.child(NS_DAV, "sync-level") {
        let l = level.text();
        if !matches!(l.trim(), "1" | "infinite") {
            return Err(DavError::BadRequest(format!("invalid sync-level {l:?}")));
        }
    }
    let client_limit = match root
        .child(NS_DAV, "limit")
        .and_then(|l| l.child(NS_DAV, "nresults"))
    {
        Some(n) => Some(
            n.text()
                .trim()
                .parse::<u64>()
                .map_err(|_| DavError::BadRequest("invalid DAV:nresults".into()))?,
        ),
        None => None,
    };
    let max = ctx.st.config.limits.max_sync_results;
    let limit = Some(client_limit.map_or(max, |l| l.min(max)));
    let wanted = report_props(root)?;
    let set = ctx.st.store.changes_since(c.id, since, limit).await?;
    let mut w = XmlWriter::new();
    w.start(NS_DAV, "multistatus");
    let live: Vec<String> = set
        .changes
        .iter()
        .filter(|ch| !ch.deleted)
        .map(|ch| ch.name.clone())
        .collect();
    match r {
        Res::Calendar(_) => {
            let mut found: HashMap<String, StoredObject> = HashMap::new();
            if wanted.data.is_some() {
                for o in ctx.st.store.objects_by_names(c.id, &live).await? {
                    found.insert(o.meta.name.clone(), o);
                }
            } else {
                for m in ctx.st.store.object_metas_named(c.id, &live).await? {
                    found.insert(
                        m.name.clone(),
                        StoredObject {
                            meta: m,
                            ics: String::new(),
                        },
                    );
                }
            }
            let floating = floating_zone(c);
            let budget = ctx.budget();
            let shared = Arc::new(c.clone());
            for ch in &set.changes {
                match found.get(&ch.name) {
                    Some(o) => {
                        write_object(ctx, &mut w, &shared, o, &wanted, &floating, &budget).await?
                    }
                    None => {
                        let href = ctx.href(&Res::NewObject(c.clone(), ch.name.clone()));
                        write_status_response(&mut w, &href, StatusCode::NOT_FOUND)
                    }
                }
            }
        }
        _ => {
            let cals: HashMap<String, Collection> = ctx
                .st
                .store
                .calendars(ctx.me.id)
                .await?
                .into_iter()
                .map(|c| (c.name.clone(), c))
                .collect();
            for ch in &set.changes {
                match cals.get(&ch.name) {
                    Some(cal) => {
                        let res = Res::Calendar(cal.clone());
                        prop_response(ctx, &res, &wanted.props)
                            .await?
                            .write(&mut w, false);
                    }
                    None => {
                        let href = ctx.href(&Res::NewCalendar(ch.name.clone()));
                        write_status_response(&mut w, &href, StatusCode::NOT_FOUND)
                    }
                }
            }
        }
    }
    if set.truncated {
        // RFC 6578 §3.6: the request-URI with 507 tells the client to ask again from the token.
        write_status_response(&mut w, &ctx.href(r), StatusCode::INSUFFICIENT_STORAGE);
    }
    let next = Collection {
        revision: set.revision,
        ..c.clone()
    };
    w.text_element(NS_DAV, "sync-token", &ctx.sync_token(&next));
    w.end();
    Ok(multistatus(w))
}

/// A calendar a multiget names, with the zone its floating times are read in (parsed from its
/// calendar-timezone once, not once per href) and its encoded href, which every member's
/// href starts with.
struct Named {
    col: Arc<Collection>,
    zone: Zone,
    prefix: String,
}

async fn multiget(ctx: &Ctx<'_>, c: &Collection, root: &Element) -> DavResult<Response> {
    let wanted = report_props(root)?;
    let budget = ctx.budget();
    // First the hrefs, then one query per calendar named, then the answers in request order.
    let hrefs: Vec<String> = root
        .children_named(NS_DAV, "href")
        .map(|h| h.text().trim().to_owned())
        .collect();
    let targets: Vec<Option<(String, String)>> = hrefs
        .iter()
        .map(|href| match DavPath::parse(strip_origin(href)) {
            Ok(DavPath::Object(owner, cal, name)) if owner == ctx.me.name => Some((cal, name)),
            _ => None,
        })
        .collect();
    let mut names_by_cal: HashMap<&str, Vec<String>> = HashMap::new();
    for (cal, name) in targets.iter().flatten() {
        names_by_cal.entry(cal).or_default().push(name.clone());
    }
    // Each calendar named (`None`: there is no such calendar).
    let mut by_cal: HashMap<&str, Option<Named>> = HashMap::new();
    let known = |col: Collection| Named {
        zone: floating_zone(&col),
        prefix: path::calendar_href(&ctx.me.name, &col.name),
        col: Arc::new(col),
    };
    for &cal in names_by_cal.keys() {
        let col = if cal == c.name {
            Some(c.clone())
        } else {
            ctx.st.store.calendar(ctx.me.id, cal).await?
        };
        by_cal.insert(cal, col.map(known));
    }
    // A multiget asking for ETags and the stored data (what clients send) reads only those.
    let direct = asks_etags_and_plain_data(&wanted);
    let mut texts = Vec::new();
    let mut objects = Vec::new();
    for (&cal, names) in &names_by_cal {
        if let Some(Some(Named { col, .. })) = by_cal.get(cal) {
            if direct {
                texts.push((
                    cal,
                    ctx.st.store.object_texts_by_names(col.id, names).await?,
                ));
            } else {
                objects.push((cal, ctx.st.store.objects_by_names(col.id, names).await?));
            }
        }
    }
    let texts: HashMap<(&str, &str), &ObjectText> = texts
        .iter()
        .flat_map(|(cal, found)| found.iter().map(move |o| ((*cal, o.name.as_str()), o)))
        .collect();
    let objects: HashMap<(&str, &str), &StoredObject> = objects
        .iter()
        .flat_map(|(cal, found)| found.iter().map(move |o| ((*cal, o.meta.name.as_str()), o)))
        .collect();
    let asked = asked_props(&wanted);
    let data_name = QName::new(NS_CALDAV, "calendar-data");
    let mut w = XmlWriter::new();
    w.start(NS_DAV, "multistatus");
    for (href, target) in hrefs.iter().zip(&targets) {
        let found = target.as_ref().and_then(|(cal, name)| {
            let col = by_cal.get(cal.as_str())?.as_ref()?;
            Some((col, (cal.as_str(), name.as_str())))
        });
        match found {
            Some((Named { prefix, .. }, key)) if direct => match texts.get(&key) {
                Some(obj) => {
                    ctx.check_deadline()?;
                    let href = path::member_href(prefix, &obj.name);
                    let etag = asked.iter().map(|q| (*q, obj.etag.as_str()));
                    let data = wanted.data.as_ref().map(|_| (&data_name, obj.ics.as_str()));
                    write_found_texts(&mut w, &href, etag.chain(data));
                }
                None => write_status_response(&mut w, href, StatusCode::NOT_FOUND),
            },
            Some((Named { col, zone, .. }, key)) => match objects.get(&key) {
                Some(obj) => write_object(ctx, &mut w, col, obj, &wanted, zone, &budget).await?,
                None => write_status_response(&mut w, href, StatusCode::NOT_FOUND),
            },
            // RFC 4791 §7.9: each missing (or foreign) href gets its own 404.
            None => write_status_response(&mut w, href, StatusCode::NOT_FOUND),
        }
    }
    w.end();
    Ok(multistatus(w))
}

/// Every element name in a report body (the properties it asks for among them).
fn asked_names(root: &Element) -> Vec<&QName> {
    let mut names = vec![&root.name];
    for e in root.elements() {
        names.extend(asked_names(e));
    }
    names
}

fn strip_origin(href: &str) -> &str {
    match href
        .strip_prefix("http://")
        .or_else(|| href.strip_prefix("https://"))
    {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => href,
    }
}

/// RFC 3253 §3.8 expand-property on the principal (Apple asks for its delegations right after
/// setup): the requested properties of the principal, in one 207. Href values are not expanded
/// further; the proxy sets are empty because Almanac has no delegation yet.
async fn expand_property(ctx: &Ctx<'_>, r: &Res, root: &Element) -> DavResult<Response> {
    let mut names = Vec::new();
    for p in root.children_named(NS_DAV, "property") {
        let local = p
            .attr("name")
            .ok_or_else(|| DavError::BadRequest("DAV:property without name".into()))?;
        names.push(QName::new(p.attr("namespace").unwrap_or(NS_DAV), local));
    }
    let resp = prop_response(ctx, r, &PropFind::Prop(names)).await?;
    let mut w = XmlWriter::new();
    w.start(NS_DAV, "multistatus");
    resp.write(&mut w, false);
    w.end();
    Ok(multistatus(w))
}

/// The zone of a query's `CALDAV:timezone` element (RFC 4791 §9.8), else the calendar's.
fn query_zone(root: &Element, c: &Collection) -> DavResult<Zone> {
    match root.child(NS_CALDAV, "timezone") {
        Some(tz) => ical::zone_of_calendar_timezone(&tz.text()).ok_or_else(|| {
            DavError::precondition(StatusCode::FORBIDDEN, NS_CALDAV, "valid-calendar-data")
                .with_detail("CALDAV:timezone must hold a VCALENDAR with one valid VTIMEZONE")
        }),
        None => Ok(floating_zone(c)),
    }
}

async fn query(ctx: &Ctx<'_>, c: &Collection, root: &Element) -> DavResult<Response> {
    let filter_el = root.child(NS_CALDAV, "filter").ok_or_else(|| {
        DavError::precondition(StatusCode::FORBIDDEN, NS_CALDAV, "valid-filter")
            .with_detail("no filter")
    })?;
    let filter = Filter::parse(filter_el).map_err(filter_error)?;
    let wanted = report_props(root)?;
    let floating = query_zone(root, c)?;
    let pre = filter.prefilter();
    let cand = Candidates {
        component: pre.component,
        from: pre.window.map(|w| w.0),
        to: pre.window.map(|w| w.1),
    };
    let budget = ctx.budget();
    let etags_only = asks_only_etags(&wanted);
    // Objects the stored occurrences answer (by name and ETag alone when that is all the
    // answer shows), and objects that must be parsed to decide.
    let (mut named, mut hits, to_parse) = match filter.event_window_only() {
        Some(tr) => {
            let sel = select_by_occurrences(ctx, c, tr, &floating, &cand, etags_only).await?;
            let hits = if etags_only {
                Vec::new()
            } else {
                ctx.st
                    .store
                    .objects_by_ids(c.id, &sel.hits, wanted.data.is_some())
                    .await?
            };
            (sel.named, hits, sel.to_parse)
        }
        None => (
            Vec::new(),
            Vec::new(),
            ctx.st.store.candidates(c.id, &cand).await?,
        ),
    };
    for obj in to_parse {
        ctx.check_deadline()?;
        let Some(cal) = ical::parse(&obj.ics).ok().and_then(|mut t| t.pop()) else {
            continue;
        };
        let tctx = ical::time_ctx(&cal, floating.clone());
        if filter
            .matches(&cal, &tctx, &budget)
            .map_err(too_much_work)?
        {
            hits.push(obj);
        }
    }
    let mut w = XmlWriter::new();
    w.start(NS_DAV, "multistatus");
    if etags_only {
        named.extend(hits.into_iter().map(|o| (o.meta.name, o.meta.etag)));
        named.sort_unstable();
        let asked = asked_props(&wanted);
        let collection_href = path::calendar_href(&ctx.me.name, &c.name);
        for (name, etag) in &named {
            ctx.check_deadline()?;
            let href = path::member_href(&collection_href, name);
            // As `prop_response` answers it: one entry per name asked.
            write_found_texts(&mut w, &href, asked.iter().map(|q| (*q, etag.as_str())));
        }
    } else {
        hits.sort_unstable_by(|a, b| a.meta.name.cmp(&b.meta.name));
        let shared = Arc::new(c.clone());
        for obj in &hits {
            write_object(ctx, &mut w, &shared, obj, &wanted, &floating, &budget).await?;
        }
    }
    w.end();
    Ok(multistatus(w))
}

/// Whether a report asks for nothing but ETags (DAV:getetag, without calendar-data), as
/// clients do to learn what a window holds: such an answer needs each match's name and ETag
/// only, which the occurrence index carries.
fn asks_only_etags(wanted: &Wanted) -> bool {
    wanted.data.is_none() && asks_etags_and_plain_data(wanted)
}

/// Whether a report asks for ETags and the stored calendar data as it is, and nothing else
/// (what clients' multigets ask): each answer is then the name, the ETag and the stored
/// text, written without the general property machinery.
fn asks_etags_and_plain_data(wanted: &Wanted) -> bool {
    match &wanted.props {
        PropFind::Prop(names) => {
            (!names.is_empty() || wanted.data.is_some())
                && wanted.data.as_ref().is_none_or(CalendarData::is_plain)
                && names.iter().all(|n| n.ns == NS_DAV && n.local == "getetag")
        }
        _ => false,
    }
}

/// The property names a prop-list report asks for, in its order (empty for allprop and
/// propname, which the fast paths above never take).
fn asked_props(wanted: &Wanted) -> Vec<&QName> {
    match &wanted.props {
        PropFind::Prop(names) => names.iter().collect(),
        _ => Vec::new(),
    }
}

/// What the occurrence index says about a window: objects with an occurrence in it, and the
/// candidates it cannot decide, with their bodies for parsing: floating times when the zone
/// they are read in is not UTC, and objects whose occurrences are not stored up to the
/// window's end (`unindexed_candidates` of `cand`).
struct Selection {
    /// The ids of the hits.
    hits: Vec<i64>,
    /// With `members`: the name and ETag of each hit, from the occurrence index.
    named: Vec<(String, String)>,
    to_parse: Vec<StoredObject>,
    /// The busy time of the hits' occurrences, clipped to the window (free-busy).
    busy: Vec<freebusy::BusyPeriod>,
}

async fn select_by_occurrences(
    ctx: &Ctx<'_>,
    c: &Collection,
    tr: TimeRange,
    floating: &Zone,
    cand: &Candidates,
    members: bool,
) -> DavResult<Selection> {
    // Occurrences of floating objects were computed with floating times read in UTC.
    let utc = matches!(floating, Zone::Utc);
    let slack = if utc { 0 } else { FLOATING_SLACK };
    let store = &ctx.st.store;
    let (rows, mut keys): (Vec<_>, Vec<_>) = if members {
        let m = store.occurrence_members(c.id, tr.start, tr.end, slack);
        m.await?
            .into_iter()
            .map(|m| (m.row, (m.name, m.etag)))
            .unzip()
    } else {
        let rows = store.occurrences(c.id, tr.start, tr.end, slack).await?;
        (rows, Vec::new())
    };
    let mut hits = std::collections::BTreeMap::new();
    let mut verify = std::collections::BTreeSet::new();
    let mut busy = Vec::new();
    for (i, r) in rows.iter().enumerate().filter(|(_, r)| r.until >= tr.end) {
        if r.floating && !utc {
            verify.insert(r.object_id);
        } else if r.occ.overlaps(tr.start, tr.end) {
            // A series has a row per occurrence; its key is taken from the first in the window.
            let key = keys.get_mut(i).map(std::mem::take);
            hits.entry(r.object_id).or_insert(key);
            let (s, e) = (r.occ.start.max(tr.start), r.occ.end.min(tr.end));
            if let (Some(kind), true) = (r.occ.busy, e > s) {
                busy.push(freebusy::BusyPeriod {
                    start: s,
                    end: e,
                    kind,
                });
            }
        }
    }
    // An object's rows are all floating or none are: the two sets never share an object.
    let verify: Vec<i64> = verify.into_iter().collect();
    let mut to_parse = ctx.st.store.objects_by_ids(c.id, &verify, true).await?;
    to_parse.extend(ctx.st.store.unindexed_candidates(c.id, cand).await?);
    Ok(Selection {
        hits: hits.keys().copied().collect(),
        named: hits.into_values().flatten().collect(),
        to_parse,
        busy,
    })
}

/// RFC 4791 §7.10: a VFREEBUSY of the busy time in a range (200, text/calendar).
async fn free_busy(ctx: &Ctx<'_>, c: &Collection, root: &Element) -> DavResult<Response> {
    let tr_el = root.child(NS_CALDAV, "time-range").ok_or_else(|| {
        DavError::precondition(StatusCode::FORBIDDEN, NS_CALDAV, "valid-filter")
            .with_detail("no time-range")
    })?;
    let tr: TimeRange = super::filter::parse_time_range(tr_el).map_err(filter_error)?;
    let floating = floating_zone(c);
    let budget = ctx.budget();
    let cand = Candidates {
        component: None,
        from: Some(tr.start),
        to: Some(tr.end),
    };
    // Busy time of indexed events straight from their stored occurrences; the rest parsed.
    let sel = select_by_occurrences(ctx, c, tr, &floating, &cand, false).await?;
    let mut periods = sel.busy;
    for obj in sel.to_parse {
        ctx.check_deadline()?;
        if !matches!(obj.meta.component.as_str(), "VEVENT" | "VFREEBUSY") {
            continue;
        }
        let Some(cal) = ical::parse(&obj.ics).ok().and_then(|mut t| t.pop()) else {
            continue;
        };
        let tctx = ical::time_ctx(&cal, floating.clone());
        periods.extend(
            freebusy::busy_periods(&cal, &tctx, tr.start, tr.end, &budget)
                .map_err(too_much_work)?,
        );
    }
    let body = freebusy::render(
        &freebusy::merge(periods),
        tr.start,
        tr.end,
        crate::store::now(),
    );
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    Ok(r)
}
