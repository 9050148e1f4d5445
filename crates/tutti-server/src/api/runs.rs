//! Workflow runs: a requester sends a program (Cymphony `.cy` or the JSON
//! spec) with the files it reads; the background runner carries it out.
//! Runs are listed, shown with per-step status, sampled table by table,
//! downloaded, cancelled and retried here.

use super::{Page, PageQuery};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use tutti_domain::ids::{RunId, WorkspaceId};
use tutti_domain::workflow::{self, Format, Op, Workflow};
use tutti_engine::rundata::TableInfo;
use tutti_store::{NewRun, RetryOutcome, Run, RunNode};

/// A run as a requester sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// A name people recognise the run by (default: `run`).
    #[serde(default)]
    pub name: Option<String>,
    /// `cy` (Cymphony's language, the default), `json` or `yaml` (the spec).
    #[serde(default)]
    pub format: Option<String>,
    /// The program's text.
    pub program: String,
    /// The files the program names (`read_table("x.csv")`, instructions
    /// and layout HTML), by name, as text.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Values for `${name}` in the program's queries.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    /// Start only when this run (of the same workspace) has completed.
    #[serde(default)]
    pub after_run: Option<i64>,
    /// Announce the finished run by POSTing to this URL, signed with the
    /// secret (`X-Tutti-Signature: sha256=<hex HMAC-SHA256 of the body>`).
    #[serde(default)]
    pub webhook: Option<WebhookSpec>,
}

/// Where a finished run is announced.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// The signing secret (at least 16 characters).
    pub secret: String,
}

/// Most characters in a run's name.
const MAX_NAME: usize = 200;

fn unprocessable(field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).with_field(field)
}

