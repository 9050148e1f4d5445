//! The background runner: takes up every run that is not finished and
//! moves it on, step by step, never inside an HTTP request.
//!
//! A pass over a run reads its workflow from the store, opens the run's
//! file ([`RunData`]) and runs every step whose inputs are ready, in
//! workflow order. Automatic steps run to the end and commit their outputs
//! with their ledger entry; a human step becomes a job (made once, in one
//! transaction with the link to its step) and waits: when every task of the
//! job is decided, its answers and labels become the step's two tables and
//! the workflow goes on. Progress is reported to the store in batches so
//! that lists and the API show per-step status.
//!
//! What is done is read from the run's file, not from the report, so a
//! runner killed at any moment and started again carries on from the last
//! committed step: nothing is lost and nothing is done twice.

use crate::rundata::{Done, RunData, StepError};
use crate::sql::SqlLimits;
use crate::table::Table;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tutti_domain::ids::RunId;
use tutti_domain::job::{CompareSpec, JobConfig, JobSpec, PolicySpec};
use tutti_domain::time::Timestamp;
use tutti_domain::workflow::{
    self, Crowd, Format, HumanCompare, HumanLabel, ModelCall, Node, Op, Workflow,
};
use tutti_store::{
    ImportRow, NodeStatus, Run, RunNode, RunReport, RunStatus, Store, StoreError, now,
};

/// How the runner works.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Where run files live.
    pub dir: PathBuf,
    /// Limits on each step's query.
    pub sql: SqlLimits,
    /// Most rows a file read into a table may have.
    pub max_rows: u64,
    /// How often runs waiting for people are looked at.
    pub poll: Duration,
    /// Seconds between webhook tries, doubling each time.
    pub webhook_backoff: Duration,
    /// Tries before an announcement is given up.
    pub webhook_attempts: i64,
    /// Outside databases workflows may read and write, by name.
    pub databases: crate::extdb::Databases,
    /// This server's address as model services reach it (for callbacks).
    pub public_url: String,
    /// The Mechanical Turk connection, when `3a_amt` steps may post work
    /// there (the connector itself runs beside the runner).
    pub mturk: Option<crate::mturk::Settings>,
    /// Where model calls and webhooks may go (no internal address unless
    /// the operator allows it).
    pub outbound: crate::outbound::Outbound,
}

impl RunnerSettings {
    /// Defaults with run files under `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            sql: SqlLimits::default(),
            max_rows: 50_000_000,
            poll: Duration::from_millis(500),
            webhook_backoff: Duration::from_secs(2),
            webhook_attempts: 8,
            databases: crate::extdb::Databases::new(),
            public_url: "http://127.0.0.1:8080".into(),
            mturk: None,
            outbound: crate::outbound::Outbound::default(),
        }
    }
}

/// The runner: one per process.
pub struct Runner {
    store: Arc<dyn Store>,
    settings: RunnerSettings,
    busy: Mutex<HashSet<RunId>>,
    wake: Notify,
    http: reqwest::Client,
}

/// How long a batch of step reports may wait before it is written.
const REPORT_EVERY: Duration = Duration::from_millis(250);

/// Rows of a human step's results read per page.
const PAGE: u32 = 1000;

fn ts(ms: i64) -> Option<Timestamp> {
    (ms > 0).then_some(Timestamp(ms))
}

/// The file a run's tables live in.
pub fn run_path(dir: &std::path::Path, id: RunId) -> PathBuf {
    dir.join(format!("run-{}.sqlite", id.0))
}

/// A run being advanced in this process; dropping it frees the run.
struct Busy(Arc<Runner>, RunId);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

/// The parts of a Cymphony instructions file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Instructions {
    /// `<short-instructions>`.
    pub short: String,
    /// `<long-instructions>`.
    pub long: String,
}

fn between(html: &str, tag: &str) -> Option<String> {
    // ASCII lower-casing keeps every byte where it was, so offsets found in
    // the copy are offsets in `html` (full Unicode lower-casing changes
    // lengths: `İ` has two bytes, its lower case three).
    let lower = html.to_ascii_lowercase();
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = lower.find(&open)? + open.len();
    let end = lower[start..].find(&close)? + start;
    Some(html[start..end].trim().to_owned())
}

/// Reads `<short-instructions>` and `<long-instructions>` from an
/// instructions file (the whole file is the short text when it has
/// neither).
pub fn instructions(html: &str) -> Instructions {
    let short = between(html, "short-instructions");
    let long = between(html, "long-instructions");
    match (short, long) {
        (None, None) => Instructions {
            short: html.trim().to_owned(),
            long: String::new(),
        },
        (s, l) => Instructions {
            short: s.unwrap_or_default(),
            long: l.unwrap_or_default(),
        },
    }
}

/// Reads `<design-layout>` from a layout file (the whole file when the tag
/// is missing).
pub fn layout(html: &str) -> String {
    between(html, "design-layout").unwrap_or_else(|| html.trim().to_owned())
}

/// Whether a file is a Cymphony instructions file (it has the
/// instruction tags).
fn has_instructions(html: &str) -> bool {
    let lower = html.to_ascii_lowercase();
    lower.contains("<short-instructions>") || lower.contains("<long-instructions>")
}

/// Whether a file is a Cymphony layout file.
fn has_layout(html: &str) -> bool {
    html.to_ascii_lowercase().contains("<design-layout>")
}

/// Cymphony's layout for a step without a layout file: the row's columns
/// as a table, in the table's order, without `_id` (each value escaped
/// when the task is shown). `None` when a column's name cannot be a
/// placeholder.
pub fn default_layout(columns: &[String]) -> Option<String> {
    let shown: Vec<&String> = columns
        .iter()
        .filter(|c| *c != "_id" && *c != "date_creation")
        .collect();
    if shown.is_empty() || shown.iter().any(|c| c.contains(['{', '}', '$'])) {
        return None;
    }
    let mut s = String::from("<div class=\"wide\"><table class=\"item-row\"><thead><tr>");
    for c in &shown {
        s.push_str("<th>");
        s.push_str(&tutti_domain::template::escape_html(c));
        s.push_str("</th>");
    }
    s.push_str("</tr></thead><tbody><tr>");
    for c in &shown {
        s.push_str("<td>${");
        s.push_str(c);
        s.push_str("}</td>");
    }
    s.push_str("</tr></tbody></table></div>");
    Some(s)
}

