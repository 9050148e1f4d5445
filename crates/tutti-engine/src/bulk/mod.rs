//! Bulk labeling: a pattern file applied to one column of millions of rows,
//! at the speed of reading them.
//!
//! A task reads a source (a SQLite, PostgreSQL or MySQL/MariaDB table
//! filtered by a time range, or a CSV/JSONL file) in a fixed order, finds
//! each row's labels with a [`tutti_label::Matcher`], and writes one result
//! row per (row, label) to a sink (a database or a file). Then the
//! production step keeps one label per (source, author).
//!
//! Threads share the work, so reading, matching and writing overlap:
//!
//! ```text
//! scanner 1 ─┐ chunks, matched   sequencer            writer
//! scanner 2 ─┴────────────────▶ (chunk order, ──────▶ (sink: rows and
//!  (read + match)                counts, tally)        checkpoint together)
//! ```
//!
//! A source that can be read in parts (a SQLite table, by rowid ranges)
//! gets two scanners; others one. Each chunk carries its number, and the
//! sequencer takes chunks strictly in order, so the result is the same
//! whatever the threads' timing. Batches go back to the scanners once
//! written, so steady state allocates nothing.
//!
//! Memory stays flat whatever the row count: at most a few batches are in
//! flight, and what is kept per task grows with the number of distinct
//! (source, author) pairs (about 30 bytes each for the unique count and
//! the first label's tally, 17-34 more per further label of a pair), never
//! with rows. Past a budget of tallies the production step becomes a query
//! over the result rows instead.
//!
//! **Checkpoints and resume.** Each batch's result rows commit in one
//! transaction with the task's state: rows read so far and the id of the
//! last one. A task that failed or was killed runs again from the start of
//! its source, matching but not writing the rows before its checkpoint
//! (that rebuilds the counts and the production tally exactly), so nothing
//! is written twice and nothing is lost. If the row at the checkpoint is no
//! longer the one recorded, the source has changed and the task fails
//! rather than guess.
//!
//! **The production rule.** For each (source, author) with at least one
//! labeled row, the production table keeps one row: the label with the
//! most result rows for that pair; among equals, the label of higher
//! priority (see [`tutti_label::patterns`]); among equals again, the label
//! seen first. The row kept is that label's first result row.

pub mod external;
pub mod file;
pub mod pages;
pub mod sqlite;
pub mod tables;
pub mod task;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;
use tutti_label::matcher::Scratch;
use tutti_label::{Hit, Matcher, MatcherOptions, PatternSet};

/// Rows per batch (and per committed transaction) unless told otherwise.
/// About ten batches are in flight at once: with 5,000 rows of posts that
/// is about 8 MB, where 10,000 rows held content labeling a few MB over a
/// 64 MB peak for no more speed.
pub const DEFAULT_BATCH_ROWS: usize = 5_000;

/// Why a task failed. The message is for people; it names what to fix and
/// never carries a database's own error text, which goes in `detail`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct LabelError {
    /// What went wrong, for the person who asked.
    pub message: String,
    /// The underlying error, for the log (may hold SQL or driver text).
    pub detail: Option<String>,
}

impl LabelError {
    /// An error whose message says it all.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            detail: None,
        }
    }

    /// An error with a public message and a private cause.
    pub fn with_detail(message: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self {
            message: message.into(),
            detail: Some(detail.to_string()),
        }
    }

    /// The message and, where there is one, the cause.
    pub fn full(&self) -> String {
        match &self.detail {
            Some(d) => format!("{}: {d}", self.message),
            None => self.message.clone(),
        }
    }
}

/// The column names a source's rows are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    /// The row id (text or number).
    pub id: String,
    /// Where the row came from (a page, a channel).
    pub source: String,
    /// Who wrote it.
    pub author: String,
    /// The column the patterns are matched against.
    pub field: String,
    /// The time column the range filters on.
    pub time: String,
}

impl Columns {
    /// The Audience layout: `id, source, author_name, <field>, create_time`.
    pub fn audience(field: &str) -> Self {
        Self {
            id: "id".into(),
            source: "source".into(),
            author: "author_name".into(),
            field: field.into(),
            time: "create_time".into(),
        }
    }

    /// The distinct columns to read, in order (the field may be the author).
    pub fn all(&self) -> Vec<&str> {
        let mut out = vec![
            self.id.as_str(),
            self.source.as_str(),
            self.author.as_str(),
            self.field.as_str(),
            self.time.as_str(),
        ];
        let mut seen = HashSet::new();
        out.retain(|c| seen.insert(*c));
        out
    }
}

/// A half-open time range `[since, until)`, either end open. Times are
/// `YYYY-MM-DD HH:MM:SS` (a `T` or a date alone is accepted and
/// normalised).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// First time included.
    pub since: Option<String>,
    /// First time excluded.
    pub until: Option<String>,
}

