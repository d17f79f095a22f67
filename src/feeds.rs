//! Secret feed links: `/feeds/<token>.ics`, served without authentication to anyone who has
//! the link (calendar apps subscribing by URL cannot log in), and the owner's JSON API to
//! create, list and revoke them.
//!
//! A token is 192 random bits; only its SHA-256 is stored (a fast hash is enough for a
//! random secret of that size, and a stolen database yields no working link). Revoking
//! deletes the row, so the next fetch is a 404.

use crate::export::{self, View};
use crate::state::AppState;
use crate::store::{Feed, FeedMode, FeedSettings, Principal, Store, StoreError};
use crate::timefmt::{http_date, parse_http_date};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// A new random token: 24 bytes, URL-safe base64 (32 characters).
pub fn new_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The two spellings of a feed link: `https://…/feeds/T.ics` and `webcal://…/feeds/T.ics`.
pub fn links(base: &str, token: &str) -> (String, String) {
    let url = format!("{}/feeds/{token}.ics", base.trim_end_matches('/'));
    let webcal = match url.split_once("://") {
        Some((_, rest)) => format!("webcal://{rest}"),
        None => url.clone(),
    };
    (url, webcal)
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("no calendar {0:?}")]
    NoCalendar(String),
    #[error("window_days must be between 1 and 36500")]
    BadWindow,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a feed of the owner's calendar; returns it with its token, the only time the token
/// is known.
pub async fn create(
    store: &dyn Store,
    owner: &Principal,
    calendar: &str,
    settings: &FeedSettings,
) -> Result<(Feed, String), FeedError> {
    if settings
        .window_days
        .is_some_and(|d| !(1..=36_500).contains(&d))
    {
        return Err(FeedError::BadWindow);
    }
    let c = store
        .calendar(owner.id, calendar)
        .await?
        .ok_or_else(|| FeedError::NoCalendar(calendar.to_owned()))?;
    let token = new_token();
    let feed = store
        .create_feed(c.id, &token_hash(&token), &token[..6], settings)
        .await?;
    Ok((feed, token))
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such feed\n").into_response()
}

fn etag_matches(header: &str, etag: &str) -> bool {
    // Weak comparison (RFC 9110 §13.1.2): W/ prefixes are ignored.
    let bare = etag.trim_start_matches("W/");
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == bare)
}

/// `GET`/`HEAD /feeds/<token>.ics`.
pub async fn serve(st: &AppState, method: &Method, file: &str, headers: &HeaderMap) -> Response {
    let Some(token) = file.strip_suffix(".ics") else {
        return not_found();
    };
    if token.len() != 32
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return not_found();
    }
    let feed = match st.store.feed_by_token_hash(&token_hash(token)).await {
        Ok(Some(f)) => f,
        Ok(None) => return not_found(),
        Err(e) => return store_failure(e),
    };
    let c = match st.store.collection_by_id(feed.collection_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return not_found(),
        Err(e) => return store_failure(e),
    };
    let now = crate::store::now();
    // The row just read says whether a minute has passed; only then is the fetch written down
    // (the store applies the same rule, for racing fetches).
    if feed.last_used_at.is_none_or(|t| t < now - 60) {
        if let Err(e) = st.store.touch_feed(feed.id, now).await {
            tracing::warn!(error = %e, "could not record a feed fetch");
        }
    }
    let view = View::Feed(feed.settings.clone());
    let etag = export::etag(st.store.instance_id(), &c, &view, Some(feed.id), now);
    // A windowed feed changes at midnight UTC too, as the window slides.
    let modified = match feed.settings.window_days {
        Some(_) => c.updated_at.max(now - now.rem_euclid(86_400)),
        None => c.updated_at,
    };
    let filename = format!("{}.ics", c.name);
    conditional_calendar(
        st, &c, view, now, method, headers, &etag, modified, &filename, true,
    )
}

