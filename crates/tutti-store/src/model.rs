//! The records the store hands out and takes in.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tutti_domain::ids::{AssignmentId, JobId, RunId, TaskId, TokenId, UserId, WorkspaceId};
use tutti_domain::job::JobConfig;
use tutti_domain::policy::{Confusion, Policy, Side, Votes};
use tutti_domain::role::Role;
use tutti_domain::time::Timestamp;

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Unique login name.
    pub name: String,
    /// Name shown to people.
    pub display_name: String,
    /// Account role: `admin` manages the installation, `requester` may create
    /// workspaces, `steward` and `worker` answer tasks.
    pub role: Role,
    /// A disabled user cannot sign in or use tokens.
    pub disabled: bool,
    /// When the account was made.
    pub created_at: Timestamp,
}

/// What is needed to make a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Unique login name.
    pub name: String,
    /// Name shown to people.
    pub display_name: String,
    /// Account role.
    pub role: Role,
}

/// An API token (its secret is shown once, at creation, and never stored).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Token {
    /// Id.
    pub id: TokenId,
    /// Owner.
    pub user_id: UserId,
    /// What the token is for.
    pub name: String,
    /// When made.
    pub created_at: Timestamp,
    /// When revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// An API token, or a web sign-in session.
    pub kind: TokenKind,
    /// When it stops working (sessions), if ever.
    pub expires_at: Option<Timestamp>,
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Made on request for the API or the CLI; lives until revoked.
    Api,
    /// Made by signing in on the web pages; expires, ends at sign-out.
    Session,
}

impl TokenKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
        }
    }
}

/// How people join a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Only with an invitation from one of its admins.
    Invite,
    /// Anyone may sign up, and joins as a worker.
    Open,
}

impl Registration {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Invite => "invite",
            Registration::Open => "open",
        }
    }
}

impl std::str::FromStr for Registration {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "invite" => Ok(Registration::Invite),
            "open" => Ok(Registration::Open),
            other => Err(format!(
                "unknown registration {other:?}; expected invite or open"
            )),
        }
    }
}

/// An invitation to join a workspace (its secret is shown once).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invitation {
    /// Id.
    pub id: i64,
    /// The workspace it lets someone join.
    pub workspace_id: WorkspaceId,
    /// The role they get there.
    pub role: Role,
    /// Who made it.
    pub created_by: UserId,
    /// When made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// Who signed up with it, once used.
    pub used_by: Option<UserId>,
}

/// How a new account joins a workspace at sign-up.
#[derive(Debug, Clone, Copy)]
pub enum Joining<'a> {
    /// With the invitation whose secret has this hash.
    Invitation(&'a str),
    /// A workspace open for sign-up, as a worker.
    Open(WorkspaceId),
}

/// A workspace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workspace {
    /// Id.
    pub id: WorkspaceId,
    /// Name.
    pub name: String,
    /// Creator.
    pub created_by: UserId,
    /// When made.
    pub created_at: Timestamp,
    /// How people join it.
    pub registration: Registration,
}

/// A member of a workspace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    /// The user.
    pub user_id: UserId,
    /// Their login name.
    pub name: String,
    /// Their role here.
    pub role: Role,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    /// Id.
    pub id: JobId,
    /// The workspace it belongs to.
    pub workspace_id: WorkspaceId,
    /// Its checked configuration.
    #[serde(flatten)]
    pub config: JobConfig,
    /// Creator.
    pub created_by: UserId,
    /// When made.
    pub created_at: Timestamp,
    /// When last changed.
    pub updated_at: Timestamp,
}

/// Answers one worker gave on a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerCount {
    /// The worker.
    pub worker_id: UserId,
    /// Their login name.
    pub name: String,
    /// Answers submitted.
    pub answers: i64,
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    /// All tasks.
    pub tasks: i64,
    /// Tasks still collecting answers.
    pub open: i64,
    /// Tasks with a winning label.
    pub labeled: i64,
    /// Tasks where no label reached agreement.
    pub undecided: i64,
    /// `labeled + undecided`.
    pub done: i64,
    /// Leases out now.
    pub pending_leases: i64,
    /// Answers submitted.
    pub answers: i64,
    /// Answers per worker, most first.
    pub answers_per_worker: Vec<WorkerCount>,
    /// Control questions (not counted in `tasks`).
    pub gold_tasks: i64,
}

