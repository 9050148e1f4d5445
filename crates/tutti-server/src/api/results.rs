//! Results: a job's labels and answers, as paged JSON and as streamed
//! exports (CSV, JSON Lines, Label Studio JSON) of any size.

use super::{Page, PageQuery};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiPath, ApiQuery};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use std::sync::Arc;
use tutti_domain::ids::JobId;
use tutti_domain::search::TextSearch;
use tutti_store::{AnswerRecord, ResultFilter, ResultSummary, Store, TaskResult};

/// Rows read per page while streaming an export.
const EXPORT_PAGE: u32 = 1000;

/// Which results, and (for an export) how: a page, a filter, a format.
/// Empty values count as absent, as an HTML form sends them.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ResultQuery {
    /// Items per page (1-1000, default 100; not for exports).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (not for exports).
    pub cursor: Option<String>,
    /// Only tasks in this state: `open`, `labeled`, `undecided` or `closed`.
    pub state: Option<String>,
    /// Only tasks with this label.
    pub label: Option<String>,
    /// Only tasks at least this confident (0-1).
    pub min_confidence: Option<String>,
    /// Only tasks at most this confident (0-1).
    pub max_confidence: Option<String>,
    /// Only tasks this worker (a user name) answered.
    pub worker: Option<String>,
    /// Only rows whose values hold every word of this search, each as a
    /// substring in any case; a phrase in double quotes is one word.
    pub q: Option<String>,
    /// Exports only: `csv` (default), `jsonl` or `label-studio`.
    pub format: Option<String>,
    /// Exports only: `labels` (default: `_id, label, confidence, votes`,
    /// then the last re-aggregation's `aggregated_by, aggregated_label,
    /// aggregated_confidence`) or `answers` (per-worker: `_id, worker_id,
    /// annotation, ...`). Label Studio's export always holds both.
    pub what: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ResultQuery {
    /// The checked filter.
    pub async fn filter(&self, state: &AppState) -> Result<ResultFilter, ApiError> {
        let bad = |field: &str, message: String| ApiError::bad_request(message).with_field(field);
        let task_state = match given(&self.state) {
            None => None,
            Some(s @ ("open" | "labeled" | "undecided" | "closed")) => Some(s.to_owned()),
            Some(other) => {
                return Err(bad(
                    "state",
                    format!("unknown state {other:?}; use open, labeled, undecided or closed"),
                ));
            }
        };
        let confidence = |field: &str, v: &Option<String>| -> Result<Option<f64>, ApiError> {
            match given(v) {
                None => Ok(None),
                Some(s) => match s.parse::<f64>() {
                    Ok(c) if (0.0..=1.0).contains(&c) => Ok(Some(c)),
                    _ => Err(bad(field, format!("{s:?} is not a number between 0 and 1"))),
                },
            }
        };
        let min_confidence = confidence("min_confidence", &self.min_confidence)?;
        let max_confidence = confidence("max_confidence", &self.max_confidence)?;
        if let (Some(lo), Some(hi)) = (min_confidence, max_confidence)
            && lo > hi
        {
            return Err(bad(
                "min_confidence",
                "must not be above max_confidence".into(),
            ));
        }
        let worker = match given(&self.worker) {
            None => None,
            Some(name) => Some(
                state
                    .store
                    .get_user_by_name(name)
                    .await?
                    .ok_or_else(|| bad("worker", format!("there is no user named {name:?}")))?
                    .id,
            ),
        };
        let text = match given(&self.q) {
            None => None,
            Some(q) => TextSearch::parse("q", q).map_err(|e| bad(&e.field, e.message))?,
        };
        Ok(ResultFilter {
            state: task_state,
            label: given(&self.label).map(str::to_owned),
            min_confidence,
            max_confidence,
            worker,
            text,
        })
    }
}

