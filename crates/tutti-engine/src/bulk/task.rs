//! A labeling task from its description: where rows come from and go to
//! (a file path or a database URL each), which columns, which range, which
//! patterns. [`Task::prepare`] checks all of it (patterns, names, range,
//! that the source has the columns) before anything is written.

use super::external::{ExternalSink, ExternalSource};
use super::file::{FileSink, FileSource};
use super::sqlite::{SqliteSink, SqliteSource, path_of};
use super::tables::identifier;
use super::{
    Columns, Control, DEFAULT_BATCH_ROWS, LabelError, Plan, Progress, Sink, Source, TaskInfo,
    TimeRange, new_task_id, now_text,
};
use sha2::{Digest as _, Sha256};
use tutti_label::{MatcherOptions, PatternSet};

/// Where a task reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A CSV file.
    Csv(String),
    /// A JSON-lines file.
    Jsonl(String),
    /// A SQLite file.
    Sqlite(String),
    /// A PostgreSQL or MySQL/MariaDB URL.
    Server(String),
}

impl Place {
    /// Tells a place by its URL scheme or file extension.
    pub fn parse(field: &str, s: &str) -> Result<Self, LabelError> {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("postgres://")
            || lower.starts_with("postgresql://")
            || lower.starts_with("mysql://")
            || lower.starts_with("mariadb://")
        {
            Ok(Place::Server(s.to_owned()))
        } else if lower.starts_with("sqlite:")
            || [".sqlite", ".sqlite3", ".db"]
                .iter()
                .any(|e| lower.ends_with(e))
        {
            Ok(Place::Sqlite(path_of(s).to_string_lossy().into_owned()))
        } else if lower.ends_with(".csv") || lower.ends_with(".tsv") {
            Ok(Place::Csv(s.to_owned()))
        } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            Ok(Place::Jsonl(s.to_owned()))
        } else {
            Err(LabelError::new(format!(
                "{field}: {s:?} is neither a .csv/.jsonl file, a SQLite file (.sqlite, .db or sqlite:PATH) \
                 nor a postgres:// or mysql:// URL"
            )))
        }
    }

    /// The place without credentials, for messages and state.
    pub fn display(&self) -> String {
        match self {
            Place::Server(url) => redact(url),
            Place::Csv(p) | Place::Jsonl(p) | Place::Sqlite(p) => p.clone(),
        }
    }
}

/// A URL with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((auth, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Everything a task is.
#[derive(Debug, Clone)]
pub struct Task {
    /// The pattern file's bytes.
    pub patterns: Vec<u8>,
    /// Keywords match whole words only.
    pub whole_word: bool,
    /// Where rows come from.
    pub input: Place,
    /// The table, for a database input (may be `schema.table` on a server).
    pub table: Option<String>,
    /// The columns.
    pub columns: Columns,
    /// The time range.
    pub range: TimeRange,
    /// Where results go.
    pub output: Place,
    /// The result table's name (default: the input table's or file's name
    /// and the column, `posts_author_name`).
    pub result: Option<String>,
    /// Schema for the output tables on a server (default: the URL's).
    pub output_schema: Option<String>,
    /// `keyword_model` or `rule_model`.
    pub model_type: String,
    /// The task id: a new one, or one to resume. Without one, a sink
    /// resumes the unfinished task of the same configuration, or refuses to
    /// label again what a finished one did.
    pub task_id: Option<String>,
    /// Rows per batch.
    pub batch_rows: usize,
    /// Pause between labeling and the production step.
    pub countdown: std::time::Duration,
    /// Rows read between commits of a SQLite output.
    pub commit_rows: u64,
    /// Most (pair, label) tallies the production step keeps in memory
    /// (default: the output's own budget).
    pub tally_budget: Option<usize>,
}

impl Task {
    /// A task with the defaults: Audience columns, batches of 50,000.
    pub fn new(patterns: Vec<u8>, input: Place, output: Place, field: &str) -> Self {
        Self {
            patterns,
            whole_word: false,
            input,
            table: None,
            columns: Columns::audience(field),
            range: TimeRange::default(),
            output,
            result: None,
            output_schema: None,
            model_type: "keyword_model".into(),
            task_id: None,
            batch_rows: DEFAULT_BATCH_ROWS,
            countdown: std::time::Duration::ZERO,
            commit_rows: super::sqlite::COMMIT_ROWS,
            tally_budget: None,
        }
    }

    /// A digest of what decides the output: a task resumes only under the
    /// same one.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(&self.patterns);
        h.update([u8::from(self.whole_word)]);
        for part in [
            self.input.display(),
            self.table.clone().unwrap_or_default(),
            format!("{:?}", self.columns),
            self.range.display(),
            self.batch_rows.to_string(),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn table_name(&self) -> String {
        match (&self.table, &self.input) {
            (Some(t), _) => t.rsplit('.').next().unwrap_or(t).to_owned(),
            (None, Place::Csv(p) | Place::Jsonl(p)) => std::path::Path::new(p)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "input".into()),
            _ => "posts".into(),
        }
    }

