//! A run's tables: one SQLite file per run, holding every table the run's
//! variables name (under those names), the files `write_table` produced,
//! and a ledger of finished steps.
//!
//! Each step commits its output table(s) and its ledger entry in **one
//! transaction**, so after a crash a step is either wholly done (and not
//! run again) or not at all (and run again from its inputs, which are
//! already committed). Steps that call out in batches (`model_call`) commit
//! each batch's rows with the batch's ledger entry the same way.
//!
//! The file is the run's own: a query in it can see only this run's
//! tables, and a step's query is first prepared against empty copies of
//! just its inputs (see [`crate::sql`]), so it cannot read its siblings or
//! the ledger either.

use crate::ops;
use crate::sql::{self, SqlError, SqlLimits};
use crate::table::Table;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteRow, SqliteSynchronous};
use sqlx::{
    ConnectOptions as _, Connection as _, Executor as _, Row as _, SqliteConnection, TypeInfo as _,
    ValueRef as _,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Rows per multi-row insert (kept under SQLite's bound-parameter limit).
const MAX_PARAMS: usize = 30_000;

/// A finished step as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// The step's index in the workflow.
    pub node: usize,
    /// Rows read.
    pub rows_in: i64,
    /// Rows written (to its first output, or the file).
    pub rows_out: i64,
    /// When it started and finished (ms since the epoch).
    pub started_at: i64,
    /// When it finished.
    pub finished_at: i64,
}

/// What a step's failure looks like to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The step.
    pub node: usize,
    /// Why, for a person.
    pub error: String,
    /// When.
    pub at: i64,
}

/// Why a step could not run.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The user's query was refused or failed.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// An input file is not a readable table.
    #[error("{file}: {error}")]
    Read {
        /// The file.
        file: String,
        /// What is wrong.
        error: ops::ReadError,
    },
    /// A file is over a configured limit, or the step cannot run as
    /// written.
    #[error("{0}")]
    Limit(String),
    /// A model service gave no results.
    #[error(transparent)]
    Model(#[from] crate::model::CallError),
    /// The run's own file failed: an internal error, logged, not shown.
    #[error("the run's storage failed")]
    Storage(#[from] sqlx::Error),
}

/// The most a run's file may hold: its tables, files and steps' records.
pub const MAX_RUN_BYTES: u64 = 8 << 30;
/// The most of one value a page of a table shows.
pub const SHOWN_CELL_BYTES: usize = 64 << 10;
/// A page of a table stops once its values reach this many bytes.
pub const SHOWN_PAGE_BYTES: usize = 8 << 20;

/// Column names and row count of a table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableInfo {
    /// The variable.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: i64,
}

/// One run's tables and ledger.
pub struct RunData {
    conn: SqliteConnection,
    path: PathBuf,
    /// Tables made, as read back (a table never changes once made).
    known: std::collections::HashMap<String, TableInfo>,
    /// When the running query must stop, in nanoseconds from `epoch`
    /// (0: no query running); read by the connection's progress handler.
    deadline: std::sync::Arc<std::sync::atomic::AtomicU64>,
    epoch: Instant,
}

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

use crate::sql::quote;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A CSV field as SQLite should hold it: a number when the text is exactly
/// how that number prints (so `15` compares as 15 but `007` stays text and
/// every value writes back out as it was read), else text.
fn typed(field: &str) -> Value {
    if let Ok(i) = field.parse::<i64>()
        && i.to_string() == field
    {
        return Value::from(i);
    }
    if field.contains('.')
        && let Ok(f) = field.parse::<f64>()
        && f.is_finite()
        && f.to_string() == field
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(field.to_owned())
}

/// A JSON value bound as SQLite holds it (true/false as 1/0, objects and
/// lists as JSON text).
pub(crate) fn bind_value<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    v: &Value,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    match v {
        Value::Null => q.bind(None::<String>),
        Value::Bool(b) => q.bind(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => q.bind(i),
            None => q.bind(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => q.bind(s.clone()),
        other => q.bind(other.to_string()),
    }
}

/// A cell read back from SQLite as JSON.
pub(crate) fn cell(row: &SqliteRow, i: usize) -> Result<Value, sqlx::Error> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let kind = raw.type_info().name().to_owned();
    Ok(match kind.as_str() {
        "INTEGER" => Value::from(row.try_get::<i64, _>(i)?),
        "REAL" => serde_json::Number::from_f64(row.try_get::<f64, _>(i)?)
            .map_or(Value::Null, Value::Number),
        "BLOB" => Value::String(
            row.try_get::<Vec<u8>, _>(i)?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        ),
        _ => Value::String(row.try_get::<String, _>(i)?),
    })
}

