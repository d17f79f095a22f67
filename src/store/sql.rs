//! The SQL behind `Store`, written once and instantiated for SQLite and PostgreSQL.
//!
//! What differs between the two is small and explicit: how a write transaction starts
//! (`BEGIN IMMEDIATE` on SQLite's single writer connection, so writers queue instead of
//! failing to upgrade a read lock; plain `BEGIN` on Postgres), how a read transaction gets a
//! stable snapshot, and the row-lock suffix (`FOR UPDATE` on Postgres, where several Almanac
//! processes may write the same collection; SQLite's immediate transaction already holds the
//! database write lock), and lists of keys (`= ANY($n)` with one array on Postgres, whose plan
//! is then prepared once; `IN ($n, …)` on SQLite, which has no arrays; see `list_sql`).
//! Everything else is the same SQL text.

use super::pg_batch::{BatchLookup, Batched};
use super::pg_read::{PgQuery, PgReads};
use super::sqlite_read::{bind_params, Cols, FastReads, Param};
use super::*;
use crate::ical::freebusy::FbType;
use crate::ical::index::{span_level, span_limit, SPAN_LEVELS};
use crate::ical::{Occurrence, TimeIndex, INDEX_VERSION};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Row, Sqlite, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Embedded default: one file, WAL, one writer connection, several readers.
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    /// Hot reads on the calling thread; `None` for an in-memory database.
    fast: Option<FastReads>,
    instance: String,
}

/// Production backend; several processes may share one database.
pub struct PgStore {
    pool: PgPool,
    /// Point reads and listings, on warm connections (see `pg_read`).
    reads: PgReads,
    /// GET and HEAD lookups of concurrent requests, one statement per batch (see `pg_batch`).
    object_gets: Arc<Batched<ObjectsByPath>>,
    instance: String,
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged write survives power loss, not just a process crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(15))
            .foreign_keys(true);
        if let Some(parent) = opts.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| StoreError::Backend(sqlx::Error::Io(e)))?;
            }
        }
        let file = opts.get_filename().to_path_buf();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        let instance = ensure_instance_id_sqlite(&writer).await?;
        let file = file.to_path_buf();
        let in_memory = file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:");
        let fast = (!in_memory).then(|| FastReads::new(file));
        Ok(SqliteStore {
            reader,
            writer,
            fast,
            instance,
        })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn begin_read(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.reader.begin().await?)
    }

    fn read_pool(&self) -> &SqlitePool {
        &self.reader
    }

    fn fast_reads(&self) -> Option<&FastReads> {
        self.fast.as_ref()
    }

    fn pg_reads(&self) -> Option<&PgReads> {
        None
    }

    /// Reads on the calling thread cost microseconds: nothing to gain from batching them.
    fn object_gets(&self) -> Option<&Arc<Batched<ObjectsByPath>>> {
        None
    }

    /// `col IN ($first, $first+1, …)`: one parameter per element.
    fn list_sql(col: &str, first: usize, n: usize) -> String {
        format!("{col} IN ({})", in_list(first, n))
    }

    fn bind_ints<'q>(mut q: SqliteQuery<'q>, list: &'q [i64]) -> SqliteQuery<'q> {
        for v in list {
            q = q.bind(*v);
        }
        q
    }

    fn bind_texts<'q>(mut q: SqliteQuery<'q>, list: &'q [String]) -> SqliteQuery<'q> {
        for v in list {
            q = q.bind(v.as_str());
        }
        q
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

impl PgStore {
    pub async fn open(url: &str) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(opts.clone())
            .await?;
        // The migrator takes an advisory lock, so processes starting together are safe.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let instance = ensure_instance_id_pg(&pool).await?;
        // The batch statement's own connections always run its generic plan: the planner
        // prices the generic plan for ten keys and a custom one for the batch at hand, so on
        // its own it would keep planning afresh (0.3 ms, more than running it) for batches of
        // fewer than ten.
        let batch_opts = opts
            .clone()
            .options([("plan_cache_mode", "force_generic_plan")]);
        Ok(PgStore {
            pool,
            object_gets: Batched::new(ObjectsByPath(PgReads::new(batch_opts))),
            reads: PgReads::new(opts),
            instance,
        })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    async fn begin_read(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?)
    }

    fn read_pool(&self) -> &PgPool {
        &self.pool
    }

    /// Postgres reads go over the network anyway; sqlx's pool is the right tool there.
    fn fast_reads(&self) -> Option<&FastReads> {
        None
    }

    fn pg_reads(&self) -> Option<&PgReads> {
        Some(&self.reads)
    }

    fn object_gets(&self) -> Option<&Arc<Batched<ObjectsByPath>>> {
        Some(&self.object_gets)
    }

    /// `col = ANY($first)`: one array parameter, so the statement text (and its prepared plan)
    /// is the same whatever the list's length. With `IN ($2, …, $501)` every length was a new
    /// statement, planned afresh on each call: 1.4–2.0 ms of planning for 500 ids.
    fn list_sql(col: &str, first: usize, _n: usize) -> String {
        format!("{col} = ANY(${first})")
    }

    fn bind_ints<'q>(q: PgQuery<'q>, list: &'q [i64]) -> PgQuery<'q> {
        super::pg_read::bind_ints(q, list)
    }

    fn bind_texts<'q>(q: PgQuery<'q>, list: &'q [String]) -> PgQuery<'q> {
        super::pg_read::bind_texts(q, list)
    }
}

fn new_instance_id() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

const INSERT_INSTANCE: &str =
    "INSERT INTO meta (key, value) VALUES ('instance_id', $1) ON CONFLICT (key) DO NOTHING";
const SELECT_INSTANCE: &str = "SELECT value FROM meta WHERE key = 'instance_id'";

async fn ensure_instance_id_sqlite(pool: &SqlitePool) -> Result<String> {
    sqlx::query(INSERT_INSTANCE)
        .bind(new_instance_id())
        .execute(pool)
        .await?;
    Ok(sqlx::query_scalar(SELECT_INSTANCE).fetch_one(pool).await?)
}

async fn ensure_instance_id_pg(pool: &PgPool) -> Result<String> {
    sqlx::query(INSERT_INSTANCE)
        .bind(new_instance_id())
        .execute(pool)
        .await?;
    Ok(sqlx::query_scalar(SELECT_INSTANCE).fetch_one(pool).await?)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

fn components_to_text(c: &[ComponentKind]) -> String {
    c.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",")
}

fn components_from_text(s: &str) -> Vec<ComponentKind> {
    s.split(',').filter_map(ComponentKind::parse).collect()
}

const COLLECTION_COLS: &str = "id, owner_id, name, kind, displayname, description, timezone, components, revision, min_revision, used_bytes, created_at, updated_at, \
                               (SELECT COUNT(*) FROM subscriptions s WHERE s.collection_id = collections.id) AS subscribed";
/// `COLLECTION_COLS` qualified with the table name, for joins.
macro_rules! collection_qualified_cols {
    () => {
        "collections.id, collections.owner_id, collections.name, collections.kind, collections.displayname, \
         collections.description, collections.timezone, collections.components, collections.revision, \
         collections.min_revision, collections.used_bytes, collections.created_at, collections.updated_at, \
         (SELECT COUNT(*) FROM subscriptions s WHERE s.collection_id = collections.id) AS subscribed"
    };
}
/// An object's metadata columns aliased `o_*`, for joins of a calendar with one of its objects.
macro_rules! object_join_cols {
    () => {
        "o.name AS o_name, o.uid AS o_uid, o.etag AS o_etag, o.size AS o_size, o.component AS o_component, \
         o.created_at AS o_created_at, o.modified_at AS o_modified_at"
    };
}
const OBJECT_JOIN_COLS: &str = object_join_cols!();
/// `COLLECTION_COLS` qualified, for joins with `objects`, whose columns are aliased `o_*`.
const COLLECTION_JOIN_COLS: &str = concat!(collection_qualified_cols!(), ", ", object_join_cols!());
const FEED_COLS: &str =
    "f.id, f.collection_id, c.owner_id, c.name AS calendar, f.token_hint, f.mode, f.window_days, \
                         f.include_alarms, f.include_emails, f.created_at, f.last_used_at";
const SUBSCRIPTION_COLS: &str = "s.collection_id, p.name AS owner, c.name AS calendar, s.url, s.refresh_seconds, s.etag, \
                                 s.last_modified, s.next_due_at, s.last_attempt_at, s.last_success_at, s.last_status, \
                                 s.last_error, s.last_error_at";
const SUBSCRIPTION_FROM: &str = "subscriptions s JOIN collections c ON c.id = s.collection_id JOIN principals p ON p.id = c.owner_id";
/// Read by position in `meta_row` (and `ics` after them in `object_row`): every query decoded
/// by those selects these columns first, in this order.
const OBJECT_META_COLS: &str = "name, uid, etag, size, component, created_at, modified_at";
const PRINCIPAL_COLS: &str = "id, name, email, password_hash, credentials_version, created_at";
const APP_PASSWORD_COLS: &str = "id, principal_id, label, hash, created_at, last_used_at";

/// Keys per list query (`list_sql`): well under SQLite's bind-parameter limit.
const IN_CHUNK: usize = 500;

/// `$first, $first+1, …` for `n` values.
fn in_list(first: usize, n: usize) -> String {
    let mut s = String::with_capacity(n * 5);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('$');
        s.push_str(&(first + i).to_string());
    }
    s
}

/// Create-or-replace of one object row; created_at stays what it was.
const OBJECT_UPSERT: &str = "INSERT INTO objects (collection_id, name, uid, etag, ics, size, component, created_at, modified_at, \
                     index_version, first_start, last_end, recurring, floating, all_day, transp, status, class, occ_until) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
                     ON CONFLICT (collection_id, name) DO UPDATE SET uid = excluded.uid, etag = excluded.etag, \
                     ics = excluded.ics, size = excluded.size, component = excluded.component, \
                     modified_at = excluded.modified_at, index_version = excluded.index_version, \
                     first_start = excluded.first_start, last_end = excluded.last_end, recurring = excluded.recurring, \
                     floating = excluded.floating, all_day = excluded.all_day, transp = excluded.transp, \
                     status = excluded.status, class = excluded.class, occ_until = excluded.occ_until \
                     RETURNING id";

