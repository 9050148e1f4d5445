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
            .synchronous(SqliteSynchronous::Normal)
            // 16 MiB of page cache per connection (the default is 2 MiB):
            // large imports and busy jobs touch more index pages than that.
            .pragma("cache_size", "-16384")
            .pragma("temp_store", "memory");
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
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::raw_sql(GUARD_TABLE).execute(conn).await?;
                    Ok(())
                })
            })
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

    /// A unit of work on the writer connection: holding the only writer
    /// makes its reads and the batch that follows atomic with respect to
    /// every other write, while readers go on.
    async fn session(&self) -> Result<Session> {
        Ok(Session(self.writer.acquire().await?))
    }
}

/// A unit of work: reads, then one batch of writes, on the writer.
struct Session(sqlx::pool::PoolConnection<sqlx::Sqlite>);

/// Connection-local table whose `CHECK` turns "a write changed no row" into
/// an error that ends the batch.
const GUARD_TABLE: &str =
    "CREATE TEMP TABLE IF NOT EXISTS write_guard (changed INTEGER NOT NULL CHECK (changed = 1))";

impl Session {
    fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.0
    }

    /// Commits `writes` as one transaction in one round trip; returns the
    /// id of the row a `returning_id` write inserted. A write that changes
    /// no row fails the guard and rolls the whole batch back.
    async fn finish(self, writes: Vec<Write>) -> Result<Option<i64>> {
        if writes.is_empty() {
            return Ok(None);
        }
        let mut sql = String::from("BEGIN;\n");
        let mut vals = Vec::new();
        let mut returns_id = false;
        for w in writes {
            sql.push_str(&renumber(w.sql, vals.len()));
            sql.push_str(";\nINSERT INTO temp.write_guard (changed) VALUES (changes());\n");
            if w.returns_id {
                sql.push_str("SELECT last_insert_rowid();\n");
                returns_id = true;
            }
            vals.extend(w.vals);
        }
        sql.push_str("DELETE FROM temp.write_guard;\nCOMMIT;");
        let mut writer = self.0;
        let done = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &vals)
            .fetch_all(&mut *writer)
            .await;
        match done {
            Ok(rows) => match rows.first() {
                Some(row) if returns_id => Ok(Some(row.try_get(0)?)),
                _ => Ok(None),
            },
            Err(e) => {
                // The batch stopped part-way: undo it.
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *writer).await;
                match e {
                    sqlx::Error::Database(d)
                        if d.is_check_violation() || d.is_unique_violation() =>
                    {
                        Err(StoreError::Contended)
                    }
                    e => Err(e.into()),
                }
            }
        }
    }

    /// Ends the unit of work without writing.
    async fn abandon(self) -> Result<()> {
        Ok(())
    }
}

/// The lease statements for one side: take the first open task with a free
/// slot the worker has not touched, count the lease on it, and read it
/// back, all in one batch on the writer. A lease takes exactly one slot (a
/// task with a free slot is open and one more pending answer lowers its
/// remaining need by one; see `Policy::evaluate`), so no re-evaluation is
/// needed here.
macro_rules! lease_batch {
    ($slots:literal, $pending:literal) => {
        concat!(
            "BEGIN;
             INSERT INTO assignments (job_id, task_id, worker_id, side, status, leased_at, deadline)
               SELECT $1, t.id, $2, $3, 'pending', $4, $5 FROM tasks t
               WHERE t.job_id = $1 AND t.state = 'open' AND t.", $slots, " > 0
                 AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.task_id = t.id AND a.worker_id = $2
                                 AND a.status IN ('pending', 'submitted', 'skipped'))
               ORDER BY t.seq LIMIT 1;
             UPDATE tasks SET ", $pending, " = ", $pending, " + 1, ", $slots, " = ", $slots, " - 1
               WHERE changes() = 1 AND id = (SELECT task_id FROM assignments WHERE id = last_insert_rowid());
             SELECT ", assignment_cols!(), " FROM assignments a JOIN tasks t ON t.id = a.task_id
               WHERE changes() = 1 AND a.id = last_insert_rowid();
             COMMIT;"
        )
    };
}

async fn lease(store: &SqliteStore, req: &LeaseRequest) -> Result<Option<Assignment>> {
    let sql = match req.side {
        Side::Worker => lease_batch!("w_slots", "w_pending"),
        Side::Steward => lease_batch!("s_slots", "s_pending"),
    };
    let deadline = req.now.plus_secs(req.policy.time_limit_secs);
    let mut writer = store.writer.acquire().await?;
    let done = sqlx::query(sql)
        .bind(req.job.0)
        .bind(req.worker.0)
        .bind(req.side.as_str())
        .bind(req.now.0)
        .bind(deadline.0)
        .fetch_all(&mut *writer)
        .await;
    match done {
        Ok(rows) => rows.first().map(assignment_from).transpose(),
        Err(e) => {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *writer).await;
            Err(e.into())
        }
    }
}

/// Rows per multi-row insert (2 bound values each, well under SQLite's
/// 32,766-parameter limit).
const INSERT_BATCH: usize = 1000;

async fn insert_rows(
    tx: &mut Tx<'_>,
    job: i64,
    first_seq: i64,
    rows: &[String],
    w_slots: i64,
    s_slots: i64,
) -> Result<()> {
    // Positional `?` parameters: SQLite looks names up by a linear scan,
    // which made numbered parameters quadratic in the batch size. The
    // integers shared by every row are written into the text.
    let row = format!("({job}, {w_slots}, {s_slots}, ?, ?)");
    let mut seq = first_seq;
    for chunk in rows.chunks(INSERT_BATCH) {
        let mut sql = String::with_capacity(64 + chunk.len() * (row.len() + 1));
        sql.push_str("INSERT INTO tasks (job_id, w_slots, s_slots, seq, data) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&row);
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for data in chunk {
            q = q.bind(seq).bind(data.as_str());
            seq += 1;
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

use crate::migrate::apply_migrations;
use crate::shared::{answer_select, assignment_cols, store_impl, tally_cols};
use crate::write::renumber;
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
