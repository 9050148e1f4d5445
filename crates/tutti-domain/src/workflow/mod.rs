//! Workflows: a DAG of operators over tables, written as a Cymphony `.cy`
//! program ([`cy`]) or a JSON spec ([`spec`]); both compile to one checked
//! intermediate form, [`Workflow`].
//!
//! Every variable is a table. A workflow is checked whole before it runs:
//! unknown operators, undefined or redefined variables, wrong numbers of
//! inputs or outputs, missing, unknown or ill-typed parameters are all
//! reported with where they are ([`Span`] for programs, a field path for
//! specs).

pub mod cy;
pub mod spec;

use serde::Serialize;
use std::fmt;

/// The languages a workflow is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Cymphony's `.cy` language.
    Cy,
    /// The native spec in JSON.
    Json,
    /// The native spec in YAML.
    Yaml,
}

impl Format {
    /// The format's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Cy => "cy",
            Format::Json => "json",
            Format::Yaml => "yaml",
        }
    }

    /// The format for a name (`cy`, `json`, `yaml`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cy" => Some(Format::Cy),
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }

    /// The format a file name suggests: `.json`, `.yaml` and `.yml` are
    /// specs, anything else a program.
    pub fn of_file(name: &str) -> Self {
        let lower = name.to_lowercase();
        if lower.ends_with(".json") {
            Format::Json
        } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Format::Yaml
        } else {
            Format::Cy
        }
    }
}

/// Parses and checks a workflow written in `format`.
pub fn parse(format: Format, src: &str) -> Result<Workflow, WorkflowError> {
    match format {
        Format::Cy => cy::parse(src),
        Format::Json => spec::parse(src),
        Format::Yaml => spec::parse_yaml(src),
    }
}

/// A place in a program: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    /// Line, from 1.
    pub line: u32,
    /// Column (in characters), from 1.
    pub column: u32,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a workflow was refused: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowError {
    /// Where in a program, if it came from one.
    pub span: Option<Span>,
    /// The field path, if it came from a spec (such as `nodes[2].query`).
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

impl WorkflowError {
    pub(crate) fn at(span: Span, message: impl Into<String>) -> Self {
        Self {
            span: Some(span),
            field: None,
            message: message.into(),
        }
    }

    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            span: None,
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.span, &self.field) {
            (Some(s), _) => write!(f, "{s}: {}", self.message),
            (None, Some(field)) => write!(f, "{field}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for WorkflowError {}

pub use crate::job::Crowd;

/// A human labeling step: a job over the input table's rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HumanLabel {
    /// Who answers.
    pub crowd: Crowd,
    /// The instructions file (`<short-instructions>`, `<long-instructions>`).
    pub instructions: Option<String>,
    /// The layout file (`<design-layout>`).
    pub layout: Option<String>,
    /// The question, with `${column}` placeholders.
    pub question: String,
    /// The answer options (empty when answers are typed).
    pub answers: Vec<String>,
    /// Whether workers type their answer (Cymphony's `answers=free_text`).
    pub free_text: bool,
    /// A Mechanical Turk step's HIT settings (`3a_amt`'s parameters).
    pub hit: Option<crate::job::HitSettings>,
    /// Answers that must agree.
    pub k: u32,
    /// Most answers per task.
    pub n: u32,
    /// Stewards' agreement, `(l, m)`.
    pub stewards: Option<(u32, u32)>,
    /// Seconds a lease lasts.
    pub time_limit_secs: Option<u32>,
}

/// A pairwise step: people see two items of a row side by side and say
/// which is better on a criterion; the answers become judgments and
/// Bradley-Terry scores per item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HumanCompare {
    /// The question people answer (`Which answer is more helpful?`).
    pub criterion: String,
    /// Columns shown as the left and right item.
    pub left: String,
    /// The right item's column shown.
    pub right: String,
    /// Columns naming the left and right item (for the scores).
    pub left_id: String,
    /// The right item's name column.
    pub right_id: String,
    /// Whether "tie" is an answer.
    pub tie: bool,
    /// Asks for a graded score from `-scale` (left much better) to `scale`
    /// (right much better) instead of a side.
    pub scale: Option<u32>,
    /// Answers that must agree on a pair.
    pub k: u32,
    /// Most answers per pair.
    pub n: u32,
    /// The instructions file, if any.
    pub instructions: Option<String>,
    /// The layout file, if any (a side-by-side view is made otherwise).
    pub layout: Option<String>,
    /// Seconds a lease lasts.
    pub time_limit_secs: Option<u32>,
}

impl HumanCompare {
    /// How the step's job compares: its shown columns, ties and scale.
    pub fn compare(&self) -> crate::job::Compare {
        crate::job::Compare {
            left: self.left.clone(),
            right: self.right.clone(),
            tie: self.tie,
            scale: self.scale,
        }
    }

    /// The answers people choose from.
    pub fn answers(&self) -> Vec<String> {
        self.compare().answers()
    }

    /// The labeling job this comparison is asked as.
    pub fn as_label(&self) -> HumanLabel {
        HumanLabel {
            crowd: Crowd::InHouse,
            instructions: self.instructions.clone(),
            layout: self.layout.clone(),
            question: self.criterion.clone(),
            answers: self.answers(),
            free_text: false,
            hit: None,
            k: self.k,
            n: self.n,
            stewards: None,
            time_limit_secs: self.time_limit_secs,
        }
    }
}

/// A call of an HTTP model service over a table's rows, in batches.
///
/// Each batch is `POST`ed as `{"idempotency_key", "run_id", "step",
/// "batch", "rows": [...]}` with an `Idempotency-Key` header; the service
/// answers `{"results": [...]}`, one object per row in order, and the
/// `fields` named here become columns beside the input's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelCall {
    /// The service's URL (`http://` or `https://`).
    pub url: String,
    /// Result fields kept as columns.
    pub fields: Vec<String>,
    /// Input columns sent (all when empty).
    pub columns: Vec<String>,
    /// Rows per call.
    pub batch_size: u32,
    /// Seconds a call may take.
    pub timeout_secs: u32,
    /// Tries after the first, with doubling waits, on timeouts, connection
    /// errors, 408, 409, 429 and 5xx.
    pub retries: u32,
    /// Whether the service answers later, by posting the results to the
    /// batch's `callback_url`, rather than in its reply.
    pub callback: bool,
}

