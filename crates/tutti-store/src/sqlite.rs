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
use tokio::sync::{mpsc, oneshot};

/// A store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The group writer, which commits leases and submits that arrive
    /// together in one transaction; `None` in the group writer's own copy.
    group: Option<mpsc::Sender<GroupJob>>,
    /// Wakes the text indexer after tasks are added; it stops once every
    /// copy of the store is gone.
    text_index: Option<mpsc::Sender<()>>,
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
                .connect_with(options.clone().read_only(true))
                .await
                .context("opening SQLite readers")?
        };
        let (group, jobs) = mpsc::channel(1024);
        let direct = Self {
            writer: writer.clone(),
            reader: reader.clone(),
            group: None,
            text_index: None,
        };
        tokio::spawn(group_writer(direct, jobs));
        let (text_index, wake) = mpsc::channel(1);
        tokio::spawn(text_indexer(writer.clone(), wake));
        Ok(Self {
            writer,
            reader,
            group: Some(group),
            text_index: Some(text_index),
        })
    }

    /// Tells the text indexer that committed tasks await it.
    fn tasks_added(&self) {
        if let Some(wake) = &self.text_index {
            // A full channel already holds a wake-up.
            let _ = wake.try_send(());
        }
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
        let returns_id = writes.iter().any(|w| w.returns_id);
        let sql = batch_text(&writes);
        let vals: Vec<Val> = writes.into_iter().flat_map(|w| w.vals).collect();
        let mut writer = self.0;
        let done = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())), &vals)
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

/// The shape of a batch: each write's statement (by address: they are
/// `'static` texts) and whether it returns an id or must change one row.
type BatchShape = Vec<(usize, bool, bool)>;

/// Batch texts made so far, by shape: submits and leases come in a few
/// shapes (one per group size), and building the text is a good part of
/// the cost of a small batch.
static BATCH_TEXTS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<BatchShape, std::sync::Arc<str>>>,
> = std::sync::LazyLock::new(Default::default);
const MAX_BATCH_TEXTS: usize = 512;

/// One transaction's text for `writes`, every statement's parameters
/// numbered after the ones before it, each exact write followed by its
/// guard.
fn batch_text(writes: &[Write]) -> std::sync::Arc<str> {
    let shape: BatchShape = writes
        .iter()
        .map(|w| {
            (
                w.sql.as_ptr() as usize ^ (w.sql.len() << 48),
                w.returns_id,
                w.exact,
            )
        })
        .collect();
    if let Some(t) = BATCH_TEXTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&shape)
    {
        return t.clone();
    }
    let mut sql = String::from("BEGIN;\n");
    let mut offset = 0;
    for w in writes {
        sql.push_str(&renumber(w.sql, offset));
        sql.push_str(";\n");
        // Read before the guard's own insert, which would otherwise be
        // the last inserted row (a SELECT leaves changes() as it was).
        if w.returns_id {
            sql.push_str("SELECT last_insert_rowid();\n");
        }
        if w.exact {
            sql.push_str("INSERT INTO temp.write_guard (changed) VALUES (changes());\n");
        }
        offset += w.vals.len();
    }
    sql.push_str("DELETE FROM temp.write_guard;\nCOMMIT;");
    let text: std::sync::Arc<str> = sql.into();
    let mut texts = BATCH_TEXTS.lock().unwrap_or_else(|p| p.into_inner());
    if texts.len() >= MAX_BATCH_TEXTS {
        texts.clear();
    }
    texts.insert(shape, text.clone());
    text
}

/// Lease group texts made so far, by the statements they join.
static LEASE_TEXTS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<Vec<usize>, std::sync::Arc<str>>>,
> = std::sync::LazyLock::new(Default::default);