/// A job as a worker sees it in their list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerJob {
    /// The job.
    pub job_id: JobId,
    /// Its workspace.
    pub workspace_id: WorkspaceId,
    /// Its name.
    pub name: String,
    /// The worker's role in that workspace.
    pub role: Role,
    /// Tasks still collecting answers.
    pub open_tasks: i64,
    /// Answers this worker gave.
    pub answered_by_me: i64,
}

/// One imported row.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    /// The row: a JSON object of column to value.
    pub data: String,
    /// The known answer, which makes the row a control question.
    pub gold: Option<String>,
}

impl ImportRow {
    /// A plain row.
    pub fn plain(data: String) -> Self {
        Self { data, gold: None }
    }
}

/// A message of an import stream.
#[derive(Debug)]
pub enum ImportMsg {
    /// Rows to store.
    Rows(Vec<ImportRow>),
    /// The input is bad: roll everything back.
    Failed,
    /// The input ended well: commit.
    Done,
}

/// A request for a lease.
#[derive(Debug, Clone)]
pub struct LeaseRequest {
    /// The job.
    pub job: JobId,
    /// Its policy.
    pub policy: Policy,
    /// Who asks.
    pub worker: UserId,
    /// Which count their answer goes to.
    pub side: Side,
    /// Lease a control question (one the worker has not seen) instead of
    /// an open task.
    pub gold: bool,
    /// A lease the worker holds that does not count as held: asking past it
    /// leases a second task ahead (the worker page's prefetch) instead of
    /// returning it.
    pub besides: Option<AssignmentId>,
    /// Now.
    pub now: Timestamp,
}

/// The state of an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AssignmentStatus {
    /// Leased, waiting for an answer.
    Pending,
    /// Answered.
    Submitted,
    /// Not answered in time; the task was reopened.
    Abandoned,
    /// Answered, then taken out of the counts: control questions stopped
    /// the worker.
    Excluded,
    /// Given back; may be offered to the same person again.
    Released,
    /// Given back; not offered to the same person again.
    Skipped,
}

impl AssignmentStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentStatus::Pending => "pending",
            AssignmentStatus::Submitted => "submitted",
            AssignmentStatus::Abandoned => "abandoned",
            AssignmentStatus::Released => "released",
            AssignmentStatus::Skipped => "skipped",
            AssignmentStatus::Excluded => "excluded",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => AssignmentStatus::Pending,
            "submitted" => AssignmentStatus::Submitted,
            "abandoned" => AssignmentStatus::Abandoned,
            "released" => AssignmentStatus::Released,
            "skipped" => AssignmentStatus::Skipped,
            "excluded" => AssignmentStatus::Excluded,
            _ => return None,
        })
    }
}

/// A lease of a task to a person, with the task's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assignment {
    /// Id.
    pub id: AssignmentId,
    /// The job.
    pub job_id: JobId,
    /// The task.
    pub task_id: TaskId,
    /// The task's row number in the job (Cymphony's `_id`).
    #[serde(rename = "_id")]
    pub seq: i64,
    /// Who holds it.
    pub worker_id: UserId,
    /// Which count the answer goes to.
    pub side: Side,
    /// Where it stands.
    pub status: AssignmentStatus,
    /// When leased.
    pub leased_at: Timestamp,
    /// When the lease runs out.
    pub deadline: Timestamp,
    /// The answer, once submitted.
    pub answer: Option<String>,
    /// The key the answer was submitted with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Whether the answer came after the lease ran out.
    pub late: bool,
    /// The task's row.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Map<String, Value>,
}

/// What [`crate::Store::next_assignment`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseOutcome {
    /// A new lease.
    Leased(Assignment),
    /// The lease the worker already held on this job, handed back.
    Held(Assignment),
    /// Every open task the worker could take is leased to others now; one
    /// may come free (a lease expires or an answer disagrees).
    NothingNow,
    /// The worker has answered or skipped every open task.
    DoneForWorker,
    /// Every task has a label or is undecided.
    Finished,
    /// The job has no items yet.
    Empty,
}