impl TimeRange {
    /// Checks and normalises both ends; `since` must come before `until`.
    pub fn parse(since: Option<&str>, until: Option<&str>) -> Result<Self, LabelError> {
        let since = since.map(|s| normalise_time("start_time", s)).transpose()?;
        let until = until.map(|s| normalise_time("end_time", s)).transpose()?;
        if let (Some(a), Some(b)) = (&since, &until)
            && a >= b
        {
            return Err(LabelError::new("start_time must be earlier than end_time"));
        }
        Ok(Self { since, until })
    }

    /// `since - until` as the Audience API shows it.
    pub fn display(&self) -> String {
        format!(
            "{} - {}",
            self.since.as_deref().unwrap_or(""),
            self.until.as_deref().unwrap_or("")
        )
    }
}

/// `2020-01-01`, `2020-01-01T00:00:00` or `2020-01-01 00:00:00(.fff)` to
/// `2020-01-01 00:00:00`.
pub fn normalise_time(field: &str, s: &str) -> Result<String, LabelError> {
    let s = s.trim();
    let bad = || {
        LabelError::new(format!(
            "{field}: {s:?} is not a time; write YYYY-MM-DD HH:MM:SS"
        ))
    };
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, t.trim_end_matches('Z')),
        None => (s, "00:00:00"),
    };
    let time = time.split('.').next().unwrap_or(time);
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || !(t.len() == 2 || t.len() == 3) {
        return Err(bad());
    }
    let num = |x: &str, len: usize, max: u32| -> Result<u32, LabelError> {
        if x.len() != len || !x.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u32 = x.parse().map_err(|_| bad())?;
        if n > max { Err(bad()) } else { Ok(n) }
    };
    let (y, mo, da) = (num(d[0], 4, 9999)?, num(d[1], 2, 12)?, num(d[2], 2, 31)?);
    let (h, mi) = (num(t[0], 2, 23)?, num(t[1], 2, 59)?);
    let se = if t.len() == 3 { num(t[2], 2, 59)? } else { 0 };
    if mo == 0 || da == 0 {
        return Err(bad());
    }
    Ok(format!("{y:04}-{mo:02}-{da:02} {h:02}:{mi:02}:{se:02}"))
}

/// A batch of source rows in one buffer: per row the id, source, author,
/// field and time, in that order.
#[derive(Debug, Default)]
pub struct Batch {
    text: String,
    ends: Vec<u32>,
    field_null: Vec<bool>,
}

/// Indices of a row's values in a [`Batch`].
pub const ID: usize = 0;
/// The source.
pub const SOURCE: usize = 1;
/// The author.
pub const AUTHOR: usize = 2;
/// The matched field.
pub const FIELD: usize = 3;
/// The time.
pub const TIME: usize = 4;

impl Batch {
    /// An empty batch with room for about `rows` rows.
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            text: String::with_capacity(rows * 64),
            ends: Vec::with_capacity(rows * 5),
            field_null: Vec::with_capacity(rows),
        }
    }

    /// Appends one value of the current row (five make a row).
    pub fn push(&mut self, value: &str) {
        self.text.push_str(value);
        self.ends.push(self.text.len() as u32);
    }

    /// Appends the current row's last value again, for a column that
    /// plays two parts (the author's name as the matched field).
    pub fn push_again(&mut self) {
        debug_assert!(
            !self.ends.len().is_multiple_of(5),
            "a row's first value has none before it"
        );
        let end = self.ends.last().copied().unwrap_or(0) as usize;
        let start = match self.ends.len() {
            0 | 1 => 0,
            n => self.ends[n - 2] as usize,
        };
        self.text.extend_from_within(start..end);
        self.ends.push(self.text.len() as u32);
    }

    /// Ends a row; `field_null` says the matched field was NULL.
    pub fn end_row(&mut self, field_null: bool) {
        debug_assert_eq!(self.ends.len(), (self.field_null.len() + 1) * 5);
        self.field_null.push(field_null);
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.field_null.len()
    }

    /// True when the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.field_null.is_empty()
    }

    /// Value `col` of row `row`.
    pub fn get(&self, row: usize, col: usize) -> &str {
        let i = row * 5 + col;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    /// Whether row `row`'s field was NULL.
    pub fn field_is_null(&self, row: usize) -> bool {
        self.field_null[row]
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    /// Empties the batch, keeping its memory.
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
        self.field_null.clear();
    }

    /// Appends row `row` of `from`.
    fn push_row(&mut self, from: &Batch, row: usize) {
        for col in 0..5 {
            self.push(from.get(row, col));
        }
        self.end_row(from.field_is_null(row));
    }
}

/// Where rows come from.
pub trait Source: Send + Sync {
    /// How many scanners may read at once.
    fn parts(&self) -> usize {
        1
    }

    /// Reads part `part` of `parts` of the rows: chunks numbered from 0 in
    /// a fixed order (the same on every call), each handed to `emit` with
    /// its number. Together the parts cover every chunk once; a chunk may
    /// be empty but no number is skipped. `fresh` gives an empty batch to
    /// fill. Stops early when `emit` returns an error, and returns it.
    fn scan(
        &self,
        part: usize,
        parts: usize,
        batch_rows: usize,
        fresh: &mut dyn FnMut() -> Batch,
        emit: &mut dyn FnMut(u64, Batch) -> Result<(), LabelError>,
    ) -> Result<(), LabelError>;
}

