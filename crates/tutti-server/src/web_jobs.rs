//! Making a job on the web pages: a form for the question, answers,
//! instructions and agreement rule, with the rows to label uploaded as a
//! file (CSV with a header row, JSON lines, or a Label Studio task list,
//! told apart by the file's extension), and a form to add rows to a job
//! later. The job is checked by the same rules as `POST
//! /api/v1/workspaces/{ws}/jobs`, the rows imported by the same streaming
//! importer as `POST /api/v1/jobs/{id}/items`, so a bad row is reported
//! with its line.

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::import::{ImportFormat, ImportReport};
use crate::web::{Visitor, error_page, escape_html, page_for, with_security_headers};
use axum::Router;
use axum::body::Body;
use axum::extract::{Multipart, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use std::collections::HashMap;
use tutti_domain::ids::{JobId, WorkspaceId};
use tutti_domain::job::JobSpec;
use tutti_store::Job;

/// The job routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces/{ws}/jobs/new", get(new_job))
        .route(
            "/workspaces/{ws}/jobs",
            post(create_job).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/jobs/{job}/import",
            post(import_rows).layer(axum::extract::DefaultBodyLimit::disable()),
        )
}

/// What the form had, to show it again after a problem.
#[derive(Default)]
struct Fields(HashMap<String, String>);

impl Fields {
    fn get(&self, k: &str) -> &str {
        self.0.get(k).map(String::as_str).unwrap_or("")
    }
}

fn form_html(ws: i64, csrf: &str, f: &Fields, problem: &str) -> String {
    let value = |k: &str, default: &str| {
        let v = f.get(k);
        escape_html(if v.is_empty() && f.0.is_empty() {
            default
        } else {
            v
        })
    };
    format!(
        "<h1>New job</h1>{problem}\
         <form method=\"post\" action=\"/workspaces/{ws}/jobs\" enctype=\"multipart/form-data\" class=\"card stack\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Name <input name=\"name\" value=\"{}\" required maxlength=\"200\" placeholder=\"Which restaurants match\"></label>\
         <label>Question (<code>${{column}}</code> is filled from each row) <input name=\"question\" value=\"{}\" required placeholder=\"Is ${{name}} a person?\"></label>\
         <label>Answers, one per line (keys 1-9 choose them) <textarea name=\"answers\" rows=\"4\">{}</textarea></label>\
         <label><span><input type=\"checkbox\" name=\"free_text\" value=\"1\"{}> Workers type their answer instead</span></label>\
         <label>Short instructions, shown above every task (HTML) <textarea name=\"short_instructions\" rows=\"2\">{}</textarea></label>\
         <label>Long instructions, shown on demand (HTML) <textarea name=\"long_instructions\" rows=\"3\">{}</textarea></label>\
         <fieldset class=\"inline\"><legend>Agreement: a task is decided when k answers agree, out of at most n</legend>\
         <label>k <input name=\"k\" type=\"number\" min=\"1\" value=\"{}\" required></label>\
         <label>n <input name=\"n\" type=\"number\" min=\"1\" value=\"{}\" required></label>\
         <label>Seconds per task <input name=\"time_limit_secs\" type=\"number\" min=\"10\" value=\"{}\"></label></fieldset>\
         <label>Rows to label: a CSV file with a header row (or .jsonl, or a Label Studio .json) <input name=\"file\" type=\"file\" accept=\".csv,.jsonl,.ndjson,.json\"></label>\
         <button type=\"submit\">Create job</button></form>",
        value("name", ""),
        value("question", ""),
        value("answers", "Yes\nNo"),
        if f.get("free_text") == "1" {
            " checked"
        } else {
            ""
        },
        value("short_instructions", ""),
        value("long_instructions", ""),
        value("k", "2"),
        value("n", "3"),
        value("time_limit_secs", "600"),
    )
}

async fn new_job(State(state): State<AppState>, v: Visitor, Path(ws): Path<String>) -> Response {
    let ws = match may_make_jobs(&state, &v, &ws).await {
        Ok(ws) => ws,
        Err(e) => return error_page(e),
    };
    let body = form_html(ws.0, v.csrf(), &Fields::default(), "");
    with_security_headers(page_for(&v, "New job", &body).into_response())
}

