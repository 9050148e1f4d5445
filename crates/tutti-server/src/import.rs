//! Streaming item imports.
//!
//! The request body flows chunk by chunk into a parser on a blocking thread
//! (CSV through the `csv` crate, JSON Lines line by line, Label Studio's
//! task list element by element), which checks every record and writes it
//! as one JSON object per line to a spool file. Only when the whole body
//! parsed does the spool go to the store, in one transaction. So memory
//! stays constant whatever the size, a bad record is reported with its line
//! and leaves nothing behind, and a slow upload never holds the database's
//! writer while bytes trickle in.

use crate::AppState;
use crate::error::ApiError;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::Serialize;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use tokio::sync::mpsc;
use tutti_store::{ImportMsg, ImportRow, Job};

/// Rows per batch handed to the store.
const STORE_BATCH: usize = 2000;
/// Longest JSON line accepted.
const MAX_LINE_BYTES: u64 = 16 << 20;
/// Most distinct column names reported.
const MAX_REPORTED_COLUMNS: usize = 1000;

/// How an import body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Label Studio's task list: `[{"data": {...}}, ...]`.
    LabelStudio,
}

impl ImportFormat {
    /// Picks the format from `?format=` or else the Content-Type.
    pub fn choose(query: Option<&str>, headers: &HeaderMap) -> Result<Self, ApiError> {
        if let Some(q) = query {
            return match q {
                "csv" => Ok(Self::Csv),
                "jsonl" | "ndjson" => Ok(Self::Jsonl),
                "label-studio" | "json" => Ok(Self::LabelStudio),
                other => Err(ApiError::bad_request(format!(
                    "unknown format {other:?}; use csv, jsonl or label-studio"
                ))
                .with_field("format")),
            };
        }
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "text/csv" | "application/csv" => Ok(Self::Csv),
            "application/x-ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/jsonlines" => Ok(Self::Jsonl),
            "application/json" => Ok(Self::LabelStudio),
            _ => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "cannot import Content-Type {ct:?}: send text/csv, application/x-ndjson \
                     (JSON Lines) or application/json (a Label Studio task list), or add ?format="
                ),
            )
            .with_field("Content-Type")),
        }
    }
}

/// What an import did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Rows added.
    pub imported: u64,
    /// Column names seen, in order of first appearance.
    pub columns: Vec<String>,
}

/// A bad record.
#[derive(Debug)]
struct BadRecord {
    line: Option<u64>,
    message: String,
}

impl BadRecord {
    fn at(line: u64, message: impl Into<String>) -> Self {
        Self {
            line: Some(line),
            message: message.into(),
        }
    }
}

enum ParseFailure {
    Bad(BadRecord),
    Io(io::Error),
}

impl From<io::Error> for ParseFailure {
    fn from(e: io::Error) -> Self {
        ParseFailure::Io(e)
    }
}

struct Parsed {
    rows: u64,
    columns: Vec<String>,
}

/// A `Read` over body chunks arriving on a channel.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// A temporary file removed when dropped.
struct Spool(PathBuf);

impl Spool {
    fn new() -> io::Result<(Self, File)> {
        let path = std::env::temp_dir().join(format!(
            "tutti-import-{}-{}.jsonl",
            std::process::id(),
            rand::random::<u64>()
        ));
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok((Self(path), file))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "the upload is larger than the limit of {limit} bytes; split it into several imports"
        ),
    )
}