/// Binds one object row in the column order of `OBJECT_UPSERT` and of import's multi-row insert
/// (`$8` is used twice there, for created_at and modified_at).
macro_rules! bind_object_row {
    ($q:expr, $collection_id:expr, $name:expr, $obj:expr, $etag:expr, $t:expr) => {{
        let ti = &$obj.index.time;
        let q = $q
            .bind($collection_id)
            .bind($name)
            .bind(&$obj.index.uid)
            .bind($etag)
            .bind(&$obj.raw)
            .bind($obj.raw.len() as i64)
            .bind($obj.index.component.as_str())
            .bind($t);
        bind_time_index!(q, ti, true)
    }};
}

/// Binds a time index in the column order `index_version, first_start, last_end, recurring,
/// floating, all_day, transp, status, class, occ_until`. `$parses` false: the object no longer
/// parses, so it has no bounds and stays a candidate for every window.
macro_rules! bind_time_index {
    ($q:expr, $ti:expr, $parses:expr) => {{
        let ti: &TimeIndex = $ti;
        let parses: bool = $parses;
        $q.bind(INDEX_VERSION)
            .bind(ti.first_start.filter(|_| parses))
            .bind(ti.last_end.filter(|_| parses))
            .bind(ti.recurring as i64)
            .bind(ti.floating as i64)
            .bind(ti.all_day as i64)
            .bind(&ti.transp)
            .bind(&ti.status)
            .bind(&ti.class)
            .bind(occ_until(ti))
    }};
}

/// `objects.occ_until` of an index: 0 when its occurrences are not stored.
fn occ_until(ti: &TimeIndex) -> i64 {
    ti.occurrences.as_ref().map_or(0, |o| o.until)
}

fn busy_code(b: Option<FbType>) -> i64 {
    match b {
        None => 0,
        Some(FbType::Busy) => 1,
        Some(FbType::BusyTentative) => 2,
        Some(FbType::BusyUnavailable) => 3,
    }
}

fn busy_of_code(c: i64) -> Option<FbType> {
    match c {
        1 => Some(FbType::Busy),
        2 => Some(FbType::BusyTentative),
        3 => Some(FbType::BusyUnavailable),
        _ => None,
    }
}

/// One index range per span level (see `ical::index::span_level`): `$1` the collection, `$2`
/// the window's end, `$3 + l` the earliest start an occurrence of level `l` can have and still
/// reach the window.
fn occurrences_sql(cols: &str) -> String {
    (0..SPAN_LEVELS)
        .map(|l| {
            format!(
                "SELECT {cols} FROM occurrences \
                 WHERE collection_id = $1 AND span_level = {l} AND start_at >= ${} AND start_at < $2",
                l + 3
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The parameters of `occurrences_sql` for the window `[from, to)` widened by `slack`.
fn occurrence_params(collection_id: i64, from: i64, to: i64, slack: i64) -> Vec<Param<'static>> {
    let mut params = vec![
        Param::Int(collection_id),
        Param::Int(to.saturating_add(slack)),
    ];
    for l in 0..SPAN_LEVELS {
        params.push(Param::Int(
            from.saturating_sub(slack).saturating_sub(span_limit(l)),
        ));
    }
    params
}

/// Read by position in `occurrence_row`: keep the order.
const OCCURRENCE_COLS: &str = "object_id, start_at, end_at, busy, floating, occ_until";
static OCCURRENCES_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| occurrences_sql(OCCURRENCE_COLS));
/// The same with each row's name and ETag, all from the window index.
static OCCURRENCE_MEMBERS_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| occurrences_sql(&format!("{OCCURRENCE_COLS}, name, etag")));

/// Occurrence rows per multi-row INSERT (8 parameters each, and the shared name and ETag).
const OCCURRENCE_ROWS: usize = 200;

/// Whose occurrences `write_occurrences` stores: the object, and the name and ETag every
/// occurrence row repeats.
#[derive(Clone, Copy)]
struct OccurrenceKey<'a> {
    collection_id: i64,
    object_id: i64,
    name: &'a str,
    etag: &'a str,
}

fn principal_row(r: &dyn Cols) -> Result<Principal> {
    Ok(Principal {
        id: r.int("id")?,
        name: r.text("name")?,
        email: r.opt_text("email")?,
        password_hash: r.text("password_hash")?,
        credentials_version: r.int("credentials_version")?,
        created_at: r.int("created_at")?,
    })
}

fn collection_row(r: &dyn Cols) -> Result<Collection> {
    collection_at(r, 0)
}

/// Columns of `COLLECTION_COLS` (and `collection_qualified_cols!`), `object_join_cols!` and
/// `credential_cols!`. The row decoders below read them by position from where a statement
/// puts them: every request reads its calendar (and a GET its credentials and object), and
/// decoding the GET's row by column name was 7% of Almanac's CPU per GET on PostgreSQL
/// (perf, 2026-12-07). The tests pin the lists' order and widths.
const COLLECTION_NCOLS: usize = 14;
const OBJECT_JOIN_NCOLS: usize = 7;
const CREDENTIAL_NCOLS: usize = 3;

/// `COLLECTION_COLS` from column `at` on, in their order.
fn collection_at(r: &dyn Cols, at: usize) -> Result<Collection> {
    Ok(Collection {
        id: r.int_at(at)?,
        owner_id: r.int_at(at + 1)?,
        name: r.text_at(at + 2)?,
        kind: if r.text_at(at + 3)? == "home" {
            CollectionKind::Home
        } else {
            CollectionKind::Calendar
        },
        displayname: r.opt_text_at(at + 4)?,
        description: r.opt_text_at(at + 5)?,
        timezone: r.opt_text_at(at + 6)?,
        components: components_from_text(&r.text_at(at + 7)?),
        revision: r.int_at(at + 8)?,
        min_revision: r.int_at(at + 9)?,
        used_bytes: r.int_at(at + 10)?,
        created_at: r.int_at(at + 11)?,
        updated_at: r.int_at(at + 12)?,
        read_only: r.int_at(at + 13)? > 0,
    })
}

/// `OBJECT_META_COLS` by position: listings decode tens of thousands of these rows, and
/// finding each column by name was a tenth of a PostgreSQL multiget's time.
fn meta_row(r: &dyn Cols) -> Result<ObjectMeta> {
    Ok(ObjectMeta {
        name: r.text_at(0)?,
        uid: r.text_at(1)?,
        etag: r.text_at(2)?,
        size: r.int_at(3)?,
        component: r.text_at(4)?,
        created_at: r.int_at(5)?,
        modified_at: r.int_at(6)?,
    })
}

/// `OBJECT_META_COLS`, then `ics`.
fn object_row(r: &dyn Cols) -> Result<StoredObject> {
    Ok(StoredObject {
        meta: meta_row(r)?,
        ics: r.text_at(7)?,
    })
}

/// `name, etag, ics`.
fn object_text_row(r: &dyn Cols) -> Result<ObjectText> {
    Ok(ObjectText {
        name: r.text_at(0)?,
        etag: r.text_at(1)?,
        ics: r.text_at(2)?,
    })
}

/// A listing row: metadata only, the body left empty.
fn meta_only_row(r: &dyn Cols) -> Result<StoredObject> {
    Ok(StoredObject {
        meta: meta_row(r)?,
        ics: String::new(),
    })
}

fn dead_prop_row(r: &dyn Cols) -> Result<DeadProp> {
    Ok(DeadProp {
        ns: r.text("ns")?,
        local: r.text("local")?,
        xml: r.text("xml")?,
    })
}

/// A row of `OCCURRENCE_MEMBERS_SQL`, by position (`OCCURRENCE_COLS`, then name and ETag).
fn occurrence_member(r: &dyn Cols) -> Result<OccurrenceMember> {
    Ok(OccurrenceMember {
        row: occurrence_row(r)?,
        name: r.text_at(6)?,
        etag: r.text_at(7)?,
    })
}

/// A row of `OCCURRENCES_SQL`, by position (`OCCURRENCE_COLS`).
fn occurrence_row(r: &dyn Cols) -> Result<OccurrenceRow> {
    Ok(OccurrenceRow {
        object_id: r.int_at(0)?,
        occ: Occurrence {
            start: r.int_at(1)?,
            end: r.int_at(2)?,
            busy: busy_of_code(r.int_at(3)?),
        },
        floating: r.int_at(4)? != 0,
        until: r.int_at(5)?,
    })
}

/// A calendar joined with one of its objects (`COLLECTION_JOIN_COLS`, then `o_ics` when
/// `with_body`; the object's columns all NULL when it has none), from column `at` on.
fn calendar_object_at(
    r: &dyn Cols,
    at: usize,
    with_body: bool,
) -> Result<(Collection, Option<StoredObject>)> {
    let c = collection_at(r, at)?;
    let o = at + COLLECTION_NCOLS;
    let obj = match r.opt_text_at(o)? {
        None => None,
        Some(name) => Some(StoredObject {
            meta: ObjectMeta {
                name,
                uid: r.text_at(o + 1)?,
                etag: r.text_at(o + 2)?,
                size: r.int_at(o + 3)?,
                component: r.text_at(o + 4)?,
                created_at: r.int_at(o + 5)?,
                modified_at: r.int_at(o + 6)?,
            },
            ics: if with_body {
                r.text_at(o + OBJECT_JOIN_NCOLS)?
            } else {
                String::new()
            },
        }),
    };
    Ok((c, obj))
}

/// The owner's credentials columns that `credentialed` reads, for statements joining `principals p`.
macro_rules! credential_cols {
    () => {
        "p.id AS p_id, p.credentials_version AS p_credentials_version, p.email AS p_email"
    };
}

