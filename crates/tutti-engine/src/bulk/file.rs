//! CSV and JSON-lines files as a labeling source and sink.
//!
//! A CSV source has a header naming its columns (a `.tsv` file is split on
//! tabs); a JSON-lines source has one object per line. The time range is
//! applied to each row's time, read as `YYYY-MM-DD HH:MM:SS` (or with a
//! `T`, or a date alone).
//!
//! A file sink writes the result rows to `FILE` and the production rows to
//! `FILE` with `.production` before its extension (`out.csv`,
//! `out.production.csv`). Both are written under a `.partial` name and
//! renamed when the task succeeds, so a failed task leaves no half-written
//! output; a file task does not resume, it starts again.

use super::tables::identifier;
use super::{
    AUTHOR, Batch, Checkpoint, Columns, FIELD, ID, Keep, LabelError, Labeled, Names, Progress,
    SOURCE, Sink, Source, TIME, TaskInfo, TimeRange, normalise_time,
};
use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};

/// A CSV or JSON-lines file of rows.
pub struct FileSource {
    path: PathBuf,
    jsonl: bool,
    columns: Columns,
    range: TimeRange,
}

impl FileSource {
    /// Checks that the file exists and, for CSV, that its header names
    /// the columns.
    pub fn open(
        path: &Path,
        jsonl: bool,
        columns: Columns,
        range: TimeRange,
    ) -> Result<Self, LabelError> {
        let file = File::open(path).map_err(|e| {
            LabelError::new(format!(
                "cannot read the input file {}: {e}",
                path.display()
            ))
        })?;
        if !jsonl {
            let mut reader = csv_reader(path, file);
            let header = reader.byte_headers().map_err(|e| {
                LabelError::new(format!("the input file {} is not CSV: {e}", path.display()))
            })?;
            let have: Vec<String> = header
                .iter()
                .map(|h| {
                    String::from_utf8_lossy(h)
                        .trim_start_matches('\u{feff}')
                        .to_owned()
                })
                .collect();
            super::sqlite::check_columns(&path.display().to_string(), &have, &columns)?;
        }
        Ok(Self {
            path: path.to_owned(),
            jsonl,
            columns,
            range,
        })
    }

    fn in_range(&self, time: &str, line: u64) -> Result<bool, LabelError> {
        if self.range.since.is_none() && self.range.until.is_none() {
            return Ok(true);
        }
        let t = normalise_time(&self.columns.time, time)
            .map_err(|e| LabelError::new(format!("line {line}: {}", e.message)))?;
        Ok(self.range.since.as_ref().is_none_or(|s| &t >= s)
            && self.range.until.as_ref().is_none_or(|u| &t < u))
    }

    fn names(&self) -> [&str; 5] {
        [
            &self.columns.id,
            &self.columns.source,
            &self.columns.author,
            &self.columns.field,
            &self.columns.time,
        ]
    }
}

fn csv_reader(path: &Path, file: File) -> csv::Reader<BufReader<File>> {
    let tsv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
    csv::ReaderBuilder::new()
        .delimiter(if tsv { b'\t' } else { b',' })
        .flexible(false)
        .from_reader(BufReader::with_capacity(1 << 20, file))
}

