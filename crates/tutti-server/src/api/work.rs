//! The worker loop: ask for the next task, answer it, skip or release it.
//!
//! `POST /jobs/{id}/next` answers 200 with a lease, 204 with `Retry-After`
//! when every open task the worker could take is leased to others, or 410
//! when the job is finished (or nothing in it is left for this worker).

use super::Page;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tutti_domain::ids::{AssignmentId, JobId, UserId};
use tutti_domain::policy::{Evidence, GoldPolicy, OnGoldFail, Side};
use tutti_domain::role::Role;
use tutti_domain::template;
use tutti_store::{
    Assignment, GiveBack, GiveBackOutcome, GiveBackRequest, GoldCheck, GoldRecord, Job,
    LeaseOutcome, LeaseRequest, SubmitOutcome, SubmitRequest, TaskLease, UndoOutcome, UndoRequest,
    WorkerJob,
};

/// Seconds a worker is told to wait when nothing is free now.
pub const RETRY_AFTER_SECS: u32 = 5;

/// A leased task with everything needed to show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    /// The lease.
    pub assignment: Assignment,
    /// True when this lease was already held (asked for again).
    pub held: bool,
    /// The question with the row's values filled in (plain text).
    pub question: String,
    /// Answer options (empty for free text).
    pub answers: Vec<String>,
    /// Whether the answer is typed.
    pub free_text: bool,
    /// Short instructions (the requester's HTML, through the allow-list of
    /// [`crate::html`]).
    pub short_instructions: String,
    /// Long instructions (likewise).
    pub long_instructions: String,
    /// The job's layout with the row's values filled in, HTML-escaped, through
    /// the same allow-list; for
    /// a pairwise job without a layout, its two items side by side.
    pub layout_html: Option<String>,
    /// For a pairwise job: the columns compared, whether `tie` is an
    /// answer, and the scale of a graded one (answer with an integer from
    /// `-scale`, the left item is much better, to `scale`).
    pub compare: Option<tutti_domain::job::Compare>,
}

impl TaskView {
    /// Renders an assignment of `job`.
    pub fn new(job: &Job, assignment: Assignment, held: bool) -> Self {
        let c = &job.config;
        Self {
            question: template::render(&c.question, &assignment.data, str::to_owned),
            layout_html: match (&c.layout, &c.compare) {
                (Some(l), _) => Some(crate::html::clean(&template::render(
                    l,
                    &assignment.data,
                    crate::web::escape_html,
                ))),
                (None, Some(pair)) => Some(side_by_side(pair, &assignment.data)),
                (None, None) => None,
            },
            compare: c.compare.clone(),
            answers: c.answers.clone(),
            free_text: c.free_text,
            short_instructions: crate::html::clean_memo(&c.short_instructions),
            long_instructions: crate::html::clean_memo(&c.long_instructions),
            assignment,
            held,
        }
    }
}

/// A pair's two items side by side (stacked on a narrow screen), escaped.
fn side_by_side(
    pair: &tutti_domain::job::Compare,
    data: &serde_json::Map<String, serde_json::Value>,
) -> String {
    let side = |name: &str, column: &str| {
        let value = data
            .get(column)
            .map(template::value_text)
            .unwrap_or_default();
        format!(
            "<section class=\"side\"><h2>{name}</h2><div class=\"side-body\">{}</div></section>",
            crate::web::escape_html(&value)
        )
    };
    format!(
        "<div class=\"pair\">{}{}</div>",
        side("Left", &pair.left),
        side("Right", &pair.right)
    )
}

