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
}

pub async fn handle(st: &AppState, me: &Principal, req: Request<'_>) -> DavResult<Response> {
    let mut ctx = Ctx::new(st, me);
    ctx.deadline = req.deadline;
    let res = ctx.resolve(&req.path).await?;
    let m = req.method.as_str();
    if !res.allowed().contains(&m) {
        return with_allow(Err(not_allowed(&res, m)), &res);
    }
    let result = match (m, &res) {
        ("OPTIONS", _) => Ok(options(&res)),
        ("PROPFIND", _) => methods::propfind(&mut ctx, &res, &req).await,
        ("PROPPATCH", Res::Home(c) | Res::Calendar(c)) => {
            methods::proppatch(&ctx, &res, c, &req).await
        }
        ("MKCALENDAR", Res::NewCalendar(name)) => {
            methods::mkcalendar(&ctx, name, &req, false).await
        }
        ("MKCOL", Res::NewCalendar(name)) => methods::mkcalendar(&ctx, name, &req, true).await,
        ("GET" | "HEAD", Res::Object(c, o)) => methods::get(&ctx, c, o, &req).await,
        ("PUT", Res::Object(c, _) | Res::NewObject(c, _)) => methods::put(&ctx, c, &req).await,
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