/// A submitted answer, checked against the job.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    /// The assignment.
    pub assignment: AssignmentId,
    /// Who submits (must hold the assignment).
    pub worker: UserId,
    /// The job's policy.
    pub policy: Policy,
    /// The checked answer.
    pub answer: String,
    /// A graded pairwise answer's score (the answer is the side it favours).
    pub grade: Option<i64>,
    /// A client key that makes a retried submit harmless.
    pub idempotency_key: Option<String>,
    /// Under adaptive redundancy: the answer weighed by the worker's
    /// accuracy, added to the task's evidence.
    pub evidence: Option<tutti_domain::policy::Evidence>,
    /// Now.
    pub now: Timestamp,
}

/// How a submit went.
#[derive(Debug, Clone, PartialEq)]
pub enum SubmitOutcome {
    /// Recorded now; `late` if it came after the lease ran out but the task
    /// still needed it.
    Accepted {
        /// The assignment after the submit.
        assignment: Assignment,
        /// The task's state after counting it.
        task_state: String,
        /// On a control question: whether the answer was right.
        gold: Option<GoldCheck>,
    },
    /// The same submit was already recorded; nothing changed.
    Replayed {
        /// The assignment as recorded.
        assignment: Assignment,
        /// The task's state now.
        task_state: String,
        /// On a control question: whether the answer was right.
        gold: Option<GoldCheck>,
    },
    /// No such assignment for this worker.
    NotFound,
    /// Refused, with a code and a reason a person can act on.
    Refused {
        /// Machine-readable reason.
        code: &'static str,
        /// Human-readable reason.
        message: String,
    },
}

/// Skip or release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveBack {
    /// Do not offer this task to this person again.
    Skip,
    /// Give the task back; it may come to this person again.
    Release,
}

/// A request to give a lease back.
#[derive(Debug, Clone)]
pub struct GiveBackRequest {
    /// The assignment.
    pub assignment: AssignmentId,
    /// Who gives it back.
    pub worker: UserId,
    /// The job's policy.
    pub policy: Policy,
    /// Skip or release.
    pub how: GiveBack,
    /// Now.
    pub now: Timestamp,
}

/// How giving back went.
#[derive(Debug, Clone, PartialEq)]
pub enum GiveBackOutcome {
    /// Done.
    Done(Assignment),
    /// No such assignment for this worker.
    NotFound,
    /// The assignment is no longer pending.
    NotPending(AssignmentStatus),
}

/// A worker taking back their last answer of a job.
#[derive(Debug, Clone)]
pub struct UndoRequest {
    /// The answered assignment.
    pub assignment: AssignmentId,
    /// Who takes it back (must have given it).
    pub worker: UserId,
    /// The job's policy (its time limit restarts the lease).
    pub policy: Policy,
    /// Now.
    pub now: Timestamp,
}

/// How taking back an answer went.
#[derive(Debug, Clone, PartialEq)]
pub enum UndoOutcome {
    /// The answer is gone and the task is leased to the worker again, its
    /// clock restarted.
    Done(Assignment),
    /// No such assignment for this worker.
    NotFound,
    /// The answer stays: why, for the worker.
    Refused {
        /// Machine-readable reason.
        code: &'static str,
        /// For people.
        message: String,
    },
}

/// A task and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskResult {
    /// Row number in the job.
    #[serde(rename = "_id")]
    pub seq: i64,
    /// `open`, `labeled`, `undecided`, or `closed` (its run was
    /// cancelled).
    pub state: String,
    /// The winning label.
    pub label: Option<String>,
    /// Agreeing answers over answers on the deciding side.
    pub confidence: Option<f64>,
    /// Which side decided.
    pub decided_by: Option<Side>,
    /// All answers per label, workers and stewards together.
    pub votes: Votes,
    /// The label from the job's last re-aggregation, where there was one.
    pub aggregate: Option<AggregatedLabel>,
    /// The row.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Map<String, Value>,
}