/// Checks a run request whole: the program parses and checks, every file
/// it names is there, every query passes the sandbox's text check.
fn check(
    spec: &RunSpec,
    outbound: &tutti_engine::outbound::Outbound,
) -> Result<(Format, Workflow), ApiError> {
    let format = match spec.format.as_deref() {
        None => Format::Cy,
        Some(f) => {
            Format::parse(f).ok_or_else(|| unprocessable("format", "must be cy, json or yaml"))?
        }
    };
    let wf = workflow::parse(format, &spec.program).map_err(|e| {
        let mut err = unprocessable("program", e.to_string());
        err.line = e.span.map(|s| u64::from(s.line));
        err
    })?;
    for f in wf.input_files() {
        if !spec.files.contains_key(f) {
            return Err(unprocessable(
                format!("files.{f}"),
                format!("the program reads {f}; send it in files"),
            ));
        }
    }
    for n in &wf.nodes {
        if let Op::Sql { query } = &n.op
            && let Err(e) = tutti_engine::sql::check(query)
        {
            let at = n.span.map(|s| format!("{s}: ")).unwrap_or_default();
            let mut err = unprocessable("program", format!("{at}{e}"));
            err.line = n.span.map(|s| u64::from(s.line));
            return Err(err);
        }
    }
    if let Some(name) = &spec.name
        && (name.trim().is_empty() || name.chars().count() > MAX_NAME)
    {
        return Err(unprocessable(
            "name",
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    if let Some(w) = &spec.webhook {
        if let Err(e) = outbound.check(&w.url) {
            return Err(unprocessable("webhook.url", e));
        }
        if w.secret.chars().count() < 16 {
            return Err(unprocessable(
                "webhook.secret",
                "must be at least 16 characters",
            ));
        }
    }
    Ok((format, wf))
}

/// Starts a run of a workflow in a workspace (admins and requesters). The
/// program is checked whole first: a syntax error, an undefined variable,
/// a missing file or a refused query is a 422 naming where.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/runs", tag = "runs", request_body = RunSpec,
    params(("ws" = i64, Path, description = "workspace id")),
    responses((status = 201, body = Run), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_run(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<i64>,
    ApiJson(spec): ApiJson<RunSpec>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let ws = WorkspaceId(ws);
    let role = caller.role_in(&state, ws).await?;
    if !role.manages_jobs() {
        return Err(ApiError::forbidden(
            "only a workspace's admins and requesters start runs",
        ));
    }
    let (format, wf) = check(&spec, &state.settings.outbound)?;
    if let Some(prev) = spec.after_run {
        match state.store.get_run(RunId(prev)).await? {
            Some(r) if r.workspace_id == ws => {}
            _ => {
                return Err(unprocessable(
                    "after_run",
                    format!("run {prev} is not a run of this workspace"),
                ));
            }
        }
    }
    for db in wf.databases() {
        if !state.runner.settings().databases.contains_key(db) {
            let known = state
                .runner
                .settings()
                .databases
                .keys()
                .cloned()
                .collect::<Vec<_>>();
            return Err(unprocessable(
                "program",
                format!(
                    "no database named {db} is configured on this server (configured: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    for other in wf.runs_read() {
        match state.store.get_run(RunId(other)).await? {
            Some(r) if r.workspace_id == ws => {}
            _ => {
                return Err(unprocessable(
                    "program",
                    format!("read_run names run {other}, which is not a run of this workspace"),
                ));
            }
        }
    }
    let wanted = wf.input_files();
    let new = NewRun {
        workspace_id: ws,
        name: spec
            .name
            .clone()
            .unwrap_or_else(|| "run".into())
            .trim()
            .to_owned(),
        format: format.as_str().to_owned(),
        program: spec.program.clone(),
        params: spec.params.clone(),
        files: spec
            .files
            .iter()
            .filter(|(name, _)| wanted.contains(&name.as_str()))
            .map(|(n, c)| (n.clone(), c.clone().into_bytes()))
            .collect(),
        nodes: wf
            .nodes
            .iter()
            .map(|n| (n.op.name().to_owned(), n.label()))
            .collect(),
        after_run: spec.after_run.map(RunId),
        webhook: spec.webhook.map(|w| (w.url, w.secret)),
        callback_secret: crate::auth::new_token(),
        created_by: caller.0.id,
    };
    let run = state.store.create_run(&new, tutti_store::now()).await?;
    state.runner.wake();
    Ok((StatusCode::CREATED, Json(run)))
}

/// A workspace's runs, newest first (admins and requesters).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/runs", tag = "runs",
    params(("ws" = i64, Path, description = "workspace id"), PageQuery),
    responses((status = 200, body = Page<Run>), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<i64>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<Run>>, ApiError> {
    let ws = WorkspaceId(ws);
    if !caller.role_in(&state, ws).await?.manages_jobs() {
        return Err(ApiError::forbidden(
            "only a workspace's admins and requesters see its runs",
        ));
    }
    let (limit, before) = page.parse()?;
    let runs = state.store.list_runs(ws, before, limit).await?;
    Ok(Json(Page::of(runs, limit, |r| r.id.0)))
}

/// A run with its steps, tables and output files.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunView {
    /// The run.
    #[serde(flatten)]
    pub run: Run,
    /// Its steps in order, with status, rows, timings and errors.
    pub nodes: Vec<RunNode>,
    /// The tables made so far.
    #[schema(value_type = Vec<Object>)]
    pub tables: Vec<TableInfo>,
    /// Files written so far (`write_table`), with their sizes.
    pub outputs: Vec<OutputFile>,
}

/// A file a run wrote.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OutputFile {
    /// Its name.
    pub name: String,
    /// Bytes.
    pub bytes: i64,
}

async fn run_of(state: &AppState, caller: &Caller, id: i64, manage: bool) -> Result<Run, ApiError> {
    let run = state
        .store
        .get_run(RunId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    let role = caller
        .role_in(state, run.workspace_id)
        .await
        .map_err(|_| ApiError::not_found("run"))?;
    if manage && !role.manages_jobs() {
        return Err(ApiError::forbidden(
            "only a workspace's admins and requesters see and steer runs",
        ));
    }
    Ok(run)
}

/// Reads a run's file, trying again while the runner keeps changing its
/// tables faster than a reader's statements can be prepared again, or is
/// closing the file as the reader opens it.
async fn with_retries<T, F, Fut>(read: F) -> Result<T, sqlx::Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        match read().await {
            // SQLITE_SCHEMA (17), and SQLITE_BUSY (5) with its recovery
            // and snapshot forms (261, 517): a read-only opener can meet
            // those without waiting while the runner closes the file and
            // its write-ahead log is folded back in.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("5" | "17" | "261" | "517"))
                    && tries < 50 =>
            {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e)
}

/// What a run's view includes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// `false` leaves out the tables and files (just the run and its
    /// steps: cheaper to poll).
    pub tables: Option<bool>,
}

/// A run with per-step status (admins and requesters of its workspace).
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = i64, Path, description = "run id"), RunQuery),
    responses((status = 200, body = RunView), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> Result<Json<RunView>, ApiError> {
    let run = run_of(&state, &caller, id, true).await?;
    let nodes = state.store.run_nodes(run.id).await?;
    let (tables, outputs) = if q.tables == Some(false) {
        (Vec::new(), Vec::new())
    } else {
        with_retries(|| async {
            let mut data = state.runner.open_to_read(run.id).await?;
            let t = data.tables().await?;
            let f = data.files().await?;
            data.close().await;
            Ok((t, f))
        })
        .await
        .map_err(internal)?
    };
    Ok(Json(RunView {
        run,
        nodes,
        tables,
        outputs: outputs
            .into_iter()
            .map(|(name, bytes)| OutputFile { name, bytes })
            .collect(),
    }))
}

/// Which rows of a table to show.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RowsQuery {
    /// Rows to skip (default 0).
    pub offset: Option<i64>,
    /// Rows to show (1-1000, default 100).
    pub limit: Option<i64>,
}

/// Rows of a table.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TableRows {
    /// The table.
    pub name: String,
    /// Its columns.
    pub columns: Vec<String>,
    /// All its rows.
    pub total: i64,
    /// The rows asked for, as objects.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Map<String, Value>>,
}

/// Rows of any table of a run, in order (a sample to look at).
#[utoipa::path(get, path = "/api/v1/runs/{id}/tables/{name}", tag = "runs",
    params(("id" = i64, Path, description = "run id"), ("name" = String, Path, description = "the variable"), RowsQuery),
    responses((status = 200, body = TableRows), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn table_rows(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, name)): ApiPath<(i64, String)>,
    ApiQuery(q): ApiQuery<RowsQuery>,
) -> Result<Json<TableRows>, ApiError> {
    let run = run_of(&state, &caller, id, true).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000").with_field("limit"));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request("offset must not be negative").with_field("offset"));
    }
    let (info, rows) = with_retries(|| async {
        let mut data = state.runner.open_to_read(run.id).await?;
        let info = data.table(&name).await?;
        let rows = data.rows(&name, offset, limit).await?;
        data.close().await;
        Ok((info, rows))
    })
    .await
    .map_err(internal)?;
    let (Some(info), Some(t)) = (info, rows) else {
        return Err(ApiError::not_found("table"));
    };
    Ok(Json(TableRows {
        name,
        columns: t.columns.clone(),
        total: info.rows,
        rows: t
            .rows
            .into_iter()
            .map(|r| t.columns.iter().cloned().zip(r).collect())
            .collect(),
    }))
}

/// Downloads a file the run wrote (`write_table`), as CSV.
#[utoipa::path(get, path = "/api/v1/runs/{id}/outputs/{file}", tag = "runs",
    params(("id" = i64, Path, description = "run id"), ("file" = String, Path, description = "the file's name")),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn output(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, file)): ApiPath<(i64, String)>,
) -> Result<Response, ApiError> {
    let run = run_of(&state, &caller, id, true).await?;
    let content = with_retries(|| async {
        let mut data = state.runner.open_to_read(run.id).await?;
        let content = data.file(&file).await?;
        data.close().await;
        Ok(content)
    })
    .await
    .map_err(internal)?;
    let content = content.ok_or_else(|| ApiError::not_found("output file"))?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        file.replace(['"', '\\', '\r', '\n'], "_")
    );
    let mut resp = content.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// Cancels a run that has not finished; its steps stop where they are.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs", params(("id" = i64, Path, description = "run id")),
    responses((status = 200, body = Run), (status = 409, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel_run(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Run>, ApiError> {
    let run = run_of(&state, &caller, id, true).await?;
    if run.status.is_final() && run.status != tutti_store::RunStatus::Failed {
        return Err(ApiError::conflict(
            "run_finished",
            format!("the run is already {}", run.status.as_str()),
        ));
    }
    let run = state
        .store
        .cancel_run(run.id, tutti_store::now())
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    state.runner.wake();
    Ok(Json(run))
}

/// Runs a failed step again (after fixing what it reads, say); the run
/// goes on from there.
#[utoipa::path(post, path = "/api/v1/runs/{id}/nodes/{index}/retry", tag = "runs",
    params(("id" = i64, Path, description = "run id"), ("index" = i64, Path, description = "the step, from 0")),
    responses((status = 200, body = Run), (status = 409, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn retry_node(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, index)): ApiPath<(i64, i64)>,
) -> Result<Json<Run>, ApiError> {
    let run = run_of(&state, &caller, id, true).await?;
    if run.status == tutti_store::RunStatus::Cancelled {
        return Err(ApiError::conflict("run_cancelled", "the run was cancelled"));
    }
    match state
        .store
        .retry_node(run.id, index, tutti_store::now())
        .await?
    {
        RetryOutcome::Retrying(run) => {
            state.runner.wake();
            Ok(Json(*run))
        }
        RetryOutcome::NoSuchNode => Err(ApiError::not_found("step")),
        RetryOutcome::NotFailed(s) => Err(ApiError::conflict(
            "not_failed",
            format!("step {index} is {}, not failed", s.as_str()),
        )),
    }
}

/// Simulated workers for a run, as asked.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulationSpec {
    /// How many workers (1-100).
    pub workers: u32,
    /// Probability of answering a `gold_label` row correctly, in [0, 1].
    pub accuracy: f64,
    /// Mean milliseconds per answer (0 answers at once).
    #[serde(default)]
    pub answer_ms: u64,
    /// Answers per burst (0: no gaps).
    #[serde(default)]
    pub burst: u32,
    /// Milliseconds of the gap after each burst.
    #[serde(default)]
    pub gap_ms: u64,
    /// Seed of the workers' random choices.
    #[serde(default)]
    pub seed: u64,
}

impl SimulationSpec {
    /// How the workers behave.
    pub fn behaviour(&self) -> crate::simulate::Behaviour {
        crate::simulate::Behaviour {
            accuracy: self.accuracy,
            answer_ms: self.answer_ms,
            burst: self.burst,
            gap_ms: self.gap_ms,
            seed: self.seed,
        }
    }
}

/// A simulation started through the API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Simulation {
    /// The run it works for.
    pub run_id: i64,
    /// `running` until the run is final, then `finished`.
    pub state: String,
    /// The workers' names.
    pub workers: Vec<String>,
    /// Each worker's answers and precision against `gold_label`, once
    /// finished.
    pub report: Vec<crate::simulate::WorkerReport>,
}

/// Lets simulated workers answer a run's human steps until the run ends:
/// `workers` new accounts join the run's workspace and answer through the
/// public API (rows with `gold_label` correctly with probability
/// `accuracy`). Follow it at GET `.../simulation`.
#[utoipa::path(post, path = "/api/v1/runs/{id}/simulation", tag = "runs", request_body = SimulationSpec,
    params(("id" = i64, Path, description = "run id")),
    responses((status = 202, body = Simulation), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn start_simulation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(spec): ApiJson<SimulationSpec>,
) -> Result<(StatusCode, Json<Simulation>), ApiError> {
    let run = run_of(&state, &caller, id, true).await?;
    if !(1..=100).contains(&spec.workers) {
        return Err(unprocessable("workers", "must be between 1 and 100"));
    }
    spec.behaviour().check()?;
    if run.status.is_final() {
        return Err(ApiError::conflict(
            "run_finished",
            format!("the run is already {}", run.status.as_str()),
        ));
    }
    {
        let sims = state.simulations.lock().expect("simulations lock");
        if sims.get(&id).is_some_and(|s| s.state == "running") {
            return Err(ApiError::conflict(
                "simulation_running",
                "a simulation is already working on this run",
            ));
        }
    }
    let mut workers = Vec::new();
    let stamp = tutti_store::now().0;
    for i in 0..spec.workers {
        let name = format!("sim-r{id}-{stamp}-{i}");
        let user = state
            .store
            .create_user(
                &tutti_store::NewUser {
                    name: name.clone(),
                    display_name: format!("Simulated worker {}", i + 1),
                    role: tutti_domain::role::Role::Worker,
                },
                tutti_store::now(),
            )
            .await?;
        state
            .store
            .set_member(run.workspace_id, user.id, tutti_domain::role::Role::Worker)
            .await?;
        let token = crate::auth::new_token();
        state
            .store
            .create_token(
                user.id,
                "simulation",
                &crate::auth::token_hash(&token),
                tutti_store::now(),
            )
            .await?;
        workers.push(crate::simulate::SimWorker { name, token });
    }
    let sim = Simulation {
        run_id: id,
        state: "running".into(),
        workers: workers.iter().map(|w| w.name.clone()).collect(),
        report: Vec::new(),
    };
    state
        .simulations
        .lock()
        .expect("simulations lock")
        .insert(id, sim.clone());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (store, base, sims) = (
        state.store.clone(),
        state.base_url.clone(),
        state.simulations.clone(),
    );
    let behaviour = spec.behaviour();
    let watch_stop = stop.clone();
    tokio::spawn(async move {
        // Stop the workers when the run is over.
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            match store.get_run(RunId(id)).await {
                Ok(Some(r)) if !r.status.is_final() => {}
                _ => break,
            }
        }
        watch_stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    tokio::spawn(async move {
        let report = crate::simulate::work(&base, workers, behaviour, stop).await;
        if let Some(s) = sims.lock().expect("simulations lock").get_mut(&id) {
            s.state = "finished".into();
            s.report = report;
        }
    });
    Ok((StatusCode::ACCEPTED, Json(sim)))
}

/// The simulation working on a run, with its report once finished.
#[utoipa::path(get, path = "/api/v1/runs/{id}/simulation", tag = "runs",
    params(("id" = i64, Path, description = "run id")),
    responses((status = 200, body = Simulation), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_simulation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Simulation>, ApiError> {
    run_of(&state, &caller, id, true).await?;
    state
        .simulations
        .lock()
        .expect("simulations lock")
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("simulation"))
}

/// The signature on a callback URL.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CallbackQuery {
    /// The token Tutti put in the batch's `callback_url`.
    pub token: String,
}

/// Where a model service answers a batch of a `model_call` step in
/// callback mode: the body is `{"results": [...]}`, one object per row of
/// the batch. The URL (with its signed token) comes in the batch's request
/// as `callback_url`; no bearer token is needed. An answer to a batch
/// already taken changes nothing.
#[utoipa::path(post, path = "/api/v1/runs/{id}/nodes/{index}/batches/{batch}/results", tag = "runs",
    params(("id" = i64, Path, description = "run id"), ("index" = i64, Path, description = "the step"),
           ("batch" = i64, Path, description = "the batch"), CallbackQuery),
    request_body(content = Object, description = "{\"results\": [...]}"),
    responses((status = 200, description = "taken"), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn model_results(
    State(state): State<AppState>,
    ApiPath((id, index, batch)): ApiPath<(i64, i64, i64)>,
    ApiQuery(q): ApiQuery<CallbackQuery>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    use tutti_engine::runner::CallbackError;
    let run = state
        .store
        .get_run(RunId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    let node = usize::try_from(index).map_err(|_| ApiError::not_found("step"))?;
    match state
        .runner
        .accept_results(&run, node, batch, &q.token, &body)
        .await
    {
        Ok(fresh) => Ok(Json(serde_json::json!({"taken": fresh}))),
        Err(CallbackError::BadToken) => {
            Err(ApiError::forbidden("the callback's token does not match"))
        }
        Err(CallbackError::NoSuchStep) => Err(ApiError::not_found("model step or batch")),
        Err(CallbackError::BadAnswer(m)) => Err(unprocessable("results", m)),
        Err(e @ CallbackError::Storage(_)) => Err(internal(e)),
    }
}