/// A job's tasks with their outcome, in `_id` order, filtered.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/results", tag = "results",
    params(("id" = i64, Path, description = "job id"), ResultQuery),
    responses((status = 200, body = Page<TaskResult>), (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn results(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ResultQuery>,
) -> Result<Json<Page<TaskResult>>, ApiError> {
    if q.format.is_some() || q.what.is_some() {
        return Err(ApiError::bad_request("format and what belong to /export")
            .with_field(if q.format.is_some() { "format" } else { "what" }));
    }
    let (job, _) = caller.job(&state, JobId(id), true).await?;
    let (limit, after) = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .parse()?;
    let filter = q.filter(&state).await?;
    let items = state
        .store
        .results_filtered(job.id, &filter, after.unwrap_or(0), limit)
        .await?;
    Ok(Json(Page::of(items, limit, |r| r.seq)))
}

/// How many of a job's tasks a filter keeps, by state and label, with a
/// histogram of their confidence in tenths.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/summary", tag = "results",
    params(("id" = i64, Path, description = "job id"), ResultQuery),
    responses((status = 200, body = ResultSummary), (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn summary(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ResultQuery>,
) -> Result<Json<ResultSummary>, ApiError> {
    let (job, _) = caller.job(&state, JobId(id), true).await?;
    let filter = q.filter(&state).await?;
    Ok(Json(state.store.results_summary(job.id, &filter).await?))
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Csv,
    Jsonl,
    LabelStudio,
}

#[derive(Clone, Copy, PartialEq)]
enum What {
    Labels,
    Answers,
}

/// Streams a job's labels or answers.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/export", tag = "results",
    params(("id" = i64, Path, description = "job id"), ResultQuery),
    responses((status = 200, description = "the export, streamed",
        content((String = "text/csv"), (String = "application/x-ndjson"), (String = "application/json"))),
        (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ResultQuery>,
) -> Result<Response, ApiError> {
    export_response(&state, &caller, JobId(id), &q).await
}

/// The export `q` asks for, streamed (also behind the results page).
pub async fn export_response(
    state: &AppState,
    caller: &Caller,
    id: JobId,
    q: &ResultQuery,
) -> Result<Response, ApiError> {
    if q.limit.is_some() || q.cursor.is_some() {
        return Err(ApiError::bad_request(
            "an export holds every result; limit and cursor belong to /results",
        )
        .with_field(if q.limit.is_some() { "limit" } else { "cursor" }));
    }
    let format = match q.format.as_deref().unwrap_or("csv") {
        "csv" => Format::Csv,
        "jsonl" => Format::Jsonl,
        "label-studio" => Format::LabelStudio,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown format {other:?}; use csv, jsonl or label-studio"
            ))
            .with_field("format"));
        }
    };
    let what = match q.what.as_deref().unwrap_or("labels") {
        "labels" => What::Labels,
        "answers" => What::Answers,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown export {other:?}; use labels or answers"
            ))
            .with_field("what"));
        }
    };
    let (job, _) = caller.job(state, id, true).await?;
    let filter = q.filter(state).await?;
    let (content_type, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Jsonl => ("application/x-ndjson", "jsonl"),
        Format::LabelStudio => ("application/json", "json"),
    };
    let name = match (format, what) {
        (Format::LabelStudio, _) => "label-studio",
        (_, What::Labels) => "labels",
        (_, What::Answers) => "answers",
    };
    let stream = export_stream(state.store.clone(), job.id, filter, format, what);
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"job-{}-{name}.{ext}\"",
        job.id
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

struct Cursor {
    store: Arc<dyn Store>,
    job: JobId,
    filter: ResultFilter,
    format: Format,
    what: What,
    after: i64,
    started: bool,
    done: bool,
}

fn export_stream(
    store: Arc<dyn Store>,
    job: JobId,
    filter: ResultFilter,
    format: Format,
    what: What,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let cursor = Cursor {
        store,
        job,
        filter,
        format,
        what,
        after: 0,
        started: false,
        done: false,
    };
    futures_util::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        match next_chunk(&mut c).await {
            Ok(bytes) => Some((Ok(bytes), c)),
            Err(e) => {
                tracing::error!(error = %e, job = %c.job, "export failed part-way");
                c.done = true;
                Some((Err(std::io::Error::other("export failed")), c))
            }
        }
    })
}

fn label_text(r: &TaskResult) -> &str {
    match r.state.as_str() {
        "undecided" => "undecided",
        _ => r.label.as_deref().unwrap_or(""),
    }
}

