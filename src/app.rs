//! The HTTP front: routes, authentication, request-size limits, and serving a listener.
//!
//! `serve` takes a bound listener rather than an address, so tests bind `127.0.0.1:0`, hand
//! the listener over and talk to it at once: no port probing, no sleeps.

use crate::auth::AuthError;
use crate::caldav;
use crate::dav::path::{DavPath, PathError};
use crate::dav::DavError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use http_body_util::BodyExt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/.well-known/caldav", any(well_known))
        .route("/.well-known/caldav/", any(well_known))
        .route("/feeds/{file}", any(feed_entry))
        .route("/api/feeds", any(api_entry))
        .route("/api/feeds/{*rest}", any(api_entry))
        .fallback(dav_entry)
        .with_state(state)
}

/// How long a client may take to send a request's headers (slow-header attacks).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, then finishes in-flight requests.
///
/// A small accept loop over hyper rather than `axum::serve`, for what HTTP/1 clients in the
/// wild need: header names in Title-Case (some clients and proxies match them
/// case-sensitively, although RFC 9110 §5.1 says they should not), a header read timeout, and
/// the peer address for login throttling.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Subscriptions are refreshed by every serving process; claiming makes that safe.
    let refresher = tokio::spawn(crate::subscriptions::refresher(
        state.store.clone(),
        state.config.subscriptions.clone(),
        state.config.limits.max_resource_size,
        state.config.limits.quota_bytes,
    ));
    let app = router(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let app = app.clone();
                async move { app.oneshot(req.map(Body::new)).await }
            },
        );
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .title_case_headers(true)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    refresher.abort();
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: some connections did not finish in time");
    }
    Ok(())
}

async fn healthz(State(st): State<AppState>) -> Response {
    match st.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

/// RFC 6764 §5: the well-known URI redirects to the context path, before authentication
/// (Apple and CalDAVTester probe it without credentials).
async fn well_known() -> Response {
    let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/"));
    r
}

/// `/feeds/<token>.ics`: public, no authentication (the token is the credential).
async fn feed_entry(
    State(st): State<AppState>,
    axum::extract::Path(file): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let method = req.method().clone();
    if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
        let mut r = StatusCode::METHOD_NOT_ALLOWED.into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return answer_early(req, r).await;
    }
    let r = crate::feeds::serve(&st, &method, &file, req.headers()).await;
    answer_early(req, r).await
}

/// `/api/feeds[/<id>]`: the owner's JSON API for feed links, behind the same login as DAV.
async fn api_entry(State(st): State<AppState>, req: Request) -> Response {
    let me = match authenticate(&st, req.headers(), peer_ip(&req)).await {
        Ok(me) => me,
        Err(r) => return answer_early(req, r).await,
    };
    let rest = req
        .uri()
        .path()
        .strip_prefix("/api/feeds")
        .unwrap_or("")
        .trim_matches('/')
        .to_owned();
    let (parts, body) = req.into_parts();
    let body = match read_body(body, st.config.limits.max_request_body, &parts.headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    crate::feeds::api(&st, &me, &parts.method, &rest, &parts.headers, &body).await
}

/// Basic authentication of a request, or the answer to give instead (401, 429, 503).
async fn authenticate(
    st: &AppState,
    headers: &axum::http::HeaderMap,
    ip: Option<std::net::IpAddr>,
) -> Result<crate::store::Principal, Response> {
    let auth_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match st.auth.authenticate(auth_header, ip).await {
        Ok(p) => Ok(p),
        Err(AuthError::Missing | AuthError::Invalid) => Err(unauthorized()),
        Err(AuthError::Throttled(wait)) => {
            let mut r = (StatusCode::TOO_MANY_REQUESTS, "too many failed logins\n").into_response();
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Err(r)
        }
        Err(AuthError::Store(e)) => Err(DavError::Store(e).into_response()),
    }
}

fn peer_ip(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn unauthorized() -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Almanac\", charset=\"UTF-8\""),
    );
    r
}

async fn dav_entry(State(st): State<AppState>, req: Request) -> Response {
    let method = req.method().clone();
    let uri_path = req.uri().path().to_owned();
    let response = dav_inner(&st, req).await;
    tracing::debug!(%method, path = %uri_path, status = response.status().as_u16(), "request");
    response
}

async fn dav_inner(st: &AppState, req: Request) -> Response {
    let parsed = DavPath::parse(req.uri().path());
    let early = match &parsed {
        Err(PathError::TooLong) => Some(StatusCode::URI_TOO_LONG.into_response()),
        Err(PathError::Invalid(why)) => {
            Some(DavError::BadRequest(format!("invalid path: {why}")).into_response())
        }
        _ => None,
    };
    if let Some(r) = early {
        return answer_early(req, r).await;
    }
    let me = match authenticate(st, req.headers(), peer_ip(&req)).await {
        Ok(p) => p,
        Err(r) => return answer_early(req, r).await,
    };
    let Ok(path) = parsed else {
        return answer_early(req, StatusCode::NOT_FOUND.into_response()).await;
    };
    let (parts, body) = req.into_parts();
    let body = match read_body(body, st.config.limits.max_request_body, &parts.headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request = caldav::Request {
        method: &parts.method,
        path,
        headers: &parts.headers,
        body,
    };
    match caldav::handle(st, &me, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Bodies this small are read and dropped before an early answer (401, 429, 404…), so the
/// connection stays usable: a client that sent credentials-less PROPFIND retries on it.
const DRAIN_LIMIT: u64 = 256 * 1024;

/// Answers before the request body was needed. A body left unread would make the connection
/// unusable, so a small one is drained; otherwise the answer says `Connection: close`
/// (RFC 9112 §9.6) instead of closing the connection without warning.
async fn answer_early(req: Request, mut response: Response) -> Response {
    let headers = req.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    let drained = match (declared, chunked) {
        (Some(0), false) | (None, false) => true,
        (Some(n), false) if n <= DRAIN_LIMIT => {
            http_body_util::Limited::new(req.into_body(), DRAIN_LIMIT as usize)
                .collect()
                .await
                .is_ok()
        }
        _ => false,
    };
    if !drained {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads the whole body, refusing (413) anything over `limit` before or while reading it.
async fn read_body(
    body: Body,
    limit: u64,
    headers: &axum::http::HeaderMap,
) -> Result<bytes::Bytes, Response> {
    let too_large = || {
        let mut r = (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
        // The rest of the body stays unread: say the connection ends here (RFC 9112 §9.6).
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    };
    if let Some(len) = headers.get(header::CONTENT_LENGTH) {
        match len.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(n) if n > limit => return Err(too_large()),
            Some(_) => {}
            None => {
                return Err(DavError::BadRequest("invalid Content-Length".into()).into_response())
            }
        }
    }
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => {
            Err(DavError::BadRequest(format!("could not read request body: {e}")).into_response())
        }
    }
}