/// Parses `body` in `format` and appends its rows to `job`.
pub async fn import(
    state: &AppState,
    job: &Job,
    format: ImportFormat,
    headers: &HeaderMap,
    body: Body,
) -> Result<ImportReport, ApiError> {
    let limit = state.settings.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let started = std::time::Instant::now();
    let (spool, file) = Spool::new().map_err(ApiError::internal)?;
    let (chunk_tx, chunk_rx) = mpsc::channel::<Bytes>(16);
    let parser = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader {
            rx: chunk_rx,
            current: Bytes::new(),
        };
        let mut out = BufWriter::with_capacity(1 << 16, file);
        let parsed = match format {
            ImportFormat::Csv => parse_csv(reader, &mut out),
            ImportFormat::Jsonl => parse_jsonl(reader, &mut out),
            ImportFormat::LabelStudio => parse_label_studio(reader, &mut out),
        }?;
        out.flush()?;
        Ok::<_, ParseFailure>(parsed)
    });

    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    let mut pump_error = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(error = %e, "import body ended early");
                pump_error = Some(ApiError::bad_request(
                    "the upload broke off before its end; send it again",
                ));
                break;
            }
        };
        received += chunk.len() as u64;
        if received > limit {
            pump_error = Some(too_large(limit));
            break;
        }
        if chunk_tx.send(chunk).await.is_err() {
            // The parser stopped early: it found a bad record.
            break;
        }
    }
    drop(chunk_tx);
    let parsed = parser.await.map_err(ApiError::internal)?;
    let parse_time = started.elapsed();
    if let Some(e) = pump_error {
        return Err(e);
    }
    let parsed = match parsed {
        Ok(p) => p,
        Err(ParseFailure::Bad(bad)) => {
            let message = match bad.line {
                Some(l) => format!("line {l}: {}; nothing was imported", bad.message),
                None => format!("{}; nothing was imported", bad.message),
            };
            let mut err = ApiError::new(StatusCode::BAD_REQUEST, "bad_record", message);
            err.line = bad.line;
            return Err(err.with_field("body"));
        }
        Err(ParseFailure::Io(e)) => return Err(ApiError::internal(format!("import spool: {e}"))),
    };
    if parsed.rows == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_import",
            "the upload has no rows; nothing was imported",
        )
        .with_field("body"));
    }

    let options = job.config.answers.clone();
    if parsed.columns.iter().any(|c| c == GOLD_COLUMN) {
        let path = spool.0.clone();
        let options = options.clone();
        let checked = tokio::task::spawn_blocking(move || -> io::Result<Result<(), String>> {
            let lines = BufReader::with_capacity(1 << 16, File::open(path)?).lines();
            for (i, line) in lines.enumerate() {
                if let Err(message) = split_gold(line?, &options) {
                    return Ok(Err(format!("row {}: {message}", i + 1)));
                }
            }
            Ok(Ok(()))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("reading the import spool: {e}")))?;
        if let Err(message) = checked {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_record",
                format!("{message}; nothing was imported"),
            )
            .with_field(GOLD_COLUMN));
        }
    }
    let (row_tx, row_rx) = mpsc::channel(2);
    let path = spool.0.clone();
    let feeder = tokio::task::spawn_blocking(move || -> io::Result<()> {
        let mut lines = BufReader::with_capacity(1 << 16, File::open(path)?).lines();
        loop {
            let mut batch = Vec::with_capacity(STORE_BATCH);
            for line in lines.by_ref().take(STORE_BATCH) {
                batch.push(split_gold(line?, &options).map_err(io::Error::other)?);
            }
            if batch.is_empty() {
                let _ = row_tx.blocking_send(ImportMsg::Done);
                return Ok(());
            }
            if row_tx.blocking_send(ImportMsg::Rows(batch)).is_err() {
                return Ok(());
            }
        }
    });
    let stored = state.store.import_tasks(job, row_rx).await;
    let fed = feeder.await.map_err(ApiError::internal)?;
    drop(spool);
    fed.map_err(|e| ApiError::internal(format!("reading the import spool: {e}")))?;
    let stored = stored?;
    tracing::info!(
        job = %job.id,
        rows = parsed.rows,
        parse_ms = parse_time.as_millis() as u64,
        store_ms = (started.elapsed() - parse_time).as_millis() as u64,
        "imported items"
    );
    match stored {
        Some(imported) => Ok(ImportReport {
            imported,
            columns: parsed.columns,
        }),
        None => Err(ApiError::internal("import rolled back")),
    }
}

/// The column that makes a row a control question, holding its known
/// answer. It is taken out of the row's data, so workers never see it.
pub const GOLD_COLUMN: &str = "_gold";