/// One submitted answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnswerRecord {
    /// The assignment (the cursor of the answers list).
    pub assignment_id: AssignmentId,
    /// Row number in the job.
    #[serde(rename = "_id")]
    pub seq: i64,
    /// Who answered.
    pub worker_id: UserId,
    /// Their login name.
    pub worker_name: String,
    /// Which count it went to.
    pub side: Side,
    /// The answer (Cymphony's `annotation`).
    pub annotation: String,
    /// A graded pairwise answer's score, negative when the left item is
    /// better.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grade: Option<i64>,
    /// When submitted.
    pub submitted_at: Timestamp,
    /// Whether it came after the lease ran out.
    pub late: bool,
    /// Whether it answered a control question (whose answer is known, so
    /// it is no item to aggregate).
    #[serde(skip)]
    pub control: bool,
}

/// A task's label from re-aggregating its job's answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AggregatedLabel {
    /// The method that made it.
    pub method: String,
    /// The label; absent where the method left the task undecided.
    pub label: Option<String>,
    /// Its posterior probability.
    pub confidence: Option<f64>,
}

/// One task's outcome of a re-aggregation, to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRow {
    /// The task's `_id`.
    pub seq: i64,
    /// The label, `None` if undecided.
    pub label: Option<String>,
    /// Its posterior probability.
    pub confidence: Option<f64>,
    /// Posterior per label, as JSON text.
    pub posterior: String,
}

/// A whole re-aggregation of a job, stored in one transaction in place of
/// the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregationFit {
    /// The method's name.
    pub method: String,
    /// The newest answer (assignment id) it covers.
    pub through_id: i64,
    /// Answers it used.
    pub answers: i64,
    /// EM iterations run.
    pub iterations: i64,
    /// When.
    pub at: Timestamp,
    /// Per task.
    pub rows: Vec<AggregateRow>,
    /// Per worker: the skill the method estimated.
    pub skills: Vec<(UserId, f64)>,
    /// Per worker, where the method fits one (Dawid-Skene): the confusion
    /// matrix.
    pub confusions: Vec<(UserId, Confusion)>,
}

/// What the job's last re-aggregation was.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AggregationInfo {
    /// The method.
    pub method: String,
    /// The newest answer (assignment id) it covers.
    pub through_id: i64,
    /// Answers it used.
    pub answers: i64,
    /// EM iterations run.
    pub iterations: i64,
    /// When it ran.
    pub aggregated_at: Timestamp,
}

/// One worker's record on a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerQuality {
    /// The worker.
    pub worker_id: UserId,
    /// Their login name.
    pub worker_name: String,
    /// Answers submitted.
    pub answers: i64,
    /// Tasks skipped.
    pub skipped: i64,
    /// Leases that ran out unanswered.
    pub abandoned: i64,
    /// Of their answers on labeled tasks, the share equal to the label.
    pub agreement: Option<f64>,
    /// Answers on labeled tasks (what `agreement` is out of).
    pub agreement_answers: i64,
    /// Skill estimated by the job's last re-aggregation.
    pub skill: Option<f64>,
    /// The method that estimated `skill`.
    pub skill_method: Option<String>,
    /// Mean seconds from lease to answer.
    pub mean_seconds: Option<f64>,
    /// Control questions answered.
    pub gold_seen: i64,
    /// Of those, answered right.
    pub gold_correct: i64,
    /// Share of control questions answered right.
    pub gold_accuracy: Option<f64>,
    /// When control questions stopped the worker, if they did.
    pub stopped_at: Option<Timestamp>,
}

/// A worker's record on a job: answers, control questions, estimated skill.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GoldRecord {
    /// Answers submitted in the job (control questions included).
    pub answers: u64,
    /// Control questions answered.
    pub seen: u64,
    /// Of those, answered right.
    pub correct: u64,
    /// When the worker was stopped, if they were.
    pub stopped_at: Option<Timestamp>,
    /// Accuracy the job's last re-aggregation estimated, where its method
    /// estimates one (not GLAD's ability or weighted vote's weights).
    pub skill: Option<f64>,
    /// The confusion matrix the job's last re-aggregation fitted, where it
    /// was Dawid-Skene.
    pub confusion: Option<Confusion>,
}

