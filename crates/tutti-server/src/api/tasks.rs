//! The Audience task API, as its README documents it, so that its clients
//! work unchanged: `POST /api/tasks/` (create_task), `GET /api/tasks/`
//! (task_list), `GET /api/tasks/{task_id}` (check_status) and
//! `GET /api/tasks/{task_id}/sample/?table_name=` (sample_result).
//!
//! Answers carry `error_code` and `error_message` as the Audience service
//! sent them, and the HTTP status is the `error_code`. A body that is not
//! the documented shape gets 422 with FastAPI's `detail` list (and the
//! field named). Without `open` in the labeling settings, every call needs
//! an administrator's bearer token.

use crate::AppState;
use crate::tasks::{self, Refusal, TaskRequest};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn answer(code: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

fn error(code: u16, field: Option<&str>, message: impl Into<String>) -> Response {
    let message = message.into();
    let mut body = json!({ "error_code": code, "error_message": message });
    if let Some(f) = field {
        body["field"] = json!(f);
    }
    answer(code, body)
}

fn invalid(field: &str, message: &str, kind: &str) -> Response {
    answer(
        422,
        json!({
            "error_code": 422,
            "error_message": format!("{field}: {message}"),
            "field": field,
            "detail": [{ "loc": ["body", field], "msg": message, "type": kind }],
        }),
    )
}

/// Labeling must be configured, and the caller allowed.
async fn allowed(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(settings) = &state.settings.labeling else {
        // Not an outage: the feature is not here.
        return Err(error(
            404,
            None,
            "bulk labeling is not configured on this server: start it with --label-input, --label-output \
             and --label-patterns (or the INPUT_*/OUTPUT_* variables)",
        ));
    };
    if settings.open {
        return Ok(());
    }
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            error(
                401,
                None,
                "this server's task API needs an administrator's token: send Authorization: Bearer <token>",
            )
        })?;
    let user = crate::auth::authenticate(state, token)
        .await
        .map_err(|e| error(e.status.as_u16(), None, e.message))?;
    if user.role != tutti_domain::role::Role::Admin {
        return Err(error(
            403,
            None,
            "only administrators may run labeling tasks on this server",
        ));
    }
    Ok(())
}

/// Reads the create_task body field by field, with the documented
/// defaults.
fn parse_request(
    body: &[u8],
    defaults: &tasks::LabelingSettings,
) -> Result<TaskRequest, Box<Response>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Box::new(invalid(
            "body",
            &format!("the body is not JSON: {e}"),
            "value_error.jsondecode",
        ))
    })?;
    let Some(obj) = value.as_object() else {
        return Err(Box::new(invalid(
            "body",
            "the body must be a JSON object",
            "type_error.dict",
        )));
    };
    let text = |name: &str, default: Option<&str>| -> Result<String, Box<Response>> {
        match obj.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Null) | None => default
                .map(str::to_owned)
                .ok_or_else(|| Box::new(invalid(name, "field required", "value_error.missing"))),
            Some(_) => Err(Box::new(invalid(
                name,
                "str type expected",
                "type_error.str",
            ))),
        }
    };
    let countdown = match obj.get("countdown") {
        None | Some(Value::Null) => 5,
        Some(v) => match v.as_u64() {
            Some(n) if n <= 86_400 => n,
            _ => {
                return Err(Box::new(invalid(
                    "countdown",
                    "a whole number of seconds from 0 to 86400 expected",
                    "type_error.integer",
                )));
            }
        },
    };
    Ok(TaskRequest {
        model_type: text("model_type", Some("keyword_model"))?,
        predict_type: text("predict_type", Some("author_name"))?,
        start_time: text("start_time", None)?,
        end_time: text("end_time", None)?,
        target_schema: text("target_schema", defaults.input_schema.as_deref())?,
        target_table: text("target_table", None)?,
        output_schema: text("output_schema", defaults.output_schema.as_deref())?,
        countdown,
    })
}

fn refused(r: Refusal) -> Response {
    error(r.code, r.field, r.message)
}