/// Spares a pool keeps: at least as many as can be in flight, so that
/// steady state allocates nothing.
const POOL_SPARES: usize = 16;

/// Hands out cleared batches (or chunks' findings), taking back those
/// that were used and clearing them.
struct Pool<T>(std::sync::Mutex<Vec<T>>);

/// What a [`Pool`] keeps: cleared, it keeps its memory.
trait Reuse {
    fn clear(&mut self);
}

impl Reuse for Batch {
    fn clear(&mut self) {
        Batch::clear(self);
    }
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(Vec::new()))
    }
}

impl<T: Reuse> Pool<T> {
    fn take(&self, make: impl FnOnce() -> T) -> T {
        self.0
            .lock()
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_else(make)
    }

    fn give(&self, mut t: T) {
        t.clear();
        if let Ok(mut v) = self.0.lock()
            && v.len() < POOL_SPARES
        {
            v.push(t);
        }
    }
}

/// Lets scanners run at most a few chunks ahead of the sequencer, so the
/// reorder buffer stays small.
struct Window {
    next: std::sync::Mutex<u64>,
    moved: std::sync::Condvar,
    ahead: u64,
}

impl Window {
    fn wait_for(&self, chunk: u64, control: &Control) {
        let Ok(mut next) = self.next.lock() else {
            return;
        };
        while chunk >= *next + self.ahead && !control.stopped() {
            match self
                .moved
                .wait_timeout(next, std::time::Duration::from_millis(50))
            {
                Ok((guard, _)) => next = guard,
                Err(_) => return,
            }
        }
    }

    fn advance(&self, to: u64) {
        if let Ok(mut next) = self.next.lock() {
            *next = to;
        }
        self.moved.notify_all();
    }
}

/// One result row: a row of a batch and one of its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labeled {
    /// Position of the result row in the task's results (from 1).
    pub seq: u64,
    /// The row within the batch handed to the sink with it.
    pub row: u32,
    /// Index into the pattern set's labels.
    pub label: u16,
    /// Index into the pattern set's patterns.
    pub pattern: u32,
}

/// A task's counters, as kept in its state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Rows read from the source.
    pub received: u64,
    /// Rows with at least one label.
    pub labeled_rows: u64,
    /// Result rows (one per row and label).
    pub result_rows: u64,
    /// Production rows, once the production step has run.
    pub production_rows: Option<u64>,
    /// Distinct (source, author) pairs among the rows read.
    pub unique_pairs: u64,
    /// Rows committed: the checkpoint.
    pub checkpoint_rows: u64,
    /// Id of the last committed row.
    pub checkpoint_id: Option<String>,
    /// Batches committed.
    pub batches: u64,
    /// Seconds since the task (this attempt) started.
    pub seconds: f64,
    /// Peak resident memory of the process, in MB.
    pub peak_mb: Option<f64>,
    /// Seconds the scanners spent reading and matching (all of them
    /// together, waits excluded).
    pub scan_seconds: f64,
    /// Seconds the writer spent writing.
    pub write_seconds: f64,
}

impl Progress {
    /// Production rows per unique (source, author), in percent.
    pub fn rate_of_label(&self) -> Option<f64> {
        let prod = self.production_rows?;
        (self.unique_pairs > 0).then(|| prod as f64 * 100.0 / self.unique_pairs as f64)
    }
}

/// A task's checkpoint as its sink recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Rows committed.
    pub rows: u64,
    /// Id of the last committed row.
    pub id: Option<String>,
    /// Whether the production step has finished.
    pub produced: bool,
}

/// Where results go.
pub trait Sink: Send {
    /// Makes the result tables if missing and returns the task's
    /// checkpoint if it has run before.
    fn open(&mut self) -> Result<Option<Checkpoint>, LabelError>;
    /// Writes a batch's result rows and the new checkpoint in one
    /// transaction.
    fn write(
        &mut self,
        batch: &Batch,
        rows: &[Labeled],
        names: &Names,
        progress: &Progress,
    ) -> Result<(), LabelError>;
    /// Writes the production rows and marks the task finished, in one
    /// transaction; returns how many rows it wrote.
    fn produce(&mut self, keep: &Keep, progress: &Progress) -> Result<u64, LabelError>;
    /// How many (pair, label) tallies the production step may keep in
    /// memory before it leaves the work to the database ([`Keep::ByQuery`]);
    /// `None` for sinks that cannot run a query.
    fn tally_budget(&self) -> Option<usize> {
        Some(DEFAULT_TALLY_BUDGET)
    }
    /// Marks the task failed with a message (best effort: the failure may
    /// be the sink's own).
    fn fail(&mut self, message: &str);
    /// The task's id (after [`Sink::open`], the unfinished task of the
    /// same configuration it resumes, if the task came without one).
    fn task_id(&self) -> String;
}