/// One transaction's text for a group of leases, each request's six
/// parameters numbered after the ones before.
fn lease_group_text(statements: impl Iterator<Item = &'static str>) -> std::sync::Arc<str> {
    let statements: Vec<&'static str> = statements.collect();
    let shape: Vec<usize> = statements.iter().map(|s| s.as_ptr() as usize).collect();
    if let Some(t) = LEASE_TEXTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&shape)
    {
        return t.clone();
    }
    let mut sql = String::from("BEGIN;\n");
    for (i, statement) in statements.iter().enumerate() {
        sql.push_str(&renumber(statement, 6 * i));
        sql.push('\n');
    }
    sql.push_str("COMMIT;");
    let text: std::sync::Arc<str> = sql.into();
    let mut texts = LEASE_TEXTS.lock().unwrap_or_else(|p| p.into_inner());
    if texts.len() >= MAX_BATCH_TEXTS {
        texts.clear();
    }
    texts.insert(shape, text.clone());
    text
}

/// The lease statements for one side: take the first open task with a free
/// slot the worker has not touched (looking after the worker's cursor
/// first, then from the start, for tasks given back since they passed), count the lease on it, and read it back
/// tagged with `$6`. A lease takes exactly one slot (a task with a free slot
/// is open and one more pending answer lowers its remaining need by one;
/// see `Policy::evaluate`), so no re-evaluation is needed here.
macro_rules! lease_statements {
    ($candidates:literal, $count:literal) => {
        concat!(
            "INSERT INTO assignments (job_id, task_id, worker_id, side, status, leased_at, deadline)
               SELECT $1, c.id, $2, $3, 'pending', $4, $5 FROM (
                 SELECT id FROM (SELECT t.id FROM tasks t
                   WHERE t.job_id = $1 AND ", $candidates, " AND t.seq > ", worker_cursor!(), "
                     AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.task_id = t.id AND a.worker_id = $2
                                     AND a.status IN ('pending', 'submitted', 'skipped'))
                   ORDER BY t.seq LIMIT 1)
                 UNION ALL
                 SELECT id FROM (SELECT t.id FROM tasks t
                   WHERE t.job_id = $1 AND ", $candidates, "
                     AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.task_id = t.id AND a.worker_id = $2
                                     AND a.status IN ('pending', 'submitted', 'skipped'))
                   ORDER BY t.seq LIMIT 1)
               ) c LIMIT 1;
             UPDATE tasks SET ", $count, "
               WHERE changes() = 1 AND id = (SELECT task_id FROM assignments WHERE id = last_insert_rowid());
             SELECT $6 AS request, ", assignment_cols!(), " FROM assignments a JOIN tasks t ON t.id = a.task_id
               WHERE changes() = 1 AND a.id = last_insert_rowid();"
        )
    };
}

/// Work for the group writer, with where to send its result.
enum GroupJob {
    Lease(LeaseRequest, oneshot::Sender<Result<Option<Assignment>>>),
    Submit(SubmitRequest, oneshot::Sender<Result<SubmitOutcome>>),
}

/// Most jobs committed in one group.
const MAX_GROUP: usize = 64;

/// Commits the leases and submits that are waiting together, each kind in
/// one transaction (group commit). SQLite has one writer, and a round trip
/// to it costs far more than the statements themselves; so with many
/// workers at once, one transaction per group instead of per request is
/// what makes the writer keep up.
async fn group_writer(store: SqliteStore, mut jobs: mpsc::Receiver<GroupJob>) {
    while let Some(first) = jobs.recv().await {
        let mut leases = Vec::new();
        let mut submits = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                GroupJob::Lease(req, reply) => leases.push((req, reply)),
                GroupJob::Submit(req, reply) => submits.push((req, reply)),
            }
            if leases.len() + submits.len() < MAX_GROUP {
                next = jobs.try_recv().ok();
            }
        }
        if !leases.is_empty() {
            lease_group(&store, leases).await;
        }
        if !submits.is_empty() {
            submit_group(&store, submits).await;
        }
    }
}

async fn lease(store: &SqliteStore, req: &LeaseRequest) -> Result<Option<Assignment>> {
    let Some(group) = &store.group else {
        return lease_one(store, req).await;
    };
    let (reply, result) = oneshot::channel();
    group
        .send(GroupJob::Lease(req.clone(), reply))
        .await
        .map_err(|_| anyhow::anyhow!("the SQLite group writer stopped"))?;
    result
        .await
        .map_err(|_| anyhow::anyhow!("the SQLite group writer dropped a lease"))?
}

