//! Persistence: the `Store` trait and its SQLite and PostgreSQL implementations.
//!
//! Every write method is one unit of work, one transaction: check the precondition, write,
//! bump the collection's revision and record the change, or do nothing at all. Callers never
//! check-then-write. Both backends run the same SQL text (sqlx binds `$N` on SQLite as on
//! Postgres), generated from one macro in `sql.rs`, so their semantics cannot drift apart.
//! Must not import axum or anything HTTP.

mod pg_batch;
mod pg_read;
mod sql;
mod sqlite_read;

pub use sql::{PgStore, SqliteStore};

use crate::ical::{CalendarObject, ComponentKind};
use async_trait::async_trait;
use std::sync::Arc;

/// A read started now and awaited later, so that the database works on it while the caller
/// does something else: PostgreSQL executes the next page of a PROPFIND listing while the
/// current page is written out. Starting polls the read once, which sends the statement (a
/// prepared statement is sent whole in one poll); SQLite reads on the calling thread finish
/// in that poll, and their result is kept.
///
/// A running read holds one of the store's read connections until it is awaited, so a caller
/// must not wait for another read while holding it (with every connection held that way, the
/// reads would wait for each other). Dropping it cancels the read; on PostgreSQL its
/// connection is then closed rather than reused.
pub enum ReadAhead<'a, T> {
    Running(std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>>),
    Done(Result<T>),
}

impl<'a, T> ReadAhead<'a, T> {
    pub async fn start(read: impl std::future::Future<Output = Result<T>> + Send + 'a) -> Self {
        use std::task::Poll;
        let mut read = Box::pin(read);
        match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
            Poll::Ready(done) => ReadAhead::Done(done),
            Poll::Pending => ReadAhead::Running(read),
        }
    }

    pub async fn get(self) -> Result<T> {
        match self {
            ReadAhead::Running(read) => read.await,
            ReadAhead::Done(done) => done,
        }
    }
}

/// A user account: owner of one calendar home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub credentials_version: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPassword {
    pub id: i64,
    pub principal_id: i64,
    pub label: String,
    pub hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionKind {
    Home,
    Calendar,
}

impl CollectionKind {
    fn as_str(self) -> &'static str {
        match self {
            CollectionKind::Home => "home",
            CollectionKind::Calendar => "calendar",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    pub id: i64,
    pub owner_id: i64,
    /// Path segment below the home; empty for the home itself.
    pub name: String,
    pub kind: CollectionKind,
    pub displayname: Option<String>,
    pub description: Option<String>,
    /// A VCALENDAR holding one VTIMEZONE (RFC 4791 §5.2.2).
    pub timezone: Option<String>,
    pub components: Vec<ComponentKind>,
    pub revision: i64,
    pub min_revision: i64,
    pub used_bytes: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// A subscription to an external feed: its members are written only by the refresher,
    /// never by CalDAV clients.
    pub read_only: bool,
}

/// What MKCALENDAR / extended MKCOL asks for.
#[derive(Debug, Clone, Default)]
pub struct NewCalendar {
    pub name: String,
    pub displayname: Option<String>,
    pub description: Option<String>,
    pub timezone: Option<String>,
    pub components: Vec<ComponentKind>,
    pub dead_props: Vec<DeadProp>,
}

/// A property the server does not interpret, kept exactly as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadProp {
    pub ns: String,
    pub local: String,
    /// Self-contained XML fragment of the whole property element.
    pub xml: String,
}

/// Live collection properties a client may set or remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveProp {
    DisplayName,
    Description,
    Timezone,
}

/// One PROPPATCH, applied all-or-nothing (RFC 4918 §9.2).
#[derive(Debug, Clone, Default)]
pub struct CollectionPatch {
    pub set_live: Vec<(LiveProp, Option<String>)>,
    pub set_dead: Vec<DeadProp>,
    pub remove_dead: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub name: String,
    pub uid: String,
    pub etag: String,
    pub size: i64,
    pub component: String,
    pub created_at: i64,
    pub modified_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub meta: ObjectMeta,
    pub ics: String,
}

