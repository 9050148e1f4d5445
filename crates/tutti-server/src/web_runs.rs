//! Workflows on the web pages: upload a program (`.cy`, YAML or JSON)
//! with the files it reads, see a refused program with the offending line
//! marked, list a workspace's runs, and watch a run: its steps drawn as a
//! graph (each step a box coloured by state, with rows in and out and, for
//! human steps, a progress bar of their job), a table of steps with their
//! errors, and buttons to cancel the run or retry a failed step. While the
//! run is live, a few lines of script refresh the graph every two seconds.
//!
//! The checks and actions are the API's own (`POST
//! /api/v1/workspaces/{ws}/runs`, `/cancel`, `/retry`).

use crate::AppState;
use crate::api::runs::RunSpec;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::web::{Visitor, error_page, escape_html, page_for, with_security_headers};
use crate::web_account::CsrfForm;
use crate::web_results::date_text;
use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use tutti_domain::ids::{RunId, WorkspaceId};
use tutti_domain::workflow::{self, Format};
use tutti_store::{NodeStatus, Run, RunNode};

/// The run routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces/{ws}/runs/new", get(new_run))
        .route(
            "/workspaces/{ws}/runs",
            get(list_runs)
                .post(create_run)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/cancel", post(cancel))
        .route("/runs/{id}/nodes/{index}/retry", post(retry))
}

fn ws_of(ws: &str) -> Result<WorkspaceId, ApiError> {
    ws.parse::<i64>()
        .map(WorkspaceId)
        .map_err(|_| ApiError::not_found("workspace"))
}

async fn may_run(state: &AppState, v: &Visitor, ws: &str) -> Result<WorkspaceId, ApiError> {
    let ws = ws_of(ws)?;
    if !v.caller.role_in(state, ws).await?.manages_jobs() {
        return Err(ApiError::forbidden(
            "only a workspace's admins and requesters run workflows",
        ));
    }
    Ok(ws)
}

fn upload_form(ws: WorkspaceId, csrf: &str, name: &str, program: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/workspaces/{}/runs\" enctype=\"multipart/form-data\" class=\"card stack\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Name <input name=\"name\" value=\"{}\" maxlength=\"200\" placeholder=\"run\"></label>\
         <label>Workflow file (.cy, .yaml or .json) <input name=\"workflow\" type=\"file\" accept=\".cy,.yaml,.yml,.json\"></label>\
         <label>or the program itself (Cymphony's language unless the file says otherwise) \
         <textarea name=\"program\" rows=\"10\" spellcheck=\"false\">{}</textarea></label>\
         <label>Files it reads (tables, instructions, layouts) <input name=\"files\" type=\"file\" multiple></label>\
         <button type=\"submit\">Check and run</button></form>",
        ws.0,
        escape_html(name),
        escape_html(program)
    )
}

async fn new_run(State(state): State<AppState>, v: Visitor, Path(ws): Path<String>) -> Response {
    let ws = match may_run(&state, &v, &ws).await {
        Ok(ws) => ws,
        Err(e) => return error_page(e),
    };
    let body = format!(
        "<h1>Run a workflow</h1><p class=\"muted\">A workflow is a graph of SQL, model and human steps over tables; \
         see the README for the language.</p>{}",
        upload_form(ws, v.csrf(), "", "")
    );
    with_security_headers(page_for(&v, "Run a workflow", &body).into_response())
}

/// The program with line numbers, the line at fault marked.
fn source_html(program: &str, bad: Option<u64>) -> String {
    let mut s = String::from("<pre class=\"source\" aria-label=\"The program\">");
    for (i, line) in program.lines().enumerate() {
        let n = i as u64 + 1;
        let mark = if Some(n) == bad {
            " class=\"bad\" id=\"bad-line\""
        } else {
            ""
        };
        let _ = write!(s, "<span{mark}><i>{n}</i>{}</span>", escape_html(line));
    }
    s.push_str("</pre>");
    s
}

