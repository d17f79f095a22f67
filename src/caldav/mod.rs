//! CalDAV (RFC 4791, RFC 6578 glue, RFC 5689): calendar homes, calendar collections and
//! calendar object resources on top of the generic `dav` layer.
//!
//! `dispatch` is the RFC method table: one match on (method, kind of resource). What a
//! resource allows comes from `Res::allowed`, which also produces the `Allow` header.

pub mod caldata;
pub mod filter;
mod methods;
mod report;
pub mod resource;

use crate::dav::path::DavPath;
use crate::dav::{DavError, DavResult};
use crate::state::AppState;
use crate::store::Principal;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use resource::{Ctx, Res};

/// Compliance classes (RFC 4918 §18, RFC 3744 §7.2, RFC 4791 §5.1, RFC 5689 §3.1) advertised
/// on every CalDAV resource, principals included: DAVx5 drops a principal whose OPTIONS lacks
/// `calendar-access`, Evolution a calendar.
pub const DAV_HEADER: &str = "1, 3, access-control, calendar-access, extended-mkcol";

pub struct Request<'a> {
    pub method: &'a Method,
    pub path: DavPath,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    /// When the time allowed for this request (`limits.request_timeout_seconds`) runs out.
    pub deadline: Option<std::time::Instant>,
    /// The path's calendar (and member, with its body for GET and HEAD), when they were
    /// fetched together with the credentials check (see `app::dav_inner`).
    pub prefetched: Option<resource::Prefetched>,
}

pub async fn handle(st: &AppState, me: &Principal, mut req: Request<'_>) -> DavResult<Response> {
    let mut ctx = Ctx::new(st, me);
    ctx.deadline = req.deadline;
    let m = req.method.as_str();
    ctx.want_body = matches!(m, "GET" | "HEAD");
    ctx.found = req.prefetched.take();
    let res = ctx.resolve(&req.path).await?;
    if !res.allowed().contains(&m) {
        return with_allow(Err(not_allowed(&res, m)), &res);
    }
    if let Some(denied) = read_only_denial(&ctx, &res, m, &req).await {
        return Err(denied);
    }
    let result = match (m, &res) {
        ("OPTIONS", _) => Ok(options(&res)),
        ("GET" | "HEAD", Res::Calendar(c)) => Ok(export_calendar(&ctx, c, &req)),
        ("PROPFIND", _) => methods::propfind(&mut ctx, &res, &req).await,
        ("PROPPATCH", Res::Home(c) | Res::Calendar(c)) => {
            methods::proppatch(&ctx, &res, c, &req).await
        }
        ("MKCALENDAR", Res::NewCalendar(name)) => {
            methods::mkcalendar(&ctx, name, &req, false).await
        }
        ("MKCOL", Res::NewCalendar(name)) => methods::mkcalendar(&ctx, name, &req, true).await,
        ("GET" | "HEAD", Res::Object(c, o)) => {
            let body = ctx.prefetched.take();
            methods::get(&ctx, c, o, body, &req).await
        }
        ("PUT", Res::Object(c, _)) => methods::put(&ctx, c, &req).await,
        ("PUT", Res::NewObject(c, _)) => methods::put(&ctx, c, &req).await,
        ("DELETE", Res::Object(c, o)) => methods::delete_object(&ctx, c, o, &req).await,
        ("DELETE", Res::Calendar(c)) => methods::delete_calendar(&ctx, c).await,
        ("COPY" | "MOVE", Res::Object(c, o)) => {
            methods::copy_move(&ctx, c, o, &req, m == "MOVE").await
        }
        ("REPORT", Res::Home(_) | Res::Calendar(_) | Res::Principal) => {
            report::report(&mut ctx, &res, &req).await
        }
        _ => Err(not_allowed(&res, m)),
    };
    with_allow(result, &res)
}

