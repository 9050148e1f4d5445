//! SQLite as a labeling source and sink, through SQLite's own API
//! (rusqlite) rather than the async driver: a scan of millions of rows
//! spends its time in SQLite, not in per-row hand-offs.
//!
//! The source reads in rowid order, in chunks of consecutive rowids that
//! two scanners share (a plain table scan, split in two; a whole table
//! straight from its pages where [`super::pages`] reads it exactly); or,
//! where the time column has an index and a range is given, in (time,
//! rowid) order along that index with one scanner, so that a narrow range
//! reads only its rows.

use super::pages::{Scratch as PageScratch, TableFile};
use super::tables::{Dialect, Value, identifier, state_params};
use super::{
    AUTHOR, Batch, Checkpoint, Columns, FIELD, ID, Keep, LabelError, Labeled, Names, Progress,
    SOURCE, Sink, Source, TIME, TaskInfo, TimeRange,
};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, params_from_iter};
use std::path::{Path, PathBuf};

fn db_error(what: &str, e: rusqlite::Error) -> LabelError {
    LabelError::with_detail(what, e)
}

/// The file of a `sqlite:` URL or a plain path.
pub fn path_of(url: &str) -> PathBuf {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

/// The columns of a table, or a clear error if it is missing.
fn table_columns(conn: &Connection, table: &str) -> Result<Vec<String>, LabelError> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info(\"{table}\")"))
        .map_err(|e| db_error("cannot read the source's tables", e))?;
    let cols: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(1))
        .and_then(|rows| rows.collect())
        .map_err(|e| db_error("cannot read the source's tables", e))?;
    if cols.is_empty() {
        return Err(LabelError::new(format!(
            "the source has no table named {table}"
        )));
    }
    Ok(cols)
}

/// Refuses columns the table does not have, naming them and what it has.
pub fn check_columns(table: &str, have: &[String], columns: &Columns) -> Result<(), LabelError> {
    for (role, c) in [
        ("id", &columns.id),
        ("source", &columns.source),
        ("author", &columns.author),
        ("column", &columns.field),
        ("time column", &columns.time),
    ] {
        if !have.iter().any(|h| h.eq_ignore_ascii_case(c)) {
            return Err(LabelError::new(format!(
                "the table {table} has no column {c} (wanted as the {role}); it has {}",
                have.join(", ")
            )));
        }
    }
    Ok(())
}

/// A table of a SQLite file.
pub struct SqliteSource {
    path: PathBuf,
    table: String,
    columns: Columns,
    range: TimeRange,
    /// How the scan walks the table.
    walk: Walk,
    /// The name the rowid goes by in this table (`rowid`, `_rowid_` or
    /// `oid`, whichever no column has taken), if any.
    rowid: Option<&'static str>,
}

/// How a scan walks a table, decided when the source opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// Along the index on the time column (a range is given), one scanner.
    Index,
    /// Chunks of consecutive rowids from `lo` to `hi`, shared by the
    /// scanners.
    Chunks { lo: i64, hi: i64 },
    /// In rowid order, one scanner, a chunk every `batch_rows` rows: for
    /// rowids so sparse that chunks by rowid would be mostly empty (random
    /// 64-bit ids would make quadrillions), or a table whose columns hide
    /// the rowid's names.
    Sequential,
}

/// Rowids a table may span per byte of its file before chunks by rowid
/// count as mostly empty: a row takes several bytes, so a table holding
/// its rowids densely spans far fewer.
const ROWIDS_PER_BYTE: i128 = 16;

