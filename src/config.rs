//! Configuration: built-in defaults, then an optional TOML file (`--config`), then `ALMANAC_*`
//! environment variables, each layer overriding the one before. Zero configuration serves.
//! `examples/config.toml` documents every key; a test parses it.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port to listen on (`ALMANAC_LISTEN`).
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://…` (`ALMANAC_DATABASE_URL`).
    pub database_url: String,
    /// Password for the `admin` user created on first start (`ALMANAC_ADMIN_PASSWORD`);
    /// unset: a random one is printed once to stderr.
    pub admin_password: Option<String>,
    /// tracing filter, e.g. `info` or `almanac=debug` (`ALMANAC_LOG`).
    pub log: String,
    /// The address people reach this server at, e.g. `https://cal.example.com`
    /// (`ALMANAC_PUBLIC_URL`); used in feed links. Unset: `http://` + `listen`.
    pub public_url: Option<String>,
    pub limits: Limits,
    pub auth: AuthConfig,
    pub subscriptions: SubscriptionConfig,
}

/// Calendar subscriptions to external `.ics` URLs (`almanac subscribe`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SubscriptionConfig {
    /// How long one fetch of a subscribed feed may take, connecting included (seconds).
    pub timeout_seconds: u64,
    /// Largest feed accepted, bytes; a larger one is an error and the last good copy stays.
    pub max_bytes: u64,
    /// How often the server looks for subscriptions that are due (seconds).
    pub poll_seconds: u64,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        SubscriptionConfig {
            timeout_seconds: 30,
            max_bytes: 50 * 1024 * 1024,
            poll_seconds: 15,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest calendar object accepted by PUT (CALDAV:max-resource-size), bytes.
    pub max_resource_size: u64,
    /// Largest request body of any kind, bytes; larger bodies get 413.
    pub max_request_body: u64,
    /// Total bytes of calendar data one user may store (DAV:quota-available-bytes).
    pub quota_bytes: u64,
    /// Most members one sync-collection response lists before it is truncated with 507.
    pub max_sync_results: u64,
    /// Recurrence instances one request may generate (calendar-query, expand, free-busy);
    /// a request needing more is refused with 507 instead of tying up the server.
    pub max_instances_per_request: u64,
    /// Seconds a client may take to send a request's headers, and an idle keep-alive
    /// connection may stay open before its next request: a client trickling bytes (slowloris)
    /// or merely holding connections open cannot pin `max_connections` for long. 0: no limit.
    pub header_read_timeout_seconds: u64,
    /// Connections served at once, idle keep-alive ones included. One more gets an immediate
    /// `503` with `Retry-After` and is closed, so a flood of connections costs the server a
    /// bounded amount of memory and file descriptors instead of taking it down.
    pub max_connections: usize,
    /// Seconds the server may spend on one request (authentication and handling, not the
    /// client's upload); beyond it the request gets `503` with `Retry-After` and anything it
    /// had begun to write is rolled back. Bounds what one expensive query can cost. 0: no limit.
    pub request_timeout_seconds: u64,
}

impl Limits {
    /// `header_read_timeout_seconds` as a duration; `None` when turned off.
    pub fn header_read_timeout(&self) -> Option<std::time::Duration> {
        secs(self.header_read_timeout_seconds)
    }

    /// `request_timeout_seconds` as a duration; `None` when turned off.
    pub fn request_timeout(&self) -> Option<std::time::Duration> {
        secs(self.request_timeout_seconds)
    }
}

fn secs(n: u64) -> Option<std::time::Duration> {
    (n > 0).then(|| std::time::Duration::from_secs(n))
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// argon2 verifications allowed to run at once; further logins wait.
    pub argon2_concurrency: usize,
    /// How long a verified password is remembered (seconds) before argon2 runs again.
    /// Any credential change drops it at once.
    pub cache_seconds: u64,
    /// Failed logins per user and address before further attempts are delayed.
    pub failures_before_delay: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8008)),
            database_url: "sqlite://almanac-data/almanac.db".into(),
            admin_password: None,
            log: "info".into(),
            public_url: None,
            limits: Limits::default(),
            auth: AuthConfig::default(),
            subscriptions: SubscriptionConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_resource_size: 10 * 1024 * 1024,
            max_request_body: 16 * 1024 * 1024,
            quota_bytes: 1024 * 1024 * 1024,
            max_sync_results: 10_000,
            max_instances_per_request: 1_000_000,
            header_read_timeout_seconds: 30,
            max_connections: 1024,
            request_timeout_seconds: 60,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            argon2_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            cache_seconds: 300,
            failures_before_delay: 5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("invalid {var}: {msg}")]
    Env { var: &'static str, msg: String },
}

impl Config {
    /// The base URL for links given out (feeds), without a trailing slash.
    pub fn base_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// Defaults, then the file (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut cfg = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Config::from_toml(&text).map_err(|source| ConfigError::Parse {
                    path: p.display().to_string(),
                    source,
                })?
            }
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Applies `ALMANAC_*` overrides read through `get` (a parameter so tests need not touch
    /// the process environment).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("ALMANAC_LISTEN") {
            self.listen = v.parse().map_err(|e| ConfigError::Env {
                var: "ALMANAC_LISTEN",
                msg: format!("{e}"),
            })?;
        }
        if let Some(v) = get("ALMANAC_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = get("ALMANAC_ADMIN_PASSWORD") {
            self.admin_password = Some(v);
        }
        if let Some(v) = get("ALMANAC_LOG") {
            self.log = v;
        }
        if let Some(v) = get("ALMANAC_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let text = include_str!("../examples/config.toml");
        let cfg = Config::from_toml(text).expect("examples/config.toml parses");
        let mut expected = Config::default();
        // The example spells out argon2_concurrency for a 2-core machine.
        expected.auth.argon2_concurrency = cfg.auth.argon2_concurrency;
        assert_eq!(
            cfg, expected,
            "examples/config.toml must document the defaults"
        );
    }

    #[test]
    fn env_overrides_file() {
        let mut cfg = Config::from_toml("listen = \"127.0.0.1:9000\"\n").unwrap();
        cfg.apply_env(|k| match k {
            "ALMANAC_LISTEN" => Some("127.0.0.1:9100".into()),
            "ALMANAC_DATABASE_URL" => Some("postgres://x@h/db".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.listen.port(), 9100);
        assert_eq!(cfg.database_url, "postgres://x@h/db");
        assert!(cfg
            .apply_env(|k| (k == "ALMANAC_LISTEN").then(|| "nope".into()))
            .is_err());
    }

    #[test]
    fn zero_timeouts_mean_no_limit() {
        let cfg = Config::from_toml(
            "[limits]\nheader_read_timeout_seconds = 0\nrequest_timeout_seconds = 0\n",
        )
        .unwrap();
        assert_eq!(cfg.limits.header_read_timeout(), None);
        assert_eq!(cfg.limits.request_timeout(), None);
        let d = Limits::default();
        assert_eq!(
            d.request_timeout(),
            Some(std::time::Duration::from_secs(60))
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(Config::from_toml("lisen = \"127.0.0.1:1\"\n").is_err());
        assert!(Config::from_toml("[limits]\nmax_size = 1\n").is_err());
    }
}