async fn create_run(
    State(state): State<AppState>,
    v: Visitor,
    Path(ws): Path<String>,
    mut form: Multipart,
) -> Response {
    let ws = match may_run(&state, &v, &ws).await {
        Ok(ws) => ws,
        Err(e) => return error_page(e),
    };
    let limit = usize::try_from(state.settings.max_upload_bytes).unwrap_or(usize::MAX);
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut workflow_file: Option<(String, String)> = None;
    let mut total = 0usize;
    let read = async {
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?
        {
            let name = field.name().unwrap_or("").to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let bytes = crate::web::field_bytes(field, limit.saturating_sub(total)).await?;
            total += bytes.len();
            if total > limit {
                return Err(ApiError::bad_request(format!(
                    "the upload is larger than the limit of {limit} bytes"
                ))
                .with_field(name));
            }
            let text = |what: &str| {
                String::from_utf8(bytes.to_vec()).map_err(|_| {
                    ApiError::bad_request(format!("{what} is not UTF-8 text"))
                        .with_field(name.clone())
                })
            };
            match (name.as_str(), file_name) {
                ("workflow", Some(f)) if !f.is_empty() => {
                    workflow_file = Some((f.clone(), text(&f)?));
                }
                ("files", Some(f)) if !f.is_empty() => {
                    let t = text(&f)?;
                    files.insert(f, t);
                }
                (_, Some(_)) => {}
                _ => {
                    let t = text(&name)?;
                    fields.insert(name.clone(), t);
                }
            }
        }
        Ok::<_, ApiError>(())
    }
    .await;
    let name = fields.get("name").cloned().unwrap_or_default();
    let typed = fields.get("program").cloned().unwrap_or_default();
    let (format, program) = match &workflow_file {
        Some((f, text)) => (Format::of_file(f), text.clone()),
        None => (Format::Cy, typed.replace("\r\n", "\n")),
    };
    let refused = |e: ApiError| {
        let at = e.line.map(|l| format!("line {l}: ")).unwrap_or_default();
        let mut body = format!(
            "<h1>Run a workflow</h1><p class=\"card error\" role=\"alert\">{}{}</p>",
            if e.message.starts_with("line ") {
                String::new()
            } else {
                at
            },
            escape_html(&e.message)
        );
        if !program.trim().is_empty() {
            body.push_str(&source_html(&program, e.line));
        }
        body.push_str(&upload_form(ws, v.csrf(), &name, &program));
        with_security_headers((e.status, page_for(&v, "Run a workflow", &body)).into_response())
    };
    if let Err(e) = read {
        return refused(e);
    }
    if let Err(e) = v.check_csrf(fields.get("csrf").map(String::as_str).unwrap_or("")) {
        return error_page(e);
    }
    if program.trim().is_empty() {
        return refused(
            ApiError::bad_request("choose a workflow file or type the program")
                .with_field("program"),
        );
    }
    let spec = RunSpec {
        name: Some(name.trim().to_owned()).filter(|n| !n.is_empty()),
        format: Some(format.as_str().to_owned()),
        program: program.clone(),
        files,
        params: Default::default(),
        after_run: None,
        webhook: None,
    };
    match crate::api::runs::create_run(
        State(state.clone()),
        v.caller.clone(),
        ApiPath(ws.0),
        ApiJson(spec),
    )
    .await
    {
        Ok((_, axum::Json(run))) => Redirect::to(&format!("/runs/{}", run.id.0)).into_response(),
        Err(e) => refused(e),
    }
}

async fn list_runs(State(state): State<AppState>, v: Visitor, Path(ws): Path<String>) -> Response {
    let shown = async {
        let ws = may_run(&state, &v, &ws).await?;
        let w = state
            .store
            .get_workspace(ws)
            .await?
            .ok_or_else(|| ApiError::not_found("workspace"))?;
        let runs = state.store.list_runs(ws, None, 200).await?;
        Ok::<_, ApiError>((w, runs))
    }
    .await;
    let (w, runs) = match shown {
        Ok(s) => s,
        Err(e) => return error_page(e),
    };
    let mut body = format!(
        "<h1>{} · workflow runs</h1><p><a class=\"button\" href=\"/workspaces/{}/runs/new\">Run a workflow</a></p>",
        escape_html(&w.name),
        w.id.0
    );
    if runs.is_empty() {
        body.push_str("<p class=\"card\">No runs yet. Upload a workflow to start one.</p>");
    } else {
        body.push_str(
            "<table><thead><tr><th>Run</th><th>Status</th><th>Started</th></tr></thead><tbody>",
        );
        for r in &runs {
            let _ = write!(
                body,
                "<tr><td><a href=\"/runs/{}\">{}</a></td><td><span class=\"state {}\">{}</span></td><td>{}</td></tr>",
                r.id.0,
                escape_html(&r.name),
                r.status.as_str(),
                r.status.as_str(),
                date_text(r.created_at)
            );
        }
        body.push_str("</tbody></table>");
    }
    with_security_headers(page_for(&v, "Workflow runs", &body).into_response())
}

#[derive(Deserialize)]
struct RunQuery {
    part: Option<String>,
}