/// A human step's job, as the workflow describes it (pairwise when
/// `compare` is given); `columns` are its input table's.
pub fn job_config(
    run: &Run,
    node: &Node,
    h: &HumanLabel,
    compare: Option<&HumanCompare>,
    files: &HashMap<String, String>,
    columns: &[String],
) -> Result<JobConfig, String> {
    let text = |name: &Option<String>| -> Result<Option<String>, String> {
        match name {
            None => Ok(None),
            Some(f) => files
                .get(f)
                .cloned()
                .map(Some)
                .ok_or_else(|| format!("the file {f} was not uploaded with the run")),
        }
    };
    let mut ins_file = text(&h.instructions)?;
    let mut lay_file = text(&h.layout)?;
    // Cymphony tells the two files apart by what they hold: a layout file
    // named first is still the layout.
    if ins_file
        .as_deref()
        .is_some_and(|f| has_layout(f) && !has_instructions(f))
        && lay_file
            .as_deref()
            .is_none_or(|f| has_instructions(f) || !has_layout(f))
    {
        std::mem::swap(&mut ins_file, &mut lay_file);
    }
    let ins = ins_file.map(|s| instructions(&s)).unwrap_or_default();
    let lay = match lay_file.map(|s| layout(&s)).filter(|s| !s.is_empty()) {
        Some(l) => Some(l),
        None if compare.is_none() => default_layout(columns),
        None => None,
    };
    let spec = JobSpec {
        name: format!("{} · {}", run.name, node.label()),
        question: h.question.clone(),
        answers: (compare.is_none() && !h.free_text).then(|| h.answers.clone()),
        free_text: h.free_text && compare.is_none(),
        short_instructions: ins.short,
        long_instructions: ins.long,
        layout: lay,
        policy: PolicySpec {
            k: h.k,
            n: h.n,
            l: h.stewards.map(|s| s.0),
            m: h.stewards.map(|s| s.1),
            time_limit_secs: h.time_limit_secs,
            aggregation: None,
            gold: None,
            adaptive: None,
        },
        compare: compare.map(|c| CompareSpec {
            left: c.left.clone(),
            right: c.right.clone(),
            tie: Some(c.tie),
            scale: c.scale,
        }),
    };
    let mut config = JobConfig::parse(spec).map_err(|e| format!("{}: {}", e.field, e.message))?;
    config.crowd = h.crowd;
    config.hit = h.hit.clone();
    Ok(config)
}