impl SqliteSource {
    /// Opens and checks the table and its columns.
    pub fn open(
        path: &Path,
        table: &str,
        columns: Columns,
        range: TimeRange,
    ) -> Result<Self, LabelError> {
        let table = identifier("table", table)?;
        for c in columns.all() {
            identifier("column", c)?;
        }
        if !path.exists() {
            return Err(LabelError::new(format!(
                "the source database {} does not exist",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| db_error("cannot open the source database", e))?;
        let have = table_columns(&conn, &table)?;
        check_columns(&table, &have, &columns)?;
        let ranged = range.since.is_some() || range.until.is_some();
        let rowid = ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|n| !have.iter().any(|h| h.eq_ignore_ascii_case(n)));
        let walk = if ranged && time_indexed(&conn, &table, &columns.time) {
            Walk::Index
        } else if let Some(r) = rowid {
            let (lo, hi): (Option<i64>, Option<i64>) = conn
                .query_row(
                    // Two subqueries: each is one seek, where min and max
                    // together in one query would scan the table.
                    &format!("SELECT (SELECT min({r}) FROM \"{table}\"), (SELECT max({r}) FROM \"{table}\")"),
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(|e| db_error("the source refused the scan", e))?;
            let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
            match (lo, hi) {
                (Some(lo), Some(hi))
                    if i128::from(hi) - i128::from(lo) > ROWIDS_PER_BYTE * i128::from(bytes) =>
                {
                    Walk::Sequential
                }
                (Some(lo), Some(hi)) => Walk::Chunks { lo, hi },
                // No rows: no chunks.
                _ => Walk::Chunks { lo: 1, hi: 0 },
            }
        } else {
            Walk::Sequential
        };
        Ok(Self {
            path: path.to_owned(),
            table,
            columns,
            range,
            walk,
            rowid,
        })
    }

    /// The scan statement and its parameters. In chunks, the statement
    /// takes the chunk's first and last rowid as its last two parameters.
    fn query(&self) -> (String, Vec<String>, [usize; 5]) {
        let cols = self.columns.all();
        let list: Vec<String> = cols.iter().map(|c| format!("\"{c}\"")).collect();
        let at = |name: &str| cols.iter().position(|c| *c == name).unwrap_or(0);
        let index = [
            at(&self.columns.id),
            at(&self.columns.source),
            at(&self.columns.author),
            at(&self.columns.field),
            at(&self.columns.time),
        ];
        let time = format!("\"{}\"", self.columns.time);
        let mut conds = Vec::new();
        let mut params = Vec::new();
        if let Some(s) = &self.range.since {
            params.push(s.clone());
            conds.push(format!("{time} >= ?{}", params.len()));
        }
        if let Some(u) = &self.range.until {
            params.push(u.clone());
            conds.push(format!("{time} < ?{}", params.len()));
        }
        let order = match (self.walk, self.rowid) {
            (Walk::Index, Some(r)) => format!(" ORDER BY {time}, {r}"),
            (Walk::Index, None) => format!(" ORDER BY {time}"),
            (Walk::Chunks { .. }, r) => {
                let r = r.unwrap_or("rowid");
                // `+` keeps the planner off an index on the time column.
                conds.iter_mut().for_each(|c| *c = format!("+{c}"));
                let n = params.len();
                conds.push(format!("{r} >= ?{} AND {r} <= ?{}", n + 1, n + 2));
                format!(" ORDER BY {r}")
            }
            (Walk::Sequential, r) => {
                conds.iter_mut().for_each(|c| *c = format!("+{c}"));
                // Without a name for the rowid, a plain table scan still
                // reads in rowid order.
                r.map(|r| format!(" ORDER BY {r}")).unwrap_or_default()
            }
        };
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        (
            format!(
                "SELECT {} FROM \"{}\"{filter}{order}",
                list.join(", "),
                self.table
            ),
            params,
            index,
        )
    }
}

/// Whether an index starts with the time column.
fn time_indexed(conn: &Connection, table: &str, column: &str) -> bool {
    let Ok(mut stmt) = conn.prepare(&format!("PRAGMA index_list(\"{table}\")")) else {
        return false;
    };
    let Ok(names) = stmt
        .query_map([], |r| r.get::<_, String>(1))
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
    else {
        return false;
    };
    names.iter().any(|ix| {
        conn.query_row(
            &format!(
                "SELECT name FROM pragma_index_info('{}') WHERE seqno = 0",
                ix.replace('\'', "''")
            ),
            [],
            |r| r.get::<_, String>(0),
        )
        .is_ok_and(|c| c.eq_ignore_ascii_case(column))
    })
}

impl Source for SqliteSource {
    fn parts(&self) -> usize {
        match self.walk {
            Walk::Chunks { .. } => {
                std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
            }
            Walk::Index | Walk::Sequential => 1,
        }
    }

    fn scan(
        &self,
        part: usize,
        parts: usize,
        batch_rows: usize,
        fresh: &mut dyn FnMut() -> Batch,
        emit: &mut dyn FnMut(u64, Batch) -> Result<(), LabelError>,
    ) -> Result<(), LabelError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| db_error("cannot open the source database", e))?;
        // A scan reads each page once: a small page cache does.
        conn.execute_batch("PRAGMA cache_size = -512")
            .map_err(|e| db_error("cannot open the source database", e))?;
        let (sql, params, index) = self.query();
        let names = [
            &self.columns.id,
            &self.columns.source,
            &self.columns.author,
            &self.columns.field,
            &self.columns.time,
        ];
        let batch_rows = batch_rows.max(1);
        let span = batch_rows as i128;
        let (lo, chunks) = match self.walk {
            Walk::Chunks { lo, hi } if hi >= lo => (
                i128::from(lo),
                u64::try_from((i128::from(hi) - i128::from(lo)) / span + 1).unwrap_or(u64::MAX),
            ),
            _ => (0, 0),
        };
        // Chunk `c` holds the rowids `first..=last`; `c` < `chunks`, so
        // `first` is at most `hi`.
        let bounds = |chunk: u64| -> (i64, i64) {
            let first = lo + i128::from(chunk) * span;
            let last = (first + span - 1).min(i128::from(i64::MAX));
            (
                i64::try_from(first).unwrap_or(i64::MAX),
                i64::try_from(last).unwrap_or(i64::MAX),
            )
        };
        // A whole table is read from its pages where the file allows (see
        // `pages`), inside a read transaction so that no writer commits
        // meanwhile; a range goes through SQL, which compares times as
        // the column's type and collation say.
        let direct =
            if self.walk != Walk::Index && self.range.since.is_none() && self.range.until.is_none()
            {
                conn.execute_batch("BEGIN")
                    .map_err(|e| db_error("cannot open the source database", e))?;
                TableFile::open(&conn, &self.path, &self.table, &self.columns.all())?
            } else {
                None
            };
        if let Some(table) = direct {
            let mut scratch = PageScratch::default();
            let mut number = String::new();
            if self.walk == Walk::Sequential {
                let mut out = InOrder::new(&mut *fresh, &mut *emit, batch_rows);
                table.scan(i64::MIN, i64::MAX, &mut scratch, &mut |_, values, body| {
                    push_stored(&mut out.batch, &mut number, &index, &names, values, body)?;
                    out.cut()
                })?;
                return out.finish();
            }
            return each_chunk(
                part,
                parts,
                chunks,
                bounds,
                fresh,
                emit,
                |first, last, batch| {
                    table.scan(first, last, &mut scratch, &mut |_, values, body| {
                        push_stored(batch, &mut number, &index, &names, values, body)
                    })
                },
            );
        }
        let mut stmt = conn
            .prepare(&sql)
            .map_err(|e| db_error("the source refused the scan", e))?;
        if !matches!(self.walk, Walk::Chunks { .. }) {
            let mut rows = stmt
                .query(params_from_iter(params.iter()))
                .map_err(|e| db_error("the source refused the scan", e))?;
            let mut out = InOrder::new(&mut *fresh, &mut *emit, batch_rows);
            while read_rows(&mut rows, &mut out.batch, &index, &names, batch_rows)? {
                out.cut()?;
            }
            return out.finish();
        }
        each_chunk(
            part,
            parts,
            chunks,
            bounds,
            fresh,
            emit,
            |first, last, batch| {
                let mut bound: Vec<rusqlite::types::Value> =
                    params.iter().map(|p| p.clone().into()).collect();
                bound.push(first.into());
                bound.push(last.into());
                let mut rows = stmt
                    .query(params_from_iter(bound.iter()))
                    .map_err(|e| db_error("the source refused the scan", e))?;
                read_rows(&mut rows, batch, &index, &names, usize::MAX).map(|_| ())
            },
        )
    }
}

/// Part `part` of `parts` of the chunks `0..chunks`: each filled by `fill`
/// with the rows of its rowids `bounds(chunk)` and handed to `emit`.
fn each_chunk(
    part: usize,
    parts: usize,
    chunks: u64,
    bounds: impl Fn(u64) -> (i64, i64),
    fresh: &mut dyn FnMut() -> Batch,
    emit: &mut dyn FnMut(u64, Batch) -> Result<(), LabelError>,
    mut fill: impl FnMut(i64, i64, &mut Batch) -> Result<(), LabelError>,
) -> Result<(), LabelError> {
    let mut chunk = part as u64;
    while chunk < chunks {
        let (first, last) = bounds(chunk);
        let mut batch = fresh();
        fill(first, last, &mut batch)?;
        emit(chunk, batch)?;
        chunk += parts as u64;
    }
    Ok(())
}

/// Rows read one after another, cut into batches of `limit` rows, each
/// emitted as the next chunk.
struct InOrder<'a> {
    fresh: &'a mut dyn FnMut() -> Batch,
    emit: &'a mut dyn FnMut(u64, Batch) -> Result<(), LabelError>,
    batch: Batch,
    chunk: u64,
    limit: usize,
}

