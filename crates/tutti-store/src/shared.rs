//! The store logic both backends share, written once.
//!
//! SQLite and PostgreSQL accept the same SQL for nearly everything Tutti
//! asks (numbered `$N` parameters, `RETURNING`, partial indexes), but sqlx
//! types differ per backend, and generic sqlx code drowns in trait bounds.
//! So [`store_impl!`] is expanded once inside each backend module with that
//! backend's types and its locking clauses (`FOR UPDATE` and
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, nothing on SQLite, whose single
//! writer connection already serialises every write transaction). The
//! backend module supplies what really differs:
//!
//! - `self.reader()` / `self.writer()`: the pools for reads and writes;
//! - `self.session()`: a unit of work whose `conn()` reads under exclusive
//!   access and whose `finish(writes)` commits a list of
//!   [`crate::write::Write`]s (or `abandon()` ends it);
//! - `lease(store, req)` and `submit(store, req)`: the two hot paths
//!   (SQLite runs them through its group writer; PostgreSQL one by one
//!   with row locks), built from the shared `plan_submit`;
//! - `insert_rows(tx, job, first_seq, rows, w_slots, s_slots)`: bulk insert
//!   of imported rows.

/// Adds deltas to worker `$2`'s figures in job `$1`: answers `$3`, skips
/// `$4`, abandoned leases `$5`, time on answers `$6` (ms).
pub(crate) const BUMP_COUNTS: &str = "INSERT INTO job_worker_counts \
     (job_id, worker_id, answers, skipped, abandoned, answer_ms) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (job_id, worker_id) DO UPDATE SET answers = job_worker_counts.answers + $3, \
     skipped = job_worker_counts.skipped + $4, abandoned = job_worker_counts.abandoned + $5, \
     answer_ms = job_worker_counts.answer_ms + $6";

/// Job `$1`'s answers and decided tasks per hour, counted from its
/// assignments and tasks.
pub(crate) const RECOUNT_JOB_HOURS: &str = "INSERT INTO job_hours (job_id, at_hour, answers, decided) \
     SELECT $1, h, SUM(answers), SUM(decided) FROM ( \
       SELECT finished_at / 3600000 AS h, 1 AS answers, 0 AS decided FROM assignments \
       WHERE job_id = $1 AND status = 'submitted' AND finished_at IS NOT NULL \
       UNION ALL \
       SELECT decided_at / 3600000 AS h, 0 AS answers, 1 AS decided FROM tasks \
       WHERE job_id = $1 AND decided_at IS NOT NULL) x GROUP BY h";

/// Adds answers `$3` and decided tasks `$4` to job `$1`'s hour `$2`.
pub(crate) const BUMP_HOUR: &str = "INSERT INTO job_hours (job_id, at_hour, answers, decided) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (job_id, at_hour) DO UPDATE \
     SET answers = job_hours.answers + $3, decided = job_hours.decided + $4";

/// Takes task `$2` of job `$1` out of the decided count of its hour, before
/// it is decided again.
pub(crate) const UNCOUNT_DECIDED: &str = "UPDATE job_hours SET decided = decided - 1 \
     WHERE job_id = $1 AND at_hour = (SELECT decided_at / 3600000 FROM tasks WHERE id = $2 \
     AND decided_at IS NOT NULL)";

/// Counts the submitted answers `$where` picks, on a labeled task, as
/// answers on a labeled task, and those equal to its label as agreeing.
macro_rules! count_labeled {
    ($where:literal) => {
        concat!(
            "INSERT INTO job_worker_counts (job_id, worker_id, on_labeled, agreeing) \
             SELECT a.job_id, a.worker_id, 1, CASE WHEN a.answer = t.label THEN 1 ELSE 0 END \
             FROM assignments a JOIN tasks t ON t.id = a.task_id \
             WHERE ",
            $where,
            // The status test repeats the partial index's own predicate,
            // so that SQLite finds a task's answers by the index.
            " AND a.status IN ('pending', 'submitted', 'skipped') AND a.status = 'submitted' \
             AND t.state = 'labeled' \
             ON CONFLICT (job_id, worker_id) DO UPDATE SET on_labeled = job_worker_counts.on_labeled + 1, \
             agreeing = job_worker_counts.agreeing + excluded.agreeing"
        )
    };
}

/// Counts the answers of task `$1`, just labeled.
pub(crate) const COUNT_LABELED_TASK: &str = count_labeled!("a.task_id = $1");

/// [`COUNT_LABELED_TASK`] when flag `$2` is set (see [`Write::derived_when`]).
pub(crate) const COUNT_LABELED_TASK_WHEN: &str = count_labeled!("a.task_id = $1 AND $2 <> 0");

/// Counts answer `$1`, given to a task labeled before it came, when flag
/// `$2` is set.
pub(crate) const COUNT_LABELED_ANSWER_WHEN: &str = count_labeled!("a.id = $1 AND $2 <> 0");

/// Counts a control question's answer for worker `$2` of job `$1` (`$3`: 1
/// if right) when flag `$4` is set.
pub(crate) const COUNT_GOLD_WHEN: &str = "INSERT INTO job_gold (job_id, worker_id, seen, correct) \
     SELECT $1, $2, 1, $3 WHERE $4 <> 0 \
     ON CONFLICT (job_id, worker_id) DO UPDATE \
     SET seen = job_gold.seen + 1, correct = job_gold.correct + excluded.correct";

/// Takes back what [`COUNT_LABELED_TASK`] counted for task `$1` of job
/// `$2`, before the task is decided again.
pub(crate) const UNCOUNT_LABELED_TASK: &str = "UPDATE job_worker_counts SET \
     on_labeled = on_labeled - 1, \
     agreeing = agreeing - (SELECT CASE WHEN a.answer = t.label THEN 1 ELSE 0 END \
       FROM assignments a JOIN tasks t ON t.id = a.task_id \
       WHERE a.task_id = $1 AND a.worker_id = job_worker_counts.worker_id \
       AND a.status IN ('pending', 'submitted', 'skipped') AND a.status = 'submitted') \
     WHERE job_id = $2 AND worker_id IN (SELECT a.worker_id FROM assignments a \
       JOIN tasks t ON t.id = a.task_id \
       WHERE a.task_id = $1 AND a.status IN ('pending', 'submitted', 'skipped') \
       AND a.status = 'submitted' AND t.state = 'labeled')";

use crate::model::Assignment;
use crate::write::{Val, Write};

/// Changes to a worker's figures in a job.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Deltas {
    pub answers: i64,
    pub skipped: i64,
    pub abandoned: i64,
    pub answer_ms: i64,
}

/// Adds `d` to the figures of the worker and job of `a`.
pub(crate) fn bump_counts(a: &Assignment, d: Deltas) -> Write {
    bump_worker(a.job_id.0, a.worker_id.0, d)
}

/// Adds `d` to worker `worker`'s figures in job `job`. An upsert always
/// changes its one row, so it carries no guard of its own.
pub(crate) fn bump_worker(job: i64, worker: i64, d: Deltas) -> Write {
    Write::derived(
        BUMP_COUNTS,
        vec![
            Val::I64(job),
            Val::I64(worker),
            Val::I64(d.answers),
            Val::I64(d.skipped),
            Val::I64(d.abandoned),
            Val::I64(d.answer_ms),
        ],
    )
}

/// Adds `answers` and `decided` to job `job`'s figures of the hour holding
/// `at` (an upsert, unguarded like [`bump_worker`]).
pub(crate) fn bump_hour(job: i64, at: i64, answers: i64, decided: i64) -> Write {
    Write::derived(
        BUMP_HOUR,
        vec![
            Val::I64(job),
            Val::I64(at.div_euclid(3_600_000)),
            Val::I64(answers),
            Val::I64(decided),
        ],
    )
}

/// Whether a task whose state went from `before` to `after` was decided
/// just now (and given its `decided_at`).
pub(crate) fn decided_now(before: &str, after: &str) -> bool {
    before == "open" && after != "open"
}

/// Counts a task's answers against its label when the task has just been
/// labeled (its state went from `before` to `after`).
pub(crate) fn newly_labeled(task: i64, before: &str, after: &str) -> Option<Write> {
    (before != "labeled" && after == "labeled")
        .then(|| Write::derived(COUNT_LABELED_TASK, vec![Val::I64(task)]))
}

/// Every worker's figures in job `$1`, counted from its assignments (as
/// the migration that introduced them fills them).
pub(crate) const RECOUNT_WORKER_FIGURES: &str = "INSERT INTO job_worker_counts \
     (job_id, worker_id, answers, skipped, abandoned, answer_ms, on_labeled, agreeing) \
     SELECT a.job_id, a.worker_id, \
       SUM(CASE WHEN a.status = 'submitted' THEN 1 ELSE 0 END), \
       SUM(CASE WHEN a.status = 'skipped' THEN 1 ELSE 0 END), \
       SUM(CASE WHEN a.status = 'abandoned' THEN 1 ELSE 0 END), \
       SUM(CASE WHEN a.status = 'submitted' THEN a.finished_at - a.leased_at ELSE 0 END), \
       SUM(CASE WHEN a.status = 'submitted' AND t.state = 'labeled' THEN 1 ELSE 0 END), \
       SUM(CASE WHEN a.status = 'submitted' AND t.state = 'labeled' AND a.answer = t.label \
         THEN 1 ELSE 0 END) \
     FROM assignments a JOIN tasks t ON t.id = a.task_id \
     WHERE a.job_id = $1 AND a.status IN ('submitted', 'skipped', 'abandoned', 'excluded') \
     GROUP BY a.job_id, a.worker_id";

/// Whether job `$1` has an open task worker `$2` has neither answered nor
/// skipped. The status test repeats the partial index's own predicate
/// (`assignments_one_per_person`) so that index serves it: SQLite uses a
/// partial index only for a query that states its condition, and without it
/// each open task scanned every assignment in the store.
pub(crate) const OPEN_FOR_WORKER: &str = "SELECT 1 FROM tasks t WHERE t.job_id = $1 AND t.state = 'open' \
     AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.task_id = t.id AND a.worker_id = $2 \
     AND a.status IN ('pending', 'submitted', 'skipped') AND a.status <> 'pending') LIMIT 1";

/// The seq of the furthest task worker `$2` holds, answered or skipped in
/// job `$1`, or -1: where the next lease starts looking. The index
/// `assignments_worker_cursor` is walked from its end, so this stops at the
/// first live claim. A released or expired lease does not move the cursor.
macro_rules! worker_cursor {
    () => {
        "COALESCE((SELECT p.seq FROM tasks p WHERE p.id = \
         (SELECT w.task_id FROM assignments w WHERE w.worker_id = $2 AND w.job_id = $1 \
          AND w.status IN ('pending', 'submitted', 'skipped') ORDER BY w.task_id DESC LIMIT 1)), -1)"
    };
}

/// Columns of an assignment joined with its task (`a` and `t`).
macro_rules! assignment_cols {
    () => {
        "a.id, a.job_id, a.task_id, a.worker_id, a.side, a.status, a.leased_at, a.deadline, \
         a.answer, a.idempotency_key, a.late, t.seq, t.data"
    };
}

/// Columns of a task needed to re-evaluate it (`t`).
macro_rules! tally_cols {
    () => {
        "t.id AS t_id, t.state AS t_state, t.w_votes, t.s_votes, t.w_pending, t.s_pending, \
         t.w_slots, t.s_slots, t.gold AS t_gold, t.w_evidence"
    };
}

/// Submitted answers of job `$1`, with their task's `_id` and worker's name.
macro_rules! answer_select {
    () => {
        "SELECT a.id, t.seq, a.worker_id, u.name, a.side, a.answer, a.grade, a.finished_at, a.late, \
         CAST(CASE WHEN t.state = 'gold' THEN 1 ELSE 0 END AS BIGINT) AS control \
         FROM assignments a JOIN tasks t ON t.id = a.task_id JOIN users u ON u.id = a.worker_id \
         WHERE a.job_id = $1 AND a.status = 'submitted'"
    };
}