/// An object as a multiget answer shows it (`Store::object_texts_by_names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectText {
    pub name: String,
    pub etag: String,
    pub ics: String,
}

/// An entity-tag condition from `If-Match` / `If-None-Match` (RFC 9110 §13.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagMatch {
    Any,
    /// Strong entity-tags, quotes included.
    List(Vec<String>),
}

impl EtagMatch {
    pub fn matches(&self, current: Option<&str>) -> bool {
        match (self, current) {
            (_, None) => false,
            (EtagMatch::Any, Some(_)) => true,
            (EtagMatch::List(l), Some(c)) => l.iter().any(|e| e == c),
        }
    }
}

/// Conditions a write must meet, checked inside the writing transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Precondition {
    pub if_match: Option<EtagMatch>,
    pub if_none_match: Option<EtagMatch>,
}

impl Precondition {
    pub fn holds(&self, current_etag: Option<&str>) -> bool {
        if let Some(m) = &self.if_match {
            if !m.matches(current_etag) {
                return false;
            }
        }
        if let Some(m) = &self.if_none_match {
            if m.matches(current_etag) {
                return false;
            }
        }
        true
    }
}

/// The SQL prefilter of a query (see `caldav::filter::Prefilter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Candidates {
    pub component: Option<ComponentKind>,
    /// Window start: objects whose last end is before it are left out.
    pub from: Option<i64>,
    /// Window end: objects whose first start is after it are left out.
    pub to: Option<i64>,
}

/// One stored occurrence (see `ical::Occurrence`) as a time-range query reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OccurrenceRow {
    pub object_id: i64,
    pub occ: crate::ical::Occurrence,
    /// Computed with floating times read in UTC: exact only when the query's zone is UTC.
    pub floating: bool,
    /// The object's `Occurrences::until`: windows ending after it are not answered here.
    pub until: i64,
}

/// An occurrence row with its object's name and ETag, which each row repeats: enough to answer
/// a calendar-query that asks only for ETags without reading the objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccurrenceMember {
    pub row: OccurrenceRow,
    pub name: String,
    pub etag: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOutcome {
    pub created: bool,
}

/// `Store::calendar_object`'s answer for an object URL: the calendar, if it exists, and the
/// member (with its body when asked for), if it exists.
pub type CalendarObjectFound = Option<(Collection, Option<StoredObject>)>;

/// What a lookup by the owner's name finds (`Store::principal_calendar`,
/// `Store::principal_calendar_object`): the owner's current credentials, to confirm cached
/// ones, beside what the path resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentialed<T> {
    pub principal_id: i64,
    pub credentials_version: i64,
    /// The principal's current address (it can change without new credentials).
    pub email: Option<String>,
    pub found: T,
}

impl<T> Credentialed<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Credentialed<U> {
        Credentialed {
            principal_id: self.principal_id,
            credentials_version: self.credentials_version,
            email: self.email,
            found: f(self.found),
        }
    }
}

/// One object's recomputed time index, for `Store::set_time_indexes`.
#[derive(Debug, Clone)]
pub struct Reindexed {
    pub collection_id: i64,
    pub name: String,
    /// `None`: the object no longer parses.
    pub index: Option<crate::ical::TimeIndex>,
}

