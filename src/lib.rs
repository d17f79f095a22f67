//! # Almanac: a CalDAV/iCalendar server
//!
//! ## Layout
//! - `config`   — settings: defaults, TOML file, `ALMANAC_*` environment
//! - `app`      — the HTTP front: router, authentication, body limits, serving a listener
//! - `state`    — what every request shares (store, config, authenticator)
//! - `auth`     — argon2id passwords and app passwords, credential cache, login throttling
//! - `users`    — account operations shared by the CLI and first start
//! - `caldav`   — calendars, objects and reports on top of `dav` (RFC 4791, 6578, 5689)
//! - `dav`      — generic WebDAV: XML, headers, paths, multistatus, errors (RFC 4918)
//! - `ical`     — iCalendar parsing, validation and indexing (RFC 5545), pure
//! - `store`    — the `Store` trait with SQLite and PostgreSQL implementations
//! - `reindex`  — recomputes index columns written by older servers, at start
//! - `export`   — a whole calendar as one VCALENDAR: export and public feed links
//! - `feeds`    — secret feed links: tokens, the public `/feeds/` endpoint, the owner's API
//! - `import`   — splitting an iCalendar file into one resource per UID
//! - `subscriptions` — read-only calendars mirroring external `.ics` URLs
//! - `timefmt`  — HTTP and RFC 3339 date formatting, pure
//! - `fuzzing`  — entry points shared by the fuzz targets (`fuzz/`) and their corpus replay
//!
//! Dependencies flow one way: `app → caldav/feeds → dav, export, import → store → ical`.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod caldav;
pub mod config;
pub mod dav;
pub mod export;
pub mod feeds;
pub mod fuzzing;
pub mod ical;
pub mod import;
pub mod reindex;
pub mod state;
pub mod store;
pub mod subscriptions;
pub mod timefmt;
pub mod users;