/// What a node does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// An uploaded CSV file; adds an `_id` column 1..N.
    ReadTable {
        /// The file's name among the run's inputs.
        file: String,
    },
    /// A table another run of the workspace made, by reference (the run
    /// must have completed).
    ReadRun {
        /// The run.
        run: i64,
        /// Its table (a variable of that run).
        table: String,
    },
    /// Rows of a query against an outside database the server names in
    /// its configuration, with bound parameters.
    ReadDatabase {
        /// The configured connection's name.
        database: String,
        /// The query, in that database's dialect.
        query: String,
        /// Values for its placeholders (`$1`…, or `?`); text may hold
        /// `${parameter}`s of the run.
        params: Vec<serde_json::Value>,
    },
    /// Appends the input table to a table of an outside database, once.
    WriteDatabase {
        /// The configured connection's name.
        database: String,
        /// The target table (made if missing).
        table: String,
    },
    /// POSTs the input table's rows to a URL in batches (signed with the
    /// run's webhook secret when it has one).
    Webhook {
        /// Where.
        url: String,
        /// Rows per request.
        batch_size: u32,
    },
    /// `n` rows drawn at random (all of them if the table is smaller).
    Sample {
        /// Rows to draw.
        n: u64,
        /// Seed, for a repeatable draw.
        seed: Option<u64>,
    },
    /// A read-only `SELECT` over the input tables, named by their
    /// variables.
    Sql {
        /// The query.
        query: String,
    },
    /// Writes the input table to a file of the run's outputs.
    WriteTable {
        /// The file's name.
        file: String,
    },
    /// People label the rows: outputs are per-worker answers
    /// (`_id, worker_id, annotation`) and labels (`_id, label`).
    HumanLabel(Box<HumanLabel>),
    /// A model service labels the rows.
    ModelCall(Box<ModelCall>),
    /// People compare pairs; outputs are judgments
    /// (`_id, worker_id, left_id, right_id, winner`) and scores
    /// (`item, score, wins, comparisons`).
    HumanCompare(Box<HumanCompare>),
    /// Answers (`_id, worker_id, annotation`) aggregated into labels
    /// (`_id, label, confidence`) by a method (`mv`, `ds`, `glad`, …).
    Aggregate {
        /// The method's name.
        method: String,
        /// Agreeing answers for `kofn`.
        k: u32,
    },
    /// A pattern file's keywords and rules label one column of the rows;
    /// outputs are the result rows (one per row and label) and, if a
    /// second output is named, the production rows (one label per source
    /// and author).
    KeywordLabel(Box<KeywordLabel>),
}

/// The parameters of `keyword_label` / `rule_label`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeywordLabel {
    /// The pattern file, one of the run's files.
    pub patterns: String,
    /// The column matched.
    pub column: String,
    /// Keywords match whole words only.
    pub whole_word: bool,
    /// The row id column.
    pub id_column: String,
    /// The source column.
    pub source_column: String,
    /// The author column.
    pub author_column: String,
    /// The time column.
    pub time_column: String,
}

impl Op {
    /// The operator's name as written.
    pub fn name(&self) -> &'static str {
        match self {
            Op::ReadTable { .. } => "read_table",
            Op::ReadRun { .. } => "read_run",
            Op::ReadDatabase { .. } => "read_database",
            Op::WriteDatabase { .. } => "write_database",
            Op::Webhook { .. } => "webhook",
            Op::Sample { .. } => "sample",
            Op::Sql { .. } => "sql",
            Op::WriteTable { .. } => "write_table",
            Op::HumanLabel(_) => "human_label",
            Op::ModelCall(_) => "model_call",
            Op::HumanCompare(_) => "human_compare",
            Op::Aggregate { .. } => "aggregate",
            Op::KeywordLabel(_) => "keyword_label",
        }
    }
}