    /// Checks everything and opens the source and sink. `rt` runs the
    /// drivers of server databases: a multi-threaded runtime's handle,
    /// called from outside its workers.
    pub fn prepare(&self, rt: &tokio::runtime::Handle) -> Result<Prepared, LabelError> {
        let patterns = PatternSet::parse(&self.patterns)
            .map_err(|e| LabelError::new(format!("the pattern file is refused: {e}")))?;
        for c in self.columns.all() {
            identifier("column", c)?;
        }
        let table = self.table_name();
        let result = match &self.result {
            Some(r) => identifier("result", r)?,
            None => {
                let cleaned: String = format!("{table}_{}", self.columns.field)
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                let cleaned = cleaned
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .to_owned();
                identifier("result", &cleaned[..cleaned.len().min(47)])?
            }
        };
        if let Some(id) = &self.task_id {
            check_task_id(id)?;
        }
        let info = TaskInfo {
            task_id: self.task_id.clone().unwrap_or_default(),
            model_type: self.model_type.clone(),
            predict_type: self.columns.field.clone(),
            date_range: self.range.display(),
            target_table: self.table.clone().unwrap_or(table),
            result,
            create_time: now_text(),
            digest: self.digest(),
        };
        let db_table = || -> Result<String, LabelError> {
            self.table.clone().ok_or_else(|| {
                LabelError::new("table: a database input needs the table to read (--table)")
            })
        };
        let source: Box<dyn Source> = match &self.input {
            Place::Sqlite(path) => Box::new(SqliteSource::open(
                std::path::Path::new(path),
                &db_table()?,
                self.columns.clone(),
                self.range.clone(),
            )?),
            Place::Server(url) => Box::new(ExternalSource::open(
                rt.clone(),
                url,
                &db_table()?,
                self.columns.clone(),
                self.range.clone(),
            )?),
            Place::Csv(path) | Place::Jsonl(path) => Box::new(FileSource::open(
                std::path::Path::new(path),
                matches!(self.input, Place::Jsonl(_)),
                self.columns.clone(),
                self.range.clone(),
            )?),
        };
        let sink: Box<dyn Sink> = match &self.output {
            Place::Sqlite(path) => Box::new(SqliteSink::open(
                std::path::Path::new(path),
                info.clone(),
                self.commit_rows,
            )?),
            Place::Server(url) => Box::new(ExternalSink::open(
                rt.clone(),
                url,
                self.output_schema.as_deref(),
                info.clone(),
            )?),
            Place::Csv(path) | Place::Jsonl(path) => Box::new(FileSink::open(
                std::path::Path::new(path),
                matches!(self.output, Place::Jsonl(_)),
                info.clone(),
            )?),
        };
        Ok(Prepared {
            plan: Plan {
                patterns,
                options: MatcherOptions {
                    whole_word: self.whole_word,
                },
                batch_rows: self.batch_rows,
                countdown: self.countdown,
                tally_budget: self.tally_budget,
            },
            source,
            sink,
            info,
        })
    }
}

/// Checks a task id: 32 hexadecimal digits.
pub fn check_task_id(id: &str) -> Result<(), LabelError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(LabelError::new(format!(
            "{id} is not in proper format, expect 32 digits get {} digits",
            id.len()
        )))
    }
}

/// A checked task, ready to run.
pub struct Prepared {
    /// Patterns and options.
    pub plan: Plan,
    /// The opened source.
    pub source: Box<dyn Source>,
    /// The opened sink.
    pub sink: Box<dyn Sink>,
    /// What the state table records.
    pub info: TaskInfo,
}

impl Prepared {
    /// Runs the task; on failure the sink's state says FAILURE with the
    /// message.
    pub fn run(
        &mut self,
        control: &Control,
        report: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<Progress, LabelError> {
        let result = super::run(
            &self.plan,
            self.source.as_ref(),
            self.sink.as_mut(),
            control,
            report,
        );
        if let Err(e) = &result {
            self.sink.fail(&e.message);
        }
        result
    }

    /// The task id (new, or the unfinished task this one resumes).
    pub fn task_id(&self) -> String {
        self.sink.task_id()
    }
}

/// A new id if none is given.
pub fn task_id_or_new(id: &str) -> String {
    if id.is_empty() {
        new_task_id()
    } else {
        id.to_owned()
    }
}

/// Up to `limit` rows of a task's result or production table, from a
/// random place among the task's rows, as JSON objects; empty when the
/// table is neither of the task's or holds none of its rows.
pub fn sample(
    rt: &tokio::runtime::Handle,
    output: &Place,
    output_schema: Option<&str>,
    result: &str,
    task_id: &str,
    table: &str,
    limit: usize,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, LabelError> {
    check_task_id(task_id)?;
    let production = format!("wh_panel_mapping_{result}");
    if table != result && table != production {
        return Ok(Vec::new());
    }
    let columns: &[&str] = if table == result {
        &[
            "id",
            "task_id",
            "source",
            "author",
            "label",
            "pattern",
            "match_content",
            "create_time",
        ]
    } else {
        &[
            "id",
            "task_id",
            "source_author",
            "panel",
            "create_time",
            "field_content",
            "match_content",
        ]
    };
    match output {
        Place::Sqlite(path) => {
            super::sqlite::sample(std::path::Path::new(path), table, task_id, columns, limit)
        }
        Place::Server(url) => {
            super::external::sample(rt, url, output_schema, table, task_id, columns, limit)
        }
        Place::Csv(_) | Place::Jsonl(_) => Ok(Vec::new()),
    }
}
