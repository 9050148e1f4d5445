//! `tutti label`: bulk keyword and rule labeling from the terminal.
//!
//! Reads a CSV/JSON-lines file or a database table (SQLite file,
//! `postgres://` or `mysql://` URL, filtered by a time range), labels one
//! column with a pattern file, and writes the result and production rows
//! to a file or a database. A progress line shows on standard error; the
//! final metrics line goes to standard output. Writing to a database, an
//! interrupted task resumes from its checkpoint when the same command is
//! run again.

use clap::Args;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Instant;
use tutti_engine::bulk::task::{Place, Task};
use tutti_engine::bulk::{Columns, Control, Progress, TimeRange};

/// `tutti label`.
#[derive(Args)]
pub struct LabelArgs {
    /// The pattern file: CSV or TSV with the header label,pattern[,kind][,priority].
    #[arg(long)]
    patterns: PathBuf,
    /// Rows to label: a .csv/.jsonl file, a SQLite file, or a postgres:// or mysql:// URL.
    #[arg(long)]
    input: String,
    /// The table to read from a database input (`schema.table` on a server).
    #[arg(long)]
    table: Option<String>,
    /// The column to label.
    #[arg(long, default_value = "author_name")]
    column: String,
    /// Where results go: a .csv/.jsonl file, a SQLite file, or a database URL.
    #[arg(long)]
    output: String,
    /// The time column the range applies to.
    #[arg(long, default_value = "create_time")]
    time_column: String,
    /// First time included (YYYY-MM-DD[ HH:MM:SS]).
    #[arg(long)]
    since: Option<String>,
    /// First time excluded.
    #[arg(long)]
    until: Option<String>,
    /// The row id column.
    #[arg(long, default_value = "id")]
    id_column: String,
    /// The source column.
    #[arg(long, default_value = "source")]
    source_column: String,
    /// The author column.
    #[arg(long, default_value = "author_name")]
    author_column: String,
    /// Keywords match whole words only (CJK keywords still match inside text).
    #[arg(long)]
    whole_word: bool,
    /// The result table's name (default: TABLE_COLUMN).
    #[arg(long)]
    result: Option<String>,
    /// Schema (PostgreSQL) or database (MySQL) for the output tables.
    #[arg(long)]
    output_schema: Option<String>,
    /// Rows per batch and committed transaction.
    #[arg(long, default_value_t = tutti_engine::bulk::DEFAULT_BATCH_ROWS)]
    batch_rows: usize,
    /// Rows read between commits (and checkpoints) of a SQLite output.
    #[arg(long, default_value_t = tutti_engine::bulk::sqlite::COMMIT_ROWS)]
    commit_rows: u64,
    /// Resume (or name) this task id (32 hex digits).
    #[arg(long)]
    task_id: Option<String>,
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs `tutti label`.
/// Call it off the runtime's workers (`spawn_blocking`): it blocks.
pub fn run(args: LabelArgs, rt: tokio::runtime::Handle) -> anyhow::Result<()> {
    let patterns = std::fs::read(&args.patterns).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the pattern file {}: {e}",
            args.patterns.display()
        )
    })?;
    let input = Place::parse("--input", &args.input)?;
    let output = Place::parse("--output", &args.output)?;
    let mut task = Task::new(patterns, input, output, &args.column);
    task.table = args.table.clone();
    task.columns = Columns {
        id: args.id_column.clone(),
        source: args.source_column.clone(),
        author: args.author_column.clone(),
        field: args.column.clone(),
        time: args.time_column.clone(),
    };
    task.range = TimeRange::parse(args.since.as_deref(), args.until.as_deref())?;
    task.whole_word = args.whole_word;
    task.result = args.result.clone();
    task.output_schema = args.output_schema.clone();
    task.batch_rows = args.batch_rows;
    task.commit_rows = args.commit_rows;
    task.task_id = args.task_id.clone();

    let mut prepared = task.prepare(&rt)?;
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last_draw = Instant::now();
    let mut report = |p: &Progress| {
        if last_draw.elapsed().as_millis() < 200 && p.production_rows.is_none() {
            return;
        }
        last_draw = Instant::now();
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let line = format!(
            "{} rows read, {} labeled, {:.0} rows/s",
            thousands(p.received),
            thousands(p.labeled_rows),
            p.received as f64 / secs
        );
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
    };
    let control = Control::default();
    let result = prepared.run(&control, &mut report);
    if tty {
        eprintln!();
    }
    let p = result.map_err(|e| {
        anyhow::anyhow!(
            "labeling failed (task {}): {}",
            prepared.task_id(),
            e.full()
        )
    })?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "task={} rows={} labeled_rows={} result_rows={} production_rows={} unique_source_author={} \
         rate_of_label={:.2}% seconds={:.3} rows_per_second={:.0} peak_rss_mb={:.1} \
         scan_cpu_seconds={:.3} write_seconds={:.3}",
        prepared.task_id(),
        p.received,
        p.labeled_rows,
        p.result_rows,
        p.production_rows.unwrap_or(0),
        p.unique_pairs,
        p.rate_of_label().unwrap_or(0.0),
        secs,
        p.received as f64 / secs.max(1e-9),
        tutti_engine::bulk::peak_rss_mb().unwrap_or(0.0),
        p.scan_seconds,
        p.write_seconds
    );
    Ok(())
}