/// A whole calendar as a `text/calendar` response, honouring If-None-Match and
/// If-Modified-Since (304) and HEAD. Shared by feeds and by GET on a calendar collection.
#[allow(clippy::too_many_arguments)]
pub fn conditional_calendar(
    st: &AppState,
    c: &crate::store::Collection,
    view: View,
    now: i64,
    method: &Method,
    headers: &HeaderMap,
    etag: &str,
    modified: i64,
    filename: &str,
    public: bool,
) -> Response {
    let inm = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let not_modified = match inm {
        // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
        Some(v) => etag_matches(v, etag),
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date)
            .is_some_and(|since| modified <= since),
    };
    let mut r = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else if method == Method::HEAD {
        StatusCode::OK.into_response()
    } else {
        Response::new(Body::from_stream(export::stream(
            st.store.clone(),
            c,
            view,
            now,
        )))
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(modified)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if !not_modified {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/calendar; charset=utf-8"),
        );
        let safe: String = filename
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || "._-".contains(ch) {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{safe}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    if public {
        // The link is the secret: keep it out of shared caches and search engines.
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=300"),
        );
        h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    } else {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
    r
}

fn store_failure(e: StoreError) -> Response {
    tracing::error!(error = %e, "feed: database error");
    (StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable\n").into_response()
}

/// What the API and `feed list` show of a feed.
#[derive(Debug, Serialize)]
pub struct FeedInfo {
    pub id: i64,
    pub calendar: String,
    pub mode: &'static str,
    pub window_days: Option<i64>,
    pub include_alarms: bool,
    pub include_emails: bool,
    /// First characters of the token, to tell links apart.
    pub token_hint: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// Only in the answer to creation: the token is not stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webcal_url: Option<String>,
}

impl FeedInfo {
    pub fn of(f: &Feed, links: Option<(String, String)>) -> Self {
        let (url, webcal_url) = links.map_or((None, None), |(a, b)| (Some(a), Some(b)));
        FeedInfo {
            id: f.id,
            calendar: f.calendar.clone(),
            mode: f.settings.mode.as_str(),
            window_days: f.settings.window_days,
            include_alarms: f.settings.include_alarms,
            include_emails: f.settings.include_emails,
            token_hint: f.token_hint.clone(),
            created_at: crate::timefmt::rfc3339(f.created_at),
            last_used_at: f.last_used_at.map(crate::timefmt::rfc3339),
            url,
            webcal_url,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    calendar: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    window_days: Option<i64>,
    #[serde(default)]
    include_alarms: bool,
    #[serde(default)]
    include_emails: bool,
}

fn json(status: StatusCode, v: &impl Serialize) -> Response {
    let body = serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".into());
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn json_error(status: StatusCode, msg: impl Into<String>) -> Response {
    json(status, &serde_json::json!({ "error": msg.into() }))
}

/// The base URL for links in API answers: the configured public URL, else the Host the
/// client used.
fn base_for(st: &AppState, headers: &HeaderMap) -> String {
    if st.config.public_url.is_some() {
        return st.config.base_url();
    }
    match headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
        Some(host) if !host.is_empty() && !host.contains(['/', ' ']) => format!("http://{host}"),
        _ => st.config.base_url(),
    }
}

/// The owner's API: `GET /api/feeds`, `POST /api/feeds`, `DELETE /api/feeds/<id>`.
pub async fn api(
    st: &AppState,
    me: &Principal,
    method: &Method,
    rest: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let store = st.store.as_ref();
    match (method.as_str(), rest) {
        ("GET", "") => match store.feeds(me.id).await {
            Ok(list) => json(
                StatusCode::OK,
                &list
                    .iter()
                    .map(|f| FeedInfo::of(f, None))
                    .collect::<Vec<_>>(),
            ),
            Err(e) => store_failure(e),
        },
        ("POST", "") => {
            let is_json = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.trim()
                        .to_ascii_lowercase()
                        .starts_with("application/json")
                });
            if !is_json {
                return json_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/json");
            }
            let req: CreateRequest = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => {
                    return json_error(StatusCode::BAD_REQUEST, format!("invalid request: {e}"))
                }
            };
            let mode = match req.mode.as_deref().map(FeedMode::parse) {
                None => FeedMode::Full,
                Some(Some(m)) => m,
                Some(None) => {
                    return json_error(StatusCode::BAD_REQUEST, "mode must be \"full\" or \"busy\"")
                }
            };
            let settings = FeedSettings {
                mode,
                window_days: req.window_days,
                include_alarms: req.include_alarms,
                include_emails: req.include_emails,
            };
            match create(store, me, &req.calendar, &settings).await {
                Ok((feed, token)) => json(
                    StatusCode::CREATED,
                    &FeedInfo::of(&feed, Some(links(&base_for(st, headers), &token))),
                ),
                Err(FeedError::NoCalendar(c)) => {
                    json_error(StatusCode::NOT_FOUND, format!("no calendar {c:?}"))
                }
                Err(e @ FeedError::BadWindow) => json_error(StatusCode::BAD_REQUEST, e.to_string()),
                Err(FeedError::Store(e)) => store_failure(e),
            }
        }
        ("DELETE", id) if !id.is_empty() => {
            let Ok(id) = id.parse::<i64>() else {
                return json_error(StatusCode::NOT_FOUND, "no such feed");
            };
            match store.revoke_feed(me.id, id).await {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(StoreError::NotFound) => json_error(StatusCode::NOT_FOUND, "no such feed"),
                Err(e) => store_failure(e),
            }
        }
        (_, "") => {
            let mut r = json_error(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            r
        }
        (_, id) if id.parse::<i64>().is_ok() => {
            let mut r = json_error(StatusCode::METHOD_NOT_ALLOWED, "use DELETE");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("DELETE"));
            r
        }
        _ => json_error(StatusCode::NOT_FOUND, "not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(token_hash(&a).len(), 64);
    }

    #[test]
    fn link_forms() {
        let (u, w) = links("https://cal.example.com/", "T");
        assert_eq!(u, "https://cal.example.com/feeds/T.ics");
        assert_eq!(w, "webcal://cal.example.com/feeds/T.ics");
    }

    #[test]
    fn etag_comparison_is_weak() {
        assert!(etag_matches("\"a\", W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"x\""));
        assert!(!etag_matches("\"a\"", "\"b\""));
    }
}
