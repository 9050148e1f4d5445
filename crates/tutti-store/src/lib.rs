//! Tutti's store: everything Tutti knows lives here, so that any process can
//! die at any moment and another carries on.
//!
//! One narrow [`Store`] trait, two implementations chosen once from the
//! database URL by [`connect`]:
//!
//! - [`sqlite::SqliteStore`], the embedded default: one file, WAL, a single
//!   writer connection (so write transactions never fight over the lock) and
//!   a small pool of readers.
//! - [`postgres::PgStore`], for scale: any number of Tutti processes share one
//!   database; leases are claimed with `FOR UPDATE SKIP LOCKED`.
//!
//! Each backend has its own migrations folder, applied at start. The SQL both
//! backends share is written once (see `shared.rs`); only what differs (the
//! claim of a task, bulk inserts, locking) is written per backend. The
//! contract tests in `tests/contract.rs` run against both.
//!
//! A committed write is durable against a killed process: SQLite runs in WAL
//! mode with `synchronous=NORMAL` (a commit is in the WAL before it returns;
//! only a power loss can take the last commits), PostgreSQL with its defaults.
#![deny(missing_docs)]

mod migrate;
mod model;
pub mod postgres;
mod search;
mod shared;
pub mod sqlite;
pub mod testing;
mod write;

pub use model::*;

use async_trait::async_trait;
use std::sync::Arc;
use tutti_domain::FieldError;
use tutti_domain::ids::{AssignmentId, JobId, RunId, TokenId, UserId, WorkspaceId};
use tutti_domain::job::JobConfig;
use tutti_domain::role::Role;
use tutti_domain::time::Timestamp;

/// Errors of the store. Only [`StoreError::Conflict`] carries a message meant
/// for a person; [`StoreError::Internal`] is logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The change collides with what is stored (a taken name, say).
    #[error("{0}")]
    Conflict(FieldError),
    /// A unit of work met a concurrent change and must be run again; the
    /// store retries these itself and never returns one.
    #[error("a concurrent change interfered; retry")]
    Contended,
    /// Anything else: the database is down, a query failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // PostgreSQL gives up one of two transactions that wait on each
        // other (deadlock_detected) or that a serializable read saw change
        // (serialization_failure): run the loser again.
        if let sqlx::Error::Database(d) = &e
            && matches!(d.code().as_deref(), Some("40P01" | "40001"))
        {
            return StoreError::Contended;
        }
        StoreError::Internal(e.into())
    }
}

/// Result of a store call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Opens the store the URL names and applies its migrations.
///
/// `sqlite://PATH` (created if missing; `sqlite::memory:` for a throwaway
/// store) or `postgres://…` / `postgresql://…`. Anything else is refused
/// rather than guessed at, so a typo never creates an empty database
/// somewhere unexpected.
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url).await?))
    } else {
        anyhow::bail!(
            "unsupported database URL {:?}: use sqlite://PATH or postgres://USER@HOST/DB",
            redact_url(url)
        )
    }
}

