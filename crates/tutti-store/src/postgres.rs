//! The PostgreSQL store, for scale: any number of Tutti processes may share
//! one database. Tasks are claimed with `FOR UPDATE SKIP LOCKED`, so two
//! processes never lease one task beyond its policy and never wait on each
//! other's claims; rows a transaction changes are locked assignment first,
//! task second, everywhere.

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// A store in a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// Key of the advisory lock that keeps two starting processes from
/// migrating at once.
const MIGRATION_LOCK: i64 = 0x0074_7574_7469;

impl PgStore {
    /// Connects to `url` and applies migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url).context("parsing the PostgreSQL URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to {}", crate::redact_url(url)))?;
        let mut lock = pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *lock)
            .await?;
        let migrated = apply_migrations!(&pool, crate::migrate::POSTGRES);
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *lock)
            .await?;
        migrated?;
        Ok(Self { pool })
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    /// PostgreSQL keeps the text search index itself, as tasks are added.
    fn tasks_added(&self) {}

    /// A transaction for one read-then-write unit of work.
    async fn session(&self) -> Result<Session> {
        Ok(Session(self.pool.begin().await?))
    }
}

/// A unit of work in a transaction; rows are locked as they are read.
struct Session(sqlx::Transaction<'static, sqlx::Postgres>);

impl Session {
    fn conn(&mut self) -> &mut sqlx::PgConnection {
        &mut self.0
    }

    /// Runs `writes` and commits; returns the id of the row a
    /// `returning_id` write inserted. The rows were locked when read, so a
    /// write that changes no row means the store's own invariants broke:
    /// everything is rolled back.
    async fn finish(mut self, writes: Vec<Write>) -> Result<Option<i64>> {
        let mut id = None;
        for w in writes.iter().filter(|w| w.when != Some(false)) {
            let changed = if w.returns_id {
                let sql = format!("{} RETURNING id", w.sql);
                let row = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &w.vals)
                    .fetch_optional(&mut *self.0)
                    .await?;
                id = row.map(|r| r.try_get(0)).transpose()?;
                u64::from(id.is_some())
            } else {
                bind_all(sqlx::query(w.sql), &w.vals)
                    .execute(&mut *self.0)
                    .await?
                    .rows_affected()
            };
            if w.exact && changed != 1 {
                self.0.rollback().await?;
                return Err(StoreError::Contended);
            }
        }
        self.0.commit().await?;
        Ok(id)
    }

    /// Ends the unit of work without writing, releasing its locks.
    async fn abandon(self) -> Result<()> {
        self.0.rollback().await?;
        Ok(())
    }
}

/// The first open task with a free slot on one side (`w_slots` for
/// workers, `s_slots` for stewards) that the worker has not touched,
/// skipping tasks other transactions hold.
macro_rules! candidate {
    ($candidates:literal) => {
        concat!(
            "SELECT t.seq, t.data, ",
            tally_cols!(),
            " FROM tasks t WHERE t.job_id = $1 AND ",
            $candidates,
            " AND t.seq > $3 AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.task_id = t.id \
             AND a.worker_id = $2 AND a.status IN ('pending', 'submitted', 'skipped')) \
             ORDER BY t.seq LIMIT 1 FOR UPDATE SKIP LOCKED"
        )
    };
}

