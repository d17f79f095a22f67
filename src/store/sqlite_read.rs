//! Reads on SQLite without a thread hop per row.
//!
//! sqlx runs each SQLite connection on a worker thread of its own and hands every command and
//! every result row across a channel. For the point reads that every request makes (the
//! principal, the calendar, the object) and for listings of thousands of rows, those handoffs,
//! not SQLite, were most of the time: a profile of GET at 10,000 events showed about half the
//! CPU in futex wake-ups and context switches between the worker and the runtime threads.
//!
//! Here a read runs on the calling thread, on a read-only connection taken from a small idle
//! list. A read of the embedded database is CPU work of microseconds to milliseconds (WAL
//! readers never wait for the writer), like parsing a request body, so it is done in place
//! rather than shipped to another thread. Writes stay on sqlx's single writer connection.
//! The SQL text is the same as the Postgres path's (`$n` parameters bound by name).

use super::{Result, StoreError};
use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Idle connections kept; more are opened under load and closed when returned.
const MAX_IDLE: usize = 8;

/// A bind parameter of a read query, for either way of running it.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
    /// A list for `col IN (…)`/`col = ANY(…)` (see `list_sql` in `sql.rs`): one array value on
    /// Postgres, one parameter per element on SQLite, which has no arrays.
    Ints(&'a [i64]),
    Texts(&'a [String]),
}

/// Binds `params` to a sqlx query in order, each list through `$ints`/`$texts` (one array
/// parameter on Postgres, one parameter per element on SQLite).
macro_rules! bind_params {
    ($query:expr, $params:expr, $ints:expr, $texts:expr) => {{
        let mut q = $query;
        for p in $params {
            q = match *p {
                Param::Int(v) => q.bind(v),
                Param::OptInt(v) => q.bind(v),
                Param::Text(v) => q.bind(v),
                Param::OptText(v) => q.bind(v),
                Param::Ints(list) => $ints(q, list),
                Param::Texts(list) => $texts(q, list),
            };
        }
        q
    }};
}
pub(super) use bind_params;

/// Column access shared by sqlx's rows (both backends) and rusqlite's, so each row type is
/// decoded by one function whichever way the query ran.
pub trait Cols {
    fn int(&self, col: &str) -> Result<i64>;
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    /// By position, for rows read by the thousand (occurrences, listings), where finding each
    /// column by name was a fifth of the decoding.
    fn int_at(&self, i: usize) -> Result<i64>;
    fn text_at(&self, i: usize) -> Result<String>;
    fn opt_text_at(&self, i: usize) -> Result<Option<String>>;
}

/// A rusqlite row with its statement's column names, looked up in Rust: rusqlite's own
/// lookup by name asks SQLite for every column's name on every access. The names are read
/// once per statement run, and only when a decoder asks for a column by name: the rows read
/// on every request (GET's credentials, calendar and object; occurrences; listings) are
/// decoded by position and need no names, which were 25 string copies per GET.
struct Named<'a, 'r> {
    row: &'a rusqlite::Row<'r>,
    names: &'a std::cell::OnceCell<Vec<String>>,
}

impl Named<'_, '_> {
    fn at(&self, col: &str) -> Result<usize> {
        let names = self.names.get_or_init(|| {
            let stmt: &rusqlite::Statement<'_> = self.row.as_ref();
            stmt.column_names().iter().map(|n| n.to_string()).collect()
        });
        names
            .iter()
            .position(|n| n == col)
            .ok_or_else(|| rusqlite::Error::InvalidColumnName(col.to_owned()).into())
    }
}

impl Cols for Named<'_, '_> {
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.row.get(self.at(col)?)?)
    }
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.row.get(self.at(col)?)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.row.get(self.at(col)?)?)
    }
    fn int_at(&self, i: usize) -> Result<i64> {
        Ok(self.row.get(i)?)
    }
    fn text_at(&self, i: usize) -> Result<String> {
        Ok(self.row.get(i)?)
    }
    fn opt_text_at(&self, i: usize) -> Result<Option<String>> {
        Ok(self.row.get(i)?)
    }
}