async fn run_of(state: &AppState, v: &Visitor, id: &str) -> Result<Run, ApiError> {
    let id = id.parse::<i64>().map_err(|_| ApiError::not_found("run"))?;
    let run = state
        .store
        .get_run(RunId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    let role = v
        .caller
        .role_in(state, run.workspace_id)
        .await
        .map_err(|_| ApiError::not_found("run"))?;
    if !role.manages_jobs() {
        return Err(ApiError::not_found("run"));
    }
    Ok(run)
}

fn colour(s: NodeStatus) -> &'static str {
    match s {
        NodeStatus::Idle => "#e3e6ef",
        NodeStatus::Running => "#9db6ff",
        NodeStatus::Waiting => "#ffd479",
        NodeStatus::Completed => "#8fd19e",
        NodeStatus::Failed => "#f28b82",
        NodeStatus::Retrying => "#f6b26b",
    }
}

/// Each step's column in the drawing: one more than the latest step it
/// reads from.
fn layers(run: &Run, count: usize) -> (Vec<usize>, Vec<(usize, usize)>) {
    let Some(wf) = Format::parse(&run.format)
        .and_then(|f| workflow::parse(f, &run.program).ok())
        .filter(|wf| wf.nodes.len() == count)
    else {
        // Without the graph, draw the steps in a line.
        let edges = (1..count).map(|i| (i - 1, i)).collect();
        return ((0..count).collect(), edges);
    };
    let mut layer = vec![0usize; count];
    let mut edges = Vec::new();
    for (j, node) in wf.nodes.iter().enumerate() {
        for (i, earlier) in wf.nodes[..j].iter().enumerate() {
            if earlier.outputs.iter().any(|o| node.inputs.contains(o)) {
                edges.push((i, j));
                layer[j] = layer[j].max(layer[i] + 1);
            }
        }
    }
    (layer, edges)
}

const BOX_W: usize = 200;
const BOX_H: usize = 64;
const GAP_X: usize = 50;
const GAP_Y: usize = 18;