impl<'a> InOrder<'a> {
    fn new(
        fresh: &'a mut dyn FnMut() -> Batch,
        emit: &'a mut dyn FnMut(u64, Batch) -> Result<(), LabelError>,
        limit: usize,
    ) -> Self {
        let batch = fresh();
        Self {
            fresh,
            emit,
            batch,
            chunk: 0,
            limit,
        }
    }

    /// Emits the batch once it holds `limit` rows.
    fn cut(&mut self) -> Result<(), LabelError> {
        if self.batch.len() >= self.limit {
            let full = std::mem::replace(&mut self.batch, (self.fresh)());
            (self.emit)(self.chunk, full)?;
            self.chunk += 1;
        }
        Ok(())
    }

    /// Emits what is left.
    fn finish(self) -> Result<(), LabelError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        (self.emit)(self.chunk, self.batch)
    }
}

/// Reads rows into `batch` until it holds `limit` rows (returns true) or
/// the rows run out (false).
fn read_rows(
    rows: &mut rusqlite::Rows<'_>,
    batch: &mut Batch,
    index: &[usize; 5],
    names: &[&String; 5],
    limit: usize,
) -> Result<bool, LabelError> {
    let mut number = String::new();
    loop {
        let row = match rows.next() {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(false),
            Err(e) => return Err(db_error("reading the source failed", e)),
        };
        push_row(batch, &mut number, index, names, |col| {
            row.get_ref(col)
                .map(cell)
                .map_err(|e| db_error("reading the source failed", e))
        })?;
        if batch.len() >= limit {
            return Ok(true);
        }
    }
}