/// What `next` found, for the API and the worker page alike.
pub enum Next {
    /// A task to show.
    Task(Box<TaskView>),
    /// Nothing now; try again later (the reason says why).
    Wait(&'static str),
    /// Nothing ever: code and reason.
    Gone(&'static str, &'static str),
}

/// Leases the caller the next task of a job. With `after` (a lease the
/// caller holds), that lease does not count as held: the caller gets a
/// second task to show as soon as they finish the first.
pub async fn lease_next(
    state: &AppState,
    caller: &Caller,
    job: JobId,
    after: Option<AssignmentId>,
) -> Result<Next, ApiError> {
    let (job, role) = caller.job(state, job, false).await?;
    if job.config.crowd != tutti_domain::job::Crowd::InHouse {
        return Err(ApiError::conflict(
            "outside_crowd",
            "this job is answered on Mechanical Turk, not by in-house workers",
        ));
    }
    let side = job.config.policy.side_for(role == Role::Steward);
    // Control questions go to workers, not to stewards.
    let mut gold = false;
    let mut record = None;
    if let Some(g) = job.config.policy.gold.filter(|_| role != Role::Steward) {
        let r = state.store.gold_record(job.id, caller.0.id).await?;
        if r.stopped_at.is_some() {
            return Err(stopped(&g, r.seen, r.correct));
        }
        gold = g.gold_next(r.answers, r.seen);
        record = Some(r);
    }
    let mut req = LeaseRequest {
        job: job.id,
        policy: job.config.policy,
        worker: caller.0.id,
        side,
        gold,
        besides: after,
        now: tutti_store::now(),
    };
    if let Some(adaptive) = job
        .config
        .policy
        .adaptive
        .filter(|_| side == Side::Worker && !gold)
    {
        if let Some(a) = state.store.held_lease(&req).await? {
            return Ok(Next::Task(Box::new(TaskView::new(&job, a, true))));
        }
        let record = match record {
            Some(r) => r,
            None => state.store.gold_record(job.id, caller.0.id).await?,
        };
        if let Some(seq) =
            most_informative(state, &job, caller.0.id, &record, adaptive.prior_accuracy).await?
            && let TaskLease::Leased(a) = state.store.lease_task(&req, seq).await?
        {
            return Ok(Next::Task(Box::new(TaskView::new(&job, a, false))));
        }
    }
    let mut outcome = state.store.next_assignment(&req).await?;
    if gold && !matches!(outcome, LeaseOutcome::Leased(_) | LeaseOutcome::Held(_)) {
        // No control question left that this worker has not seen.
        req.gold = false;
        outcome = state.store.next_assignment(&req).await?;
    }
    Ok(match outcome {
        LeaseOutcome::Leased(a) => Next::Task(Box::new(TaskView::new(&job, a, false))),
        LeaseOutcome::Held(a) => Next::Task(Box::new(TaskView::new(&job, a, true))),
        LeaseOutcome::NothingNow => {
            Next::Wait("every open task you could take is leased to others right now")
        }
        LeaseOutcome::Empty => Next::Wait("the job has no items yet"),
        LeaseOutcome::Finished => Next::Gone(
            "job_finished",
            "the job is finished: every task has a label or is undecided",
        ),
        LeaseOutcome::DoneForWorker => Next::Gone(
            "nothing_left_for_you",
            "you have answered or skipped every open task of this job",
        ),
    })
}

/// Open tasks that already have answers weighed within this many, in row
/// order, are weighed against each other for a worker's next answer.
const STARTED_WINDOW: u32 = 64;

/// Under adaptive redundancy: of the started tasks this worker may take
/// (the first [`STARTED_WINDOW`] in row order), the one where their answer
/// is expected to tell most of the label (see
/// [`Evidence::expected_information`]), judged by what their record says
/// of them; ties go to the earlier task. None when no task is started: a
/// new one is then begun in row order, so open tasks are finished before
/// new ones begin.
async fn most_informative(
    state: &AppState,
    job: &Job,
    worker: UserId,
    record: &GoldRecord,
    prior: f64,
) -> Result<Option<i64>, ApiError> {
    let started = state
        .store
        .started_open_tasks(job.id, worker, STARTED_WINDOW)
        .await?;
    let labels = &job.config.answers;
    let answers: Vec<Evidence> = labels
        .iter()
        .map(|g| answer_evidence(labels, g, record, prior))
        .collect();
    let mut best: Option<(f64, i64)> = None;
    for (seq, evidence) in started {
        let tells = evidence.expected_information(labels, &answers);
        if best.is_none_or(|(b, _)| tells > b + 1e-12) {
            best = Some((tells, seq));
        }
    }
    Ok(best.map(|(_, seq)| seq))
}

/// A worker's accuracy for adaptive redundancy: their control accuracy
/// where they answered control questions, else the skill the job's last
/// re-aggregation estimated, each drawn towards `prior` by
/// [`tutti_aggregate::PRIOR_WEIGHT`] pseudo-answers; the prior alone for a
/// newcomer.
pub fn estimated_accuracy(record: &GoldRecord, prior: f64) -> f64 {
    let w = tutti_aggregate::PRIOR_WEIGHT;
    if record.seen > 0 {
        return (record.correct as f64 + prior * w) / (record.seen as f64 + w);
    }
    match record.skill {
        Some(s) if s.is_finite() => {
            let n = record.answers as f64;
            (s * n + prior * w) / (n + w)
        }
        _ => prior,
    }
}

/// What one answer says under adaptive redundancy. Control questions
/// are the surest record: a worker who has answered some counts by that
/// accuracy. Else the confusion matrix of the job's last Dawid-Skene
/// re-aggregation, which tells a worker who confuses two labels (or gives
/// one whatever the truth) from one who is right; else the accuracy a
/// re-aggregation estimated, else the prior. Every estimate is drawn
/// towards the prior by the answers behind it.
pub fn answer_evidence(
    labels: &[String],
    answer: &str,
    record: &GoldRecord,
    prior: f64,
) -> Evidence {
    match &record.confusion {
        Some(confusion) if record.seen == 0 => Evidence::of_answer_by_confusion(
            labels,
            answer,
            confusion,
            record.answers as f64,
            prior,
        ),
        _ => Evidence::of_answer(labels, answer, estimated_accuracy(record, prior)),
    }
}

/// 403 for a worker whom control questions stopped.
fn stopped(g: &GoldPolicy, seen: u64, correct: u64) -> ApiError {
    ApiError::forbidden(format!(
        "you answered {correct} of {seen} control questions of this job right, below the {:.0}% it asks for, \
         so it takes no more answers from you",
        g.min_accuracy * 100.0
    ))
    .with_code("worker_stopped")
}

/// Query of [`next`].
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NextQuery {
    /// A lease the caller holds and will answer first: the reply is
    /// another task, leased ahead, rather than that one again.
    pub after: Option<i64>,
}

/// Leases the next task: 200 with the task, 204 (with `Retry-After` and a
/// reason in `X-Tutti-Reason`) when nothing is free now, 403 when control
/// questions stopped the worker, 410 when nothing will come. A worker
/// holds one lease per job, and asking again returns it (`held: true`);
/// with `?after=` one held lease is passed over, so a client can fetch the
/// next task while the worker answers the current one.

#[utoipa::path(post, path = "/api/v1/jobs/{id}/next", tag = "work",
    params(("id" = i64, Path, description = "job id"), NextQuery),
    responses((status = 200, body = TaskView),
        (status = 204, description = "nothing free now; retry after Retry-After seconds"),
        (status = 403, body = crate::error::ErrorBody, description = "control questions stopped this worker (code worker_stopped)"),
        (status = 404, body = crate::error::ErrorBody),
        (status = 410, body = crate::error::ErrorBody, description = "job finished, or nothing left for this worker")),
    security(("bearer" = [])))]
