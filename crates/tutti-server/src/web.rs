//! The worker's web page, rendered on the server with no build step.
//!
//! A worker signs in (a session kept in an HttpOnly, SameSite=Strict
//! cookie), picks a job, and answers one task after another: short
//! instructions on top, long ones in a fold, the question and the row (or
//! the job's layout, or a pairwise job's two items side by side) with every
//! row value HTML-escaped, answer buttons bound to keys 1-9 (a graded
//! slider for graded pairwise jobs), skip and quit, and the lease's
//! remaining time. Every form carries a CSRF value derived from the session.
//!
//! The page works as plain forms. Its script adds the keys and, while the
//! worker reads a task, leases the next one ahead (`/work/{job}/ahead`):
//! an answer then swaps the next task in at once and is posted in the
//! background, where a refusal is shown on the next task.

use crate::AppState;
use crate::api::work::{Next, TaskView, give_back, lease_next, shown, submit_answer, undo_answer};
use crate::auth::{Caller, authenticate, csrf_for, same_secret};
use crate::error::ApiError;
use axum::Form;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use tutti_domain::ids::{AssignmentId, JobId};
use tutti_domain::role::Role;
use tutti_store::GiveBack;

pub(crate) const COOKIE: &str = "tutti_token";
const STYLE: &str = include_str!("../assets/work.css");
const SCRIPT: &str = include_str!("../assets/work.js");

/// The web routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .merge(crate::web_account::routes())
        .merge(crate::web_admin::routes())
        .merge(crate::web_jobs::routes())
        .merge(crate::web_runs::routes())
        .route("/work/{job}", get(work_page))
        .route("/work/{job}/ahead", get(ahead))
        .route("/jobs/{job}/preview", get(preview))
        .route("/jobs/{job}", get(crate::web_results::results_page))
        .route("/jobs/{job}/export", get(crate::web_results::export))
        .route("/jobs/{job}/workers", get(crate::web_results::workers_page))
        .route(
            "/jobs/{job}/workers.csv",
            get(crate::web_results::workers_csv),
        )
        .route("/work/{job}/assignments/{id}", post(act))
        .route(
            "/assets/work.css",
            get(|| async { asset("text/css", STYLE) }),
        )
        .route(
            "/assets/work.js",
            get(|| async { asset("text/javascript", SCRIPT) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

pub use tutti_domain::template::escape_html;

/// A signed-in web visitor: the caller, their token (for CSRF values) and
/// the path they asked for (the route a posted CSRF value must be bound to).
pub(crate) struct Visitor {
    pub(crate) caller: Caller,
    token: String,
    path: String,
}

/// Where a web request without a valid session goes: the sign-in page,
/// which brings the visitor back to the page they were on; a request from
/// the page's script gets 401 JSON instead, so that it never mistakes the
/// sign-in page for success.
pub(crate) struct SignIn {
    /// The page to come back to after signing in.
    next: Option<String>,
    /// Whether the request was a form post, which was not carried out.
    lost: bool,
    /// Whether the page's script sent it.
    fetched: bool,
}

impl SignIn {
    fn of(parts: &Parts) -> Self {
        let fetched = parts.headers.contains_key("x-tutti-fetch");
        let post = parts.method == axum::http::Method::POST;
        let next = if post {
            // A form post comes back to the page the form was on.
            parts
                .headers
                .get(header::REFERER)
                .and_then(|r| r.to_str().ok())
                .and_then(|r| {
                    let host = parts.headers.get(header::HOST)?.to_str().ok()?;
                    let rest = r.split_once("://")?.1.strip_prefix(host)?;
                    Some(rest.to_owned())
                })
        } else {
            parts.uri.path_and_query().map(|p| p.as_str().to_owned())
        };
        SignIn {
            next: next.filter(|n| local_path(n)),
            lost: post,
            fetched,
        }
    }
}

/// Whether `to` is a path on this site (so a sign-in may send the visitor
/// there): one leading slash, no scheme or host, no control characters.
pub(crate) fn local_path(to: &str) -> bool {
    to.starts_with('/')
        && !to.starts_with("//")
        && !to.starts_with("/\\")
        && to.len() <= 2048
        && !to.chars().any(|c| c.is_control() || c == '\\')
}

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        if self.fetched {
            return ApiError::unauthorized(
                "you were signed out, so this was not saved; sign in again and send it once more",
            )
            .with_code("signed_out")
            .into_response();
        }
        let mut query = Vec::new();
        if let Some(next) = self.next.filter(|n| n != "/") {
            query.push(("next", next));
        }
        if self.lost {
            query.push(("lost", "1".to_owned()));
        }
        let to = if query.is_empty() {
            "/login".to_owned()
        } else {
            format!(
                "/login?{}",
                serde_urlencoded::to_string(&query).unwrap_or_default()
            )
        };
        Redirect::to(&to).into_response()
    }
}

/// The value of cookie `name` among the request's cookies, if not empty.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = SignIn;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, SignIn> {
        let Some(token) = cookie(&parts.headers, COOKIE) else {
            return Err(SignIn::of(parts));
        };
        let Ok(user) = authenticate(state, &token).await else {
            return Err(SignIn::of(parts));
        };
        Ok(Visitor {
            caller: Caller(user),
            token,
            path: parts.uri.path().to_owned(),
        })
    }
}

