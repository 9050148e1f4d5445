//! Bulk labeling tasks behind the Audience task API: configuration, the
//! queue that runs them one at a time in the background, and the resume of
//! unfinished tasks when the server starts.
//!
//! A task's request names schemas and a table; the databases themselves
//! come from the configuration ([`LabelingSettings`]), never from the
//! request. The task's rows, and the checkpoint committed with them, live
//! in the output database (its `state` table, as the Audience service
//! kept it); the store keeps the task list and the counters the API shows.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tutti_domain::time::Timestamp;
use tutti_engine::bulk::task::{Place, Task};
use tutti_engine::bulk::{Columns, Control, LabelError, Progress, TimeRange};
use tutti_store::{LabelTask, Store};

/// Where labeling tasks read and write, and their pattern files.
#[derive(Debug, Clone, Default)]
pub struct LabelingSettings {
    /// The input database URL; `{schema}` in it is replaced by the
    /// request's `target_schema` (otherwise the table is qualified with it).
    pub input_url: String,
    /// The output database URL; `{schema}` in it is replaced by the
    /// request's `output_schema` (otherwise the tables are made in that
    /// schema).
    pub output_url: String,
    /// Schema used when a request names none.
    pub input_schema: Option<String>,
    /// Output schema used when a request names none.
    pub output_schema: Option<String>,
    /// A folder of pattern files named after the model: `keyword_model.csv`.
    pub patterns_dir: PathBuf,
    /// Serve the task API without a token, as the Audience service did.
    pub open: bool,
}

impl LabelingSettings {
    /// Builds a URL from the Audience service's variables
    /// (`{prefix}_HOST`, `_PORT`, `_USER`, `_PASSWORD`, `_SCHEMA`), as a
    /// MySQL/MariaDB URL, if `{prefix}_HOST` is set.
    pub fn url_from_env(prefix: &str) -> Option<(String, Option<String>)> {
        let var = |k: &str| {
            std::env::var(format!("{prefix}_{k}"))
                .ok()
                .filter(|v| !v.is_empty())
        };
        let host = var("HOST")?;
        let port = var("PORT").unwrap_or_else(|| "3306".into());
        let user = var("USER").unwrap_or_else(|| "root".into());
        let auth = match var("PASSWORD") {
            Some(p) => format!("{}:{}", encode(&user), encode(&p)),
            None => encode(&user),
        };
        let schema = var("SCHEMA");
        Some((format!("mysql://{auth}@{host}:{port}/"), schema))
    }
}

/// Percent-encodes a URL's user or password.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A task request as accepted (the Audience `create_task` body).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskRequest {
    /// The pattern file's name (without `.csv`).
    pub model_type: String,
    /// The column to label.
    pub predict_type: String,
    /// First time included (`YYYY-MM-DD HH:MM:SS`).
    pub start_time: String,
    /// First time excluded.
    pub end_time: String,
    /// Schema (database) of the table to read.
    pub target_schema: String,
    /// The table to read.
    pub target_table: String,
    /// Schema (database) the results go to.
    pub output_schema: String,
    /// Seconds between labeling and the production step.
    pub countdown: u64,
}

/// Why a task cannot start, with the Audience code for it.
#[derive(Debug)]
pub struct Refusal {
    /// 400, 501 or 503.
    pub code: u16,
    /// The field at fault, if one is.
    pub field: Option<&'static str>,
    /// The message.
    pub message: String,
}

impl Refusal {
    fn new(code: u16, field: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            code,
            field,
            message: message.into(),
        }
    }
}

fn with_schema(url: &str, schema: &str) -> (String, bool) {
    if url.contains("{schema}") {
        (url.replace("{schema}", schema), true)
    } else {
        (url.to_owned(), false)
    }
}