/// A source value as a batch takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    /// Text or a blob that is not UTF-8.
    NotUtf8(&'a [u8]),
}

fn cell(v: ValueRef<'_>) -> Cell<'_> {
    match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(n) => Cell::Int(n),
        ValueRef::Real(x) => Cell::Real(x),
        ValueRef::Text(b) | ValueRef::Blob(b) => {
            std::str::from_utf8(b).map_or(Cell::NotUtf8(b), Cell::Text)
        }
    }
}

/// As [`cell`] for a value stored within `body`, whose text is `text`
/// when all of `body` is UTF-8: the value is then a slice of it, checked
/// already.
fn cell_within<'a>(v: ValueRef<'a>, body: &'a [u8], text: Option<&'a str>) -> Cell<'a> {
    if let (ValueRef::Text(b) | ValueRef::Blob(b), Some(text)) = (v, text)
        && let Some(at) = b.as_ptr().addr().checked_sub(body.as_ptr().addr())
        && let Some(s) = text.get(at..at + b.len())
    {
        return Cell::Text(s);
    }
    cell(v)
}

/// [`push_row`] for a row read from its page: `values` lie within `body`,
/// the row's stored values, which is checked as UTF-8 once in place of
/// value by value (they are all text in most tables).
fn push_stored(
    batch: &mut Batch,
    number: &mut String,
    index: &[usize; 5],
    names: &[&String; 5],
    values: &[ValueRef<'_>],
    body: &[u8],
) -> Result<(), LabelError> {
    let text = std::str::from_utf8(body).ok();
    push_row(batch, number, index, names, |col| {
        Ok(cell_within(values[col], body, text))
    })
}

/// Appends one source row to `batch`: slot by slot (id, source, author,
/// field, time) the value `value(index[slot])`. Numbers become their
/// decimal text, NULL an empty value; text that is not UTF-8 is an error
/// naming the row and the column.
fn push_row<'v>(
    batch: &mut Batch,
    number: &mut String,
    index: &[usize; 5],
    names: &[&String; 5],
    value: impl Fn(usize) -> Result<Cell<'v>, LabelError>,
) -> Result<(), LabelError> {
    use std::fmt::Write as _;
    // Labeling the author's name reads that column once for both parts.
    let shared = index[FIELD] == index[AUTHOR];
    let mut field_null = false;
    let mut author_null = false;
    for (slot, &col) in index.iter().enumerate() {
        if shared && slot == FIELD {
            batch.push_again();
            field_null = author_null;
            continue;
        }
        match value(col)? {
            Cell::Text(s) => batch.push(s),
            Cell::NotUtf8(_) => {
                let id = match value(index[ID]) {
                    Ok(Cell::Text(s)) => s.to_owned(),
                    Ok(Cell::NotUtf8(b)) => String::from_utf8_lossy(b).into_owned(),
                    Ok(Cell::Int(n)) => n.to_string(),
                    _ => "?".into(),
                };
                return Err(LabelError::new(format!(
                    "the row with id {id:?} has text that is not valid UTF-8 in its column {}",
                    names[slot]
                )));
            }
            Cell::Int(n) => {
                number.clear();
                let _ = write!(number, "{n}");
                batch.push(number);
            }
            Cell::Real(x) => {
                number.clear();
                let _ = write!(number, "{x}");
                batch.push(number);
            }
            Cell::Null => {
                field_null |= slot == FIELD;
                author_null |= slot == AUTHOR;
                batch.push("");
            }
        }
    }
    batch.end_row(field_null);
    Ok(())
}

