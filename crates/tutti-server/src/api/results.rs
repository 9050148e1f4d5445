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
use tutti_store::{AnswerRecord, Store, TaskResult};

/// Rows read per page while streaming an export.
const EXPORT_PAGE: u32 = 1000;

/// A job's tasks with their outcome, in `_id` order.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/results", tag = "results",
    params(("id" = i64, Path, description = "job id"), PageQuery),
    responses((status = 200, body = Page<TaskResult>), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn results(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<TaskResult>>, ApiError> {
    let (job, _) = caller.job(&state, JobId(id), true).await?;
    let (limit, after) = page.parse()?;
    let items = state
        .store
        .results_page(job.id, after.unwrap_or(0), limit)
        .await?;
    Ok(Json(Page::of(items, limit, |r| r.seq)))
}

/// What to export and how.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `csv` (default), `jsonl` or `label-studio`.
    pub format: Option<String>,
    /// `labels` (default: `_id, label, confidence, votes`, then the last
    /// re-aggregation's `aggregated_by, aggregated_label,
    /// aggregated_confidence`) or `answers`
    /// (per-worker: `_id, worker_id, annotation, ...`). Label Studio's
    /// export always holds both.
    pub what: Option<String>,
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
    params(("id" = i64, Path, description = "job id"), ExportQuery),
    responses((status = 200, description = "the export, streamed",
        content((String = "text/csv"), (String = "application/x-ndjson"), (String = "application/json"))),
        (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
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
    let (job, _) = caller.job(&state, JobId(id), true).await?;
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
    let stream = export_stream(state.store.clone(), job.id, format, what);
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
    format: Format,
    what: What,
    after: i64,
    started: bool,
    done: bool,
}

fn export_stream(
    store: Arc<dyn Store>,
    job: JobId,
    format: Format,
    what: What,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let cursor = Cursor {
        store,
        job,
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
                b"_id,worker_id,annotation,worker_name,side,submitted_at,late\n",
            ),
            (Format::LabelStudio, _) => out.push(b'['),
            (Format::Jsonl, _) => {}
        }
    }
    if c.format == Format::LabelStudio {
        let tasks = c.store.results_page(c.job, c.after, EXPORT_PAGE).await?;
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
            let page = c.store.results_page(c.job, c.after, EXPORT_PAGE).await?;
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
            let page: Vec<AnswerRecord> = c.store.answers_page(c.job, c.after, EXPORT_PAGE).await?;
            let Some(last) = page.last() else {
                c.done = true;
                return Ok(out.into());
            };
            c.after = last.assignment_id.0;
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
