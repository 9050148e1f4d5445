//! Label quality: re-aggregating a job with a chosen method, and the
//! per-worker quality report (JSON or CSV).

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::quality::{AggregateError, AggregationSummary, reaggregate};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tutti_domain::ids::JobId;
use tutti_domain::policy::AggregationMethod;
use tutti_store::{AggregationInfo, WorkerQuality};

/// Which method to re-aggregate with.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateRequest {
    /// `mv`, `kofn`, `wmv`, `ds`, `onecoin`, `glad`, `mace`, `wawa` or
    /// `zbs`; the job's own method when left out.
    pub method: Option<String>,
}

impl From<AggregateError> for ApiError {
    fn from(e: AggregateError) -> Self {
        match e {
            AggregateError::Store(e) => e.into(),
            AggregateError::NoAnswers => ApiError::conflict("no_answers", e.to_string()),
            AggregateError::Failed(m) => ApiError::internal(m),
        }
    }
}

/// Re-aggregates all of a job's answers with a method and stores the
/// labels beside the ones agreement decided (results and exports show
/// both); returns what changed.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/aggregate", tag = "quality",
    params(("id" = i64, Path, description = "job id")),
    request_body = AggregateRequest,
    responses((status = 200, body = AggregationSummary),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "the job has no answers yet", body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn aggregate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<AggregateRequest>,
) -> Result<Json<AggregationSummary>, ApiError> {
    let (job, _) = caller.job(&state, JobId(id), true).await?;
    let method = match req.method.as_deref() {
        Some(m) => AggregationMethod::parse(m, "method")?,
        None => job.config.policy.aggregation,
    };
    Ok(Json(reaggregate(state.store.as_ref(), &job, method).await?))
}

/// The job's last re-aggregation.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/aggregate", tag = "quality",
    params(("id" = i64, Path, description = "job id")),
    responses((status = 200, body = AggregationInfo),
        (status = 404, description = "no such job, or never re-aggregated", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn aggregation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<AggregationInfo>, ApiError> {
    let (job, _) = caller.job(&state, JobId(id), true).await?;
    state
        .store
        .aggregation_info(job.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("re-aggregation of this job"))
}

/// Format of the worker report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WorkersQuery {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// Per worker on a job: answers, skips, abandoned leases, agreement with
/// the labels, skill estimated by the last re-aggregation and mean seconds
/// per answer.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/workers", tag = "quality",
    params(("id" = i64, Path, description = "job id"), WorkersQuery),
    responses((status = 200, body = Vec<WorkerQuality>,
            content((Vec<WorkerQuality> = "application/json"), (String = "text/csv"))),
        (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn workers(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<WorkersQuery>,
) -> Result<Response, ApiError> {
    let csv = match q.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown format {other:?}; use json or csv"
            ))
            .with_field("format"));
        }
    };
    let (job, _) = caller.job(&state, JobId(id), true).await?;
    let rows = state.store.worker_quality(job.id).await?;
    if !csv {
        return Ok(Json(rows).into_response());
    }
    let body = crate::quality::workers_csv(&rows).map_err(ApiError::internal)?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"job-{}-workers.csv\"", job.id),
            ),
        ],
        body,
    )
        .into_response())
}