/// Result tables in a SQLite file.
///
/// The file uses a rollback journal rather than WAL: the sink appends
/// hundreds of thousands of rows per second, and WAL would write each page
/// twice. Batches commit in groups of at least [`COMMIT_ROWS`] rows read,
/// each group with its checkpoint.
pub struct SqliteSink {
    conn: Connection,
    task: TaskInfo,
    seq_base: i64,
    in_tx: bool,
    uncommitted: u64,
    committed_rows: u64,
    commit_rows: u64,
}

/// Rows read between commits of a SQLite sink: each commit syncs the file
/// two or three times, and with 100,000 rows (about 40 ms of reading) the
/// syncs held the writer back; 250,000 keep a killed task's lost work
/// under a fifth of a second.
pub const COMMIT_ROWS: u64 = 250_000;

/// A state row: stat, prod_stat, checkpoint_rows, check_point, digest, seq_base.
pub type StateRow = (String, Option<String>, i64, Option<String>, String, i64);

impl SqliteSink {
    /// Opens (creating) the file; the tables are made by [`Sink::open`].
    pub fn open(path: &Path, task: TaskInfo, commit_rows: u64) -> Result<Self, LabelError> {
        identifier("result", &task.result)?;
        // One thread uses the connection at a time: no per-call mutex.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| {
            db_error(
                &format!("cannot open the output database {}", path.display()),
                e,
            )
        })?;
        // A new file gets 64 KB pages: appends then write and sync a
        // sixteenth as many pages as with 4 KB ones, and a run on author
        // names took 1.2 s rather than 1.5 (content 1.45 s rather than
        // 1.8). Appends touch the last pages of each table: a 2 MB cache
        // does (an 8 MB one held about 10 MB more at peak and was no
        // faster).
        conn.execute_batch(
            "PRAGMA page_size = 65536; PRAGMA busy_timeout = 10000; PRAGMA journal_mode = TRUNCATE; \
             PRAGMA synchronous = FULL; PRAGMA cache_size = -2000;",
        )
        .map_err(|e| db_error("cannot set up the output database", e))?;
        Ok(Self {
            conn,
            task,
            seq_base: 0,
            in_tx: false,
            uncommitted: 0,
            committed_rows: 0,
            commit_rows: commit_rows.max(1),
        })
    }

    fn bind(values: &[Value]) -> Vec<Box<dyn rusqlite::ToSql>> {
        values
            .iter()
            .map(|v| -> Box<dyn rusqlite::ToSql> {
                match v {
                    Value::Text(t) => Box::new(t.clone()),
                    Value::Int(n) => Box::new(*n),
                    Value::Float(x) => Box::new(*x),
                }
            })
            .collect()
    }

    fn set_state(
        &self,
        stat: &str,
        prod: Option<&str>,
        p: &Progress,
    ) -> Result<(), rusqlite::Error> {
        let values = Self::bind(&state_params(stat, prod, p, None, &self.task.task_id));
        self.conn
            .prepare_cached(&Dialect::Sqlite.update_state(""))?
            .execute(params_from_iter(values.iter()))?;
        Ok(())
    }

    fn begin(&mut self) -> Result<(), rusqlite::Error> {
        if !self.in_tx {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.in_tx = true;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), rusqlite::Error> {
        if self.in_tx {
            self.conn.execute_batch("COMMIT")?;
            self.in_tx = false;
            self.uncommitted = 0;
        }
        Ok(())
    }
}