/// The current time, from the system clock.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// The URL with any password replaced, for logs and messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Everything Tutti stores. Narrow on purpose: each method is one unit of
/// work (often one transaction) that the HTTP layer or the monitor asks for.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which database this is.
    fn backend(&self) -> Backend;

    // --- users and tokens ---

    /// Creates a user; a taken name is a [`StoreError::Conflict`] on `name`.
    async fn create_user(&self, new: &NewUser, now: Timestamp) -> Result<User>;
    /// A user by id.
    async fn get_user(&self, id: UserId) -> Result<Option<User>>;
    /// A user by name.
    async fn get_user_by_name(&self, name: &str) -> Result<Option<User>>;
    /// Users in id order after the cursor.
    async fn list_users(&self, after: Option<i64>, limit: u32) -> Result<Vec<User>>;
    /// Enables or disables a user; a disabled user's tokens stop working.
    async fn set_user_disabled(&self, id: UserId, disabled: bool) -> Result<bool>;
    /// Changes a user's account role.
    async fn set_user_role(&self, id: UserId, role: Role) -> Result<bool>;
    /// Number of users (zero before the first admin is made).
    async fn count_users(&self) -> Result<i64>;
    /// Stores a token by the hash of its secret.
    async fn create_token(
        &self,
        user: UserId,
        name: &str,
        hash: &str,
        now: Timestamp,
    ) -> Result<Token>;
    /// A token by id.
    async fn get_token(&self, id: TokenId) -> Result<Option<Token>>;
    /// A user's tokens, newest first.
    async fn list_tokens(&self, user: UserId) -> Result<Vec<Token>>;
    /// Revokes a token; false if it was unknown or already revoked.
    async fn revoke_token(&self, id: TokenId, now: Timestamp) -> Result<bool>;
    /// The enabled user holding an unrevoked, unexpired token with this hash.
    async fn authenticate(&self, hash: &str, now: Timestamp) -> Result<Option<User>>;
    /// Stores a sign-in session (a token of kind session) until `expires`.
    async fn create_session(
        &self,
        user: UserId,
        hash: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<Token>;
    /// Ends the sign-in session with this hash (signing out); false if no
    /// live session has it. API tokens are left alone.
    async fn revoke_session_hash(&self, hash: &str, now: Timestamp) -> Result<bool>;
    /// Revokes a user's sessions but the one with hash `keep` (after a
    /// password change); how many.
    async fn revoke_sessions(&self, user: UserId, keep: &str, now: Timestamp) -> Result<u64>;
    /// Sets (or clears) a user's password hash.
    async fn set_password(&self, user: UserId, hash: Option<&str>) -> Result<bool>;
    /// A user by name with their password hash, if they have one.
    async fn password_of(&self, name: &str) -> Result<Option<(User, Option<String>)>>;
    /// Creates an account with a password, joining a workspace by
    /// invitation or open sign-up, in one transaction: a taken name, or an
    /// invitation unknown, used or expired, or a workspace closed to
    /// sign-up, is a [`StoreError::Conflict`] and nothing is written.
    async fn sign_up(
        &self,
        new: &NewUser,
        password_hash: &str,
        joining: Joining<'_>,
        now: Timestamp,
    ) -> Result<(User, WorkspaceId, Role)>;

    // --- workspaces ---

    /// Creates a workspace whose creator becomes its admin.
    async fn create_workspace(
        &self,
        name: &str,
        creator: UserId,
        now: Timestamp,
    ) -> Result<Workspace>;
    /// A workspace by id.
    async fn get_workspace(&self, id: WorkspaceId) -> Result<Option<Workspace>>;
    /// Workspaces after the cursor: a member's own, or every one for `None`.
    async fn list_workspaces(
        &self,
        member: Option<UserId>,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Workspace>>;
    /// Adds a member or changes their role.
    async fn set_member(&self, ws: WorkspaceId, user: UserId, role: Role) -> Result<()>;
    /// Removes a member; false if they were not one.
    async fn remove_member(&self, ws: WorkspaceId, user: UserId) -> Result<bool>;
    /// A workspace's members by name.
    async fn list_members(&self, ws: WorkspaceId) -> Result<Vec<Member>>;
    /// A user's role in a workspace, if a member.
    async fn role_in(&self, ws: WorkspaceId, user: UserId) -> Result<Option<Role>>;
    /// Sets how people join a workspace.
    async fn set_registration(&self, ws: WorkspaceId, how: Registration) -> Result<bool>;
    /// Workspaces anyone may sign up to, by name.
    async fn open_workspaces(&self) -> Result<Vec<Workspace>>;
    /// Stores an invitation by the hash of its secret.
    async fn create_invitation(
        &self,
        ws: WorkspaceId,
        role: Role,
        hash: &str,
        by: UserId,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<Invitation>;
    /// A workspace's invitations, newest first.
    async fn list_invitations(&self, ws: WorkspaceId) -> Result<Vec<Invitation>>;
    /// The invitation with this hash, used or not.
    async fn invitation_by_hash(&self, hash: &str) -> Result<Option<Invitation>>;

    // --- jobs and items ---

    /// Creates a job.
    async fn create_job(
        &self,
        ws: WorkspaceId,
        config: &JobConfig,
        creator: UserId,
        now: Timestamp,
    ) -> Result<Job>;
    /// A job by id.
    async fn get_job(&self, id: JobId) -> Result<Option<Job>>;
    /// Replaces a job's configuration (after [`JobConfig::apply`]).
    async fn update_job(&self, id: JobId, config: &JobConfig, now: Timestamp) -> Result<()>;
    /// A workspace's jobs after the cursor.
    async fn list_jobs(&self, ws: WorkspaceId, after: Option<i64>, limit: u32) -> Result<Vec<Job>>;
    /// Counts of a job's tasks, leases and answers.
    async fn job_progress(&self, id: JobId) -> Result<Progress>;
    /// The jobs of every workspace the user belongs to, with what is left.
    async fn jobs_for_worker(&self, user: UserId) -> Result<Vec<WorkerJob>>;
    /// Appends rows to a job in one transaction: every batch from `rows` is
    /// inserted, and the whole import commits only when the sender says
    /// [`ImportMsg::Done`]. A [`ImportMsg::Failed`] or a dropped sender rolls
    /// everything back. Returns the number of rows committed, or `None` when
    /// rolled back.
    async fn import_tasks(
        &self,
        job: &Job,
        rows: tokio::sync::mpsc::Receiver<ImportMsg>,
    ) -> Result<Option<u64>>;

    // --- the worker loop ---

    /// Leases the worker the first open task they have not answered, or
    /// hands back the lease they already hold on this job.
    async fn next_assignment(&self, req: &LeaseRequest) -> Result<LeaseOutcome>;
    /// The unexpired lease `req.worker` holds on `req.job` (other than
    /// `req.besides`), if any.
    async fn held_lease(&self, req: &LeaseRequest) -> Result<Option<Assignment>>;
    /// Up to `limit` open tasks of `job` that already have workers'
    /// answers, still take more, and that `worker` has not answered,
    /// skipped or leased: `(seq, evidence)` in row order. Adaptive
    /// redundancy chooses among them where the worker's answer tells most.
    async fn started_open_tasks(
        &self,
        job: JobId,
        worker: UserId,
        limit: u32,
    ) -> Result<Vec<(i64, tutti_domain::policy::Evidence)>>;
    /// An assignment with its task's row.
    async fn get_assignment(&self, id: AssignmentId) -> Result<Option<Assignment>>;
    /// Records an answer (see [`SubmitOutcome`] for every way this can go).
    async fn submit(&self, req: &SubmitRequest) -> Result<SubmitOutcome>;
    /// Gives a pending lease back: skipped (not offered to this person again)
    /// or released (may come back to them later).
    async fn give_back(&self, req: &GiveBackRequest) -> Result<GiveBackOutcome>;
    /// Starts a pending lease's clock again from `now`, as the worker is
    /// shown its task (a task leased ahead waits unseen until then). False
    /// when the lease is not the worker's or not pending any more.
    async fn restart_lease(
        &self,
        id: AssignmentId,
        worker: UserId,
        time_limit_secs: u32,
        now: Timestamp,
    ) -> Result<bool>;
    /// Takes back a worker's last answer of a job while its task is still
    /// open and the answer was not a control question's: the answer leaves
    /// the tally, the worker's and the job's figures in one transaction, and
    /// the task is leased to the worker again (see [`UndoOutcome`]).
    async fn undo_answer(&self, req: &UndoRequest) -> Result<UndoOutcome>;
    /// Marks up to `limit` overdue pending leases abandoned and reopens their
    /// tasks; returns how many.
    async fn expire_leases(&self, now: Timestamp, limit: u32) -> Result<u64>;

    // --- results ---

    /// Tasks of a job in `_id` order after the cursor, with their outcome.
    async fn results_page(&self, job: JobId, after_seq: i64, limit: u32)
    -> Result<Vec<TaskResult>>;
    /// Like [`Store::results_page`], only the tasks `filter` keeps.
    async fn results_filtered(
        &self,
        job: JobId,
        filter: &ResultFilter,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<TaskResult>>;
    /// How many tasks `filter` keeps, by state and label, and a histogram
    /// of their confidence.
    async fn results_summary(&self, job: JobId, filter: &ResultFilter) -> Result<ResultSummary>;
    /// Submitted answers of a job in submission order after the cursor.
    async fn answers_page(
        &self,
        job: JobId,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<AnswerRecord>>;
    /// Submitted answers of the tasks with `_id` in `from_seq..=to_seq`, in
    /// `_id` order, then submission order.
    async fn task_answers(
        &self,
        job: JobId,
        from_seq: i64,
        to_seq: i64,
    ) -> Result<Vec<AnswerRecord>>;

    /// The id of the job's newest submitted answer (0 if none).
    async fn last_answer_id(&self, job: JobId) -> Result<i64>;
    /// Stores a re-aggregation of a job in place of its last one, in one
    /// transaction.
    async fn save_aggregation(&self, job: JobId, fit: &AggregationFit) -> Result<()>;
    /// Jobs with submitted answers newer than their last re-aggregation
    /// (or never re-aggregated), by id.
    async fn jobs_with_new_answers(&self) -> Result<Vec<JobId>>;
    /// A worker's answers and control record in a job.
    async fn gold_record(&self, job: JobId, worker: UserId) -> Result<GoldRecord>;
    /// Stops a worker in a job (once); with `exclude`, takes their answers
    /// to open questions out of every count and re-decides the tasks they
    /// were part of, reopening those that no longer have a label.
    async fn stop_worker(
        &self,
        job: JobId,
        worker: UserId,
        policy: &tutti_domain::policy::Policy,
        exclude: bool,
        now: Timestamp,
    ) -> Result<StopOutcome>;
    /// The job's last re-aggregation, if any.
    async fn aggregation_info(&self, job: JobId) -> Result<Option<AggregationInfo>>;
    /// Per worker who touched the job: answers, skips, abandoned leases,
    /// agreement with the labels, estimated skill and time per answer. Read
    /// from figures every write keeps up to date: one row per worker.
    async fn worker_quality(&self, job: JobId) -> Result<Vec<WorkerQuality>>;
    /// Counts the job's per-worker and per-hour figures again from its
    /// assignments and tasks and replaces the kept ones (a repair; they
    /// never differ in normal operation).
    async fn recount_job_figures(&self, job: JobId) -> Result<()>;
    /// A job's answers and decisions per hour, oldest first (hours with
    /// neither are left out).
    async fn job_activity(&self, job: JobId) -> Result<Vec<ActivityHour>>;
    /// How many answers a worker submitted in a job since a time.
    async fn answered_since(&self, job: JobId, worker: UserId, since: Timestamp) -> Result<i64>;

    // --- outside crowds ---

    /// Jobs answered by `crowd` that still have open tasks or HITs not yet
    /// closed, oldest first.
    async fn crowd_jobs(&self, crowd: tutti_domain::job::Crowd) -> Result<Vec<Job>>;
    /// A crowd job's tasks that are open or whose HIT is not yet closed, in
    /// order, each with its HIT if one was asked for.
    async fn crowd_tasks(&self, job: JobId) -> Result<Vec<CrowdTask>>;
    /// Records (or updates) the HIT of task `hit.seq` of `job`.
    async fn put_crowd_hit(&self, job: JobId, hit: &CrowdHit) -> Result<()>;
    /// Leases task `seq` itself (not the next open one) to `req.worker`:
    /// how an answer given outside Tutti enters the job's counts. The lease
    /// the worker already holds on it is returned again, so a connector
    /// that stopped between lease and submit carries on.
    async fn lease_task(&self, req: &LeaseRequest, seq: i64) -> Result<TaskLease>;

    // --- bulk labeling tasks ---

    /// Stores a new task, PENDING.
    async fn create_label_task(&self, task: &LabelTask) -> Result<()>;
    /// The newest tasks first.
    async fn list_label_tasks(&self, limit: u32) -> Result<Vec<LabelTask>>;
    /// A task by id.
    async fn get_label_task(&self, task_id: &str) -> Result<Option<LabelTask>>;
    /// Records a task's status, counters and error.
    async fn update_label_task(
        &self,
        task_id: &str,
        stat: &str,
        prod_stat: Option<&str>,
        metrics: &serde_json::Value,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<()>;
    /// Tasks that are PENDING or RUNNING, oldest first: after a restart,
    /// these run (again, from their checkpoints).
    async fn unfinished_label_tasks(&self) -> Result<Vec<LabelTask>>;

    // --- workflow runs ---

    /// Stores a run, its files and its steps (all idle), queued.
    async fn create_run(&self, new: &NewRun, now: Timestamp) -> Result<Run>;
    /// A run by id.
    async fn get_run(&self, id: RunId) -> Result<Option<Run>>;
    /// A workspace's runs, newest first, before the cursor (a run id).
    async fn list_runs(&self, ws: WorkspaceId, before: Option<i64>, limit: u32)
    -> Result<Vec<Run>>;
    /// An uploaded file of a run.
    async fn run_file(&self, id: RunId, name: &str) -> Result<Option<Vec<u8>>>;
    /// A run's steps in order.
    async fn run_nodes(&self, id: RunId) -> Result<Vec<RunNode>>;
    /// Runs the runner must look at: not final, or with an announcement
    /// due by `now`.
    async fn runs_to_advance(&self, now: Timestamp) -> Result<Vec<RunId>>;
    /// Records what the runner did, in one transaction; false (and nothing
    /// changed) when the run was cancelled or retried since the runner read
    /// it, or a final status is reported for a cancelled run.
    async fn report_run(&self, id: RunId, report: &RunReport) -> Result<bool>;
    /// A human step's job: the existing one, or a new one made with these
    /// rows and tied to the step, in one transaction (so a crash never
    /// leaves a second job behind).
    async fn node_job(
        &self,
        run: &Run,
        node: i64,
        config: &JobConfig,
        rows: &[ImportRow],
        now: Timestamp,
    ) -> Result<JobId>;
    /// Cancels a run that is not final; returns it as it is now.
    async fn cancel_run(&self, id: RunId, now: Timestamp) -> Result<Option<Run>>;
    /// Asks for a failed step to run again.
    async fn retry_node(&self, id: RunId, node: i64, now: Timestamp) -> Result<RetryOutcome>;
    /// Records a webhook delivery attempt: `delivered`, `failed` (given
    /// up), or `pending` with the time of the next try; nothing when the
    /// run was retried since (its generation moved on).
    async fn webhook_attempt(
        &self,
        id: RunId,
        generation: i64,
        state: &str,
        next_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://tutti:s3cret@db:5432/tutti"),
            "postgres://tutti:***@db:5432/tutti"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(redact_url("sqlite://tutti.db"), "sqlite://tutti.db");
    }
}