impl Source for FileSource {
    fn scan(
        &self,
        _part: usize,
        _parts: usize,
        batch_rows: usize,
        fresh: &mut dyn FnMut() -> Batch,
        emit: &mut dyn FnMut(u64, Batch) -> Result<(), LabelError>,
    ) -> Result<(), LabelError> {
        let file = File::open(&self.path).map_err(|e| {
            LabelError::new(format!(
                "cannot read the input file {}: {e}",
                self.path.display()
            ))
        })?;
        let names = self.names();
        let mut batch = fresh();
        let mut chunk = 0u64;
        let mut values: [Option<String>; 5] = Default::default();
        let mut push_row = |values: &mut [Option<String>; 5],
                            batch: &mut Batch,
                            line: u64|
         -> Result<(), LabelError> {
            let time = values[TIME].as_deref().unwrap_or("");
            if !self.in_range(time, line)? {
                return Ok(());
            }
            for v in values.iter() {
                batch.push(v.as_deref().unwrap_or(""));
            }
            batch.end_row(values[FIELD].is_none());
            if batch.len() >= batch_rows {
                emit(chunk, std::mem::replace(batch, fresh()))?;
                chunk += 1;
            }
            Ok(())
        };
        if self.jsonl {
            let reader = BufReader::with_capacity(1 << 20, file);
            for (n, line) in reader.split(b'\n').enumerate() {
                let line_no = n as u64 + 1;
                let bytes = line
                    .map_err(|e| LabelError::new(format!("reading the input file failed: {e}")))?;
                let text = std::str::from_utf8(&bytes).map_err(|_| {
                    LabelError::new(format!(
                        "line {line_no} of the input file is not valid UTF-8"
                    ))
                })?;
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
                    .map_err(|e| {
                        LabelError::new(format!(
                            "line {line_no} of the input file is not a JSON object: {e}"
                        ))
                    })?;
                for (slot, name) in names.iter().enumerate() {
                    values[slot] = match obj.get(*name) {
                        None => {
                            return Err(LabelError::new(format!(
                                "line {line_no} of the input file has no {name}"
                            )));
                        }
                        Some(serde_json::Value::Null) => None,
                        Some(serde_json::Value::String(s)) => Some(s.clone()),
                        Some(other) => Some(other.to_string()),
                    };
                }
                push_row(&mut values, &mut batch, line_no)?;
            }
        } else {
            let mut reader = csv_reader(&self.path, file);
            let header: Vec<String> = reader
                .byte_headers()
                .map_err(|e| LabelError::new(format!("the input file is not CSV: {e}")))?
                .iter()
                .map(|h| {
                    String::from_utf8_lossy(h)
                        .trim_start_matches('\u{feff}')
                        .to_owned()
                })
                .collect();
            let index: Vec<usize> = names
                .iter()
                .map(|n| {
                    header
                        .iter()
                        .position(|h| h.eq_ignore_ascii_case(n))
                        .unwrap_or(0)
                })
                .collect();
            let mut record = csv::ByteRecord::new();
            loop {
                let more = reader.read_byte_record(&mut record).map_err(|e| {
                    LabelError::new(format!("the input file is not valid CSV: {e}"))
                })?;
                if !more {
                    break;
                }
                let line_no = record.position().map_or(0, |p| p.line());
                for (slot, &i) in index.iter().enumerate() {
                    let raw = record.get(i).unwrap_or(b"");
                    let s = std::str::from_utf8(raw).map_err(|_| {
                        LabelError::new(format!(
                            "line {line_no} of the input file has text that is not valid UTF-8 in its column {}",
                            names[slot]
                        ))
                    })?;
                    // CSV has no NULL: an empty field is one.
                    values[slot] = (!s.is_empty()).then(|| s.to_owned());
                }
                push_row(&mut values, &mut batch, line_no)?;
            }
        }
        if !batch.is_empty() {
            emit(chunk, batch)?;
        }
        Ok(())
    }
}

/// Result and production files.
pub struct FileSink {
    path: PathBuf,
    production: PathBuf,
    jsonl: bool,
    out: Option<BufWriter<File>>,
    task: TaskInfo,
}

fn partial(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

impl FileSink {
    /// Names the files; nothing is written until the task runs.
    pub fn open(path: &Path, jsonl: bool, mut task: TaskInfo) -> Result<Self, LabelError> {
        identifier("result", &task.result)?;
        task.task_id = super::task::task_id_or_new(&task.task_id);
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext = path
            .extension()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let production = path.with_file_name(format!("{stem}.production.{ext}"));
        Ok(Self {
            path: path.to_owned(),
            production,
            jsonl,
            out: None,
            task,
        })
    }

    fn write_line(
        out: &mut BufWriter<File>,
        jsonl: bool,
        names: &[&str],
        values: &[&str],
    ) -> std::io::Result<()> {
        if jsonl {
            let obj: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .zip(values)
                .map(|(n, v)| {
                    let value = if *n == "seq" {
                        v.parse::<u64>().map_or_else(|_| (*v).into(), Into::into)
                    } else {
                        (*v).into()
                    };
                    ((*n).to_owned(), value)
                })
                .collect();
            serde_json::to_writer(&mut *out, &obj)?;
            out.write_all(b"\n")
        } else {
            let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
            w.write_record(values).map_err(std::io::Error::other)?;
            out.write_all(
                &w.into_inner()
                    .map_err(|e| std::io::Error::other(e.to_string()))?,
            )
        }
    }
}

const RESULT_COLUMNS: [&str; 9] = [
    "seq",
    "task_id",
    "id",
    "source",
    "author",
    "label",
    "pattern",
    "match_content",
    "create_time",
];
const PRODUCTION_COLUMNS: [&str; 7] = [
    "id",
    "task_id",
    "source_author",
    "panel",
    "create_time",
    "field_content",
    "match_content",
];

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> LabelError + '_ {
    move |e| LabelError::new(format!("cannot write {}: {e}", path.display()))
}