/// The owner's current credentials (`Credentialed`), selected by name, with the calendar named
/// `$2` joined (its columns all NULL when the owner has none by that name).
const PRINCIPAL_CALENDAR_SELECT: &str = concat!(
    "SELECT ",
    credential_cols!(),
    ", ",
    collection_qualified_cols!()
);
const PRINCIPAL_CALENDAR_FROM: &str = "FROM principals p LEFT JOIN collections \
     ON collections.owner_id = p.id AND collections.name = $2 AND collections.kind = 'calendar'";

/// The `credential_cols!` from column `at` on, around what the lookup found.
fn credentialed_at<T>(r: &dyn Cols, at: usize, found: T) -> Result<Credentialed<T>> {
    Ok(Credentialed {
        principal_id: r.int_at(at)?,
        credentials_version: r.int_at(at + 1)?,
        email: r.opt_text_at(at + 2)?,
        found,
    })
}

/// `principal_calendar`'s row (`PRINCIPAL_CALENDAR_SELECT`): the calendar when there is one
/// (its name is not NULL).
fn principal_calendar_row(r: &dyn Cols) -> Result<Credentialed<Option<Collection>>> {
    let calendar = match r.opt_text_at(CREDENTIAL_NCOLS + 2)? {
        None => None,
        Some(_) => Some(collection_at(r, CREDENTIAL_NCOLS)?),
    };
    credentialed_at(r, 0, calendar)
}

/// `principal_calendar_object`'s row from column `at` on: `PRINCIPAL_CALENDAR_SELECT`'s
/// columns, then `calendar_object_at`'s object, when there is a calendar.
fn principal_object_at(
    r: &dyn Cols,
    at: usize,
    with_body: bool,
) -> Result<Credentialed<CalendarObjectFound>> {
    let found = match r.opt_text_at(at + CREDENTIAL_NCOLS + 2)? {
        None => None,
        Some(_) => Some(calendar_object_at(r, at + CREDENTIAL_NCOLS, with_body)?),
    };
    credentialed_at(r, at, found)
}

/// An object named by its URL: owner, calendar and object name.
pub struct ObjectPath {
    owner: String,
    calendar: String,
    name: String,
}

/// GET and HEAD lookups on PostgreSQL (`Store::principal_calendar_object` with the body), one
/// statement per batch of concurrent requests: the keys go in as three arrays, unnested side by
/// side, and each row carries its key's position. A key whose owner does not exist gives no row.
pub struct ObjectsByPath(PgReads);

const OBJECTS_BY_PATH_SQL: &str = concat!(
    "SELECT k.i AS k_i, ",
    credential_cols!(),
    ", ",
    collection_qualified_cols!(),
    ", ",
    object_join_cols!(),
    ", o.ics AS o_ics \
     FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(owner, calendar, name, i) \
     JOIN principals p ON p.name = k.owner \
     LEFT JOIN collections ON collections.owner_id = p.id AND collections.name = k.calendar \
       AND collections.kind = 'calendar' \
     LEFT JOIN objects o ON o.collection_id = collections.id AND o.name = k.name"
);

impl BatchLookup for ObjectsByPath {
    type Key = ObjectPath;
    type Found = Credentialed<CalendarObjectFound>;

    async fn lookup(&self, keys: Vec<ObjectPath>) -> Result<Vec<Option<Self::Found>>> {
        let n = keys.len();
        let (mut owners, mut calendars, mut names) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for k in keys {
            owners.push(k.owner);
            calendars.push(k.calendar);
            names.push(k.name);
        }
        let params = [
            Param::Texts(&owners),
            Param::Texts(&calendars),
            Param::Texts(&names),
        ];
        let rows = self
            .0
            .rows(OBJECTS_BY_PATH_SQL, &params, |r| {
                Ok((r.int_at(0)?, principal_object_at(r, 1, true)?))
            })
            .await?;
        let mut found: Vec<Option<Self::Found>> = (0..n).map(|_| None).collect();
        for (i, row) in rows {
            // Positions are 1-based; the joins on unique keys give each at most one row.
            let slot = usize::try_from(i - 1)
                .ok()
                .and_then(|i| found.get_mut(i))
                .ok_or_else(|| StoreError::Internal(format!("batched lookup row for key {i}")))?;
            *slot = Some(row);
        }
        Ok(found)
    }
}

const CHANGE_HEAD_SQL: &str =
    "SELECT revision, min_revision, kind, owner_id FROM collections WHERE id = $1";

/// The home's members changed after R: calendars whose revision is after R (created, changed
/// or with changed contents), and tombstones of deleted ones.
const HOME_CHANGES_SQL: &str = "SELECT name, revision, deleted FROM ( \
       SELECT name, revision, CAST(0 AS BIGINT) AS deleted FROM collections \
         WHERE owner_id = $1 AND kind = 'calendar' AND revision > $2 \
       UNION ALL \
       SELECT name, revision, deleted FROM changes \
         WHERE collection_id = $3 AND revision > $2 AND deleted = 1 AND $4 = 1 \
     ) AS members ORDER BY revision LIMIT $5";

const CALENDAR_CHANGES_SQL: &str =
    "SELECT name, revision, deleted FROM changes WHERE collection_id = $1 AND revision > $2 \
     AND ($3 = 1 OR deleted = 0) ORDER BY revision LIMIT $4";

/// A collection's sync state, read with its changes.
struct ChangeHead {
    revision: i64,
    min_revision: i64,
    home: bool,
    owner_id: i64,
}

impl ChangeHead {
    /// A token at `since` must lie within the kept change log (`InvalidSyncToken` if not).
    fn check(&self, since: Option<i64>) -> Result<()> {
        match since {
            Some(r) if r < self.min_revision || r > self.revision => {
                Err(StoreError::InvalidSyncToken)
            }
            _ => Ok(()),
        }
    }

    fn changes_sql(&self) -> &'static str {
        if self.home {
            HOME_CHANGES_SQL
        } else {
            CALENDAR_CHANGES_SQL
        }
    }
}

fn change_head_row(r: &dyn Cols) -> Result<ChangeHead> {
    Ok(ChangeHead {
        revision: r.int("revision")?,
        min_revision: r.int("min_revision")?,
        home: r.text("kind")? == CollectionKind::Home.as_str(),
        owner_id: r.int("owner_id")?,
    })
}

fn change_params(
    head: &ChangeHead,
    collection_id: i64,
    since: Option<i64>,
    fetch: i64,
) -> Vec<Param<'static>> {
    let after = since.unwrap_or(0);
    let incremental = since.is_some() as i64;
    if head.home {
        vec![
            Param::Int(head.owner_id),
            Param::Int(after),
            Param::Int(collection_id),
            Param::Int(incremental),
            Param::Int(fetch),
        ]
    } else {
        vec![
            Param::Int(collection_id),
            Param::Int(after),
            Param::Int(incremental),
            Param::Int(fetch),
        ]
    }
}

/// (name, revision, deleted) of one change row.
fn change_row(r: &dyn Cols) -> Result<(String, i64, bool)> {
    Ok((r.text("name")?, r.int("revision")?, r.int("deleted")? != 0))
}

fn change_set(
    head: &ChangeHead,
    rows: Vec<(String, i64, bool)>,
    since: Option<i64>,
    limit: Option<u64>,
) -> Result<ChangeSet> {
    let mut changes: Vec<Change> = Vec::with_capacity(rows.len());
    let mut last = since.unwrap_or(0);
    let truncated = limit.is_some_and(|l| rows.len() as u64 > l);
    for (name, revision, deleted) in rows
        .into_iter()
        .take(limit.map_or(usize::MAX, |l| l as usize))
    {
        // A calendar deleted and re-created since R appears twice; the later wins.
        // (Only the home can repeat a name, and it has few members.)
        if head.home {
            changes.retain(|c| c.name != name);
        }
        changes.push(Change { name, deleted });
        last = revision;
    }
    Ok(ChangeSet {
        revision: if truncated { last } else { head.revision },
        changes,
        truncated,
    })
}