/// Expands the shared implementation of [`crate::Store`] for `$store`, whose
/// sqlx database is `$db` (row type `$row`). `$for_update`,
/// `$for_update_of_a` (lock only the assignment of a join) and
/// `$skip_locked` are appended to the queries that lock rows.
macro_rules! store_impl {
    ($store:ty, $db:ty, $row:ty, $backend:expr, $for_update:literal, $for_update_of_a:literal, $skip_locked:literal, $relock_task:expr) => {
        use $crate::model::*;
        use $crate::shared::{Deltas, bump_counts, bump_hour, bump_worker, decided_now, newly_labeled};
        use $crate::write::{Val, Write};
        use $crate::search::text_search_sql;
        use $crate::{Backend, Result, Store, StoreError};
        use anyhow::Context as _;
        use serde_json::{Map, Value};
        use sqlx::Row as _;
        use std::collections::BTreeMap;
        use tutti_domain::FieldError;
        use tutti_domain::ids::{AssignmentId, JobId, RunId, TaskId, TokenId, UserId, WorkspaceId};
        use tutti_domain::job::JobConfig;
        use tutti_domain::policy::{Confusion, Outcome, Policy, Side, Tally, Votes};
        use tutti_domain::role::Role;
        use tutti_domain::time::Timestamp;

        type Tx<'a> = sqlx::Transaction<'a, $db>;

        fn role_of(s: &str) -> Result<Role> {
            s.parse::<Role>()
                .map_err(|e| StoreError::Internal(anyhow::anyhow!("stored role: {e}")))
        }

        fn side_of(s: &str) -> Result<Side> {
            Side::parse(s).ok_or_else(|| StoreError::Internal(anyhow::anyhow!("stored side {s:?}")))
        }

        fn votes_of(s: &str) -> Result<Votes> {
            serde_json::from_str(s).context("stored votes").map_err(StoreError::Internal)
        }

        fn evidence_of(s: &str) -> Result<tutti_domain::policy::Evidence> {
            Ok(serde_json::from_str(s).context("stored evidence")?)
        }

        fn json_text<T: serde::Serialize>(v: &T) -> String {
            serde_json::to_string(v).expect("serialising plain data cannot fail")
        }

        fn object_of(s: &str) -> Result<Map<String, Value>> {
            serde_json::from_str(s).context("stored row").map_err(StoreError::Internal)
        }

        fn user_from(row: &$row) -> Result<User> {
            Ok(User {
                id: UserId(row.try_get("id")?),
                name: row.try_get("name")?,
                display_name: row.try_get("display_name")?,
                role: role_of(row.try_get::<&str, _>("role")?)?,
                disabled: row.try_get::<i64, _>("disabled")? != 0,
                created_at: Timestamp(row.try_get("created_at")?),
            })
        }

        fn token_from(row: &$row) -> Result<Token> {
            Ok(Token {
                id: TokenId(row.try_get("id")?),
                user_id: UserId(row.try_get("user_id")?),
                name: row.try_get("name")?,
                created_at: Timestamp(row.try_get("created_at")?),
                revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(Timestamp),
                kind: match row.try_get::<&str, _>("kind")? {
                    "session" => TokenKind::Session,
                    _ => TokenKind::Api,
                },
                expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(Timestamp),
            })
        }

        fn invitation_from(row: &$row) -> Result<Invitation> {
            Ok(Invitation {
                id: row.try_get("id")?,
                workspace_id: WorkspaceId(row.try_get("workspace_id")?),
                role: role_of(row.try_get::<&str, _>("role")?)?,
                created_by: UserId(row.try_get("created_by")?),
                created_at: Timestamp(row.try_get("created_at")?),
                expires_at: Timestamp(row.try_get("expires_at")?),
                used_by: row.try_get::<Option<i64>, _>("used_by")?.map(UserId),
            })
        }

        fn workspace_from(row: &$row) -> Result<Workspace> {
            Ok(Workspace {
                id: WorkspaceId(row.try_get("id")?),
                name: row.try_get("name")?,
                created_by: UserId(row.try_get("created_by")?),
                created_at: Timestamp(row.try_get("created_at")?),
                registration: row
                    .try_get::<&str, _>("registration")?
                    .parse()
                    .map_err(|e: String| StoreError::Internal(anyhow::anyhow!("stored registration: {e}")))?,
            })
        }

        fn job_from(row: &$row) -> Result<Job> {
            let config: JobConfig = serde_json::from_str(row.try_get::<&str, _>("config")?)
                .context("stored job configuration")?;
            Ok(Job {
                id: JobId(row.try_get("id")?),
                workspace_id: WorkspaceId(row.try_get("workspace_id")?),
                config,
                created_by: UserId(row.try_get("created_by")?),
                created_at: Timestamp(row.try_get("created_at")?),
                updated_at: Timestamp(row.try_get("updated_at")?),
            })
        }

        fn label_task_from(row: &$row) -> Result<LabelTask> {
            let config: String = row.try_get("config")?;
            let metrics: String = row.try_get("metrics")?;
            Ok(LabelTask {
                task_id: row.try_get("task_id")?,
                config: serde_json::from_str(&config).unwrap_or_default(),
                stat: row.try_get("stat")?,
                prod_stat: row.try_get("prod_stat")?,
                result: row.try_get("result")?,
                metrics: serde_json::from_str(&metrics).unwrap_or_default(),
                error: row.try_get("error")?,
                created_at: Timestamp(row.try_get("created_at")?),
                updated_at: Timestamp(row.try_get("updated_at")?),
            })
        }

        fn run_from(row: &$row) -> Result<Run> {
            let status: &str = row.try_get("status")?;
            Ok(Run {
                id: RunId(row.try_get("id")?),
                workspace_id: WorkspaceId(row.try_get("workspace_id")?),
                name: row.try_get("name")?,
                format: row.try_get("format")?,
                program: row.try_get("program")?,
                params: object_of(row.try_get("params")?)?,
                status: RunStatus::parse(status).ok_or_else(|| {
                    StoreError::Internal(anyhow::anyhow!("stored run status {status:?}"))
                })?,
                error: row.try_get("error")?,
                generation: row.try_get("generation")?,
                after_run: row.try_get::<Option<i64>, _>("after_run")?.map(RunId),
                webhook_url: row.try_get("webhook_url")?,
                webhook_secret: row.try_get("webhook_secret")?,
                callback_secret: row.try_get("callback_secret")?,
                webhook_state: row.try_get("webhook_state")?,
                webhook_attempts: row.try_get("webhook_attempts")?,
                webhook_next_at: row.try_get::<Option<i64>, _>("webhook_next_at")?.map(Timestamp),
                created_by: UserId(row.try_get("created_by")?),
                created_at: Timestamp(row.try_get("created_at")?),
                started_at: row.try_get::<Option<i64>, _>("started_at")?.map(Timestamp),
                finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(Timestamp),
                updated_at: Timestamp(row.try_get("updated_at")?),
            })
        }

        fn run_node_from(row: &$row) -> Result<RunNode> {
            let status: &str = row.try_get("status")?;
            Ok(RunNode {
                index: row.try_get("idx")?,
                op: row.try_get("op")?,
                label: row.try_get("label")?,
                status: NodeStatus::parse(status).ok_or_else(|| {
                    StoreError::Internal(anyhow::anyhow!("stored step status {status:?}"))
                })?,
                rows_in: row.try_get("rows_in")?,
                rows_out: row.try_get("rows_out")?,
                started_at: row.try_get::<Option<i64>, _>("started_at")?.map(Timestamp),
                finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(Timestamp),
                error: row.try_get("error")?,
                job_id: row.try_get::<Option<i64>, _>("job_id")?.map(JobId),
            })
        }

        fn assignment_from(row: &$row) -> Result<Assignment> {
            let status: &str = row.try_get("status")?;
            Ok(Assignment {
                id: AssignmentId(row.try_get("id")?),
                job_id: JobId(row.try_get("job_id")?),
                task_id: TaskId(row.try_get("task_id")?),
                seq: row.try_get("seq")?,
                worker_id: UserId(row.try_get("worker_id")?),
                side: side_of(row.try_get("side")?)?,
                status: AssignmentStatus::parse(status).ok_or_else(|| {
                    StoreError::Internal(anyhow::anyhow!("stored assignment status {status:?}"))
                })?,
                leased_at: Timestamp(row.try_get("leased_at")?),
                deadline: Timestamp(row.try_get("deadline")?),
                answer: row.try_get("answer")?,
                idempotency_key: row.try_get("idempotency_key")?,
                late: row.try_get::<i64, _>("late")? != 0,
                data: object_of(row.try_get("data")?)?,
            })
        }

        fn answer_from(r: &$row) -> Result<AnswerRecord> {
            Ok(AnswerRecord {
                assignment_id: AssignmentId(r.try_get("id")?),
                seq: r.try_get("seq")?,
                worker_id: UserId(r.try_get("worker_id")?),
                worker_name: r.try_get("name")?,
                side: side_of(r.try_get("side")?)?,
                annotation: r.try_get::<Option<String>, _>("answer")?.unwrap_or_default(),
                grade: r.try_get("grade")?,
                submitted_at: Timestamp(r.try_get::<Option<i64>, _>("finished_at")?.unwrap_or(0)),
                late: r.try_get::<i64, _>("late")? != 0,
                control: r.try_get::<i64, _>("control")? != 0,
            })
        }

        /// A task's counts as stored, ready to re-evaluate.
        struct TaskTally {
            id: i64,
            state: String,
            tally: Tally,
            w_slots: i64,
            s_slots: i64,
            /// The known answer of a control question.
            gold: Option<String>,
            /// The stored values the tally was read from: a write of this
            /// task applies only if they are unchanged.
            read_as: [Val; 5],
        }

        fn tally_from(row: &$row) -> Result<TaskTally> {
            let pending = |name: &str| -> Result<u32> {
                Ok(u32::try_from(row.try_get::<i64, _>(name)?.max(0)).unwrap_or(u32::MAX))
            };
            Ok(TaskTally {
                id: row.try_get("t_id")?,
                state: row.try_get("t_state")?,
                tally: Tally {
                    worker_votes: votes_of(row.try_get("w_votes")?)?,
                    steward_votes: votes_of(row.try_get("s_votes")?)?,
                    worker_pending: pending("w_pending")?,
                    steward_pending: pending("s_pending")?,
                    worker_evidence: evidence_of(row.try_get("w_evidence")?)?,
                },
                w_slots: row.try_get("w_slots")?,
                s_slots: row.try_get("s_slots")?,
                gold: row.try_get("t_gold")?,
                read_as: [
                    Val::Text(row.try_get("w_votes")?),
                    Val::Text(row.try_get("s_votes")?),
                    Val::I64(row.try_get("w_pending")?),
                    Val::I64(row.try_get("s_pending")?),
                    Val::Text(row.try_get("t_state")?),
                ],
            })
        }

        /// The write that stores a task's tally, re-evaluating it while it
        /// is open; and the task's state after it. A decided task keeps its
        /// outcome: answers that arrive on leases still valid after the
        /// decision are recorded but change nothing (the `CASE`s keep the
        /// stored outcome of a task that is no longer open).
        /// The writes of a task's re-evaluated tally: its counts (always,
        /// checked against the values read) and, flagged on only when the
        /// task is decided now, its outcome. Kept apart so that a write of
        /// counts alone leaves the indexes on state and label untouched,
        /// and so that both have the same text whatever the outcome.
        fn apply_tally(task: &mut TaskTally, policy: &Policy, now: Timestamp) -> ([Write; 2], String) {
            let t = &task.tally;
            let open = task.state == "open";
            let eval = policy.evaluate(t);
            let (label, confidence, decided_by) = match &eval.outcome {
                Outcome::Labeled {
                    label,
                    side,
                    confidence,
                } => (Some(label.clone()), Some(*confidence), Some(side.as_str().to_owned())),
                _ => (None, None, None),
            };
            let state = if open {
                eval.outcome.state().to_owned()
            } else {
                task.state.clone()
            };
            let decided = open && state != "open";
            let counts = Write::new(
                "UPDATE tasks SET w_votes = $1, s_votes = $2, w_pending = $3, s_pending = $4, \
                 w_slots = CASE WHEN state = 'open' THEN $5 ELSE 0 END, \
                 s_slots = CASE WHEN state = 'open' THEN $6 ELSE 0 END, \
                 w_evidence = $7 \
                 WHERE id = $8 AND w_votes = $9 AND s_votes = $10 AND w_pending = $11 \
                 AND s_pending = $12 AND state = $13",
                vec![
                    Val::Text(json_text(&t.worker_votes)),
                    Val::Text(json_text(&t.steward_votes)),
                    Val::I64(i64::from(t.worker_pending)),
                    Val::I64(i64::from(t.steward_pending)),
                    Val::I64(i64::from(eval.worker_slots)),
                    Val::I64(i64::from(eval.steward_slots)),
                    Val::Text(json_text(&t.worker_evidence)),
                    Val::I64(task.id),
                    task.read_as[0].clone(),
                    task.read_as[1].clone(),
                    task.read_as[2].clone(),
                    task.read_as[3].clone(),
                    task.read_as[4].clone(),
                ],
            );
            let outcome = Write::derived_when(
                "UPDATE tasks SET state = $1, label = $2, confidence = $3, decided_by = $4, \
                 decided_at = $5, w_slots = 0, s_slots = 0 WHERE id = $6 AND state = 'open' AND $7 <> 0",
                vec![
                    Val::Text(state.clone()),
                    Val::OptText(label),
                    Val::OptF64(confidence),
                    Val::OptText(decided_by),
                    Val::OptI64(decided.then_some(now.0)),
                    Val::I64(task.id),
                ],
                decided,
            );
            let write = [counts, outcome];
            // What the row holds once the write is applied.
            task.read_as = [
                Val::Text(json_text(&t.worker_votes)),
                Val::Text(json_text(&t.steward_votes)),
                Val::I64(i64::from(t.worker_pending)),
                Val::I64(i64::from(t.steward_pending)),
                Val::Text(state.clone()),
            ];
            if open {
                task.w_slots = i64::from(eval.worker_slots);
                task.s_slots = i64::from(eval.steward_slots);
            }
            task.state = state.clone();
            (write, state)
        }

        /// Binds a write's values to a query.
        fn bind_all<'q>(
            mut q: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
            vals: &'q [Val],
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
            for v in vals {
                q = match v {
                    Val::I64(x) => q.bind(*x),
                    Val::OptI64(x) => q.bind(*x),
                    Val::Text(x) => q.bind(x.as_str()),
                    Val::OptText(x) => q.bind(x.as_deref()),
                    Val::OptF64(x) => q.bind(*x),
                };
            }
            q
        }

        fn pending_mut(tally: &mut Tally, side: Side) -> &mut u32 {
            match side {
                Side::Worker => &mut tally.worker_pending,
                Side::Steward => &mut tally.steward_pending,
            }
        }

        /// The writes that lease `task` to `req.worker` (the assignment,
        /// returning its id, then the task's new tally), and the lease's
        /// deadline.
        fn lease_writes(req: &LeaseRequest, task: &mut TaskTally) -> (Vec<Write>, Timestamp) {
            *pending_mut(&mut task.tally, req.side) += 1;
            let deadline = req.now.plus_secs(req.policy.time_limit_secs);
            let insert = Write::returning_id(
                "INSERT INTO assignments (job_id, task_id, worker_id, side, status, leased_at, deadline) \
                 VALUES ($1, $2, $3, $4, 'pending', $5, $6)",
                vec![
                    Val::I64(req.job.0),
                    Val::I64(task.id),
                    Val::I64(req.worker.0),
                    Val::Text(req.side.as_str().to_owned()),
                    Val::I64(req.now.0),
                    Val::I64(deadline.0),
                ],
            );
            let (update, _) = apply_tally(task, &req.policy, req.now);
            let mut writes = vec![insert];
            writes.extend(update);
            (writes, deadline)
        }

        /// The assignment [`lease_writes`] made, once its id is known.
        fn new_lease(
            req: &LeaseRequest,
            id: i64,
            task: &TaskTally,
            seq: i64,
            deadline: Timestamp,
            data: Map<String, Value>,
        ) -> Assignment {
            Assignment {
                id: AssignmentId(id),
                job_id: req.job,
                task_id: TaskId(task.id),
                seq,
                worker_id: req.worker,
                side: req.side,
                status: AssignmentStatus::Pending,
                leased_at: req.now,
                deadline,
                answer: None,
                idempotency_key: None,
                late: false,
                data,
            }
        }

        /// A value a results filter binds.
        enum FilterVal {
            Text(String),
            Real(f64),
            Int(i64),
        }

        /// The `AND …` clauses of `filter` over tasks `t`, numbering its
        /// parameters from `$first`.
        fn filter_sql(filter: &ResultFilter, first: usize) -> (String, Vec<FilterVal>) {
            let mut sql = String::new();
            let mut vals = Vec::new();
            let mut add = |clause: &str, v: FilterVal| {
                let n = first + vals.len();
                sql.push_str(" AND ");
                sql.push_str(&clause.replace("$?", &format!("${n}")));
                vals.push(v);
            };
            if let Some(state) = &filter.state {
                add("t.state = $?", FilterVal::Text(state.clone()));
            }
            if let Some(label) = &filter.label {
                add("t.label = $?", FilterVal::Text(label.clone()));
            }
            if let Some(lo) = filter.min_confidence {
                add("t.confidence >= $?", FilterVal::Real(lo));
            }
            if let Some(hi) = filter.max_confidence {
                add("t.confidence <= $?", FilterVal::Real(hi));
            }
            if let Some(w) = filter.worker {
                add(
                    "EXISTS (SELECT 1 FROM assignments a WHERE a.task_id = t.id AND a.worker_id = $? \
                     AND a.status = 'submitted')",
                    FilterVal::Int(w.0),
                );
            }
            if let Some(search) = &filter.text {
                let (clause, texts) = text_search_sql($backend, search.terms(), first + vals.len());
                sql.push_str(&clause);
                vals.extend(texts.into_iter().map(FilterVal::Text));
            }
            (sql, vals)
        }

        fn bind_filter<'q>(
            mut q: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
            vals: Vec<FilterVal>,
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
            for v in vals {
                q = match v {
                    FilterVal::Text(s) => q.bind(s),
                    FilterVal::Real(f) => q.bind(f),
                    FilterVal::Int(i) => q.bind(i),
                };
            }
            q
        }

        type Conn = <$db as sqlx::Database>::Connection;

        async fn lock_task(conn: &mut Conn, task: TaskId) -> Result<TaskTally> {
            let row = sqlx::query(concat!(
                "SELECT ",
                tally_cols!(),
                " FROM tasks t WHERE t.id = $1",
                $for_update
            ))
            .bind(task.0)
            .fetch_one(&mut *conn)
            .await?;
            tally_from(&row)
        }

        /// An assignment and its task's tally, locked for a change. The
        /// assignment is locked first and its task second, everywhere, so
        /// concurrent transactions never wait on each other in a circle.
        async fn lock_assignment(
            conn: &mut Conn,
            id: AssignmentId,
        ) -> Result<Option<(Assignment, TaskTally)>> {
            let Some(row) = sqlx::query(concat!(
                "SELECT ",
                assignment_cols!(),
                ", ",
                tally_cols!(),
                " FROM assignments a JOIN tasks t ON t.id = a.task_id WHERE a.id = $1",
                $for_update_of_a
            ))
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await?
            else {
                return Ok(None);
            };
            let assignment = assignment_from(&row)?;
            let task = if $relock_task {
                lock_task(conn, assignment.task_id).await?
            } else {
                tally_from(&row)?
            };
            Ok(Some((assignment, task)))
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                $backend
            }

            async fn create_user(&self, new: &NewUser, now: Timestamp) -> Result<User> {
                let res = sqlx::query(
                    "INSERT INTO users (name, display_name, role, created_at) VALUES ($1, $2, $3, $4) \
                     RETURNING id, name, display_name, role, disabled, created_at",
                )
                .bind(&new.name)
                .bind(&new.display_name)
                .bind(new.role.as_str())
                .bind(now.0)
                .fetch_one(self.writer())
                .await;
                match res {
                    Ok(row) => user_from(&row),
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        Err(StoreError::Conflict(FieldError::new(
                            "name",
                            format!("a user named {:?} already exists", new.name),
                        )))
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn get_user(&self, id: UserId) -> Result<Option<User>> {
                sqlx::query("SELECT * FROM users WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(self.reader())
                    .await?
                    .map(|r| user_from(&r))
                    .transpose()
            }

            async fn get_user_by_name(&self, name: &str) -> Result<Option<User>> {
                sqlx::query("SELECT * FROM users WHERE name = $1")
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await?
                    .map(|r| user_from(&r))
                    .transpose()
            }

            async fn list_users(&self, after: Option<i64>, limit: u32) -> Result<Vec<User>> {
                sqlx::query("SELECT * FROM users WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(after.unwrap_or(0))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(user_from)
                    .collect()
            }

            async fn set_user_disabled(&self, id: UserId, disabled: bool) -> Result<bool> {
                let done = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
                    .bind(i64::from(disabled))
                    .bind(id.0)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_user_role(&self, id: UserId, role: Role) -> Result<bool> {
                let done = sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                    .bind(role.as_str())
                    .bind(id.0)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn count_users(&self) -> Result<i64> {
                Ok(sqlx::query("SELECT COUNT(*) FROM users")
                    .fetch_one(self.reader())
                    .await?
                    .try_get(0)?)
            }

            async fn create_token(
                &self,
                user: UserId,
                name: &str,
                hash: &str,
                now: Timestamp,
            ) -> Result<Token> {
                let row = sqlx::query(
                    "INSERT INTO tokens (user_id, name, hash, created_at) VALUES ($1, $2, $3, $4) \
                     RETURNING id, user_id, name, created_at, revoked_at, kind, expires_at",
                )
                .bind(user.0)
                .bind(name)
                .bind(hash)
                .bind(now.0)
                .fetch_one(self.writer())
                .await?;
                token_from(&row)
            }

            async fn get_token(&self, id: TokenId) -> Result<Option<Token>> {
                sqlx::query("SELECT * FROM tokens WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(self.reader())
                    .await?
                    .map(|r| token_from(&r))
                    .transpose()
            }

            async fn list_tokens(&self, user: UserId) -> Result<Vec<Token>> {
                sqlx::query("SELECT * FROM tokens WHERE user_id = $1 ORDER BY id DESC")
                    .bind(user.0)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(token_from)
                    .collect()
            }

            async fn revoke_token(&self, id: TokenId, now: Timestamp) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now.0)
                .bind(id.0)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn authenticate(&self, hash: &str, now: Timestamp) -> Result<Option<User>> {
                sqlx::query(
                    "SELECT u.* FROM tokens k JOIN users u ON u.id = k.user_id \
                     WHERE k.hash = $1 AND k.revoked_at IS NULL AND u.disabled = 0 \
                     AND (k.expires_at IS NULL OR k.expires_at > $2)",
                )
                .bind(hash)
                .bind(now.0)
                .fetch_optional(self.reader())
                .await?
                .map(|r| user_from(&r))
                .transpose()
            }

            async fn create_session(
                &self,
                user: UserId,
                hash: &str,
                now: Timestamp,
                expires: Timestamp,
            ) -> Result<Token> {
                let row = sqlx::query(
                    "INSERT INTO tokens (user_id, name, hash, created_at, kind, expires_at) \
                     VALUES ($1, 'web sign-in', $2, $3, 'session', $4) \
                     RETURNING id, user_id, name, created_at, revoked_at, kind, expires_at",
                )
                .bind(user.0)
                .bind(hash)
                .bind(now.0)
                .bind(expires.0)
                .fetch_one(self.writer())
                .await?;
                token_from(&row)
            }

            async fn revoke_session_hash(&self, hash: &str, now: Timestamp) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE tokens SET revoked_at = $2 WHERE hash = $1 AND kind = 'session' AND revoked_at IS NULL",
                )
                .bind(hash)
                .bind(now.0)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn revoke_sessions(&self, user: UserId, keep: &str, now: Timestamp) -> Result<u64> {
                let done = sqlx::query(
                    "UPDATE tokens SET revoked_at = $3 WHERE user_id = $1 AND kind = 'session' \
                     AND hash <> $2 AND revoked_at IS NULL",
                )
                .bind(user.0)
                .bind(keep)
                .bind(now.0)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected())
            }

            async fn set_password(&self, user: UserId, hash: Option<&str>) -> Result<bool> {
                let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                    .bind(user.0)
                    .bind(hash)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn password_of(&self, name: &str) -> Result<Option<(User, Option<String>)>> {
                sqlx::query("SELECT * FROM users WHERE name = $1")
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await?
                    .map(|r| Ok((user_from(&r)?, r.try_get("password_hash")?)))
                    .transpose()
            }

            async fn sign_up(
                &self,
                new: &NewUser,
                password_hash: &str,
                joining: Joining<'_>,
                now: Timestamp,
            ) -> Result<(User, WorkspaceId, Role)> {
                let mut tx = self.writer().begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO users (name, display_name, role, created_at, password_hash) \
                     VALUES ($1, $2, $3, $4, $5) \
                     RETURNING id, name, display_name, role, disabled, created_at",
                )
                .bind(&new.name)
                .bind(&new.display_name)
                .bind(new.role.as_str())
                .bind(now.0)
                .bind(password_hash)
                .fetch_one(&mut *tx)
                .await;
                let user = match inserted {
                    Ok(row) => user_from(&row)?,
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        return Err(StoreError::Conflict(FieldError::new(
                            "name",
                            format!("a user named {:?} already exists", new.name),
                        )));
                    }
                    Err(e) => return Err(e.into()),
                };
                let (ws, role) = match joining {
                    Joining::Invitation(hash) => {
                        let row = sqlx::query(
                            "UPDATE invitations SET used_by = $2, used_at = $3 \
                             WHERE hash = $1 AND used_at IS NULL AND expires_at > $3 \
                             RETURNING workspace_id, role",
                        )
                        .bind(hash)
                        .bind(user.id.0)
                        .bind(now.0)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| {
                            StoreError::Conflict(FieldError::new(
                                "invitation",
                                "this invitation is unknown, already used or expired; ask for a new one",
                            ))
                        })?;
                        (
                            WorkspaceId(row.try_get("workspace_id")?),
                            role_of(row.try_get::<&str, _>("role")?)?,
                        )
                    }
                    Joining::Open(ws) => {
                        let open: Option<i64> = sqlx::query_scalar(
                            "SELECT id FROM workspaces WHERE id = $1 AND registration = 'open'",
                        )
                        .bind(ws.0)
                        .fetch_optional(&mut *tx)
                        .await?;
                        if open.is_none() {
                            return Err(StoreError::Conflict(FieldError::new(
                                "workspace",
                                "this workspace takes new members by invitation only",
                            )));
                        }
                        (ws, Role::Worker)
                    }
                };
                sqlx::query("INSERT INTO memberships (workspace_id, user_id, role) VALUES ($1, $2, $3)")
                    .bind(ws.0)
                    .bind(user.id.0)
                    .bind(role.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok((user, ws, role))
            }

            async fn create_workspace(
                &self,
                name: &str,
                creator: UserId,
                now: Timestamp,
            ) -> Result<Workspace> {
                let mut tx = self.writer().begin().await?;
                let row = sqlx::query(
                    "INSERT INTO workspaces (name, created_by, created_at) VALUES ($1, $2, $3) \
                     RETURNING id, name, created_by, created_at, registration",
                )
                .bind(name)
                .bind(creator.0)
                .bind(now.0)
                .fetch_one(&mut *tx)
                .await?;
                let ws = workspace_from(&row)?;
                sqlx::query("INSERT INTO memberships (workspace_id, user_id, role) VALUES ($1, $2, $3)")
                    .bind(ws.id.0)
                    .bind(creator.0)
                    .bind(Role::Admin.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(ws)
            }

            async fn get_workspace(&self, id: WorkspaceId) -> Result<Option<Workspace>> {
                sqlx::query("SELECT * FROM workspaces WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(self.reader())
                    .await?
                    .map(|r| workspace_from(&r))
                    .transpose()
            }

            async fn list_workspaces(
                &self,
                member: Option<UserId>,
                after: Option<i64>,
                limit: u32,
            ) -> Result<Vec<Workspace>> {
                let rows = match member {
                    Some(user) => {
                        sqlx::query(
                            "SELECT w.* FROM workspaces w JOIN memberships m ON m.workspace_id = w.id \
                             WHERE m.user_id = $1 AND w.id > $2 ORDER BY w.id LIMIT $3",
                        )
                        .bind(user.0)
                        .bind(after.unwrap_or(0))
                        .bind(i64::from(limit))
                        .fetch_all(self.reader())
                        .await?
                    }
                    None => {
                        sqlx::query("SELECT * FROM workspaces WHERE id > $1 ORDER BY id LIMIT $2")
                            .bind(after.unwrap_or(0))
                            .bind(i64::from(limit))
                            .fetch_all(self.reader())
                            .await?
                    }
                };
                rows.iter().map(workspace_from).collect()
            }

            async fn set_member(&self, ws: WorkspaceId, user: UserId, role: Role) -> Result<()> {
                sqlx::query(
                    "INSERT INTO memberships (workspace_id, user_id, role) VALUES ($1, $2, $3) \
                     ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(ws.0)
                .bind(user.0)
                .bind(role.as_str())
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn set_registration(&self, ws: WorkspaceId, how: Registration) -> Result<bool> {
                let done = sqlx::query("UPDATE workspaces SET registration = $2 WHERE id = $1")
                    .bind(ws.0)
                    .bind(how.as_str())
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn open_workspaces(&self) -> Result<Vec<Workspace>> {
                sqlx::query("SELECT * FROM workspaces WHERE registration = 'open' ORDER BY name, id")
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(workspace_from)
                    .collect()
            }

            async fn create_invitation(
                &self,
                ws: WorkspaceId,
                role: Role,
                hash: &str,
                by: UserId,
                now: Timestamp,
                expires: Timestamp,
            ) -> Result<Invitation> {
                let row = sqlx::query(
                    "INSERT INTO invitations (workspace_id, role, hash, created_by, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
                )
                .bind(ws.0)
                .bind(role.as_str())
                .bind(hash)
                .bind(by.0)
                .bind(now.0)
                .bind(expires.0)
                .fetch_one(self.writer())
                .await?;
                invitation_from(&row)
            }

            async fn list_invitations(&self, ws: WorkspaceId) -> Result<Vec<Invitation>> {
                sqlx::query("SELECT * FROM invitations WHERE workspace_id = $1 ORDER BY id DESC")
                    .bind(ws.0)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(invitation_from)
                    .collect()
            }

            async fn invitation_by_hash(&self, hash: &str) -> Result<Option<Invitation>> {
                sqlx::query("SELECT * FROM invitations WHERE hash = $1")
                    .bind(hash)
                    .fetch_optional(self.reader())
                    .await?
                    .map(|r| invitation_from(&r))
                    .transpose()
            }

            async fn remove_member(&self, ws: WorkspaceId, user: UserId) -> Result<bool> {
                let done =
                    sqlx::query("DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2")
                        .bind(ws.0)
                        .bind(user.0)
                        .execute(self.writer())
                        .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn list_members(&self, ws: WorkspaceId) -> Result<Vec<Member>> {
                sqlx::query(
                    "SELECT m.user_id, u.name, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
                     WHERE m.workspace_id = $1 ORDER BY u.name",
                )
                .bind(ws.0)
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| {
                    Ok(Member {
                        user_id: UserId(r.try_get("user_id")?),
                        name: r.try_get("name")?,
                        role: role_of(r.try_get("role")?)?,
                    })
                })
                .collect()
            }

            async fn role_in(&self, ws: WorkspaceId, user: UserId) -> Result<Option<Role>> {
                let row = sqlx::query(
                    "SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2",
                )
                .bind(ws.0)
                .bind(user.0)
                .fetch_optional(self.reader())
                .await?;
                row.map(|r| role_of(r.try_get("role")?)).transpose()
            }

            async fn create_job(
                &self,
                ws: WorkspaceId,
                config: &JobConfig,
                creator: UserId,
                now: Timestamp,
            ) -> Result<Job> {
                let row = sqlx::query(
                    "INSERT INTO jobs (workspace_id, config, created_by, created_at, updated_at, crowd) \
                     VALUES ($1, $2, $3, $4, $4, $5) RETURNING *",
                )
                .bind(ws.0)
                .bind(json_text(config))
                .bind(creator.0)
                .bind(now.0)
                .bind(config.crowd.as_str())
                .fetch_one(self.writer())
                .await?;
                job_from(&row)
            }

            async fn get_job(&self, id: JobId) -> Result<Option<Job>> {
                sqlx::query("SELECT * FROM jobs WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(self.reader())
                    .await?
                    .map(|r| job_from(&r))
                    .transpose()
            }

            async fn update_job(&self, id: JobId, config: &JobConfig, now: Timestamp) -> Result<()> {
                sqlx::query("UPDATE jobs SET config = $1, updated_at = $2 WHERE id = $3")
                    .bind(json_text(config))
                    .bind(now.0)
                    .bind(id.0)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn list_jobs(
                &self,
                ws: WorkspaceId,
                after: Option<i64>,
                limit: u32,
            ) -> Result<Vec<Job>> {
                sqlx::query("SELECT * FROM jobs WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3")
                    .bind(ws.0)
                    .bind(after.unwrap_or(0))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(job_from)
                    .collect()
            }

            async fn job_progress(&self, id: JobId) -> Result<Progress> {
                let mut by_state = BTreeMap::new();
                for row in sqlx::query(
                    "SELECT state, COUNT(*) AS n FROM tasks WHERE job_id = $1 GROUP BY state",
                )
                .bind(id.0)
                .fetch_all(self.reader())
                .await?
                {
                    by_state.insert(row.try_get::<String, _>("state")?, row.try_get::<i64, _>("n")?);
                }
                let count = |s: &str| by_state.get(s).copied().unwrap_or(0);
                let pending_leases: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM assignments WHERE job_id = $1 AND status = 'pending'",
                )
                .bind(id.0)
                .fetch_one(self.reader())
                .await?
                .try_get(0)?;
                let answers_per_worker = sqlx::query(
                    "SELECT a.worker_id, u.name, COUNT(*) AS n FROM assignments a \
                     JOIN users u ON u.id = a.worker_id \
                     WHERE a.job_id = $1 AND a.status = 'submitted' \
                     GROUP BY a.worker_id, u.name ORDER BY n DESC, a.worker_id",
                )
                .bind(id.0)
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| {
                    Ok(WorkerCount {
                        worker_id: UserId(r.try_get("worker_id")?),
                        name: r.try_get("name")?,
                        answers: r.try_get("n")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
                let (open, labeled, undecided) =
                    (count("open"), count("labeled"), count("undecided"));
                Ok(Progress {
                    tasks: open + labeled + undecided,
                    open,
                    labeled,
                    undecided,
                    done: labeled + undecided,
                    pending_leases,
                    answers: answers_per_worker.iter().map(|w| w.answers).sum(),
                    answers_per_worker,
                    gold_tasks: count("gold"),
                })
            }

            async fn jobs_for_worker(&self, user: UserId) -> Result<Vec<WorkerJob>> {
                sqlx::query(
                    "SELECT j.id, j.workspace_id, j.config, m.role, \
                     (SELECT COUNT(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'open') AS open_tasks, \
                     (SELECT COUNT(*) FROM assignments a WHERE a.job_id = j.id AND a.worker_id = $1 \
                        AND a.status = 'submitted') AS mine \
                     FROM jobs j JOIN memberships m ON m.workspace_id = j.workspace_id AND m.user_id = $1 \
                     WHERE j.crowd = 'in_house' ORDER BY j.id",
                )
                .bind(user.0)
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| {
                    let config: JobConfig = serde_json::from_str(r.try_get::<&str, _>("config")?)
                        .context("stored job configuration")?;
                    Ok(WorkerJob {
                        job_id: JobId(r.try_get("id")?),
                        workspace_id: WorkspaceId(r.try_get("workspace_id")?),
                        name: config.name,
                        role: role_of(r.try_get("role")?)?,
                        open_tasks: r.try_get("open_tasks")?,
                        answered_by_me: r.try_get("mine")?,
                    })
                })
                .collect()
            }

            async fn import_tasks(
                &self,
                job: &Job,
                mut rows: tokio::sync::mpsc::Receiver<ImportMsg>,
            ) -> Result<Option<u64>> {
                let fresh = job.config.policy.fresh();
                let (w_slots, s_slots) = (i64::from(fresh.worker_slots), i64::from(fresh.steward_slots));
                let mut tx = self.writer().begin().await?;
                // Serialise imports into one job so `_id`s stay dense.
                sqlx::query(concat!("SELECT id FROM jobs WHERE id = $1", $for_update))
                    .bind(job.id.0)
                    .fetch_one(&mut *tx)
                    .await?;
                let mut next_seq: i64 =
                    sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM tasks WHERE job_id = $1")
                        .bind(job.id.0)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get(0)?;
                let mut count = 0u64;
                loop {
                    match rows.recv().await {
                        Some(ImportMsg::Rows(batch)) => {
                            insert_rows(&mut tx, job.id.0, next_seq + 1, &batch, w_slots, s_slots)
                                .await?;
                            next_seq += batch.len() as i64;
                            count += batch.len() as u64;
                        }
                        Some(ImportMsg::Done) => {
                            tx.commit().await?;
                            self.tasks_added();
                            return Ok(Some(count));
                        }
                        Some(ImportMsg::Failed) | None => {
                            tx.rollback().await?;
                            return Ok(None);
                        }
                    }
                }
            }

            async fn held_lease(&self, req: &LeaseRequest) -> Result<Option<Assignment>> {
                sqlx::query(concat!(
                    "SELECT ",
                    assignment_cols!(),
                    " FROM assignments a JOIN tasks t ON t.id = a.task_id \
                     WHERE a.worker_id = $1 AND a.job_id = $2 AND a.status = 'pending' AND a.deadline > $3 \
                     AND a.id <> $4 ORDER BY a.id LIMIT 1"
                ))
                .bind(req.worker.0)
                .bind(req.job.0)
                .bind(req.now.0)
                .bind(req.besides.map_or(-1, |a| a.0))
                .fetch_optional(self.reader())
                .await?
                .map(|row| assignment_from(&row))
                .transpose()
            }

            async fn started_open_tasks(
                &self,
                job: JobId,
                worker: UserId,
                limit: u32,
            ) -> Result<Vec<(i64, tutti_domain::policy::Evidence)>> {
                sqlx::query(
                    "SELECT t.seq, t.w_evidence FROM tasks t \
                     WHERE t.job_id = $1 AND t.state = 'open' AND t.w_slots > 0 AND t.w_evidence <> '{}' \
                     AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.task_id = t.id AND a.worker_id = $2 \
                                     AND a.status IN ('pending', 'submitted', 'skipped')) \
                     ORDER BY t.seq LIMIT $3",
                )
                .bind(job.0)
                .bind(worker.0)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| Ok((r.try_get("seq")?, evidence_of(r.try_get("w_evidence")?)?)))
                .collect()
            }

            async fn next_assignment(&self, req: &LeaseRequest) -> Result<LeaseOutcome> {
                // The held lease is looked up outside the write session: at
                // worst two racing requests of one worker both lease, each a
                // different task.
                if let Some(a) = self.held_lease(req).await? {
                    return Ok(LeaseOutcome::Held(a));
                }
                match lease(self, req).await? {
                    Some(a) => Ok(LeaseOutcome::Leased(a)),
                    None => why_nothing(self.reader(), req).await,
                }
            }

            async fn get_assignment(&self, id: AssignmentId) -> Result<Option<Assignment>> {
                sqlx::query(concat!(
                    "SELECT ",
                    assignment_cols!(),
                    " FROM assignments a JOIN tasks t ON t.id = a.task_id WHERE a.id = $1"
                ))
                .bind(id.0)
                .fetch_optional(self.reader())
                .await?
                .map(|r| assignment_from(&r))
                .transpose()
            }

            async fn submit(&self, req: &SubmitRequest) -> Result<SubmitOutcome> {
                submit(self, req).await
            }

            async fn give_back(&self, req: &GiveBackRequest) -> Result<GiveBackOutcome> {
                retry(|| try_give_back(self, req)).await
            }

            async fn expire_leases(&self, now: Timestamp, limit: u32) -> Result<u64> {
                retry(|| try_expire_leases(self, now, limit)).await
            }

            async fn restart_lease(
                &self,
                id: AssignmentId,
                worker: UserId,
                time_limit_secs: u32,
                now: Timestamp,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE assignments SET leased_at = $1, deadline = $2 \
                     WHERE id = $3 AND worker_id = $4 AND status = 'pending'",
                )
                .bind(now.0)
                .bind(now.plus_secs(time_limit_secs).0)
                .bind(id.0)
                .bind(worker.0)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn undo_answer(&self, req: &UndoRequest) -> Result<UndoOutcome> {
                retry(|| try_undo_answer(self, req)).await
            }

            async fn results_page(
                &self,
                job: JobId,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<TaskResult>> {
                self.results_filtered(job, &ResultFilter::default(), after_seq, limit)
                    .await
            }

            async fn results_filtered(
                &self,
                job: JobId,
                filter: &ResultFilter,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<TaskResult>> {
                let (clauses, vals) = filter_sql(filter, 4);
                let sql = format!(
                    "SELECT t.seq, t.state, t.label, t.confidence, t.decided_by, t.w_votes, t.s_votes, t.data, \
                     g.method AS g_method, g.label AS g_label, g.confidence AS g_confidence \
                     FROM tasks t LEFT JOIN aggregates g ON g.job_id = t.job_id AND g.seq = t.seq \
                     WHERE t.job_id = $1 AND t.seq > $2{clauses} ORDER BY t.seq LIMIT $3"
                );
                let q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(job.0)
                    .bind(after_seq)
                    .bind(i64::from(limit));
                bind_filter(q, vals)
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| {
                    let w = votes_of(r.try_get("w_votes")?)?;
                    let s = votes_of(r.try_get("s_votes")?)?;
                    Ok(TaskResult {
                        seq: r.try_get("seq")?,
                        state: r.try_get("state")?,
                        label: r.try_get("label")?,
                        confidence: r.try_get("confidence")?,
                        decided_by: r
                            .try_get::<Option<&str>, _>("decided_by")?
                            .map(side_of)
                            .transpose()?,
                        votes: w.merged(&s),
                        aggregate: r
                            .try_get::<Option<String>, _>("g_method")?
                            .map(|method| -> Result<AggregatedLabel> {
                                Ok(AggregatedLabel {
                                    method,
                                    label: r.try_get("g_label")?,
                                    confidence: r.try_get("g_confidence")?,
                                })
                            })
                            .transpose()?,
                        data: object_of(r.try_get("data")?)?,
                    })
                })
                .collect()
            }

            async fn results_summary(&self, job: JobId, filter: &ResultFilter) -> Result<ResultSummary> {
                let (clauses, vals) = filter_sql(filter, 2);
                // Grouped in the order of the covering index `tasks_results`
                // (job, state, label, confidence), so the groups stream out
                // of one pass over it; the confidence histogram is binned
                // here (binning in SQL would group through a temporary tree,
                // three times slower).
                let sql = format!(
                    "SELECT t.state, t.label, t.confidence, COUNT(*) AS n FROM tasks t \
                     WHERE t.job_id = $1{clauses} GROUP BY t.state, t.label, t.confidence"
                );
                let rows = bind_filter(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(job.0), vals)
                    .fetch_all(self.reader())
                    .await?;
                let mut out = ResultSummary::default();
                for r in &rows {
                    let n: i64 = r.try_get("n")?;
                    let state: String = r.try_get("state")?;
                    let label: Option<String> = r.try_get("label")?;
                    out.matching += n;
                    if let Some(c) = r.try_get::<Option<f64>, _>("confidence")? {
                        // Tenths, the last one closed: [0.9, 1].
                        let b = ((c * 10.0).floor().max(0.0) as usize).min(9);
                        out.confidence[b] += n;
                    }
                    if let Some(l) = label.filter(|_| state == "labeled") {
                        *out.labels.entry(l).or_default() += n;
                    }
                    *out.states.entry(state).or_default() += n;
                }
                Ok(out)
            }

            async fn answers_page(
                &self,
                job: JobId,
                after_id: i64,
                limit: u32,
            ) -> Result<Vec<AnswerRecord>> {
                sqlx::query(concat!(
                    answer_select!(),
                    " AND a.id > $2 ORDER BY a.id LIMIT $3"
                ))
                .bind(job.0)
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(answer_from)
                .collect()
            }

            async fn task_answers(
                &self,
                job: JobId,
                from_seq: i64,
                to_seq: i64,
            ) -> Result<Vec<AnswerRecord>> {
                sqlx::query(concat!(
                    answer_select!(),
                    " AND t.seq >= $2 AND t.seq <= $3 ORDER BY t.seq, a.id"
                ))
                .bind(job.0)
                .bind(from_seq)
                .bind(to_seq)
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(answer_from)
                .collect()
            }

            async fn last_answer_id(&self, job: JobId) -> Result<i64> {
                Ok(sqlx::query(
                    "SELECT COALESCE(MAX(id), 0) FROM assignments WHERE job_id = $1 AND status = 'submitted'",
                )
                .bind(job.0)
                .fetch_one(self.reader())
                .await?
                .try_get(0)?)
            }

            async fn save_aggregation(&self, job: JobId, fit: &AggregationFit) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                for sql in [
                    "DELETE FROM aggregates WHERE job_id = $1",
                    "DELETE FROM job_workers WHERE job_id = $1",
                    "DELETE FROM job_aggregations WHERE job_id = $1",
                ] {
                    sqlx::query(sql).bind(job.0).execute(&mut *tx).await?;
                }
                insert_aggregates(&mut tx, job.0, &fit.method, &fit.rows).await?;
                let confusions: std::collections::HashMap<i64, &Confusion> =
                    fit.confusions.iter().map(|(w, c)| (w.0, c)).collect();
                for (worker, skill) in &fit.skills {
                    let confusion = confusions
                        .get(&worker.0)
                        .map(serde_json::to_string)
                        .transpose()
                        .map_err(|e| StoreError::Internal(anyhow::anyhow!("confusion matrix: {e}")))?;
                    sqlx::query(
                        "INSERT INTO job_workers (job_id, worker_id, method, skill, confusion) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(job.0)
                    .bind(worker.0)
                    .bind(fit.method.as_str())
                    .bind(*skill)
                    .bind(confusion)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO job_aggregations (job_id, method, through_id, answers, iterations, aggregated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(job.0)
                .bind(fit.method.as_str())
                .bind(fit.through_id)
                .bind(fit.answers)
                .bind(fit.iterations)
                .bind(fit.at.0)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn jobs_with_new_answers(&self) -> Result<Vec<JobId>> {
                sqlx::query(
                    "SELECT j.id FROM jobs j LEFT JOIN job_aggregations g ON g.job_id = j.id \
                     WHERE EXISTS (SELECT 1 FROM assignments a WHERE a.job_id = j.id \
                       AND a.status = 'submitted' AND a.id > COALESCE(g.through_id, 0)) \
                     ORDER BY j.id",
                )
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| Ok(JobId(r.try_get(0)?)))
                .collect()
            }

            async fn gold_record(&self, job: JobId, worker: UserId) -> Result<GoldRecord> {
                // One round trip: this runs on every lease of a job with
                // control questions and every submit under adaptive redundancy.
                let r = sqlx::query(
                    "SELECT (SELECT COUNT(*) FROM assignments WHERE job_id = $1 AND worker_id = $2 \
                       AND status = 'submitted') AS answers, \
                     g.seen, g.correct, g.stopped_at, \
                     (SELECT skill FROM job_workers WHERE job_id = $1 AND worker_id = $2 \
                       AND method IN ('onecoin', 'ds', 'mv', 'kofn', 'wawa', 'zbs', 'mace')) AS skill, \
                     (SELECT confusion FROM job_workers WHERE job_id = $1 AND worker_id = $2 \
                       AND method = 'ds') AS confusion \
                     FROM (SELECT 1 AS one) AS x \
                     LEFT JOIN job_gold g ON g.job_id = $1 AND g.worker_id = $2",
                )
                .bind(job.0)
                .bind(worker.0)
                .fetch_one(self.reader())
                .await?;
                // Only methods whose skill is a probability of being right
                // count as an accuracy (not GLAD's ability, not weights).
                let count = |v: Option<i64>| v.map_or(0, |v| u64::try_from(v).unwrap_or(0));
                Ok(GoldRecord {
                    answers: count(r.try_get("answers")?),
                    seen: count(r.try_get("seen")?),
                    correct: count(r.try_get("correct")?),
                    stopped_at: r.try_get::<Option<i64>, _>("stopped_at")?.map(Timestamp),
                    skill: r.try_get("skill")?,
                    // A matrix that does not read is no matrix: the skill
                    // or the prior weighs the answer instead.
                    confusion: r
                        .try_get::<Option<String>, _>("confusion")?
                        .and_then(|c| serde_json::from_str(&c).ok()),
                })
            }

            async fn stop_worker(
                &self,
                job: JobId,
                worker: UserId,
                policy: &Policy,
                exclude: bool,
                now: Timestamp,
            ) -> Result<StopOutcome> {
                let mut tx = self.writer().begin().await?;
                let stopped = sqlx::query(
                    "UPDATE job_gold SET stopped_at = $3 \
                     WHERE job_id = $1 AND worker_id = $2 AND stopped_at IS NULL",
                )
                .bind(job.0)
                .bind(worker.0)
                .bind(now.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if stopped == 0 {
                    tx.rollback().await?;
                    return Ok(StopOutcome::default());
                }
                let mut out = StopOutcome {
                    stopped: true,
                    ..StopOutcome::default()
                };
                if !exclude {
                    tx.commit().await?;
                    return Ok(out);
                }
                let answers = sqlx::query(
                    "SELECT a.id, a.task_id, a.side, a.answer, a.evidence, a.leased_at, a.finished_at \
                     FROM assignments a \
                     JOIN tasks t ON t.id = a.task_id \
                     WHERE a.job_id = $1 AND a.worker_id = $2 AND a.status = 'submitted' \
                     AND t.state <> 'gold' ORDER BY a.task_id",
                )
                .bind(job.0)
                .bind(worker.0)
                .fetch_all(&mut *tx)
                .await?;
                for row in &answers {
                    let mut task = lock_task(&mut *tx, TaskId(row.try_get("task_id")?)).await?;
                    let answer: Option<String> = row.try_get("answer")?;
                    let votes = match side_of(row.try_get("side")?)? {
                        Side::Worker => &mut task.tally.worker_votes,
                        Side::Steward => &mut task.tally.steward_votes,
                    };
                    if let Some(a) = answer.as_deref()
                        && let Some(n) = votes.0.get_mut(a)
                    {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            votes.0.remove(a);
                        }
                    }
                    if let Some(e) = row.try_get::<Option<&str>, _>("evidence")? {
                        task.tally.worker_evidence.subtract(&evidence_of(e)?);
                    }
                    let mut writes = Vec::new();
                    if task.state == "labeled" {
                        // Its answers no longer count as on a labeled task
                        // (this one never again).
                        writes.push(Write::derived(
                            $crate::shared::UNCOUNT_LABELED_TASK,
                            vec![Val::I64(task.id), Val::I64(job.0)],
                        ));
                    }
                    let reopened = task.state == "labeled" || task.state == "undecided";
                    if reopened {
                        writes.push(Write::derived(
                            $crate::shared::UNCOUNT_DECIDED,
                            vec![Val::I64(job.0), Val::I64(task.id)],
                        ));
                        // Decide it again from the answers that remain.
                        writes.push(Write::new(
                            "UPDATE tasks SET state = 'open', label = NULL, confidence = NULL, \
                             decided_by = NULL, decided_at = NULL WHERE id = $1 AND state = $2",
                            vec![Val::I64(task.id), Val::Text(task.state.clone())],
                        ));
                        task.state = "open".to_owned();
                        task.read_as[4] = Val::Text("open".to_owned());
                    }
                    let before = task.state.clone();
                    let (tally, state) = apply_tally(&mut task, policy, now);
                    writes.extend(tally);
                    writes.push(Write::new(
                        "UPDATE assignments SET status = 'excluded' WHERE id = $1 AND status = 'submitted'",
                        vec![Val::I64(row.try_get("id")?)],
                    ));
                    let spent = row.try_get::<Option<i64>, _>("finished_at")?.unwrap_or(0)
                        - row.try_get::<i64, _>("leased_at")?;
                    writes.push(bump_worker(
                        job.0,
                        worker.0,
                        Deltas { answers: -1, answer_ms: -spent, ..Deltas::default() },
                    ));
                    let finished = row.try_get::<Option<i64>, _>("finished_at")?.unwrap_or(0);
                    writes.push(bump_hour(job.0, finished, -1, 0));
                    if decided_now(&before, &state) {
                        writes.push(bump_hour(job.0, now.0, 0, 1));
                    }
                    writes.extend(newly_labeled(task.id, &before, &state));
                    for w in &writes {
                        let changed = bind_all(sqlx::query(w.sql), &w.vals)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        if w.exact && changed != 1 {
                            return Err(StoreError::Contended);
                        }
                    }
                    out.excluded += 1;
                    if reopened && state == "open" {
                        out.reopened += 1;
                    }
                }
                tx.commit().await?;
                Ok(out)
            }

            async fn recount_job_figures(&self, job: JobId) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                for sql in [
                    "DELETE FROM job_worker_counts WHERE job_id = $1",
                    $crate::shared::RECOUNT_WORKER_FIGURES,
                    "DELETE FROM job_hours WHERE job_id = $1",
                    $crate::shared::RECOUNT_JOB_HOURS,
                ] {
                    sqlx::query(sql).bind(job.0).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn aggregation_info(&self, job: JobId) -> Result<Option<AggregationInfo>> {
                sqlx::query(
                    "SELECT method, through_id, answers, iterations, aggregated_at \
                     FROM job_aggregations WHERE job_id = $1",
                )
                .bind(job.0)
                .fetch_optional(self.reader())
                .await?
                .map(|r| {
                    Ok(AggregationInfo {
                        method: r.try_get("method")?,
                        through_id: r.try_get("through_id")?,
                        answers: r.try_get("answers")?,
                        iterations: r.try_get("iterations")?,
                        aggregated_at: Timestamp(r.try_get("aggregated_at")?),
                    })
                })
                .transpose()
            }

            async fn create_label_task(&self, task: &LabelTask) -> Result<()> {
                sqlx::query(
                    "INSERT INTO label_tasks (task_id, config, stat, prod_stat, result, metrics, error, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&task.task_id)
                .bind(json_text(&task.config))
                .bind(&task.stat)
                .bind(&task.prod_stat)
                .bind(&task.result)
                .bind(json_text(&task.metrics))
                .bind(&task.error)
                .bind(task.created_at.0)
                .bind(task.updated_at.0)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn list_label_tasks(&self, limit: u32) -> Result<Vec<LabelTask>> {
                sqlx::query("SELECT * FROM label_tasks ORDER BY created_at DESC, task_id LIMIT $1")
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(label_task_from)
                    .collect()
            }

            async fn get_label_task(&self, task_id: &str) -> Result<Option<LabelTask>> {
                sqlx::query("SELECT * FROM label_tasks WHERE task_id = $1")
                    .bind(task_id)
                    .fetch_optional(self.reader())
                    .await?
                    .map(|r| label_task_from(&r))
                    .transpose()
            }

            async fn update_label_task(
                &self,
                task_id: &str,
                stat: &str,
                prod_stat: Option<&str>,
                metrics: &serde_json::Value,
                error: Option<&str>,
                now: Timestamp,
            ) -> Result<()> {
                sqlx::query(
                    "UPDATE label_tasks SET stat = $2, prod_stat = $3, metrics = $4, error = $5, \
                     updated_at = $6 WHERE task_id = $1",
                )
                .bind(task_id)
                .bind(stat)
                .bind(prod_stat)
                .bind(json_text(metrics))
                .bind(error)
                .bind(now.0)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn crowd_jobs(&self, crowd: tutti_domain::job::Crowd) -> Result<Vec<Job>> {
                sqlx::query(
                    "SELECT * FROM jobs j WHERE j.crowd = $1 \
                     AND (EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'open') \
                          OR EXISTS (SELECT 1 FROM crowd_hits h WHERE h.job_id = j.id AND h.closed = 0)) \
                     ORDER BY j.id",
                )
                .bind(crowd.as_str())
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(job_from)
                .collect()
            }

            async fn crowd_tasks(&self, job: JobId) -> Result<Vec<CrowdTask>> {
                sqlx::query(
                    "SELECT t.seq, t.state, t.data, h.token, h.hit_id, h.max_assignments, h.closed \
                     FROM tasks t LEFT JOIN crowd_hits h ON h.job_id = t.job_id AND h.seq = t.seq \
                     WHERE t.job_id = $1 AND (t.state = 'open' OR (h.seq IS NOT NULL AND h.closed = 0)) \
                     ORDER BY t.seq",
                )
                .bind(job.0)
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| {
                    let seq: i64 = r.try_get("seq")?;
                    let token: Option<String> = r.try_get("token")?;
                    let hit = match token {
                        Some(token) => Some(CrowdHit {
                            seq,
                            token,
                            hit_id: r.try_get("hit_id")?,
                            max_assignments: u32::try_from(r.try_get::<i64, _>("max_assignments")?)
                                .unwrap_or(0),
                            closed: r.try_get::<i64, _>("closed")? != 0,
                        }),
                        None => None,
                    };
                    Ok(CrowdTask {
                        seq,
                        state: r.try_get("state")?,
                        data: object_of(r.try_get("data")?)?,
                        hit,
                    })
                })
                .collect()
            }

            async fn put_crowd_hit(&self, job: JobId, hit: &CrowdHit) -> Result<()> {
                sqlx::query(
                    "INSERT INTO crowd_hits (job_id, seq, token, hit_id, max_assignments, closed) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (job_id, seq) DO UPDATE SET token = excluded.token, \
                     hit_id = excluded.hit_id, max_assignments = excluded.max_assignments, \
                     closed = excluded.closed",
                )
                .bind(job.0)
                .bind(hit.seq)
                .bind(&hit.token)
                .bind(hit.hit_id.as_deref())
                .bind(i64::from(hit.max_assignments))
                .bind(i64::from(hit.closed))
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn lease_task(&self, req: &LeaseRequest, seq: i64) -> Result<TaskLease> {
                let mut session = self.session().await?;
                let held = sqlx::query(concat!(
                    "SELECT ",
                    assignment_cols!(),
                    " FROM assignments a JOIN tasks t ON t.id = a.task_id \
                     WHERE t.job_id = $1 AND t.seq = $2 AND a.worker_id = $3 \
                     AND a.status IN ('pending', 'submitted') ORDER BY a.id DESC LIMIT 1"
                ))
                .bind(req.job.0)
                .bind(seq)
                .bind(req.worker.0)
                .fetch_optional(session.conn())
                .await?;
                if let Some(row) = held {
                    session.abandon().await?;
                    let a = assignment_from(&row)?;
                    return Ok(match a.status {
                        AssignmentStatus::Pending => TaskLease::Leased(a),
                        _ => TaskLease::Answered,
                    });
                }
                let slots = match req.side {
                    Side::Worker => "t.w_slots",
                    Side::Steward => "t.s_slots",
                };
                let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {}, t.seq, t.data FROM tasks t \
                     WHERE t.job_id = $1 AND t.seq = $2 AND t.state = 'open' AND {slots} > 0{}",
                    tally_cols!(),
                    $for_update
                )))
                .bind(req.job.0)
                .bind(seq)
                .fetch_optional(session.conn())
                .await?
                else {
                    session.abandon().await?;
                    return Ok(TaskLease::Closed);
                };
                let mut task = tally_from(&row)?;
                let (writes, deadline) = lease_writes(req, &mut task);
                let id = session
                    .finish(writes)
                    .await?
                    .context("the new assignment's id")?;
                let data = object_of(row.try_get("data")?)?;
                Ok(TaskLease::Leased(new_lease(req, id, &task, seq, deadline, data)))
            }

            async fn unfinished_label_tasks(&self) -> Result<Vec<LabelTask>> {
                sqlx::query(
                    "SELECT * FROM label_tasks WHERE stat IN ('PENDING', 'RUNNING') ORDER BY created_at, task_id",
                )
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(label_task_from)
                .collect()
            }

            async fn create_run(&self, new: &NewRun, now: Timestamp) -> Result<Run> {
                let mut tx = self.writer().begin().await?;
                let (url, secret) = match &new.webhook {
                    Some((u, s)) => (Some(u.as_str()), Some(s.as_str())),
                    None => (None, None),
                };
                let row = sqlx::query(
                    "INSERT INTO runs (workspace_id, name, format, program, params, status, after_run, \
                     webhook_url, webhook_secret, created_by, created_at, updated_at, callback_secret) \
                     VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $10, $10, $11) RETURNING *",
                )
                .bind(new.workspace_id.0)
                .bind(&new.name)
                .bind(&new.format)
                .bind(&new.program)
                .bind(json_text(&new.params))
                .bind(new.after_run.map(|r| r.0))
                .bind(url)
                .bind(secret)
                .bind(new.created_by.0)
                .bind(now.0)
                .bind(&new.callback_secret)
                .fetch_one(&mut *tx)
                .await?;
                let run = run_from(&row)?;
                for (name, content) in &new.files {
                    sqlx::query("INSERT INTO run_files (run_id, name, content) VALUES ($1, $2, $3)")
                        .bind(run.id.0)
                        .bind(name)
                        .bind(content.as_slice())
                        .execute(&mut *tx)
                        .await?;
                }
                for (i, (op, label)) in new.nodes.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO run_nodes (run_id, idx, op, label, status) VALUES ($1, $2, $3, $4, 'idle')",
                    )
                    .bind(run.id.0)
                    .bind(i as i64)
                    .bind(op)
                    .bind(label)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(run)
            }

            async fn get_run(&self, id: RunId) -> Result<Option<Run>> {
                sqlx::query("SELECT * FROM runs WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(self.reader())
                    .await?
                    .map(|r| run_from(&r))
                    .transpose()
            }

            async fn list_runs(&self, ws: WorkspaceId, before: Option<i64>, limit: u32) -> Result<Vec<Run>> {
                sqlx::query(
                    "SELECT * FROM runs WHERE workspace_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                )
                .bind(ws.0)
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(run_from)
                .collect()
            }

            async fn run_file(&self, id: RunId, name: &str) -> Result<Option<Vec<u8>>> {
                Ok(sqlx::query("SELECT content FROM run_files WHERE run_id = $1 AND name = $2")
                    .bind(id.0)
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await?
                    .map(|r| r.try_get::<Vec<u8>, _>(0))
                    .transpose()?)
            }

            async fn run_nodes(&self, id: RunId) -> Result<Vec<RunNode>> {
                sqlx::query("SELECT * FROM run_nodes WHERE run_id = $1 ORDER BY idx")
                    .bind(id.0)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(run_node_from)
                    .collect()
            }

            async fn runs_to_advance(&self, now: Timestamp) -> Result<Vec<RunId>> {
                Ok(sqlx::query(
                    "SELECT id FROM runs WHERE status IN ('queued', 'running', 'waiting') \
                     OR (webhook_state = 'pending' AND webhook_next_at <= $1) ORDER BY id",
                )
                .bind(now.0)
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| r.try_get::<i64, _>(0).map(RunId))
                .collect::<std::result::Result<_, _>>()?)
            }

            async fn report_run(&self, id: RunId, report: &RunReport) -> Result<bool> {
                let mut tx = self.writer().begin().await?;
                let final_ = report.status.is_final();
                let webhook_due = report.status == RunStatus::Completed || report.status == RunStatus::Failed;
                let updated = sqlx::query(
                    "UPDATE runs SET status = $1, error = $2, updated_at = $3, \
                     started_at = COALESCE(started_at, $3), \
                     finished_at = CASE WHEN $4 THEN $3 ELSE NULL END, \
                     webhook_state = CASE WHEN $5 AND webhook_url IS NOT NULL AND webhook_state IS NULL \
                        THEN 'pending' ELSE webhook_state END, \
                     webhook_next_at = CASE WHEN $5 AND webhook_url IS NOT NULL AND webhook_state IS NULL \
                        THEN $3 ELSE webhook_next_at END \
                     WHERE id = $6 AND generation = $7 AND status <> 'cancelled'",
                )
                .bind(report.status.as_str())
                .bind(report.error.as_deref())
                .bind(report.now.0)
                .bind(final_)
                .bind(webhook_due)
                .bind(id.0)
                .bind(report.generation)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                if !report.nodes.is_empty() {
                    match $backend {
                        Backend::Sqlite => {
                            // Every changed step in one round trip: one
                            // primary-key update each, values written as
                            // literals (numbers, or text with quotes doubled).
                            let lit = |v: Option<i64>| v.map_or("NULL".to_owned(), |v| v.to_string());
                            let mut sql = String::new();
                            for n in &report.nodes {
                                sql.push_str(&format!(
                                    "UPDATE run_nodes SET status = '{}', rows_in = {}, rows_out = {}, \
                                     started_at = {}, finished_at = {}, error = {}, job_id = COALESCE({}, job_id) \
                                     WHERE run_id = {} AND idx = {};\n",
                                    n.status.as_str(),
                                    n.rows_in,
                                    n.rows_out,
                                    lit(n.started_at.map(|t| t.0)),
                                    lit(n.finished_at.map(|t| t.0)),
                                    n.error.as_deref().map_or("NULL".to_owned(), |e| format!("'{}'", e.replace('\'', "''"))),
                                    lit(n.job_id.map(|j| j.0)),
                                    id.0,
                                    n.index,
                                ));
                            }
                            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
                        }
                        Backend::Postgres => {
                            let nodes: Vec<Value> = report
                                .nodes
                                .iter()
                                .map(|n| {
                                    serde_json::json!({
                                        "idx": n.index,
                                        "status": n.status.as_str(),
                                        "rows_in": n.rows_in,
                                        "rows_out": n.rows_out,
                                        "started_at": n.started_at.map(|t| t.0),
                                        "finished_at": n.finished_at.map(|t| t.0),
                                        "error": n.error,
                                        "job_id": n.job_id.map(|j| j.0),
                                    })
                                })
                                .collect();
                            sqlx::query(
                                "UPDATE run_nodes SET status = j.status, rows_in = j.rows_in, rows_out = j.rows_out, \
                                 started_at = j.started_at, finished_at = j.finished_at, error = j.error, \
                                 job_id = COALESCE(j.job_id, run_nodes.job_id) \
                                 FROM jsonb_to_recordset($1::text::jsonb) AS j(idx bigint, status text, rows_in bigint, \
                                   rows_out bigint, started_at bigint, finished_at bigint, error text, job_id bigint) \
                                 WHERE run_nodes.run_id = $2 AND run_nodes.idx = j.idx",
                            )
                            .bind(Value::Array(nodes).to_string())
                            .bind(id.0)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn node_job(
                &self,
                run: &Run,
                node: i64,
                config: &JobConfig,
                rows: &[ImportRow],
                now: Timestamp,
            ) -> Result<JobId> {
                let mut tx = self.writer().begin().await?;
                // A run cancelled or retried since the runner read it gets
                // no new job (a cancel closes only the jobs it can see).
                let current = sqlx::query(concat!(
                    "SELECT 1 FROM runs WHERE id = $1 AND generation = $2 AND status <> 'cancelled'",
                    $for_update
                ))
                .bind(run.id.0)
                .bind(run.generation)
                .fetch_optional(&mut *tx)
                .await?;
                if current.is_none() {
                    tx.rollback().await?;
                    return Err(StoreError::Conflict(FieldError::new(
                        "run",
                        "the run was cancelled or retried",
                    )));
                }
                let existing: Option<i64> = sqlx::query(concat!(
                    "SELECT job_id FROM run_nodes WHERE run_id = $1 AND idx = $2",
                    $for_update
                ))
                .bind(run.id.0)
                .bind(node)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                if let Some(job) = existing {
                    tx.rollback().await?;
                    return Ok(JobId(job));
                }
                let job: i64 = sqlx::query(
                    "INSERT INTO jobs (workspace_id, config, created_by, created_at, updated_at, crowd) \
                     VALUES ($1, $2, $3, $4, $4, $5) RETURNING id",
                )
                .bind(run.workspace_id.0)
                .bind(json_text(config))
                .bind(run.created_by.0)
                .bind(now.0)
                .bind(config.crowd.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                let fresh = config.policy.fresh();
                let (w_slots, s_slots) = (i64::from(fresh.worker_slots), i64::from(fresh.steward_slots));
                for (i, chunk) in rows.chunks(1000).enumerate() {
                    insert_rows(&mut tx, job, 1 + (i * 1000) as i64, chunk, w_slots, s_slots).await?;
                }
                sqlx::query("UPDATE run_nodes SET job_id = $1 WHERE run_id = $2 AND idx = $3")
                    .bind(job)
                    .bind(run.id.0)
                    .bind(node)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.tasks_added();
                Ok(JobId(job))
            }

            async fn cancel_run(&self, id: RunId, now: Timestamp) -> Result<Option<Run>> {
                let mut tx = self.writer().begin().await?;
                let cancelled = sqlx::query(
                    "UPDATE runs SET status = 'cancelled', generation = generation + 1, updated_at = $1, \
                     finished_at = $1 WHERE id = $2 AND status IN ('queued', 'running', 'waiting', 'failed')",
                )
                .bind(now.0)
                .bind(id.0)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if cancelled {
                    // The run's human steps want no more answers: their open
                    // tasks close (a lease already out may still be
                    // answered; the answer is kept and changes nothing).
                    sqlx::query(
                        "UPDATE tasks SET state = 'closed', w_slots = 0, s_slots = 0 \
                         WHERE state = 'open' AND job_id IN \
                           (SELECT job_id FROM run_nodes WHERE run_id = $1 AND job_id IS NOT NULL)",
                    )
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                self.get_run(id).await
            }

            async fn retry_node(&self, id: RunId, node: i64, now: Timestamp) -> Result<RetryOutcome> {
                let mut tx = self.writer().begin().await?;
                let row = sqlx::query(concat!(
                    "SELECT status FROM run_nodes WHERE run_id = $1 AND idx = $2",
                    $for_update
                ))
                .bind(id.0)
                .bind(node)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    return Ok(RetryOutcome::NoSuchNode);
                };
                let status: String = row.try_get(0)?;
                let status = NodeStatus::parse(&status).unwrap_or(NodeStatus::Idle);
                if status != NodeStatus::Failed {
                    return Ok(RetryOutcome::NotFailed(status));
                }
                sqlx::query(
                    "UPDATE run_nodes SET status = 'retrying', error = NULL, finished_at = NULL \
                     WHERE run_id = $1 AND idx = $2",
                )
                .bind(id.0)
                .bind(node)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(
                    "UPDATE runs SET status = 'running', error = NULL, finished_at = NULL, \
                     generation = generation + 1, updated_at = $1, webhook_state = NULL, \
                     webhook_attempts = 0, webhook_next_at = NULL \
                     WHERE id = $2 AND status = 'failed' RETURNING *",
                )
                .bind(now.0)
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    // Cancelled (or already running again) meanwhile.
                    tx.rollback().await?;
                    return Ok(RetryOutcome::NotFailed(status));
                };
                let run = run_from(&row)?;
                tx.commit().await?;
                Ok(RetryOutcome::Retrying(Box::new(run)))
            }

            async fn webhook_attempt(
                &self,
                id: RunId,
                generation: i64,
                state: &str,
                next_at: Option<Timestamp>,
                now: Timestamp,
            ) -> Result<()> {
                sqlx::query(
                    "UPDATE runs SET webhook_state = $1, webhook_next_at = $2, \
                     webhook_attempts = webhook_attempts + 1, updated_at = $3 \
                     WHERE id = $4 AND generation = $5",
                )
                .bind(state)
                .bind(next_at.map(|t| t.0))
                .bind(now.0)
                .bind(id.0)
                .bind(generation)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn answered_since(&self, job: JobId, worker: UserId, since: Timestamp) -> Result<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM assignments WHERE worker_id = $1 AND job_id = $2 \
                     AND status = 'submitted' AND finished_at >= $3",
                )
                .bind(worker.0)
                .bind(job.0)
                .bind(since.0)
                .fetch_one(self.reader())
                .await?)
            }

            async fn job_activity(&self, job: JobId) -> Result<Vec<ActivityHour>> {
                sqlx::query(
                    "SELECT at_hour, answers, decided FROM job_hours \
                     WHERE job_id = $1 AND (answers <> 0 OR decided <> 0) ORDER BY at_hour",
                )
                .bind(job.0)
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| {
                    Ok(ActivityHour {
                        hour: Timestamp(r.try_get::<i64, _>("at_hour")? * 3_600_000),
                        answers: r.try_get("answers")?,
                        decided: r.try_get("decided")?,
                    })
                })
                .collect()
            }

            async fn worker_quality(&self, job: JobId) -> Result<Vec<WorkerQuality>> {
                sqlx::query(
                    "SELECT c.worker_id, u.name, c.answers, c.skipped, c.abandoned, c.on_labeled, \
                       c.agreeing, CASE WHEN c.answers > 0 \
                         THEN CAST(c.answer_ms AS DOUBLE PRECISION) / c.answers / 1000.0 END AS mean_seconds, \
                       w.skill, w.method AS skill_method, \
                       g.seen AS gold_seen, g.correct AS gold_correct, g.stopped_at \
                     FROM job_worker_counts c \
                     JOIN users u ON u.id = c.worker_id \
                     LEFT JOIN job_workers w ON w.job_id = $1 AND w.worker_id = c.worker_id \
                     LEFT JOIN job_gold g ON g.job_id = $1 AND g.worker_id = c.worker_id \
                     WHERE c.job_id = $1 ORDER BY c.worker_id",
                )
                .bind(job.0)
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| {
                    let on_labeled: i64 = r.try_get("on_labeled")?;
                    let agreeing: i64 = r.try_get("agreeing")?;
                    let gold_seen: i64 = r.try_get::<Option<i64>, _>("gold_seen")?.unwrap_or(0);
                    let gold_correct: i64 = r.try_get::<Option<i64>, _>("gold_correct")?.unwrap_or(0);
                    Ok(WorkerQuality {
                        worker_id: UserId(r.try_get("worker_id")?),
                        worker_name: r.try_get("name")?,
                        answers: r.try_get("answers")?,
                        skipped: r.try_get("skipped")?,
                        abandoned: r.try_get("abandoned")?,
                        agreement: (on_labeled > 0).then(|| agreeing as f64 / on_labeled as f64),
                        agreement_answers: on_labeled,
                        skill: r.try_get("skill")?,
                        skill_method: r.try_get("skill_method")?,
                        mean_seconds: r.try_get("mean_seconds")?,
                        gold_seen,
                        gold_correct,
                        gold_accuracy: (gold_seen > 0).then(|| gold_correct as f64 / gold_seen as f64),
                        stopped_at: r.try_get::<Option<i64>, _>("stopped_at")?.map(Timestamp),
                    })
                })
                .collect()
            }
}

        /// Runs a unit of work again while it meets a concurrent change
        /// (possible only where the backend writes optimistically).
        async fn retry<T, F, Fut>(mut attempt: F) -> Result<T>
        where
            F: FnMut() -> Fut,
            Fut: std::future::Future<Output = Result<T>>,
        {
            for _ in 0..$crate::write::MAX_ATTEMPTS {
                match attempt().await {
                    Err(StoreError::Contended) => tokio::task::yield_now().await,
                    other => return other,
                }
            }
            Err(StoreError::Internal(anyhow::anyhow!(
                "gave up after {} attempts that each met a concurrent change",
                $crate::write::MAX_ATTEMPTS
            )))
        }

        /// What a submit does, decided from the assignment and its task as
        /// read.
        enum SubmitPlan {
            /// Nothing to write: answer with this.
            Answer(SubmitOutcome),
            /// The lease expired and the task still has room: whether the
            /// worker holds a newer assignment of it must be looked up first.
            NeedsNewer,
            /// Write these, then answer with the outcome.
            Write(Vec<Write>, SubmitOutcome),
        }

        /// Decides a submit. `newer` is the worker's newer live assignment
        /// of the task, once looked up. On `Write`, `assignment` and `task`
        /// are updated to what the writes store, so that several submits can
        /// be planned one after another against the same rows.
        fn plan_submit(
            assignment: &mut Assignment,
            task: &mut TaskTally,
            req: &SubmitRequest,
            newer: Option<Option<i64>>,
        ) -> SubmitPlan {
            if assignment.worker_id != req.worker {
                return SubmitPlan::Answer(SubmitOutcome::NotFound);
            }
            let side = assignment.side;
            let was_pending = match assignment.status {
                AssignmentStatus::Submitted => {
                    let same = match &req.idempotency_key {
                        Some(key) => assignment.idempotency_key.as_deref() == Some(key.as_str()),
                        None => assignment.answer.as_deref() == Some(req.answer.as_str()),
                    };
                    return SubmitPlan::Answer(if same {
                        SubmitOutcome::Replayed {
                            assignment: assignment.clone(),
                            task_state: task.state.clone(),
                            gold: gold_check(task, assignment.answer.as_deref().unwrap_or_default()),
                        }
                    } else {
                        SubmitOutcome::Refused {
                            code: "already_submitted",
                            message: format!(
                                "this assignment was already answered ({:?}); an assignment takes one answer",
                                assignment.answer.clone().unwrap_or_default()
                            ),
                        }
                    });
                }
                AssignmentStatus::Excluded => {
                    return SubmitPlan::Answer(SubmitOutcome::Refused {
                        code: "worker_stopped",
                        message: "your answers in this job were taken out of the counts: \
                                  your accuracy on its control questions was too low"
                            .to_owned(),
                    });
                }
                AssignmentStatus::Released | AssignmentStatus::Skipped => {
                    return SubmitPlan::Answer(SubmitOutcome::Refused {
                        code: "not_pending",
                        message: format!(
                            "this assignment was {}; ask for the next task instead",
                            assignment.status.as_str()
                        ),
                    });
                }
                AssignmentStatus::Pending => true,
                AssignmentStatus::Abandoned => {
                    let slots = match side {
                        Side::Worker => task.w_slots,
                        Side::Steward => task.s_slots,
                    };
                    let refusal = if task.state != "open" {
                        Some(format!(
                            "your lease expired at {} and the task is {} now",
                            assignment.deadline, task.state
                        ))
                    } else if slots <= 0 {
                        Some(format!(
                            "your lease expired at {} and the task was leased to someone else",
                            assignment.deadline
                        ))
                    } else {
                        match newer {
                            None => return SubmitPlan::NeedsNewer,
                            Some(Some(id)) => Some(format!(
                                "your lease expired at {}; you hold a newer assignment {id} of this task",
                                assignment.deadline
                            )),
                            Some(None) => None,
                        }
                    };
                    if let Some(message) = refusal {
                        return SubmitPlan::Answer(SubmitOutcome::Refused {
                            code: "lease_expired",
                            message,
                        });
                    }
                    false
                }
            };
            let late = !was_pending || req.now >= assignment.deadline;
            let gold = gold_check(task, &req.answer);
            let evidence = req.evidence.as_ref().filter(|_| side == Side::Worker);
            if let Some(e) = evidence {
                task.tally.worker_evidence.add(e);
            }
            match side {
                Side::Worker => task.tally.worker_votes.add(&req.answer),
                Side::Steward => task.tally.steward_votes.add(&req.answer),
            }
            if was_pending {
                let p = pending_mut(&mut task.tally, side);
                *p = p.saturating_sub(1);
            }
            let answered = Write::new(
                "UPDATE assignments SET status = 'submitted', answer = $1, idempotency_key = $2, \
                 finished_at = $3, late = $4, gold_correct = $7, evidence = $8, grade = $9 \
                 WHERE id = $5 AND status = $6",
                vec![
                    Val::Text(req.answer.clone()),
                    Val::OptText(req.idempotency_key.clone()),
                    Val::I64(req.now.0),
                    Val::I64(i64::from(late)),
                    Val::I64(assignment.id.0),
                    Val::Text(assignment.status.as_str().to_owned()),
                    Val::OptI64(gold.as_ref().map(|g| i64::from(g.correct))),
                    Val::OptText(evidence.map(json_text)),
                    Val::OptI64(req.grade),
                ],
            );
            let before = task.state.clone();
            let ([tally, outcome], task_state) = apply_tally(task, &req.policy, req.now);
            let counts = bump_counts(
                assignment,
                Deltas {
                    answers: 1,
                    abandoned: -i64::from(!was_pending),
                    answer_ms: req.now.0 - assignment.leased_at.0,
                    ..Deltas::default()
                },
            );
            let hour = bump_hour(
                assignment.job_id.0,
                req.now.0,
                1,
                i64::from(decided_now(&before, &task_state)),
            );
            // The same writes for every submit, the ones that do not
            // apply flagged off: a group of submits then has one text per
            // size, which SQLite keeps prepared. The job's figures last:
            // the rows other submits of the job wait for are held for the
            // shortest time.
            let writes = vec![
                answered,
                tally,
                outcome,
                Write::derived_when(
                    $crate::shared::COUNT_LABELED_ANSWER_WHEN,
                    vec![Val::I64(assignment.id.0)],
                    before == "labeled",
                ),
                Write::derived_when(
                    $crate::shared::COUNT_LABELED_TASK_WHEN,
                    vec![Val::I64(task.id)],
                    before != "labeled" && task_state == "labeled",
                ),
                counts,
                hour,
                Write::derived_when(
                    $crate::shared::COUNT_GOLD_WHEN,
                    vec![
                        Val::I64(assignment.job_id.0),
                        Val::I64(assignment.worker_id.0),
                        Val::I64(i64::from(gold.as_ref().is_some_and(|g| g.correct))),
                    ],
                    gold.is_some(),
                ),
            ];
            assignment.status = AssignmentStatus::Submitted;
            assignment.answer = Some(req.answer.clone());
            assignment.idempotency_key = req.idempotency_key.clone();
            assignment.late = late;
            SubmitPlan::Write(
                writes,
                SubmitOutcome::Accepted {
                    assignment: assignment.clone(),
                    task_state,
                    gold,
                },
            )
        }

        /// Whether `answer` to a control question is right (`None` for a
        /// task that is not one).
        fn gold_check(task: &TaskTally, answer: &str) -> Option<GoldCheck> {
            let expected = task.gold.as_ref().filter(|_| task.state == "gold")?;
            Some(GoldCheck {
                correct: expected == answer,
                expected: expected.clone(),
            })
        }

        /// The worker's live assignment of a task other than an expired one.
        async fn newer_assignment(conn: &mut Conn, task: i64, worker: UserId) -> Result<Option<i64>> {
            Ok(sqlx::query(
                "SELECT id FROM assignments WHERE task_id = $1 AND worker_id = $2 \
                 AND status IN ('pending', 'submitted', 'skipped')",
            )
            .bind(task)
            .bind(worker.0)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
        }

        /// One submit in its own unit of work.
        async fn try_submit(store: &$store, req: &SubmitRequest) -> Result<SubmitOutcome> {
            let mut session = store.session().await?;
            let Some((mut assignment, mut task)) = lock_assignment(session.conn(), req.assignment).await?
            else {
                session.abandon().await?;
                return Ok(SubmitOutcome::NotFound);
            };
            let mut newer = None;
            loop {
                match plan_submit(&mut assignment, &mut task, req, newer) {
                    SubmitPlan::Answer(outcome) => {
                        session.abandon().await?;
                        return Ok(outcome);
                    }
                    SubmitPlan::NeedsNewer => {
                        newer = Some(newer_assignment(session.conn(), task.id, req.worker).await?);
                    }
                    SubmitPlan::Write(writes, outcome) => {
                        session.finish(writes).await?;
                        return Ok(outcome);
                    }
                }
            }
        }

        async fn try_give_back(store: &$store, req: &GiveBackRequest) -> Result<GiveBackOutcome> {
            let mut session = store.session().await?;
            let found = lock_assignment(session.conn(), req.assignment).await?;
            let Some((assignment, mut task)) = found.filter(|(a, _)| a.worker_id == req.worker) else {
                session.abandon().await?;
                return Ok(GiveBackOutcome::NotFound);
            };
            if assignment.status != AssignmentStatus::Pending {
                session.abandon().await?;
                return Ok(GiveBackOutcome::NotPending(assignment.status));
            }
            let p = pending_mut(&mut task.tally, assignment.side);
            *p = p.saturating_sub(1);
            let status = match req.how {
                GiveBack::Skip => AssignmentStatus::Skipped,
                GiveBack::Release => AssignmentStatus::Released,
            };
            let given = Write::new(
                "UPDATE assignments SET status = $1, finished_at = $2 \
                 WHERE id = $3 AND status = 'pending'",
                vec![
                    Val::Text(status.as_str().to_owned()),
                    Val::I64(req.now.0),
                    Val::I64(assignment.id.0),
                ],
            );
            let before = task.state.clone();
            let (tally, state) = apply_tally(&mut task, &req.policy, req.now);
            let mut writes = vec![given];
            writes.extend(tally);
            if req.how == GiveBack::Skip {
                writes.push(bump_counts(&assignment, Deltas { skipped: 1, ..Deltas::default() }));
            }
            if decided_now(&before, &state) {
                writes.push(bump_hour(assignment.job_id.0, req.now.0, 0, 1));
            }
            writes.extend(newly_labeled(task.id, &before, &state));
            session.finish(writes).await?;
            Ok(GiveBackOutcome::Done(Assignment { status, ..assignment }))
        }

        async fn try_undo_answer(store: &$store, req: &UndoRequest) -> Result<UndoOutcome> {
            let mut session = store.session().await?;
            let found = lock_assignment(session.conn(), req.assignment).await?;
            let Some((mut assignment, mut task)) = found.filter(|(a, _)| a.worker_id == req.worker) else {
                session.abandon().await?;
                return Ok(UndoOutcome::NotFound);
            };
            let refuse = |code: &'static str, message: &str| UndoOutcome::Refused {
                code,
                message: message.to_owned(),
            };
            let refusal = if assignment.status != AssignmentStatus::Submitted {
                Some(refuse("not_answered", "this task has no answer of yours to take back"))
            } else if task.state == "gold" {
                Some(refuse(
                    "control_question",
                    "an answer to a control question cannot be taken back",
                ))
            } else if task.state != "open" {
                Some(refuse(
                    "task_decided",
                    "the task is decided already, so its answers stay as they are",
                ))
            } else {
                None
            };
            if let Some(r) = refusal {
                session.abandon().await?;
                return Ok(r);
            }
            let row = sqlx::query(
                "SELECT finished_at, evidence, \
                 (SELECT COUNT(*) FROM assignments l WHERE l.job_id = a.job_id AND l.worker_id = a.worker_id \
                  AND l.status = 'submitted' AND l.id <> a.id \
                  AND (l.finished_at > a.finished_at OR (l.finished_at = a.finished_at AND l.id > a.id))) AS later \
                 FROM assignments a WHERE a.id = $1",
            )
            .bind(assignment.id.0)
            .fetch_one(session.conn())
            .await?;
            let later: i64 = row.try_get("later")?;
            if later > 0 {
                session.abandon().await?;
                return Ok(refuse(
                    "not_last",
                    "only your last answer of this job can be taken back",
                ));
            }
            let finished: i64 = row.try_get::<Option<i64>, _>("finished_at")?.unwrap_or(req.now.0);
            let evidence: Option<String> = row.try_get("evidence")?;
            let answer = assignment.answer.clone().unwrap_or_default();
            match assignment.side {
                Side::Worker => task.tally.worker_votes.remove(&answer),
                Side::Steward => task.tally.steward_votes.remove(&answer),
            }
            if let Some(e) = evidence {
                let e: tutti_domain::policy::Evidence = serde_json::from_str(&e)
                    .map_err(|e| StoreError::Internal(anyhow::anyhow!("stored evidence: {e}")))?;
                task.tally.worker_evidence.subtract(&e);
            }
            *pending_mut(&mut task.tally, assignment.side) += 1;
            let deadline = req.now.plus_secs(req.policy.time_limit_secs);
            let reopened = Write::new(
                "UPDATE assignments SET status = 'pending', answer = NULL, idempotency_key = NULL, \
                 finished_at = NULL, late = 0, gold_correct = NULL, evidence = NULL, grade = NULL, \
                 leased_at = $1, deadline = $2 WHERE id = $3 AND status = 'submitted'",
                vec![Val::I64(req.now.0), Val::I64(deadline.0), Val::I64(assignment.id.0)],
            );
            let ([tally, outcome], _) = apply_tally(&mut task, &req.policy, req.now);
            let counts = bump_counts(
                &assignment,
                Deltas {
                    answers: -1,
                    answer_ms: -(finished - assignment.leased_at.0),
                    ..Deltas::default()
                },
            );
            let hour = bump_hour(assignment.job_id.0, finished, -1, 0);
            // The job's last re-aggregation counted this answer: it is due again.
            let stale = Write::derived(
                "UPDATE job_aggregations SET through_id = 0 WHERE job_id = $1 AND through_id >= $2",
                vec![Val::I64(assignment.job_id.0), Val::I64(assignment.id.0)],
            );
            session.finish(vec![reopened, tally, outcome, counts, hour, stale]).await?;
            assignment.status = AssignmentStatus::Pending;
            assignment.answer = None;
            assignment.idempotency_key = None;
            assignment.late = false;
            assignment.leased_at = req.now;
            assignment.deadline = deadline;
            Ok(UndoOutcome::Done(assignment))
        }

        async fn try_expire_leases(store: &$store, now: Timestamp, limit: u32) -> Result<u64> {
            let mut session = store.session().await?;
            let overdue = sqlx::query(concat!(
                "SELECT id, task_id, job_id, worker_id, side FROM assignments \
                 WHERE status = 'pending' AND deadline <= $1 ORDER BY deadline, id LIMIT $2",
                $skip_locked
            ))
            .bind(now.0)
            .bind(i64::from(limit))
            .fetch_all(session.conn())
            .await?;
            if overdue.is_empty() {
                session.abandon().await?;
                return Ok(0);
            }
            let mut writes = Vec::with_capacity(overdue.len() * 2);
            // task -> (job, abandoned worker leases, abandoned steward leases)
            let mut per_task: BTreeMap<i64, (i64, u32, u32)> = BTreeMap::new();
            for row in &overdue {
                writes.push(Write::new(
                    "UPDATE assignments SET status = 'abandoned', finished_at = $1 \
                     WHERE id = $2 AND status = 'pending'",
                    vec![Val::I64(now.0), Val::I64(row.try_get("id")?)],
                ));
                writes.push(bump_worker(
                    row.try_get("job_id")?,
                    row.try_get("worker_id")?,
                    Deltas { abandoned: 1, ..Deltas::default() },
                ));
                let entry = per_task
                    .entry(row.try_get("task_id")?)
                    .or_insert((row.try_get("job_id")?, 0, 0));
                match side_of(row.try_get("side")?)? {
                    Side::Worker => entry.1 += 1,
                    Side::Steward => entry.2 += 1,
                }
            }
            let mut policies: BTreeMap<i64, Policy> = BTreeMap::new();
            for (task_id, (job_id, workers, stewards)) in per_task {
                let policy = match policies.get(&job_id) {
                    Some(p) => *p,
                    None => {
                        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
                            .bind(job_id)
                            .fetch_one(session.conn())
                            .await?;
                        let p = job_from(&row)?.config.policy;
                        policies.insert(job_id, p);
                        p
                    }
                };
                let mut task = lock_task(session.conn(), TaskId(task_id)).await?;
                task.tally.worker_pending = task.tally.worker_pending.saturating_sub(workers);
                task.tally.steward_pending = task.tally.steward_pending.saturating_sub(stewards);
                let before = task.state.clone();
                let (tally, state) = apply_tally(&mut task, &policy, now);
                writes.extend(tally);
                if decided_now(&before, &state) {
                    writes.push(bump_hour(job_id, now.0, 0, 1));
                }
                writes.extend(newly_labeled(task_id, &before, &state));
            }
            session.finish(writes).await?;
            Ok(overdue.len() as u64)
        }

        /// Tells apart the ways a lease request can find nothing.
        async fn why_nothing(pool: &sqlx::Pool<$db>, req: &LeaseRequest) -> Result<LeaseOutcome> {
            let open_for_me = sqlx::query(
                $crate::shared::OPEN_FOR_WORKER,
            )
            .bind(req.job.0)
            .bind(req.worker.0)
            .fetch_optional(pool)
            .await?;
            if open_for_me.is_some() {
                return Ok(LeaseOutcome::NothingNow);
            }
            let any_open = sqlx::query("SELECT 1 FROM tasks WHERE job_id = $1 AND state = 'open' LIMIT 1")
                .bind(req.job.0)
                .fetch_optional(pool)
                .await?;
            if any_open.is_some() {
                return Ok(LeaseOutcome::DoneForWorker);
            }
            let any = sqlx::query("SELECT 1 FROM tasks WHERE job_id = $1 LIMIT 1")
                .bind(req.job.0)
                .fetch_optional(pool)
                .await?;
            Ok(if any.is_some() {
                LeaseOutcome::Finished
            } else {
                LeaseOutcome::Empty
            })
        }
    };
}

pub(crate) use {answer_select, assignment_cols, store_impl, tally_cols, worker_cursor};