/// What stopping a worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StopOutcome {
    /// Whether this call stopped them (false: they were stopped already).
    pub stopped: bool,
    /// Answers taken out of the counts.
    pub excluded: u64,
    /// Decided tasks reopened because an excluded answer had decided them.
    pub reopened: u64,
}

/// Whether a control answer was right, for the worker's feedback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GoldCheck {
    /// Whether the answer was the known one.
    pub correct: bool,
    /// The known answer.
    pub expected: String,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Accepted; the runner has not started it (or it waits for the run it
    /// follows).
    Queued,
    /// Automatic steps are running.
    Running,
    /// Only human steps are left, and they wait for people.
    Waiting,
    /// Every step finished.
    Completed,
    /// A step failed; retry it to go on.
    Failed,
    /// Stopped by a person.
    Cancelled,
}

impl RunStatus {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// The status for a stored word.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "waiting" => RunStatus::Waiting,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the run is over (nothing more will run by itself).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// Where a step of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Not started (its inputs are not ready).
    Idle,
    /// Running now.
    Running,
    /// A human step whose job waits for people.
    Waiting,
    /// Done; its outputs are stored.
    Completed,
    /// Failed; see its error.
    Failed,
    /// Failed, and a retry was asked for; the runner runs it again.
    Retrying,
}

impl NodeStatus {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Idle => "idle",
            NodeStatus::Running => "running",
            NodeStatus::Waiting => "waiting",
            NodeStatus::Completed => "completed",
            NodeStatus::Failed => "failed",
            NodeStatus::Retrying => "retrying",
        }
    }

    /// The status for a stored word.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "idle" => NodeStatus::Idle,
            "running" => NodeStatus::Running,
            "waiting" => NodeStatus::Waiting,
            "completed" => NodeStatus::Completed,
            "failed" => NodeStatus::Failed,
            "retrying" => NodeStatus::Retrying,
            _ => return None,
        })
    }
}

/// A workflow run as the store holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Run {
    /// Id.
    pub id: RunId,
    /// The workspace it belongs to.
    pub workspace_id: WorkspaceId,
    /// A name people recognise it by.
    pub name: String,
    /// `cy`, `json` or `yaml`.
    pub format: String,
    /// The program as sent.
    pub program: String,
    /// Parameters the program's steps are given (`${name}` in queries).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub params: Map<String, Value>,
    /// Where it stands.
    pub status: RunStatus,
    /// Why it failed, for a person.
    pub error: Option<String>,
    /// Bumped by every cancel and retry, so the runner never overwrites a
    /// person's decision with a stale report.
    #[serde(skip)]
    pub generation: i64,
    /// The run whose completion starts this one.
    pub after_run: Option<RunId>,
    /// Where the finished run is announced.
    pub webhook_url: Option<String>,
    /// The secret the announcement is signed with (never shown).
    #[serde(skip)]
    pub webhook_secret: Option<String>,
    /// The key that signs this run's callback URLs (never shown).
    #[serde(skip)]
    pub callback_secret: String,
    /// `pending`, `delivered` or `failed`.
    pub webhook_state: Option<String>,
    /// Deliveries tried.
    pub webhook_attempts: i64,
    /// When the next delivery is due.
    #[serde(skip)]
    pub webhook_next_at: Option<Timestamp>,
    /// Who made it.
    pub created_by: UserId,
    /// When made.
    pub created_at: Timestamp,
    /// When the runner first took it up.
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// When last changed.
    pub updated_at: Timestamp,
}

/// A run as requested, checked by the caller.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Its name.
    pub name: String,
    /// `cy`, `json` or `yaml`.
    pub format: String,
    /// The program.
    pub program: String,
    /// Parameters.
    pub params: Map<String, Value>,
    /// Uploaded files by name.
    pub files: Vec<(String, Vec<u8>)>,
    /// The steps: operator and a label (its outputs, or its file).
    pub nodes: Vec<(String, String)>,
    /// The run whose completion starts this one.
    pub after_run: Option<RunId>,
    /// Where to announce the finished run, and the signing secret.
    pub webhook: Option<(String, String)>,
    /// A random secret that signs the run's callback URLs.
    pub callback_secret: String,
    /// Who asks.
    pub created_by: UserId,
}