/// create_task: checks the request, stores the task and queues it.
#[utoipa::path(
    post,
    path = "/api/tasks/",
    tag = "tasks",
    request_body(content = String, content_type = "application/json",
        description = "model_type, predict_type, start_time, end_time, target_schema, target_table, output_schema, countdown"),
    responses(
        (status = 200, description = "The task's configuration with its task_id."),
        (status = 400, description = "start_time must be earlier than end_time, or a bad name."),
        (status = 422, description = "The body is not the documented shape."),
        (status = 501, description = "Cannot read the pattern file of model_type."),
        (status = 503, description = "Cannot connect to the output schema."),
    )
)]
pub async fn create_task(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = allowed(&state, &headers).await {
        return r;
    }
    let Some(settings) = state.settings.labeling.clone() else {
        return error(404, None, "bulk labeling is not configured on this server");
    };
    let req = match parse_request(&body, &settings) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let task_id = tutti_engine::bulk::new_task_id();
    let task = match tasks::task_of(&settings, &req, &task_id) {
        Ok(t) => t,
        Err(r) => return refused(r),
    };
    let rt = tokio::runtime::Handle::current();
    let checked = {
        let task = task.clone();
        tokio::task::spawn_blocking(move || tasks::check(&task, &rt)).await
    };
    match checked {
        Ok(Ok(())) => {}
        Ok(Err(r)) => return refused(r),
        Err(e) => {
            tracing::error!(error = %e, "checking a labeling task panicked");
            return error(500, None, "failed to start a labeling task");
        }
    }
    let result = task.result.clone().unwrap_or_default();
    if let Err(e) = state
        .store
        .create_label_task(&tasks::new_task(&task_id, &req, &result))
        .await
    {
        tracing::error!(error = %e, "cannot store a labeling task");
        return error(
            500,
            None,
            "failed to start a labeling task, additional error message: the task could not be recorded",
        );
    }
    state.label_tasks.push(task_id.clone());
    let range = task.range.display();
    answer(
        200,
        json!({
            "error_code": 200,
            "error_message": {
                "model_type": req.model_type,
                "predict_type": req.predict_type,
                "start_time": task.range.since.as_deref().map(|t| t.replace(' ', "T")),
                "end_time": task.range.until.as_deref().map(|t| t.replace(' ', "T")),
                "target_schema": req.target_schema,
                "target_table": req.target_table,
                "output_schema": req.output_schema,
                "countdown": req.countdown,
                "queue": "queue1",
                "date_range": range,
                "task_id": task_id,
            }
        }),
    )
}

fn listed(t: &tutti_store::LabelTask) -> Value {
    let m = &t.metrics;
    let c = &t.config;
    let get = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    let range = match (c.get("start_time"), c.get("end_time")) {
        (Some(Value::String(a)), Some(Value::String(b))) => {
            tutti_engine::bulk::TimeRange::parse(Some(a), Some(b))
                .map(|r| r.display())
                .unwrap_or_default()
        }
        _ => String::new(),
    };
    let created = time::OffsetDateTime::from_unix_timestamp(t.created_at.0 / 1000)
        .map(|d| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                d.year(),
                d.month() as u8,
                d.day(),
                d.hour(),
                d.minute(),
                d.second()
            )
        })
        .unwrap_or_default();
    // As the Audience service: the unique count and the rate are strings.
    let uniq = get("uniq_source_author");
    let rate = get("rate_of_label");
    json!({
        "task_id": t.task_id,
        "stat": t.stat,
        "prod_stat": t.prod_stat,
        "model_type": c.get("model_type"),
        "predict_type": c.get("predict_type"),
        "date_range": range,
        "target_table": c.get("target_schema"),
        "create_time": created,
        "peak_memory": get("peak_memory"),
        "length_receive_table": get("length_receive_table"),
        "length_output_table": get("length_output_table"),
        "length_prod_table": get("length_prod_table"),
        "result": if t.stat == "SUCCESS" { t.result.clone() } else { String::new() },
        "uniq_source_author": if uniq.is_null() { Value::Null } else { json!(uniq.to_string()) },
        "rate_of_label": rate.as_f64().map_or(Value::Null, |r| json!(format!("{r:.2}"))),
        "run_time": get("run_time"),
        "check_point": get("check_point"),
        "rows_labeled": get("rows_labeled"),
        "error": t.error,
    })
}

/// task_list: the most recent tasks, newest first.
#[utoipa::path(get, path = "/api/tasks/", tag = "tasks",
    responses((status = 200, description = "The recent tasks with their counters.")))]