/// One step of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// The operator and its parameters.
    #[serde(flatten)]
    pub op: Op,
    /// Input tables, by variable.
    pub inputs: Vec<String>,
    /// Output tables, by variable (none for `write_table`).
    pub outputs: Vec<String>,
    /// Where it was written, for programs.
    pub span: Option<Span>,
}

impl Node {
    /// What the step makes, for lists: its outputs, or what it writes to.
    pub fn label(&self) -> String {
        match &self.op {
            Op::WriteTable { file } => file.clone(),
            Op::WriteDatabase { database, table } => format!("{database}.{table}"),
            Op::Webhook { url, .. } => url.clone(),
            _ => self.outputs.join(", "),
        }
    }
}

/// A checked workflow: nodes in an order where every input is defined by an
/// earlier node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workflow {
    /// The nodes.
    pub nodes: Vec<Node>,
}

impl Workflow {
    /// The configured databases the workflow reads or writes.
    pub fn databases(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for n in &self.nodes {
            if let Op::ReadDatabase { database, .. } | Op::WriteDatabase { database, .. } = &n.op
                && !out.contains(&database.as_str())
            {
                out.push(database);
            }
        }
        out
    }

    /// The runs whose tables the workflow reads by reference.
    pub fn runs_read(&self) -> Vec<i64> {
        let mut runs: Vec<i64> = self
            .nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::ReadRun { run, .. } => Some(*run),
                _ => None,
            })
            .collect();
        runs.dedup();
        runs
    }

    /// The files the workflow reads, in order of first use.
    pub fn input_files(&self) -> Vec<&str> {
        let mut files: Vec<&str> = Vec::new();
        for n in &self.nodes {
            let file = match &n.op {
                Op::ReadTable { file } => Some(file.as_str()),
                Op::KeywordLabel(k) => Some(k.patterns.as_str()),
                Op::HumanCompare(c) => {
                    for f in [&c.instructions, &c.layout].into_iter().flatten() {
                        if !files.contains(&f.as_str()) {
                            files.push(f);
                        }
                    }
                    None
                }
                Op::HumanLabel(h) => {
                    for f in [&h.instructions, &h.layout].into_iter().flatten() {
                        if !files.contains(&f.as_str()) {
                            files.push(f);
                        }
                    }
                    None
                }
                _ => None,
            };
            if let Some(f) = file
                && !files.contains(&f)
            {
                files.push(f);
            }
        }
        files
    }

    /// Checks the graph: every input defined by an earlier node, no
    /// variable defined twice, the first node a source.
    pub(crate) fn check_graph(
        nodes: &[Node],
        locate: impl Fn(usize, Option<usize>) -> WorkflowError,
    ) -> Result<(), WorkflowError> {
        // Tables are named by their variables, and table names do not
        // tell case apart: `a` and `A` would be one table.
        let mut defined: std::collections::HashSet<String> = std::collections::HashSet::new();
        for (i, n) in nodes.iter().enumerate() {
            if i == 0
                && !matches!(
                    n.op,
                    Op::ReadTable { .. } | Op::ReadRun { .. } | Op::ReadDatabase { .. }
                )
            {
                return Err(with_message(
                    locate(0, None),
                    "a workflow must start by reading a table (read_table, read_run or read_database)",
                ));
            }
            for (j, input) in n.inputs.iter().enumerate() {
                if !defined.contains(&input.to_lowercase()) {
                    return Err(with_message(
                        locate(i, Some(j)),
                        format!("{input} is not defined before it is used"),
                    ));
                }
            }
            for out in &n.outputs {
                let key = out.to_lowercase();
                if key.starts_with("_tutti") || key.starts_with("sqlite_") {
                    return Err(with_message(
                        locate(i, None),
                        format!(
                            "{out} is a reserved name; names may not start with _tutti or sqlite_"
                        ),
                    ));
                }
                if !defined.insert(key) {
                    return Err(with_message(
                        locate(i, None),
                        format!(
                            "{out} is already defined (names do not tell case apart); give each table its own name"
                        ),
                    ));
                }
            }
        }
        if nodes.is_empty() {
            return Err(with_message(locate(0, None), "the workflow is empty"));
        }
        let mut files: std::collections::HashSet<String> = std::collections::HashSet::new();
        for (i, n) in nodes.iter().enumerate() {
            if let Op::WriteTable { file } = &n.op
                && !files.insert(file.clone())
            {
                return Err(with_message(
                    locate(i, None),
                    format!(
                        "{file} is already written by an earlier step; give each output file its own name"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Spells every input as the step that makes it does (`t` read where `T`
/// was made reads `T`), so tables are found under one name.
pub(crate) fn canonical_inputs(nodes: &mut [Node]) {
    let mut names: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for n in nodes.iter_mut() {
        for input in &mut n.inputs {
            if let Some(name) = names.get(&input.to_lowercase()) {
                input.clone_from(name);
            }
        }
        for out in &n.outputs {
            names.insert(out.to_lowercase(), out.clone());
        }
    }
}

fn with_message(mut e: WorkflowError, message: impl Into<String>) -> WorkflowError {
    e.message = message.into();
    e
}
