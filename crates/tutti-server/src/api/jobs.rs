//! Jobs: standalone human labeling operators. Requesters create them,
//! import items and follow their progress.

use super::{Page, PageQuery};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::import::{ImportFormat, ImportReport};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tutti_domain::ids::{JobId, WorkspaceId};
use tutti_domain::job::{JobConfig, JobPatch, JobSpec};
use tutti_store::{Job, Progress};

/// Creates a job in a workspace.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/jobs", tag = "jobs", request_body = JobSpec,
    params(("ws" = i64, Path, description = "workspace id")),
    responses((status = 201, body = Job), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_job(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<i64>,
    ApiJson(spec): ApiJson<JobSpec>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let ws = WorkspaceId(ws);
    let role = caller.role_in(&state, ws).await?;
    if !role.manages_jobs() {
        return Err(ApiError::forbidden(
            "only a workspace's admins and requesters create jobs",
        ));
    }
    let config = JobConfig::parse(spec)?;
    let job = state
        .store
        .create_job(ws, &config, caller.0.id, tutti_store::now())
        .await?;
    Ok((StatusCode::CREATED, Json(job)))
}

/// Lists a workspace's jobs (any member).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/jobs", tag = "jobs", params(("ws" = i64, Path, description = "workspace id"), PageQuery),
    responses((status = 200, body = Page<Job>), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<i64>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<Job>>, ApiError> {
    let ws = WorkspaceId(ws);
    caller.role_in(&state, ws).await?;
    let (limit, after) = page.parse()?;
    let jobs = state.store.list_jobs(ws, after, limit).await?;
    Ok(Json(Page::of(jobs, limit, |j| j.id.0)))
}

/// A job with its progress.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    /// The job.
    #[serde(flatten)]
    pub job: Job,
    /// Whether every task has a label or is undecided.
    pub finished: bool,
    /// Counts of tasks, leases and answers.
    pub progress: Progress,
}

/// A job with progress counts (admins and requesters of its workspace).
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = i64, Path, description = "job id")),
    responses((status = 200, body = JobView), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<JobView>, ApiError> {
    let (job, _) = caller.job(&state, JobId(id), true).await?;
    let progress = state.store.job_progress(job.id).await?;
    Ok(Json(JobView {
        job,
        finished: progress.tasks > 0 && progress.open == 0,
        progress,
    }))
}

/// Changes what people read (name, question, instructions, layout) or the
/// lease length of leases handed out from now on.
#[utoipa::path(patch, path = "/api/v1/jobs/{id}", tag = "jobs", request_body = JobPatch, params(("id" = i64, Path, description = "job id")),
    responses((status = 200, body = Job), (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_job(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<JobPatch>,
) -> Result<Json<Job>, ApiError> {
    let (mut job, _) = caller.job(&state, JobId(id), true).await?;
    job.config.apply(patch)?;
    let now = tutti_store::now();
    state.store.update_job(job.id, &job.config, now).await?;
    state.caches.jobs.remove(&job.id);
    job.updated_at = now;
    Ok(Json(job))
}

/// How the body of an import is written, when the Content-Type does not say.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// `csv`, `jsonl` or `label-studio`; overrides the Content-Type.
    pub format: Option<String>,
}

/// Imports items: CSV with a header row (`text/csv`), JSON Lines of objects
/// (`application/x-ndjson` or `application/jsonl`), or a Label Studio task
/// list `[{"data": {...}}]` (`application/json`). The body is streamed and
/// checked whole before anything is stored: a bad record is answered with
/// its line and nothing is imported.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/items", tag = "jobs",
    params(("id" = i64, Path, description = "job id"), ImportQuery),
    request_body(description = "CSV, JSON Lines or Label Studio JSON",
        content((String = "text/csv"), (String = "application/x-ndjson"), (String = "application/json"))),
    responses((status = 201, body = ImportReport), (status = 400, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn import_items(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ImportReport>), ApiError> {
    let (job, _) = caller.job(&state, JobId(id), true).await?;
    let format = ImportFormat::choose(q.format.as_deref(), &headers)?;
    let report = crate::import::import(&state, &job, format, &headers, body).await?;
    Ok((StatusCode::CREATED, Json(report)))
}