/// A member that changed after a sync token's revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub name: String,
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSet {
    /// Revision the next token carries: the collection's revision, or on truncation the
    /// revision of the last change included.
    pub revision: i64,
    pub changes: Vec<Change>,
    pub truncated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("precondition failed")]
    PreconditionFailed,
    /// The UID is used by another resource of the collection, named here.
    #[error("UID already used by {0}")]
    UidConflict(String),
    #[error("quota exceeded")]
    QuotaExceeded,
    /// A sync token older than the pruned log or newer than the collection.
    #[error("sync token is not valid for this collection")]
    InvalidSyncToken,
    #[error("database error: {0}")]
    Backend(#[from] sqlx::Error),
    /// A read on SQLite's calling-thread path (`sqlite_read`) failed.
    #[error("database error: {0}")]
    Sqlite(String),
    /// The same, because the database stayed locked past the busy time-out.
    #[error("database busy: {0}")]
    SqliteBusy(String),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// One statement's failure, shared by every request whose lookup it carried (`pg_batch`).
    #[error("{0}")]
    Batched(Arc<StoreError>),
    /// A broken invariant of the store's own machinery, not of the data.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// Whether the database could not serve the request just now: a lost or refused
    /// connection, no free connection within the time-out, PostgreSQL shutting down or out of
    /// connection slots, SQLite locked past its busy time-out. Retrying may succeed, so such a
    /// failure is answered 503 with Retry-After, not 500: a client (or a load balancer) backs
    /// off and tries again instead of reporting a server bug.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Backend(e) => unavailable(e),
            StoreError::SqliteBusy(_) => true,
            StoreError::Batched(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

/// Whether an error means the connection is gone, not that the query was wrong: I/O and
/// protocol failures, and SQLSTATE classes 08 (connection exception) and 57P (the server is
/// shutting down or restarting).
pub(crate) fn lost_connection(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// `lost_connection`, or no connection to be had: the pool's time-out, PostgreSQL's
/// too_many_connections (53300), SQLite's BUSY and LOCKED (primary codes 5 and 6).
fn unavailable(e: &sqlx::Error) -> bool {
    if lost_connection(e) {
        return true;
    }
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(d) => {
            if d.as_error()
                .downcast_ref::<sqlx::sqlite::SqliteError>()
                .is_some()
            {
                d.code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|c| matches!(c & 0xff, 5 | 6))
            } else {
                d.code().is_some_and(|c| c == "53300")
            }
        }
        _ => false,
    }
}

/// What a feed link shows of a calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedMode {
    /// Events with their details, private ones reduced to "Busy".
    Full,
    /// Only when the owner is busy.
    Busy,
}

impl FeedMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedMode::Full => "full",
            FeedMode::Busy => "busy",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(FeedMode::Full),
            "busy" => Some(FeedMode::Busy),
            _ => None,
        }
    }
}

/// Settings of a feed link, chosen by the owner when it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSettings {
    pub mode: FeedMode,
    /// Leave out what ended more than this many days ago (`None`: everything).
    pub window_days: Option<i64>,
    /// Keep VALARMs (off by default: a subscriber should not inherit the owner's reminders).
    pub include_alarms: bool,
    /// Keep attendee and organizer e-mail addresses (off by default: a public link must not
    /// become an address harvester).
    pub include_emails: bool,
}

/// A secret feed link of one calendar. The token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub id: i64,
    pub collection_id: i64,
    pub owner_id: i64,
    /// Name of the calendar below the owner's home.
    pub calendar: String,
    pub token_hint: String,
    pub settings: FeedSettings,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A calendar mirroring an external `.ics` URL and the state of its refreshes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub collection_id: i64,
    pub owner: String,
    pub calendar: String,
    pub url: String,
    pub refresh_seconds: i64,
    /// Validators of the last fetched version, for conditional GET.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub next_due_at: i64,
    pub last_attempt_at: Option<i64>,
    pub last_success_at: Option<i64>,
    /// What the last successful refresh did, in words.
    pub last_status: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
}

/// How a refresh ended, recorded on the subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    Success {
        etag: Option<String>,
        last_modified: Option<String>,
        status: String,
    },
    Error(String),
}