impl Drop for SqliteSink {
    fn drop(&mut self) {
        if self.in_tx {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Sink for SqliteSink {
    fn open(&mut self) -> Result<Option<Checkpoint>, LabelError> {
        let fail = |e| db_error("cannot write to the output database", e);
        let tx = self.conn.transaction().map_err(fail)?;
        for ddl in Dialect::Sqlite.create("", &self.task.result) {
            tx.execute(&ddl, [])
                .map_err(|e| db_error("cannot make the result tables", e))?;
        }
        if self.task.task_id.is_empty() {
            let found: Option<String> = tx
                .query_row(
                    "SELECT task_id FROM \"state\" WHERE digest = ?1 \
                     ORDER BY stat = 'SUCCESS', create_time DESC LIMIT 1",
                    [&self.task.digest],
                    |r| r.get(0),
                )
                .ok();
            self.task.task_id = found.unwrap_or_else(super::new_task_id);
        }
        let t = &self.task;
        tx.execute(
            &Dialect::Sqlite.insert_state(""),
            [
                &t.task_id,
                &t.model_type,
                &t.predict_type,
                &t.date_range,
                &t.target_table,
                &t.create_time,
                &t.result,
                &t.digest,
                &t.result,
            ],
        )
        .map_err(|e| db_error("cannot record the task", e))?;
        let row: StateRow = tx
            .query_row(&Dialect::Sqlite.select_state(""), [&t.task_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .map_err(|e| db_error("cannot record the task", e))?;
        tx.execute(
            "UPDATE \"state\" SET stat = 'RUNNING', error = NULL WHERE task_id = ?1 AND stat <> 'SUCCESS'",
            [&t.task_id],
        )
        .map_err(|e| db_error("cannot record the task", e))?;
        tx.commit().map_err(fail)?;
        self.seq_base = row.5;
        let cp = checkpoint_of(row, &self.task.digest)?;
        self.committed_rows = cp.rows;
        Ok(Some(cp))
    }

    fn write(
        &mut self,
        batch: &Batch,
        rows: &[Labeled],
        names: &Names,
        progress: &Progress,
    ) -> Result<(), LabelError> {
        let fail = |e| db_error("writing results failed", e);
        self.begin().map_err(fail)?;
        {
            let mut insert = self
                .conn
                .prepare_cached(&format!(
                    "INSERT INTO \"{}\" (seq, task_id, id, source, author, label, pattern, match_content, \
                     create_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    self.task.result
                ))
                .map_err(fail)?;
            // Bindings outlive each step: the task id is bound once.
            insert
                .raw_bind_parameter(2, &self.task.task_id)
                .map_err(fail)?;
            for l in rows {
                let r = l.row as usize;
                insert
                    .raw_bind_parameter(1, self.seq_base + l.seq as i64)
                    .and_then(|()| insert.raw_bind_parameter(3, batch.get(r, ID)))
                    .and_then(|()| insert.raw_bind_parameter(4, batch.get(r, SOURCE)))
                    .and_then(|()| insert.raw_bind_parameter(5, batch.get(r, AUTHOR)))
                    .and_then(|()| insert.raw_bind_parameter(6, &names.labels[l.label as usize]))
                    .and_then(|()| {
                        insert.raw_bind_parameter(7, &names.patterns[l.pattern as usize])
                    })
                    .and_then(|()| insert.raw_bind_parameter(8, batch.get(r, FIELD)))
                    .and_then(|()| insert.raw_bind_parameter(9, batch.get(r, TIME)))
                    .and_then(|()| insert.raw_execute())
                    .map_err(fail)?;
            }
        }
        self.set_state("RUNNING", None, progress).map_err(fail)?;
        self.uncommitted += progress.checkpoint_rows.saturating_sub(self.committed_rows);
        self.committed_rows = progress.checkpoint_rows;
        if self.uncommitted >= self.commit_rows {
            self.commit().map_err(fail)?;
        }
        Ok(())
    }

    fn produce(&mut self, keep: &Keep, progress: &Progress) -> Result<u64, LabelError> {
        let fail = |e| db_error("writing production rows failed", e);
        self.begin().map_err(fail)?;
        let base = self.seq_base;
        self.conn
            .execute(
                &format!(
                    "DELETE FROM \"wh_panel_mapping_{}\" WHERE seq > ?1 AND seq <= ?2",
                    self.task.result
                ),
                [base, base + super::tables::SEQ_BLOCK],
            )
            .map_err(fail)?;
        let mut written = 0u64;
        match keep {
            Keep::Seqs(winners) => {
                for chunk in winners.chunks(500) {
                    let sql = Dialect::Sqlite.produce("", &self.task.result, chunk.len());
                    let mut stmt = self.conn.prepare_cached(&sql).map_err(fail)?;
                    written += stmt
                        .execute(params_from_iter(chunk.iter().map(|&s| base + s as i64)))
                        .map_err(fail)? as u64;
                }
            }
            Keep::ByQuery(priorities) => {
                let (sql, params) =
                    Dialect::Sqlite.produce_by_query("", &self.task.result, priorities, base);
                let params = Self::bind(&params);
                written = self
                    .conn
                    .execute(&sql, params_from_iter(params.iter()))
                    .map_err(fail)? as u64;
            }
        }
        let mut p = progress.clone();
        p.production_rows = Some(written);
        self.set_state("SUCCESS", Some("finish"), &p)
            .map_err(fail)?;
        self.commit().map_err(fail)?;
        Ok(written)
    }

    fn fail(&mut self, message: &str) {
        // What was written since the last commit goes; the checkpoint
        // stays where the rows are.
        if self.in_tx {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.in_tx = false;
        }
        let _ = self.conn.execute(
            &Dialect::Sqlite.fail_state(""),
            [message, self.task.task_id.as_str()],
        );
    }

    fn task_id(&self) -> String {
        self.task.task_id.clone()
    }
}

/// The checkpoint from a state row (stat, prod_stat, checkpoint_rows,
/// check_point, digest, seq_base), refusing to resume under another
/// configuration.
pub fn checkpoint_of(row: StateRow, digest: &str) -> Result<Checkpoint, LabelError> {
    let (stat, prod, rows, id, stored, _) = row;
    if stored != digest {
        return Err(LabelError::new(
            "this task id was used before with other patterns, columns or range; start a new task",
        ));
    }
    Ok(Checkpoint {
        rows: rows.max(0) as u64,
        id,
        produced: stat == "SUCCESS" && prod.as_deref() == Some("finish"),
    })
}

/// The statement that samples a task's rows: parameters task_id (for its
/// `seq_base`), a start offset in the task's block, and the limit.
pub(crate) fn sample_sql(d: Dialect, prefix: &str, table: &str, columns: &[&str]) -> String {
    let list: Vec<String> = columns
        .iter()
        .map(|c| format!("t.{}", d.quote(c)))
        .collect();
    format!(
        "SELECT {} FROM {prefix}{} AS t, (SELECT seq_base AS b FROM {prefix}{} WHERE task_id = {}) AS s \
         WHERE t.seq > s.b + {} AND t.seq <= s.b + {} ORDER BY t.seq LIMIT {}",
        list.join(", "),
        d.quote(table),
        d.quote("state"),
        d.param(1),
        d.param(2),
        super::tables::SEQ_BLOCK,
        d.param(3),
    )
}

/// Where in a task's rows a sample starts: somewhere in the first
/// `result_rows - limit` of them.
pub(crate) fn sample_offset(result_rows: i64, limit: usize) -> i64 {
    let room = (result_rows - limit as i64).max(0);
    if room == 0 {
        0
    } else {
        (rand::random::<u64>() % room as u64) as i64
    }
}

/// A sample of a task's rows in a SQLite output (see
/// [`super::task::sample`]).
pub fn sample(
    path: &Path,
    table: &str,
    task_id: &str,
    columns: &[&str],
    limit: usize,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, LabelError> {
    let fail = |e| db_error("Cannot scrape data from result tables", e);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(fail)?;
    let exists: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN (?1, 'state')",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n == 2)
        .map_err(fail)?;
    if !exists {
        return Ok(Vec::new());
    }
    let rows: i64 = conn
        .query_row(
            "SELECT COALESCE(length_output_table, 0) FROM state WHERE task_id = ?1",
            [task_id],
            |r| r.get(0),
        )
        .unwrap_or(0);
    let mut stmt = conn
        .prepare(&sample_sql(Dialect::Sqlite, "", table, columns))
        .map_err(fail)?;
    let mut read = |offset: i64| {
        stmt.query_map(rusqlite::params![task_id, offset, limit as i64], |r| {
            let mut m = serde_json::Map::new();
            for (i, c) in columns.iter().enumerate() {
                let v: Option<String> = r.get(i)?;
                m.insert(
                    (*c).to_owned(),
                    v.map_or(serde_json::Value::Null, Into::into),
                );
            }
            Ok(m)
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(fail)
    };
    // A window from a random place; where the table is sparse (production
    // rows) and the window comes up short, the first rows instead.
    let offset = sample_offset(rows, limit);
    let out = read(offset)?;
    if out.len() < limit && offset > 0 {
        return read(0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_taken_from_a_checked_row_are_what_checking_each_gives() {
        // A row of valid text where some slices are not: halves of a
        // character, a control byte, a three-byte character.
        let body: Vec<u8> = vec![0xC3, 0xA9, b'a', b'b', 0x01, 0xE6, 0xBC, 0xA2];
        let text = std::str::from_utf8(&body).ok();
        assert!(text.is_some());
        for from in 0..body.len() {
            for to in from..=body.len() {
                for v in [
                    ValueRef::Text(&body[from..to]),
                    ValueRef::Blob(&body[from..to]),
                ] {
                    assert_eq!(cell_within(v, &body, text), cell(v), "{from}..{to}");
                }
            }
        }
        assert_eq!(
            cell_within(ValueRef::Text(&body[0..2]), &body, text),
            Cell::Text("é")
        );
        assert_eq!(
            cell_within(ValueRef::Text(&body[0..1]), &body, text),
            Cell::NotUtf8(&[0xC3])
        );
        // A row that is not all text (a binary number, a stray byte): each
        // value is checked on its own.
        let mixed: Vec<u8> = vec![0xFF, 0x80, b'o', b'k', 0xC3];
        let none = std::str::from_utf8(&mixed).ok();
        assert!(none.is_none());
        for (from, to) in [(0, 2), (2, 4), (4, 5)] {
            let v = ValueRef::Text(&mixed[from..to]);
            assert_eq!(cell_within(v, &mixed, none), cell(v), "mixed {from}..{to}");
        }
        assert_eq!(
            cell_within(ValueRef::Text(&mixed[2..4]), &mixed, none),
            Cell::Text("ok")
        );
        // A value from elsewhere is checked on its own.
        let other = b"zz".to_vec();
        assert_eq!(
            cell_within(ValueRef::Text(&other), &body, text),
            Cell::Text("zz")
        );
        assert_eq!(cell_within(ValueRef::Integer(7), &body, text), Cell::Int(7));
    }
}