pub async fn next(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<NextQuery>,
) -> Result<Response, ApiError> {
    Ok(
        match lease_next(&state, &caller, JobId(id), q.after.map(AssignmentId)).await? {
            Next::Task(view) => Json(view).into_response(),
            Next::Wait(reason) => {
                let mut headers = HeaderMap::new();
                headers.insert("retry-after", HeaderValue::from(RETRY_AFTER_SECS));
                headers.insert("x-tutti-reason", HeaderValue::from_static(reason));
                (StatusCode::NO_CONTENT, headers).into_response()
            }
            Next::Gone(code, message) => {
                ApiError::new(StatusCode::GONE, code, message).into_response()
            }
        },
    )
}

async fn own_assignment(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<(Assignment, Job), ApiError> {
    let a = state
        .store
        .get_assignment(AssignmentId(id))
        .await?
        .filter(|a| a.worker_id == caller.0.id)
        .ok_or_else(|| ApiError::not_found("assignment"))?;
    // Membership is checked again: a worker removed from the workspace
    // loses their leases with it.
    let (job, _) = caller
        .job(state, a.job_id, false)
        .await
        .map_err(|_| ApiError::not_found("assignment"))?;
    Ok((a, job))
}

/// One of the caller's assignments, rendered.
#[utoipa::path(get, path = "/api/v1/assignments/{id}", tag = "work",
    params(("id" = i64, Path, description = "assignment id")),
    responses((status = 200, body = TaskView), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_assignment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TaskView>, ApiError> {
    let (a, job) = own_assignment(&state, &caller, id).await?;
    Ok(Json(TaskView::new(&job, a, true)))
}

/// An answer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// One of the job's answers, or the typed text of a free-text job.
    pub answer: String,
    /// Any string unique to this answer: a retried submit with the same key
    /// is recognised and not counted twice. The `Idempotency-Key` header
    /// works too.
    pub idempotency_key: Option<String>,
}

/// How a submit went.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubmitResult {
    /// The assignment after the submit.
    pub assignment: Assignment,
    /// The task's state now: `open`, `labeled` or `undecided`.
    pub task_state: String,
    /// True when this repeated an earlier submit (nothing changed).
    pub replayed: bool,
    /// On a control question, when the job shows feedback: whether the
    /// answer was right and what the known answer is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gold: Option<GoldCheck>,
    /// Whether this answer's control result stopped the worker.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

/// Records the answer of the caller's assignment. A retried submit (same
/// idempotency key, or the same answer without a key) is answered as the
/// first was and not counted again. A submit after the lease expired is
/// accepted if the task still needs the answer, else refused with 409
/// `lease_expired` and the reason.
#[utoipa::path(post, path = "/api/v1/assignments/{id}/submit", tag = "work", request_body = SubmitBody,
    params(("id" = i64, Path, description = "assignment id")),
    responses((status = 200, body = SubmitResult), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SubmitBody>,
) -> Result<Json<SubmitResult>, ApiError> {
    let key = match body.idempotency_key {
        Some(k) => Some(k),
        None => headers
            .get("idempotency-key")
            .map(|v| {
                v.to_str().map(str::to_owned).map_err(|_| {
                    ApiError::bad_request("Idempotency-Key must be plain text")
                        .with_field("Idempotency-Key")
                })
            })
            .transpose()?,
    };
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 200) {
        return Err(
            tutti_domain::FieldError::new("idempotency_key", "must be 1-200 characters").into(),
        );
    }
    submit_answer(&state, &caller, id, &body.answer, key)
        .await
        .map(Json)
}

