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
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
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

/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// What `Retry-After` says when the server is at its connection limit or a request ran out of
/// time: long enough for a burst to pass, short enough that clients come back soon.
const RETRY_AFTER_SECONDS: &str = "5";
/// Refusals being written at once; beyond that a connection over the limit is closed without
/// an answer, so a flood cannot turn refusals into the resource it exhausts.
const MAX_REFUSALS: usize = 64;
/// How long a refusal may take to write and to see the client close.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// Serves until `shutdown` resolves, then finishes in-flight requests.
///
/// A small accept loop over hyper rather than `axum::serve`, for what HTTP/1 clients in the
/// wild need: header names in Title-Case (some clients and proxies match them
/// case-sensitively, although RFC 9110 §5.1 says they should not), a header read timeout, a
/// bound on connections, and the peer address for login throttling.
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
    let limits = state.config.limits.clone();
    let app = router(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
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
        // Nagle's algorithm would hold back the last, short segment of a multistatus sent in
        // pieces until the client acknowledges the ones before it (a delayed ACK: up to 40 ms
        // on Linux); a response is written in as few writes as hyper can, so none are tiny.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, %peer, "TCP_NODELAY not set");
        }
        // Held by the connection's task until the connection ends, idle time included.
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            refuse(stream, peer, &refusals);
            continue;
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
            .header_read_timeout(limits.header_read_timeout())
            .title_case_headers(true)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
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

/// Answers a connection over `limits.max_connections` with 503 and closes it. The answer is
/// written before anything is read; then the client's request is read and dropped until it
/// closes, because closing a socket with unread input resets it and could lose the answer.
fn refuse(mut stream: TcpStream, peer: SocketAddr, refusals: &Arc<Semaphore>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tracing::warn!(%peer, "connection limit reached: refusing a connection with 503");
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let body = "too many connections, retry later\n";
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {RETRY_AFTER_SECONDS}\r\n\
             Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(REFUSAL_TIME, async {
            stream.write_all(answer.as_bytes()).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
    });
}

/// 503 with `Retry-After`: the server could not finish the request in its time.
fn timed_out() -> Response {
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        "the request took too long, retry later\n",
    )
        .into_response();
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    r
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
    // The request's time runs while the server works on it: authentication (which may queue
    // for an argon2 slot) and handling, but not while the client uploads its body.
    let timeout = st.config.limits.request_timeout();
    let started = Instant::now();
    let quick = match &parsed {
        Ok(path) => within(
            timeout,
            quick_resolve(st, req.method(), req.headers(), path),
        )
        .await
        .flatten(),
        Err(_) => None,
    };
    let (me, prefetched) = match quick {
        Some((me, prefetched)) => (me, Some(prefetched)),
        None => {
            // What the quick path used of the request's time is not given again.
            let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
            let authenticated = within(left, authenticate(st, req.headers(), peer_ip(&req))).await;
            match authenticated {
                None => return answer_early(req, timed_out()).await,
                Some(Ok(p)) => (p, None),
                Some(Err(r)) => return answer_early(req, r).await,
            }
        }
    };
    let Ok(path) = parsed else {
        return answer_early(req, StatusCode::NOT_FOUND.into_response()).await;
    };
    let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
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
        deadline: left.map(|l| Instant::now() + l),
        prefetched,
    };
    // Dropping the handler's future on timeout drops any open transaction with it, which rolls
    // it back: a timed-out write leaves nothing behind.
    let response = match within(left, caldav::handle(st, &me, request)).await {
        None => return timed_out(),
        Some(Ok(r)) => r,
        Some(Err(e)) => e.into_response(),
    };
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        // The handler noticed the deadline itself (CPU work between awaits).
        return timed_out();
    }
    response
}

/// A request for one of the caller's calendars or objects, with credentials verified moments
/// ago: one statement confirms that they still hold (the principal's credentials version is
/// unchanged) and fetches the calendar, and the object with its body for GET and HEAD. That
/// is one query instead of two for what clients repeat most (GET, PROPFIND, REPORT). `None`
/// sends the request the ordinary way, which also answers whatever went wrong here (an
/// unknown principal, a store error) as it would anyway.
async fn quick_resolve(
    st: &AppState,
    method: &axum::http::Method,
    headers: &axum::http::HeaderMap,
    path: &DavPath,
) -> Option<(crate::store::Principal, caldav::resource::Prefetched)> {
    use caldav::resource::Prefetched;
    let owner = match path {
        DavPath::Calendar(owner, _) | DavPath::Object(owner, _, _) => owner,
        _ => return None,
    };
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let mut me = st.auth.cached_principal(header)?;
    if me.name != *owner {
        return None;
    }
    let now = match path {
        DavPath::Calendar(_, cal) => st
            .store
            .principal_calendar(&me.name, cal)
            .await
            .ok()??
            .map(Prefetched::Calendar),
        DavPath::Object(_, cal, obj) => {
            let body = method == axum::http::Method::GET || method == axum::http::Method::HEAD;
            st.store
                .principal_calendar_object(&me.name, cal, obj, body)
                .await
                .ok()??
                .map(Prefetched::Object)
        }
        _ => return None,
    };
    if now.principal_id != me.id || now.credentials_version != me.credentials_version {
        return None;
    }
    // The cached principal is as it was at login; its address may have changed since.
    me.email = now.email;
    Some((me, now.found))
}

/// Runs `work` for at most `limit` (`None`: without limit); `None` when time ran out.
async fn within<T>(limit: Option<Duration>, work: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(l) => tokio::time::timeout(l, work).await.ok(),
        None => Some(work.await),
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
