//! Generic WebDAV (RFC 4918, RFC 3744 subset, RFC 6578): XML, request headers, paths, errors
//! carrying precondition elements, and the multistatus/propstat shapes. Knows nothing of
//! calendars; `caldav` builds on it.

pub mod headers;
pub mod multistatus;
pub mod path;
pub mod xml;

use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use xml::{XmlWriter, NS_DAV};

/// Retry-After of a 503 for an unavailable database: long enough for a pool time-out or a
/// restart to pass, short enough that a syncing client does not give up.
const RETRY_AFTER_SECS: &str = "5";

/// An error a DAV method answers with. Preconditions render the RFC's `DAV:error` body
/// (RFC 4918 §16), e.g. `<D:error><C:valid-calendar-data/></D:error>`.
#[derive(Debug, thiserror::Error)]
pub enum DavError {
    #[error("{0}")]
    Status(StatusCode),
    #[error("{status}: precondition {ns} {name} failed{}", .detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Precondition {
        status: StatusCode,
        ns: &'static str,
        name: &'static str,
        /// An href placed inside the precondition element (e.g. `no-uid-conflict`).
        href: Option<String>,
        detail: Option<String>,
    },
    /// 403 with `DAV:need-privileges` (RFC 3744 §7.1.1): the caller lacks `privilege` on the
    /// resource at `href` (e.g. `bind` on a read-only subscribed calendar).
    #[error("403: needs {privilege} on {href}")]
    NeedPrivileges {
        href: String,
        privilege: &'static str,
    },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DavError {
    pub fn precondition(status: StatusCode, ns: &'static str, name: &'static str) -> Self {
        DavError::Precondition {
            status,
            ns,
            name,
            href: None,
            detail: None,
        }
    }

    pub fn with_detail(self, d: impl Into<String>) -> Self {
        match self {
            DavError::Precondition {
                status,
                ns,
                name,
                href,
                ..
            } => DavError::Precondition {
                status,
                ns,
                name,
                href,
                detail: Some(d.into()),
            },
            other => other,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            DavError::Status(s) => *s,
            DavError::Precondition { status, .. } => *status,
            DavError::NeedPrivileges { .. } => StatusCode::FORBIDDEN,
            DavError::BadRequest(_) => StatusCode::BAD_REQUEST,
            DavError::Store(e) => store_status(e),
        }
    }
}