/// The engine's task for a request under these settings.
pub fn task_of(
    settings: &LabelingSettings,
    req: &TaskRequest,
    task_id: &str,
) -> Result<Task, Refusal> {
    let range = TimeRange::parse(Some(&req.start_time), Some(&req.end_time)).map_err(|e| {
        let field = if e.message.starts_with("end_time") {
            "end_time"
        } else {
            "start_time"
        };
        Refusal::new(400, Some(field), e.message)
    })?;
    let model_ok = !req.model_type.is_empty()
        && req.model_type.len() <= 64
        && req
            .model_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !model_ok {
        return Err(Refusal::new(
            400,
            Some("model_type"),
            "model_type: use letters, digits, _ and - (the pattern file's name)",
        ));
    }
    let patterns = ["csv", "tsv"]
        .iter()
        .map(|ext| settings.patterns_dir.join(format!("{}.{ext}", req.model_type)))
        .find(|p| p.exists())
        .ok_or_else(|| {
            Refusal::new(
                501,
                Some("model_type"),
                format!(
                    "Cannot read pattern file, probably unknown file path or file is not exist, additional error message: \
                     no pattern file {}.csv for the model {}",
                    req.model_type, req.model_type
                ),
            )
        })
        .and_then(|p| {
            std::fs::read(&p).map_err(|e| {
                Refusal::new(
                    501,
                    Some("model_type"),
                    format!(
                        "Cannot read pattern file, probably unknown file path or file is not exist, additional error message: {e}"
                    ),
                )
            })
        })?;
    let name = |field: &'static str, v: &str| {
        tutti_engine::bulk::tables::identifier(field, v)
            .map_err(|e| Refusal::new(400, Some(field), e.message))
    };
    let target_schema = name("target_schema", &req.target_schema)?;
    let target_table = name("target_table", &req.target_table)?;
    let output_schema = name("output_schema", &req.output_schema)?;
    let column = name("predict_type", &req.predict_type)?;
    let (input_url, placed) = with_schema(&settings.input_url, &target_schema);
    let input =
        Place::parse("input", &input_url).map_err(|e| Refusal::new(503, None, e.message))?;
    let table = match (&input, placed) {
        (Place::Server(_), false) => format!("{target_schema}.{target_table}"),
        _ => target_table.clone(),
    };
    let (output_url, out_placed) = with_schema(&settings.output_url, &output_schema);
    let output =
        Place::parse("output", &output_url).map_err(|e| Refusal::new(503, None, e.message))?;
    let mut task = Task::new(patterns, input, output.clone(), &column);
    task.columns = Columns::audience(&column);
    task.table = Some(table);
    task.range = range;
    task.model_type = req.model_type.clone();
    task.task_id = Some(task_id.to_owned());
    task.result = Some(
        format!("{target_table}_{column}")
            .chars()
            .take(47)
            .collect(),
    );
    task.output_schema = match (&output, out_placed) {
        (Place::Server(_), false) => Some(output_schema),
        _ => None,
    };
    task.countdown = Duration::from_secs(req.countdown);
    Ok(task)
}

/// Checks that a task can start: patterns, range, names, that the input
/// table has the columns and the output database answers. Blocks: call it
/// off the runtime's workers.
pub fn check(task: &Task, rt: &tokio::runtime::Handle) -> Result<(), Refusal> {
    task.prepare(rt).map(drop).map_err(|e| refusal_of(&e))
}

fn refusal_of(e: &LabelError) -> Refusal {
    if let Some(d) = &e.detail {
        tracing::warn!(detail = %d, "labeling task refused: {}", e.message);
    }
    let m = &e.message;
    if m.starts_with("the pattern file") {
        Refusal::new(
            501,
            Some("model_type"),
            format!(
                "Cannot read pattern file, probably unknown file path or file is not exist, additional error message: {m}"
            ),
        )
    } else if m.contains("output database") {
        Refusal::new(
            503,
            Some("output_schema"),
            format!("Cannot connect to output schema, additional error message: {m}"),
        )
    } else if m.contains("no column") {
        Refusal::new(400, Some("predict_type"), m.clone())
    } else if m.contains("no table") {
        Refusal::new(400, Some("target_table"), m.clone())
    } else {
        Refusal::new(
            500,
            None,
            format!("failed to start a labeling task, additional error message: {m}"),
        )
    }
}

/// The counters as the store keeps them (the Audience `state` columns).
pub fn metrics_json(p: &Progress) -> serde_json::Value {
    serde_json::json!({
        "peak_memory": p.peak_mb.map(|m| (m * 100.0).round() / 100.0),
        "length_receive_table": p.received,
        "length_output_table": p.result_rows,
        "length_prod_table": p.production_rows,
        "uniq_source_author": p.unique_pairs,
        "rate_of_label": p.rate_of_label().map(|r| (r * 100.0).round() / 100.0),
        "run_time": (p.seconds * 1000.0).round() / 1000.0,
        "check_point": p.checkpoint_id,
        "checkpoint_rows": p.checkpoint_rows,
        "rows_labeled": p.labeled_rows,
    })
}