pub(crate) fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Tutti</title><link rel=\"stylesheet\" href=\"/assets/work.css\">\
         <script src=\"/assets/work.js\" defer></script></head><body>\
         <header><a href=\"/\" class=\"brand\">Tutti</a></header><main>{body}</main></body></html>",
        escape_html(title)
    ))
}

/// What a form's CSRF field holds until the page is sent: [`page_for`]
/// fills each with the value bound to its form's action.
const CSRF_SLOT: &str = "__tutti_csrf__";
const CSRF_FIELD: &str = "name=\"csrf\" value=\"__tutti_csrf__\"";

/// `html` with each form's CSRF slot filled with the visitor's value for
/// that form's action (its path, without the query).
pub(crate) fn bind_csrf(html: &str, v: &Visitor) -> String {
    if !html.contains(CSRF_FIELD) {
        return html.to_owned();
    }
    let mut out = String::with_capacity(html.len() + 256);
    let mut rest = html;
    let mut action = String::new();
    loop {
        let Some(slot) = rest.find(CSRF_FIELD) else {
            out.push_str(rest);
            return out;
        };
        match rest.find("<form") {
            Some(form) if form < slot => {
                let end = rest[form..].find('>').map_or(rest.len(), |e| form + e + 1);
                let tag = &rest[form..end];
                action = tag
                    .split_once("action=\"")
                    .and_then(|(_, a)| a.split_once('"'))
                    .map(|(a, _)| a.replace("&amp;", "&"))
                    .unwrap_or_default();
                if let Some((path, _)) = action.split_once('?') {
                    action = path.to_owned();
                }
                out.push_str(&rest[..end]);
                rest = &rest[end..];
            }
            _ => {
                out.push_str(&rest[..slot]);
                let _ = write!(out, "name=\"csrf\" value=\"{}\"", v.csrf_for(&action));
                rest = &rest[slot + CSRF_FIELD.len()..];
            }
        }
    }
}

/// A page for a signed-in visitor: the header carries their links and the
/// sign-out button, and every form its CSRF value.
pub(crate) fn page_for(v: &Visitor, title: &str, body: &str) -> Html<String> {
    let body = bind_csrf(body, v);
    let admin = if v.caller.is_admin() {
        "<a href=\"/admin\">Admin</a>"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Tutti</title><link rel=\"stylesheet\" href=\"/assets/work.css\">\
         <script src=\"/assets/work.js\" defer></script></head><body>\
         <header><a href=\"/\" class=\"brand\">Tutti</a><nav><a href=\"/\">Jobs</a>{admin}\
         <a href=\"/account\">{}</a><form method=\"post\" action=\"/logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button class=\"link\">Sign out</button></form></nav></header>\
         <main>{body}</main></body></html>",
        escape_html(title),
        escape_html(&v.caller.0.display_name),
        v.csrf_for("/logout")
    ))
}

impl Visitor {
    /// What a form's CSRF field holds in a page made with [`page_for`],
    /// which binds it to the form's action.
    pub(crate) fn csrf(&self) -> &'static str {
        CSRF_SLOT
    }

    /// The CSRF value a form of this visitor's posting to `action` carries.
    pub(crate) fn csrf_for(&self, action: &str) -> String {
        csrf_for(&self.token, action)
    }

    /// The visitor's session or API token.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// 403 unless a posted form carries this visitor's CSRF value for the
    /// route it was posted to.
    pub(crate) fn check_csrf(&self, posted: &str) -> Result<(), ApiError> {
        if same_secret(posted, &self.csrf_for(&self.path)) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this form is out of date or came from another site; reload the page and try again",
            ))
        }
    }
}