fn store_status(e: &StoreError) -> StatusCode {
    match e {
        StoreError::NotFound => StatusCode::NOT_FOUND,
        StoreError::AlreadyExists => StatusCode::METHOD_NOT_ALLOWED,
        StoreError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        StoreError::UidConflict(_) => StatusCode::CONFLICT,
        StoreError::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
        StoreError::InvalidSyncToken => StatusCode::FORBIDDEN,
        // One statement's failure shared by several requests: answered as that failure.
        StoreError::Batched(inner) => store_status(inner),
        e if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        StoreError::Backend(_)
        | StoreError::Sqlite(_)
        | StoreError::SqliteBusy(_)
        | StoreError::Migrate(_)
        | StoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<xml::XmlError> for DavError {
    fn from(e: xml::XmlError) -> Self {
        DavError::BadRequest(e.to_string())
    }
}

fn error_body(ns: &str, name: &str, href: Option<&str>, detail: Option<&str>) -> String {
    let mut w = XmlWriter::new();
    w.start(NS_DAV, "error");
    w.start(ns, name);
    if let Some(h) = href {
        w.text_element(NS_DAV, "href", h);
    }
    w.end();
    if let Some(d) = detail {
        // Human-readable detail for people reading logs and client error dialogs.
        w.text_element("http://almanac.invalid/ns/", "detail", d);
    }
    w.end();
    w.finish()
}

/// A response body sent as the pieces it was written in, with its exact length known (so it
/// goes out with Content-Length, not chunked).
pub struct PiecesBody {
    pieces: std::collections::VecDeque<bytes::Bytes>,
    left: u64,
}

impl PiecesBody {
    pub fn new(pieces: Vec<bytes::Bytes>) -> Self {
        let left = pieces.iter().map(|p| p.len() as u64).sum();
        PiecesBody {
            pieces: pieces.into_iter().filter(|p| !p.is_empty()).collect(),
            left,
        }
    }
}

impl http_body::Body for PiecesBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let next = self.pieces.pop_front();
        if let Some(p) = &next {
            self.left -= p.len() as u64;
        }
        std::task::Poll::Ready(next.map(|p| Ok(http_body::Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

/// A written XML document as the response, in the pieces it was written in.
pub fn xml_pieces_response(status: StatusCode, w: xml::XmlWriter) -> Response {
    let mut r = (
        status,
        axum::body::Body::new(PiecesBody::new(w.finish_parts())),
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    r
}

pub fn xml_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    r
}

impl IntoResponse for DavError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            DavError::Precondition {
                ns,
                name,
                href,
                detail,
                ..
            } => {
                tracing::debug!(%status, precondition = %name, detail = detail.as_deref().unwrap_or(""), "precondition failed");
                xml_response(
                    status,
                    error_body(ns, name, href.as_deref(), detail.as_deref()),
                )
            }
            DavError::NeedPrivileges { href, privilege } => {
                let mut w = XmlWriter::new();
                w.start(NS_DAV, "error");
                w.start(NS_DAV, "need-privileges");
                w.start(NS_DAV, "resource");
                w.text_element(NS_DAV, "href", href);
                w.start(NS_DAV, "privilege");
                w.empty(NS_DAV, privilege);
                w.end();
                w.end();
                w.end();
                w.end();
                xml_response(status, w.finish())
            }
            DavError::Store(StoreError::InvalidSyncToken) => {
                xml_response(status, error_body(NS_DAV, "valid-sync-token", None, None))
            }
            DavError::Store(StoreError::QuotaExceeded) => {
                xml_response(status, error_body(NS_DAV, "quota-not-exceeded", None, None))
            }
            DavError::Store(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "storage unavailable: answering 503");
                let mut r =
                    (status, "storage temporarily unavailable, retry later\n").into_response();
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                );
                r
            }
            DavError::Store(
                e @ (StoreError::Backend(_)
                | StoreError::Sqlite(_)
                | StoreError::SqliteBusy(_)
                | StoreError::Migrate(_)
                | StoreError::Batched(_)
                | StoreError::Internal(_)),
            ) => {
                tracing::error!(error = %e, source = ?std::error::Error::source(e), "storage failure");
                (status, "internal error\n").into_response()
            }
            DavError::BadRequest(m) => {
                tracing::debug!(%m, "bad request");
                (status, format!("{m}\n")).into_response()
            }
            other => {
                tracing::debug!(%status, "{other}");
                (
                    status,
                    format!("{}\n", status.canonical_reason().unwrap_or("")),
                )
                    .into_response()
            }
        }
    }
}

pub type DavResult<T> = Result<T, DavError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(e: StoreError) -> Response {
        DavError::Store(e).into_response()
    }

    #[test]
    fn an_unreachable_database_is_503_with_retry_after() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(5), None);
        let locked = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(6), None);
        for e in [
            StoreError::Backend(sqlx::Error::PoolTimedOut),
            StoreError::Backend(sqlx::Error::Io(refused)),
            StoreError::from(busy),
            StoreError::from(locked),
        ] {
            let shown = e.to_string();
            let r = answer(e);
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{shown}");
            assert_eq!(
                r.headers()[header::RETRY_AFTER],
                RETRY_AFTER_SECS,
                "{shown}"
            );
        }
    }

    #[test]
    fn other_storage_failures_stay_500() {
        let constraint = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(19), None);
        for e in [
            StoreError::Backend(sqlx::Error::RowNotFound),
            StoreError::Backend(sqlx::Error::ColumnNotFound("x".into())),
            StoreError::from(constraint),
        ] {
            let shown = e.to_string();
            let r = answer(e);
            assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR, "{shown}");
            assert!(r.headers().get(header::RETRY_AFTER).is_none(), "{shown}");
        }
    }
}
