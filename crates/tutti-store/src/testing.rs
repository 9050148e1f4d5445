//! Fresh databases for tests, so that the same contract runs on every
//! backend: SQLite always, PostgreSQL when `TUTTI_TEST_POSTGRES_URL` names a
//! server (CI sets it). Each call makes a new, empty database.

use anyhow::Context as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming a PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "TUTTI_TEST_POSTGRES_URL";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// A new SQLite file in the temporary directory.
pub fn fresh_sqlite_url() -> String {
    let path = std::env::temp_dir().join(format!("tutti-test-{}.db", unique_suffix()));
    format!("sqlite://{}", path.display())
}

/// A new, empty PostgreSQL database on the server `TUTTI_TEST_POSTGRES_URL`
/// names, or `None` when it is not set.
pub async fn fresh_postgres_url() -> anyhow::Result<Option<String>> {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        return Ok(None);
    };
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .with_context(|| format!("connecting to {POSTGRES_ENV}"))?;
    let name = format!("tutti_test_{}", unique_suffix());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .context("creating a test database")?;
    conn.close().await.ok();
    let (without_query, query) = match base.split_once('?') {
        Some((u, q)) => (u, format!("?{q}")),
        None => (base.as_str(), String::new()),
    };
    let server = match without_query.rfind('/') {
        Some(i) if i > without_query.find("://").map_or(0, |s| s + 2) => &without_query[..i],
        _ => without_query,
    };
    Ok(Some(format!("{server}/{name}{query}")))
}

/// One fresh database URL per backend under test.
pub async fn fresh_urls() -> anyhow::Result<Vec<String>> {
    let mut urls = vec![fresh_sqlite_url()];
    urls.extend(fresh_postgres_url().await?);
    Ok(urls)
}
