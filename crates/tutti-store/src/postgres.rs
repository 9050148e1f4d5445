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
const MIGRATION_LOCK: i64 = 0x7475_7474_69;

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
    /// `returning_id` write inserted.
    async fn finish(mut self, writes: Vec<Write>) -> Result<Option<i64>> {
        let mut id = None;
        for w in &writes {
            if w.returns_id {
                let sql = format!("{} RETURNING id", w.sql);
                let row = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &w.vals)
                    .fetch_one(&mut *self.0)
                    .await?;
                id = Some(row.try_get(0)?);
            } else {
                bind_all(sqlx::query(w.sql), &w.vals)
                    .execute(&mut *self.0)
                    .await?;
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

async fn insert_rows(
    tx: &mut Tx<'_>,
    job: i64,
    first_seq: i64,
    rows: &[String],
    w_slots: i64,
    s_slots: i64,
) -> Result<()> {
    let seqs: Vec<i64> = (first_seq..first_seq + rows.len() as i64).collect();
    sqlx::query(
        "INSERT INTO tasks (job_id, w_slots, s_slots, seq, data) \
         SELECT $1, $2, $3, s, d FROM UNNEST($4::bigint[], $5::text[]) AS u(s, d)",
    )
    .bind(job)
    .bind(w_slots)
    .bind(s_slots)
    .bind(&seqs)
    .bind(rows)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

use crate::migrate::apply_migrations;

use crate::shared::{answer_select, assignment_cols, store_impl, tally_cols};
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