/// A spooled row, with its `_gold` value (if any and not empty) taken out
/// and checked against the job's answer options.
fn split_gold(line: String, options: &[String]) -> Result<ImportRow, String> {
    if !line.contains("\"_gold\"") {
        return Ok(ImportRow::plain(line));
    }
    let mut row: Map<String, Value> = serde_json::from_str(&line).map_err(|e| e.to_string())?;
    let gold = match row.remove(GOLD_COLUMN) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Some(other) => Some(other.to_string()),
    };
    if let Some(g) = &gold
        && !options.is_empty()
        && !options.contains(g)
    {
        return Err(format!(
            "{GOLD_COLUMN} {g:?} is not one of the job's answers: {}",
            options
                .iter()
                .map(|o| format!("{o:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(ImportRow {
        data: Value::Object(row).to_string(),
        gold,
    })
}

fn write_json_string(out: &mut impl Write, s: &str) -> io::Result<()> {
    serde_json::to_writer(&mut *out, s).map_err(io::Error::other)
}

fn parse_csv(reader: impl Read, out: &mut impl Write) -> Result<Parsed, ParseFailure> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .buffer_capacity(1 << 16)
        .from_reader(reader);
    let headers = rdr.headers().map_err(csv_failure)?.clone();
    if headers.is_empty() || headers.iter().all(str::is_empty) {
        return Err(ParseFailure::Bad(BadRecord::at(
            1,
            "the first line must be a header naming the columns",
        )));
    }
    let mut columns: Vec<String> = Vec::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim();
        if h.is_empty() {
            return Err(ParseFailure::Bad(BadRecord::at(
                1,
                format!("column {} of the header has no name", i + 1),
            )));
        }
        if columns.iter().any(|c| c == h) {
            return Err(ParseFailure::Bad(BadRecord::at(
                1,
                format!("the header names column {h:?} twice"),
            )));
        }
        columns.push(h.to_owned());
    }
    let mut record = csv::StringRecord::new();
    let mut rows = 0u64;
    while rdr.read_record(&mut record).map_err(csv_failure)? {
        out.write_all(b"{")?;
        for (i, (name, value)) in columns.iter().zip(record.iter()).enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            write_json_string(out, name)?;
            out.write_all(b":")?;
            write_json_string(out, value)?;
        }
        out.write_all(b"}\n")?;
        rows += 1;
    }
    Ok(Parsed { rows, columns })
}

fn csv_failure(e: csv::Error) -> ParseFailure {
    let line = e.position().map(|p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields as in the header, found {len}"),
        csv::ErrorKind::Utf8 { .. } => "the text is not valid UTF-8".to_owned(),
        csv::ErrorKind::Io(_) => "the upload could not be read".to_owned(),
        _ => e.to_string(),
    };
    ParseFailure::Bad(BadRecord { line, message })
}

struct Columns(Vec<String>);

impl Columns {
    fn note(&mut self, row: &Map<String, Value>) {
        for k in row.keys() {
            if self.0.len() >= MAX_REPORTED_COLUMNS {
                return;
            }
            if !self.0.iter().any(|c| c == k) {
                self.0.push(k.clone());
            }
        }
    }
}

fn parse_jsonl(reader: impl Read, out: &mut impl Write) -> Result<Parsed, ParseFailure> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut rows = 0u64;
    let mut columns = Columns(Vec::new());
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        line += 1;
        if n as u64 > MAX_LINE_BYTES {
            return Err(ParseFailure::Bad(BadRecord::at(
                line,
                format!("the line is longer than {MAX_LINE_BYTES} bytes"),
            )));
        }
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let row: Map<String, Value> = match serde_json::from_slice::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(ParseFailure::Bad(BadRecord::at(
                    line,
                    "expected a JSON object of column names to values",
                )));
            }
            Err(e) => {
                return Err(ParseFailure::Bad(BadRecord::at(
                    line,
                    format!("not valid JSON ({e})"),
                )));
            }
        };
        columns.note(&row);
        serde_json::to_writer(&mut *out, &row).map_err(io::Error::other)?;
        out.write_all(b"\n")?;
        rows += 1;
    }
    Ok(Parsed {
        rows,
        columns: columns.0,
    })
}

#[derive(serde::Deserialize)]
struct LabelStudioTask {
    data: Map<String, Value>,
}

struct TaskList<'a, W: Write> {
    out: &'a mut W,
    rows: u64,
    columns: Columns,
}

impl<'de, W: Write> DeserializeSeed<'de> for &mut TaskList<'_, W> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, W: Write> Visitor<'de> for &mut TaskList<'_, W> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Label Studio task list: [{\"data\": {...}}, ...]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        while let Some(task) = seq.next_element::<LabelStudioTask>()? {
            self.columns.note(&task.data);
            serde_json::to_writer(&mut *self.out, &task.data).map_err(A::Error::custom)?;
            self.out.write_all(b"\n").map_err(A::Error::custom)?;
            self.rows += 1;
        }
        Ok(())
    }
}