fn csv_field(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Sqlite>;

impl RunData {
    /// Opens an existing run file only to read it: nothing is created, so
    /// the open never waits for the file's write lock (a step may hold it
    /// while it works); in WAL mode the reads then never wait either. A
    /// file not made yet is opened as [`RunData::open`] does.
    pub async fn open_to_read(path: &Path) -> Result<Self, sqlx::Error> {
        if !path.exists() {
            return Self::open(path).await;
        }
        // Read-only, and without setting the journal mode (the writer made
        // the file WAL), so nothing here takes a lock a writer holds.
        let mut conn = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .busy_timeout(std::time::Duration::from_secs(10))
            .connect()
            .await?;
        let made: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN \
             ('_tutti_tables', '_tutti_steps', '_tutti_batches', '_tutti_files', '_tutti_sent')",
        )
        .fetch_one(&mut conn)
        .await?;
        if made < 5 {
            // A file its runner has only just created: open it as the
            // runner does, which waits for the runner to finish making it.
            drop(conn);
            return Self::open(path).await;
        }
        Self::watched(conn, path).await
    }

    async fn connect(path: &Path) -> Result<sqlx::SqliteConnection, sqlx::Error> {
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10))
            // The run's byte budget: past it every write fails ("database
            // or disk is full") and the step with it.
            .pragma("max_page_count", (MAX_RUN_BYTES / 4096).to_string())
            .connect()
            .await
    }

    /// Opens (creating if needed) the run file at `path`.
    pub async fn open(path: &Path) -> Result<Self, sqlx::Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        }
        let mut conn = Self::connect(path).await?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _tutti_tables (name TEXT PRIMARY KEY, node INTEGER NOT NULL, \
                columns TEXT NOT NULL, rows INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS _tutti_steps (node INTEGER PRIMARY KEY, status TEXT NOT NULL, \
                rows_in INTEGER NOT NULL DEFAULT 0, rows_out INTEGER NOT NULL DEFAULT 0, \
                started_at INTEGER, finished_at INTEGER, error TEXT);
             CREATE TABLE IF NOT EXISTS _tutti_batches (node INTEGER NOT NULL, batch INTEGER NOT NULL, \
                rows INTEGER NOT NULL, PRIMARY KEY (node, batch));
             CREATE TABLE IF NOT EXISTS _tutti_files (name TEXT PRIMARY KEY, node INTEGER NOT NULL, \
                content BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS _tutti_sent (node INTEGER NOT NULL, batch INTEGER NOT NULL, \
                at INTEGER NOT NULL, PRIMARY KEY (node, batch));",
        )
        .await?;
        // A step's row limit is checked inside its own transaction: a row
        // that breaks this check aborts the step before it commits.
        conn.execute(
            "CREATE TEMP TABLE _tutti_guard (within_limit INTEGER NOT NULL CHECK (within_limit))",
        )
        .await?;
        Self::watched(conn, path).await
    }

    /// The run data over `conn`, with the deadline its queries stop at.
    async fn watched(mut conn: sqlx::SqliteConnection, path: &Path) -> Result<Self, sqlx::Error> {
        let deadline = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let epoch = Instant::now();
        let watched = deadline.clone();
        conn.lock_handle()
            .await?
            .set_progress_handler(10_000, move || {
                let d = watched.load(std::sync::atomic::Ordering::Relaxed);
                d == 0 || (epoch.elapsed().as_nanos() as u64) < d
            });
        Ok(Self {
            conn,
            path: path.to_owned(),
            known: std::collections::HashMap::new(),
            deadline,
            epoch,
        })
    }

    /// Begins a write transaction holding the file's write lock from the
    /// start (`BEGIN IMMEDIATE`): a transaction that read first and wrote
    /// later could find another connection (the API taking a model's
    /// callback) had written meanwhile and fail at once, where waiting for
    /// the lock succeeds.
    async fn write(&mut self) -> Result<Tx<'_>, sqlx::Error> {
        self.conn.begin_with("BEGIN IMMEDIATE").await
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the file.
    pub async fn close(self) {
        let _ = self.conn.close().await;
    }

    /// Finished steps, by index.
    pub async fn done(&mut self) -> Result<Vec<Done>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT node, rows_in, rows_out, started_at, finished_at FROM _tutti_steps \
             WHERE status = 'completed' ORDER BY node",
        )
        .fetch_all(&mut self.conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Done {
                    node: usize::try_from(r.try_get::<i64, _>(0)?).unwrap_or(usize::MAX),
                    rows_in: r.try_get(1)?,
                    rows_out: r.try_get(2)?,
                    started_at: r.try_get::<Option<i64>, _>(3)?.unwrap_or(0),
                    finished_at: r.try_get::<Option<i64>, _>(4)?.unwrap_or(0),
                })
            })
            .collect()
    }

    /// Failed steps, by index.
    pub async fn failed(&mut self) -> Result<Vec<Failed>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT node, error, finished_at FROM _tutti_steps WHERE status = 'failed' ORDER BY node",
        )
        .fetch_all(&mut self.conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Failed {
                    node: usize::try_from(r.try_get::<i64, _>(0)?).unwrap_or(usize::MAX),
                    error: r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                    at: r.try_get::<Option<i64>, _>(2)?.unwrap_or(0),
                })
            })
            .collect()
    }

    /// Records a step's failure (the step wrote nothing).
    pub async fn fail(&mut self, node: usize, error: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO _tutti_steps (node, status, error, finished_at) VALUES ($1, 'failed', $2, $3) \
             ON CONFLICT (node) DO UPDATE SET status = 'failed', error = excluded.error, \
             finished_at = excluded.finished_at",
        )
        .bind(node as i64)
        .bind(error)
        .bind(now_ms())
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }

    /// Forgets a failed step so it runs again.
    pub async fn reset_failed(&mut self, node: usize) -> Result<bool, sqlx::Error> {
        let r = sqlx::query("DELETE FROM _tutti_steps WHERE node = $1 AND status = 'failed'")
            .bind(node as i64)
            .execute(&mut self.conn)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// A table's columns and row count, if the run has made it.
    pub async fn table(&mut self, name: &str) -> Result<Option<TableInfo>, sqlx::Error> {
        if let Some(t) = self.known.get(name) {
            return Ok(Some(t.clone()));
        }
        let row = sqlx::query("SELECT columns, rows FROM _tutti_tables WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut self.conn)
            .await?;
        Ok(match row {
            Some(r) => {
                let info = TableInfo {
                    name: name.to_owned(),
                    columns: serde_json::from_str(&r.try_get::<String, _>(0)?).unwrap_or_default(),
                    rows: r.try_get(1)?,
                };
                self.known.insert(name.to_owned(), info.clone());
                Some(info)
            }
            None => None,
        })
    }

    /// Every table the run has made, in the order made.
    pub async fn tables(&mut self) -> Result<Vec<TableInfo>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT name, columns, rows FROM _tutti_tables ORDER BY node, rowid")
                .fetch_all(&mut self.conn)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(TableInfo {
                    name: r.try_get(0)?,
                    columns: serde_json::from_str(&r.try_get::<String, _>(1)?).unwrap_or_default(),
                    rows: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Rows `offset..offset+limit` of a table, in order, for people to
    /// look at: a value longer than [`SHOWN_CELL_BYTES`] is cut there (the
    /// database hands over only that much), and the page stops once it
    /// holds [`SHOWN_PAGE_BYTES`], so a table of huge values cannot make
    /// one page huge.
    pub async fn rows(
        &mut self,
        name: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Option<Table>, sqlx::Error> {
        let Some(info) = self.table(name).await? else {
            return Ok(None);
        };
        let cells: Vec<String> = info
            .columns
            .iter()
            .map(|c| {
                let q = quote(c);
                format!(
                    "CASE WHEN typeof({q}) IN ('text', 'blob') AND length({q}) > {SHOWN_CELL_BYTES} \
                     THEN substr({q}, 1, {SHOWN_CELL_BYTES}) ELSE {q} END"
                )
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY rowid LIMIT $1 OFFSET $2",
            if cells.is_empty() {
                "1".to_owned()
            } else {
                cells.join(", ")
            },
            quote(name)
        );
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .bind(offset)
            .fetch(&mut self.conn);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(r) = futures_util::TryStreamExt::try_next(&mut rows).await? {
            let mut values = Vec::with_capacity(info.columns.len());
            for i in 0..info.columns.len() {
                let v = cell(&r, i)?;
                bytes += match &v {
                    Value::String(s) => s.len(),
                    _ => 8,
                };
                values.push(v);
            }
            out.push(values);
            if bytes >= SHOWN_PAGE_BYTES {
                break;
            }
        }
        drop(rows);
        Ok(Some(Table {
            columns: info.columns,
            rows: out,
        }))
    }

    /// A file `write_table` produced.
    pub async fn file(&mut self, name: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        sqlx::query_scalar("SELECT content FROM _tutti_files WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut self.conn)
            .await
    }

    /// The files produced so far, with their sizes in bytes.
    pub async fn files(&mut self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let rows = sqlx::query("SELECT name, length(content) FROM _tutti_files ORDER BY node")
            .fetch_all(&mut self.conn)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn finish(
        tx: &mut Tx<'_>,
        node: usize,
        outputs: &[&str],
        rows_in: i64,
        started_at: i64,
    ) -> Result<Done, sqlx::Error> {
        let mut rows_out = 0;
        for (i, out) in outputs.iter().enumerate() {
            let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "INSERT INTO _tutti_tables (name, node, columns, rows) \
                 SELECT $1, $2, (SELECT json_group_array(name) FROM pragma_table_info($1)), \
                 (SELECT count(*) FROM {}) RETURNING rows",
                quote(out)
            )))
            .bind(*out)
            .bind(node as i64)
            .fetch_one(&mut **tx)
            .await?;
            if i == 0 {
                rows_out = count;
            }
        }
        Self::ledger(tx, node, rows_in, rows_out, started_at).await
    }

    async fn ledger(
        tx: &mut Tx<'_>,
        node: usize,
        rows_in: i64,
        rows_out: i64,
        started_at: i64,
    ) -> Result<Done, sqlx::Error> {
        let finished_at = now_ms();
        sqlx::query(
            "INSERT INTO _tutti_steps (node, status, rows_in, rows_out, started_at, finished_at) \
             VALUES ($1, 'completed', $2, $3, $4, $5) ON CONFLICT (node) DO UPDATE SET \
             status = 'completed', rows_in = excluded.rows_in, rows_out = excluded.rows_out, \
             started_at = excluded.started_at, finished_at = excluded.finished_at, error = NULL",
        )
        .bind(node as i64)
        .bind(rows_in)
        .bind(rows_out)
        .bind(started_at)
        .bind(finished_at)
        .execute(&mut **tx)
        .await?;
        Ok(Done {
            node,
            rows_in,
            rows_out,
            started_at,
            finished_at,
        })
    }

    async fn create_table(
        tx: &mut Tx<'_>,
        name: &str,
        columns: &[String],
    ) -> Result<(), sqlx::Error> {
        let cols: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {} ({})",
            quote(name),
            cols.join(", ")
        )))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn insert_rows(
        tx: &mut Tx<'_>,
        name: &str,
        width: usize,
        rows: &[Vec<Value>],
    ) -> Result<(), sqlx::Error> {
        if width == 0 || rows.is_empty() {
            return Ok(());
        }
        let per = (MAX_PARAMS / width).clamp(1, 500);
        let one = format!("({})", vec!["?"; width].join(","));
        for chunk in rows.chunks(per) {
            let sql = format!(
                "INSERT INTO {} VALUES {}",
                quote(name),
                vec![one.as_str(); chunk.len()].join(",")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                for i in 0..width {
                    q = bind_value(q, row.get(i).unwrap_or(&Value::Null));
                }
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// `read_table`: parses `bytes` as CSV into table `out` (with `_id`
    /// 1..N in front), streaming, and records the step, in one transaction.
    pub async fn read_csv(
        &mut self,
        node: usize,
        out: &str,
        file: &str,
        bytes: &[u8],
        max_rows: u64,
    ) -> Result<Done, StepError> {
        let started = now_ms();
        let read_err = |error| StepError::Read {
            file: file.to_owned(),
            error,
        };
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
        let headers = reader
            .headers()
            .map_err(|e| {
                read_err(ops::ReadError::BadLine {
                    line: 1,
                    message: e.to_string(),
                })
            })?
            .clone();
        let columns = ops::header_columns(&headers).map_err(read_err)?;
        let mut tx = self.write().await?;
        Self::create_table(&mut tx, out, &columns).await?;
        let width = columns.len();
        let batch_rows = (MAX_PARAMS / width).clamp(1, 500) * 8;
        let mut batch: Vec<Vec<Value>> = Vec::with_capacity(batch_rows);
        let mut n: u64 = 0;
        let mut record = csv::StringRecord::new();
        loop {
            let more = reader.read_record(&mut record).map_err(|e| {
                read_err(ops::ReadError::BadLine {
                    line: e.position().map_or(n + 2, |p| p.line()),
                    message: match e.kind() {
                        csv::ErrorKind::UnequalLengths {
                            expected_len, len, ..
                        } => format!("{len} fields where the header has {expected_len}"),
                        _ => e.to_string(),
                    },
                })
            })?;
            if !more {
                break;
            }
            n += 1;
            if n > max_rows {
                return Err(StepError::Limit(format!(
                    "{file} has more than {max_rows} rows, the most a table may hold here"
                )));
            }
            let mut row = Vec::with_capacity(width);
            row.push(Value::from(n));
            row.extend(record.iter().map(typed));
            batch.push(row);
            if batch.len() == batch_rows {
                Self::insert_rows(&mut tx, out, width, &batch).await?;
                batch.clear();
            }
        }
        Self::insert_rows(&mut tx, out, width, &batch).await?;
        let done = Self::finish(&mut tx, node, &[out], 0, started).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Loads an in-memory table as `out` and records the step, in one
    /// transaction (a human step's answers and labels, a source's rows).
    pub async fn put_tables(
        &mut self,
        node: usize,
        rows_in: i64,
        outputs: &[(&str, &Table)],
    ) -> Result<Done, StepError> {
        let started = now_ms();
        let mut tx = self.write().await?;
        for (name, table) in outputs {
            Self::create_table(&mut tx, name, &table.columns).await?;
            Self::insert_rows(&mut tx, name, table.columns.len(), &table.rows).await?;
        }
        let names: Vec<&str> = outputs.iter().map(|(n, _)| *n).collect();
        let done = Self::finish(&mut tx, node, &names, rows_in, started).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// `keyword_label`: copies a finished labeling task's result table
    /// (`labels` in the SQLite file `work`) as `outputs[0]` and, if named,
    /// its production table as `outputs[1]`, and records the step, in one
    /// transaction.
    pub async fn put_labels(
        &mut self,
        node: usize,
        work: &Path,
        outputs: &[String],
        rows_in: i64,
        started: i64,
    ) -> Result<Done, StepError> {
        sqlx::query("ATTACH DATABASE $1 AS lab")
            .bind(work.to_string_lossy().into_owned())
            .execute(&mut self.conn)
            .await?;
        let copied = async {
            let mut tx = self.write().await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {} AS SELECT id, source, author, label, pattern, match_content, create_time \
                 FROM lab.\"labels\" ORDER BY seq",
                quote(&outputs[0])
            )))
            .execute(&mut *tx)
            .await?;
            if let Some(prod) = outputs.get(1) {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "CREATE TABLE {} AS SELECT id, source_author, panel, create_time, field_content, match_content \
                     FROM lab.\"wh_panel_mapping_labels\" ORDER BY seq",
                    quote(prod)
                )))
                .execute(&mut *tx)
                .await?;
            }
            let names: Vec<&str> = outputs.iter().map(String::as_str).collect();
            let done = Self::finish(&mut tx, node, &names, rows_in, started).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(done)
        }
        .await;
        let _ = sqlx::query("DETACH DATABASE lab")
            .execute(&mut self.conn)
            .await;
        Ok(copied?)
    }

    /// Loads rows arriving in batches down `rx` as `out` (made with
    /// `columns`) and records the step, all in one transaction, committed
    /// only when the sender closes the channel without sending an error;
    /// an error rolls everything back and is returned.
    pub async fn load_rows(
        &mut self,
        node: usize,
        out: &str,
        columns: &[String],
        mut rx: tokio::sync::mpsc::Receiver<Result<Vec<Vec<Value>>, String>>,
    ) -> Result<Done, StepError> {
        let started = now_ms();
        let mut tx = self.write().await?;
        Self::create_table(&mut tx, out, columns).await?;
        let mut n = 0i64;
        while let Some(batch) = rx.recv().await {
            let batch = batch.map_err(StepError::Limit)?;
            n += batch.len() as i64;
            Self::insert_rows(&mut tx, out, columns.len(), &batch).await?;
        }
        let done = Self::finish(&mut tx, node, &[out], n, started).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Records a step that made no table (it wrote elsewhere).
    pub async fn record(
        &mut self,
        node: usize,
        rows_in: i64,
        rows_out: i64,
        started_at: i64,
    ) -> Result<Done, sqlx::Error> {
        let mut tx = self.write().await?;
        let done = Self::ledger(&mut tx, node, rows_in, rows_out, started_at).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// When each batch of a callback step was last sent.
    pub async fn sent(&mut self, node: usize) -> Result<HashMap<i64, i64>, sqlx::Error> {
        let rows = sqlx::query("SELECT batch, at FROM _tutti_sent WHERE node = $1")
            .bind(node as i64)
            .fetch_all(&mut self.conn)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Records that a batch of a callback step was sent at `at`.
    pub async fn mark_sent(&mut self, node: usize, batch: i64, at: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO _tutti_sent (node, batch, at) VALUES ($1, $2, $3) \
             ON CONFLICT (node, batch) DO UPDATE SET at = excluded.at",
        )
        .bind(node as i64)
        .bind(batch)
        .bind(at)
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }

    /// Records that a batch of a step was delivered; false if it already
    /// was.
    pub async fn mark_batch(
        &mut self,
        node: usize,
        batch: i64,
        rows: i64,
    ) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query(
            "INSERT INTO _tutti_batches (node, batch, rows) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(node as i64)
        .bind(batch)
        .bind(rows)
        .execute(&mut self.conn)
        .await?
        .rows_affected()
            == 1)
    }

    async fn count(&mut self, name: &str) -> Result<i64, sqlx::Error> {
        Ok(self.table(name).await?.map_or(0, |t| t.rows))
    }

    /// `sample_random`: `n` rows of `input` drawn with `seed`, in their
    /// order, as `out`.
    pub async fn sample(
        &mut self,
        node: usize,
        input: &str,
        out: &str,
        n: u64,
        seed: u64,
    ) -> Result<Done, StepError> {
        let started = now_ms();
        let len = self.count(input).await?;
        let chosen = ops::sample_indices(usize::try_from(len).unwrap_or(0), n, seed);
        let positions: Vec<i64> = chosen.iter().map(|&i| i as i64).collect();
        let mut tx = self.write().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {o} AS SELECT * FROM {i} WHERE 0",
            o = quote(out),
            i = quote(input)
        )))
        .execute(&mut *tx)
        .await?;
        // Row positions (0-based, in rowid order) become rowids through a
        // numbered copy of the rowids.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {o} SELECT i.* FROM (SELECT rowid AS r, row_number() OVER (ORDER BY rowid) - 1 AS p \
             FROM {i}) AS k JOIN json_each($1) AS j ON j.value = k.p JOIN {i} AS i ON i.rowid = k.r ORDER BY k.r",
            o = quote(out),
            i = quote(input)
        )))
        .bind(serde_json::to_string(&positions).unwrap_or_default())
        .execute(&mut *tx)
        .await?;
        let done = Self::finish(&mut tx, node, &[out], len, started).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// `exec_sql`/`sql`: the user's query over `inputs`, as `out`. The
    /// query is checked and prepared against empty copies of the inputs
    /// alone before it runs here, and stops at the time limit.
    pub async fn sql(
        &mut self,
        node: usize,
        inputs: &[&str],
        out: &str,
        query: &str,
        limits: SqlLimits,
    ) -> Result<Done, StepError> {
        let started = now_ms();
        let mut shapes = Vec::with_capacity(inputs.len());
        let mut rows_in = 0;
        for name in inputs {
            let info = self
                .table(name)
                .await?
                .ok_or_else(|| SqlError::Input((*name).to_owned(), "it was not made".into()))?;
            rows_in += info.rows;
            shapes.push((name.to_string(), info.columns));
        }
        let query = sql::statement(query)?;
        self.check_reads(inputs, query, &shapes, limits).await?;
        let until = self.epoch.elapsed() + limits.time;
        self.deadline.store(
            (until.as_nanos() as u64).max(1),
            std::sync::atomic::Ordering::Relaxed,
        );
        let result = self
            .sql_in(node, out, query, limits, &shapes, rows_in, started)
            .await;
        self.deadline.store(0, std::sync::atomic::Ordering::Relaxed);
        result
    }

    /// Refuses a query that would read anything but its input tables: the
    /// query is only compiled (`EXPLAIN`), beside a read of all the inputs,
    /// and every table the query opens must be one the inputs' read opens
    /// (tables are told apart by where SQLite keeps them, their root
    /// pages). A name the run does not hold fails to compile; a table of
    /// the run that is not an input (or the ledger) is named in the refusal.
    async fn check_reads(
        &mut self,
        inputs: &[&str],
        query: &str,
        shapes: &[(String, Vec<String>)],
        limits: SqlLimits,
    ) -> Result<(), StepError> {
        let from: Vec<String> = inputs.iter().map(|t| quote(t)).collect();
        let plans = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "EXPLAIN SELECT 1 FROM {};\nEXPLAIN {}",
            from.join(", "),
            query.trim()
        )))
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| sql::query_error(e, limits, shapes))?;
        // The second plan starts where addresses start again from 0.
        let mut allowed = Vec::new();
        let mut opened = Vec::new();
        let mut plan = 0;
        for step in &plans {
            let addr: i64 = step.try_get(0)?;
            if addr == 0 {
                plan += 1;
            }
            let opcode: String = step.try_get(1)?;
            if !matches!(opcode.as_str(), "OpenRead" | "OpenWrite" | "ReopenIdx") {
                continue;
            }
            let (root, db): (i64, i64) = (step.try_get(3)?, step.try_get(4)?);
            if plan == 1 {
                allowed.push(root);
            } else {
                opened.push((root, db));
            }
        }
        for (root, db) in opened {
            if db == 0 && allowed.contains(&root) {
                continue;
            }
            let name: Option<String> =
                sqlx::query_scalar("SELECT tbl_name FROM sqlite_master WHERE rootpage = $1")
                    .bind(root)
                    .fetch_optional(&mut self.conn)
                    .await?;
            return Err(SqlError::UnknownTable {
                table: name.unwrap_or_else(|| "a table outside the run".into()),
                inputs: shapes
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into());
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn sql_in(
        &mut self,
        node: usize,
        out: &str,
        query: &str,
        limits: SqlLimits,
        shapes: &[(String, Vec<String>)],
        rows_in: i64,
        started: i64,
    ) -> Result<Done, StepError> {
        // One round trip makes the table, records it and the step, checks
        // the row limit and commits; any failure rolls it all back.
        let max = i64::try_from(limits.max_rows).unwrap_or(i64::MAX - 1);
        let batch = format!(
            "BEGIN IMMEDIATE;\n\
             CREATE TABLE {out_q} AS SELECT * FROM (\n{query}\n) LIMIT {limit};\n\
             INSERT INTO _tutti_tables (name, node, columns, rows) SELECT {out_s}, {node}, \
               (SELECT json_group_array(name) FROM pragma_table_info({out_s})), \
               (SELECT count(*) FROM {out_q}) RETURNING columns, rows;\n\
             INSERT INTO _tutti_steps (node, status, rows_in, rows_out, started_at, finished_at) \
               SELECT {node}, 'completed', {rows_in}, rows, {started}, {finished} \
               FROM _tutti_tables WHERE name = {out_s} \
               ON CONFLICT (node) DO UPDATE SET status = 'completed', rows_in = excluded.rows_in, \
               rows_out = excluded.rows_out, started_at = excluded.started_at, \
               finished_at = excluded.finished_at, error = NULL \
               RETURNING rows_out, finished_at;\n\
             INSERT INTO temp._tutti_guard SELECT rows <= {max} FROM _tutti_tables WHERE name = {out_s};\n\
             DELETE FROM temp._tutti_guard;\n\
             COMMIT;",
            out_q = quote(out),
            out_s = sql_literal(out),
            query = query.trim(),
            limit = max.saturating_add(1),
            finished = now_ms(),
        );
        let made = sqlx::raw_sql(sqlx::AssertSqlSafe(batch))
            .fetch_all(&mut self.conn)
            .await;
        let (made, row) = match made {
            Ok(rows) if rows.len() == 2 => {
                let mut rows = rows.into_iter();
                (rows.next(), rows.next())
            }
            Ok(_) => (None, None),
            Err(e) => {
                self.rollback().await;
                if e.to_string().contains("within_limit") {
                    return Err(SqlError::TooManyRows(limits.max_rows).into());
                }
                return Err(sql::query_error(e, limits, shapes).into());
            }
        };
        let (Some(made), Some(row)) = (made, row) else {
            self.rollback().await;
            return Err(StepError::Storage(sqlx::Error::Protocol(
                "the step's record was not written".into(),
            )));
        };
        let (rows_out, finished_at): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let columns: String = made.try_get(0)?;
        self.known.insert(
            out.to_owned(),
            TableInfo {
                name: out.to_owned(),
                columns: serde_json::from_str(&columns).unwrap_or_default(),
                rows: made.try_get(1)?,
            },
        );
        Ok(Done {
            node,
            rows_in,
            rows_out,
            started_at: started,
            finished_at,
        })
    }

    async fn rollback(&mut self) {
        let _ = self.conn.execute("ROLLBACK").await;
    }

    /// `write_table`: `input` as CSV (header first; null as an empty
    /// field), kept as the run's output file `file`.
    pub async fn write_csv(
        &mut self,
        node: usize,
        input: &str,
        file: &str,
    ) -> Result<Done, StepError> {
        use futures_util::TryStreamExt as _;
        let started = now_ms();
        let info = self
            .table(input)
            .await?
            .ok_or_else(|| SqlError::Input(input.to_owned(), "it was not made".into()))?;
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record(&info.columns);
        let mut n = 0i64;
        {
            let sql = format!("SELECT * FROM {} ORDER BY rowid", quote(input));
            let mut stream = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut self.conn);
            let mut fields: Vec<String> = Vec::with_capacity(info.columns.len());
            while let Some(row) = stream.try_next().await? {
                fields.clear();
                for i in 0..info.columns.len() {
                    fields.push(csv_field(&cell(&row, i)?));
                }
                let _ = w.write_record(&fields);
                n += 1;
            }
        }
        let content = w.into_inner().unwrap_or_default();
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO _tutti_files (name, node, content) VALUES ($1, $2, $3)")
            .bind(file)
            .bind(node as i64)
            .bind(content)
            .execute(&mut *tx)
            .await?;
        let done = Self::ledger(&mut tx, node, n, n, started).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Every row of a table as (column, value) maps, in order.
    pub async fn all_rows(&mut self, name: &str) -> Result<Option<Table>, sqlx::Error> {
        self.rows(name, 0, i64::MAX).await
    }

    /// Batches of a batched step already committed, in order, with their
    /// row counts.
    pub async fn batches(&mut self, node: usize) -> Result<Vec<(i64, i64)>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT batch, rows FROM _tutti_batches WHERE node = $1 ORDER BY batch")
                .bind(node as i64)
                .fetch_all(&mut self.conn)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Commits one batch of a batched step: its rows appended to `out`
    /// (created on the first batch with `columns`) and the batch's ledger
    /// entry, in one transaction. A batch already committed is refused
    /// (returns false) and changes nothing.
    pub async fn put_batch(
        &mut self,
        node: usize,
        batch: i64,
        out: &str,
        columns: &[String],
        rows: &[Vec<Value>],
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.write().await?;
        let fresh = sqlx::query(
            "INSERT INTO _tutti_batches (node, batch, rows) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(node as i64)
        .bind(batch)
        .bind(rows.len() as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            return Ok(false);
        }
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1")
                .bind(out)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            Self::create_table(&mut tx, out, columns).await?;
        }
        Self::insert_rows(&mut tx, out, columns.len(), rows).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Closes a batched step: records `out` (made empty with `columns` if
    /// no batch had rows) and the step, in one transaction.
    pub async fn finish_batched(
        &mut self,
        node: usize,
        out: &str,
        columns: &[String],
        rows_in: i64,
        started_at: i64,
    ) -> Result<Done, sqlx::Error> {
        let mut tx = self.write().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1")
                .bind(out)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            Self::create_table(&mut tx, out, columns).await?;
        }
        let done = Self::finish(&mut tx, node, &[out], rows_in, started_at).await?;
        tx.commit().await?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn data() -> (tempdir::Dir, RunData) {
        let dir = tempdir::Dir::new();
        let d = RunData::open(&dir.0.join("run.sqlite")).await.unwrap();
        (dir, d)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "tutti-rundata-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn csv_fields_become_numbers_only_when_they_print_back_the_same() {
        assert_eq!(typed("15"), Value::from(15));
        assert_eq!(typed("-3"), Value::from(-3));
        assert_eq!(typed("1.5"), serde_json::json!(1.5));
        assert_eq!(typed("007"), Value::from("007"));
        assert_eq!(typed("1.50"), Value::from("1.50"));
        assert_eq!(typed("+3"), Value::from("+3"));
        assert_eq!(typed("1e3"), Value::from("1e3"));
        assert_eq!(typed(""), Value::from(""));
        assert_eq!(typed("Ada"), Value::from("Ada"));
    }

    #[tokio::test]
    async fn a_chain_of_steps_reads_samples_queries_and_writes_back_what_it_read() {
        let (_dir, mut d) = data().await;
        let csv = b"name,price,zip\nAda,15,007\nBob,9,123\nCy,1.5,\n";
        let done = d.read_csv(0, "T", "t.csv", csv, 100).await.unwrap();
        assert_eq!((done.rows_in, done.rows_out), (0, 3));
        d.sql(
            1,
            &["T"],
            "U",
            "SELECT * FROM T WHERE price > 5",
            SqlLimits::default(),
        )
        .await
        .unwrap();
        let u = d.all_rows("U").await.unwrap().unwrap();
        let names: Vec<&Value> = u.rows.iter().map(|r| &r[1]).collect();
        assert_eq!(
            names,
            [&Value::from("Ada"), &Value::from("Bob")],
            "15 and 9 compare as numbers"
        );
        d.sample(2, "T", "S", 2, 7).await.unwrap();
        assert_eq!(d.table("S").await.unwrap().unwrap().rows, 2);
        d.write_csv(3, "T", "out.csv").await.unwrap();
        assert_eq!(
            String::from_utf8(d.file("out.csv").await.unwrap().unwrap()).unwrap(),
            "_id,name,price,zip\n1,Ada,15,007\n2,Bob,9,123\n3,Cy,1.5,\n"
        );
        let nodes: Vec<usize> = d.done().await.unwrap().iter().map(|s| s.node).collect();
        assert_eq!(nodes, [0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn a_sample_here_draws_the_rows_the_in_memory_sample_draws() {
        let (_dir, mut d) = data().await;
        let mut csv = String::from("x\n");
        for i in 0..500 {
            csv.push_str(&format!("v{i}\n"));
        }
        d.read_csv(0, "T", "t.csv", csv.as_bytes(), 1000)
            .await
            .unwrap();
        d.sample(1, "T", "S", 37, 11).await.unwrap();
        let here = d.all_rows("S").await.unwrap().unwrap();
        let all = d.all_rows("T").await.unwrap().unwrap();
        assert_eq!(here.rows, ops::sample(&all, 37, 11).rows);
    }

    #[tokio::test]
    async fn a_query_cannot_read_tables_that_are_not_its_inputs_or_the_ledger() {
        let (_dir, mut d) = data().await;
        d.read_csv(0, "T", "t.csv", b"a\n1\n", 10).await.unwrap();
        d.read_csv(1, "Secret", "s.csv", b"b\n2\n", 10)
            .await
            .unwrap();
        for q in [
            "SELECT * FROM Secret",
            "SELECT * FROM _tutti_steps",
            "SELECT * FROM T JOIN _tutti_files",
        ] {
            let e = d
                .sql(2, &["T"], "U", q, SqlLimits::default())
                .await
                .unwrap_err();
            assert!(
                matches!(e, StepError::Sql(SqlError::UnknownTable { .. })),
                "{q}: {e}"
            );
        }
        let e = d
            .sql(
                2,
                &["T"],
                "U",
                "SELECT name FROM sqlite_master",
                SqlLimits::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StepError::Sql(SqlError::Forbidden(_))), "{e}");
        assert!(
            d.table("U").await.unwrap().is_none(),
            "a refused step leaves nothing"
        );
    }

    #[tokio::test]
    async fn a_query_over_its_time_limit_stops_and_leaves_nothing() {
        let (_dir, mut d) = data().await;
        d.read_csv(0, "T", "t.csv", b"a\n1\n", 10).await.unwrap();
        let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                    SELECT max(x) FROM c, T";
        let limits = SqlLimits {
            time: std::time::Duration::from_millis(200),
            max_rows: 10,
        };
        let e = d.sql(1, &["T"], "U", slow, limits).await.unwrap_err();
        assert!(matches!(e, StepError::Sql(SqlError::Timeout(200))), "{e}");
        assert!(d.table("U").await.unwrap().is_none());
        // The connection still works, without the old deadline.
        d.sql(1, &["T"], "U", "SELECT a FROM T", limits)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn quoted_catalog_names_control_characters_and_trailing_comments_are_handled() {
        let (_dir, mut d) = data().await;
        d.read_csv(0, "T", "t.csv", b"a\n1\n", 10).await.unwrap();
        for q in [
            "SELECT * FROM T, \"pragma_table_list\"",
            "SELECT * FROM T, `pragma_database_list`",
            "SELECT * FROM T, [dbstat]",
            "SELECT * FROM T -- \u{0}",
        ] {
            let e = d
                .sql(1, &["T"], "U", q, SqlLimits::default())
                .await
                .unwrap_err();
            assert!(
                matches!(e, StepError::Sql(SqlError::Forbidden(_))),
                "{q}: {e}"
            );
        }
        let ok = d
            .sql(
                1,
                &["T"],
                "U",
                "SELECT a FROM T; -- done;",
                SqlLimits::default(),
            )
            .await
            .unwrap();
        assert_eq!(ok.rows_out, 1);
    }

    #[tokio::test]
    async fn a_query_over_its_row_limit_is_refused_and_leaves_nothing() {
        let (_dir, mut d) = data().await;
        d.read_csv(0, "T", "t.csv", b"a\n1\n2\n3\n", 10)
            .await
            .unwrap();
        let limits = SqlLimits {
            time: std::time::Duration::from_secs(5),
            max_rows: 2,
        };
        let e = d
            .sql(1, &["T"], "U", "SELECT * FROM T", limits)
            .await
            .unwrap_err();
        assert!(matches!(e, StepError::Sql(SqlError::TooManyRows(2))), "{e}");
        assert!(d.table("U").await.unwrap().is_none());
        assert!(d.done().await.unwrap().iter().all(|s| s.node != 1));
        let ok = d
            .sql(1, &["T"], "U", "SELECT * FROM T WHERE a > 1", limits)
            .await
            .unwrap();
        assert_eq!(ok.rows_out, 2, "exactly at the limit is fine");
    }

    #[tokio::test]
    async fn two_connections_writing_one_run_file_wait_for_each_other() {
        let (dir, mut a) = data().await;
        let mut b = RunData::open(&dir.0.join("run.sqlite")).await.unwrap();
        let cols = vec!["_id".to_owned()];
        let writer = tokio::spawn(async move {
            for batch in 0..200 {
                let rows = vec![vec![Value::from(batch)]];
                b.put_batch(1, batch, "M", &cols, &rows).await.unwrap();
            }
            b.close().await;
        });
        // Meanwhile the other connection makes tables, each in a transaction
        // that reads before it writes.
        for node in 0..100 {
            a.finish_batched(10 + node, &format!("E{node}"), &["x".to_owned()], 0, 0)
                .await
                .unwrap();
        }
        writer.await.unwrap();
        assert_eq!(a.batches(1).await.unwrap().len(), 200);
    }

    #[tokio::test]
    async fn a_batch_is_committed_once_with_its_rows() {
        let (_dir, mut d) = data().await;
        let cols = vec!["_id".to_owned(), "y".to_owned()];
        let rows = vec![vec![Value::from(1), Value::from("a")]];
        assert!(d.put_batch(4, 0, "M", &cols, &rows).await.unwrap());
        assert!(!d.put_batch(4, 0, "M", &cols, &rows).await.unwrap());
        assert!(d.put_batch(4, 1, "M", &cols, &rows).await.unwrap());
        d.finish_batched(4, "M", &cols, 2, 0).await.unwrap();
        assert_eq!(d.table("M").await.unwrap().unwrap().rows, 2);
        assert_eq!(d.batches(4).await.unwrap(), [(0, 1), (1, 1)]);
    }
}
