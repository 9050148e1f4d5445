//! The lease monitor: marks pending assignments past their deadline
//! abandoned and reopens their tasks, like Cymphony's `monitor_tasks`; and
//! re-aggregates jobs whose policy names an aggregation method other than
//! `kofn` once they have new answers (at most every
//! [`REAGGREGATE_EVERY_MS`] per job).
//! It runs inside `tutti serve` and alone as `tutti monitor`; with
//! PostgreSQL any number may run at once (each claims overdue leases with
//! `SKIP LOCKED`).

use std::sync::Arc;
use std::time::Duration;
use tutti_store::Store;

/// Leases reopened per transaction.
const BATCH: u32 = 1000;

/// Least time between two background re-aggregations of one job.
pub const REAGGREGATE_EVERY_MS: i64 = 30_000;

/// Expires every overdue lease now; returns how many.
pub async fn sweep(store: &dyn Store) -> tutti_store::Result<u64> {
    let mut total = 0;
    loop {
        let n = store.expire_leases(tutti_store::now(), BATCH).await?;
        total += n;
        if n < u64::from(BATCH) {
            return Ok(total);
        }
    }
}

/// Sweeps every `every`, forever. Errors are logged and retried next time.
pub async fn run(store: Arc<dyn Store>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sweep(store.as_ref()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(abandoned = n, "reopened tasks of overdue leases"),
            Err(e) => tracing::warn!(error = %e, "lease monitor sweep failed"),
        }
        if let Err(e) = crate::quality::refresh(store.as_ref(), REAGGREGATE_EVERY_MS).await {
            tracing::warn!(error = %e, "background re-aggregation failed");
        }
    }
}
