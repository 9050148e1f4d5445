//! The embedded SQLite store.
//!
//! One file in WAL mode. All writes go through a pool of exactly one
//! connection, so write transactions queue in Tutti instead of failing with
//! `SQLITE_BUSY`, and a task can be claimed with a plain select-then-update
//! inside one transaction. Reads use a separate small pool and never block
//! the writer.

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

/// A store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`,
    /// or `sqlite::memory:`) and applies migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let memory = url.contains(":memory:");
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("parsing SQLite URL {url:?}"))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .synchronous(SqliteSynchronous::Normal);
        let options = if memory {
            // A private in-memory database exists once per connection, so the
            // readers would not see the writer's data: share one connection.
            options.shared_cache(true)
        } else {
            options.journal_mode(SqliteJournalMode::Wal)
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // A local file cannot go stale; a ping per acquire would double
            // the round trips to SQLite's worker thread.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening SQLite database {url:?}"))?;
        apply_migrations!(&writer, crate::migrate::SQLITE)?;
        let reader = if memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(options.read_only(true))
                .await
                .context("opening SQLite readers")?
        };
        Ok(Self { writer, reader })
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// The writer connection, held for one read-then-write unit of work.
    /// Holding the only writer makes the reads and the batch that follows
    /// atomic with respect to every other write.
    async fn session(&self) -> Result<Session> {
        Ok(Session(self.writer.acquire().await?))
    }
}

/// A unit of work on the writer connection.
struct Session(sqlx::pool::PoolConnection<sqlx::Sqlite>);

impl Session {
    fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.0
    }

    /// Commits `writes` as one transaction in one round trip; returns the
    /// id of the row a `returning_id` write inserted.
    async fn finish(mut self, writes: Vec<Write>) -> Result<Option<i64>> {
        if writes.is_empty() {
            return Ok(None);
        }
        let mut sql = String::from("BEGIN;\n");
        let mut vals = Vec::new();
        let mut returns_id = false;
        for w in writes {
            sql.push_str(&renumber(w.sql, vals.len()));
            sql.push_str(";\n");
            if w.returns_id {
                sql.push_str("SELECT last_insert_rowid();\n");
                returns_id = true;
            }
            vals.extend(w.vals);
        }
        sql.push_str("COMMIT;");
        let done = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &vals)
            .fetch_all(&mut *self.0)
            .await;
        match done {
            Ok(rows) => match rows.first() {
                Some(row) if returns_id => Ok(Some(row.try_get(0)?)),
                _ => Ok(None),
            },
            Err(e) => {
                // The batch stopped part-way: end its transaction.
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *self.0).await;
                Err(e.into())
            }
        }
    }

    /// Ends the unit of work without writing.
    async fn abandon(self) -> Result<()> {
        Ok(())
    }
}

/// Rows per multi-row insert (6 bound values each, well under SQLite's
/// 32,766-parameter limit).
const INSERT_BATCH: usize = 500;

async fn insert_rows(
    tx: &mut Tx<'_>,
    job: i64,
    first_seq: i64,
    rows: &[String],
    w_slots: i64,
    s_slots: i64,
) -> Result<()> {
    let mut seq = first_seq;
    for chunk in rows.chunks(INSERT_BATCH) {
        let mut sql = String::with_capacity(40 + chunk.len() * 24);
        sql.push_str("INSERT INTO tasks (job_id, w_slots, s_slots, seq, data) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("($1, $2, $3, ${}, ${})", 4 + 2 * i, 5 + 2 * i));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job)
            .bind(w_slots)
            .bind(s_slots);
        for data in chunk {
            q = q.bind(seq).bind(data.as_str());
            seq += 1;
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

use crate::migrate::apply_migrations;
use crate::write::renumber;
use crate::shared::{answer_select, assignment_cols, store_impl, tally_cols};
store_impl!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    Backend::Sqlite,
    "",
    "",
    "",
    false
);