impl Runner {
    /// A runner over `store`.
    pub fn new(store: Arc<dyn Store>, settings: RunnerSettings) -> Arc<Self> {
        Arc::new(Self {
            store,
            busy: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            http: settings.outbound.client(Duration::from_secs(30)),
            settings,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &RunnerSettings {
        &self.settings
    }

    /// Asks the runner to look at runs now (a run was made, cancelled or
    /// retried).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Opens (creating if needed) a run's file, to advance the run.
    pub async fn open(&self, id: RunId) -> Result<RunData, sqlx::Error> {
        RunData::open(&run_path(&self.settings.dir, id)).await
    }

    /// A run's file, opened only to read (see [`RunData::open_to_read`]).
    pub async fn open_to_read(&self, id: RunId) -> Result<RunData, sqlx::Error> {
        RunData::open_to_read(&run_path(&self.settings.dir, id)).await
    }

    /// Runs forever: every `poll` (or when woken), starts a pass over
    /// each run that needs one and is not already being advanced here.
    pub async fn run(self: Arc<Self>) {
        loop {
            match self.store.runs_to_advance(now()).await {
                Ok(ids) => {
                    for id in ids {
                        if !self
                            .busy
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(id)
                        {
                            continue;
                        }
                        let me = self.clone();
                        tokio::spawn(async move {
                            // Freed however the pass ends, a panic included.
                            let _free = Busy(me.clone(), id);
                            if let Err(e) = me.advance(id).await {
                                tracing::error!(run = id.0, error = ?e, "advancing a run failed");
                            }
                        });
                    }
                }
                Err(e) => tracing::error!(error = ?e, "listing runs to advance failed"),
            }
            let _ = tokio::time::timeout(self.settings.poll, self.wake.notified()).await;
        }
    }

    /// Advances a run until it has to wait (for people, the run it follows
    /// or an announcement's next try) or ends. Returns the status reported.
    pub async fn advance(&self, id: RunId) -> anyhow::Result<Option<RunStatus>> {
        let Some(run) = self.store.get_run(id).await? else {
            return Ok(None);
        };
        if run.status.is_final() {
            if run.webhook_state.as_deref() == Some("pending") {
                self.announce(&run).await?;
            }
            return Ok(Some(run.status));
        }
        if let Some(prev) = run.after_run {
            let before = self.store.get_run(prev).await?;
            match before.map(|r| r.status) {
                Some(RunStatus::Completed) => {}
                Some(s) if s.is_final() => {
                    let msg = format!("run {prev}, which this run follows, ended {}", s.as_str());
                    self.report(&run, RunStatus::Failed, Some(msg), Vec::new())
                        .await?;
                    return Ok(Some(RunStatus::Failed));
                }
                Some(_) => return Ok(Some(RunStatus::Queued)),
                None => {
                    let msg = format!("run {prev}, which this run follows, does not exist");
                    self.report(&run, RunStatus::Failed, Some(msg), Vec::new())
                        .await?;
                    return Ok(Some(RunStatus::Failed));
                }
            }
        }
        let format = Format::parse(&run.format).unwrap_or(Format::Cy);
        let wf = match workflow::parse(format, &run.program) {
            Ok(w) => w,
            Err(e) => {
                self.report(&run, RunStatus::Failed, Some(e.to_string()), Vec::new())
                    .await?;
                return Ok(Some(RunStatus::Failed));
            }
        };
        let mut data = self.open(id).await?;
        let result = self.pass(&run, &wf, &mut data).await;
        data.close().await;
        let status = result?;
        if status.is_final()
            && let Some(fresh) = self.store.get_run(id).await?
            && fresh.webhook_state.as_deref() == Some("pending")
        {
            self.announce(&fresh).await?;
        }
        Ok(Some(status))
    }

    async fn report(
        &self,
        run: &Run,
        status: RunStatus,
        error: Option<String>,
        nodes: Vec<RunNode>,
    ) -> anyhow::Result<bool> {
        let report = RunReport {
            generation: run.generation,
            status,
            error,
            nodes,
            now: now(),
        };
        Ok(self.store.report_run(run.id, &report).await?)
    }

    async fn pass(
        &self,
        run: &Run,
        wf: &Workflow,
        data: &mut RunData,
    ) -> anyhow::Result<RunStatus> {
        let stored = self.store.run_nodes(run.id).await?;
        for n in &stored {
            if n.status == NodeStatus::Retrying {
                data.reset_failed(usize::try_from(n.index).unwrap_or(usize::MAX))
                    .await?;
            }
        }
        let mut known: HashMap<usize, RunNode> = stored
            .into_iter()
            .map(|n| (usize::try_from(n.index).unwrap_or(usize::MAX), n))
            .collect();
        let mut producer: HashMap<String, usize> = HashMap::new();
        for (i, n) in wf.nodes.iter().enumerate() {
            for o in &n.outputs {
                producer.insert(o.to_lowercase(), i);
            }
        }
        let mut done: HashMap<usize, Done> = data
            .done()
            .await?
            .into_iter()
            .map(|d| (d.node, d))
            .collect();
        let failed: HashMap<usize, String> = data
            .failed()
            .await?
            .into_iter()
            .map(|f| (f.node, f.error))
            .collect();
        let mut changed: Vec<RunNode> = Vec::new();
        let mut last_report = Instant::now();
        let node_of = |i: usize, known: &HashMap<usize, RunNode>| -> RunNode {
            known.get(&i).cloned().unwrap_or(RunNode {
                index: i as i64,
                op: wf.nodes[i].op.name().to_owned(),
                label: wf.nodes[i].label(),
                status: NodeStatus::Idle,
                rows_in: 0,
                rows_out: 0,
                started_at: None,
                finished_at: None,
                error: None,
                job_id: None,
            })
        };
        // Bring the report in line with the run's file (a crash may have
        // come between a commit and its report).
        for (i, d) in &done {
            let mut n = node_of(*i, &known);
            if n.status != NodeStatus::Completed {
                n.status = NodeStatus::Completed;
                n.rows_in = d.rows_in;
                n.rows_out = d.rows_out;
                n.started_at = ts(d.started_at);
                n.finished_at = ts(d.finished_at);
                n.error = None;
                known.insert(*i, n.clone());
                changed.push(n);
            }
        }
        let mut first_failure: Option<String> = None;
        for (i, e) in &failed {
            let mut n = node_of(*i, &known);
            if first_failure.is_none() {
                first_failure = Some(format!("step {} ({}): {e}", i + 1, n.op));
            }
            if n.status != NodeStatus::Failed {
                n.status = NodeStatus::Failed;
                n.error = Some(e.clone());
                known.insert(*i, n.clone());
                changed.push(n);
            }
        }
        if let Some(e) = first_failure {
            self.report(run, RunStatus::Failed, Some(e), changed)
                .await?;
            return Ok(RunStatus::Failed);
        }
        if run.status == RunStatus::Queued
            && !self
                .report(run, RunStatus::Running, None, std::mem::take(&mut changed))
                .await?
        {
            return Ok(RunStatus::Cancelled);
        }
        let mut waiting = false;
        for (i, node) in wf.nodes.iter().enumerate() {
            if done.contains_key(&i) {
                continue;
            }
            let ready = node.inputs.iter().all(|v| {
                producer
                    .get(&v.to_lowercase())
                    .is_some_and(|p| done.contains_key(p))
            });
            if !ready {
                continue;
            }
            let started = now();
            // `None`: the step waits (for people, or a model's callbacks).
            // A panic in a step is a bug, but it fails that step, not the
            // runner: the run is reported failed and freed.
            let step = std::panic::AssertUnwindSafe(async {
                Ok::<_, anyhow::Error>(match &node.op {
                    Op::ModelCall(m) if m.callback => {
                        match with_url(m, &run.params, &self.settings.outbound) {
                            Ok(m) => self
                                .model_callback(run, i, node, &m, data)
                                .await
                                .transpose(),
                            Err(e) => Some(Err(e)),
                        }
                    }
                    Op::HumanLabel(h) => {
                        self.human(run, i, node, h, None, data, &mut known).await?
                    }
                    Op::HumanCompare(c) => {
                        self.human(run, i, node, &c.as_label(), Some(c), data, &mut known)
                            .await?
                    }
                    _ => Some(
                        self.automatic_shown(run, i, node, data, node_of(i, &known), started)
                            .await,
                    ),
                })
            });
            let outcome = match futures_util::FutureExt::catch_unwind(step).await {
                Ok(outcome) => outcome?,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(run = run.id.0, step = i + 1, panic = %what, "a workflow step panicked");
                    Some(Err(StepError::Limit(
                        "the step failed on an internal error (logged for the operator)".to_owned(),
                    )))
                }
            };
            let Some(outcome) = outcome else {
                waiting = true;
                let mut n = node_of(i, &known);
                if n.status != NodeStatus::Waiting {
                    n.status = NodeStatus::Waiting;
                    n.started_at = n.started_at.or(Some(started));
                    known.insert(i, n.clone());
                    changed.push(n);
                }
                continue;
            };
            let mut n = node_of(i, &known);
            match outcome {
                Ok(d) => {
                    n.status = NodeStatus::Completed;
                    n.rows_in = d.rows_in;
                    n.rows_out = d.rows_out;
                    n.started_at = n.started_at.or(ts(d.started_at));
                    n.finished_at = ts(d.finished_at);
                    n.error = None;
                    done.insert(i, d);
                    known.insert(i, n.clone());
                    changed.push(n);
                }
                Err(StepError::Storage(e)) if !refused_by_database(&e) => return Err(e.into()),
                Err(e) => {
                    let message = clean(&step_message(&e));
                    data.fail(i, &message).await?;
                    n.status = NodeStatus::Failed;
                    n.error = Some(message.clone());
                    n.started_at = n.started_at.or(Some(started));
                    n.finished_at = Some(now());
                    changed.push(n.clone());
                    let error = format!("step {} ({}): {message}", i + 1, n.op);
                    self.report(run, RunStatus::Failed, Some(error), changed)
                        .await?;
                    return Ok(RunStatus::Failed);
                }
            }
            if last_report.elapsed() >= REPORT_EVERY {
                last_report = Instant::now();
                if !self
                    .report(run, RunStatus::Running, None, std::mem::take(&mut changed))
                    .await?
                {
                    return Ok(RunStatus::Cancelled);
                }
            }
        }
        let status = if done.len() == wf.nodes.len() {
            RunStatus::Completed
        } else if waiting {
            RunStatus::Waiting
        } else {
            RunStatus::Running
        };
        if !self.report(run, status, None, changed).await? {
            return Ok(RunStatus::Cancelled);
        }
        Ok(status)
    }

    /// Runs an automatic step; one that may take a while (it reads a file,
    /// calls out, or works on many rows) and is still going after a moment
    /// is shown as running. Small table steps, the bulk of a large run,
    /// finish well within that moment.
    async fn automatic_shown(
        &self,
        run: &Run,
        i: usize,
        node: &Node,
        data: &mut RunData,
        mut marker: RunNode,
        started: Timestamp,
    ) -> Result<Done, StepError> {
        let mut rows_in = 0;
        for input in &node.inputs {
            rows_in += data.table(input).await?.map_or(0, |t| t.rows);
        }
        if matches!(node.op, Op::Sql { .. } | Op::Sample { .. }) && rows_in < 100_000 {
            return self.automatic(run, i, node, data).await;
        }
        marker.status = NodeStatus::Running;
        marker.started_at = Some(started);
        let report = RunReport {
            generation: run.generation,
            status: RunStatus::Running,
            error: None,
            nodes: vec![marker],
            now: started,
        };
        let (store, id) = (self.store.clone(), run.id);
        let shown = tokio::spawn(async move {
            tokio::time::sleep(REPORT_EVERY).await;
            let _ = store.report_run(id, &report).await;
        });
        let r = self.automatic(run, i, node, data).await;
        // Quick steps are never shown running; a report already under way
        // lands before the step's own.
        shown.abort();
        let _ = shown.await;
        r
    }

    async fn automatic(
        &self,
        run: &Run,
        i: usize,
        node: &Node,
        data: &mut RunData,
    ) -> Result<Done, StepError> {
        let out = node.outputs.first().map(String::as_str).unwrap_or("");
        match &node.op {
            Op::ReadTable { file } => {
                let bytes = self
                    .store
                    .run_file(run.id, file)
                    .await
                    .map_err(|e| StepError::Storage(store_err(e)))?
                    .ok_or_else(|| {
                        StepError::Limit(format!("the file {file} was not uploaded with the run"))
                    })?;
                data.read_csv(i, out, file, &bytes, self.settings.max_rows)
                    .await
            }
            Op::ReadRun { run: other, table } => {
                let other = RunId(*other);
                let source = self
                    .store
                    .get_run(other)
                    .await
                    .map_err(|e| StepError::Storage(store_err(e)))?;
                match source {
                    Some(r)
                        if r.workspace_id == run.workspace_id
                            && r.status == RunStatus::Completed => {}
                    Some(r) if r.workspace_id == run.workspace_id => {
                        return Err(StepError::Limit(format!(
                            "run {other} is {}; its tables are read once it has completed",
                            r.status.as_str()
                        )));
                    }
                    _ => {
                        return Err(StepError::Limit(format!(
                            "run {other} is not a run of this workspace"
                        )));
                    }
                }
                let mut theirs = self.open(other).await?;
                let rows = theirs.all_rows(table).await;
                theirs.close().await;
                let Some(t) = rows? else {
                    return Err(StepError::Limit(format!(
                        "run {other} has no table {table}"
                    )));
                };
                let n = t.rows.len() as i64;
                data.put_tables(i, n, &[(out, &t)]).await
            }
            Op::ReadDatabase {
                database,
                query,
                params,
            } => {
                let params: Vec<Value> = params
                    .iter()
                    .map(|p| match p {
                        Value::String(s) => Value::String(fill_raw(s, &run.params)),
                        other => other.clone(),
                    })
                    .collect();
                let (tx, mut rx) = tokio::sync::mpsc::channel(4);
                let (cols_tx, cols_rx) = tokio::sync::oneshot::channel();
                let dbs = self.settings.databases.clone();
                let req = crate::extdb::ReadRequest {
                    name: database.clone(),
                    query: query.clone(),
                    params,
                    batch: 5000,
                    max_rows: self.settings.max_rows,
                };
                let failed = tx.clone();
                tokio::spawn(async move {
                    if let Err(e) = crate::extdb::read(&dbs, &req, tx, cols_tx).await {
                        let _ = failed.send(Err(e.to_string())).await;
                    }
                });

                let columns = match cols_rx.await {
                    Ok(c) => c,
                    Err(_) => {
                        // It failed before it had columns: its error is next.
                        let msg = match rx.recv().await {
                            Some(Err(m)) => m,
                            _ => format!("database {database} gave no answer"),
                        };
                        return Err(StepError::Limit(msg));
                    }
                };
                data.load_rows(i, out, &columns, rx).await
            }
            Op::WriteDatabase { database, table } => {
                let input = &node.inputs[0];
                let t = data
                    .all_rows(input)
                    .await?
                    .ok_or_else(|| StepError::Limit(format!("the table {input} was not made")))?;
                let key = format!("run-{}-{}-step-{i}", run.id, run.created_at.0);
                crate::extdb::write(
                    &self.settings.databases,
                    database,
                    table,
                    &key,
                    &t.columns,
                    &t.rows,
                )
                .await
                .map_err(|e| StepError::Limit(e.to_string()))?;
                let n = t.rows.len() as i64;
                Ok(data.record(i, n, n, now().0).await?)
            }
            Op::Webhook { url, batch_size } => {
                let url = fill_raw(url, &run.params);
                self.settings.outbound.check(&url).map_err(|e| {
                    StepError::Limit(format!("the webhook URL: {e} (is a parameter missing?)"))
                })?;
                self.webhook_step(run, i, node, &url, *batch_size, data)
                    .await
            }
            Op::Sample { n, seed } => {
                data.sample(i, &node.inputs[0], out, *n, seed.unwrap_or(0))
                    .await
            }
            Op::Sql { query } => {
                let inputs: Vec<&str> = node.inputs.iter().map(String::as_str).collect();
                let query = fill_params(query, &run.params);
                data.sql(i, &inputs, out, &query, self.settings.sql).await
            }
            Op::WriteTable { file } => data.write_csv(i, &node.inputs[0], file).await,
            Op::ModelCall(m) => {
                let m = with_url(m, &run.params, &self.settings.outbound)?;
                self.model_call(run, i, node, &m, data).await
            }
            Op::HumanLabel(_) | Op::HumanCompare(_) => {
                unreachable!("human steps are run by Runner::human")
            }
            Op::KeywordLabel(k) => self.keyword_label(run, i, node, k, data).await,
            Op::Aggregate { method, k } => {
                let input = &node.inputs[0];
                let t = data
                    .all_rows(input)
                    .await?
                    .ok_or_else(|| StepError::Limit(format!("the table {input} was not made")))?;
                let labels = aggregate_answers(&t, method, *k).map_err(StepError::Limit)?;
                data.put_tables(i, t.rows.len() as i64, &[(out, &labels)])
                    .await
            }
        }
    }

    /// `keyword_label`: the bulk labeling pipeline reads the input table
    /// from the run's file and labels into a work file beside it, whose
    /// checkpoints let a step cut short carry on; the finished tables are
    /// then copied into the run with the step's record.
    async fn keyword_label(
        &self,
        run: &Run,
        i: usize,
        node: &Node,
        k: &tutti_domain::workflow::KeywordLabel,
        data: &mut RunData,
    ) -> Result<Done, StepError> {
        use crate::bulk::task::{Place, Task};
        let started = now().0;
        let patterns = self
            .store
            .run_file(run.id, &k.patterns)
            .await
            .map_err(|e| StepError::Storage(store_err(e)))?
            .ok_or_else(|| {
                StepError::Limit(format!(
                    "the pattern file {} was not uploaded with the run",
                    k.patterns
                ))
            })?;
        let run_path = data.path().to_owned();
        let stem = run_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let work = run_path.with_file_name(format!("{stem}-step{i}-labels.sqlite"));
        let mut task = Task::new(
            patterns,
            Place::Sqlite(run_path.display().to_string()),
            Place::Sqlite(work.display().to_string()),
            &k.column,
        );
        task.table = Some(node.inputs[0].clone());
        task.columns = crate::bulk::Columns {
            id: k.id_column.clone(),
            source: k.source_column.clone(),
            author: k.author_column.clone(),
            field: k.column.clone(),
            time: k.time_column.clone(),
        };
        task.whole_word = k.whole_word;
        task.result = Some("labels".into());
        let rt = tokio::runtime::Handle::current();
        let w = work.clone();
        let labeled = tokio::task::spawn_blocking(move || -> Result<u64, String> {
            if let Some(rows) = finished_labels(&w) {
                return Ok(rows);
            }
            let mut prepared = task.prepare(&rt).map_err(|e| e.message)?;
            let p = prepared
                .run(&crate::bulk::Control::default(), &mut |_| {})
                .map_err(|e| e.message)?;
            Ok(p.received)
        })
        .await
        .map_err(|e| StepError::Limit(format!("labeling stopped unexpectedly: {e}")))?
        .map_err(StepError::Limit)?;
        let done = data
            .put_labels(i, &work, &node.outputs, labeled as i64, started)
            .await?;
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let mut p = work.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
        Ok(done)
    }

    /// Stops a step between batches when the run was cancelled or retried
    /// since this pass read it.
    async fn still_wanted(&self, run: &Run) -> Result<(), StepError> {
        match self.store.get_run(run.id).await {
            Ok(Some(r)) if r.generation == run.generation && r.status != RunStatus::Cancelled => {
                Ok(())
            }
            Ok(_) => Err(StepError::Limit("the run was cancelled or retried".into())),
            Err(e) => Err(StepError::Storage(store_err(e))),
        }
    }

    /// A webhook step: the input's rows POSTed in batches, each with an
    /// idempotency key and, when the run has a webhook secret, signed; a
    /// delivered batch is recorded and never sent again.
    async fn webhook_step(
        &self,
        run: &Run,
        i: usize,
        node: &Node,
        url: &str,
        batch_size: u32,
        data: &mut RunData,
    ) -> Result<Done, StepError> {
        let started = now().0;
        let input = &node.inputs[0];
        let info = data
            .table(input)
            .await?
            .ok_or_else(|| StepError::Limit(format!("the table {input} was not made")))?;
        let size = i64::from(batch_size);
        let batches = (info.rows + size - 1) / size;
        let delivered: HashSet<i64> = data.batches(i).await?.into_iter().map(|(b, _)| b).collect();
        for b in 0..batches {
            if delivered.contains(&b) {
                continue;
            }
            self.still_wanted(run).await?;
            let Some(rows) = data.rows(input, b * size, size).await? else {
                break;
            };
            let key = format!("run-{}-{}-step-{i}-batch-{b}", run.id, run.created_at.0);
            let objects: Vec<Value> = rows
                .rows
                .iter()
                .map(|r| {
                    Value::Object(
                        info.columns
                            .iter()
                            .cloned()
                            .zip(r.iter().cloned())
                            .collect(),
                    )
                })
                .collect();
            let body = serde_json::json!({
                "idempotency_key": key,
                "run_id": run.id,
                "step": i,
                "table": input,
                "batch": b,
                "batches": batches,
                "rows": objects,
            })
            .to_string();
            let mut last = String::new();
            let mut sent = false;
            for attempt in 0..4u32 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(500 << (attempt - 1))).await;
                }
                let mut req = self
                    .http
                    .post(url)
                    .header("content-type", "application/json")
                    .header("idempotency-key", &key);
                if let Some(secret) = &run.webhook_secret {
                    let sig = crate::hmac::sign(secret.as_bytes(), body.as_bytes());
                    req = req.header("x-tutti-signature", format!("sha256={sig}"));
                }
                match req.body(body.clone()).send().await {
                    Ok(r) if r.status().is_success() => {
                        sent = true;
                        break;
                    }
                    Ok(r) => {
                        last = format!("status {}", r.status().as_u16());
                        let code = r.status().as_u16();
                        if !(matches!(code, 408 | 409 | 429) || code >= 500) {
                            break;
                        }
                    }
                    Err(_) => last = "the connection failed".into(),
                }
            }
            if !sent {
                return Err(StepError::Limit(format!(
                    "the webhook at {url} did not take batch {b}: {last}"
                )));
            }
            data.mark_batch(i, b, rows.rows.len() as i64).await?;
        }
        Ok(data.record(i, info.rows, info.rows, started).await?)
    }

    /// A model step: batches not yet committed are sent in order, each
    /// batch's results committed with its ledger entry.
    async fn model_call(
        &self,
        run: &Run,
        i: usize,
        node: &Node,
        m: &ModelCall,
        data: &mut RunData,
    ) -> Result<Done, StepError> {
        let started = now().0;
        let shape = ModelShape::of(node, m, data).await?;
        let committed: HashSet<i64> = data.batches(i).await?.into_iter().map(|(b, _)| b).collect();
        for b in 0..shape.batches {
            if committed.contains(&b) {
                continue;
            }
            self.still_wanted(run).await?;
            let Some(rows) = data.rows(&shape.input, b * shape.size, shape.size).await? else {
                break;
            };
            let key = batch_key(run, i, b);
            let body = shape.request(run, i, b, &key, &rows, None);
            let results =
                crate::model::call_batch(&self.http, m, &key, &body, rows.rows.len()).await?;
            let out_rows = shape.rows(m, rows.rows, results);
            data.put_batch(i, b, &shape.out, &shape.columns, &out_rows)
                .await?;
        }
        Ok(data
            .finish_batched(i, &shape.out, &shape.columns, shape.rows_in, started)
            .await?)
    }

    /// A model step answered by callback: every batch not yet committed is
    /// sent (again once its timeout has passed without an answer) with a
    /// signed callback URL; `None` while answers are awaited. The answers
    /// arrive through [`Runner::accept_results`].
    async fn model_callback(
        &self,
        run: &Run,
        i: usize,
        node: &Node,
        m: &ModelCall,
        data: &mut RunData,
    ) -> Result<Option<Done>, StepError> {
        let started = now().0;
        let shape = ModelShape::of(node, m, data).await?;
        let committed: HashSet<i64> = data.batches(i).await?.into_iter().map(|(b, _)| b).collect();
        if committed.len() as i64 >= shape.batches {
            return Ok(Some(
                data.finish_batched(i, &shape.out, &shape.columns, shape.rows_in, started)
                    .await?,
            ));
        }
        let sent = data.sent(i).await?;
        let timeout = i64::from(m.timeout_secs) * 1000;
        for b in 0..shape.batches {
            if committed.contains(&b) || sent.get(&b).is_some_and(|at| now().0 - at < timeout) {
                continue;
            }
            let Some(rows) = data.rows(&shape.input, b * shape.size, shape.size).await? else {
                break;
            };
            let key = batch_key(run, i, b);
            let token = crate::hmac::sign(run.callback_secret.as_bytes(), key.as_bytes());
            let callback = format!(
                "{}/api/v1/runs/{}/nodes/{i}/batches/{b}/results?token={token}",
                self.settings.public_url, run.id
            );
            let body = shape.request(run, i, b, &key, &rows, Some(&callback));
            crate::model::send_batch(&self.http, m, &key, &body).await?;
            data.mark_sent(i, b, now().0).await?;
        }
        Ok(None)
    }

    /// Takes a model service's answer to one batch of a callback step:
    /// checks the URL's signature, then commits the batch's rows with its
    /// ledger entry, once (an answer to a batch already committed changes
    /// nothing). Returns whether it was new.
    pub async fn accept_results(
        &self,
        run: &Run,
        node: usize,
        batch: i64,
        token: &str,
        body: &Value,
    ) -> Result<bool, CallbackError> {
        let key = batch_key(run, node, batch);
        let want = crate::hmac::sign(run.callback_secret.as_bytes(), key.as_bytes());
        if !same(want.as_bytes(), token.as_bytes()) {
            return Err(CallbackError::BadToken);
        }
        let format = Format::parse(&run.format).unwrap_or(Format::Cy);
        let wf = workflow::parse(format, &run.program).map_err(|_| CallbackError::NoSuchStep)?;
        let Some(n) = wf.nodes.get(node) else {
            return Err(CallbackError::NoSuchStep);
        };
        let Op::ModelCall(m) = &n.op else {
            return Err(CallbackError::NoSuchStep);
        };
        if !m.callback {
            return Err(CallbackError::NoSuchStep);
        }
        let mut data = self.open(run.id).await?;
        let result = async {
            let shape = ModelShape::of(n, m, &mut data)
                .await
                .map_err(|e| CallbackError::BadAnswer(e.to_string()))?;
            if batch < 0 || batch >= shape.batches {
                return Err(CallbackError::NoSuchStep);
            }
            let rows = data
                .rows(&shape.input, batch * shape.size, shape.size)
                .await?
                .unwrap_or_default();
            let results = crate::model::results_of(body, rows.rows.len())
                .map_err(|e| CallbackError::BadAnswer(e.to_string()))?;
            let out_rows = shape.rows(m, rows.rows, results);
            Ok(data
                .put_batch(node, batch, &shape.out, &shape.columns, &out_rows)
                .await?)
        }
        .await;
        data.close().await;
        if matches!(result, Ok(true)) {
            self.wake();
        }
        result
    }

    /// A human step: makes its job once, then checks whether every task is
    /// decided. `None` while it waits.
    #[allow(clippy::too_many_arguments)]
    async fn human(
        &self,
        run: &Run,
        i: usize,
        node: &Node,
        h: &HumanLabel,
        compare: Option<&HumanCompare>,
        data: &mut RunData,
        known: &mut HashMap<usize, RunNode>,
    ) -> anyhow::Result<Option<Result<Done, StepError>>> {
        let (answers_out, labels_out) = (&node.outputs[0], &node.outputs[1]);
        // A job already made: look at its progress before reading any rows.
        if let Some(job) = known.get(&i).and_then(|n| n.job_id)
            && self.store.job_progress(job).await?.open > 0
        {
            return Ok(None);
        }
        let answer_cols = vec!["_id".to_owned(), "worker_id".into(), "annotation".into()];
        let label_cols = vec!["_id".to_owned(), "label".into()];
        let Some(input) = data.all_rows(&node.inputs[0]).await? else {
            return Ok(Some(Err(StepError::Limit(format!(
                "the table {} was not made",
                node.inputs[0]
            )))));
        };
        let (answer_cols, label_cols) = match compare {
            Some(_) => (
                ["_id", "worker_id", "left_id", "right_id", "winner", "grade"]
                    .map(String::from)
                    .to_vec(),
                ["item", "score", "wins", "comparisons"]
                    .map(String::from)
                    .to_vec(),
            ),
            None => (answer_cols, label_cols),
        };
        if let Some(c) = compare {
            for col in [&c.left, &c.right, &c.left_id, &c.right_id] {
                if !input.columns.contains(col) {
                    return Ok(Some(Err(StepError::Limit(format!(
                        "column {col} is not in {} (its columns: {})",
                        node.inputs[0],
                        input.columns.join(", ")
                    )))));
                }
            }
        }
        if input.rows.is_empty() {
            let a = Table {
                columns: answer_cols,
                rows: Vec::new(),
            };
            let l = Table {
                columns: label_cols,
                rows: Vec::new(),
            };
            let d = data
                .put_tables(i, 0, &[(answers_out, &a), (labels_out, &l)])
                .await;
            return Ok(Some(d));
        }
        if h.crowd == Crowd::MechanicalTurk && self.settings.mturk.is_none() {
            return Ok(Some(Err(StepError::Limit(
                "3a_amt sends tasks to Mechanical Turk, and this server has no Mechanical Turk \
                 connector configured; use 3a_kn or 3a_knlm for in-house workers"
                    .into(),
            ))));
        }
        let job = match known.get(&i).and_then(|n| n.job_id) {
            Some(j) => j,
            None => {
                let mut files = HashMap::new();
                for f in [&h.instructions, &h.layout].into_iter().flatten() {
                    if let Some(b) = self.store.run_file(run.id, f).await? {
                        files.insert(f.clone(), String::from_utf8_lossy(&b).into_owned());
                    }
                }
                let config = match job_config(run, node, h, compare, &files, &input.columns) {
                    Ok(c) => c,
                    Err(e) => return Ok(Some(Err(StepError::Limit(e)))),
                };
                let rows: Vec<ImportRow> = input
                    .rows
                    .iter()
                    .map(|r| {
                        let obj: Map<String, Value> = input
                            .columns
                            .iter()
                            .cloned()
                            .zip(r.iter().cloned())
                            .collect();
                        ImportRow {
                            data: Value::Object(obj).to_string(),
                            gold: None,
                        }
                    })
                    .collect();
                let job = self
                    .store
                    .node_job(run, i as i64, &config, &rows, now())
                    .await?;
                if let Some(n) = known.get_mut(&i) {
                    n.job_id = Some(job);
                }
                job
            }
        };
        let progress = self.store.job_progress(job).await?;
        if progress.open > 0 {
            return Ok(None);
        }
        // Every task is decided: the answers and labels become tables.
        let mut labels = Vec::new();
        let mut ids: HashMap<i64, Value> = HashMap::new();
        let mut after = 0;
        loop {
            let page = self.store.results_page(job, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for t in page {
                let id = t.data.get("_id").cloned().unwrap_or(Value::from(t.seq));
                let label = t.label.map_or(Value::from("undecided"), Value::from);
                ids.insert(t.seq, id.clone());
                labels.push(vec![id, label]);
            }
        }
        let mut answers = Vec::new();
        let mut after_id = 0;
        loop {
            let page = self.store.answers_page(job, after_id, PAGE).await?;
            let Some(last) = page.last() else { break };
            after_id = last.assignment_id.0;
            for a in page {
                let id = ids.get(&a.seq).cloned().unwrap_or(Value::from(a.seq));
                let mut row = vec![id, Value::from(a.worker_id.0), Value::from(a.annotation)];
                if compare.is_some() {
                    row.push(a.grade.map_or(Value::Null, Value::from));
                }
                answers.push(row);
            }
        }
        let (answers, labels) = match compare {
            Some(c) => compared(c, &input, &answers),
            None => (answers, labels),
        };
        let a = Table {
            columns: answer_cols,
            rows: answers,
        };
        let l = Table {
            columns: label_cols,
            rows: labels,
        };
        let d = data
            .put_tables(
                i,
                input.rows.len() as i64,
                &[(answers_out, &a), (labels_out, &l)],
            )
            .await;
        Ok(Some(d))
    }

    /// Delivers the run's announcement once, scheduling the next try with
    /// backoff on failure.
    async fn announce(&self, run: &Run) -> anyhow::Result<()> {
        let (Some(url), secret) = (&run.webhook_url, run.webhook_secret.as_deref()) else {
            return Ok(());
        };
        if run.webhook_next_at.is_some_and(|t| t > now()) {
            return Ok(());
        }
        if let Err(e) = self.settings.outbound.check(url) {
            tracing::warn!(run = run.id.0, error = %e, "the run's webhook may not be called");
            self.store
                .webhook_attempt(run.id, run.generation, "failed", None, now())
                .await?;
            return Ok(());
        }
        let body = serde_json::json!({
            "event": format!("run.{}", run.status.as_str()),
            "run": {
                "id": run.id,
                "name": run.name,
                "status": run.status,
                "error": run.error,
                "workspace_id": run.workspace_id,
            },
            "attempt": run.webhook_attempts + 1,
        })
        .to_string();
        let signature = crate::hmac::sign(secret.unwrap_or("").as_bytes(), body.as_bytes());
        let sent = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-tutti-signature", format!("sha256={signature}"))
            .header(
                "x-tutti-delivery",
                format!("run-{}-{}", run.id, run.status.as_str()),
            )
            .body(body)
            .send()
            .await;
        let ok = matches!(&sent, Ok(r) if r.status().is_success());
        if ok {
            self.store
                .webhook_attempt(run.id, run.generation, "delivered", None, now())
                .await?;
        } else {
            let attempts = run.webhook_attempts + 1;
            if attempts >= self.settings.webhook_attempts {
                tracing::warn!(run = run.id.0, "giving up announcing the run");
                self.store
                    .webhook_attempt(run.id, run.generation, "failed", None, now())
                    .await?;
            } else {
                let wait = self.settings.webhook_backoff.as_millis() as i64
                    * (1i64 << (attempts - 1).clamp(0, 20));
                self.store
                    .webhook_attempt(
                        run.id,
                        run.generation,
                        "pending",
                        Some(Timestamp(now().0 + wait)),
                        now(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

fn item_name(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A pairwise step's two tables from its answers (`_id, worker_id,
/// annotation, grade`): each judgment with the pair's items, and each
/// item's Bradley-Terry score (highest first) with its wins and
/// comparisons. A graded judgment counts as its share of a win.
fn compared(
    c: &HumanCompare,
    input: &Table,
    answers: &[Vec<Value>],
) -> (Vec<Vec<Value>>, Vec<Vec<Value>>) {
    use tutti_aggregate::{BtOptions, Comparisons, Winner, bradley_terry};
    let col = |name: &str| input.columns.iter().position(|x| x == name);
    let (id, l, r) = (col("_id"), col(&c.left_id), col(&c.right_id));
    let pairs: HashMap<String, (Value, Value)> = input
        .rows
        .iter()
        .enumerate()
        .map(|(n, row)| {
            let key = id.map_or(Value::from(n as i64 + 1), |i| row[i].clone());
            let pick = |i: Option<usize>| i.map_or(Value::Null, |i| row[i].clone());
            (item_name(&key), (pick(l), pick(r)))
        })
        .collect();
    let mut judgments = Vec::with_capacity(answers.len());
    let mut rows = Vec::with_capacity(answers.len());
    for a in answers {
        let Some((left, right)) = pairs.get(&item_name(&a[0])) else {
            continue;
        };
        let grade = a.get(3).and_then(Value::as_i64);
        let winner = match (grade, c.scale, a[2].as_str()) {
            (Some(g), Some(scale), _) => Winner::Graded {
                grade: g.clamp(-i64::from(scale), i64::from(scale)) as i32,
                scale,
            },
            (_, _, Some("left")) => Winner::Left,
            (_, _, Some("right")) => Winner::Right,
            _ => Winner::Tie,
        };
        judgments.push(vec![
            a[0].clone(),
            a[1].clone(),
            left.clone(),
            right.clone(),
            a[2].clone(),
            grade.map_or(Value::Null, Value::from),
        ]);
        rows.push((item_name(&a[1]), item_name(left), item_name(right), winner));
    }
    let comparisons = Comparisons::from_worker_rows(rows);
    let (scores, _) = bradley_terry(&comparisons, BtOptions::default());
    let mut wins = vec![0i64; comparisons.items.len()];
    let mut seen = vec![0i64; comparisons.items.len()];
    for &(a, b, w) in &comparisons.pairs {
        seen[a] += 1;
        seen[b] += 1;
        let share = w.left_share();
        if share > 0.5 {
            wins[a] += 1;
        } else if share < 0.5 {
            wins[b] += 1;
        }
    }
    let mut order: Vec<usize> = (0..comparisons.items.len()).collect();
    order.sort_by(|&x, &y| scores[y].total_cmp(&scores[x]).then(x.cmp(&y)));
    let table = order
        .into_iter()
        .map(|k| {
            vec![
                Value::from(comparisons.items[k].clone()),
                serde_json::Number::from_f64(scores[k]).map_or(Value::Null, Value::Number),
                Value::from(wins[k]),
                Value::from(seen[k]),
            ]
        })
        .collect();
    (judgments, table)
}

/// An `aggregate` step's labels: answers (`_id, worker_id, annotation`) by
/// a method, one row per item in the order items first appear.
pub fn aggregate_answers(input: &Table, method: &str, k: u32) -> Result<Table, String> {
    use tutti_aggregate::{AnswersBuilder, LabelOrder, Method, MethodInputs, aggregate};
    let col = |name: &str| {
        input.columns.iter().position(|x| x == name).ok_or_else(|| {
            format!(
                "aggregate reads _id, worker_id and annotation; the table has {}",
                input.columns.join(", ")
            )
        })
    };
    let (id, worker, answer) = (col("_id")?, col("worker_id")?, col("annotation")?);
    let method: Method = method
        .parse()
        .map_err(|_| format!("unknown method {method}"))?;
    let mut b = AnswersBuilder::new(LabelOrder::Sorted);
    let mut originals: HashMap<String, Value> = HashMap::new();
    for row in &input.rows {
        if row[answer].is_null() {
            continue;
        }
        let item = item_name(&row[id]);
        originals
            .entry(item.clone())
            .or_insert_with(|| row[id].clone());
        b.push(&item, &item_name(&row[worker]), &item_name(&row[answer]));
    }
    let answers = b.finish();
    let inputs = MethodInputs {
        k: k as usize,
        ..MethodInputs::default()
    };
    let fit = aggregate(&answers, method, &inputs).map_err(|e| e.to_string())?;
    let rows = answers
        .items
        .iter()
        .enumerate()
        .map(|(n, item)| {
            let label = if fit.undecided.contains(&n) {
                Value::from("undecided")
            } else {
                Value::from(answers.labels[fit.labels[n]].clone())
            };
            vec![
                originals
                    .get(item)
                    .cloned()
                    .unwrap_or(Value::from(item.clone())),
                label,
                serde_json::Number::from_f64(fit.confidence(n)).map_or(Value::Null, Value::Number),
            ]
        })
        .collect();
    Ok(Table {
        columns: ["_id", "label", "confidence"].map(String::from).to_vec(),
        rows,
    })
}

/// A model step with the run's parameters filled into its URL, which must
/// then be http:// or https://.
fn with_url(
    m: &ModelCall,
    params: &Map<String, Value>,
    outbound: &crate::outbound::Outbound,
) -> Result<ModelCall, StepError> {
    let mut m = m.clone();
    m.url = fill_raw(&m.url, params);
    outbound.check(&m.url).map_err(|e| {
        StepError::Limit(format!(
            "the model service's URL: {e} (is a parameter missing?)"
        ))
    })?;
    Ok(m)
}

/// A batch's idempotency key, unique across stores (two deployments both
/// have a run 1).
fn batch_key(run: &Run, step: usize, batch: i64) -> String {
    format!(
        "run-{}-{}-step-{step}-batch-{batch}",
        run.id, run.created_at.0
    )
}

/// Byte strings compared in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a callback's results were not taken.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The URL's signature does not match.
    #[error("the callback's token does not match")]
    BadToken,
    /// The run has no such callback step or batch.
    #[error("the run has no such model step or batch")]
    NoSuchStep,
    /// The body is not the answer for the batch.
    #[error("{0}")]
    BadAnswer(String),
    /// The run's file failed (logged, not shown).
    #[error("the run's storage failed")]
    Storage(#[from] sqlx::Error),
}

/// The shape of a model step: its input, output, columns kept and added,
/// and batches.
struct ModelShape {
    input: String,
    out: String,
    input_columns: Vec<String>,
    kept: Vec<usize>,
    sent: Vec<usize>,
    columns: Vec<String>,
    size: i64,
    batches: i64,
    rows_in: i64,
}

impl ModelShape {
    async fn of(node: &Node, m: &ModelCall, data: &mut RunData) -> Result<Self, StepError> {
        let input = node.inputs[0].clone();
        let info = data
            .table(&input)
            .await?
            .ok_or_else(|| StepError::Limit(format!("the table {input} was not made")))?;
        for c in &m.columns {
            if !info.columns.contains(c) {
                return Err(StepError::Limit(format!(
                    "column {c} is not in {input} (its columns: {})",
                    info.columns.join(", ")
                )));
            }
        }
        let kept: Vec<usize> = (0..info.columns.len())
            .filter(|&c| !m.fields.contains(&info.columns[c]))
            .collect();
        let mut columns: Vec<String> = kept.iter().map(|&c| info.columns[c].clone()).collect();
        columns.extend(m.fields.iter().cloned());
        let sent: Vec<usize> = (0..info.columns.len())
            .filter(|&c| m.columns.is_empty() || m.columns.contains(&info.columns[c]))
            .collect();
        let size = i64::from(m.batch_size);
        Ok(Self {
            input,
            out: node.outputs[0].clone(),
            input_columns: info.columns,
            kept,
            sent,
            columns,
            size,
            batches: (info.rows + size - 1) / size,
            rows_in: info.rows,
        })
    }

    fn request(
        &self,
        run: &Run,
        step: usize,
        batch: i64,
        key: &str,
        rows: &Table,
        callback: Option<&str>,
    ) -> Value {
        let payload: Vec<Value> = rows
            .rows
            .iter()
            .map(|r| {
                Value::Object(
                    self.sent
                        .iter()
                        .map(|&c| (self.input_columns[c].clone(), r[c].clone()))
                        .collect(),
                )
            })
            .collect();
        let mut body = serde_json::json!({
            "idempotency_key": key,
            "run_id": run.id,
            "step": step,
            "batch": batch,
            "rows": payload,
        });
        if let Some(url) = callback {
            body["callback_url"] = Value::from(url);
        }
        body
    }

    fn rows(
        &self,
        m: &ModelCall,
        rows: Vec<Vec<Value>>,
        results: Vec<Map<String, Value>>,
    ) -> Vec<Vec<Value>> {
        rows.into_iter()
            .zip(results)
            .map(|(r, res)| {
                let mut row: Vec<Value> = self.kept.iter().map(|&c| r[c].clone()).collect();
                row.extend(m.fields.iter().map(|f| match res.get(f) {
                    None => Value::Null,
                    Some(v @ (Value::Object(_) | Value::Array(_))) => Value::from(v.to_string()),
                    Some(v) => v.clone(),
                }));
                row
            })
            .collect()
    }
}

/// Whether the run's own file refused a statement (a duplicate column, a
/// constraint): a failure of the step that running it again cannot fix,
/// unlike I/O trouble.
fn refused_by_database(e: &sqlx::Error) -> bool {
    match e {
        // Busy or locked (primary codes 5 and 6, whatever the extended
        // code) is contention, tried again on the next pass.
        sqlx::Error::Database(d) => !d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}

/// A step's failure for a person: the database's own words when it
/// refused what the step wrote.
fn step_message(e: &StepError) -> String {
    match e {
        StepError::Storage(sqlx::Error::Database(d)) => {
            format!("the step's output could not be stored: {}", d.message())
        }
        other => other.to_string(),
    }
}

/// Text safe to store and show: control characters (a NUL from a model
/// service's answer, say) become spaces; at most 2,000 characters.
fn clean(text: &str) -> String {
    text.chars()
        .take(2000)
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect()
}

fn store_err(e: StoreError) -> sqlx::Error {
    sqlx::Error::Protocol(e.to_string())
}

/// Puts a run's parameters into a URL as they are: `${model_url}/predict`
/// with `model_url` = `http://127.0.0.1:8765` is that service's `/predict`.
pub fn fill_raw(text: &str, params: &Map<String, Value>) -> String {
    let mut out = text.to_owned();
    for (k, v) in params {
        let value = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out = out.replace(&format!("${{{k}}}"), &value);
    }
    out
}

/// Puts a run's parameters into a query: `${name}` becomes the value as a
/// SQL literal (text quoted, numbers as they are), so a date range or a
/// threshold is given per run without building SQL by hand.
pub fn fill_params(query: &str, params: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + len];
        out.push_str(&rest[..start]);
        match params.get(name) {
            Some(Value::Number(n)) => out.push_str(&n.to_string()),
            Some(Value::Bool(b)) => out.push_str(if *b { "1" } else { "0" }),
            Some(Value::Null) => out.push_str("NULL"),
            Some(Value::String(s)) => {
                out.push('\'');
                out.push_str(&s.replace('\'', "''"));
                out.push('\'');
            }
            Some(other) => {
                out.push('\'');
                out.push_str(&other.to_string().replace('\'', "''"));
                out.push('\'');
            }
            None => out.push_str(&rest[start..start + 3 + len]),
        }
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    out
}

/// Rows read by a labeling task that finished in `work`, if one did.
fn finished_labels(work: &std::path::Path) -> Option<u64> {
    if !work.exists() {
        return None;
    }
    let conn =
        rusqlite::Connection::open_with_flags(work, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row(
        "SELECT length_receive_table FROM state WHERE stat = 'SUCCESS' AND prod_stat = 'finish' LIMIT 1",
        [],
        |r| r.get::<_, i64>(0),
    )
    .ok()
    .map(|n| n.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_fill_queries_as_sql_literals() {
        let p: Map<String, Value> = serde_json::from_value(json!({
            "from": "2024-01-01", "min": 3, "who": "O'Hara"
        }))
        .unwrap();
        assert_eq!(
            fill_params(
                "SELECT * FROM T WHERE d >= ${from} AND n > ${min} AND w = ${who} AND x = ${unset}",
                &p
            ),
            "SELECT * FROM T WHERE d >= '2024-01-01' AND n > 3 AND w = 'O''Hara' AND x = ${unset}"
        );
    }

    #[test]
    fn instructions_and_layouts_are_read_from_cymphonys_tags() {
        let i = instructions(
            "<html><short-instructions>Say yes for people.</short-instructions>\n\
             <long-instructions><p>More.</p></long-instructions></html>",
        );
        assert_eq!(i.short, "Say yes for people.");
        assert_eq!(i.long, "<p>More.</p>");
        assert_eq!(instructions("Just this").short, "Just this");
        assert_eq!(
            layout("<DESIGN-LAYOUT><b>${name}</b></DESIGN-LAYOUT>"),
            "<b>${name}</b>"
        );
    }
}
