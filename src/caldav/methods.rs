//! Method handlers: PROPFIND (RFC 4918 §9.1), PROPPATCH (§9.2), MKCALENDAR (RFC 4791 §5.3.1)
//! and extended MKCOL (RFC 5689), GET/HEAD, PUT (RFC 4791 §5.3.2), DELETE, COPY/MOVE (§9.8–9.9).

use super::resource::{allprop_names, content_type, Ctx, Res, LIVE_PROPS};
use super::Request;
use crate::dav::headers::{self, Depth};
use crate::dav::multistatus::{PropResponse, PropValue};
use crate::dav::path::{self, DavPath};
use crate::dav::xml::{self, Element, QName, XmlWriter, NS_CALDAV, NS_DAV};
use crate::dav::{DavError, DavResult};
use crate::ical::{self, CalendarObject, ComponentKind, InvalidObject};
use crate::store::{
    Collection, CollectionPatch, DeadProp, LiveProp, NewCalendar, ObjectMeta, ReadAhead, StoreError,
};
use crate::timefmt::http_date;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub fn multistatus(w: XmlWriter) -> Response {
    crate::dav::xml_pieces_response(StatusCode::MULTI_STATUS, w)
}

fn pre(status: StatusCode, ns: &'static str, name: &'static str) -> DavError {
    DavError::precondition(status, ns, name)
}

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// What a PROPFIND asks for.
pub enum PropFind {
    AllProp(Vec<QName>),
    PropName,
    Prop(Vec<QName>),
}

pub fn parse_propfind(body: &[u8]) -> DavResult<PropFind> {
    // RFC 4918 §9.1: an empty body means allprop.
    if is_blank(body) {
        return Ok(PropFind::AllProp(Vec::new()));
    }
    let root = xml::parse(body)?;
    if !root.is(NS_DAV, "propfind") {
        return Err(DavError::BadRequest("expected DAV:propfind".into()));
    }
    if let Some(p) = root.child(NS_DAV, "prop") {
        Ok(PropFind::Prop(prop_names(p)))
    } else if root.child(NS_DAV, "propname").is_some() {
        Ok(PropFind::PropName)
    } else if root.child(NS_DAV, "allprop").is_some() {
        Ok(PropFind::AllProp(
            root.child(NS_DAV, "include")
                .map(prop_names)
                .unwrap_or_default(),
        ))
    } else {
        Err(DavError::BadRequest(
            "DAV:propfind needs prop, propname or allprop".into(),
        ))
    }
}

pub fn prop_names(prop: &Element) -> Vec<QName> {
    prop.elements().map(|e| e.name.clone()).collect()
}

async fn dead_props_of(ctx: &Ctx<'_>, r: &Res) -> DavResult<Vec<DeadProp>> {
    match r {
        Res::Home(c) | Res::Calendar(c) => Ok(ctx.st.store.dead_props(c.id, "").await?),
        _ => Ok(Vec::new()),
    }
}