/// (pair, label) tallies kept in memory by default: the side map of
/// second and further labels stays within 2^20 slots (about 18 MB).
pub const DEFAULT_TALLY_BUDGET: usize = 900_000;

/// Which result rows the production step keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Keep {
    /// These (by `seq`, ascending), tallied in memory.
    Seqs(Vec<u64>),
    /// Those the production rule picks, by a query over the result rows
    /// (the tally outgrew its budget); with each label's priority.
    ByQuery(Vec<(String, i32)>),
}

/// What a sink records about its task in the `state` table, beside the
/// counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskInfo {
    /// 32 lower-case hex digits.
    pub task_id: String,
    /// `keyword_model` or `rule_model`.
    pub model_type: String,
    /// The matched column.
    pub predict_type: String,
    /// `since - until`.
    pub date_range: String,
    /// Where rows came from.
    pub target_table: String,
    /// The result table's name; production goes to
    /// `wh_panel_mapping_{result}`.
    pub result: String,
    /// When the task was made (`YYYY-MM-DD HH:MM:SS`).
    pub create_time: String,
    /// A digest of everything that decides the task's output; a resumed
    /// task must have the same.
    pub digest: String,
}

/// A new task id: 32 lower-case hex digits.
pub fn new_task_id() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Now, as `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn now_text() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Label and pattern texts by index, for sinks.
#[derive(Debug, Clone)]
pub struct Names {
    /// Labels.
    pub labels: Vec<String>,
    /// Patterns as written.
    pub patterns: Vec<String>,
}

/// What a task does.
pub struct Plan {
    /// The patterns.
    pub patterns: PatternSet,
    /// Matching options.
    pub options: MatcherOptions,
    /// Rows per batch and transaction.
    pub batch_rows: usize,
    /// Pause between labeling and the production step (the Audience
    /// `countdown`).
    pub countdown: std::time::Duration,
    /// Most (pair, label) tallies kept in memory, if not the sink's own
    /// budget.
    pub tally_budget: Option<usize>,
}

/// A running task's view from outside: progress as batches commit, and a
/// flag to stop it.
#[derive(Clone, Default)]
pub struct Control {
    stop: Arc<AtomicBool>,
}

impl Control {
    /// Asks the task to stop after the batch in hand.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// A fast 64-bit hash of a (source, author) pair for counting pairs.
/// Distinct pairs collide with odds of about n²/2⁶⁵: one in several
/// hundred thousand for ten million pairs.
pub fn pair_hash(source: &str, author: &str) -> u64 {
    let mut h = Fold64::default();
    h.write(source.as_bytes());
    h.write(&[0xFF]);
    h.write(author.as_bytes());
    h.finish()
}

/// A multiply-fold hash in the spirit of FxHash/wyhash: eight bytes at a
/// time, mixed by a 128-bit multiply.
struct Fold64(u64);

impl Default for Fold64 {
    fn default() -> Self {
        Self(0x243F_6A88_85A3_08D3)
    }
}

impl Fold64 {
    fn mix(&mut self, word: u64) {
        let m = (self.0 ^ word) as u128 * 0x9E37_79B9_7F4A_7C15u128;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl Hasher for Fold64 {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let rest = chunks.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        self.mix(u64::from_le_bytes(last) ^ ((bytes.len() as u64) << 56));
    }
    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        x ^ (x >> 33)
    }
}

/// Hashes keys that are hashes already.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys are hashed")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type U64Map<V> = HashMap<u64, V, BuildHasherDefault<Identity>>;

/// A label's standing for one pair: 12 bytes.
#[derive(Debug, Clone, Copy)]
struct Tally {
    label: u16,
    count: u32,
    first_seq: u32,
}

/// The label of a pair with none yet.
const NO_LABEL: u16 = u16::MAX;

/// The (source, author) pairs seen, numbered in order of first sight, and
/// per pair the tally of its labels: the first label's in a vector by
/// number (12 bytes a pair), further labels' in a side map (about 17-34
/// bytes each). A pair costs about 30 bytes in all.
#[derive(Default)]
struct Production {
    /// Pair hash to its number.
    ids: U64Map<u32>,
    /// By pair number: the tally of the pair's first label.
    first: Vec<Tally>,
    /// Further labels: (pair number << 16 | label) to (count, first seq).
    more: HashMap<u64, (u32, u32), BuildHasherDefault<Fold64>>,
    /// Pairs with at least one label.
    labeled: usize,
    /// Most tallies kept; past it the tally is dropped for a query.
    budget: Option<usize>,
    overflowed: bool,
}

impl Production {
    /// The number of a pair, numbering it if new.
    fn see(&mut self, pair: u64) -> u32 {
        let next = self.ids.len() as u32;
        let id = *self.ids.entry(pair).or_insert(next);
        if id == next && !self.overflowed {
            self.first.push(Tally {
                label: NO_LABEL,
                count: 0,
                first_seq: 0,
            });
        }
        id
    }

    /// Distinct pairs seen.
    fn unique(&self) -> usize {
        self.ids.len()
    }

    /// Drops the tally: the production step will be a query.
    fn overflow(&mut self) {
        self.overflowed = true;
        self.first = Vec::new();
        self.more = HashMap::default();
    }

    /// Counts result row `seq` (label `label`) for pair number `id`.
    fn add(&mut self, id: u32, label: u16, seq: u64) {
        if self.overflowed {
            return;
        }
        let Ok(seq) = u32::try_from(seq) else {
            self.overflow();
            return;
        };
        if id == u32::MAX {
            self.overflow();
            return;
        }
        // Only a new tally counts against the budget.
        let full = self
            .budget
            .is_some_and(|b| self.labeled + self.more.len() >= b);
        let t = &mut self.first[id as usize];
        if t.label == label {
            t.count += 1;
        } else if t.label == NO_LABEL {
            if full {
                self.overflow();
                return;
            }
            *t = Tally {
                label,
                count: 1,
                first_seq: seq,
            };
            self.labeled += 1;
        } else {
            match self.more.entry(u64::from(id) << 16 | u64::from(label)) {
                std::collections::hash_map::Entry::Occupied(mut o) => o.get_mut().0 += 1,
                std::collections::hash_map::Entry::Vacant(v) => {
                    if full {
                        self.overflow();
                        return;
                    }
                    v.insert((1, seq));
                }
            }
        }
    }

    /// The `seq` of each pair's kept row, ascending.
    fn winners(mut self, priority: &[i32]) -> Vec<u64> {
        let key = |t: &Tally| {
            (
                t.count,
                priority[t.label as usize],
                std::cmp::Reverse(t.first_seq),
            )
        };
        for (&k, &(count, first_seq)) in &self.more {
            let other = Tally {
                label: (k & 0xFFFF) as u16,
                count,
                first_seq,
            };
            let best = &mut self.first[(k >> 16) as usize];
            if key(&other) > key(best) {
                *best = other;
            }
        }
        let mut out: Vec<u64> = self
            .first
            .iter()
            .filter(|t| t.label != NO_LABEL)
            .map(|t| u64::from(t.first_seq))
            .collect();
        out.sort_unstable();
        out
    }
}

/// Peak resident memory of this process in MB (Linux), if known.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

enum ToWriter {
    /// A chunk's labeled rows with its result rows.
    Found(Found, Progress),
    Produce(Keep, Progress),
}

/// What a scanner found in a chunk: each row's pair hash, the labels
/// (row, label, pattern) and only the rows that have labels, so that what
/// waits for the writer is a fifth of what was read.
#[derive(Default)]
struct Found {
    chunk: u64,
    /// Rows read.
    rows: u64,
    /// The id of the last row read.
    last_id: String,
    /// Per row read, its (source, author) pair's hash.
    pairs: Vec<u64>,
    /// (row read, hit), by row.
    hits: Vec<(u32, Hit)>,
    /// The rows with hits, in order; or every row read when `whole`.
    kept: Batch,
    /// `kept` holds every row read (a resumed task checks the row at its
    /// checkpoint).
    whole: bool,
    /// The result rows, by their row in `kept`.
    out: Vec<Labeled>,
}

impl Reuse for Found {
    fn clear(&mut self) {
        self.rows = 0;
        self.last_id.clear();
        self.pairs.clear();
        self.hits.clear();
        self.kept.clear();
        self.out.clear();
    }
}

/// Chunks a scanner may run ahead of the sequencer.
const AHEAD: u64 = 1;

/// Chunks that may wait for the writer: its syncs are then absorbed while
/// the scanners go on. Once the scanners read pages directly, 8 let a
/// commit's sync stall them (author names: 1.01-1.03 s against 0.90-0.91
/// with 16 and a commit every 250,000 rows); 32 held content labeling a
/// few MB nearer its 64 MB bound for no more speed.
const WRITER_QUEUE: usize = 16;

/// Runs a task to its end: labels every row of `source` into `sink`, then
/// the production step. `report` sees the progress after every committed
/// batch (and once more at the end). Returns the final counters.
pub fn run(
    plan: &Plan,
    source: &dyn Source,
    sink: &mut dyn Sink,
    control: &Control,
    report: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Progress, LabelError> {
    let started = Instant::now();
    let checkpoint = sink.open()?;
    if checkpoint.as_ref().is_some_and(|c| c.produced) {
        return Err(LabelError::new(format!(
            "task {} has already labeled these rows into this output; its results are there \
             (write to another output or result table to label them again)",
            sink.task_id()
        )));
    }
    let skip = checkpoint.as_ref().map(|c| c.rows).unwrap_or(0);
    let checkpoint_id = checkpoint.as_ref().and_then(|c| c.id.clone());
    if plan.patterns.labels.len() > u16::MAX as usize {
        return Err(LabelError::new(format!(
            "a pattern file may give at most {} labels",
            u16::MAX
        )));
    }
    let matcher = Matcher::new(&plan.patterns, plan.options);
    let names = Names {
        labels: plan.patterns.labels.clone(),
        patterns: plan
            .patterns
            .patterns
            .iter()
            .map(|p| p.pattern.clone())
            .collect(),
    };
    let priority: Vec<i32> = (0..plan.patterns.labels.len())
        .map(|l| plan.patterns.label_priority(l))
        .collect();
    let batch_rows = plan.batch_rows.max(1);
    let budget = sink.tally_budget();
    let parts = source.parts().max(1);
    let pool = Pool::<Batch>::default();
    let found_pool = Pool::<Found>::default();
    // A resumed task's scanners keep every row until the sequencer has
    // checked the row at the checkpoint.
    let keep_whole = AtomicBool::new(skip > 0);
    let scan_nanos = std::sync::atomic::AtomicU64::new(0);
    let window = Window {
        next: std::sync::Mutex::new(0),
        moved: std::sync::Condvar::new(),
        ahead: AHEAD * parts as u64,
    };

    std::thread::scope(|scope| -> Result<Progress, LabelError> {
        let (chunk_tx, chunk_rx) = mpsc::sync_channel::<Found>(parts);
        let (out_tx, out_rx) = mpsc::sync_channel::<ToWriter>(WRITER_QUEUE);

        let mut scanners = Vec::new();
        for part in 0..parts {
            let chunk_tx = chunk_tx.clone();
            let (matcher, pool, found_pool, window, scan_nanos, keep_whole) = (
                &matcher,
                &pool,
                &found_pool,
                &window,
                &scan_nanos,
                &keep_whole,
            );
            scanners.push(scope.spawn(move || {
                let mut scratch = Scratch::default();
                let mut busy_since = Instant::now();
                let scanned = source.scan(
                    part,
                    parts,
                    batch_rows,
                    &mut || pool.take(|| Batch::with_capacity(batch_rows)),
                    &mut |chunk, mut batch| {
                        if control.stopped() {
                            return Err(LabelError::new("the task was stopped"));
                        }
                        let mut found = found_pool.take(Found::default);
                        found.chunk = chunk;
                        found.rows = batch.len() as u64;
                        found.whole = keep_whole.load(Ordering::Acquire);
                        if let Some(last) = batch.len().checked_sub(1) {
                            found.last_id.push_str(batch.get(last, ID));
                        }
                        found.pairs.extend(
                            (0..batch.len())
                                .map(|r| pair_hash(batch.get(r, SOURCE), batch.get(r, AUTHOR))),
                        );
                        matcher.labels_of_many(
                            batch.len(),
                            |r| (!batch.field_is_null(r)).then(|| batch.get(r, FIELD)),
                            &mut scratch,
                            &mut found.hits,
                        );
                        if found.whole {
                            std::mem::swap(&mut found.kept, &mut batch);
                        } else {
                            let mut last = u32::MAX;
                            for &(row, _) in &found.hits {
                                if row != last {
                                    found.kept.push_row(&batch, row as usize);
                                    last = row;
                                }
                            }
                        }
                        pool.give(batch);
                        scan_nanos
                            .fetch_add(busy_since.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        window.wait_for(chunk, control);
                        let sent = chunk_tx.send(found).map_err(|_| LabelError::new(STOPPED));
                        busy_since = Instant::now();
                        sent
                    },
                );
                if scanned.is_err() {
                    // The chunks this scanner owed will not come: let the
                    // others stop waiting for the sequencer to reach them.
                    window.advance(u64::MAX / 2);
                }
                scanned
            }));
        }
        drop(chunk_tx);

        let names_ref = &names;
        let found_pool_ref = &found_pool;
        let writer = scope.spawn(move || -> Result<Progress, LabelError> {
            let mut last = Progress::default();
            let mut writing = 0.0;
            for msg in out_rx {
                match msg {
                    ToWriter::Found(found, mut progress) => {
                        if control.stopped() {
                            // What is queued is read again on resume.
                            return Err(LabelError::new("the task was stopped"));
                        }
                        progress.seconds = started.elapsed().as_secs_f64();
                        progress.peak_mb = peak_rss_mb();
                        let t = Instant::now();
                        sink.write(&found.kept, &found.out, names_ref, &progress)?;
                        writing += t.elapsed().as_secs_f64();
                        progress.write_seconds = writing;
                        found_pool_ref.give(found);
                        report(&progress);
                        last = progress;
                    }
                    ToWriter::Produce(keep, mut progress) => {
                        progress.seconds = started.elapsed().as_secs_f64();
                        progress.peak_mb = peak_rss_mb();
                        let t = Instant::now();
                        progress.production_rows = Some(sink.produce(&keep, &progress)?);
                        writing += t.elapsed().as_secs_f64();
                        progress.write_seconds = writing;
                        report(&progress);
                        last = progress;
                    }
                }
            }
            Ok(last)
        });

        // The sequencer runs here.
        let sequenced = (|| -> Result<(), LabelError> {
            let mut production = Production {
                budget: plan.tally_budget.or(budget),
                ..Production::default()
            };
            let mut p = Progress {
                checkpoint_rows: skip,
                checkpoint_id: checkpoint_id.clone(),
                ..Progress::default()
            };
            let mut seq = 0u64;
            let mut next = 0u64;
            let mut ids: Vec<u32> = Vec::new();
            let mut waiting: std::collections::BTreeMap<u64, Found> = Default::default();
            for f in chunk_rx {
                waiting.insert(f.chunk, f);
                while let Some(mut found) = waiting.remove(&next) {
                    next += 1;
                    window.advance(next);
                    let base = p.received;
                    if base < skip
                        && skip <= base + found.rows
                        && let Some(id) = &checkpoint_id
                    {
                        // A resumed task's scanners keep every row.
                        debug_assert!(found.whole);
                        let at = found.kept.get((skip - base - 1) as usize, ID);
                        if at != id {
                            return Err(LabelError::new(format!(
                                "the source has changed since this task's checkpoint: row {skip} is now id {at:?}, \
                                 not {id:?} as recorded; start a new task"
                            )));
                        }
                    }
                    ids.clear();
                    ids.extend(found.pairs.iter().map(|&h| production.see(h)));
                    let mut out = std::mem::take(&mut found.out);
                    let mut last_row = u32::MAX;
                    // The row's place in `kept`.
                    let mut kept_row = u32::MAX;
                    for (row, hit) in &found.hits {
                        let (row, label, pattern) = (*row, hit.label as u16, hit.pattern as u32);
                        if row != last_row {
                            p.labeled_rows += 1;
                            last_row = row;
                            kept_row = if found.whole {
                                row
                            } else {
                                kept_row.wrapping_add(1)
                            };
                        }
                        seq += 1;
                        production.add(ids[row as usize], label, seq);
                        if base + u64::from(row) >= skip {
                            out.push(Labeled {
                                seq,
                                row: kept_row,
                                label,
                                pattern,
                            });
                        }
                    }
                    found.out = out;
                    p.received += found.rows;
                    if p.received >= skip {
                        keep_whole.store(false, Ordering::Release);
                    }
                    p.result_rows = seq;
                    p.unique_pairs = production.unique() as u64;
                    if p.received <= skip || found.rows == 0 {
                        found_pool.give(found);
                        continue;
                    }
                    p.batches += 1;
                    p.checkpoint_rows = p.received;
                    p.checkpoint_id = Some(found.last_id.clone());
                    if out_tx.send(ToWriter::Found(found, p.clone())).is_err() {
                        return Ok(());
                    }
                }
            }
            if !waiting.is_empty() {
                // A scanner stopped early (its error says why) or skipped
                // a chunk.
                return Err(LabelError::new(
                    "the source's chunks did not arrive in full",
                ));
            }
            if p.received < skip {
                return Err(LabelError::new(format!(
                    "the source has changed since this task's checkpoint: it now has {} rows, \
                     fewer than the {skip} already labeled; start a new task",
                    p.received
                )));
            }
            let until = Instant::now() + plan.countdown;
            while Instant::now() < until && !control.stopped() {
                std::thread::sleep(
                    std::time::Duration::from_millis(50).min(until - Instant::now()),
                );
            }
            if control.stopped() {
                return Err(LabelError::new("the task was stopped"));
            }
            let keep = if production.overflowed {
                Keep::ByQuery(
                    plan.patterns
                        .labels
                        .iter()
                        .cloned()
                        .zip(priority.iter().copied())
                        .collect(),
                )
            } else {
                let winners = production.winners(&priority);
                p.production_rows = Some(winners.len() as u64);
                Keep::Seqs(winners)
            };
            p.scan_seconds = scan_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = out_tx.send(ToWriter::Produce(keep, p));
            Ok(())
        })();
        // Unblock scanners waiting on the window if the sequencer quit.
        window.advance(u64::MAX / 2);
        drop(out_tx);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(LabelError::new("the writer stopped unexpectedly")));
        let mut read: Result<(), LabelError> = Ok(());
        for s in scanners {
            let r = s
                .join()
                .unwrap_or_else(|_| Err(LabelError::new("a scanner stopped unexpectedly")));
            if (read.is_ok() || matches!(&read, Err(e) if e.message == STOPPED))
                && let Err(e) = r
            {
                read = Err(e);
            }
        }
        // The first real cause wins: a scanner's error explains a
        // sequencer that ran dry, a writer's error one that could not send.
        match (read, sequenced, written) {
            (Err(e), _, _) if e.message != STOPPED => Err(e),
            (_, Err(e), _) => Err(e),
            (_, _, Err(e)) => Err(e),
            (Err(e), _, _) => Err(e),
            (Ok(()), Ok(()), Ok(p)) => Ok(p),
        }
    })
}

const STOPPED: &str = "labeling stopped";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ranges_are_normalised_and_must_run_forwards() {
        let r = TimeRange::parse(Some("2020-01-01"), Some("2021-01-01T00:00:00")).unwrap();
        assert_eq!(r.since.as_deref(), Some("2020-01-01 00:00:00"));
        assert_eq!(r.until.as_deref(), Some("2021-01-01 00:00:00"));
        assert_eq!(r.display(), "2020-01-01 00:00:00 - 2021-01-01 00:00:00");
        let e = TimeRange::parse(Some("2021-01-01"), Some("2020-01-01")).unwrap_err();
        assert_eq!(e.message, "start_time must be earlier than end_time");
        assert!(TimeRange::parse(Some("2020-01-01"), Some("2020-01-01")).is_err());
        for bad in ["2020-13-01", "yesterday", "2020-01-01 25:00:00", "20-01-01"] {
            let e = TimeRange::parse(Some(bad), None).unwrap_err();
            assert!(e.message.starts_with("start_time:"), "{bad}: {e}");
        }
        assert_eq!(
            normalise_time("t", "2020-02-03 04:05:06.789").unwrap(),
            "2020-02-03 04:05:06"
        );
    }

    #[test]
    fn production_keeps_the_most_frequent_label_then_priority_then_the_first_seen() {
        let mut p = Production::default();
        let [a, b, c, d, none] = [11, 22, 33, 44, 55].map(|h| p.see(h));
        assert_eq!(p.see(22), b, "a pair keeps its number");
        // Pair a: label 0 once (seq 1), label 1 twice (seq 2, 3): label 1.
        p.add(a, 0, 1);
        p.add(a, 1, 2);
        p.add(a, 1, 3);
        // Pair b: labels 0 and 2 once each; label 2 has higher priority.
        p.add(b, 0, 4);
        p.add(b, 2, 5);
        // Pair c: labels 0 and 1 once each, equal priority: first seen.
        p.add(c, 1, 6);
        p.add(c, 0, 7);
        // Pair d: one label, three times, after the others'.
        p.add(d, 0, 8);
        p.add(d, 0, 9);
        p.add(d, 0, 10);
        // Pair a again: label 0 catches up with label 1 but was seen first.
        p.add(a, 0, 11);
        assert_eq!(p.unique(), 5);
        assert_eq!(
            p.first[none as usize].label, NO_LABEL,
            "a pair without labels"
        );
        assert!(!p.overflowed);
        assert_eq!(p.winners(&[0, 0, 5]), vec![1, 5, 6, 8]);
    }

    #[test]
    fn production_tally_gives_way_to_a_query_past_its_budget() {
        let mut p = Production {
            budget: Some(3),
            ..Production::default()
        };
        let ids: Vec<u32> = (0..4).map(|h| p.see(h)).collect();
        p.add(ids[0], 0, 1);
        p.add(ids[0], 1, 2);
        p.add(ids[1], 0, 3);
        assert!(!p.overflowed, "three tallies fit");
        p.add(ids[0], 1, 4);
        p.add(ids[1], 0, 5);
        assert!(!p.overflowed, "counting an existing tally takes no room");
        p.add(ids[2], 0, 6);
        assert!(p.overflowed);
        assert!(p.first.is_empty() && p.more.is_empty(), "memory is freed");
        assert_eq!(p.see(9), 4, "pairs are still counted");
        assert_eq!(p.unique(), 5);
        let mut big = Production::default();
        let id = big.see(1);
        big.add(id, 0, u64::from(u32::MAX) + 1);
        assert!(big.overflowed, "a seq past 32 bits goes to the query");
    }

    #[test]
    fn pair_hashes_tell_the_source_from_the_author() {
        assert_ne!(pair_hash("ab", "c"), pair_hash("a", "bc"));
        assert_ne!(pair_hash("", "abcdefgh"), pair_hash("abcdefgh", ""));
        assert_eq!(
            pair_hash("WH_F0045", "Kuan Vera"),
            pair_hash("WH_F0045", "Kuan Vera")
        );
    }

    #[test]
    fn batches_hold_five_values_per_row() {
        let mut b = Batch::with_capacity(2);
        for v in ["1", "s", "Ann", "Ann", "2020-01-01 00:00:00"] {
            b.push(v);
        }
        b.end_row(false);
        for v in ["2", "s", "", "", "t"] {
            b.push(v);
        }
        b.end_row(true);
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b.get(0, AUTHOR), b.get(1, ID), b.get(1, TIME)),
            ("Ann", "2", "t")
        );
        assert!(b.field_is_null(1) && !b.field_is_null(0));
    }

    #[test]
    fn a_value_pushed_again_repeats_the_one_before_it_in_any_row() {
        let mut b = Batch::with_capacity(1);
        b.push("x");
        b.push_again();
        b.push("1");
        b.push("Ann Lee");
        b.push_again();
        b.end_row(false);
        b.push("");
        b.push_again();
        b.push("s");
        b.push("");
        b.push_again();
        b.end_row(true);
        assert_eq!((b.get(0, ID), b.get(0, SOURCE)), ("x", "x"));
        assert_eq!((b.get(0, FIELD), b.get(0, TIME)), ("Ann Lee", "Ann Lee"));
        assert_eq!(
            (b.get(1, ID), b.get(1, SOURCE), b.get(1, TIME)),
            ("", "", "")
        );
    }
}