/// Checks and records an answer (shared by the API and the worker page).
pub async fn submit_answer(
    state: &AppState,
    caller: &Caller,
    id: i64,
    answer: &str,
    idempotency_key: Option<String>,
) -> Result<SubmitResult, ApiError> {
    let (a, job) = own_assignment(state, caller, id).await?;
    let checked = job.config.check_answer(answer)?;
    let answer = checked.answer;
    let evidence = match job.config.policy.adaptive {
        Some(adaptive) if a.side == Side::Worker => {
            let record = state.store.gold_record(job.id, caller.0.id).await?;
            Some(answer_evidence(
                &job.config.answers,
                &answer,
                &record,
                adaptive.prior_accuracy,
            ))
        }
        _ => None,
    };
    let outcome = state
        .store
        .submit(&SubmitRequest {
            assignment: a.id,
            worker: caller.0.id,
            policy: job.config.policy,
            answer,
            grade: checked.grade,
            idempotency_key,
            evidence,
            now: tutti_store::now(),
        })
        .await?;
    let policy = job.config.policy;
    let feedback = |g: Option<GoldCheck>| g.filter(|_| policy.gold.is_some_and(|p| p.feedback));
    match outcome {
        SubmitOutcome::Accepted {
            assignment,
            task_state,
            gold,
        } => {
            let mut stopped = false;
            if let (Some(_), Some(g)) = (&gold, policy.gold) {
                let record = state.store.gold_record(job.id, caller.0.id).await?;
                if g.fails(record.seen, record.correct) {
                    let exclude = g.on_fail == OnGoldFail::Exclude;
                    let out = state
                        .store
                        .stop_worker(job.id, caller.0.id, &policy, exclude, tutti_store::now())
                        .await?;
                    if out.stopped {
                        tracing::info!(
                            job = job.id.0,
                            worker = caller.0.id.0,
                            seen = record.seen,
                            correct = record.correct,
                            excluded = out.excluded,
                            reopened = out.reopened,
                            "control questions stopped a worker"
                        );
                    }
                    stopped = true;
                }
            }
            Ok(SubmitResult {
                assignment,
                task_state,
                replayed: false,
                gold: feedback(gold),
                stopped,
            })
        }
        SubmitOutcome::Replayed {
            assignment,
            task_state,
            gold,
        } => Ok(SubmitResult {
            assignment,
            task_state,
            replayed: true,
            gold: feedback(gold),
            stopped: false,
        }),
        SubmitOutcome::NotFound => Err(ApiError::not_found("assignment")),
        SubmitOutcome::Refused { code, message } => Err(ApiError::conflict(code, message)),
    }
}