/// Leases the first open task with a free slot the worker has not
/// touched; tasks other transactions are leasing are skipped, not waited for.
async fn lease(store: &PgStore, req: &LeaseRequest) -> Result<Option<Assignment>> {
    let mut session = store.session().await?;
    let candidate_sql = match (req.gold, req.side) {
        // A control question is never used up: any number of workers may
        // answer it, each once.
        (true, _) => candidate!("t.state = 'gold'"),
        (false, Side::Worker) => candidate!("t.state = 'open' AND t.w_slots > 0"),
        (false, Side::Steward) => candidate!("t.state = 'open' AND t.s_slots > 0"),
    };
    // Look after the worker's cursor first, then from the start for tasks
    // given back since they passed.
    let cursor: i64 = sqlx::query_scalar(concat!("SELECT ", worker_cursor!()))
        .bind(req.job.0)
        .bind(req.worker.0)
        .fetch_one(session.conn())
        .await?;
    let mut found = None;
    for after in [cursor, -1] {
        found = sqlx::query(candidate_sql)
            .bind(req.job.0)
            .bind(req.worker.0)
            .bind(after)
            .fetch_optional(session.conn())
            .await?;
        if found.is_some() || cursor < 0 {
            break;
        }
    }
    let Some(row) = found else {
        session.abandon().await?;
        return Ok(None);
    };
    let mut task = tally_from(&row)?;
    let (writes, deadline) = lease_writes(req, &mut task);
    let id = session
        .finish(writes)
        .await?
        .context("the new assignment's id")?;
    let data = object_of(row.try_get("data")?)?;
    Ok(Some(new_lease(
        req,
        id,
        &task,
        row.try_get("seq")?,
        deadline,
        data,
    )))
}

/// A submit, in its own transaction with its rows locked.
async fn submit(store: &PgStore, req: &SubmitRequest) -> Result<SubmitOutcome> {
    retry(|| try_submit(store, req)).await
}

async fn insert_rows(
    tx: &mut Tx<'_>,
    job: i64,
    first_seq: i64,
    rows: &[ImportRow],
    w_slots: i64,
    s_slots: i64,
) -> Result<()> {
    let seqs: Vec<i64> = (first_seq..first_seq + rows.len() as i64).collect();
    let data: Vec<&str> = rows.iter().map(|r| r.data.as_str()).collect();
    let gold: Vec<Option<&str>> = rows.iter().map(|r| r.gold.as_deref()).collect();
    let text: Vec<String> = rows
        .iter()
        .map(|r| crate::search::row_text(&r.data))
        .collect();
    // A control question is stored with state 'gold' and no slots.
    sqlx::query(
        "INSERT INTO tasks (job_id, w_slots, s_slots, state, gold, seq, data, search_text) \
         SELECT $1, CASE WHEN g IS NULL THEN $2 ELSE 0 END, CASE WHEN g IS NULL THEN $3 ELSE 0 END, \
                CASE WHEN g IS NULL THEN 'open' ELSE 'gold' END, g, s, d, x \
         FROM UNNEST($4::bigint[], $5::text[], $6::text[], $7::text[]) AS u(s, d, g, x)",
    )
    .bind(job)
    .bind(w_slots)
    .bind(s_slots)
    .bind(&seqs)
    .bind(&data)
    .bind(&gold)
    .bind(&text)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts a re-aggregation's rows in one statement.
async fn insert_aggregates(
    tx: &mut Tx<'_>,
    job: i64,
    method: &str,
    rows: &[AggregateRow],
) -> Result<()> {
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let labels: Vec<Option<String>> = rows.iter().map(|r| r.label.clone()).collect();
    let confidences: Vec<Option<f64>> = rows.iter().map(|r| r.confidence).collect();
    let posteriors: Vec<&str> = rows.iter().map(|r| r.posterior.as_str()).collect();
    sqlx::query(
        "INSERT INTO aggregates (job_id, seq, method, label, confidence, posterior) \
         SELECT $1, s, $2, l, c, p FROM UNNEST($3::bigint[], $4::text[], $5::float8[], $6::text[]) \
         AS u(s, l, c, p)",
    )
    .bind(job)
    .bind(method)
    .bind(&seqs)
    .bind(&labels)
    .bind(&confidences)
    .bind(&posteriors)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

use crate::migrate::apply_migrations;

use crate::shared::{answer_select, assignment_cols, store_impl, tally_cols, worker_cursor};
store_impl!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    Backend::Postgres,
    " FOR UPDATE",
    " FOR UPDATE OF a",
    " FOR UPDATE SKIP LOCKED",
    true
);