async fn may_make_jobs(state: &AppState, v: &Visitor, ws: &str) -> Result<WorkspaceId, ApiError> {
    let ws = WorkspaceId(
        ws.parse::<i64>()
            .map_err(|_| ApiError::not_found("workspace"))?,
    );
    if !v.caller.role_in(state, ws).await?.manages_jobs() {
        return Err(ApiError::forbidden(
            "only a workspace's admins and requesters make jobs",
        ));
    }
    Ok(ws)
}

fn problem_html(e: &ApiError) -> String {
    let at = match (&e.field, e.line) {
        (_, Some(line)) => format!("line {line}: "),
        (Some(f), None) => format!("{}: ", escape_html(f)),
        _ => String::new(),
    };
    format!(
        "<p class=\"card error\" role=\"alert\">{at}{}</p>",
        escape_html(&e.message)
    )
}

/// Reads the text fields before the file, then streams the file (the last
/// field) into the importer once `start` has made the job it goes to.
async fn create_job(
    State(state): State<AppState>,
    v: Visitor,
    Path(ws): Path<String>,
    mut form: Multipart,
) -> Response {
    let ws = match may_make_jobs(&state, &v, &ws).await {
        Ok(ws) => ws,
        Err(e) => return error_page(e),
    };
    let mut fields = Fields::default();
    let again = |fields: &Fields, e: &ApiError| {
        let body = form_html(ws.0, v.csrf(), fields, &problem_html(e));
        with_security_headers((e.status, page_for(&v, "New job", &body)).into_response())
    };
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return again(&fields, &ApiError::bad_request(e.body_text())),
        };
        let name = field.name().unwrap_or("").to_owned();
        if name == "file" {
            let file_name = field.file_name().unwrap_or("").to_owned();
            if let Err(e) = v.check_csrf(fields.get("csrf")) {
                return error_page(e);
            }
            let job = match make_job(&state, &v, ws, &fields).await {
                Ok(job) => job,
                Err(e) => return again(&fields, &e),
            };
            if file_name.is_empty() {
                return Redirect::to(&format!("/jobs/{}", job.id.0)).into_response();
            }
            return match stream_import(&state, &job, &file_name, field).await {
                Ok(_) => Redirect::to(&format!("/jobs/{}", job.id.0)).into_response(),
                Err(e) => import_failed(&v, &job, &e),
            };
        }
        if fields.0.len() >= crate::web::MAX_FORM_FIELDS {
            return again(
                &fields,
                &ApiError::bad_request("the form has too many fields").with_field(name),
            );
        }
        match crate::web::field_text(field, 1 << 20).await {
            Ok(text) => {
                fields.0.insert(name, text);
            }
            Err(e) => return again(&fields, &e),
        }
    }
    // No file field at all (a hand-made request): the job alone.
    if let Err(e) = v.check_csrf(fields.get("csrf")) {
        return error_page(e);
    }
    match make_job(&state, &v, ws, &fields).await {
        Ok(job) => Redirect::to(&format!("/jobs/{}", job.id.0)).into_response(),
        Err(e) => again(&fields, &e),
    }
}

/// The job the form describes, checked and stored by the API's own code.
async fn make_job(
    state: &AppState,
    v: &Visitor,
    ws: WorkspaceId,
    f: &Fields,
) -> Result<Job, ApiError> {
    let number = |k: &str| -> Result<Option<u32>, ApiError> {
        let t = f.get(k).trim();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse::<u32>()
            .map(Some)
            .map_err(|_| ApiError::from(tutti_domain::FieldError::new(k, "must be a whole number")))
    };
    let free_text = f.get("free_text") == "1";
    let answers: Vec<&str> = f
        .get("answers")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut spec = serde_json::json!({
        "name": f.get("name").trim(),
        "question": f.get("question").trim(),
        "free_text": free_text,
        "short_instructions": f.get("short_instructions"),
        "long_instructions": f.get("long_instructions"),
        "policy": {"k": number("k")?.unwrap_or(1), "n": number("n")?.unwrap_or(1)},
    });
    if !free_text {
        spec["answers"] = answers.into();
    }
    if let Some(t) = number("time_limit_secs")? {
        spec["policy"]["time_limit_secs"] = t.into();
    }
    let spec: JobSpec = serde_json::from_value(spec)
        .map_err(|e| ApiError::bad_request(format!("the job form: {e}")))?;
    let (_, axum::Json(job)) = crate::api::jobs::create_job(
        State(state.clone()),
        v.caller.clone(),
        ApiPath(ws.0),
        ApiJson(spec),
    )
    .await?;
    Ok(job)
}