impl Sink for FileSink {
    fn open(&mut self) -> Result<Option<Checkpoint>, LabelError> {
        let tmp = partial(&self.path);
        let file = File::create(&tmp).map_err(io_error(&tmp))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        if !self.jsonl {
            Self::write_line(&mut out, false, &RESULT_COLUMNS, &RESULT_COLUMNS)
                .map_err(io_error(&tmp))?;
        }
        self.out = Some(out);
        Ok(None)
    }

    fn write(
        &mut self,
        batch: &Batch,
        rows: &[Labeled],
        names: &Names,
        _progress: &Progress,
    ) -> Result<(), LabelError> {
        let tmp = partial(&self.path);
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| LabelError::new("the result file is not open"))?;
        let mut seq = String::new();
        for l in rows {
            use std::fmt::Write as _;
            let r = l.row as usize;
            seq.clear();
            let _ = write!(seq, "{}", l.seq);
            let values = [
                seq.as_str(),
                &self.task.task_id,
                batch.get(r, ID),
                batch.get(r, SOURCE),
                batch.get(r, AUTHOR),
                &names.labels[l.label as usize],
                &names.patterns[l.pattern as usize],
                batch.get(r, FIELD),
                batch.get(r, TIME),
            ];
            Self::write_line(out, self.jsonl, &RESULT_COLUMNS, &values).map_err(io_error(&tmp))?;
        }
        Ok(())
    }

    fn tally_budget(&self) -> Option<usize> {
        // A file cannot be queried: the tally stays in memory.
        None
    }

    fn produce(&mut self, keep: &Keep, _progress: &Progress) -> Result<u64, LabelError> {
        let Keep::Seqs(winners) = keep else {
            return Err(LabelError::new(
                "a file output keeps its production tally in memory",
            ));
        };
        let mut written = 0u64;
        let tmp = partial(&self.path);
        if let Some(mut out) = self.out.take() {
            out.flush().map_err(io_error(&tmp))?;
            out.get_ref().sync_all().map_err(io_error(&tmp))?;
        }
        // Read the results back in order, keeping the winners' rows.
        let prod_tmp = partial(&self.production);
        let mut out = BufWriter::with_capacity(
            1 << 20,
            File::create(&prod_tmp).map_err(io_error(&prod_tmp))?,
        );
        if !self.jsonl {
            Self::write_line(&mut out, false, &PRODUCTION_COLUMNS, &PRODUCTION_COLUMNS)
                .map_err(io_error(&prod_tmp))?;
        }
        let mut next = winners.iter().peekable();
        let mut keep = |row: &[String; 9], out: &mut BufWriter<File>| -> Result<(), LabelError> {
            let seq: u64 = row[0].parse().unwrap_or(0);
            while next.peek().is_some_and(|&&w| w < seq) {
                next.next();
            }
            if next.peek() == Some(&&seq) {
                let source_author = format!("{}_{}", row[3], row[4]);
                let values = [
                    row[2].as_str(),
                    &row[1],
                    &source_author,
                    &row[5],
                    &row[8],
                    &row[3],
                    &row[7],
                ];
                Self::write_line(out, self.jsonl, &PRODUCTION_COLUMNS, &values)
                    .map_err(io_error(&prod_tmp))?;
                written += 1;
            }
            Ok(())
        };
        let file = File::open(&tmp).map_err(io_error(&tmp))?;
        let mut row: [String; 9] = Default::default();
        if self.jsonl {
            for line in BufReader::new(file).lines() {
                let line = line.map_err(io_error(&tmp))?;
                let obj: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&line)
                        .map_err(|e| io_error(&tmp)(std::io::Error::other(e)))?;
                for (slot, name) in RESULT_COLUMNS.iter().enumerate() {
                    row[slot] = match obj.get(*name) {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    };
                }
                keep(&row, &mut out)?;
            }
        } else {
            let mut reader = csv::Reader::from_reader(BufReader::new(file));
            for record in reader.records() {
                let record = record.map_err(|e| io_error(&tmp)(std::io::Error::other(e)))?;
                for (slot, v) in record.iter().enumerate().take(9) {
                    row[slot] = v.to_owned();
                }
                keep(&row, &mut out)?;
            }
        }
        out.flush().map_err(io_error(&prod_tmp))?;
        out.get_ref().sync_all().map_err(io_error(&prod_tmp))?;
        drop(out);
        std::fs::rename(&prod_tmp, &self.production).map_err(io_error(&self.production))?;
        std::fs::rename(&tmp, &self.path).map_err(io_error(&self.path))?;
        Ok(written)
    }

    fn fail(&mut self, _message: &str) {
        self.out = None;
        let _ = std::fs::remove_file(partial(&self.path));
        let _ = std::fs::remove_file(partial(&self.production));
    }

    fn task_id(&self) -> String {
        self.task.task_id.clone()
    }
}
