//! Authentication: HTTP Basic over argon2id-hashed passwords and app passwords.
//!
//! argon2 is deliberately slow, so three things keep it from becoming the bottleneck or an
//! attack surface: a verified-credentials cache keyed by an HMAC of the credentials (the
//! password itself is never kept), invalidated through the principal's `credentials_version`
//! so a password change in any process (the CLI included) takes effect at the next request;
//! a semaphore bounding concurrent verifications; and per user+address (and per address)
//! failure throttling that answers 429 without running argon2 at all.

use crate::store::{DynStore, Principal, StoreError};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Hashes a password with argon2id and a fresh salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

const APP_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

fn random_chars(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| APP_ALPHABET[rng.gen_range(0..APP_ALPHABET.len())] as char)
        .collect()
}

/// A generated app password `llllllll-ssss-ssss-ssss-ssss-ssss` (8-char public lookup part,
/// then 120 bits of secret). The lookup part lets a login verify exactly one hash instead of
/// trying every app password of the user.
pub fn generate_app_password() -> (String, String) {
    let lookup = random_chars(8);
    let groups: Vec<String> = (0..5).map(|_| random_chars(4)).collect();
    let full = format!("{lookup}-{}", groups.join("-"));
    (lookup, full)
}

fn app_password_lookup(password: &str) -> Option<&str> {
    let (lookup, rest) = password.split_once('-')?;
    let shaped = lookup.len() == 8
        && rest.len() == 24
        && rest.split('-').all(|g| g.len() == 4)
        && password
            .bytes()
            .all(|b| b == b'-' || APP_ALPHABET.contains(&b));
    shaped.then_some(lookup)
}

/// A random password for the first `admin` user.
pub fn generate_password() -> String {
    random_chars(20)
}