async fn next_chunk(c: &mut Cursor) -> anyhow::Result<Bytes> {
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let first = !c.started;
    c.started = true;
    if first {
        match (c.format, c.what) {
            (Format::Csv, What::Labels) => out.extend_from_slice(
                b"_id,label,confidence,votes,aggregated_by,aggregated_label,aggregated_confidence\n",
            ),
            (Format::Csv, What::Answers) => out.extend_from_slice(
                b"_id,worker_id,annotation,worker_name,side,submitted_at,late,grade\n",
            ),
            (Format::LabelStudio, _) => out.push(b'['),
            (Format::Jsonl, _) => {}
        }
    }
    if c.format == Format::LabelStudio {
        let tasks = c
            .store
            .results_filtered(c.job, &c.filter, c.after, EXPORT_PAGE)
            .await?;
        let (Some(lo), Some(hi)) = (tasks.first(), tasks.last()) else {
            out.extend_from_slice(b"]\n");
            c.done = true;
            return Ok(out.into());
        };
        let answers = c.store.task_answers(c.job, lo.seq, hi.seq).await?;
        let mut answers = answers.iter().peekable();
        for (i, t) in tasks.iter().enumerate() {
            if !(first && i == 0) {
                out.extend_from_slice(b",\n");
            }
            let mut annotations = Vec::new();
            while let Some(a) = answers.next_if(|a| a.seq == t.seq) {
                annotations.push(serde_json::json!({
                    "id": a.assignment_id,
                    "completed_by": a.worker_id,
                    "created_at": a.submitted_at,
                    "result": [{
                        "from_name": "label", "to_name": "item", "type": "choices",
                        "value": {"choices": [a.annotation]}
                    }]
                }));
            }
            let task = serde_json::json!({
                "id": t.seq,
                "data": t.data,
                "annotations": annotations,
                "meta": {"state": t.state, "label": t.label, "confidence": t.confidence, "votes": t.votes},
            });
            serde_json::to_writer(&mut out, &task)?;
        }
        c.after = hi.seq;
        return Ok(out.into());
    }
    match c.what {
        What::Labels => {
            let page = c
                .store
                .results_filtered(c.job, &c.filter, c.after, EXPORT_PAGE)
                .await?;
            let Some(last) = page.last() else {
                c.done = true;
                return Ok(out.into());
            };
            c.after = last.seq;
            if c.format == Format::Csv {
                let mut w = csv::Writer::from_writer(&mut out);
                for r in &page {
                    let confidence = r.confidence.map(|v| format!("{v:.4}")).unwrap_or_default();
                    let g = r.aggregate.as_ref();
                    w.write_record([
                        r.seq.to_string().as_str(),
                        label_text(r),
                        &confidence,
                        &serde_json::to_string(&r.votes)?,
                        g.map_or("", |g| g.method.as_str()),
                        g.and_then(|g| g.label.as_deref()).unwrap_or(""),
                        &g.and_then(|g| g.confidence)
                            .map(|v| format!("{v:.4}"))
                            .unwrap_or_default(),
                    ])?;
                }
                w.flush()?;
            } else {
                for r in &page {
                    serde_json::to_writer(&mut out, r)?;
                    out.push(b'\n');
                }
            }
        }
        What::Answers => {
            let page: Vec<AnswerRecord> = if c.filter == ResultFilter::default() {
                let page = c.store.answers_page(c.job, c.after, EXPORT_PAGE).await?;
                let Some(last) = page.last() else {
                    c.done = true;
                    return Ok(out.into());
                };
                c.after = last.assignment_id.0;
                page
            } else {
                // The answers to the tasks the filter keeps, a page of
                // tasks at a time.
                let tasks = c
                    .store
                    .results_filtered(c.job, &c.filter, c.after, EXPORT_PAGE)
                    .await?;
                let (Some(lo), Some(hi)) = (tasks.first(), tasks.last()) else {
                    c.done = true;
                    return Ok(out.into());
                };
                c.after = hi.seq;
                let kept: std::collections::HashSet<i64> = tasks.iter().map(|t| t.seq).collect();
                let mut page = c.store.task_answers(c.job, lo.seq, hi.seq).await?;
                page.retain(|a| kept.contains(&a.seq));
                page
            };
            if c.format == Format::Csv {
                let mut w = csv::Writer::from_writer(&mut out);
                for a in &page {
                    w.write_record([
                        a.seq.to_string().as_str(),
                        &a.worker_id.to_string(),
                        &a.annotation,
                        &a.worker_name,
                        a.side.as_str(),
                        &a.submitted_at.to_string(),
                        if a.late { "true" } else { "false" },
                        &a.grade.map(|g| g.to_string()).unwrap_or_default(),
                    ])?;
                }
                w.flush()?;
            } else {
                for a in &page {
                    serde_json::to_writer(&mut out, a)?;
                    out.push(b'\n');
                }
            }
        }
    }
    Ok(out.into())
}