fn parse_label_studio(reader: impl Read, out: &mut impl Write) -> Result<Parsed, ParseFailure> {
    let reader = BufReader::with_capacity(1 << 16, reader);
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut list = TaskList {
        out,
        rows: 0,
        columns: Columns(Vec::new()),
    };
    let bad = |e: serde_json::Error| {
        if e.is_io() {
            ParseFailure::Io(io::Error::other(e))
        } else {
            ParseFailure::Bad(BadRecord::at(
                e.line() as u64,
                format!("column {}: {}", e.column(), strip_position(&e.to_string())),
            ))
        }
    };
    (&mut list).deserialize(&mut de).map_err(bad)?;
    de.end().map_err(bad)?;
    Ok(Parsed {
        rows: list.rows,
        columns: list.columns.0,
    })
}

/// serde_json appends " at line L column C"; the line leads the message already.
fn strip_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |i| &message[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        f: fn(&[u8], &mut Vec<u8>) -> Result<Parsed, ParseFailure>,
        input: &str,
    ) -> Result<(u64, String), (Option<u64>, String)> {
        let mut out = Vec::new();
        match f(input.as_bytes(), &mut out) {
            Ok(p) => Ok((p.rows, String::from_utf8(out).unwrap())),
            Err(ParseFailure::Bad(b)) => Err((b.line, b.message)),
            Err(ParseFailure::Io(e)) => panic!("{e}"),
        }
    }

    fn csv(i: &[u8], o: &mut Vec<u8>) -> Result<Parsed, ParseFailure> {
        parse_csv(i, o)
    }
    fn jsonl(i: &[u8], o: &mut Vec<u8>) -> Result<Parsed, ParseFailure> {
        parse_jsonl(i, o)
    }
    fn ls(i: &[u8], o: &mut Vec<u8>) -> Result<Parsed, ParseFailure> {
        parse_label_studio(i, o)
    }

    #[test]
    fn csv_rows_become_json_objects_with_quotes_and_newlines_kept() {
        let (n, out) = run(csv, "name,note\nAda,\"a, b\"\n\"Bob\",\"x\ny\"\n").unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            out,
            "{\"name\":\"Ada\",\"note\":\"a, b\"}\n{\"name\":\"Bob\",\"note\":\"x\\ny\"}\n"
        );
    }

    #[test]
    fn a_ragged_csv_row_is_named_by_its_line() {
        let (line, msg) = run(csv, "a,b\n1,2\n3\n").unwrap_err();
        assert_eq!(line, Some(3));
        assert!(msg.contains("expected 2 fields"), "{msg}");
    }

    #[test]
    fn a_csv_header_with_a_repeated_column_is_refused() {
        let (line, msg) = run(csv, "a,a\n1,2\n").unwrap_err();
        assert_eq!(line, Some(1));
        assert!(msg.contains("twice"));
    }

    #[test]
    fn a_csv_with_a_byte_order_mark_and_crlf_parses() {
        let (n, out) = run(csv, "\u{feff}name\r\nAda\r\n").unwrap();
        assert_eq!((n, out.as_str()), (1, "{\"name\":\"Ada\"}\n"));
    }

    #[test]
    fn jsonl_skips_blank_lines_and_names_a_bad_one() {
        let (n, _) = run(jsonl, "{\"a\":1}\n\n{\"a\":2}\n").unwrap();
        assert_eq!(n, 2);
        let (line, msg) = run(jsonl, "{\"a\":1}\n[1,2]\n").unwrap_err();
        assert_eq!(line, Some(2));
        assert!(msg.contains("JSON object"));
        let (line, _) = run(jsonl, "{\"a\":1}\n{\"a\":\n").unwrap_err();
        assert_eq!(line, Some(2));
    }

    #[test]
    fn a_label_studio_list_yields_the_data_objects() {
        let (n, out) = run(
            ls,
            "[{\"id\": 1, \"data\": {\"text\": \"hi\"}},\n {\"data\": {\"text\": \"yo\"}}]",
        )
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(out, "{\"text\":\"hi\"}\n{\"text\":\"yo\"}\n");
    }

    #[test]
    fn a_label_studio_task_without_data_is_named_by_its_line() {
        let (line, msg) = run(ls, "[\n{\"data\": {}},\n{\"x\": 1}\n]").unwrap_err();
        assert_eq!(line, Some(3));
        assert!(msg.contains("missing field `data`"), "{msg}");
    }
}