/// What replacing a calendar's members changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaceStats {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Strong entity-tag of stored bytes. A content hash, so equal bytes give equal tags on every
/// backend and across restarts, and a rewrite with the same bytes keeps the tag.
pub fn etag_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    let mut s = String::with_capacity(34);
    s.push('"');
    for b in &d[..16] {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
    }
    s.push('"');
    s
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Identifies this database in sync tokens, so tokens of another (or a re-created)
    /// database are refused rather than misread.
    fn instance_id(&self) -> &str;
    fn backend_name(&self) -> &'static str;
    async fn ping(&self) -> Result<()>;

    // Principals
    /// Creates the principal, its calendar home and its first calendar in one transaction.
    async fn create_principal(
        &self,
        name: &str,
        email: Option<&str>,
        password_hash: &str,
        first_calendar: &NewCalendar,
    ) -> Result<Principal>;
    async fn principal_by_name(&self, name: &str) -> Result<Option<Principal>>;
    async fn principals(&self) -> Result<Vec<Principal>>;
    async fn principal_count(&self) -> Result<i64>;
    async fn delete_principal(&self, name: &str) -> Result<()>;
    async fn set_password(&self, name: &str, password_hash: &str) -> Result<()>;
    async fn set_email(&self, name: &str, email: Option<&str>) -> Result<()>;

    // App passwords
    async fn add_app_password(
        &self,
        principal_id: i64,
        label: &str,
        lookup: &str,
        hash: &str,
    ) -> Result<()>;
    async fn app_passwords(&self, principal_id: i64) -> Result<Vec<AppPassword>>;
    async fn revoke_app_password(&self, principal_id: i64, label: &str) -> Result<()>;
    async fn app_password_by_lookup(&self, lookup: &str) -> Result<Option<AppPassword>>;
    async fn touch_app_password(&self, id: i64) -> Result<()>;

    // Collections
    async fn home(&self, owner_id: i64) -> Result<Collection>;
    async fn calendar(&self, owner_id: i64, name: &str) -> Result<Option<Collection>>;
    async fn calendars(&self, owner_id: i64) -> Result<Vec<Collection>>;
    async fn create_calendar(&self, owner_id: i64, new: &NewCalendar) -> Result<Collection>;
    async fn delete_calendar(&self, owner_id: i64, name: &str) -> Result<()>;
    async fn patch_collection(&self, collection_id: i64, patch: &CollectionPatch) -> Result<()>;
    async fn dead_props(&self, collection_id: i64, object_name: &str) -> Result<Vec<DeadProp>>;

    // Objects
    async fn object(&self, collection_id: i64, name: &str) -> Result<Option<StoredObject>>;
    async fn object_metas(&self, collection_id: i64) -> Result<Vec<ObjectMeta>>;
    /// Up to `limit` members' metadata in name order, after the name `after` (`""`: from the
    /// first): listings of large calendars go page by page instead of all at once.
    async fn object_metas_after(
        &self,
        collection_id: i64,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ObjectMeta>>;
    /// Objects that may match a query: of one component type, and whose index bounds meet a
    /// window. Only narrows; the caller decides with the exact filter.
    async fn candidates(&self, collection_id: i64, c: &Candidates) -> Result<Vec<StoredObject>>;
    /// Like `candidates`, but only objects whose stored occurrences cannot answer a window
    /// ending at `c.to` (not VEVENTs, too many occurrences, or `to` past their horizon).
    async fn unindexed_candidates(
        &self,
        collection_id: i64,
        c: &Candidates,
    ) -> Result<Vec<StoredObject>>;
    /// Stored occurrences that may overlap `[from, to)` widened by `slack` on both sides (for
    /// floating times read in another zone); the caller applies the exact test.
    async fn occurrences(
        &self,
        collection_id: i64,
        from: i64,
        to: i64,
        slack: i64,
    ) -> Result<Vec<OccurrenceRow>>;
    /// `occurrences`, each row with its object's name and ETag (from the same index).
    async fn occurrence_members(
        &self,
        collection_id: i64,
        from: i64,
        to: i64,
        slack: i64,
    ) -> Result<Vec<OccurrenceMember>>;
    /// The objects with these ids (those that still exist), with or without their bodies.
    async fn objects_by_ids(
        &self,
        collection_id: i64,
        ids: &[i64],
        with_body: bool,
    ) -> Result<Vec<StoredObject>>;
    /// Objects whose time index was computed by an older server: (collection, name, text).
    async fn stale_objects(&self, limit: i64) -> Result<Vec<(i64, String, String)>>;
    /// Stores recomputed time indexes, all in one transaction: (collection, name, index), where
    /// `None` means the object no longer parses (index it as a candidate for every window).
    /// Only a row still behind `INDEX_VERSION` is updated: one rewritten by a PUT since it was
    /// read for reindexing already has its new index. One transaction per batch, not per
    /// object: an upgrade reindexing 10,000 objects took about 15 s with one commit each.
    async fn set_time_indexes(&self, items: &[Reindexed]) -> Result<()>;
    async fn objects_by_names(
        &self,
        collection_id: i64,
        names: &[String],
    ) -> Result<Vec<StoredObject>>;
    /// The name, ETag and text of the named objects that exist: all a multiget asking for
    /// ETags and plain calendar data answers with. Reading and decoding only these three
    /// columns of 100 objects instead of the whole metadata took about a fifth off such a
    /// multiget on PostgreSQL.
    async fn object_texts_by_names(
        &self,
        collection_id: i64,
        names: &[String],
    ) -> Result<Vec<ObjectText>>;
    /// Metadata of the named objects that exist, without their bodies.
    async fn object_metas_named(
        &self,
        collection_id: i64,
        names: &[String],
    ) -> Result<Vec<ObjectMeta>>;
    /// Creates or replaces an object. `quota` caps the owner's total bytes.
    async fn put_object(
        &self,
        collection_id: i64,
        name: &str,
        obj: &CalendarObject,
        pre: &Precondition,
        quota: i64,
    ) -> Result<PutOutcome>;
    async fn delete_object(&self, collection_id: i64, name: &str, pre: &Precondition)
        -> Result<()>;
    /// Creates many objects in one transaction (import): all or nothing. Each is a change of
    /// its own for sync. Names and UIDs must be new to the collection.
    async fn import_objects(
        &self,
        collection_id: i64,
        objs: &[(String, CalendarObject)],
        quota: i64,
    ) -> Result<()>;
    /// COPY or MOVE (`remove_source`) of one object, atomically. `overwrite` false refuses an
    /// existing destination with `PreconditionFailed` (RFC 4918 §10.6).
    #[allow(clippy::too_many_arguments)]
    async fn transfer_object(
        &self,
        src_collection: i64,
        src_name: &str,
        dst_collection: i64,
        dst_name: &str,
        overwrite: bool,
        remove_source: bool,
        pre: &Precondition,
        quota: i64,
    ) -> Result<PutOutcome>;

    /// Makes the collection hold exactly `objs`, in one transaction: members not listed are
    /// deleted, changed ones rewritten, identical ones left alone (so sync reports only real
    /// changes). Used by subscription refreshes.
    async fn replace_objects(
        &self,
        collection_id: i64,
        objs: &[(String, CalendarObject)],
        quota: i64,
    ) -> Result<ReplaceStats>;
    /// One page of a collection's objects in name order, after `after`; with `from`, only
    /// those whose index says they may end at or after it (feeds with a window).
    async fn objects_page(
        &self,
        collection_id: i64,
        after: Option<&str>,
        from: Option<i64>,
        limit: i64,
    ) -> Result<Vec<StoredObject>>;
    async fn collection_by_id(&self, id: i64) -> Result<Option<Collection>>;
    /// The owner's calendar `cal` and its member `name` if there is one (with its body when
    /// `with_body`): what resolving an object URL needs, in one round trip.
    async fn calendar_object(
        &self,
        owner_id: i64,
        cal: &str,
        name: &str,
        with_body: bool,
    ) -> Result<CalendarObjectFound>;
    /// `calendar_object` looked up by the owner's name, with the owner's current credentials:
    /// a request whose credentials the authenticator verified moments ago confirms they still
    /// hold and resolves its object in one statement instead of two (`None`: no such
    /// principal).
    async fn principal_calendar_object(
        &self,
        owner: &str,
        cal: &str,
        name: &str,
        with_body: bool,
    ) -> Result<Option<Credentialed<CalendarObjectFound>>>;

    /// `calendar` looked up by the owner's name, with the owner's current credentials: what
    /// `principal_calendar_object` is for object URLs, for calendar URLs.
    async fn principal_calendar(
        &self,
        owner: &str,
        cal: &str,
    ) -> Result<Option<Credentialed<Option<Collection>>>>;

    // Feeds
    async fn create_feed(
        &self,
        collection_id: i64,
        token_hash: &str,
        token_hint: &str,
        settings: &FeedSettings,
    ) -> Result<Feed>;
    async fn feeds(&self, owner_id: i64) -> Result<Vec<Feed>>;
    async fn feed_by_token_hash(&self, token_hash: &str) -> Result<Option<Feed>>;
    /// Deletes the owner's feed `id`; `NotFound` if there is none.
    async fn revoke_feed(&self, owner_id: i64, id: i64) -> Result<()>;
    /// Records a fetch, at most once a minute per feed (a popular feed must not turn every
    /// read into a write).
    async fn touch_feed(&self, id: i64, at: i64) -> Result<()>;

    // Subscriptions
    /// Creates a read-only calendar fed from `url`, due for its first refresh at once.
    async fn create_subscription(
        &self,
        owner_id: i64,
        new: &NewCalendar,
        url: &str,
        refresh_seconds: i64,
    ) -> Result<Collection>;
    /// Subscriptions of one owner, or of everyone.
    async fn subscriptions(&self, owner_id: Option<i64>) -> Result<Vec<Subscription>>;
    /// Claims the subscriptions due at `now` by moving them `lease` seconds ahead, atomically,
    /// so that no other process refreshes them meanwhile.
    async fn claim_due_subscriptions(&self, now: i64, lease: i64) -> Result<Vec<Subscription>>;
    /// Makes a subscription due at once (a manual refresh).
    async fn make_subscription_due(&self, collection_id: i64) -> Result<()>;
    async fn record_refresh(
        &self,
        collection_id: i64,
        at: i64,
        outcome: &RefreshOutcome,
    ) -> Result<()>;

    // Sync
    /// Members changed after `since` (`None`: every current member), oldest change first, at
    /// most `limit`.
    async fn changes_since(
        &self,
        collection_id: i64,
        since: Option<i64>,
        limit: Option<u64>,
    ) -> Result<ChangeSet>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store a URL names (`sqlite://…` or `postgres://…`) and applies migrations.
pub async fn open(url: &str) -> Result<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::open(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else {
        Err(StoreError::Backend(sqlx::Error::Configuration(
            format!(
                "unsupported database URL scheme (use sqlite:// or postgres://): {}",
                redact(url)
            )
            .into(),
        )))
    }
}

/// A database URL with its password replaced, for logs and errors.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((creds, host)) = rest.rsplit_once('@') {
            if let Some((user, _)) = creds.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditions() {
        let e = "\"abc\"".to_string();
        let none = Precondition::default();
        assert!(none.holds(None) && none.holds(Some(&e)));
        let create = Precondition {
            if_none_match: Some(EtagMatch::Any),
            ..Default::default()
        };
        assert!(create.holds(None) && !create.holds(Some(&e)));
        let upd = Precondition {
            if_match: Some(EtagMatch::List(vec![e.clone()])),
            ..Default::default()
        };
        assert!(upd.holds(Some(&e)) && !upd.holds(Some("\"x\"")) && !upd.holds(None));
        let exists = Precondition {
            if_match: Some(EtagMatch::Any),
            ..Default::default()
        };
        assert!(exists.holds(Some("\"x\"")) && !exists.holds(None));
    }

    #[test]
    fn etags_are_strong_content_hashes() {
        assert_eq!(etag_of(b"x"), etag_of(b"x"));
        assert_ne!(etag_of(b"x"), etag_of(b"y"));
        assert!(etag_of(b"x").starts_with('"') && etag_of(b"x").len() == 34);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
    }

    #[tokio::test]
    async fn a_read_ahead_is_under_way_once_started() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // A read that does its first part (sending the statement) when first polled, then
        // waits once for its answer.
        let polls = AtomicUsize::new(0);
        let read = || async {
            polls.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            polls.fetch_add(1, Ordering::SeqCst);
            Ok(7)
        };
        let ahead = ReadAhead::start(read()).await;
        assert!(matches!(ahead, ReadAhead::Running(_)));
        assert_eq!(
            polls.load(Ordering::SeqCst),
            1,
            "started before it is awaited"
        );
        assert_eq!(ahead.get().await.unwrap(), 7);
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        // A read that finishes at once (SQLite on the calling thread) keeps its result.
        let done = ReadAhead::start(async { Err::<i32, _>(StoreError::Internal("x".into())) });
        let done = done.await;
        assert!(matches!(
            done,
            ReadAhead::Done(Err(StoreError::Internal(_)))
        ));
    }
}