/// Writes a subscribed (read-only) calendar refuses: the member set belongs to the refresher.
/// Answered as missing privileges (RFC 3744 §7.1.1), which clients show as "read-only"
/// rather than as a failure to retry.
async fn read_only_denial(
    ctx: &Ctx<'_>,
    res: &Res,
    method: &str,
    req: &Request<'_>,
) -> Option<DavError> {
    use crate::dav::path::{calendar_href, object_href};
    let me = &ctx.me.name;
    let deny = |href: String, privilege| Some(DavError::NeedPrivileges { href, privilege });
    match (method, res) {
        ("PUT", Res::NewObject(c, _)) if c.read_only => deny(calendar_href(me, &c.name), "bind"),
        ("PUT", Res::Object(c, o)) if c.read_only => {
            deny(object_href(me, &c.name, &o.name), "write-content")
        }
        ("DELETE", Res::Object(c, _)) if c.read_only => deny(calendar_href(me, &c.name), "unbind"),
        ("MOVE", Res::Object(c, _)) if c.read_only => deny(calendar_href(me, &c.name), "unbind"),
        ("COPY" | "MOVE", Res::Object(..)) => {
            // The destination must not be a subscription either.
            let dest = crate::dav::headers::destination(req.headers).ok()?;
            let crate::dav::path::DavPath::Object(owner, dcal, _) =
                crate::dav::path::DavPath::parse(&dest).ok()?
            else {
                return None;
            };
            if owner != *me {
                return None;
            }
            match ctx.st.store.calendar(ctx.me.id, &dcal).await {
                Ok(Some(d)) if d.read_only => deny(calendar_href(me, &d.name), "bind"),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `GET` on a calendar collection: the whole calendar as one VCALENDAR, for its owner.
fn export_calendar(ctx: &Ctx<'_>, c: &crate::store::Collection, req: &Request<'_>) -> Response {
    let now = crate::store::now();
    let view = crate::export::View::Export;
    let etag = crate::export::etag(ctx.st.store.instance_id(), c, &view, None, now);
    crate::feeds::conditional_calendar(
        ctx.st,
        c,
        view,
        now,
        req.method,
        req.headers,
        &etag,
        c.updated_at,
        &format!("{}.ics", c.name),
        false,
    )
}

/// A 405 carries the methods that would have been allowed (RFC 9110 §15.5.6).
fn with_allow(result: DavResult<Response>, res: &Res) -> DavResult<Response> {
    match result {
        Err(e) if e.status() == StatusCode::METHOD_NOT_ALLOWED => {
            let mut r = e.into_response();
            r.headers_mut().insert(header::ALLOW, allow_header(res));
            Ok(r)
        }
        other => other,
    }
}

fn not_allowed(res: &Res, method: &str) -> DavError {
    use crate::dav::xml::{NS_CALDAV, NS_DAV};
    match (res, method) {
        // Nothing exists here: a method that needs a resource finds none.
        (Res::NewObject(..) | Res::NewCalendar(_) | Res::Orphan, "MKCALENDAR" | "MKCOL") => {
            DavError::precondition(
                StatusCode::FORBIDDEN,
                NS_CALDAV,
                "calendar-collection-location-ok",
            )
        }
        (Res::Orphan, "PUT") => DavError::Status(StatusCode::CONFLICT),
        (r, _) if !r.exists() => DavError::Status(StatusCode::NOT_FOUND),
        // RFC 4918 §9.3.1 / RFC 4791 §5.3.1: the target of MKCOL/MKCALENDAR must not exist.
        (_, "MKCALENDAR" | "MKCOL") => DavError::precondition(
            StatusCode::METHOD_NOT_ALLOWED,
            NS_DAV,
            "resource-must-be-null",
        ),
        _ => DavError::Status(StatusCode::METHOD_NOT_ALLOWED),
    }
}

pub fn allow_header(res: &Res) -> HeaderValue {
    HeaderValue::from_str(&res.allowed().join(", ")).expect("method names are ASCII")
}

fn options(res: &Res) -> Response {
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    h.insert("dav", HeaderValue::from_static(DAV_HEADER));
    h.insert(header::ALLOW, allow_header(res));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}