async fn dag_svg(state: &AppState, run: &Run, nodes: &[RunNode]) -> String {
    let (layer, edges) = layers(run, nodes.len());
    let mut row_in_layer = vec![0usize; nodes.len()];
    let mut filled: HashMap<usize, usize> = HashMap::new();
    for (i, l) in layer.iter().enumerate() {
        let r = filled.entry(*l).or_default();
        row_in_layer[i] = *r;
        *r += 1;
    }
    let cols = layer.iter().max().map_or(1, |m| m + 1);
    let rows = filled.values().max().copied().unwrap_or(1);
    let width = cols * (BOX_W + GAP_X);
    let height = rows * (BOX_H + GAP_Y) + GAP_Y;
    let pos = |i: usize| {
        (
            layer[i] * (BOX_W + GAP_X) + 4,
            row_in_layer[i] * (BOX_H + GAP_Y) + GAP_Y / 2,
        )
    };
    let mut s = format!(
        "<svg class=\"dag\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"The run's steps\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#8a93a6\"/></marker></defs>"
    );
    for (a, b) in edges {
        let (ax, ay) = pos(a);
        let (bx, by) = pos(b);
        let _ = write!(
            s,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#8a93a6\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"/>",
            ax + BOX_W,
            ay + BOX_H / 2,
            bx.saturating_sub(2),
            by + BOX_H / 2
        );
    }
    for (i, n) in nodes.iter().enumerate() {
        let (x, y) = pos(i);
        let mut label: String = n.label.chars().take(26).collect();
        if n.label.chars().count() > 26 {
            label.push('…');
        }
        let _ = write!(
            s,
            "<g class=\"node {}\" data-index=\"{}\"><title>{}: {}</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"8\" fill=\"{}\" stroke=\"#5d6678\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"13\" font-weight=\"600\">{}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#1d2433\">{} · {} in · {} out</text>",
            n.status.as_str(),
            n.index,
            escape_html(&n.label),
            n.status.as_str(),
            colour(n.status),
            x + 8,
            y + 18,
            escape_html(&label),
            x + 8,
            y + 36,
            n.status.as_str(),
            n.rows_in,
            n.rows_out
        );
        if let Some(job) = n.job_id
            && let Ok(p) = state.store.job_progress(job).await
            && p.tasks > 0
        {
            let w = (BOX_W - 16) as i64 * p.done.min(p.tasks) / p.tasks;
            let _ = write!(
                s,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"8\" rx=\"3\" fill=\"#fff\" stroke=\"#8a93a6\"/>\
                 <rect x=\"{}\" y=\"{}\" width=\"{w}\" height=\"8\" rx=\"3\" fill=\"#2457d6\"><title>{} of {} tasks done</title></rect>",
                x + 8,
                y + 46,
                BOX_W - 16,
                x + 8,
                y + 46,
                p.done,
                p.tasks
            );
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

/// The live part of a run page: status, graph, steps, actions.
async fn live_html(state: &AppState, v: &Visitor, run: &Run) -> Result<String, ApiError> {
    let nodes = state.store.run_nodes(run.id).await?;
    let csrf = v.csrf();
    let final_ = run.status.is_final();
    let mut s = format!(
        "<div id=\"run-live\" data-run=\"{}\"{}><p>Status: <span class=\"state {}\">{}</span>{}</p>",
        run.id.0,
        if final_ { " data-final" } else { "" },
        run.status.as_str(),
        run.status.as_str(),
        run.error
            .as_deref()
            .map(|e| format!(" <span class=\"error\">{}</span>", escape_html(e)))
            .unwrap_or_default()
    );
    s.push_str("<div class=\"dag-wrap\">");
    s.push_str(&dag_svg(state, run, &nodes).await);
    s.push_str("</div><table><thead><tr><th>#</th><th>Step</th><th>State</th><th>Rows in</th><th>Rows out</th><th>Job</th><th>Error</th><th></th></tr></thead><tbody>");
    for n in &nodes {
        let job = n
            .job_id
            .map(|j| format!("<a href=\"/jobs/{}\">results</a>", j.0))
            .unwrap_or_default();
        let retry = if n.status == NodeStatus::Failed
            && run.status != tutti_store::RunStatus::Cancelled
        {
            format!(
                "<form method=\"post\" action=\"/runs/{}/nodes/{}/retry\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <button class=\"link\">Retry</button></form>",
                run.id.0, n.index
            )
        } else {
            String::new()
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td><span class=\"state {}\">{}</span></td><td>{}</td><td>{}</td><td>{job}</td><td class=\"error\">{}</td><td>{retry}</td></tr>",
            n.index,
            escape_html(&n.label),
            n.status.as_str(),
            n.status.as_str(),
            n.rows_in,
            n.rows_out,
            escape_html(n.error.as_deref().unwrap_or(""))
        );
    }
    s.push_str("</tbody></table>");
    if !final_ || run.status == tutti_store::RunStatus::Failed {
        let _ = write!(
            s,
            "<form method=\"post\" action=\"/runs/{}/cancel\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button class=\"danger-button\">Cancel the run</button></form>",
            run.id.0
        );
    }
    s.push_str("</div>");
    Ok(s)
}

async fn run_page(
    State(state): State<AppState>,
    v: Visitor,
    Path(id): Path<String>,
    Query(q): Query<RunQuery>,
) -> Response {
    let run = match run_of(&state, &v, &id).await {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let live = match live_html(&state, &v, &run).await {
        Ok(l) => l,
        Err(e) => return error_page(e),
    };
    if q.part.as_deref() == Some("live") {
        return with_security_headers(
            axum::response::Html(crate::web::bind_csrf(&live, &v)).into_response(),
        );
    }
    let body = format!(
        "<h1>{}</h1><p class=\"muted\">Run {} · started {} · <a href=\"/workspaces/{}/runs\">all runs</a> · \
         <a href=\"/api/v1/runs/{}\">as JSON</a></p>{live}\
         <details><summary>The program</summary>{}</details>",
        escape_html(&run.name),
        run.id.0,
        date_text(run.created_at),
        run.workspace_id.0,
        run.id.0,
        source_html(&run.program, None)
    );
    with_security_headers(page_for(&v, &run.name, &body).into_response())
}

async fn cancel(
    State(state): State<AppState>,
    v: Visitor,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let done = async {
        v.check_csrf(&f.csrf)?;
        let run = run_of(&state, &v, &id).await?;
        let _run =
            crate::api::runs::cancel_run(State(state.clone()), v.caller.clone(), ApiPath(run.id.0))
                .await?;
        Ok::<_, ApiError>(run.id)
    }
    .await;
    match done {
        Ok(id) => Redirect::to(&format!("/runs/{}", id.0)).into_response(),
        Err(e) => error_page(e),
    }
}

async fn retry(
    State(state): State<AppState>,
    v: Visitor,
    Path((id, index)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let done = async {
        v.check_csrf(&f.csrf)?;
        let run = run_of(&state, &v, &id).await?;
        let index = index
            .parse::<i64>()
            .map_err(|_| ApiError::not_found("step"))?;
        let _run = crate::api::runs::retry_node(
            State(state.clone()),
            v.caller.clone(),
            ApiPath((run.id.0, index)),
        )
        .await?;
        Ok::<_, ApiError>(run.id)
    }
    .await;
    match done {
        Ok(id) => Redirect::to(&format!("/runs/{}", id.0)).into_response(),
        Err(e) => error_page(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bad_line_is_marked_and_every_line_escaped() {
        let html = source_html("a = 1\nb = <x>\nc", Some(2));
        assert!(html.contains("<span class=\"bad\" id=\"bad-line\"><i>2</i>b = &lt;x&gt;</span>"));
        assert_eq!(html.matches("class=\"bad\"").count(), 1);
        assert!(html.contains("<span><i>3</i>c</span>"));
    }
}