pub async fn task_list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = allowed(&state, &headers).await {
        return r;
    }
    match state.store.list_label_tasks(100).await {
        Ok(list) => answer(
            200,
            json!({
                "error_code": 200,
                "error_message": "OK",
                "content": list.iter().map(listed).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot list labeling tasks");
            error(500, None, "cannot connect to state table")
        }
    }
}

/// check_status: a task's status, production status and result table.
#[utoipa::path(get, path = "/api/tasks/{task_id}", tag = "tasks",
    params(("task_id" = String, Path, description = "32 hex digits")),
    responses(
        (status = 200, description = "status, prod_status and result."),
        (status = 400, description = "The task id does not exist."),
    ))]
pub async fn check_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(task_id): Path<String>,
) -> Response {
    if let Err(r) = allowed(&state, &headers).await {
        return r;
    }
    let found = if tutti_engine::bulk::task::check_task_id(&task_id).is_ok() {
        state.store.get_label_task(&task_id).await
    } else {
        Ok(None)
    };
    match found {
        Ok(Some(t)) => answer(
            200,
            json!({
                "error_code": 200,
                "error_message": "OK",
                "status": t.stat,
                "prod_status": t.prod_stat,
                "result": if t.stat == "SUCCESS" { t.result.clone() } else { String::new() },
                "error": t.error,
            }),
        ),
        Ok(None) => error(
            400,
            Some("task_id"),
            format!(
                "task id is not exist, plz re-check the task id. Addition error message: no task {task_id}"
            ),
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a labeling task");
            error(500, None, "cannot connect to state table")
        }
    }
}

/// The query of sample_result.
#[derive(serde::Deserialize)]
pub struct SampleQuery {
    table_name: Option<String>,
}

/// sample_result: rows of the task's result or production table.
#[utoipa::path(get, path = "/api/tasks/{task_id}/sample/", tag = "tasks",
    params(
        ("task_id" = String, Path, description = "32 hex digits"),
        ("table_name" = String, Query, description = "wh_panel_mapping_{result} or the result table"),
    ),
    responses(
        (status = 200, description = "Sampled rows."),
        (status = 400, description = "The task id is not 32 digits."),
        (status = 404, description = "Empty result: wrong task and table."),
    ))]
pub async fn sample_result(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    Query(q): Query<SampleQuery>,
) -> Response {
    if let Err(r) = allowed(&state, &headers).await {
        return r;
    }
    if task_id.len() != 32 || !task_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return error(
            400,
            Some("task_id"),
            format!(
                "{task_id} is not in proper format, expect 32 digits get {} digits",
                task_id.len()
            ),
        );
    }
    let Some(table) = q.table_name.filter(|t| !t.is_empty()) else {
        return invalid("table_name", "field required", "value_error.missing");
    };
    let empty = || {
        error(
            404,
            None,
            "empty result, probably wrong combination of task_id and table_name, please check table state or use \
             /api/tasks/<task_id> first",
        )
    };
    let task = match state.store.get_label_task(&task_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return empty(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a labeling task");
            return error(500, None, "Cannot scrape data from result tables.");
        }
    };
    let Some(settings) = state.settings.labeling.clone() else {
        return empty();
    };
    let req: TaskRequest = match serde_json::from_value(task.config.clone()) {
        Ok(r) => r,
        Err(_) => return empty(),
    };
    let engine_task = match tasks::task_of(&settings, &req, &task_id) {
        Ok(t) => t,
        Err(r) => return refused(r),
    };
    let rt = tokio::runtime::Handle::current();
    let result = task.result.clone();
    let rows = tokio::task::spawn_blocking(move || {
        tutti_engine::bulk::task::sample(
            &rt,
            &engine_task.output,
            engine_task.output_schema.as_deref(),
            &result,
            &task_id,
            &table,
            20,
        )
    })
    .await;
    match rows {
        Ok(Ok(rows)) if !rows.is_empty() => {
            answer(200, json!({ "error_code": 200, "error_message": rows }))
        }
        Ok(Ok(_)) => empty(),
        Ok(Err(e)) => {
            tracing::error!(detail = ?e.detail, "sampling failed: {}", e.message);
            error(
                500,
                None,
                format!(
                    "Cannot scrape data from result tables. Additional error message: {}",
                    e.message
                ),
            )
        }
        Err(_) => error(500, None, "Cannot scrape data from result tables."),
    }
}