/// One step of a run as last reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunNode {
    /// Its place in the workflow, from 0.
    pub index: i64,
    /// The operator.
    pub op: String,
    /// Its outputs (or the file it writes).
    pub label: String,
    /// Where it stands.
    pub status: NodeStatus,
    /// Rows read.
    pub rows_in: i64,
    /// Rows written.
    pub rows_out: i64,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// Why it failed.
    pub error: Option<String>,
    /// A human step's job.
    pub job_id: Option<JobId>,
}

/// What the runner reports after advancing a run.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The generation the runner read; a report against an older one is
    /// refused.
    pub generation: i64,
    /// The run's status now.
    pub status: RunStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// Steps whose state changed.
    pub nodes: Vec<RunNode>,
    /// When.
    pub now: Timestamp,
}

/// Result of asking to retry a step.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryOutcome {
    /// The step will run again.
    Retrying(Box<Run>),
    /// The run has no such step.
    NoSuchNode,
    /// The step has not failed.
    NotFailed(NodeStatus),
}

/// A bulk labeling task of the task API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelTask {
    /// 32 hex digits.
    pub task_id: String,
    /// The request as accepted (JSON).
    pub config: serde_json::Value,
    /// PENDING, RUNNING, SUCCESS or FAILURE.
    pub stat: String,
    /// `finish` once the production step has run.
    pub prod_stat: Option<String>,
    /// The result table's name.
    pub result: String,
    /// The counters (JSON).
    pub metrics: serde_json::Value,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// The HIT a crowd connector posted for one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrowdHit {
    /// The task's number in its job.
    pub seq: i64,
    /// The idempotency token the HIT was asked for with.
    pub token: String,
    /// The crowd's id of the HIT, once it answered.
    pub hit_id: Option<String>,
    /// How many answers the HIT asks for so far.
    pub max_assignments: u32,
    /// Whether the HIT is finished with (expired after its task closed).
    pub closed: bool,
}

/// A task of a crowd job, as the connector sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CrowdTask {
    /// The task's number in its job.
    pub seq: i64,
    /// `open`, `labeled`, `undecided` or `closed`.
    pub state: String,
    /// The row.
    pub data: serde_json::Map<String, serde_json::Value>,
    /// Its HIT, if one was asked for.
    pub hit: Option<CrowdHit>,
}

/// What [`crate::Store::lease_task`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskLease {
    /// A lease to submit the answer on.
    Leased(Assignment),
    /// The worker's answer to this task is already counted.
    Answered,
    /// The task takes no more answers (decided, closed, or every slot in use).
    Closed,
}

/// Which of a job's results to show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultFilter {
    /// Only tasks in this state (`open`, `labeled`, `undecided`, `closed`).
    pub state: Option<String>,
    /// Only tasks with this label.
    pub label: Option<String>,
    /// Only tasks at least this confident.
    pub min_confidence: Option<f64>,
    /// Only tasks at most this confident.
    pub max_confidence: Option<f64>,
    /// Only tasks this worker answered.
    pub worker: Option<UserId>,
    /// Only rows whose values hold every term of this search.
    pub text: Option<tutti_domain::search::TextSearch>,
}

/// Counts over the results a filter keeps.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResultSummary {
    /// Tasks kept.
    pub matching: i64,
    /// Tasks kept, by state.
    pub states: std::collections::BTreeMap<String, i64>,
    /// Labeled tasks kept, by label.
    pub labels: std::collections::BTreeMap<String, i64>,
    /// Tasks kept by confidence, in tenths (`[0, 0.1)`, …, `[0.9, 1]`).
    pub confidence: [i64; 10],
}

/// One hour of a job's activity.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityHour {
    /// The hour's start.
    pub hour: Timestamp,
    /// Answers submitted in it.
    pub answers: i64,
    /// Tasks decided (labeled or undecided) in it.
    pub decided: i64,
}