/// Gives a lease back (shared by the API and the worker page).
pub async fn give_back(
    state: &AppState,
    caller: &Caller,
    id: i64,
    how: GiveBack,
) -> Result<Assignment, ApiError> {
    let (a, job) = own_assignment(state, caller, id).await?;
    match state
        .store
        .give_back(&GiveBackRequest {
            assignment: a.id,
            worker: caller.0.id,
            policy: job.config.policy,
            how,
            now: tutti_store::now(),
        })
        .await?
    {
        GiveBackOutcome::Done(a) => Ok(a),
        GiveBackOutcome::NotFound => Err(ApiError::not_found("assignment")),
        GiveBackOutcome::NotPending(status) => Err(ApiError::conflict(
            "not_pending",
            format!("the assignment is {} already", status.as_str()),
        )),
    }
}

/// Skips the task: it goes back to the pool and is not offered to the
/// caller again.
#[utoipa::path(post, path = "/api/v1/assignments/{id}/skip", tag = "work",
    params(("id" = i64, Path, description = "assignment id")),
    responses((status = 200, body = Assignment), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn skip(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Assignment>, ApiError> {
    give_back(&state, &caller, id, GiveBack::Skip)
        .await
        .map(Json)
}

/// Releases the task: it goes back to the pool and may be offered to the
/// caller again later.
#[utoipa::path(post, path = "/api/v1/assignments/{id}/release", tag = "work",
    params(("id" = i64, Path, description = "assignment id")),
    responses((status = 200, body = Assignment), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Assignment>, ApiError> {
    give_back(&state, &caller, id, GiveBack::Release)
        .await
        .map(Json)
}

/// Takes back the caller's last answer of a job (shared by the API and the
/// worker page): allowed while the task is open and the answer was not to a
/// control question. The task is leased to the caller again, its clock
/// restarted, so that they can answer it anew.
pub async fn undo_answer(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<Assignment, ApiError> {
    let (a, job) = own_assignment(state, caller, id).await?;
    if job.config.crowd != tutti_domain::job::Crowd::InHouse {
        return Err(ApiError::conflict(
            "outside_crowd",
            "answers of a job answered on Mechanical Turk are taken back there",
        ));
    }
    match state
        .store
        .undo_answer(&UndoRequest {
            assignment: a.id,
            worker: caller.0.id,
            policy: job.config.policy,
            now: tutti_store::now(),
        })
        .await?
    {
        UndoOutcome::Done(a) => Ok(a),
        UndoOutcome::NotFound => Err(ApiError::not_found("assignment")),
        UndoOutcome::Refused { code, message } => Err(ApiError::conflict(code, message)),
    }
}

/// Takes back the caller's last answer of the job: the answer leaves the
/// task's tally, the figures and the agreement counts, and the task is
/// leased to the caller again (200 with the lease). 409 when the task is
/// decided already (`task_decided`), the answer was to a control question
/// (`control_question`), a later answer of the caller's exists in the job
/// (`not_last`) or the assignment has no answer (`not_answered`).
#[utoipa::path(post, path = "/api/v1/assignments/{id}/undo", tag = "work",
    params(("id" = i64, Path, description = "assignment id")),
    responses((status = 200, body = Assignment), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn undo(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Assignment>, ApiError> {
    undo_answer(&state, &caller, id).await.map(Json)
}

/// Starts the clock of a lease the caller holds as its task is shown (a
/// task leased ahead waits unseen until then). Quietly does nothing for a
/// lease that is gone: answering it then tells the worker why.
pub async fn shown(state: &AppState, caller: &Caller, id: i64) -> Result<(), ApiError> {
    let (a, job) = own_assignment(state, caller, id).await?;
    state
        .store
        .restart_lease(
            a.id,
            caller.0.id,
            job.config.policy.time_limit_secs,
            tutti_store::now(),
        )
        .await?;
    Ok(())
}

/// The jobs the caller may work on, with what is left.
#[utoipa::path(get, path = "/api/v1/me/jobs", tag = "work",
    responses((status = 200, body = Page<WorkerJob>)), security(("bearer" = [])))]
pub async fn my_jobs(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Page<WorkerJob>>, ApiError> {
    Ok(Json(Page {
        items: state.store.jobs_for_worker(caller.0.id).await?,
        next_cursor: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workers_accuracy_is_their_record_drawn_towards_the_prior() {
        let newcomer = GoldRecord::default();
        assert_eq!(estimated_accuracy(&newcomer, 0.7), 0.7);
        // Control questions first: 8 of 10 right, with 10 pseudo-answers of 0.7.
        let gold = GoldRecord {
            seen: 10,
            correct: 8,
            skill: Some(0.1),
            answers: 50,
            ..GoldRecord::default()
        };
        assert!((estimated_accuracy(&gold, 0.7) - 0.75).abs() < 1e-12);
        // Else the fitted skill, weighed by the answers behind it.
        let fitted = GoldRecord {
            skill: Some(0.9),
            answers: 30,
            ..GoldRecord::default()
        };
        assert!((estimated_accuracy(&fitted, 0.7) - 0.85).abs() < 1e-12);
    }

    #[test]
    fn an_answer_counts_by_control_questions_first_then_the_confusion_matrix() {
        use tutti_domain::policy::Confusion;
        let labels = ["No".to_owned(), "Yes".to_owned()];
        // Says "Yes" whatever the truth, by 200 answers.
        let yes_man = Confusion(
            [
                ("No".to_owned(), [("Yes".to_owned(), 1.0)].into()),
                ("Yes".to_owned(), [("Yes".to_owned(), 1.0)].into()),
            ]
            .into(),
        );
        let fitted = GoldRecord {
            answers: 200,
            skill: Some(0.8),
            confusion: Some(yes_man),
            ..GoldRecord::default()
        };
        let p = |e: Evidence| e.best().map(|(l, p)| (l.to_owned(), p)).unwrap();
        let (_, by_matrix) = p(answer_evidence(&labels, "Yes", &fitted, 0.7));
        assert!(by_matrix < 0.55, "{by_matrix}");
        // The same worker with a control record counts by it.
        let controlled = GoldRecord {
            seen: 10,
            correct: 9,
            ..fitted.clone()
        };
        assert_eq!(
            answer_evidence(&labels, "Yes", &controlled, 0.7),
            Evidence::of_answer(&labels, "Yes", 0.8)
        );
        // No matrix: the fitted accuracy, as before.
        let skill_only = GoldRecord {
            confusion: None,
            ..fitted
        };
        assert_eq!(
            answer_evidence(&labels, "Yes", &skill_only, 0.7),
            Evidence::of_answer(&labels, "Yes", estimated_accuracy(&skill_only, 0.7))
        );
    }
}