macro_rules! impl_store {
    ($store:ident, $db:ty, $for_update:literal) => {
        type Tx = Transaction<'static, $db>;
        type DbRow = <$db as sqlx::Database>::Row;

        impl $store {
            /// One read statement: on the calling thread where the store can (SQLite files,
            /// see `sqlite_read`), on warm read connections on Postgres (`pg_read`), else
            /// through sqlx's pool.
            async fn read<T>(
                &self,
                sql: &str,
                params: &[Param<'_>],
                f: fn(&dyn Cols) -> Result<T>,
            ) -> Result<Vec<T>> {
                if let Some(fast) = self.fast_reads() {
                    return fast.rows(sql, params, f);
                }
                if let Some(pg) = self.pg_reads() {
                    return pg.rows(sql, params, f).await;
                }
                let q = bind_params!(sqlx::query(sql), params, Self::bind_ints, Self::bind_texts);
                let rows = q.fetch_all(self.read_pool()).await?;
                rows.iter().map(|r| f(r)).collect()
            }

            /// `SELECT cols` of the named objects of a collection that exist, in chunks of
            /// `IN_CHUNK` names.
            async fn read_named<T>(
                &self,
                cols: &str,
                collection_id: i64,
                names: &[String],
                f: fn(&dyn Cols) -> Result<T>,
            ) -> Result<Vec<T>> {
                let mut out = Vec::with_capacity(names.len());
                for chunk in names.chunks(IN_CHUNK) {
                    let sql = format!(
                        "SELECT {cols} FROM objects WHERE collection_id = $1 AND {}",
                        Self::list_sql("name", 2, chunk.len())
                    );
                    let params = [Param::Int(collection_id), Param::Texts(chunk)];
                    out.extend(self.read(&sql, &params, f).await?);
                }
                Ok(out)
            }
        }


        fn app_password_row(r: &DbRow) -> std::result::Result<AppPassword, sqlx::Error> {
            Ok(AppPassword {
                id: r.try_get("id")?,
                principal_id: r.try_get("principal_id")?,
                label: r.try_get("label")?,
                hash: r.try_get("hash")?,
                created_at: r.try_get("created_at")?,
                last_used_at: r.try_get("last_used_at")?,
            })
        }


        fn feed_row(r: &DbRow) -> std::result::Result<Feed, sqlx::Error> {
            let mode: String = r.try_get("mode")?;
            Ok(Feed {
                id: r.try_get("id")?,
                collection_id: r.try_get("collection_id")?,
                owner_id: r.try_get("owner_id")?,
                calendar: r.try_get("calendar")?,
                token_hint: r.try_get("token_hint")?,
                settings: FeedSettings {
                    mode: FeedMode::parse(&mode).unwrap_or(FeedMode::Busy),
                    window_days: r.try_get("window_days")?,
                    include_alarms: r.try_get::<i64, _>("include_alarms")? != 0,
                    include_emails: r.try_get::<i64, _>("include_emails")? != 0,
                },
                created_at: r.try_get("created_at")?,
                last_used_at: r.try_get("last_used_at")?,
            })
        }

        fn subscription_row(r: &DbRow) -> std::result::Result<Subscription, sqlx::Error> {
            Ok(Subscription {
                collection_id: r.try_get("collection_id")?,
                owner: r.try_get("owner")?,
                calendar: r.try_get("calendar")?,
                url: r.try_get("url")?,
                refresh_seconds: r.try_get("refresh_seconds")?,
                etag: r.try_get("etag")?,
                last_modified: r.try_get("last_modified")?,
                next_due_at: r.try_get("next_due_at")?,
                last_attempt_at: r.try_get("last_attempt_at")?,
                last_success_at: r.try_get("last_success_at")?,
                last_status: r.try_get("last_status")?,
                last_error: r.try_get("last_error")?,
                last_error_at: r.try_get("last_error_at")?,
            })
        }



        /// Takes the owner's next revision (a counter on the home, which is also the home's
        /// CTag and sync token), makes it the revision of `collection_id`, and records `name`
        /// as changed there. `bytes` adjusts the quota counter.
        ///
        /// One counter per owner means a calendar's revision says when it last changed in the
        /// owner's order of events, so the home's sync can be read off the calendars' revisions
        /// (plus tombstones of deleted calendars) instead of rewriting one hot row per write.
        async fn change(
            tx: &mut Tx,
            home_id: i64,
            collection_id: i64,
            name: Option<&str>,
            deleted: bool,
            bytes: i64,
        ) -> Result<i64> {
            let t = now();
            let rev: i64 = sqlx::query_scalar(
                "UPDATE collections SET revision = revision + 1, used_bytes = used_bytes + $2, updated_at = $3 \
                 WHERE id = $1 RETURNING revision",
            )
            .bind(home_id)
            .bind(bytes)
            .bind(t)
            .fetch_one(&mut **tx)
            .await?;
            if collection_id != home_id {
                sqlx::query("UPDATE collections SET revision = $2, updated_at = $3 WHERE id = $1")
                    .bind(collection_id)
                    .bind(rev)
                    .bind(t)
                    .execute(&mut **tx)
                    .await?;
            }
            if let Some(name) = name {
                sqlx::query(
                    "INSERT INTO changes (collection_id, name, revision, deleted) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (collection_id, name) DO UPDATE SET revision = excluded.revision, deleted = excluded.deleted",
                )
                .bind(collection_id)
                .bind(name)
                .bind(rev)
                .bind(deleted as i64)
                .execute(&mut **tx)
                .await?;
            }
            Ok(rev)
        }

        /// Locks a calendar row (Postgres) and returns its owner.
        async fn lock_calendar(tx: &mut Tx, collection_id: i64) -> Result<i64> {
            let row = sqlx::query(concat!(
                "SELECT owner_id FROM collections WHERE id = $1 AND kind = 'calendar'",
                $for_update
            ))
            .bind(collection_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            Ok(row.try_get(0)?)
        }

        /// Locks the owner's home and returns (id, used bytes).
        async fn lock_home(tx: &mut Tx, owner_id: i64) -> Result<(i64, i64)> {
            let row = sqlx::query(concat!(
                "SELECT id, used_bytes FROM collections WHERE owner_id = $1 AND kind = 'home'",
                $for_update
            ))
            .bind(owner_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            Ok((row.try_get(0)?, row.try_get(1)?))
        }

        async fn insert_dead(tx: &mut Tx, collection_id: i64, object: &str, p: &DeadProp) -> Result<()> {
            sqlx::query(
                "INSERT INTO dead_props (collection_id, object_name, ns, local, xml) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (collection_id, object_name, ns, local) DO UPDATE SET xml = excluded.xml",
            )
            .bind(collection_id)
            .bind(object)
            .bind(&p.ns)
            .bind(&p.local)
            .bind(&p.xml)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        async fn insert_calendar(tx: &mut Tx, owner_id: i64, home_id: i64, new: &NewCalendar) -> Result<i64> {
            let t = now();
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO collections (owner_id, name, kind, displayname, description, timezone, components, created_at, updated_at) \
                 VALUES ($1, $2, 'calendar', $3, $4, $5, $6, $7, $7) RETURNING id",
            )
            .bind(owner_id)
            .bind(&new.name)
            .bind(&new.displayname)
            .bind(&new.description)
            .bind(&new.timezone)
            .bind(components_to_text(&new.components))
            .bind(t)
            .fetch_one(&mut **tx)
            .await
            .map_err(|e| if is_unique_violation(&e) { StoreError::AlreadyExists } else { e.into() })?;
            for p in &new.dead_props {
                insert_dead(tx, id, "", p).await?;
            }
            change(tx, home_id, id, None, false, 0).await?;
            Ok(id)
        }

        async fn object_etag(tx: &mut Tx, collection_id: i64, name: &str) -> Result<Option<(String, i64)>> {
            let row = sqlx::query("SELECT etag, size FROM objects WHERE collection_id = $1 AND name = $2")
                .bind(collection_id)
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?;
            Ok(match row {
                Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
                None => None,
            })
        }

        /// Replaces the stored occurrences of one object with those of its new index; each row
        /// carries the object's name and ETag (see `Store::occurrence_members`).
        async fn write_occurrences(tx: &mut Tx, key: OccurrenceKey<'_>, ti: Option<&TimeIndex>) -> Result<()> {
            let OccurrenceKey { collection_id, object_id, name, etag } = key;
            sqlx::query("DELETE FROM occurrences WHERE object_id = $1")
                .bind(object_id)
                .execute(&mut **tx)
                .await?;
            let Some(occ) = ti.and_then(|t| t.occurrences.as_ref()) else { return Ok(()) };
            let floating = ti.is_some_and(|t| t.floating) as i64;
            for chunk in occ.rows.chunks(OCCURRENCE_ROWS) {
                let mut sql = String::from(
                    "INSERT INTO occurrences (object_id, collection_id, span_level, start_at, end_at, busy, floating, occ_until, \
                     name, etag) VALUES ",
                );
                for i in 0..chunk.len() {
                    let b = i * 8;
                    if i > 0 {
                        sql.push(',');
                    }
                    // The name and ETag are the same in every row: bound once, as $1 and $2.
                    sql.push_str(&format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, $1, $2)",
                        b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9, b + 10
                    ));
                }
                let mut q = sqlx::query(&sql).bind(name).bind(etag);
                for o in chunk {
                    q = q
                        .bind(object_id)
                        .bind(collection_id)
                        .bind(span_level(o.end - o.start))
                        .bind(o.start)
                        .bind(o.end)
                        .bind(busy_code(o.busy))
                        .bind(floating)
                        .bind(occ.until);
                }
                q.execute(&mut **tx).await?;
            }
            Ok(())
        }

        async fn uid_holder(tx: &mut Tx, collection_id: i64, uid: &str, except: &[&str]) -> Result<Option<String>> {
            let names: Vec<String> = sqlx::query_scalar("SELECT name FROM objects WHERE collection_id = $1 AND uid = $2")
                .bind(collection_id)
                .bind(uid)
                .fetch_all(&mut **tx)
                .await?;
            Ok(names.into_iter().find(|n| !except.contains(&n.as_str())))
        }

        #[async_trait]
        impl Store for $store {
            fn instance_id(&self) -> &str {
                &self.instance
            }

            fn backend_name(&self) -> &'static str {
                <$db as sqlx::Database>::NAME
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(self.read_pool()).await?;
                Ok(())
            }

            async fn create_principal(
                &self,
                name: &str,
                email: Option<&str>,
                password_hash: &str,
                first_calendar: &NewCalendar,
            ) -> Result<Principal> {
                let mut tx = self.begin_write().await?;
                let t = now();
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO principals (name, email, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(name)
                .bind(email)
                .bind(password_hash)
                .bind(t)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| if is_unique_violation(&e) { StoreError::AlreadyExists } else { e.into() })?;
                let home_id: i64 = sqlx::query_scalar(
                    "INSERT INTO collections (owner_id, name, kind, created_at, updated_at) VALUES ($1, '', 'home', $2, $2) RETURNING id",
                )
                .bind(id)
                .bind(t)
                .fetch_one(&mut *tx)
                .await?;
                insert_calendar(&mut tx, id, home_id, first_calendar).await?;
                tx.commit().await?;
                Ok(Principal {
                    id,
                    name: name.to_owned(),
                    email: email.map(str::to_owned),
                    password_hash: password_hash.to_owned(),
                    credentials_version: 0,
                    created_at: t,
                })
            }

            async fn principal_by_name(&self, name: &str) -> Result<Option<Principal>> {
                let sql = format!("SELECT {PRINCIPAL_COLS} FROM principals WHERE name = $1");
                Ok(self.read(&sql, &[Param::Text(name)], principal_row).await?.pop())
            }

            async fn principals(&self) -> Result<Vec<Principal>> {
                let rows = sqlx::query(&format!("SELECT {PRINCIPAL_COLS} FROM principals ORDER BY name"))
                    .fetch_all(self.read_pool())
                    .await?;
                Ok(rows.iter().map(|r| principal_row(r)).collect::<std::result::Result<_, _>>()?)
            }

            async fn principal_count(&self) -> Result<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM principals").fetch_one(self.read_pool()).await?)
            }

            async fn delete_principal(&self, name: &str) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let n = sqlx::query("DELETE FROM principals WHERE name = $1").bind(name).execute(&mut *tx).await?;
                if n.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn set_password(&self, name: &str, password_hash: &str) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE principals SET password_hash = $2, credentials_version = credentials_version + 1 WHERE name = $1",
                )
                .bind(name)
                .bind(password_hash)
                .execute(&mut *tx)
                .await?;
                if n.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn set_email(&self, name: &str, email: Option<&str>) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let n = sqlx::query("UPDATE principals SET email = $2 WHERE name = $1")
                    .bind(name)
                    .bind(email)
                    .execute(&mut *tx)
                    .await?;
                if n.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn add_app_password(&self, principal_id: i64, label: &str, lookup: &str, hash: &str) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO app_passwords (principal_id, label, lookup, hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(principal_id)
                .bind(label)
                .bind(lookup)
                .bind(hash)
                .bind(now())
                .execute(&mut *tx)
                .await
                .map_err(|e| if is_unique_violation(&e) { StoreError::AlreadyExists } else { e.into() })?;
                tx.commit().await?;
                Ok(())
            }

            async fn app_passwords(&self, principal_id: i64) -> Result<Vec<AppPassword>> {
                let rows = sqlx::query(&format!(
                    "SELECT {APP_PASSWORD_COLS} FROM app_passwords WHERE principal_id = $1 ORDER BY label"
                ))
                .bind(principal_id)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.iter().map(app_password_row).collect::<std::result::Result<_, _>>()?)
            }

            async fn revoke_app_password(&self, principal_id: i64, label: &str) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let n = sqlx::query("DELETE FROM app_passwords WHERE principal_id = $1 AND label = $2")
                    .bind(principal_id)
                    .bind(label)
                    .execute(&mut *tx)
                    .await?;
                if n.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                sqlx::query("UPDATE principals SET credentials_version = credentials_version + 1 WHERE id = $1")
                    .bind(principal_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn app_password_by_lookup(&self, lookup: &str) -> Result<Option<AppPassword>> {
                let row = sqlx::query(&format!("SELECT {APP_PASSWORD_COLS} FROM app_passwords WHERE lookup = $1"))
                    .bind(lookup)
                    .fetch_optional(self.read_pool())
                    .await?;
                Ok(row.as_ref().map(app_password_row).transpose()?)
            }

            async fn touch_app_password(&self, id: i64) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query("UPDATE app_passwords SET last_used_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn home(&self, owner_id: i64) -> Result<Collection> {
                let sql = format!("SELECT {COLLECTION_COLS} FROM collections WHERE owner_id = $1 AND kind = 'home'");
                self.read(&sql, &[Param::Int(owner_id)], collection_row).await?.pop().ok_or(StoreError::NotFound)
            }

            async fn calendar(&self, owner_id: i64, name: &str) -> Result<Option<Collection>> {
                let sql = format!(
                    "SELECT {COLLECTION_COLS} FROM collections WHERE owner_id = $1 AND name = $2 AND kind = 'calendar'"
                );
                Ok(self.read(&sql, &[Param::Int(owner_id), Param::Text(name)], collection_row).await?.pop())
            }

            async fn calendars(&self, owner_id: i64) -> Result<Vec<Collection>> {
                let sql = format!(
                    "SELECT {COLLECTION_COLS} FROM collections WHERE owner_id = $1 AND kind = 'calendar' ORDER BY name"
                );
                self.read(&sql, &[Param::Int(owner_id)], collection_row).await
            }

            async fn create_calendar(&self, owner_id: i64, new: &NewCalendar) -> Result<Collection> {
                let mut tx = self.begin_write().await?;
                let (home_id, _) = lock_home(&mut tx, owner_id).await?;
                let id = insert_calendar(&mut tx, owner_id, home_id, new).await?;
                let row = sqlx::query(&format!("SELECT {COLLECTION_COLS} FROM collections WHERE id = $1"))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let c = collection_row(&row)?;
                tx.commit().await?;
                Ok(c)
            }

            async fn delete_calendar(&self, owner_id: i64, name: &str) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let id: i64 = sqlx::query_scalar(concat!(
                    "SELECT id FROM collections WHERE owner_id = $1 AND name = $2 AND kind = 'calendar'",
                    $for_update
                ))
                .bind(owner_id)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
                let (home_id, _) = lock_home(&mut tx, owner_id).await?;
                // CAST: Postgres sums BIGINT as NUMERIC.
                let bytes: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM objects WHERE collection_id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM collections WHERE id = $1").bind(id).execute(&mut *tx).await?;
                // The home keeps a tombstone so its sync reports the deletion.
                change(&mut tx, home_id, home_id, Some(name), true, -bytes).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn patch_collection(&self, collection_id: i64, patch: &CollectionPatch) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let row = sqlx::query(concat!("SELECT owner_id, kind FROM collections WHERE id = $1", $for_update))
                    .bind(collection_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                let owner_id: i64 = row.try_get(0)?;
                let kind: String = row.try_get(1)?;
                for (prop, value) in &patch.set_live {
                    let sql = match prop {
                        LiveProp::DisplayName => "UPDATE collections SET displayname = $2 WHERE id = $1",
                        LiveProp::Description => "UPDATE collections SET description = $2 WHERE id = $1",
                        LiveProp::Timezone => "UPDATE collections SET timezone = $2 WHERE id = $1",
                    };
                    sqlx::query(sql).bind(collection_id).bind(value).execute(&mut *tx).await?;
                }
                for p in &patch.set_dead {
                    insert_dead(&mut tx, collection_id, "", p).await?;
                }
                for (ns, local) in &patch.remove_dead {
                    sqlx::query(
                        "DELETE FROM dead_props WHERE collection_id = $1 AND object_name = '' AND ns = $2 AND local = $3",
                    )
                    .bind(collection_id)
                    .bind(ns)
                    .bind(local)
                    .execute(&mut *tx)
                    .await?;
                }
                // A calendar's properties are part of what the home's sync reports.
                if kind == CollectionKind::Calendar.as_str() {
                    let (home_id, _) = lock_home(&mut tx, owner_id).await?;
                    change(&mut tx, home_id, collection_id, None, false, 0).await?;
                } else {
                    sqlx::query("UPDATE collections SET updated_at = $2 WHERE id = $1")
                        .bind(collection_id)
                        .bind(now())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn dead_props(&self, collection_id: i64, object_name: &str) -> Result<Vec<DeadProp>> {
                self.read(
                    "SELECT ns, local, xml FROM dead_props WHERE collection_id = $1 AND object_name = $2 ORDER BY ns, local",
                    &[Param::Int(collection_id), Param::Text(object_name)],
                    dead_prop_row,
                )
                .await
            }

            async fn object(&self, collection_id: i64, name: &str) -> Result<Option<StoredObject>> {
                let sql = format!("SELECT {OBJECT_META_COLS}, ics FROM objects WHERE collection_id = $1 AND name = $2");
                Ok(self.read(&sql, &[Param::Int(collection_id), Param::Text(name)], object_row).await?.pop())
            }

            async fn object_metas(&self, collection_id: i64) -> Result<Vec<ObjectMeta>> {
                let sql = format!("SELECT {OBJECT_META_COLS} FROM objects WHERE collection_id = $1 ORDER BY name");
                self.read(&sql, &[Param::Int(collection_id)], meta_row).await
            }

            async fn object_metas_after(&self, collection_id: i64, after: &str, limit: i64) -> Result<Vec<ObjectMeta>> {
                let sql = format!(
                    "SELECT {OBJECT_META_COLS} FROM objects WHERE collection_id = $1 AND name > $2 ORDER BY name LIMIT $3"
                );
                self.read(&sql, &[Param::Int(collection_id), Param::Text(after), Param::Int(limit)], meta_row).await
            }

            async fn candidates(&self, collection_id: i64, c: &Candidates) -> Result<Vec<StoredObject>> {
                let sql = format!(
                    "SELECT {OBJECT_META_COLS}, ics FROM objects WHERE collection_id = $1 \
                     AND ($2 IS NULL OR component = $2) \
                     AND ($3 IS NULL OR last_end IS NULL OR last_end >= $3) \
                     AND ($4 IS NULL OR first_start IS NULL OR first_start <= $4) ORDER BY name"
                );
                let params = [
                    Param::Int(collection_id),
                    Param::OptText(c.component.map(ComponentKind::as_str)),
                    Param::OptInt(c.from),
                    Param::OptInt(c.to),
                ];
                self.read(&sql, &params, object_row).await
            }

            async fn unindexed_candidates(&self, collection_id: i64, c: &Candidates) -> Result<Vec<StoredObject>> {
                // occ_until < to: one range of objects_unindexed; the rest only narrows further.
                let sql = format!(
                    "SELECT {OBJECT_META_COLS}, ics FROM objects WHERE collection_id = $1 AND occ_until < $2 \
                     AND ($3 IS NULL OR component = $3) \
                     AND ($4 IS NULL OR last_end IS NULL OR last_end >= $4) \
                     AND (first_start IS NULL OR first_start <= $2) ORDER BY name"
                );
                let params = [
                    Param::Int(collection_id),
                    Param::Int(c.to.unwrap_or(i64::MAX)),
                    Param::OptText(c.component.map(ComponentKind::as_str)),
                    Param::OptInt(c.from),
                ];
                self.read(&sql, &params, object_row).await
            }

            async fn occurrences(&self, collection_id: i64, from: i64, to: i64, slack: i64) -> Result<Vec<OccurrenceRow>> {
                let params = occurrence_params(collection_id, from, to, slack);
                self.read(OCCURRENCES_SQL.as_str(), &params, occurrence_row).await
            }

            async fn occurrence_members(&self, collection_id: i64, from: i64, to: i64, slack: i64) -> Result<Vec<OccurrenceMember>> {
                let params = occurrence_params(collection_id, from, to, slack);
                self.read(OCCURRENCE_MEMBERS_SQL.as_str(), &params, occurrence_member).await
            }

            async fn objects_by_ids(&self, collection_id: i64, ids: &[i64], with_body: bool) -> Result<Vec<StoredObject>> {
                let (body, decode): (&str, fn(&dyn Cols) -> Result<StoredObject>) =
                    if with_body { (", ics", object_row) } else { ("", meta_only_row) };
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(IN_CHUNK) {
                    let sql = format!(
                        // `+collection_id` keeps SQLite (which has no statistics to go by) on the
                        // primary key for the ids instead of scanning the collection's index.
                        "SELECT {OBJECT_META_COLS}{body} FROM objects WHERE {} AND +collection_id = $1 ORDER BY name",
                        Self::list_sql("id", 2, chunk.len())
                    );
                    let params = [Param::Int(collection_id), Param::Ints(chunk)];
                    out.extend(self.read(&sql, &params, decode).await?);
                }
                Ok(out)
            }

            async fn stale_objects(&self, limit: i64) -> Result<Vec<(i64, String, String)>> {
                let rows = sqlx::query(
                    "SELECT collection_id, name, ics FROM objects WHERE index_version < $1 ORDER BY id LIMIT $2",
                )
                .bind(INDEX_VERSION)
                .bind(limit)
                .fetch_all(self.read_pool())
                .await?;
                rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
            }

            async fn set_time_indexes(&self, items: &[Reindexed]) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let default = TimeIndex::default();
                for item in items {
                    let ti = item.index.as_ref();
                    let t = ti.unwrap_or(&default);
                    let q = sqlx::query_as(
                        "UPDATE objects SET index_version = $3, first_start = $4, last_end = $5, recurring = $6, \
                         floating = $7, all_day = $8, transp = $9, status = $10, class = $11, occ_until = $12 \
                         WHERE collection_id = $1 AND name = $2 AND index_version < $3 RETURNING id, etag",
                    )
                    .bind(item.collection_id)
                    .bind(&item.name);
                    let row: Option<(i64, String)> = bind_time_index!(q, t, ti.is_some())
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some((id, etag)) = row {
                        let key = OccurrenceKey { collection_id: item.collection_id, object_id: id, name: &item.name, etag: &etag };
                        write_occurrences(&mut tx, key, ti).await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn objects_by_names(&self, collection_id: i64, names: &[String]) -> Result<Vec<StoredObject>> {
                self.read_named(&format!("{OBJECT_META_COLS}, ics"), collection_id, names, object_row).await
            }

            async fn object_texts_by_names(&self, collection_id: i64, names: &[String]) -> Result<Vec<ObjectText>> {
                self.read_named("name, etag, ics", collection_id, names, object_text_row).await
            }

            async fn object_metas_named(&self, collection_id: i64, names: &[String]) -> Result<Vec<ObjectMeta>> {
                self.read_named(OBJECT_META_COLS, collection_id, names, meta_row).await
            }

            async fn put_object(
                &self,
                collection_id: i64,
                name: &str,
                obj: &CalendarObject,
                pre: &Precondition,
                quota: i64,
            ) -> Result<PutOutcome> {
                let etag = etag_of(obj.raw.as_bytes());
                let size = obj.raw.len() as i64;
                let mut tx = self.begin_write().await?;
                let owner_id = lock_calendar(&mut tx, collection_id).await?;
                let existing = object_etag(&mut tx, collection_id, name).await?;
                if !pre.holds(existing.as_ref().map(|(e, _)| e.as_str())) {
                    return Err(StoreError::PreconditionFailed);
                }
                if let Some(holder) = uid_holder(&mut tx, collection_id, &obj.index.uid, &[name]).await? {
                    return Err(StoreError::UidConflict(holder));
                }
                if existing.as_ref().is_some_and(|(e, _)| *e == etag) {
                    // Same bytes as stored: nothing changes, so no revision is spent.
                    return Ok(PutOutcome { created: false });
                }
                let (home_id, used) = lock_home(&mut tx, owner_id).await?;
                let delta = size - existing.as_ref().map_or(0, |(_, s)| *s);
                if delta > 0 && used + delta > quota {
                    return Err(StoreError::QuotaExceeded);
                }
                let t = now();
                // One statement for create and replace; created_at stays what it was.
                let id: i64 = bind_object_row!(sqlx::query_scalar(OBJECT_UPSERT), collection_id, name, obj, &etag, t)
                    .fetch_one(&mut *tx)
                    .await?;
                let key = OccurrenceKey { collection_id, object_id: id, name, etag: &etag };
                write_occurrences(&mut tx, key, Some(&obj.index.time)).await?;
                change(&mut tx, home_id, collection_id, Some(name), false, delta).await?;
                tx.commit().await?;
                Ok(PutOutcome { created: existing.is_none() })
            }

            async fn import_objects(&self, collection_id: i64, objs: &[(String, CalendarObject)], quota: i64) -> Result<()> {
                if objs.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_write().await?;
                let owner_id = lock_calendar(&mut tx, collection_id).await?;
                let (home_id, used) = lock_home(&mut tx, owner_id).await?;
                let total: i64 = objs.iter().map(|(_, o)| o.raw.len() as i64).sum();
                if used + total > quota {
                    return Err(StoreError::QuotaExceeded);
                }
                let t = now();
                // One revision per object, reserved at once, so sync pages stay exact.
                let n = objs.len() as i64;
                let last: i64 = sqlx::query_scalar(
                    "UPDATE collections SET revision = revision + $2, used_bytes = used_bytes + $3, updated_at = $4 \
                     WHERE id = $1 RETURNING revision",
                )
                .bind(home_id)
                .bind(n)
                .bind(total)
                .bind(t)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query("UPDATE collections SET revision = $2, updated_at = $3 WHERE id = $1")
                    .bind(collection_id)
                    .bind(last)
                    .bind(t)
                    .execute(&mut *tx)
                    .await?;
                let first = last - n + 1;
                const ROWS: usize = 200;
                for (chunk_no, chunk) in objs.chunks(ROWS).enumerate() {
                    let mut sql = String::from(
                        "INSERT INTO objects (collection_id, name, uid, etag, ics, size, component, created_at, modified_at, \
                         index_version, first_start, last_end, recurring, floating, all_day, transp, status, class, occ_until) VALUES ",
                    );
                    let mut changes = String::from("INSERT INTO changes (collection_id, name, revision, deleted) VALUES ");
                    for i in 0..chunk.len() {
                        let b = i * 18;
                        if i > 0 {
                            sql.push(',');
                            changes.push(',');
                        }
                        sql.push_str(&format!(
                            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                            b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 8, b + 9, b + 10, b + 11, b + 12, b + 13,
                            b + 14, b + 15, b + 16, b + 17, b + 18
                        ));
                        changes.push_str(&format!("(${}, ${}, ${}, 0)", i * 3 + 1, i * 3 + 2, i * 3 + 3));
                    }
                    changes.push_str(
                        " ON CONFLICT (collection_id, name) DO UPDATE SET revision = excluded.revision, deleted = excluded.deleted",
                    );
                    sql.push_str(" RETURNING id, name, etag");
                    let mut q = sqlx::query(&sql);
                    let mut cq = sqlx::query(&changes);
                    for (i, (name, obj)) in chunk.iter().enumerate() {
                        q = bind_object_row!(q, collection_id, name, obj, etag_of(obj.raw.as_bytes()), t);
                        cq = cq.bind(collection_id).bind(name).bind(first + (chunk_no * ROWS + i) as i64);
                    }
                    let ids = q
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(|e| if is_unique_violation(&e) { StoreError::AlreadyExists } else { StoreError::from(e) })?;
                    cq.execute(&mut *tx).await?;
                    let by_name: std::collections::HashMap<&str, &CalendarObject> =
                        chunk.iter().map(|(n, o)| (n.as_str(), o)).collect();
                    for r in &ids {
                        let name: String = r.try_get(1)?;
                        let etag: String = r.try_get(2)?;
                        if let Some(obj) = by_name.get(name.as_str()) {
                            let key = OccurrenceKey { collection_id, object_id: r.try_get(0)?, name: &name, etag: &etag };
                            write_occurrences(&mut tx, key, Some(&obj.index.time)).await?;
                        }
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn delete_object(&self, collection_id: i64, name: &str, pre: &Precondition) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let owner_id = lock_calendar(&mut tx, collection_id).await?;
                let (etag, size) = object_etag(&mut tx, collection_id, name).await?.ok_or(StoreError::NotFound)?;
                if !pre.holds(Some(&etag)) {
                    return Err(StoreError::PreconditionFailed);
                }
                let (home_id, _) = lock_home(&mut tx, owner_id).await?;
                sqlx::query("DELETE FROM objects WHERE collection_id = $1 AND name = $2")
                    .bind(collection_id)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                change(&mut tx, home_id, collection_id, Some(name), true, -size).await?;
                tx.commit().await?;
                Ok(())
            }

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
            ) -> Result<PutOutcome> {
                let mut tx = self.begin_write().await?;
                // Lock in id order so two opposite transfers cannot deadlock.
                let (first, second) = if src_collection <= dst_collection {
                    (src_collection, dst_collection)
                } else {
                    (dst_collection, src_collection)
                };
                let first_owner = lock_calendar(&mut tx, first).await?;
                let second_owner = if second != first { lock_calendar(&mut tx, second).await? } else { first_owner };
                // Transfers stay within one owner's calendars.
                if first_owner != second_owner {
                    return Err(StoreError::NotFound);
                }
                let src = sqlx::query("SELECT etag, size, uid FROM objects WHERE collection_id = $1 AND name = $2")
                    .bind(src_collection)
                    .bind(src_name)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                let src_etag: String = src.try_get(0)?;
                let src_size: i64 = src.try_get(1)?;
                let src_uid: String = src.try_get(2)?;
                if !pre.holds(Some(&src_etag)) {
                    return Err(StoreError::PreconditionFailed);
                }
                let dst = object_etag(&mut tx, dst_collection, dst_name).await?;
                if dst.is_some() && !overwrite {
                    return Err(StoreError::PreconditionFailed);
                }
                let mut except = vec![dst_name];
                if remove_source && src_collection == dst_collection {
                    except.push(src_name);
                }
                if let Some(holder) = uid_holder(&mut tx, dst_collection, &src_uid, &except).await? {
                    return Err(StoreError::UidConflict(holder));
                }
                let (home_id, used) = lock_home(&mut tx, first_owner).await?;
                let dst_size = dst.as_ref().map_or(0, |(_, s)| *s);
                let delta = if remove_source { -dst_size } else { src_size - dst_size };
                if delta > 0 && used + delta > quota {
                    return Err(StoreError::QuotaExceeded);
                }
                let t = now();
                sqlx::query("DELETE FROM objects WHERE collection_id = $1 AND name = $2")
                    .bind(dst_collection)
                    .bind(dst_name)
                    .execute(&mut *tx)
                    .await?;
                if remove_source {
                    // MOVE relocates the row itself, so the UID is never held twice.
                    sqlx::query(
                        "UPDATE objects SET collection_id = $1, name = $2, modified_at = $3 \
                         WHERE collection_id = $4 AND name = $5",
                    )
                    .bind(dst_collection)
                    .bind(dst_name)
                    .bind(t)
                    .bind(src_collection)
                    .bind(src_name)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE occurrences SET collection_id = $1, name = $2 \
                         WHERE object_id = (SELECT id FROM objects WHERE collection_id = $1 AND name = $2)",
                    )
                    .bind(dst_collection)
                    .bind(dst_name)
                    .execute(&mut *tx)
                    .await?;
                    change(&mut tx, home_id, src_collection, Some(src_name), true, 0).await?;
                } else {
                    sqlx::query(
                        "INSERT INTO objects (collection_id, name, uid, etag, ics, size, component, index_version, first_start, last_end, \
                         recurring, floating, all_day, transp, status, class, occ_until, created_at, modified_at) \
                         SELECT $1, $2, uid, etag, ics, size, component, index_version, first_start, last_end, \
                         recurring, floating, all_day, transp, status, class, occ_until, $3, $3 \
                         FROM objects WHERE collection_id = $4 AND name = $5",
                    )
                    .bind(dst_collection)
                    .bind(dst_name)
                    .bind(t)
                    .bind(src_collection)
                    .bind(src_name)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO occurrences (object_id, collection_id, span_level, start_at, end_at, busy, floating, occ_until, \
                         name, etag) \
                         SELECT (SELECT id FROM objects WHERE collection_id = $1 AND name = $2), $1, \
                                span_level, start_at, end_at, busy, floating, occ_until, $2, etag \
                         FROM occurrences WHERE object_id = (SELECT id FROM objects WHERE collection_id = $3 AND name = $4)",
                    )
                    .bind(dst_collection)
                    .bind(dst_name)
                    .bind(src_collection)
                    .bind(src_name)
                    .execute(&mut *tx)
                    .await?;
                }
                change(&mut tx, home_id, dst_collection, Some(dst_name), false, delta).await?;
                tx.commit().await?;
                Ok(PutOutcome { created: dst.is_none() })
            }

            async fn replace_objects(&self, collection_id: i64, objs: &[(String, CalendarObject)], quota: i64) -> Result<ReplaceStats> {
                let mut tx = self.begin_write().await?;
                let owner_id = lock_calendar(&mut tx, collection_id).await?;
                let rows = sqlx::query("SELECT name, etag, size FROM objects WHERE collection_id = $1")
                    .bind(collection_id)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut existing = std::collections::HashMap::with_capacity(rows.len());
                for r in &rows {
                    let name: String = r.try_get(0)?;
                    existing.insert(name, (r.try_get::<String, _>(1)?, r.try_get::<i64, _>(2)?));
                }
                let mut stats = ReplaceStats::default();
                let wanted: std::collections::HashSet<&str> = objs.iter().map(|(n, _)| n.as_str()).collect();
                let (home_id, used) = lock_home(&mut tx, owner_id).await?;
                let mut delta = 0i64;
                // Deletions first, so a UID moving to another name does not collide with itself.
                for (name, (_, size)) in &existing {
                    if !wanted.contains(name.as_str()) {
                        sqlx::query("DELETE FROM objects WHERE collection_id = $1 AND name = $2")
                            .bind(collection_id)
                            .bind(name)
                            .execute(&mut *tx)
                            .await?;
                        change(&mut tx, home_id, collection_id, Some(name), true, -size).await?;
                        delta -= size;
                        stats.removed += 1;
                    }
                }
                let t = now();
                for (name, obj) in objs {
                    let etag = etag_of(obj.raw.as_bytes());
                    let size = obj.raw.len() as i64;
                    let old = existing.get(name);
                    if old.is_some_and(|(e, _)| *e == etag) {
                        stats.unchanged += 1;
                        continue;
                    }
                    let d = size - old.map_or(0, |(_, s)| *s);
                    if d > 0 && used + delta + d > quota {
                        return Err(StoreError::QuotaExceeded);
                    }
                    if let Some(holder) = uid_holder(&mut tx, collection_id, &obj.index.uid, &[name]).await? {
                        return Err(StoreError::UidConflict(holder));
                    }
                    let id: i64 = bind_object_row!(sqlx::query_scalar(OBJECT_UPSERT), collection_id, name, obj, &etag, t)
                        .fetch_one(&mut *tx)
                        .await?;
                    let key = OccurrenceKey { collection_id, object_id: id, name, etag: &etag };
                    write_occurrences(&mut tx, key, Some(&obj.index.time)).await?;
                    change(&mut tx, home_id, collection_id, Some(name), false, d).await?;
                    delta += d;
                    if old.is_some() {
                        stats.updated += 1;
                    } else {
                        stats.added += 1;
                    }
                }
                tx.commit().await?;
                Ok(stats)
            }

            async fn objects_page(&self, collection_id: i64, after: Option<&str>, from: Option<i64>, limit: i64) -> Result<Vec<StoredObject>> {
                let rows = sqlx::query(&format!(
                    "SELECT {OBJECT_META_COLS}, ics FROM objects WHERE collection_id = $1 \
                     AND ($2 IS NULL OR name > $2) \
                     AND ($3 IS NULL OR last_end IS NULL OR last_end >= $3) ORDER BY name LIMIT $4"
                ))
                .bind(collection_id)
                .bind(after)
                .bind(from)
                .bind(limit)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.iter().map(|r| object_row(r)).collect::<std::result::Result<_, _>>()?)
            }

            async fn collection_by_id(&self, id: i64) -> Result<Option<Collection>> {
                let sql = format!("SELECT {COLLECTION_COLS} FROM collections WHERE id = $1");
                Ok(self.read(&sql, &[Param::Int(id)], collection_row).await?.pop())
            }

            async fn calendar_object(&self, owner_id: i64, cal: &str, name: &str, with_body: bool) -> Result<CalendarObjectFound> {
                let (body, decode): (&str, fn(&dyn Cols) -> Result<(Collection, Option<StoredObject>)>) = if with_body {
                    (", o.ics AS o_ics", |r| calendar_object_at(r, 0, true))
                } else {
                    ("", |r| calendar_object_at(r, 0, false))
                };
                let sql = format!(
                    "SELECT {COLLECTION_JOIN_COLS}{body} FROM collections \
                     LEFT JOIN objects o ON o.collection_id = collections.id AND o.name = $3 \
                     WHERE collections.owner_id = $1 AND collections.name = $2 AND collections.kind = 'calendar'"
                );
                let params = [Param::Int(owner_id), Param::Text(cal), Param::Text(name)];
                Ok(self.read(&sql, &params, decode).await?.pop())
            }

            async fn principal_calendar_object(&self, owner: &str, cal: &str, name: &str, with_body: bool) -> Result<Option<Credentialed<CalendarObjectFound>>> {
                if let (true, Some(gets)) = (with_body, self.object_gets()) {
                    let key = ObjectPath { owner: owner.into(), calendar: cal.into(), name: name.into() };
                    return gets.get(key).await;
                }
                let (body, decode): (&str, fn(&dyn Cols) -> Result<Credentialed<CalendarObjectFound>>) = if with_body {
                    (", o.ics AS o_ics", |r| principal_object_at(r, 0, true))
                } else {
                    ("", |r| principal_object_at(r, 0, false))
                };
                let sql = format!(
                    "{PRINCIPAL_CALENDAR_SELECT}, {OBJECT_JOIN_COLS}{body} {PRINCIPAL_CALENDAR_FROM} \
                     LEFT JOIN objects o ON o.collection_id = collections.id AND o.name = $3 \
                     WHERE p.name = $1"
                );
                let params = [Param::Text(owner), Param::Text(cal), Param::Text(name)];
                Ok(self.read(&sql, &params, decode).await?.pop())
            }

            async fn principal_calendar(&self, owner: &str, cal: &str) -> Result<Option<Credentialed<Option<Collection>>>> {
                let sql = format!("{PRINCIPAL_CALENDAR_SELECT} {PRINCIPAL_CALENDAR_FROM} WHERE p.name = $1");
                let params = [Param::Text(owner), Param::Text(cal)];
                Ok(self.read(&sql, &params, principal_calendar_row).await?.pop())
            }

            async fn create_feed(&self, collection_id: i64, token_hash: &str, token_hint: &str, settings: &FeedSettings) -> Result<Feed> {
                let mut tx = self.begin_write().await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO feeds (collection_id, token_hash, token_hint, mode, window_days, include_alarms, include_emails, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(collection_id)
                .bind(token_hash)
                .bind(token_hint)
                .bind(settings.mode.as_str())
                .bind(settings.window_days)
                .bind(settings.include_alarms as i64)
                .bind(settings.include_emails as i64)
                .bind(now())
                .fetch_one(&mut *tx)
                .await?;
                let row = sqlx::query(&format!(
                    "SELECT {FEED_COLS} FROM feeds f JOIN collections c ON c.id = f.collection_id WHERE f.id = $1"
                ))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                let feed = feed_row(&row)?;
                tx.commit().await?;
                Ok(feed)
            }

            async fn feeds(&self, owner_id: i64) -> Result<Vec<Feed>> {
                let rows = sqlx::query(&format!(
                    "SELECT {FEED_COLS} FROM feeds f JOIN collections c ON c.id = f.collection_id \
                     WHERE c.owner_id = $1 ORDER BY f.id"
                ))
                .bind(owner_id)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.iter().map(feed_row).collect::<std::result::Result<_, _>>()?)
            }

            async fn feed_by_token_hash(&self, token_hash: &str) -> Result<Option<Feed>> {
                let row = sqlx::query(&format!(
                    "SELECT {FEED_COLS} FROM feeds f JOIN collections c ON c.id = f.collection_id WHERE f.token_hash = $1"
                ))
                .bind(token_hash)
                .fetch_optional(self.read_pool())
                .await?;
                Ok(row.as_ref().map(feed_row).transpose()?)
            }

            async fn revoke_feed(&self, owner_id: i64, id: i64) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "DELETE FROM feeds WHERE id = $1 AND collection_id IN (SELECT id FROM collections WHERE owner_id = $2)",
                )
                .bind(id)
                .bind(owner_id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn touch_feed(&self, id: i64, at: i64) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query("UPDATE feeds SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2 - 60)")
                    .bind(id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_subscription(&self, owner_id: i64, new: &NewCalendar, url: &str, refresh_seconds: i64) -> Result<Collection> {
                let mut tx = self.begin_write().await?;
                let (home_id, _) = lock_home(&mut tx, owner_id).await?;
                let id = insert_calendar(&mut tx, owner_id, home_id, new).await?;
                sqlx::query("INSERT INTO subscriptions (collection_id, url, refresh_seconds, next_due_at) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(url)
                    .bind(refresh_seconds)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                let row = sqlx::query(&format!("SELECT {COLLECTION_COLS} FROM collections WHERE id = $1"))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let c = collection_row(&row)?;
                tx.commit().await?;
                Ok(c)
            }

            async fn subscriptions(&self, owner_id: Option<i64>) -> Result<Vec<Subscription>> {
                let rows = sqlx::query(&format!(
                    "SELECT {SUBSCRIPTION_COLS} FROM {SUBSCRIPTION_FROM} WHERE ($1 IS NULL OR c.owner_id = $1) ORDER BY p.name, c.name"
                ))
                .bind(owner_id)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.iter().map(subscription_row).collect::<std::result::Result<_, _>>()?)
            }

            async fn claim_due_subscriptions(&self, now: i64, lease: i64) -> Result<Vec<Subscription>> {
                let mut tx = self.begin_write().await?;
                // Under READ COMMITTED a second process blocked on the same rows re-checks the
                // condition after the first commits, finds them no longer due, and skips them.
                let ids: Vec<i64> = sqlx::query_scalar(
                    "UPDATE subscriptions SET next_due_at = $2, last_attempt_at = $1 WHERE next_due_at <= $1 RETURNING collection_id",
                )
                .bind(now)
                .bind(now + lease)
                .fetch_all(&mut *tx)
                .await?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    let row = sqlx::query(&format!("SELECT {SUBSCRIPTION_COLS} FROM {SUBSCRIPTION_FROM} WHERE s.collection_id = $1"))
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                    out.push(subscription_row(&row)?);
                }
                tx.commit().await?;
                Ok(out)
            }

            async fn make_subscription_due(&self, collection_id: i64) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("UPDATE subscriptions SET next_due_at = $2 WHERE collection_id = $1")
                    .bind(collection_id)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn record_refresh(&self, collection_id: i64, at: i64, outcome: &RefreshOutcome) -> Result<()> {
                let mut tx = self.begin_write().await?;
                match outcome {
                    RefreshOutcome::Success { etag, last_modified, status } => {
                        sqlx::query(
                            "UPDATE subscriptions SET etag = $2, last_modified = $3, last_status = $4, last_success_at = $5, \
                             next_due_at = $5 + refresh_seconds WHERE collection_id = $1",
                        )
                        .bind(collection_id)
                        .bind(etag)
                        .bind(last_modified)
                        .bind(status)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    }
                    RefreshOutcome::Error(msg) => {
                        sqlx::query(
                            "UPDATE subscriptions SET last_error = $2, last_error_at = $3, next_due_at = $3 + refresh_seconds \
                             WHERE collection_id = $1",
                        )
                        .bind(collection_id)
                        .bind(msg)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn changes_since(&self, collection_id: i64, since: Option<i64>, limit: Option<u64>) -> Result<ChangeSet> {
                let fetch = limit.map_or(i64::MAX, |l| (l.min(i64::MAX as u64 - 1) + 1) as i64);
                // The collection's revision and the changes after `since`, in one snapshot: a
                // write between the two reads must not be listed under the older revision.
                if let Some(fast) = self.fast_reads() {
                    let (head, rows) = fast.snapshot(|s| {
                        let head = s.rows(CHANGE_HEAD_SQL, &[Param::Int(collection_id)], change_head_row)?
                            .pop()
                            .ok_or(StoreError::NotFound)?;
                        head.check(since)?;
                        let params = change_params(&head, collection_id, since, fetch);
                        let rows = s.rows(head.changes_sql(), &params, change_row)?;
                        Ok((head, rows))
                    })?;
                    return change_set(&head, rows, since, limit);
                }
                let mut tx = self.begin_read().await?;
                let row = sqlx::query(CHANGE_HEAD_SQL)
                    .bind(collection_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                let head = change_head_row(&row)?;
                head.check(since)?;
                let params = change_params(&head, collection_id, since, fetch);
                let q = bind_params!(sqlx::query(head.changes_sql()), &params, Self::bind_ints, Self::bind_texts);
                let rows = q.fetch_all(&mut *tx).await?.iter().map(|r| change_row(r)).collect::<Result<Vec<_>>>()?;
                tx.commit().await?;
                change_set(&head, rows, since, limit)
            }
        }
    };
}

mod sqlite_impl {
    use super::*;
    impl_store!(SqliteStore, Sqlite, "");
}

mod postgres_impl {
    use super::*;
    impl_store!(PgStore, Postgres, " FOR UPDATE");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name each column of a select list is read under: its alias, else its column.
    /// Commas inside parentheses (a subquery's) do not separate columns.
    fn names(list: &str) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut depth = 0i32;
        for c in list.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(String::new());
                    continue;
                }
                _ => {}
            }
            out.last_mut().unwrap().push(c);
        }
        out.iter()
            .map(|c| {
                let c = c.trim();
                let c = c.rsplit(" AS ").next().unwrap_or(c);
                c.rsplit('.').next().unwrap_or(c).to_owned()
            })
            .collect()
    }

    /// `PRINCIPAL_CALENDAR_SELECT`'s columns.
    fn principal_calendar_names() -> Vec<String> {
        names(PRINCIPAL_CALENDAR_SELECT.trim_start_matches("SELECT "))
    }

    /// The batched GET's columns.
    fn batch_names() -> Vec<String> {
        let end = OBJECTS_BY_PATH_SQL.find(" FROM unnest").unwrap();
        names(&OBJECTS_BY_PATH_SQL["SELECT ".len()..end])
    }

    /// The order `collection_at`, `calendar_object_at` and `credentialed_at` read in.
    #[test]
    fn column_lists_are_in_the_decoders_order() {
        let collection = [
            "id",
            "owner_id",
            "name",
            "kind",
            "displayname",
            "description",
            "timezone",
            "components",
            "revision",
            "min_revision",
            "used_bytes",
            "created_at",
            "updated_at",
            "subscribed",
        ];
        assert_eq!(names(COLLECTION_COLS), collection);
        assert_eq!(names(collection_qualified_cols!()), collection);
        assert_eq!(
            names(OBJECT_JOIN_COLS),
            [
                "o_name",
                "o_uid",
                "o_etag",
                "o_size",
                "o_component",
                "o_created_at",
                "o_modified_at"
            ]
        );
        let credentials = ["p_id", "p_credentials_version", "p_email"];
        assert_eq!(names(credential_cols!()), credentials);
        // The statements that put the lists side by side, in the order their decoders read.
        assert_eq!(
            principal_calendar_names(),
            [&credentials[..], &collection[..]].concat()
        );
        let batch = batch_names();
        assert_eq!(batch[0], "k_i");
        assert_eq!(batch[1..=CREDENTIAL_NCOLS], credentials);
        assert_eq!(
            batch[1 + CREDENTIAL_NCOLS..1 + CREDENTIAL_NCOLS + COLLECTION_NCOLS],
            collection
        );
        assert_eq!(batch[1 + CREDENTIAL_NCOLS + COLLECTION_NCOLS], "o_name");
        assert_eq!(batch.last().map(String::as_str), Some("o_ics"));
    }

    /// The positional decoders count on these widths; a column added to a list without its
    /// decoder shifts every column after it.
    #[test]
    fn positional_decoders_match_their_column_lists() {
        let width = |list: &str| names(list).len();
        assert_eq!(width(COLLECTION_COLS), COLLECTION_NCOLS);
        assert_eq!(width(collection_qualified_cols!()), COLLECTION_NCOLS);
        assert_eq!(width(OBJECT_JOIN_COLS), OBJECT_JOIN_NCOLS);
        assert_eq!(width(credential_cols!()), CREDENTIAL_NCOLS);
        assert_eq!(
            width(COLLECTION_JOIN_COLS),
            COLLECTION_NCOLS + OBJECT_JOIN_NCOLS
        );
        assert_eq!(
            principal_calendar_names().len(),
            CREDENTIAL_NCOLS + COLLECTION_NCOLS
        );
        // The batched GET: the key's position, the credentials, the calendar, the object and
        // its text.
        assert_eq!(
            batch_names().len(),
            1 + CREDENTIAL_NCOLS + COLLECTION_NCOLS + OBJECT_JOIN_NCOLS + 1
        );
    }
}
