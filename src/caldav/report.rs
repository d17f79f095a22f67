//! REPORTs: sync-collection (RFC 6578 §3) on calendars and on the calendar home,
//! calendar-multiget (RFC 4791 §7.9) and calendar-query (§7.8).
//!
//! sync-collection accepts every dialect real clients send (research §0.2): Depth 0 or 1, with
//! or without `sync-level`. Tokens of another collection, another database or a pruned range
//! are refused with 403 `valid-sync-token`, never answered with a silent full listing.

use super::methods::{multistatus, prop_names, prop_response, PropFind};
use super::resource::{Ctx, Res};
use super::Request;
use crate::dav::headers::{self, Depth};
use crate::dav::multistatus::{write_status_response, PropValue};
use crate::dav::path::DavPath;
use crate::dav::xml::{self, Element, QName, XmlWriter, NS_CALDAV, NS_DAV};
use crate::dav::{DavError, DavResult};
use crate::ical::ComponentKind;
use crate::store::{Collection, StoreError, StoredObject};
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::HashMap;

pub async fn report(ctx: &mut Ctx<'_>, r: &Res, req: &Request<'_>) -> DavResult<Response> {
    let root = xml::parse(&req.body)?;
    // Depth is meaningless for these reports on a calendar, but garbage is still refused.
    let _ = headers::depth(req.headers, Depth::Zero)?;
    ctx.load_home().await?;
    match (root.name.ns.as_str(), root.name.local.as_str(), r) {
        (NS_DAV, "sync-collection", Res::Home(c) | Res::Calendar(c)) => {
            sync_collection(ctx, r, c, &root).await
        }
        (NS_CALDAV, "calendar-multiget", Res::Calendar(c)) => multiget(ctx, c, &root).await,
        (NS_CALDAV, "calendar-query", Res::Calendar(c)) => query(ctx, c, &root).await,
        _ => Err(
            DavError::precondition(StatusCode::FORBIDDEN, NS_DAV, "supported-report")
                .with_detail(format!("{} is not supported here", root.name)),
        ),
    }
}

/// The `DAV:prop` of a report body, with `calendar-data` split out: it is served from the
/// object's bytes, not from the property table.
fn report_props(root: &Element) -> (Vec<QName>, bool) {
    let names = root
        .child(NS_DAV, "prop")
        .map(prop_names)
        .unwrap_or_default();
    let wants_data = names.iter().any(|n| n.is(NS_CALDAV, "calendar-data"));
    (
        names
            .into_iter()
            .filter(|n| !n.is(NS_CALDAV, "calendar-data"))
            .collect(),
        wants_data,
    )
}

async fn write_object(
    ctx: &Ctx<'_>,
    w: &mut XmlWriter,
    c: &Collection,
    obj: &StoredObject,
    props: &PropFind,
    wants_data: bool,
) -> DavResult<()> {
    let res = Res::Object(c.clone(), obj.meta.clone());
    let mut resp = prop_response(ctx, &res, props).await?;
    if wants_data {
        resp.found.push((
            QName::new(NS_CALDAV, "calendar-data"),
            PropValue::Text(obj.ics.clone()),
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
    let (names, wants_data) = report_props(root);
    let props = PropFind::Prop(names);
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
            if wants_data {
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
            for ch in &set.changes {
                match found.get(&ch.name) {
                    Some(o) => write_object(ctx, &mut w, c, o, &props, wants_data).await?,
                    None => write_status_response(
                        &mut w,
                        &ctx.href(&Res::NewObject(c.clone(), ch.name.clone())),
                        StatusCode::NOT_FOUND,
                    ),
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
                        prop_response(ctx, &res, &props).await?.write(&mut w, false);
                    }
                    None => write_status_response(
                        &mut w,
                        &ctx.href(&Res::NewCalendar(ch.name.clone())),
                        StatusCode::NOT_FOUND,
                    ),
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
    Ok(multistatus(w.finish()))
}

async fn multiget(ctx: &Ctx<'_>, c: &Collection, root: &Element) -> DavResult<Response> {
    let (names, wants_data) = report_props(root);
    let props = PropFind::Prop(names);
    let mut w = XmlWriter::new();
    w.start(NS_DAV, "multistatus");
    let mut by_cal: HashMap<String, Option<Collection>> = HashMap::new();
    by_cal.insert(c.name.clone(), Some(c.clone()));
    for h in root.children_named(NS_DAV, "href") {
        let href = h.text();
        let href = href.trim();
        let path = strip_origin(href);
        let target = match DavPath::parse(path) {
            Ok(DavPath::Object(owner, cal, name)) if owner == ctx.me.name => Some((cal, name)),
            _ => None,
        };
        let mut served = false;
        if let Some((cal, name)) = target {
            if !by_cal.contains_key(&cal) {
                let col = ctx.st.store.calendar(ctx.me.id, &cal).await?;
                by_cal.insert(cal.clone(), col);
            }
            if let Some(Some(col)) = by_cal.get(&cal) {
                if let Some(obj) = ctx
                    .st
                    .store
                    .objects_by_names(col.id, std::slice::from_ref(&name))
                    .await?
                    .pop()
                {
                    write_object(ctx, &mut w, col, &obj, &props, wants_data).await?;
                    served = true;
                }
            }
        }
        if !served {
            // RFC 4791 §7.9: each missing (or foreign) href gets its own 404.
            write_status_response(&mut w, href, StatusCode::NOT_FOUND);
        }
    }
    w.end();
    Ok(multistatus(w.finish()))
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

/// calendar-query with component filters. Time-range, property and text filters belong to the
/// iCalendar semantics work; until then they are refused with `supported-filter` rather than
/// answered wrongly.
async fn query(ctx: &Ctx<'_>, c: &Collection, root: &Element) -> DavResult<Response> {
    let filter = root
        .child(NS_CALDAV, "filter")
        .ok_or_else(|| DavError::precondition(StatusCode::FORBIDDEN, NS_CALDAV, "valid-filter"))?;
    let top = filter
        .child(NS_CALDAV, "comp-filter")
        .filter(|f| f.attr("name") == Some("VCALENDAR"));
    let top = top
        .ok_or_else(|| DavError::precondition(StatusCode::FORBIDDEN, NS_CALDAV, "valid-filter"))?;
    let unsupported = |e: &Element| e.elements().any(|x| !x.is(NS_CALDAV, "comp-filter"));
    if unsupported(top) {
        return Err(DavError::precondition(
            StatusCode::FORBIDDEN,
            NS_CALDAV,
            "supported-filter",
        ));
    }
    let mut kind = None;
    if let Some(inner) = top.children_named(NS_CALDAV, "comp-filter").next() {
        if unsupported(inner) || top.children_named(NS_CALDAV, "comp-filter").count() > 1 {
            return Err(DavError::precondition(
                StatusCode::FORBIDDEN,
                NS_CALDAV,
                "supported-filter",
            ));
        }
        let name = inner.attr("name").unwrap_or_default();
        match ComponentKind::parse(name) {
            Some(k) => kind = Some(k),
            // A component no calendar object can have as its type matches nothing.
            None => {
                let mut w = XmlWriter::new();
                w.start(NS_DAV, "multistatus").end();
                return Ok(multistatus(w.finish()));
            }
        }
    }
    let (names, wants_data) = report_props(root);
    let props = PropFind::Prop(names);
    let mut w = XmlWriter::new();
    w.start(NS_DAV, "multistatus");
    for obj in ctx.st.store.objects(c.id, kind).await? {
        write_object(ctx, &mut w, c, &obj, &props, wants_data).await?;
    }
    w.end();
    Ok(multistatus(w.finish()))
}
