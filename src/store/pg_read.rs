//! Reads on PostgreSQL over a last-in-first-out set of connections.
//!
//! sqlx's pool hands out its idle connections first-in-first-out and, by default, pings each one
//! before handing it out. For the point reads and listings every request makes, both cost more
//! than the query:
//! - The ping is one more network round trip per statement: a GET made four round trips for
//!   two queries.
//! - Rotating through every connection keeps each of them cold. A backend builds its catalog
//!   caches and settles on a generic plan for a prepared statement (after five executions) per
//!   connection; measured on a 10,000-event calendar, the first pass of a week query over a
//!   freshly filled pool took 8.4 ms against 5.3 ms once every connection had seen it.
//!
//! Here a read takes the most recently returned connection, so a few connections stay warm and
//! the others are rarely touched. A connection that has died while idle (the server restarted,
//! a proxy dropped it) shows up as an I/O or connection error on its first use; the read is
//! then retried once on a new connection, which is safe because a read changes nothing.
//! Writes and read transactions stay on the pool.

use super::sqlite_read::{bind_params, Cols, Param};
use super::{lost_connection, Result};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::{Connection, Postgres};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Read connections open at once, per process (the pool has its own for writes).
const MAX_READERS: usize = 8;
/// How long opening a read connection may take (the pool's acquire timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A connection older than this is closed when returned, so that a backend's per-session
/// memory (caches, plans) does not grow for ever.
const MAX_AGE: Duration = Duration::from_secs(30 * 60);

struct Idle {
    conn: PgConnection,
    born: Instant,
}

pub struct PgReads {
    opts: PgConnectOptions,
    idle: Mutex<Vec<Idle>>,
    permits: Semaphore,
}

impl PgReads {
    pub fn new(opts: PgConnectOptions) -> Self {
        PgReads {
            opts,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(MAX_READERS),
        }
    }

    /// Runs `sql` with `params` and decodes every row with `f`.
    pub async fn rows<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        f: fn(&dyn Cols) -> Result<T>,
    ) -> Result<Vec<T>> {
        // The permit bounds the connections; it is never closed, so acquiring cannot fail.
        let _permit = self.permits.acquire().await.ok();
        let reused = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let (mut c, fresh) = match reused {
            Some(c) => (c, false),
            None => (self.connect().await?, true),
        };
        let rows = match fetch(&mut c.conn, sql, params).await {
            Err(e) if !fresh && lost_connection(&e) => {
                tracing::info!(error = %e, "an idle read connection was lost; reconnecting");
                c = self.connect().await?;
                fetch(&mut c.conn, sql, params).await
            }
            other => other,
        };
        // A connection whose query failed for a reason of its own (a constraint, a cast) is
        // still good; one that lost its server is not.
        let keep = match &rows {
            Ok(_) => true,
            Err(e) => !lost_connection(e),
        };
        if keep && c.born.elapsed() < MAX_AGE {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(c);
        }
        rows?.iter().map(|r| f(r)).collect()
    }

    /// A new connection, within the same 15 s the pool allows for acquiring one: a database
    /// that does not answer fails the read instead of holding it without end.
    async fn connect(&self) -> Result<Idle> {
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&self.opts))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(Idle {
            conn,
            born: Instant::now(),
        })
    }
}

async fn fetch(
    conn: &mut PgConnection,
    sql: &str,
    params: &[Param<'_>],
) -> std::result::Result<Vec<PgRow>, sqlx::Error> {
    bind_params!(sqlx::query(sql), params, bind_ints, bind_texts)
        .fetch_all(conn)
        .await
}

pub type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// A key list as one array parameter (`= ANY($n)`).
pub fn bind_ints<'q>(q: PgQuery<'q>, list: &'q [i64]) -> PgQuery<'q> {
    q.bind(list)
}

pub fn bind_texts<'q>(q: PgQuery<'q>, list: &'q [String]) -> PgQuery<'q> {
    q.bind(list)
}