/// The PROPFIND algorithm, written once for every kind of resource.
pub async fn prop_response(ctx: &Ctx<'_>, r: &Res, what: &PropFind) -> DavResult<PropResponse> {
    let mut resp = PropResponse::new(ctx.href(r));
    match what {
        PropFind::Prop(names) => {
            // Each live value computed once; dead properties read only when one is asked for.
            let live: Vec<Option<PropValue>> = names.iter().map(|n| ctx.live_prop(r, n)).collect();
            let dead = if live.iter().any(Option::is_none) {
                dead_props_of(ctx, r).await?
            } else {
                Vec::new()
            };
            for (n, v) in names.iter().zip(live) {
                if let Some(v) = v {
                    resp.found.push((n.clone(), v));
                } else if let Some(d) = dead.iter().find(|d| d.ns == n.ns && d.local == n.local) {
                    resp.found.push((n.clone(), PropValue::Dead(d.xml.clone())));
                } else {
                    resp.missing.push(n.clone());
                }
            }
        }
        PropFind::AllProp(include) => {
            let mut names = allprop_names(r);
            for n in include {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
            for n in names {
                match ctx.live_prop(r, &n) {
                    Some(v) => resp.found.push((n, v)),
                    None if include.contains(&n) => resp.missing.push(n),
                    None => {}
                }
            }
            for d in dead_props_of(ctx, r).await? {
                resp.found
                    .push((QName::new(&d.ns, &d.local), PropValue::Dead(d.xml)));
            }
        }
        PropFind::PropName => {
            for (ns, l) in LIVE_PROPS {
                let q = QName::new(ns, l);
                if ctx.live_prop(r, &q).is_some() {
                    resp.found.push((q, PropValue::Empty));
                }
            }
            for d in dead_props_of(ctx, r).await? {
                resp.found
                    .push((QName::new(&d.ns, &d.local), PropValue::Empty));
            }
        }
    }
    Ok(resp)
}

/// Depth-1 members of a resource.
async fn children(ctx: &Ctx<'_>, r: &Res) -> DavResult<Vec<Res>> {
    let store = &ctx.st.store;
    Ok(match r {
        Res::Root => vec![Res::PrincipalsRoot, Res::CalendarsRoot],
        Res::PrincipalsRoot => vec![Res::Principal],
        Res::CalendarsRoot => vec![Res::Home(store.home(ctx.me.id).await?)],
        Res::Home(_) => store
            .calendars(ctx.me.id)
            .await?
            .into_iter()
            .map(Res::Calendar)
            .collect(),
        // Members of a calendar are listed page by page (see `propfind`).
        _ => Vec::new(),
    })
}

pub async fn propfind(ctx: &mut Ctx<'_>, r: &Res, req: &Request<'_>) -> DavResult<Response> {
    // A missing Depth is read as 1: infinity is refused below, and refusing clients that
    // merely forgot the header would help no one.
    let depth = headers::depth(req.headers, Depth::One)?;
    if depth == Depth::Infinity {
        return Err(pre(StatusCode::FORBIDDEN, NS_DAV, "propfind-finite-depth"));
    }
    let what = parse_propfind(&req.body)?;
    let minimal = headers::prefer_minimal(req.headers);
    match &what {
        PropFind::Prop(names) | PropFind::AllProp(names) => ctx.load_home_for(names).await?,
        PropFind::PropName => {}
    }
    let mut targets = vec![r.clone()];
    if depth == Depth::One {
        targets.extend(children(ctx, r).await?);
    }
    let mut w = XmlWriter::new();
    w.start(NS_DAV, "multistatus");
    for t in &targets {
        prop_response(ctx, t, &what).await?.write(&mut w, minimal);
    }
    if let (Depth::One, Res::Calendar(c)) = (depth, r) {
        // A page of members at a time: memory stays flat however large the calendar.
        const PAGE: usize = 1000;
        let shared = std::sync::Arc::new(c.clone());
        let store = &ctx.st.store;
        let page_after = |after: String| {
            ReadAhead::start(
                async move { store.object_metas_after(c.id, &after, PAGE as i64).await },
            )
        };
        let mut next = page_after(String::new()).await;
        loop {
            let page = next.get().await?;
            let full = page.len() == PAGE;
            // The next page is read while this one is written (on PostgreSQL, 0.6 ms of each
            // page's 2 ms).
            next = match page.last() {
                Some(last) if full => page_after(last.name.clone()).await,
                _ => ReadAhead::Done(Ok(Vec::new())),
            };
            for m in page {
                ctx.check_deadline()?;
                let res = Res::Object(shared.clone(), m);
                prop_response(ctx, &res, &what)
                    .await?
                    .write(&mut w, minimal);
            }
            if !full {
                break;
            }
        }
    }
    w.end();
    Ok(multistatus(w))
}

/// RFC 4791 §5.2.2: a calendar-timezone is an iCalendar object with exactly one VTIMEZONE.
fn valid_timezone(text: &str) -> bool {
    match ical::parse(text) {
        Ok(tops) => {
            tops.len() == 1
                && tops[0].name == "VCALENDAR"
                && tops[0]
                    .children
                    .iter()
                    .filter(|c| c.name == "VTIMEZONE")
                    .count()
                    == 1
                && tops[0].children.iter().all(|c| c.name == "VTIMEZONE")
        }
        Err(_) => false,
    }
}

fn is_live(q: &QName) -> bool {
    LIVE_PROPS.iter().any(|(ns, l)| q.is(ns, l))
}

fn dead_prop(p: &Element) -> DeadProp {
    DeadProp {
        ns: p.name.ns.clone(),
        local: p.name.local.clone(),
        xml: p.to_fragment(),
    }
}

/// One instruction of a PROPPATCH, checked and added to `patch`; the error is the status the
/// property gets.
fn patch_one(
    is_cal: bool,
    p: &Element,
    set: bool,
    patch: &mut CollectionPatch,
) -> Result<(), StatusCode> {
    let q = &p.name;
    let live = match (q.ns.as_str(), q.local.as_str()) {
        (NS_DAV, "displayname") => Some(LiveProp::DisplayName),
        (NS_CALDAV, "calendar-description") if is_cal => Some(LiveProp::Description),
        (NS_CALDAV, "calendar-timezone") if is_cal => {
            if set && !valid_timezone(&p.text()) {
                return Err(StatusCode::FORBIDDEN);
            }
            Some(LiveProp::Timezone)
        }
        _ if is_live(q) => return Err(StatusCode::FORBIDDEN),
        _ => None,
    };
    match live {
        Some(l) => {
            patch.set_live.retain(|(x, _)| *x != l);
            patch.set_live.push((l, set.then(|| p.text())));
        }
        None => {
            // Later instructions win over earlier ones for the same property (§9.2).
            patch
                .set_dead
                .retain(|d| !(d.ns == q.ns && d.local == q.local));
            patch
                .remove_dead
                .retain(|(ns, l)| !(*ns == q.ns && *l == q.local));
            if set {
                patch.set_dead.push(dead_prop(p));
            } else {
                patch.remove_dead.push((q.ns.clone(), q.local.clone()));
            }
        }
    }
    Ok(())
}

/// PROPPATCH: every instruction succeeds or none is applied (RFC 4918 §9.2); when one fails,
/// it carries its own status and all others 424.
pub async fn proppatch(
    ctx: &Ctx<'_>,
    r: &Res,
    c: &Collection,
    req: &Request<'_>,
) -> DavResult<Response> {
    let root = xml::parse(&req.body)?;
    if !root.is(NS_DAV, "propertyupdate") {
        return Err(DavError::BadRequest("expected DAV:propertyupdate".into()));
    }
    let is_cal = matches!(r, Res::Calendar(_));
    let mut patch = CollectionPatch::default();
    let mut outcomes: Vec<(QName, Result<(), StatusCode>)> = Vec::new();
    for op in root.elements() {
        let set = if op.is(NS_DAV, "set") {
            true
        } else if op.is(NS_DAV, "remove") {
            false
        } else {
            return Err(DavError::BadRequest(format!(
                "unexpected {} in propertyupdate",
                op.name
            )));
        };
        let prop = op
            .child(NS_DAV, "prop")
            .ok_or_else(|| DavError::BadRequest("set/remove without prop".into()))?;
        for p in prop.elements() {
            outcomes.push((p.name.clone(), patch_one(is_cal, p, set, &mut patch)));
        }
    }
    let mut resp = PropResponse::new(ctx.href(r));
    if outcomes.iter().any(|(_, o)| o.is_err()) {
        for (q, o) in outcomes {
            resp.other
                .push((q, o.err().unwrap_or(StatusCode::FAILED_DEPENDENCY)));
        }
    } else {
        ctx.st.store.patch_collection(c.id, &patch).await?;
        for (q, _) in outcomes {
            resp.found.push((q, PropValue::Empty));
        }
    }
    let mut w = XmlWriter::new();
    w.start(NS_DAV, "multistatus");
    resp.write(&mut w, false);
    w.end();
    Ok(multistatus(w))
}

fn parse_components(e: &Element) -> DavResult<Vec<ComponentKind>> {
    let mut out = Vec::new();
    for c in e.children_named(NS_CALDAV, "comp") {
        let name = c.attr("name").unwrap_or_default();
        let k = ComponentKind::parse(name).ok_or_else(|| {
            pre(
                StatusCode::FORBIDDEN,
                NS_CALDAV,
                "supported-calendar-component",
            )
            .with_detail(format!("component {name:?} is not supported"))
        })?;
        if !out.contains(&k) {
            out.push(k);
        }
    }
    if out.is_empty() {
        return Err(pre(
            StatusCode::FORBIDDEN,
            NS_CALDAV,
            "supported-calendar-component",
        )
        .with_detail("no component named"));
    }
    Ok(out)
}

/// MKCALENDAR, or extended MKCOL (RFC 5689) whose resourcetype asks for a calendar.
pub async fn mkcalendar(
    ctx: &Ctx<'_>,
    name: &str,
    req: &Request<'_>,
    extended: bool,
) -> DavResult<Response> {
    let mut new = NewCalendar {
        name: name.to_owned(),
        components: vec![
            ComponentKind::Event,
            ComponentKind::Todo,
            ComponentKind::Journal,
        ],
        ..Default::default()
    };
    let mut is_calendar = !extended;
    if !is_blank(&req.body) {
        let root = xml::parse(&req.body)?;
        let (ns, local) = if extended {
            (NS_DAV, "mkcol")
        } else {
            (NS_CALDAV, "mkcalendar")
        };
        if !root.is(ns, local) {
            return Err(if extended {
                DavError::Status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            } else {
                DavError::BadRequest("expected CALDAV:mkcalendar".into())
            });
        }
        for set in root.children_named(NS_DAV, "set") {
            let Some(prop) = set.child(NS_DAV, "prop") else {
                continue;
            };
            for p in prop.elements() {
                match (p.name.ns.as_str(), p.name.local.as_str()) {
                    // DAVx5 sends resourcetype inside MKCALENDAR too; RFC 5689 needs it.
                    (NS_DAV, "resourcetype") => {
                        let has = |ns: &str, l: &str| p.child(ns, l).is_some();
                        if has(NS_CALDAV, "calendar") {
                            is_calendar = true;
                        } else if !has(NS_DAV, "collection") || p.elements().count() > 1 {
                            return Err(pre(StatusCode::FORBIDDEN, NS_DAV, "valid-resourcetype"));
                        }
                    }
                    (NS_DAV, "displayname") => new.displayname = Some(p.text()),
                    (NS_CALDAV, "calendar-description") => new.description = Some(p.text()),
                    (NS_CALDAV, "calendar-timezone") => {
                        let tz = p.text();
                        if !valid_timezone(&tz) {
                            return Err(pre(
                                StatusCode::FORBIDDEN,
                                NS_CALDAV,
                                "valid-calendar-data",
                            )
                            .with_detail("calendar-timezone must hold exactly one VTIMEZONE"));
                        }
                        new.timezone = Some(tz);
                    }
                    (NS_CALDAV, "supported-calendar-component-set") => {
                        new.components = parse_components(p)?
                    }
                    _ if is_live(&p.name) => {
                        return Err(pre(
                            StatusCode::FORBIDDEN,
                            NS_DAV,
                            "cannot-modify-protected-property",
                        )
                        .with_detail(format!("{} is protected", p.name)))
                    }
                    _ => new.dead_props.push(dead_prop(p)),
                }
            }
        }
    }
    if !is_calendar {
        // Plain collections have no place in a calendar home.
        return Err(pre(StatusCode::FORBIDDEN, NS_DAV, "valid-resourcetype"));
    }
    match ctx.st.store.create_calendar(ctx.me.id, &new).await {
        Ok(_) => {}
        Err(StoreError::AlreadyExists) => {
            return Err(pre(
                StatusCode::METHOD_NOT_ALLOWED,
                NS_DAV,
                "resource-must-be-null",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let mut r = StatusCode::CREATED.into_response();
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    Ok(r)
}

fn etag_header(r: &mut Response, etag: &str) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
}

pub async fn get(
    ctx: &Ctx<'_>,
    c: &Collection,
    o: &ObjectMeta,
    prefetched: Option<crate::store::StoredObject>,
    req: &Request<'_>,
) -> DavResult<Response> {
    let obj = match prefetched {
        Some(obj) => obj,
        None => ctx
            .st
            .store
            .object(c.id, &o.name)
            .await?
            .ok_or(DavError::Status(StatusCode::NOT_FOUND))?,
    };
    let cond = headers::precondition(req.headers)?;
    let etag = obj.meta.etag.as_str();
    if cond
        .if_match
        .as_ref()
        .is_some_and(|m| !m.matches(Some(etag)))
    {
        return Err(DavError::Status(StatusCode::PRECONDITION_FAILED));
    }
    if cond
        .if_none_match
        .as_ref()
        .is_some_and(|m| m.matches(Some(etag)))
    {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        etag_header(&mut r, etag);
        return Ok(r);
    }
    let mut r = (StatusCode::OK, obj.ics).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type(&obj.meta.component))
            .expect("component names are ASCII"),
    );
    if let Ok(v) = HeaderValue::from_str(&http_date(obj.meta.modified_at)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    etag_header(&mut r, etag);
    Ok(r)
}

/// Maps the store's UID conflict to RFC 4791's `no-uid-conflict`, naming the resource that
/// holds the UID.
fn store_error(ctx: &Ctx<'_>, cal: &str, e: StoreError) -> DavError {
    match e {
        StoreError::UidConflict(holder) => DavError::Precondition {
            status: StatusCode::CONFLICT,
            ns: NS_CALDAV,
            name: "no-uid-conflict",
            href: Some(path::object_href(&ctx.me.name, cal, &holder)),
            detail: None,
        },
        e => e.into(),
    }
}

fn object_name(req: &Request<'_>) -> DavResult<String> {
    match &req.path {
        DavPath::Object(_, _, o) => Ok(o.clone()),
        _ => Err(DavError::Status(StatusCode::METHOD_NOT_ALLOWED)),
    }
}

pub async fn put(ctx: &Ctx<'_>, c: &Collection, req: &Request<'_>) -> DavResult<Response> {
    let name = object_name(req)?;
    if let Some(ct) = req.headers.get(header::CONTENT_TYPE) {
        let media = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media != "text/calendar" {
            return Err(
                pre(StatusCode::FORBIDDEN, NS_CALDAV, "supported-calendar-data")
                    .with_detail(format!("content type {media:?} is not text/calendar")),
            );
        }
    }
    if req.body.len() as u64 > ctx.st.config.limits.max_resource_size {
        return Err(pre(StatusCode::FORBIDDEN, NS_CALDAV, "max-resource-size"));
    }
    let text = std::str::from_utf8(&req.body).map_err(|_| {
        pre(StatusCode::FORBIDDEN, NS_CALDAV, "valid-calendar-data")
            .with_detail("body is not UTF-8")
    })?;
    let obj = CalendarObject::from_ics(text.to_owned()).map_err(|e| match e {
        InvalidObject::Data(d) => {
            pre(StatusCode::FORBIDDEN, NS_CALDAV, "valid-calendar-data").with_detail(d)
        }
        InvalidObject::ObjectResource(d) => pre(
            StatusCode::FORBIDDEN,
            NS_CALDAV,
            "valid-calendar-object-resource",
        )
        .with_detail(d),
    })?;
    if !c.components.contains(&obj.index.component) {
        return Err(pre(
            StatusCode::FORBIDDEN,
            NS_CALDAV,
            "supported-calendar-component",
        )
        .with_detail(format!(
            "this calendar does not take {}",
            obj.index.component.as_str()
        )));
    }
    let cond = headers::precondition(req.headers)?;
    let quota = ctx.st.config.limits.quota_bytes as i64;
    let outcome = ctx
        .st
        .store
        .put_object(c.id, &name, &obj, &cond, quota)
        .await
        .map_err(|e| store_error(ctx, &c.name, e))?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    };
    let mut r = status.into_response();
    // The stored bytes are the bytes sent, so the strong ETag may be returned (RFC 4791 §5.3.4).
    etag_header(&mut r, &crate::store::etag_of(obj.raw.as_bytes()));
    Ok(r)
}

pub async fn delete_object(
    ctx: &Ctx<'_>,
    c: &Collection,
    o: &ObjectMeta,
    req: &Request<'_>,
) -> DavResult<Response> {
    let cond = headers::precondition(req.headers)?;
    ctx.st.store.delete_object(c.id, &o.name, &cond).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn delete_calendar(ctx: &Ctx<'_>, c: &Collection) -> DavResult<Response> {
    ctx.st.store.delete_calendar(ctx.me.id, &c.name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// COPY and MOVE of an object into one of the caller's calendars.
pub async fn copy_move(
    ctx: &Ctx<'_>,
    c: &Collection,
    o: &ObjectMeta,
    req: &Request<'_>,
    is_move: bool,
) -> DavResult<Response> {
    let dest = headers::destination(req.headers)?;
    let dest = DavPath::parse(&dest).map_err(|e| match e {
        path::PathError::NotFound => DavError::Status(StatusCode::CONFLICT),
        e => DavError::BadRequest(format!("Destination: {e}")),
    })?;
    let DavPath::Object(owner, dcal, dname) = dest else {
        return Err(DavError::Status(StatusCode::FORBIDDEN));
    };
    // Another user's namespace is out of reach whether or not anything exists there.
    if owner != ctx.me.name {
        return Err(DavError::Status(StatusCode::FORBIDDEN));
    }
    let dst = ctx
        .st
        .store
        .calendar(ctx.me.id, &dcal)
        .await?
        .ok_or(DavError::Status(StatusCode::CONFLICT))?;
    if dst.id == c.id && dname == o.name {
        return Err(DavError::Status(StatusCode::FORBIDDEN));
    }
    let kind = ComponentKind::parse(&o.component).unwrap_or(ComponentKind::Event);
    if !dst.components.contains(&kind) {
        return Err(pre(
            StatusCode::FORBIDDEN,
            NS_CALDAV,
            "supported-calendar-component",
        ));
    }
    let overwrite = headers::overwrite(req.headers)?;
    let cond = headers::precondition(req.headers)?;
    let quota = ctx.st.config.limits.quota_bytes as i64;
    let outcome = ctx
        .st
        .store
        .transfer_object(
            c.id, &o.name, dst.id, &dname, overwrite, is_move, &cond, quota,
        )
        .await
        .map_err(|e| store_error(ctx, &dst.name, e))?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    };
    Ok(status.into_response())
}
