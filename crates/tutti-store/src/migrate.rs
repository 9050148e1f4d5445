//! Schema migrations, embedded in the binary, one list per backend. They
//! only ever grow: a shipped migration is never edited, a change is a new one.

/// One migration.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// SQLite's migrations, oldest first.
pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("../migrations/sqlite/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "aggregation",
        sql: include_str!("../migrations/sqlite/0002_aggregation.sql"),
    },
    Migration {
        version: 3,
        name: "gold",
        sql: include_str!("../migrations/sqlite/0003_gold.sql"),
    },
    Migration {
        version: 4,
        name: "adaptive",
        sql: include_str!("../migrations/sqlite/0004_adaptive.sql"),
    },
    Migration {
        version: 5,
        name: "runs",
        sql: include_str!("../migrations/sqlite/0005_runs.sql"),
    },
    Migration {
        version: 6,
        name: "label_tasks",
        sql: include_str!("../migrations/sqlite/0006_label_tasks.sql"),
    },
    Migration {
        version: 7,
        name: "crowd",
        sql: include_str!("../migrations/sqlite/0007_crowd.sql"),
    },
    Migration {
        version: 8,
        name: "worker_cursor",
        sql: include_str!("../migrations/sqlite/0008_worker_cursor.sql"),
    },
    Migration {
        version: 9,
        name: "accounts",
        sql: include_str!("../migrations/sqlite/0009_accounts.sql"),
    },
    Migration {
        version: 10,
        name: "results_index",
        sql: include_str!("../migrations/sqlite/0010_results_index.sql"),
    },
    Migration {
        version: 11,
        name: "worker_answers",
        sql: include_str!("../migrations/sqlite/0011_worker_answers.sql"),
    },
    Migration {
        version: 12,
        name: "grades",
        sql: include_str!("../migrations/sqlite/0012_grades.sql"),
    },
    Migration {
        version: 13,
        name: "job_figures",
        sql: include_str!("../migrations/sqlite/0013_job_figures.sql"),
    },
    Migration {
        version: 14,
        name: "text_search",
        sql: include_str!("../migrations/sqlite/0014_text_search.sql"),
    },
    Migration {
        version: 15,
        name: "search_text",
        sql: include_str!("../migrations/sqlite/0015_search_text.sql"),
    },
    Migration {
        version: 16,
        name: "worker_confusion",
        sql: include_str!("../migrations/sqlite/0016_worker_confusion.sql"),
    },
    Migration {
        version: 17,
        name: "started_tasks",
        sql: include_str!("../migrations/sqlite/0017_started_tasks.sql"),
    },
    Migration {
        version: 18,
        name: "one_index_per_look_up",
        sql: include_str!("../migrations/sqlite/0018_one_index_per_look_up.sql"),
    },
];

/// PostgreSQL's migrations, oldest first.
pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("../migrations/postgres/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "aggregation",
        sql: include_str!("../migrations/postgres/0002_aggregation.sql"),
    },
    Migration {
        version: 3,
        name: "gold",
        sql: include_str!("../migrations/postgres/0003_gold.sql"),
    },
    Migration {
        version: 4,
        name: "adaptive",
        sql: include_str!("../migrations/postgres/0004_adaptive.sql"),
    },
    Migration {
        version: 5,
        name: "runs",
        sql: include_str!("../migrations/postgres/0005_runs.sql"),
    },
    Migration {
        version: 6,
        name: "label_tasks",
        sql: include_str!("../migrations/postgres/0006_label_tasks.sql"),
    },
    Migration {
        version: 7,
        name: "crowd",
        sql: include_str!("../migrations/postgres/0007_crowd.sql"),
    },
    Migration {
        version: 8,
        name: "worker_cursor",
        sql: include_str!("../migrations/postgres/0008_worker_cursor.sql"),
    },
    Migration {
        version: 9,
        name: "accounts",
        sql: include_str!("../migrations/postgres/0009_accounts.sql"),
    },
    Migration {
        version: 10,
        name: "results_index",
        sql: include_str!("../migrations/postgres/0010_results_index.sql"),
    },
    Migration {
        version: 11,
        name: "worker_answers",
        sql: include_str!("../migrations/postgres/0011_worker_answers.sql"),
    },
    Migration {
        version: 12,
        name: "grades",
        sql: include_str!("../migrations/postgres/0012_grades.sql"),
    },
    Migration {
        version: 13,
        name: "job_figures",
        sql: include_str!("../migrations/postgres/0013_job_figures.sql"),
    },
    Migration {
        version: 14,
        name: "text_search",
        sql: include_str!("../migrations/postgres/0014_text_search.sql"),
    },
    Migration {
        version: 15,
        name: "worker_confusion",
        sql: include_str!("../migrations/postgres/0015_worker_confusion.sql"),
    },
    Migration {
        version: 16,
        name: "started_tasks",
        sql: include_str!("../migrations/postgres/0016_started_tasks.sql"),
    },
    Migration {
        version: 17,
        name: "one_index_per_look_up",
        sql: include_str!("../migrations/postgres/0017_one_index_per_look_up.sql"),
    },
];

/// Applies every migration of `list` newer than the recorded version, each
/// in its own transaction with its record.
macro_rules! apply_migrations {
    ($pool:expr, $list:expr) => {{
        use sqlx::Row as _;
        let pool = $pool;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS tutti_migrations (\
             version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(pool)
        .await
        .context("creating the migrations table")?;
        let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM tutti_migrations")
            .fetch_one(pool)
            .await?
            .try_get(0)?;
        for m in $list.iter().filter(|m| m.version > current) {
            let mut tx = pool.begin().await?;
            sqlx::raw_sql(m.sql)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("applying migration {} ({})", m.version, m.name))?;
            sqlx::query(
                "INSERT INTO tutti_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(crate::now().0)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
        }
        anyhow::Ok(())
    }};
}

pub(crate) use apply_migrations;