fn format_of(file_name: &str) -> Result<ImportFormat, ApiError> {
    let lower = file_name.to_ascii_lowercase();
    if lower.ends_with(".csv") {
        Ok(ImportFormat::Csv)
    } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
        Ok(ImportFormat::Jsonl)
    } else if lower.ends_with(".json") {
        Ok(ImportFormat::LabelStudio)
    } else {
        Err(
            ApiError::bad_request(format!("{file_name:?} is not a .csv, .jsonl or .json file"))
                .with_field("file"),
        )
    }
}

/// Streams one uploaded file into the job's importer.
async fn stream_import(
    state: &AppState,
    job: &Job,
    file_name: &str,
    mut field: axum::extract::multipart::Field<'_>,
) -> Result<ImportReport, ApiError> {
    let format = format_of(file_name)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let feed = async move {
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.body_text()))).await;
                    return;
                }
            }
        }
    };
    let headers = HeaderMap::new();
    let (_, report) = tokio::join!(
        feed,
        crate::import::import(state, job, format, &headers, body)
    );
    report
}

fn import_failed(v: &Visitor, job: &Job, e: &ApiError) -> Response {
    let body = format!(
        "<h1>{}</h1>{}<p class=\"card\">The job is made, but no rows of this file were added. \
         Fix the file and upload it again:</p>{}<p><a href=\"/jobs/{}\">Go to the job</a></p>",
        escape_html(&job.config.name),
        problem_html(e),
        import_form(job.id, v.csrf()),
        job.id.0
    );
    with_security_headers((e.status, page_for(v, "Import failed", &body)).into_response())
}

/// The form that adds rows to a job.
pub(crate) fn import_form(job: JobId, csrf: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/jobs/{}/import\" enctype=\"multipart/form-data\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input name=\"file\" type=\"file\" accept=\".csv,.jsonl,.ndjson,.json\" required aria-label=\"Rows to add\">\
         <button type=\"submit\">Add rows</button></form>",
        job.0
    )
}

async fn import_rows(
    State(state): State<AppState>,
    v: Visitor,
    Path(job): Path<String>,
    mut form: Multipart,
) -> Response {
    let Ok(id) = job.parse::<i64>() else {
        return error_page(ApiError::not_found("job"));
    };
    let job = match v.caller.job(&state, JobId(id), true).await {
        Ok((job, _)) => job,
        Err(e) => return error_page(e),
    };
    let mut csrf = String::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return import_failed(&v, &job, &ApiError::bad_request(e.body_text())),
        };
        match field.name() {
            Some("csrf") => csrf = crate::web::field_text(field, 256).await.unwrap_or_default(),
            Some("file") => {
                if let Err(e) = v.check_csrf(&csrf) {
                    return error_page(e);
                }
                let file_name = field.file_name().unwrap_or("").to_owned();
                return match stream_import(&state, &job, &file_name, field).await {
                    Ok(_) => Redirect::to(&format!("/jobs/{id}")).into_response(),
                    Err(e) => import_failed(&v, &job, &e),
                };
            }
            _ => {}
        }
    }
    let e = ApiError::bad_request("choose a file of rows to add").with_field("file");
    import_failed(&v, &job, &e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_extension_picks_the_import_format() {
        assert_eq!(format_of("rows.CSV").unwrap(), ImportFormat::Csv);
        assert_eq!(format_of("rows.jsonl").unwrap(), ImportFormat::Jsonl);
        assert_eq!(format_of("tasks.json").unwrap(), ImportFormat::LabelStudio);
        let e = format_of("rows.xlsx").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("file"));
    }

    #[test]
    fn a_redisplayed_form_escapes_what_was_typed() {
        let mut f = Fields::default();
        f.0.insert("name".into(), "<script>x</script>".into());
        let html = form_html(1, "c", &f, "");
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(!html.contains("<script>x"));
    }
}