async fn submit(store: &SqliteStore, req: &SubmitRequest) -> Result<SubmitOutcome> {
    let Some(group) = &store.group else {
        return retry(|| try_submit(store, req)).await;
    };
    let (reply, result) = oneshot::channel();
    group
        .send(GroupJob::Submit(req.clone(), reply))
        .await
        .map_err(|_| anyhow::anyhow!("the SQLite group writer stopped"))?;
    result
        .await
        .map_err(|_| anyhow::anyhow!("the SQLite group writer dropped a submit"))?
}

fn lease_sql(req: &LeaseRequest) -> &'static str {
    match (req.gold, req.side) {
        // A control question is never used up: any number of workers may
        // answer it, each once.
        (true, _) => lease_statements!("t.state = 'gold'", "w_pending = w_pending + 1"),
        (false, Side::Worker) => lease_statements!(
            "t.state = 'open' AND t.w_slots > 0",
            "w_pending = w_pending + 1, w_slots = w_slots - 1"
        ),
        (false, Side::Steward) => lease_statements!(
            "t.state = 'open' AND t.s_slots > 0",
            "s_pending = s_pending + 1, s_slots = s_slots - 1"
        ),
    }
}

fn bind_lease<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    req: &LeaseRequest,
    tag: i64,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    q.bind(req.job.0)
        .bind(req.worker.0)
        .bind(req.side.as_str())
        .bind(req.now.0)
        .bind(req.now.plus_secs(req.policy.time_limit_secs).0)
        .bind(tag)
}

/// One lease in its own transaction.
async fn lease_one(store: &SqliteStore, req: &LeaseRequest) -> Result<Option<Assignment>> {
    let sql = format!("BEGIN;\n{}\nCOMMIT;", lease_sql(req));
    let mut writer = store.writer.acquire().await?;
    let done = bind_lease(sqlx::query(sqlx::AssertSqlSafe(sql)), req, 0)
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

async fn lease_group(
    store: &SqliteStore,
    jobs: Vec<(LeaseRequest, oneshot::Sender<Result<Option<Assignment>>>)>,
) {
    let sql = lease_group_text(jobs.iter().map(|(req, _)| lease_sql(req)));
    let done = async {
        let mut writer = store.writer.acquire().await?;
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
        for (i, (req, _)) in jobs.iter().enumerate() {
            q = bind_lease(q, req, i as i64);
        }
        match q.fetch_all(&mut *writer).await {
            Ok(rows) => Ok(rows),
            Err(e) => {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *writer).await;
                Err(StoreError::from(e))
            }
        }
    }
    .await;
    let mut leased: Vec<Option<Assignment>> = vec![None; jobs.len()];
    let parsed = done.and_then(|rows| {
        for row in &rows {
            let i: i64 = row.try_get("request")?;
            if let Some(slot) = leased.get_mut(i as usize) {
                *slot = Some(assignment_from(row)?);
            }
        }
        Ok(())
    });
    match parsed {
        Ok(()) => {
            for ((_, reply), a) in jobs.into_iter().zip(leased) {
                let _ = reply.send(Ok(a));
            }
        }
        Err(e) => {
            // Nothing of the group was committed: lease one by one.
            tracing::warn!(error = %e, "group lease failed; leasing one by one");
            for (req, reply) in jobs {
                let _ = reply.send(lease_one(store, &req).await);
            }
        }
    }
}