macro_rules! sqlx_cols {
    ($row:ty) => {
        impl Cols for $row {
            fn int(&self, col: &str) -> Result<i64> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn text(&self, col: &str) -> Result<String> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn int_at(&self, i: usize) -> Result<i64> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn text_at(&self, i: usize) -> Result<String> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn opt_text_at(&self, i: usize) -> Result<Option<String>> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
        }
    };
}
sqlx_cols!(sqlx::sqlite::SqliteRow);
sqlx_cols!(sqlx::postgres::PgRow);

/// Read-only connections to one SQLite file, used on the calling thread.
pub struct FastReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl FastReads {
    /// For a database file (not an in-memory database, which other connections cannot see).
    pub fn new(path: PathBuf) -> Self {
        FastReads {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    /// Runs `f`'s reads in one read transaction, so they all see the same snapshot.
    pub fn snapshot<T>(&self, f: impl FnOnce(&Snapshot<'_>) -> Result<T>) -> Result<T> {
        let conn = self.take()?;
        let out = conn
            .execute_batch("BEGIN")
            .map_err(StoreError::from)
            .and_then(|()| f(&Snapshot { conn: &conn }));
        // Ending a read transaction cannot lose anything; a connection that cannot end one is
        // not returned to the idle list.
        let ended = conn.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
        if ended.is_ok() {
            self.give_back(conn);
        }
        out
    }

    /// Runs `sql` with `params` (bound by their `$n` names) and decodes every row with `f`.
    pub fn rows<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        f: impl Fn(&dyn Cols) -> Result<T>,
    ) -> Result<Vec<T>> {
        let conn = self.take()?;
        let out = run(&conn, sql, params, f);
        self.give_back(conn);
        out
    }

    /// The most recently returned idle connection, or a new one.
    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(c) => Ok(c),
            None => Ok(self.connect()?),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// Reads inside one read transaction (`FastReads::snapshot`).
pub struct Snapshot<'c> {
    conn: &'c Connection,
}

impl Snapshot<'_> {
    pub fn rows<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        f: impl Fn(&dyn Cols) -> Result<T>,
    ) -> Result<Vec<T>> {
        run(self.conn, sql, params, f)
    }
}

fn run<T>(
    conn: &Connection,
    sql: &str,
    params: &[Param<'_>],
    f: impl Fn(&dyn Cols) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    // `$n` numbers count list elements one by one, as `list_sql` writes them for SQLite.
    let mut next = Slots::default();
    for p in params {
        match *p {
            Param::Int(v) => next.bind(&mut stmt, v)?,
            Param::OptInt(v) => next.bind(&mut stmt, v)?,
            Param::Text(v) => next.bind(&mut stmt, v)?,
            Param::OptText(v) => next.bind(&mut stmt, v)?,
            Param::Ints(list) => {
                for v in list {
                    next.bind(&mut stmt, *v)?;
                }
            }
            Param::Texts(list) => {
                for v in list {
                    next.bind(&mut stmt, v.as_str())?;
                }
            }
        }
    }
    let names = std::cell::OnceCell::new();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(f(&Named { row, names: &names })?);
    }
    Ok(out)
}

/// Binds values to `$1`, `$2`, … in turn; a number the statement does not use is skipped.
#[derive(Default)]
struct Slots {
    n: usize,
    name: String,
}

impl Slots {
    fn bind<T: rusqlite::ToSql>(&mut self, stmt: &mut rusqlite::Statement<'_>, v: T) -> Result<()> {
        use std::fmt::Write;
        self.n += 1;
        self.name.clear();
        let _ = write!(self.name, "${}", self.n);
        if let Some(at) = stmt.parameter_index(&self.name)? {
            stmt.raw_bind_parameter(at, v)?;
        }
        Ok(())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        match e.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked) => StoreError::SqliteBusy(e.to_string()),
            _ => StoreError::Sqlite(e.to_string()),
        }
    }
}