/// The queue of tasks to run, one at a time.
pub struct TaskQueue {
    tx: tokio::sync::mpsc::UnboundedSender<String>,
    rx: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<String>>>,
}

impl Default for TaskQueue {
    fn default() -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }
}

impl TaskQueue {
    /// Queues a stored task.
    pub fn push(&self, task_id: String) {
        let _ = self.tx.send(task_id);
    }

    /// Runs queued tasks until the process ends, first those left
    /// unfinished by an earlier process.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>, settings: Arc<LabelingSettings>) {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        match store.unfinished_label_tasks().await {
            Ok(tasks) => {
                for t in tasks {
                    tracing::info!(task = %t.task_id, "resuming a labeling task");
                    self.push(t.task_id);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list unfinished labeling tasks"),
        }
        while let Some(id) = rx.recv().await {
            run_one(&store, &settings, &id).await;
        }
    }
}

async fn run_one(store: &Arc<dyn Store>, settings: &Arc<LabelingSettings>, id: &str) {
    let task = match store.get_label_task(id).await {
        Ok(Some(t)) if t.stat == "PENDING" || t.stat == "RUNNING" => t,
        Ok(_) => return,
        Err(e) => {
            tracing::error!(error = %e, task = id, "cannot read a labeling task");
            return;
        }
    };
    let fail = |message: String, metrics: serde_json::Value| {
        let store = store.clone();
        let id = id.to_owned();
        async move {
            if let Err(e) = store
                .update_label_task(
                    &id,
                    "FAILURE",
                    None,
                    &metrics,
                    Some(&message),
                    tutti_store::now(),
                )
                .await
            {
                tracing::error!(error = %e, task = %id, "cannot record a failed labeling task");
            }
        }
    };
    let req: TaskRequest = match serde_json::from_value(task.config.clone()) {
        Ok(r) => r,
        Err(e) => {
            fail(
                format!("the stored request cannot be read: {e}"),
                task.metrics,
            )
            .await;
            return;
        }
    };
    let engine_task = match task_of(settings, &req, id) {
        Ok(t) => t,
        Err(r) => {
            fail(r.message, task.metrics).await;
            return;
        }
    };
    let _ = store
        .update_label_task(id, "RUNNING", None, &task.metrics, None, tutti_store::now())
        .await;
    let rt = tokio::runtime::Handle::current();
    let store2 = store.clone();
    let id2 = id.to_owned();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut prepared = engine_task.prepare(&rt)?;
        let mut last = Instant::now();
        let mut report = |p: &Progress| {
            let done = p.production_rows.is_some();
            if !done && last.elapsed() < Duration::from_millis(500) {
                return;
            }
            last = Instant::now();
            let (stat, prod) = if done {
                ("SUCCESS", Some("finish"))
            } else {
                ("RUNNING", None)
            };
            if let Err(e) = rt.block_on(store2.update_label_task(
                &id2,
                stat,
                prod,
                &metrics_json(p),
                None,
                tutti_store::now(),
            )) {
                tracing::warn!(error = %e, "cannot record a labeling task's progress");
            }
        };
        prepared.run(&Control::default(), &mut report)
    })
    .await;
    match outcome {
        Ok(Ok(p)) => {
            let _ = store
                .update_label_task(
                    id,
                    "SUCCESS",
                    Some("finish"),
                    &metrics_json(&p),
                    None,
                    tutti_store::now(),
                )
                .await;
            tracing::info!(task = id, rows = p.received, "labeling task finished");
        }
        Ok(Err(e)) => {
            if let Some(d) = &e.detail {
                tracing::error!(task = id, detail = %d, "labeling task failed: {}", e.message);
            }
            let metrics = store
                .get_label_task(id)
                .await
                .ok()
                .flatten()
                .map_or(serde_json::Value::Null, |t| t.metrics);
            fail(e.message, metrics).await;
        }
        Err(e) => {
            tracing::error!(task = id, error = %e, "labeling task panicked");
            fail("the task stopped unexpectedly".into(), task.metrics).await;
        }
    }
}

/// A new stored task for a checked request.
pub fn new_task(task_id: &str, req: &TaskRequest, result: &str) -> LabelTask {
    let now = tutti_store::now();
    LabelTask {
        task_id: task_id.to_owned(),
        config: serde_json::to_value(req).unwrap_or_default(),
        stat: "PENDING".into(),
        prod_stat: None,
        result: result.to_owned(),
        metrics: serde_json::json!({}),
        error: None,
        created_at: now,
        updated_at: Timestamp(now.0),
    }
}