async fn submit_group(
    store: &SqliteStore,
    jobs: Vec<(SubmitRequest, oneshot::Sender<Result<SubmitOutcome>>)>,
) {
    // The group is read and written on the writer, so nothing else writes
    // in between.
    let mut session = match store.session().await {
        Ok(s) => s,
        Err(e) => {
            for (_, reply) in jobs {
                let _ = reply.send(Err(anyhow::anyhow!("opening the writer: {e}").into()));
            }
            return;
        }
    };
    match plan_submit_group(session.conn(), &jobs).await {
        Ok((writes, outcomes, alone)) => {
            let committed = session.finish(writes).await;
            match committed {
                Ok(_) => {
                    for ((req, reply), outcome) in jobs.into_iter().zip(outcomes) {
                        match outcome {
                            Some(o) => {
                                let _ = reply.send(Ok(o));
                            }
                            None if alone.contains(&req.assignment.0) => {
                                let _ = reply.send(retry(|| try_submit(store, &req)).await);
                            }
                            None => {}
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "group submit failed; submitting one by one");
                    for (req, reply) in jobs {
                        let _ = reply.send(retry(|| try_submit(store, &req)).await);
                    }
                }
            }
        }
        Err(e) => {
            drop(session);
            tracing::warn!(error = %e, "reading a submit group failed; submitting one by one");
            for (req, reply) in jobs {
                let _ = reply.send(retry(|| try_submit(store, &req)).await);
            }
        }
    }
}

/// Plans a group of submits against one read of their rows, in arrival
/// order, so that submits to one task compose. Returns the writes, the
/// outcome of each submit (`None` for those to run alone afterwards) and
/// the assignments to run alone.
async fn plan_submit_group(
    conn: &mut sqlx::SqliteConnection,
    jobs: &[(SubmitRequest, oneshot::Sender<Result<SubmitOutcome>>)],
) -> Result<(Vec<Write>, Vec<Option<SubmitOutcome>>, Vec<i64>)> {
    let mut sql = String::from(concat!(
        "SELECT ",
        assignment_cols!(),
        ", ",
        tally_cols!(),
        " FROM assignments a JOIN tasks t ON t.id = a.task_id WHERE a.id IN ("
    ));
    for i in 0..jobs.len() {
        sql.push_str(if i == 0 { "?" } else { ", ?" });
    }
    sql.push(')');
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (req, _) in jobs {
        q = q.bind(req.assignment.0);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let mut assignments = std::collections::HashMap::new();
    let mut tasks = std::collections::HashMap::new();
    for row in &rows {
        let a = assignment_from(row)?;
        tasks.entry(a.task_id.0).or_insert(tally_from(row)?);
        assignments.insert(a.id.0, a);
    }
    let mut writes = Vec::new();
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut alone = Vec::new();
    for (req, _) in jobs {
        let Some(a) = assignments.get_mut(&req.assignment.0) else {
            outcomes.push(Some(SubmitOutcome::NotFound));
            continue;
        };
        let Some(task) = tasks.get_mut(&a.task_id.0) else {
            outcomes.push(Some(SubmitOutcome::NotFound));
            continue;
        };
        if alone.contains(&a.id.0) {
            outcomes.push(None);
            continue;
        }
        match plan_submit(a, task, req, None) {
            SubmitPlan::Answer(o) => outcomes.push(Some(o)),
            SubmitPlan::NeedsNewer => {
                alone.push(a.id.0);
                outcomes.push(None);
            }
            SubmitPlan::Write(w, o) => {
                writes.extend(w);
                outcomes.push(Some(o));
            }
        }
    }
    Ok((writes, outcomes, alone))
}

/// Indexes committed tasks for text search behind the imports (see
/// [`crate::search`]): at start, when woken after an import, and every
/// half minute in case a batch failed.
async fn text_indexer(pool: SqlitePool, mut wake: mpsc::Receiver<()>) {
    loop {
        loop {
            match crate::search::index_batch(&pool, crate::search::INDEX_BATCH).await {
                Ok(0) => break,
                Ok(_) => tokio::task::yield_now().await,
                Err(e) => {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(error = %e, "indexing tasks for text search failed; retrying later");
                    break;
                }
            }
        }
        // Woken, or half a minute passed; a closed channel means the store
        // is gone.
        if let Ok(None) = tokio::time::timeout(Duration::from_secs(30), wake.recv()).await {
            return;
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
    rows: &[ImportRow],
    w_slots: i64,
    s_slots: i64,
) -> Result<()> {
    // Positional `?` parameters: SQLite looks names up by a linear scan,
    // which made numbered parameters quadratic in the batch size. The
    // integers shared by every row are written into the text; a plain row
    // and a control question differ in state and slots.
    let plain = format!("({job}, {w_slots}, {s_slots}, 'open', NULL, ?, ?)");
    let gold = format!("({job}, 0, 0, 'gold', ?, ?, ?)");
    let mut seq = first_seq;
    for chunk in rows.chunks(INSERT_BATCH) {
        let mut sql = String::with_capacity(80 + chunk.len() * (plain.len() + 1));
        sql.push_str(
            "INSERT INTO tasks (job_id, w_slots, s_slots, state, gold, seq, data) VALUES ",
        );
        for (i, r) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(if r.gold.is_some() { &gold } else { &plain });
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            if let Some(g) = &r.gold {
                q = q.bind(g.as_str());
            }
            q = q.bind(seq).bind(r.data.as_str());
            seq += 1;
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Inserts a re-aggregation's rows, many per statement.
async fn insert_aggregates(
    tx: &mut Tx<'_>,
    job: i64,
    method: &str,
    rows: &[AggregateRow],
) -> Result<()> {
    let row = format!("({job}, ?, ?, ?, ?, ?)");
    for chunk in rows.chunks(INSERT_BATCH) {
        let mut sql = String::with_capacity(80 + chunk.len() * (row.len() + 1));
        sql.push_str(
            "INSERT INTO aggregates (job_id, seq, method, label, confidence, posterior) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&row);
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q
                .bind(r.seq)
                .bind(method)
                .bind(r.label.as_deref())
                .bind(r.confidence)
                .bind(r.posterior.as_str());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

use crate::migrate::apply_migrations;
use crate::shared::{answer_select, assignment_cols, store_impl, tally_cols, worker_cursor};
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn asking_whether_a_worker_has_anything_left_uses_the_index_not_a_scan() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        let plan = query_plan(&store, crate::shared::OPEN_FOR_WORKER, &[1, 2], &[]).await;
        assert!(
            plan.iter()
                .any(|d| d.contains("assignments_one_per_person")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|d| d.starts_with("SCAN a")), "{plan:?}");
    }

    /// The details of SQLite's plan for `sql`, bound to `ints` then `texts`.
    async fn query_plan(
        store: &SqliteStore,
        sql: &str,
        ints: &[i64],
        texts: &[String],
    ) -> Vec<String> {
        let sql = format!("EXPLAIN QUERY PLAN {sql}");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in ints {
            q = q.bind(*i);
        }
        for t in texts {
            q = q.bind(t.as_str());
        }
        q.fetch_all(&store.reader)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect()
    }

    async fn searched(store: &SqliteStore, job: tutti_domain::ids::JobId, q: &str) -> Vec<i64> {
        let filter = ResultFilter {
            text: tutti_domain::search::TextSearch::parse("q", q).unwrap(),
            ..ResultFilter::default()
        };
        let page = store.results_filtered(job, &filter, 0, 1000).await.unwrap();
        let summary = store.results_summary(job, &filter).await.unwrap();
        assert_eq!(summary.matching as usize, page.len(), "{q:?}");
        page.iter().map(|r| r.seq).collect()
    }

    async fn all_searched(
        store: &SqliteStore,
        job: tutti_domain::ids::JobId,
        queries: &[&str],
    ) -> Vec<Vec<i64>> {
        let mut out = Vec::new();
        for q in queries {
            out.push(searched(store, job, q).await);
        }
        out
    }

    #[tokio::test]
    async fn a_text_search_finds_the_same_rows_before_and_after_they_are_indexed() {
        use tutti_domain::job::{JobConfig, JobSpec};
        use tutti_domain::role::Role;
        use tutti_domain::time::Timestamp;
        let store = SqliteStore::connect(&crate::testing::fresh_sqlite_url())
            .await
            .unwrap();
        let t0 = Timestamp(1_700_000_000_000);
        let owner = store
            .create_user(
                &NewUser {
                    name: "owner".into(),
                    display_name: String::new(),
                    role: Role::Requester,
                },
                t0,
            )
            .await
            .unwrap();
        let ws = store.create_workspace("Lab", owner.id, t0).await.unwrap();
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "name": "Pets", "question": "Is ${name} a pet?", "answers": ["Yes", "No"],
            "policy": {"k": 1, "n": 1}
        }))
        .unwrap();
        let job = store
            .create_job(ws.id, &JobConfig::parse(spec).unwrap(), owner.id, t0)
            .await
            .unwrap();
        let animals = ["Dog", "cat", "bird"];
        let mut rows: Vec<ImportRow> = (0..30)
            .map(|i| {
                ImportRow::plain(
                    serde_json::json!({"name": format!("row {i} of the {}", animals[i % 3])})
                        .to_string(),
                )
            })
            .collect();
        rows.push(ImportRow::plain(
            serde_json::json!({"name": "ÖL und ÄRGER", "ok": true}).to_string(),
        ));
        let (tx, rx) = mpsc::channel(2);
        tx.send(ImportMsg::Rows(rows)).await.unwrap();
        tx.send(ImportMsg::Done).await.unwrap();
        store.import_tasks(&job, rx).await.unwrap();
        let queries = [
            "dog",
            "DOG 1",
            "\"row 2\"",
            "cat row",
            "1",
            "bird 7",
            "parrot",
        ];
        // Everything indexed.
        while crate::search::index_batch(&store.writer, 7).await.unwrap() > 0 {}
        let indexed = all_searched(&store, job.id, &queries).await;
        assert_eq!(indexed[0], (1..=30).step_by(3).collect::<Vec<i64>>());
        assert_eq!(indexed[1], [13, 16, 19, 22]);
        assert_eq!(indexed[2], [3, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
        assert_eq!(indexed[6], Vec::<i64>::new());
        // Indexed, case folds beyond ASCII (Tutti lower-cases the stored
        // text) and a boolean reads as written, as on PostgreSQL.
        for q in ["öl", "ärger", "ÄRGER Öl", "true"] {
            assert_eq!(searched(&store, job.id, q).await, [31], "{q:?}");
        }
        // The last 18 rows taken out of the index, as if just imported:
        // the same answers, from the index and a scan of the rest.
        let through: i64 = sqlx::query_scalar("SELECT id FROM tasks ORDER BY id LIMIT 1 OFFSET 11")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DELETE FROM task_text WHERE rowid > {through}; \
             DELETE FROM task_search WHERE id > {through}; \
             UPDATE task_text_progress SET through_id = {through};"
        )))
        .execute(&store.writer)
        .await
        .unwrap();
        assert_eq!(
            all_searched(&store, job.id, &queries).await,
            indexed,
            "half indexed: {queries:?}"
        );
        // Indexed again, each task exactly once.
        while crate::search::index_batch(&store.writer, 5).await.unwrap() > 0 {}
        // The index holds exactly the stored text: nothing twice or stale.
        sqlx::query("INSERT INTO task_text (task_text) VALUES ('integrity-check')")
            .execute(&store.writer)
            .await
            .unwrap();
        let (entries, tasks): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM task_search), (SELECT COUNT(*) FROM tasks)",
        )
        .fetch_one(&store.reader)
        .await
        .unwrap();
        assert_eq!(entries, tasks);
        assert_eq!(
            all_searched(&store, job.id, &queries).await,
            indexed,
            "indexed again: {queries:?}"
        );
        // A long term is looked up in the index, not by reading every row.
        let (clause, vals) = crate::search::text_search_sql(Backend::Sqlite, &["dog".into()], 2);
        let sql = format!("SELECT t.seq FROM tasks t WHERE t.job_id = $1{clause}");
        let plan = query_plan(&store, &sql, &[job.id.0], &vals).await;
        assert!(
            plan.iter().any(|d| d.contains("VIRTUAL TABLE INDEX")),
            "{plan:?}"
        );
    }
}