/// A multipart field's bytes, read chunk by chunk and refused (400 naming
/// the field) as soon as they pass `cap`: nothing larger is ever held.
pub(crate) async fn field_bytes(
    mut field: axum::extract::multipart::Field<'_>,
    cap: usize,
) -> Result<Vec<u8>, ApiError> {
    let name = field.name().unwrap_or("").to_owned();
    let mut out = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()).with_field(name.clone()))?
    {
        if out.len() + chunk.len() > cap {
            return Err(
                ApiError::bad_request(format!("this field is longer than {} bytes", cap))
                    .with_field(name),
            );
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A multipart text field, read as [`field_bytes`] reads one.
pub(crate) async fn field_text(
    field: axum::extract::multipart::Field<'_>,
    cap: usize,
) -> Result<String, ApiError> {
    let name = field.name().unwrap_or("").to_owned();
    String::from_utf8(field_bytes(field, cap).await?)
        .map_err(|_| ApiError::bad_request("is not UTF-8 text").with_field(name))
}

/// The most form fields a multipart page form may send.
pub(crate) const MAX_FORM_FIELDS: usize = 64;

pub(crate) fn error_page(e: ApiError) -> Response {
    let hint = match e.status {
        StatusCode::NOT_FOUND => {
            "<p class=\"muted\">It may have been removed, or it belongs to a workspace you are not a member of. \
             Check the address, or ask the workspace's admin to add you.</p>"
        }
        StatusCode::FORBIDDEN => {
            "<p class=\"muted\">Your role does not allow this here; a workspace admin can change it.</p>"
        }
        _ => "",
    };
    let body = format!(
        "<h1>{}</h1><p>{}</p>{hint}<p><a href=\"/\">Back to your jobs</a></p>",
        e.status.canonical_reason().unwrap_or("Error"),
        escape_html(&e.message)
    );
    (e.status, page("Error", &body)).into_response()
}

/// The security headers on every response (a layer over all routes): a
/// handler's own `Cache-Control` stays; the API docs page, which runs
/// Swagger UI's scripts, keeps its own policy.
pub(crate) async fn security_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let docs = req.uri().path().starts_with("/docs");
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    if !docs && !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub(crate) fn with_security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn home(State(state): State<AppState>, v: Visitor) -> Response {
    let jobs = match state.store.jobs_for_worker(v.caller.0.id).await {
        Ok(j) => j,
        Err(e) => return error_page(e.into()),
    };
    let mut body = format!("<h1>Hello, {}</h1>", escape_html(&v.caller.0.display_name));
    let managed = match crate::web_results::jobs_section(&state, &v).await {
        Ok(s) => s,
        Err(e) => return error_page(e),
    };
    if !managed.is_empty() {
        body.push_str("<section class=\"managed\">");
        body.push_str(&managed);
        body.push_str("</section><h2>To answer</h2>");
    }
    if jobs.is_empty() {
        body.push_str("<p class=\"card\">You are not in any workspace with jobs yet. Ask a requester to add you to theirs.</p>");
    } else {
        body.push_str("<table><thead><tr><th>Job</th><th>Open tasks</th><th>Answered by you</th><th></th></tr></thead><tbody>");
        for j in &jobs {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><a class=\"button\" href=\"/work/{}\">Start</a></td></tr>",
                escape_html(&j.name),
                j.open_tasks,
                j.answered_by_me,
                j.job_id
            );
        }
        body.push_str("</tbody></table>");
    }
    if matches!(v.caller.0.role, Role::Admin | Role::Requester) {
        let _ = write!(
            body,
            "<h2>New workspace</h2><form method=\"post\" action=\"/workspaces\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input name=\"name\" placeholder=\"Workspace name\" required maxlength=\"200\">\
             <button type=\"submit\">Create workspace</button></form>",
            v.csrf_for("/workspaces")
        );
    }
    with_security_headers(page_for(&v, "Your jobs", &body).into_response())
}

async fn work_page(
    State(state): State<AppState>,
    v: Visitor,
    Path(job): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Ok(job) = job.parse::<i64>() else {
        return with_security_headers(error_page(ApiError::not_found("job")));
    };
    // `?task=` shows one lease the worker holds (the task an undo gave
    // back); else the next task.
    let held = match query.get("task").map(|t| t.parse::<i64>()) {
        Some(Ok(id)) => held_view(&state, &v, JobId(job), id).await,
        _ => None,
    };
    let next = match held {
        Some(view) => Next::Task(Box::new(view)),
        None => match lease_next(&state, &v.caller, JobId(job), None).await {
            Ok(n) => n,
            Err(e) => return with_security_headers(error_page(e)),
        },
    };
    let mut feedback = match (query.get("gold").map(String::as_str), query.get("expected")) {
        (Some("right"), _) => "<p class=\"card notice\" role=\"status\">That was a control question, and you answered it right.</p>".to_owned(),
        (Some("wrong"), Some(expected)) => format!(
            "<p class=\"card notice\" role=\"status\">That was a control question; its answer is <b>{}</b>.</p>",
            escape_html(expected)
        ),
        _ => String::new(),
    };
    if query.contains_key("undone") {
        feedback.push_str(
            "<p class=\"card notice\" role=\"status\">Your answer is taken back: answer this task again.</p>",
        );
    }
    let r = match next {
        Next::Task(mut view) => {
            // A lease held from before (fetched ahead, or shown on an
            // earlier visit) starts its clock now that the task is shown.
            if view.held
                && shown(&state, &v.caller, view.assignment.id.0).await.is_ok()
                && let Ok(Some(a)) = state.store.get_assignment(view.assignment.id).await
            {
                view.assignment.leased_at = a.leased_at;
                view.assignment.deadline = a.deadline;
            }
            let undo = match query.get("last").map(|l| l.parse::<i64>()) {
                Some(Ok(last)) if last != view.assignment.id.0 => {
                    undo_form(&v, JobId(job), AssignmentId(last))
                }
                _ => String::new(),
            };
            let stats = my_stats(&state, &v, JobId(job)).await;
            page(
                "Task",
                &format!(
                    "{feedback}{}{undo}{stats}",
                    task_html(&view, &v, TaskMode::Live)
                ),
            )
            .into_response()
        }
        Next::Wait(reason) => {
            let body = format!(
                "<h1>Nothing to do right now</h1><p class=\"card\">{}. This page checks again every few seconds.</p>\
                 <p><a href=\"/\">Back to your jobs</a></p>",
                escape_html(&sentence(reason))
            );
            let mut r = page("Waiting", &body).into_response();
            r.headers_mut()
                .insert("refresh", HeaderValue::from_static("5"));
            r
        }
        Next::Gone(_, reason) => {
            let body = format!(
                "<h1>All done</h1><p class=\"card\">{}. Thank you!</p><p><a href=\"/\">Back to your jobs</a></p>",
                escape_html(&sentence(reason))
            );
            page("Done", &body).into_response()
        }
    };
    with_security_headers(r)
}

/// The task of lease `id` of `job` if the visitor holds it, pending.
async fn held_view(state: &AppState, v: &Visitor, job: JobId, id: i64) -> Option<TaskView> {
    let a = state
        .store
        .get_assignment(AssignmentId(id))
        .await
        .ok()
        .flatten()
        .filter(|a| {
            a.worker_id == v.caller.0.id
                && a.job_id == job
                && a.status == tutti_store::AssignmentStatus::Pending
        })?;
    let (job, _) = v.caller.job(state, job, false).await.ok()?;
    Some(TaskView::new(&job, a, true))
}

/// The form that takes back the worker's last answer (lease `last`).
fn undo_form(v: &Visitor, job: JobId, last: AssignmentId) -> String {
    let action = format!("/work/{job}/assignments/{last}");
    format!(
        "<form method=\"post\" action=\"{action}\" class=\"secondary\" id=\"undo-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"action\" value=\"undo\">\
         <button class=\"link\">Undo your last answer <kbd>Z</kbd></button></form>",
        v.csrf_for(&action)
    )
}

/// The task after the one the worker sees (`?after=` its lease), leased
/// ahead and sent as the page's `main` content, so that the page can show
/// it the moment the worker answers. Its clock starts when the page shows
/// it. 204 when there is none to fetch now: the page then posts its answer
/// as a plain form.
async fn ahead(
    State(state): State<AppState>,
    v: Visitor,
    Path(job): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (Ok(job), Some(Ok(after))) = (
        job.parse::<i64>(),
        query.get("after").map(|a| a.parse::<i64>()),
    ) else {
        return ApiError::bad_request("give the lease shown now as ?after=")
            .with_field("after")
            .into_response();
    };
    match lease_next(&state, &v.caller, JobId(job), Some(AssignmentId(after))).await {
        Ok(Next::Task(view)) if view.assignment.id.0 != after => {
            let stats = my_stats(&state, &v, JobId(job)).await;
            let html = format!("{}{stats}", task_html(&view, &v, TaskMode::Live));
            with_security_headers(Html(html).into_response())
        }
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// What a requester sees of a job's task page without taking a lease: the
/// task of row `?row=` (else the first), with forms that answer nothing.
async fn preview(
    State(state): State<AppState>,
    v: Visitor,
    Path(job): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Ok(job) = job.parse::<i64>() else {
        return with_security_headers(error_page(ApiError::not_found("job")));
    };
    let row = match query.get("row").map(|r| r.parse::<i64>()) {
        None => 1,
        Some(Ok(r)) if r >= 1 => r,
        Some(_) => {
            return with_security_headers(error_page(
                ApiError::bad_request("row must be a row number from 1").with_field("row"),
            ));
        }
    };
    let (job, _) = match v.caller.job(&state, JobId(job), true).await {
        Ok(j) => j,
        Err(e) => return with_security_headers(error_page(e)),
    };
    let rows = match state.store.results_page(job.id, row - 1, 2).await {
        Ok(r) => r,
        Err(e) => return with_security_headers(error_page(e.into())),
    };
    let Some(first) = rows.first() else {
        let body = format!(
            "<h1>Nothing to preview</h1><p class=\"card\">This job has no row {row}.</p>\
             <p><a href=\"/jobs/{}\">Back to the job</a></p>",
            job.id
        );
        return with_security_headers(page_for(&v, "Preview", &body).into_response());
    };
    let view = TaskView::new(
        &job,
        tutti_store::Assignment {
            id: AssignmentId(0),
            job_id: job.id,
            task_id: tutti_domain::ids::TaskId(0),
            seq: first.seq,
            worker_id: v.caller.0.id,
            side: tutti_domain::policy::Side::Worker,
            status: tutti_store::AssignmentStatus::Pending,
            leased_at: tutti_store::now(),
            deadline: tutti_store::now().plus_secs(job.config.policy.time_limit_secs),
            answer: None,
            idempotency_key: None,
            late: false,
            data: first.data.clone(),
        },
        false,
    );
    let next = rows.get(1).map_or(String::new(), |n| {
        format!(
            " · <a href=\"/jobs/{}/preview?row={}\">next row</a>",
            job.id, n.seq
        )
    });
    let body = format!(
        "<p class=\"card notice\" role=\"status\">Preview of row {} of <b>{}</b>: this is what a worker sees. \
         It takes no lease and records no answer.{next} · <a href=\"/jobs/{}\">back to the job</a></p>{}",
        first.seq,
        escape_html(&job.config.name),
        job.id,
        task_html(&view, &v, TaskMode::Preview)
    );
    with_security_headers(page_for(&v, "Preview", &body).into_response())
}

/// The worker's own figures under a task: answers in this job today
/// (since 00:00 UTC) and, where the job shows control-question feedback,
/// how many of those they got right. Empty if they cannot be read.
async fn my_stats(state: &AppState, v: &Visitor, job: JobId) -> String {
    let me = v.caller.0.id;
    let Ok(today) = state.store.answered_since(job, me, midnight()).await else {
        return String::new();
    };
    let mut s = format!(
        "<p class=\"muted my-stats\">Tasks of this job you answered today (UTC): \
         <b id=\"answered-today\">{today}</b>"
    );
    let shows_gold = matches!(v.caller.job(state, job, false).await,
        Ok((j, _)) if j.config.policy.gold.is_some_and(|g| g.feedback));
    if shows_gold
        && let Ok(g) = state.store.gold_record(job, me).await
        && g.seen > 0
    {
        let _ = write!(
            s,
            "; control questions right: {} of {} ({:.0}%)",
            g.correct,
            g.seen,
            g.correct as f64 * 100.0 / g.seen as f64
        );
    }
    s.push_str(".</p>");
    s
}

/// 00:00 UTC today: the worker's day starts there.
fn midnight() -> tutti_domain::time::Timestamp {
    let now = tutti_store::now();
    tutti_domain::time::Timestamp(now.0 - now.0.rem_euclid(86_400_000))
}

/// An API reason as the start of a sentence.
pub(crate) fn sentence(reason: &str) -> String {
    let mut chars = reason.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Whether a task page answers (a lease) or only shows (a preview).
#[derive(Clone, Copy, PartialEq)]
enum TaskMode {
    Live,
    Preview,
}

fn task_html(view: &TaskView, v: &Visitor, mode: TaskMode) -> String {
    let a = &view.assignment;
    let live = mode == TaskMode::Live;
    let mut s = String::with_capacity(4096);
    let _ = write!(
        s,
        "<section class=\"instructions\">{}</section>",
        view.short_instructions
    );
    if !view.long_instructions.trim().is_empty() {
        let _ = write!(
            s,
            "<details class=\"card\"><summary>Full instructions</summary>{}</details>",
            view.long_instructions
        );
    }
    let _ = write!(
        s,
        "<p class=\"lease\" data-deadline=\"{}\" data-seconds=\"{}\">Time left: <span id=\"time-left\"></span></p>",
        a.deadline.0,
        a.deadline.0.saturating_sub(a.leased_at.0) / 1000
    );
    let _ = write!(
        s,
        "<h1 class=\"question\">{}</h1>",
        escape_html(&view.question)
    );
    match &view.layout_html {
        Some(layout) => {
            let _ = write!(s, "<div class=\"item card\">{layout}</div>");
        }
        None => {
            s.push_str("<table class=\"item\"><tbody>");
            for (k, v) in &a.data {
                let _ = write!(
                    s,
                    "<tr><th>{}</th><td>{}</td></tr>",
                    escape_html(k),
                    escape_html(&tutti_domain::template::value_text(v))
                );
            }
            s.push_str("</tbody></table>");
        }
    }
    let action = format!("/work/{}/assignments/{}", a.job_id, a.id);
    let csrf = v.csrf_for(&action);
    if live {
        let _ = write!(
            s,
            "<form method=\"post\" action=\"{action}\" class=\"answers\" id=\"answer-form\" \
             data-job=\"{job}\" data-assignment=\"{id}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"key\" value=\"web-{id}\">",
            job = a.job_id,
            id = a.id
        );
    } else {
        // A preview's form has nowhere to post and its buttons do nothing.
        s.push_str("<form class=\"answers\" id=\"preview-form\">");
    }
    let scale = view.compare.as_ref().and_then(|c| c.scale);
    if let Some(scale) = scale {
        // Tournesol's graded slider: negative favours the left item.
        let _ = write!(
            s,
            "<input type=\"hidden\" name=\"action\" value=\"submit\">\
             <div class=\"grade\"><span class=\"end\"><kbd>\u{2190}</kbd> Left is much better</span>\
             <input type=\"range\" name=\"answer\" id=\"grade\" min=\"-{scale}\" max=\"{scale}\" step=\"1\" value=\"0\" \
             aria-label=\"Grade from -{scale} (left is much better) to {scale} (right is much better)\">\
             <span class=\"end\">Right is much better <kbd>\u{2192}</kbd></span></div>\
             <p class=\"grade-says\"><output for=\"grade\" id=\"grade-value\">0</output> \
             <span id=\"grade-words\">{}</span></p>\
             <button type=\"submit\" id=\"grade-submit\">Submit (Enter)</button>",
            if view.answers.iter().any(|a| a == "tie") {
                "no preference"
            } else {
                "move the slider to the better side"
            }
        );
    } else if view.free_text {
        s.push_str(
            "<input name=\"answer\" id=\"free-text\" autocomplete=\"off\" placeholder=\"Type your answer\" required>\
             <button type=\"submit\" name=\"action\" value=\"submit\">Submit (Enter)</button>",
        );
    } else {
        s.push_str("<input type=\"hidden\" name=\"action\" value=\"submit\">");
        for (i, option) in view.answers.iter().enumerate() {
            let key = if i < 9 {
                format!("<kbd>{}</kbd> ", i + 1)
            } else {
                String::new()
            };
            // A pairwise job's sides also answer to the arrow keys.
            let (text, arrow) = match (view.compare.is_some(), option.as_str()) {
                (true, "left") => ("Left is better", " data-arrow=\"ArrowLeft\""),
                (true, "right") => ("Right is better", " data-arrow=\"ArrowRight\""),
                (true, "tie") => ("Neither (tie)", ""),
                _ => (option.as_str(), ""),
            };
            let _ = write!(
                s,
                "<button type=\"submit\" name=\"answer\" value=\"{}\" data-key=\"{}\"{arrow}>{key}{}</button>",
                escape_html(option),
                i + 1,
                escape_html(text)
            );
        }
    }
    s.push_str("</form>");
    if !live {
        return s.replace("type=\"submit\"", "type=\"button\"");
    }
    let _ = write!(
        s,
        "<form method=\"post\" action=\"{action}\" class=\"secondary\" id=\"other-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"ahead\" value=\"\">\
         <button name=\"action\" value=\"skip\" class=\"link\">Skip this task</button>\
         <button name=\"action\" value=\"release\" class=\"link\">Quit for now</button></form>"
    );
    s
}

#[derive(Deserialize)]
struct ActForm {
    csrf: String,
    action: String,
    answer: Option<String>,
    key: Option<String>,
    /// On "release": the lease the page fetched ahead, given back too.
    ahead: Option<String>,
    /// The lease the page shows now in place of this one: its clock starts.
    shown: Option<String>,
}

async fn act(
    State(state): State<AppState>,
    v: Visitor,
    Path((job, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActForm>,
) -> Response {
    // The task page answers in the background once it shows the task it
    // fetched ahead; it asks for JSON rather than a redirect.
    let fetched = headers.contains_key("x-tutti-fetch");
    let fail = |e: ApiError| {
        if fetched {
            e.into_response()
        } else {
            error_page(e)
        }
    };
    if let Err(e) = v.check_csrf(&form.csrf) {
        return fail(e);
    }
    let (Ok(job), Ok(id)) = (job.parse::<i64>(), id.parse::<i64>()) else {
        return fail(ApiError::not_found("assignment"));
    };
    if let Some(Ok(next)) = form
        .shown
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<i64>())
        && next != id
    {
        // A lease that is gone tells the worker so when they answer it.
        let _ = shown(&state, &v.caller, next).await;
    }
    let done = match form.action.as_str() {
        "submit" => {
            let answer = form.answer.unwrap_or_default();
            submit_answer(&state, &v.caller, id, &answer, form.key)
                .await
                .map(|r| {
                    let mut query = vec![("last", id.to_string())];
                    // Control-question feedback rides on the redirect.
                    if let Some(g) = &r.gold {
                        query.push((
                            "gold",
                            (if g.correct { "right" } else { "wrong" }).to_owned(),
                        ));
                        query.push(("expected", g.expected.clone()));
                    }
                    let to = format!(
                        "/work/{job}?{}",
                        serde_urlencoded::to_string(&query).unwrap_or_default()
                    );
                    (
                        to,
                        serde_json::json!({"ok": true, "gold": r.gold, "stopped": r.stopped}),
                    )
                })
        }
        "skip" => give_back(&state, &v.caller, id, GiveBack::Skip)
            .await
            .map(|_| (format!("/work/{job}"), serde_json::json!({"ok": true}))),
        "undo" => undo_answer(&state, &v.caller, id).await.map(|_| {
            (
                format!("/work/{job}?task={id}&undone=1"),
                serde_json::json!({"ok": true}),
            )
        }),
        "release" => {
            // The lease fetched ahead goes back with the one shown; it may
            // have been answered or may have run out already.
            if let Some(Ok(ahead)) = form
                .ahead
                .filter(|a| !a.is_empty())
                .map(|a| a.parse::<i64>())
                && ahead != id
            {
                let _ = give_back(&state, &v.caller, ahead, GiveBack::Release).await;
            }
            give_back(&state, &v.caller, id, GiveBack::Release)
                .await
                .map(|_| ("/".to_owned(), serde_json::json!({"ok": true})))
        }
        _ => Err(ApiError::bad_request("unknown action").with_field("action")),
    };
    match done {
        Ok((_, mut body)) if fetched => {
            // The page shows the worker's count of the day from this.
            if form.action == "submit"
                && let Ok(n) = state
                    .store
                    .answered_since(JobId(job), v.caller.0.id, midnight())
                    .await
            {
                body["answered_today"] = n.into();
            }
            Json(body).into_response()
        }
        Ok((to, _)) => Redirect::to(&to).into_response(),
        Err(e) => fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_special_characters_are_escaped() {
        assert_eq!(
            escape_html("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn reasons_start_sentences_with_a_capital() {
        assert_eq!(sentence("the job is finished"), "The job is finished");
        assert_eq!(sentence(""), "");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tutti_token=tok; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("tok"));
    }
}
