//! Calendar subscriptions: read-only calendars mirroring an external `.ics`/`webcal://` URL.
//!
//! A background task claims due subscriptions (one UPDATE, so several processes sharing a
//! Postgres database never fetch the same one twice), fetches each with a conditional GET
//! (If-None-Match / If-Modified-Since), splits the feed like an import and makes the calendar
//! hold exactly its events in one transaction: unchanged events keep their ETags, so CalDAV
//! clients syncing the calendar see only what really changed. A failed fetch keeps the last
//! good content and records the error for the owner (`almanac subscribe list`).

use crate::config::SubscriptionConfig;
use crate::import;
use crate::store::{DynStore, RefreshOutcome, Subscription};
use std::time::Duration;

/// The URL actually fetched: `webcal://` is the calendar-subscription spelling of HTTPS
/// (what Apple, Google and Outlook do), `webcals://` likewise.
pub fn fetch_url(url: &str) -> Result<String, String> {
    let lower = url.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix("webcals://") {
        Some(&url[url.len() - r.len()..])
    } else {
        lower
            .strip_prefix("webcal://")
            .map(|r| &url[url.len() - r.len()..])
    };
    let url = match rest {
        Some(r) => format!("https://{r}"),
        None => url.to_owned(),
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    match parsed.scheme() {
        "http" | "https" => Ok(url),
        s => Err(format!(
            "unsupported URL scheme {s:?} (use https, http or webcal)"
        )),
    }
}

/// Parses `--every` values: `90s`, `30m`, `1h`, `1d`, or plain seconds.
pub fn parse_interval(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("invalid interval {s:?} (examples: 90s, 30m, 1h, 1d)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("invalid interval unit in {s:?} (use s, m, h or d)")),
    };
    if secs < 1 {
        return Err("the interval must be at least one second".into());
    }
    Ok(secs)
}

fn client(cfg: &SubscriptionConfig) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(cfg.timeout_seconds))
        .connect_timeout(Duration::from_secs(cfg.timeout_seconds))
        .redirect(reqwest::redirect::Policy::limited(5))
        .user_agent(concat!(
            "Almanac/",
            env!("CARGO_PKG_VERSION"),
            " (calendar subscription)"
        ))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        e.to_string()
    };
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// Fetches and applies one subscription; returns what to record.
pub async fn refresh(
    store: &DynStore,
    cfg: &SubscriptionConfig,
    max_resource_size: u64,
    quota: u64,
    sub: &Subscription,
) -> RefreshOutcome {
    match refresh_inner(store, cfg, max_resource_size, quota, sub).await {
        Ok(outcome) => outcome,
        Err(msg) => RefreshOutcome::Error(msg),
    }
}

async fn refresh_inner(
    store: &DynStore,
    cfg: &SubscriptionConfig,
    max_resource_size: u64,
    quota: u64,
    sub: &Subscription,
) -> Result<RefreshOutcome, String> {
    let url = fetch_url(&sub.url)?;
    let mut req = client(cfg)?
        .get(&url)
        .header(reqwest::header::ACCEPT, "text/calendar, */*;q=0.5");
    if let Some(e) = &sub.etag {
        req = req.header(reqwest::header::IF_NONE_MATCH, e);
    }
    if let Some(m) = &sub.last_modified {
        req = req.header(reqwest::header::IF_MODIFIED_SINCE, m);
    }
    let mut resp = req.send().await.map_err(|e| describe(&e))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(RefreshOutcome::Success {
            etag: sub.etag.clone(),
            last_modified: sub.last_modified.clone(),
            status: "not modified (304)".into(),
        });
    }
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let etag = header(reqwest::header::ETAG);
    let last_modified = header(reqwest::header::LAST_MODIFIED);
    if resp.content_length().is_some_and(|n| n > cfg.max_bytes) {
        return Err(format!("the feed is larger than {} bytes", cfg.max_bytes));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if (body.len() + chunk.len()) as u64 > cfg.max_bytes {
            return Err(format!("the feed is larger than {} bytes", cfg.max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| "the feed is not UTF-8 text".to_string())?;
    let c = store
        .collection_by_id(sub.collection_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the calendar no longer exists")?;
    let split = import::split(&text, &[], max_resource_size)
        .map_err(|e| format!("not an iCalendar feed: {e}"))?;
    let stats = store
        .replace_objects(
            c.id,
            &split.objects,
            i64::try_from(quota).unwrap_or(i64::MAX),
        )
        .await
        .map_err(|e| format!("storing the feed: {e}"))?;
    let mut status = format!(
        "{} events: {} added, {} updated, {} removed",
        split.objects.len(),
        stats.added,
        stats.updated,
        stats.removed
    );
    if !split.skipped.is_empty() {
        status.push_str(&format!("; {} skipped", split.skipped.len()));
        if let Some(first) = split.skipped.first() {
            status.push_str(&format!(" (first: {}: {})", first.what, first.reason));
        }
    }
    Ok(RefreshOutcome::Success {
        etag,
        last_modified,
        status,
    })
}

/// Refreshes every due subscription once; returns how many were refreshed.
pub async fn run_due(
    store: &DynStore,
    cfg: &SubscriptionConfig,
    max_resource_size: u64,
    quota: u64,
) -> usize {
    let now = crate::store::now();
    // The lease outlives the longest possible fetch, so a process that dies mid-refresh
    // only delays the next attempt.
    let lease = i64::try_from(cfg.timeout_seconds).unwrap_or(3600) * 2 + 60;
    let due = match store.claim_due_subscriptions(now, lease).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "could not read due subscriptions");
            return 0;
        }
    };
    for sub in &due {
        let outcome = refresh(store, cfg, max_resource_size, quota, sub).await;
        match &outcome {
            RefreshOutcome::Success { status, .. } => {
                tracing::info!(owner = %sub.owner, calendar = %sub.calendar, %status, "subscription refreshed")
            }
            RefreshOutcome::Error(e) => {
                tracing::warn!(owner = %sub.owner, calendar = %sub.calendar, error = %e, "subscription refresh failed")
            }
        }
        if let Err(e) = store
            .record_refresh(sub.collection_id, crate::store::now(), &outcome)
            .await
        {
            tracing::warn!(error = %e, "could not record a subscription refresh");
        }
    }
    due.len()
}

/// The background refresher of a serving process: checks for due subscriptions every
/// `poll_seconds` until the task is dropped.
pub async fn refresher(
    store: DynStore,
    cfg: SubscriptionConfig,
    max_resource_size: u64,
    quota: u64,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.poll_seconds.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        run_due(&store, &cfg, max_resource_size, quota).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webcal_means_https() {
        assert_eq!(
            fetch_url("webcal://example.com/a.ics").unwrap(),
            "https://example.com/a.ics"
        );
        assert_eq!(
            fetch_url("WEBCALS://example.com/A.ics").unwrap(),
            "https://example.com/A.ics"
        );
        assert_eq!(
            fetch_url("http://127.0.0.1:9/x").unwrap(),
            "http://127.0.0.1:9/x"
        );
        assert!(fetch_url("file:///etc/passwd").is_err());
        assert!(fetch_url("not a url").is_err());
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1h"), Ok(3600));
        assert_eq!(parse_interval("30m"), Ok(1800));
        assert_eq!(parse_interval("2d"), Ok(172_800));
        assert_eq!(parse_interval("45"), Ok(45));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("1w").is_err());
        assert!(parse_interval("h").is_err());
    }
}