/// Parses `Authorization: Basic …` into user and password.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required")]
    Missing,
    #[error("invalid credentials")]
    Invalid,
    #[error("too many failed logins; retry in {0:?}")]
    Throttled(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct CacheEntry {
    /// The principal as it was when its credentials were verified.
    principal: Principal,
    expires: Instant,
}

#[derive(Default, Clone, Copy)]
struct Failures {
    count: u32,
    last: Option<Instant>,
}

const MAX_CACHE: usize = 10_000;
const MAX_DELAY: Duration = Duration::from_secs(300);
const FORGET_AFTER: Duration = Duration::from_secs(900);

pub struct Authenticator {
    store: DynStore,
    key: [u8; 32],
    permits: Arc<Semaphore>,
    cache: Mutex<HashMap<[u8; 32], CacheEntry>>,
    failures: Mutex<HashMap<String, Failures>>,
    cache_ttl: Duration,
    threshold: u32,
    /// A real argon2 hash that never matches: unknown users cost the same time as known ones,
    /// so response times do not reveal which names exist.
    decoy_hash: String,
    /// argon2 verifications running now and the most ever running at once: what operators
    /// (and the tests) read to see that `auth.argon2_concurrency` holds.
    running: Arc<AtomicUsize>,
    peak: AtomicUsize,
}

/// Counts one running verification for as long as it lives.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Authenticator {
    pub fn new(
        store: DynStore,
        concurrency: usize,
        cache_seconds: u64,
        threshold: u32,
    ) -> Arc<Self> {
        let mut key = [0u8; 32];
        rand::thread_rng().fill(&mut key);
        Arc::new(Authenticator {
            store,
            key,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            cache_ttl: Duration::from_secs(cache_seconds),
            threshold: threshold.max(1),
            decoy_hash: hash_password(&generate_password()).unwrap_or_default(),
            running: Arc::new(AtomicUsize::new(0)),
            peak: AtomicUsize::new(0),
        })
    }

    /// The most argon2 verifications that have run at once since start.
    pub fn peak_concurrent_verifications(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    fn cache_key(&self, user: &str, password: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(user.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn throttled(&self, keys: &[(String, u32)]) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        keys.iter()
            .filter_map(|(k, threshold)| {
                let f = map.get(k)?;
                if f.count < *threshold {
                    return None;
                }
                let exp = (f.count - threshold).min(16);
                let delay = Duration::from_secs(2u64 << exp).min(MAX_DELAY);
                let until = f.last? + delay;
                (until > now).then(|| until - now)
            })
            .max()
    }

    fn record_failure(&self, keys: &[(String, u32)]) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if map.len() > 100_000 {
            map.retain(|_, f| f.last.is_some_and(|l| now - l < FORGET_AFTER));
        }
        for (k, _) in keys {
            let f = map.entry(k.clone()).or_default();
            if f.last.is_some_and(|l| now - l > FORGET_AFTER) {
                f.count = 0;
            }
            f.count += 1;
            f.last = Some(now);
        }
    }

    fn clear_failures(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    fn cached(&self, key: &[u8; 32], p: &Principal) -> bool {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key).is_some_and(|e| {
            e.principal.id == p.id
                && e.principal.credentials_version == p.credentials_version
                && e.expires > Instant::now()
        })
    }

    fn remember(&self, key: [u8; 32], p: &Principal) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHE {
            let now = Instant::now();
            cache.retain(|_, e| e.expires > now);
            if cache.len() >= MAX_CACHE {
                cache.clear();
            }
        }
        let entry = CacheEntry {
            principal: p.clone(),
            expires: Instant::now() + self.cache_ttl,
        };
        cache.insert(key, entry);
    }

    /// The principal whose credentials these are, if they were verified within the cache's
    /// lifetime, as it was then, without asking the store. Not an authentication by itself:
    /// the caller must confirm against the store that the principal's `credentials_version`
    /// is still this one (a password changed in another process bumps it), which
    /// `Store::principal_calendar_object` does in the same statement that fetches a GET's
    /// object. Anything else goes through `authenticate`.
    pub fn cached_principal(&self, header: Option<&str>) -> Option<Principal> {
        let (user, password) = header.and_then(parse_basic)?;
        let key = self.cache_key(&user, &password);
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let e = cache.get(&key)?;
        (e.expires > Instant::now() && e.principal.name == user).then(|| e.principal.clone())
    }

    /// Authenticates a request's `Authorization` header.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<Principal, AuthError> {
        let (user, password) = header.and_then(parse_basic).ok_or(AuthError::Missing)?;
        let ip = ip.map(|i| i.to_string()).unwrap_or_default();
        let user_key = format!("u:{user}\n{ip}");
        let keys = [
            (user_key.clone(), self.threshold),
            (format!("a:{ip}"), self.threshold * 4),
        ];
        let principal = self.store.principal_by_name(&user).await?;
        let ck = self.cache_key(&user, &password);
        // Credentials verified moments ago pass even while this address is throttled: a device
        // still holding an old password must not lock out the user's other devices.
        if let Some(p) = &principal {
            if self.cached(&ck, p) {
                return Ok(p.clone());
            }
        }
        if let Some(wait) = self.throttled(&keys) {
            return Err(AuthError::Throttled(wait));
        }
        // One argon2 verification per attempt: an app-password-shaped secret selects its hash
        // by lookup; anything else is checked against the account password.
        let mut app_password = None;
        let hash = match &principal {
            None => self.decoy_hash.clone(),
            Some(p) => match app_password_lookup(&password) {
                Some(lookup) => match self.store.app_password_by_lookup(lookup).await? {
                    Some(ap) if ap.principal_id == p.id => {
                        let h = ap.hash.clone();
                        app_password = Some(ap);
                        h
                    }
                    _ => p.password_hash.clone(),
                },
                None => p.password_hash.clone(),
            },
        };
        let ok = {
            let permit = self
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| AuthError::Invalid)?;
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            let running = Running(self.running.clone());
            self.peak.fetch_max(now, Ordering::SeqCst);
            let password = password.clone();
            // The permit travels with the computation: a request dropped mid-verification (its
            // time ran out) does not free a slot while argon2 still runs.
            tokio::task::spawn_blocking(move || {
                // Fields drop in order: the count goes down before the slot is freed.
                let _held = (running, permit);
                verify_password(&hash, &password)
            })
            .await
            .unwrap_or(false)
        };
        match principal {
            Some(p) if ok => {
                self.remember(ck, &p);
                self.clear_failures(&user_key);
                if let Some(ap) = app_password {
                    self.store.touch_app_password(ap.id).await?;
                }
                Ok(p)
            }
            _ => {
                self.record_failure(&keys);
                Err(AuthError::Invalid)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header() {
        assert_eq!(
            parse_basic("Basic YWxpY2U6czNjcjN0Og=="),
            Some(("alice".into(), "s3cr3t:".into()))
        );
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn app_password_shape() {
        let (lookup, full) = generate_app_password();
        assert_eq!(app_password_lookup(&full), Some(lookup.as_str()));
        assert_eq!(app_password_lookup("correct-horse-battery"), None);
    }

    #[test]
    fn hashes_verify() {
        let h = hash_password("pw").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "pw"));
        assert!(!verify_password(&h, "px"));
        assert!(!verify_password("garbage", "pw"));
    }
}
