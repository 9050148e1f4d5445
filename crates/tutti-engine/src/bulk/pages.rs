//! Reading a SQLite table straight from its file: the leaves of the
//! table's B-tree in rowid order, each row's record decoded in place.
//!
//! Through SQLite's API a value costs several calls (its type, its text,
//! its length, each checked against the connection), and a scan of
//! millions of rows spends more time in those calls than in SQLite's own
//! work. This reader walks the table's B-tree itself, following the
//! documented and stable file format
//! (<https://www.sqlite.org/fileformat2.html>), and hands each row's
//! values to the caller as slices of the page it read.
//!
//! It reads only what it reads exactly as SQLite would, and otherwise
//! declines ([`TableFile::open`] returns `None`) so that the scan goes
//! through SQLite: UTF-8 files in rollback-journal mode (in WAL mode the
//! newest pages are in the WAL, not the main file), ordinary rowid tables
//! (not WITHOUT ROWID, virtual or with generated columns), and wanted
//! columns with no default (a row written before `ALTER TABLE ... ADD
//! COLUMN` would take the default). The caller holds a read transaction
//! on a connection to the file while reading, so no writer commits under
//! it; the reader's own handle on the file is never closed, since closing
//! one would drop that lock. A damaged file gives an
//! error, never a panic.

use super::LabelError;
use rusqlite::Connection;
use rusqlite::types::ValueRef;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// What a scan calls with each row: its rowid, the wanted values and the
/// record's values as stored (the text and blob values are slices of it).
pub type RowFn<'f> = dyn FnMut(i64, &[ValueRef<'_>], &[u8]) -> Result<(), LabelError> + 'f;

/// Most columns a scan reads.
pub const MAX_COLUMNS: usize = 5;

/// Deepest B-tree walked; a real table of 2^63 rows needs far fewer levels.
const MAX_DEPTH: usize = 40;

/// Leaf pages read at once: tables written in rowid order keep their
/// leaves in file order, so one read serves the next several.
const READ_AHEAD: usize = 16;

/// A handle on the file at `path`, opened once per file for the life of
/// the process. Closing any handle on a file drops every POSIX lock the
/// process holds on it, SQLite's included (the read lock that keeps
/// writers out while pages are read, and any other connection's), so the
/// handles this reader opens are never closed; SQLite defers its own
/// closes for the same reason. One per distinct rollback-journal source
/// file (WAL files, such as a workflow run's, are never opened here).
fn shared_file(path: &Path) -> Result<Arc<File>, LabelError> {
    let fail = |e: std::io::Error| {
        LabelError::with_detail("cannot open the source database", e.to_string())
    };
    let meta = std::fs::metadata(path).map_err(fail)?;
    let mut open = OPEN
        .lock()
        .map_err(|_| LabelError::new("cannot open the source database"))?;
    let open = open.get_or_insert_with(HashMap::new);
    if let Some(file) = open.get(&(meta.dev(), meta.ino())) {
        return Ok(Arc::clone(file));
    }
    let file = File::open(path).map_err(fail)?;
    // Kept under the file it opened (the path may have been replaced
    // since the lookup).
    let opened = file.metadata().map_err(fail)?;
    match open.entry((opened.dev(), opened.ino())) {
        std::collections::hash_map::Entry::Occupied(kept) => {
            // Another handle on that file is kept already: this one must
            // not be closed either.
            std::mem::forget(file);
            Ok(Arc::clone(kept.get()))
        }
        std::collections::hash_map::Entry::Vacant(slot) => {
            Ok(Arc::clone(slot.insert(Arc::new(file))))
        }
    }
}

/// Open source files by (device, inode).
type Handles = HashMap<(u64, u64), Arc<File>>;

static OPEN: Mutex<Option<Handles>> = Mutex::new(None);

/// Whether this process keeps a handle on the file at `path`.
#[cfg(test)]
fn holds(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    OPEN.lock()
        .ok()
        .and_then(|open| {
            open.as_ref()
                .map(|o| o.contains_key(&(meta.dev(), meta.ino())))
        })
        .unwrap_or(false)
}

fn malformed(what: &str) -> LabelError {
    LabelError::with_detail(
        "the source database file is malformed",
        format!("reading the table's pages directly: {what}"),
    )
}

/// A rowid table of a SQLite file, ready to be read page by page.
pub struct TableFile {
    file: Arc<File>,
    page_size: usize,
    usable: usize,
    pages: u64,
    root: u32,
    /// Record positions of the columns wanted, in the caller's order.
    columns: Vec<usize>,
    /// Per column wanted, whether it has REAL affinity: SQLite stores a
    /// whole number there as an integer and reads it back as a real.
    real: Vec<bool>,
    /// The column that is an alias of the rowid (`INTEGER PRIMARY KEY`),
    /// whose record value is NULL.
    rowid_alias: Option<usize>,
}

/// Buffers a scan reuses.
#[derive(Default)]
pub struct Scratch {
    /// Interior pages on the path from the root, by depth.
    interior: Vec<Vec<u8>>,
    /// Leaf pages read ahead: `block` holds pages `block_first..` in order.
    block: Vec<u8>,
    block_first: u64,
    block_pages: u64,
    /// A record that overflows its page, gathered.
    payload: Vec<u8>,
    /// An overflow page being read.
    overflow: Vec<u8>,
    /// Per record column up to the last one wanted: body offset, serial type.
    types: Vec<(usize, u64)>,
    /// Pages the scan in hand may still visit: a sound tree visits each at
    /// most once, a damaged one could loop.
    visits: u64,
}

impl TableFile {
    /// The table `table` of the file `path`, reading `columns` (names, in
    /// order), or `None` where the file or table is not one this reader
    /// reads exactly (the caller then scans through SQLite). `conn` is a
    /// connection to the same file, inside a read transaction.
    pub fn open(
        conn: &Connection,
        path: &Path,
        table: &str,
        columns: &[&str],
    ) -> Result<Option<Self>, LabelError> {
        // Reading the schema first takes the read lock that `conn`'s
        // transaction then holds: the header read after it stays true.
        let Ok(root) = conn.query_row(
            "SELECT rootpage FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            [table],
            |r| r.get::<_, i64>(0),
        ) else {
            return Ok(None);
        };
        // Only a file this reader may read gets a handle of its own (kept
        // open for good, see `shared_file`): SQLite says the mode and the
        // encoding without one.
        let pragma = |name: &str| {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, String>(0))
                .unwrap_or_default()
        };
        if pragma("journal_mode").eq_ignore_ascii_case("wal") || pragma("encoding") != "UTF-8" {
            return Ok(None);
        }
        let file = shared_file(path)?;
        let mut header = [0u8; 100];
        if file.read_exact_at(&mut header, 0).is_err() || &header[..16] != b"SQLite format 3\0" {
            return Ok(None);
        }
        let page_size = match u16::from_be_bytes([header[16], header[17]]) {
            1 => 65536,
            n if n >= 512 && n.is_power_of_two() => n as usize,
            _ => return Ok(None),
        };
        let reserved = header[20] as usize;
        let encoding = u32::from_be_bytes([header[56], header[57], header[58], header[59]]);
        // Versions 1 are rollback-journal mode; 2 is WAL.
        if header[18] != 1 || header[19] != 1 || encoding != 1 || reserved + 480 > page_size {
            return Ok(None);
        }
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let Ok(root) = u32::try_from(root) else {
            return Ok(None);
        };
        if root == 0 {
            return Ok(None);
        }
        // cid, name, type, notnull, dflt_value, pk, hidden.
        type Info = (String, String, Option<String>, i64, i64);
        let info: Vec<Info> = {
            let Ok(mut stmt) = conn.prepare(&format!("PRAGMA table_xinfo(\"{table}\")")) else {
                return Ok(None);
            };
            let rows = stmt.query_map([], |r| {
                Ok((r.get(1)?, r.get(2)?, r.get(4)?, r.get(5)?, r.get(6)?))
            });
            match rows.and_then(|rows| rows.collect()) {
                Ok(v) => v,
                Err(_) => return Ok(None),
            }
        };
        if info.iter().any(|c| c.4 != 0) {
            return Ok(None);
        }
        // A lone INTEGER PRIMARY KEY column is the rowid itself, unless it
        // was declared `INTEGER PRIMARY KEY DESC`, which SQLite keeps as an
        // ordinary column with an index of its own.
        let keys: Vec<usize> = (0..info.len()).filter(|&i| info[i].3 > 0).collect();
        let own_index = conn
            .query_row(
                "SELECT count(*) FROM pragma_index_list(?1) WHERE origin = 'pk'",
                [table],
                |r| r.get::<_, i64>(0),
            )
            .map_or(true, |n| n > 0);
        let rowid_alias = match keys.as_slice() {
            [k] if info[*k].1.eq_ignore_ascii_case("INTEGER") && !own_index => Some(*k),
            _ => None,
        };
        if columns.len() > MAX_COLUMNS {
            return Ok(None);
        }
        let mut positions = Vec::with_capacity(columns.len());
        let mut real = Vec::with_capacity(columns.len());
        for name in columns {
            let Some(at) = info.iter().position(|c| c.0.eq_ignore_ascii_case(name)) else {
                return Ok(None);
            };
            if info[at].2.is_some() {
                return Ok(None);
            }
            positions.push(at);
            real.push(real_affinity(&info[at].1));
        }
        let table = Self {
            file,
            page_size,
            usable: page_size - reserved,
            pages: len / page_size as u64,
            root,
            columns: positions,
            real,
            rowid_alias,
        };
        // A WITHOUT ROWID table's root is an index page.
        let mut page = vec![0u8; page_size];
        table.read(root, &mut page)?;
        let kind = page[if root == 1 { 100 } else { 0 }];
        Ok((kind == 0x05 || kind == 0x0D).then_some(table))
    }

    fn read(&self, page: u32, buf: &mut Vec<u8>) -> Result<(), LabelError> {
        if page == 0 || u64::from(page) > self.pages {
            return Err(malformed(&format!("page {page} is past the end")));
        }
        buf.resize(self.page_size, 0);
        self.file
            .read_exact_at(buf, (u64::from(page) - 1) * self.page_size as u64)
            .map_err(|e| LabelError::with_detail("reading the source database failed", e))
    }

    /// Calls `row` with the rowid and the wanted values of every row with
    /// `first <= rowid <= last`, in rowid order. Stops at the first error
    /// `row` returns, and returns it.
    pub fn scan(
        &self,
        first: i64,
        last: i64,
        scratch: &mut Scratch,
        row: &mut RowFn<'_>,
    ) -> Result<(), LabelError> {
        if first > last {
            return Ok(());
        }
        scratch.visits = self.pages + 1;
        // The read-ahead block may hold another table's pages.
        scratch.block_pages = 0;
        self.visit(self.root, 0, first, last, scratch, row)
            .map(|_| ())
    }

    /// Visits page `page` at `depth`; returns false once past `last`.
    fn visit(
        &self,
        page: u32,
        depth: usize,
        first: i64,
        last: i64,
        scratch: &mut Scratch,
        row: &mut RowFn<'_>,
    ) -> Result<bool, LabelError> {
        if depth > MAX_DEPTH {
            return Err(malformed("the B-tree is too deep"));
        }
        if scratch.visits == 0 {
            return Err(malformed("the B-tree visits a page twice"));
        }
        scratch.visits -= 1;
        if scratch.interior.len() <= depth {
            scratch.interior.resize_with(depth + 1, Vec::new);
        }
        let mut block = std::mem::take(&mut scratch.block);
        let at = match self.fetch(page, scratch, &mut block) {
            Ok(at) => at,
            Err(e) => {
                scratch.block = block;
                return Err(e);
            }
        };
        let buf = &block[at..at + self.page_size];
        let head = if page == 1 { 100 } else { 0 };
        match buf[head] {
            0x0D => {
                let result = self.leaf_cells(buf, head, first, last, scratch, row);
                scratch.block = block;
                result
            }
            0x05 => {
                // The block moves on while the children are read: the
                // page is kept apart.
                let mut own = std::mem::take(&mut scratch.interior[depth]);
                own.clear();
                own.extend_from_slice(buf);
                scratch.block = block;
                let result = self.visit_interior(&own, head, depth, first, last, scratch, row);
                scratch.interior[depth] = own;
                result
            }
            _ => {
                scratch.block = block;
                Err(malformed(&format!("page {page} is not a table page")))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn visit_interior(
        &self,
        buf: &[u8],
        head: usize,
        depth: usize,
        first: i64,
        last: i64,
        scratch: &mut Scratch,
        row: &mut RowFn<'_>,
    ) -> Result<bool, LabelError> {
        let n = be16(buf, head + 3)? as usize;
        let right = be32(buf, head + 8)?;
        let cell = |i: usize| -> Result<(u32, i64), LabelError> {
            let at = be16(buf, head + 12 + 2 * i)? as usize;
            let child = be32(buf, at)?;
            let (key, _) = varint(buf, at + 4)?;
            Ok((child, key as i64))
        };
        // Child i holds the keys up to key i; the right child the rest.
        // The first child that may hold `first`: the first key >= it.
        let lo = first_at_least(n, first, |i| Ok(cell(i)?.1))?;
        for i in lo..n {
            let (child, key) = cell(i)?;
            if !self.visit(child, depth + 1, first, last, scratch, row)? || key >= last {
                return Ok(false);
            }
        }
        self.visit(right, depth + 1, first, last, scratch, row)
    }

    /// Reads page `page` into the read-ahead `block` (with the pages
    /// after it) unless it holds it already; returns where it starts.
    fn fetch(
        &self,
        page: u32,
        scratch: &mut Scratch,
        block: &mut Vec<u8>,
    ) -> Result<usize, LabelError> {
        let page = u64::from(page);
        if page == 0 || page > self.pages {
            return Err(malformed(&format!("page {page} is past the end")));
        }
        if page < scratch.block_first || page >= scratch.block_first + scratch.block_pages {
            let count = (READ_AHEAD as u64).min(self.pages - page + 1);
            block.resize(count as usize * self.page_size, 0);
            scratch.block_pages = 0;
            self.file
                .read_exact_at(block, (page - 1) * self.page_size as u64)
                .map_err(|e| LabelError::with_detail("reading the source database failed", e))?;
            scratch.block_first = page;
            scratch.block_pages = count;
        }
        Ok((page - scratch.block_first) as usize * self.page_size)
    }

    fn leaf_cells(
        &self,
        buf: &[u8],
        head: usize,
        first: i64,
        last: i64,
        scratch: &mut Scratch,
        row: &mut RowFn<'_>,
    ) -> Result<bool, LabelError> {
        let n = be16(buf, head + 3)? as usize;
        let cell = |i: usize| -> Result<(u64, i64, usize), LabelError> {
            let at = be16(buf, head + 8 + 2 * i)? as usize;
            let (size, a) = varint(buf, at)?;
            let (rowid, b) = varint(buf, at + a)?;
            Ok((size, rowid as i64, at + a + b))
        };
        let lo = first_at_least(n, first, |i| Ok(cell(i)?.1))?;
        let wanted = self.columns.len();
        for i in lo..n {
            let (size, rowid, body) = cell(i)?;
            if rowid > last {
                return Ok(false);
            }
            let record =
                if self.payload(buf, body, size, &mut scratch.payload, &mut scratch.overflow)? {
                    scratch.payload.as_slice()
                } else {
                    &buf[body..body + size as usize]
                };
            let mut values = [ValueRef::Null; MAX_COLUMNS];
            let header = self.decode(record, rowid, &mut scratch.types, &mut values[..wanted])?;
            row(rowid, &values[..wanted], &record[header..])?;
        }
        Ok(true)
    }

    /// A cell's payload of `size` bytes starting at `body`: true when it
    /// overflows and was gathered into `out` (reading its overflow pages
    /// into `page`), false when it is all on the page.
    fn payload(
        &self,
        buf: &[u8],
        body: usize,
        size: u64,
        out: &mut Vec<u8>,
        page: &mut Vec<u8>,
    ) -> Result<bool, LabelError> {
        let u = self.usable as u64;
        let max_local = u - 35;
        if size <= max_local {
            if body + size as usize > buf.len() {
                return Err(malformed("a cell runs past its page"));
            }
            return Ok(false);
        }
        let min_local = (u - 12) * 32 / 255 - 23;
        let k = min_local + (size - min_local) % (u - 4);
        let local = if k <= max_local { k } else { min_local } as usize;
        let Some(first) = buf.get(body..body + local) else {
            return Err(malformed("a cell runs past its page"));
        };
        out.clear();
        out.extend_from_slice(first);
        let mut next = be32(buf, body + local)?;
        let mut hops = 0u64;
        while (out.len() as u64) < size {
            hops += 1;
            if next == 0 || hops > self.pages {
                return Err(malformed("an overflow chain ends early or loops"));
            }
            self.read(next, page)?;
            next = be32(page, 0)?;
            let take = ((size - out.len() as u64) as usize).min(self.usable - 4);
            out.extend_from_slice(&page[4..4 + take]);
        }
        Ok(true)
    }

    /// The wanted values of a record, in the caller's order, into `out`;
    /// returns the length of the record's header (its values follow).
    fn decode<'r>(
        &self,
        record: &'r [u8],
        rowid: i64,
        types: &mut Vec<(usize, u64)>,
        out: &mut [ValueRef<'r>],
    ) -> Result<usize, LabelError> {
        let (header, mut at) = varint(record, 0)?;
        let header = header as usize;
        if header > record.len() {
            return Err(malformed("a record's header runs past the record"));
        }
        let last = self.columns.iter().copied().max().unwrap_or(0);
        types.clear();
        let mut body = header;
        while at < header && types.len() <= last {
            let (t, n) = varint(record, at)?;
            at += n;
            types.push((body, t));
            let len = match t {
                0 | 8..=11 => 0,
                1..=4 => t as usize,
                5 => 6,
                6 | 7 => 8,
                _ => usize::try_from((t - 12) / 2).unwrap_or(usize::MAX),
            };
            body = match body.checked_add(len) {
                Some(b) if b <= record.len() => b,
                _ => return Err(malformed("a record's values run past the record")),
            };
        }
        for ((slot, &c), &real) in out.iter_mut().zip(&self.columns).zip(&self.real) {
            let value = match types.get(c) {
                // A row older than the column: it has none (no default).
                None => ValueRef::Null,
                Some(&(off, t)) => value(record, off, t)?,
            };
            *slot = match value {
                // SQLite reads an alias of the rowid as the rowid.
                _ if self.rowid_alias == Some(c) => ValueRef::Integer(rowid),
                ValueRef::Integer(n) if real => ValueRef::Real(n as f64),
                v => v,
            };
        }
        Ok(header)
    }
}

/// Whether a declared type gives a column REAL affinity, by SQLite's rules
/// (<https://www.sqlite.org/datatype3.html>): the first that applies of
/// INT (integer), CHAR, CLOB or TEXT (text), BLOB or none (blob), REAL,
/// FLOA or DOUB (real).
fn real_affinity(declared: &str) -> bool {
    let t = declared.to_ascii_uppercase();
    let has = |s: &str| t.contains(s);
    !has("INT")
        && !has("CHAR")
        && !has("CLOB")
        && !has("TEXT")
        && !has("BLOB")
        && !t.is_empty()
        && (has("REAL") || has("FLOA") || has("DOUB"))
}

/// The value of serial type `t` stored at `at`, as SQLite reads it: types
/// 10 and 11 (reserved) and a stored NaN read as NULL.
fn value(record: &[u8], at: usize, t: u64) -> Result<ValueRef<'_>, LabelError> {
    let bytes = |n: usize| {
        at.checked_add(n)
            .and_then(|end| record.get(at..end))
            .ok_or_else(|| malformed("a value runs past its record"))
    };
    let len = |t: u64| usize::try_from(t / 2).map_err(|_| malformed("a value is too long"));
    let int = |n: usize| -> Result<i64, LabelError> {
        let b = bytes(n)?;
        let mut v = if b[0] & 0x80 != 0 { -1i64 } else { 0 };
        for &x in b {
            v = (v << 8) | i64::from(x);
        }
        Ok(v)
    };
    Ok(match t {
        0 => ValueRef::Null,
        1..=4 => ValueRef::Integer(int(t as usize)?),
        5 => ValueRef::Integer(int(6)?),
        6 => ValueRef::Integer(int(8)?),
        7 => {
            let b = bytes(8)?;
            let mut raw = [0u8; 8];
            raw.copy_from_slice(b);
            match f64::from_be_bytes(raw) {
                x if x.is_nan() => ValueRef::Null,
                x => ValueRef::Real(x),
            }
        }
        8 => ValueRef::Integer(0),
        9 => ValueRef::Integer(1),
        10 | 11 => ValueRef::Null,
        t if t % 2 == 0 => ValueRef::Blob(bytes(len(t - 12)?)?),
        t => ValueRef::Text(bytes(len(t - 13)?)?),
    })
}

/// The first of `n` ascending keys (`key(i)`) at least `first`, or `n`.
fn first_at_least(
    n: usize,
    first: i64,
    key: impl Fn(usize) -> Result<i64, LabelError>,
) -> Result<usize, LabelError> {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if key(mid)? >= first {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

fn be16(buf: &[u8], at: usize) -> Result<u16, LabelError> {
    buf.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| malformed("a page header runs past its page"))
}

fn be32(buf: &[u8], at: usize) -> Result<u32, LabelError> {
    buf.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| malformed("a page pointer runs past its page"))
}

/// A SQLite varint at `at`: its value and length (1 to 9 bytes, the ninth
/// giving all eight of its bits).
fn varint(buf: &[u8], at: usize) -> Result<(u64, usize), LabelError> {
    let byte = |i: usize| {
        buf.get(at + i)
            .copied()
            .ok_or_else(|| malformed("a number runs past its page"))
    };
    let mut v = 0u64;
    for i in 0..8 {
        let b = byte(i)?;
        v = (v << 7) | u64::from(b & 0x7F);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Ok(((v << 8) | u64::from(byte(8)?), 9))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;
    use std::path::PathBuf;

    /// An owned value, to compare what the two readers give.
    #[derive(Debug, Clone, PartialEq)]
    enum Owned {
        Null,
        Int(i64),
        Real(u64),
        Text(Vec<u8>),
        Blob(Vec<u8>),
    }

    impl From<ValueRef<'_>> for Owned {
        fn from(v: ValueRef<'_>) -> Self {
            match v {
                ValueRef::Null => Owned::Null,
                ValueRef::Integer(n) => Owned::Int(n),
                ValueRef::Real(x) => Owned::Real(x.to_bits()),
                ValueRef::Text(t) => Owned::Text(t.to_vec()),
                ValueRef::Blob(b) => Owned::Blob(b.to_vec()),
            }
        }
    }

    struct TempDb(PathBuf);

    impl TempDb {
        fn new(name: &str) -> Self {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "tutti-pages-{}-{n}-{name}.sqlite",
                std::process::id()
            ));
            let _ = std::fs::remove_file(&path);
            Self(path)
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
            let _ = std::fs::remove_file(self.0.with_extension("sqlite-wal"));
            let _ = std::fs::remove_file(self.0.with_extension("sqlite-shm"));
        }
    }

    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// A table of every kind of value: NULLs, integers of every stored
    /// width, reals, blobs, text from empty to several pages long (so
    /// that records overflow), with gaps in the rowids.
    fn fill(conn: &Connection, rows: usize, long: usize) {
        conn.execute_batch("CREATE TABLE t (a TEXT, b INTEGER, c REAL, d BLOB, e TEXT)")
            .unwrap();
        let ints = [
            0i64,
            1,
            -1,
            127,
            -128,
            128,
            32767,
            -32769,
            8_388_607,
            -8_388_609,
            2_147_483_647,
            -2_147_483_649,
            140_737_488_355_327,
            -140_737_488_355_329,
            i64::MAX,
            i64::MIN,
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let tx = conn.unchecked_transaction().unwrap();
        for i in 0..rows {
            let r = rng(&mut seed);
            let text: Option<String> = match r % 7 {
                0 => None,
                1 => Some(String::new()),
                2 => Some("é漢字 mixed ".repeat((r % 50) as usize)),
                3 => Some("x".repeat((r as usize / 7) % long)),
                _ => Some(format!("row {i} {}", r % 1000)),
            };
            let int: Option<i64> =
                (!r.is_multiple_of(11)).then(|| ints[(r / 11) as usize % ints.len()]);
            let real: Option<f64> =
                (!r.is_multiple_of(5)).then(|| (r % 100_000) as f64 / 7.0 - 5000.0);
            let blob: Option<Vec<u8>> = (!r.is_multiple_of(3))
                .then(|| (0..(r % 300) as u8).map(|b| b.wrapping_mul(31)).collect());
            let e = format!("{}", r % 97).repeat(1 + (r as usize % 3));
            tx.execute(
                "INSERT INTO t (a, b, c, d, e) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![text, int, real, blob, e],
            )
            .unwrap();
        }
        tx.execute("DELETE FROM t WHERE rowid % 13 = 5", [])
            .unwrap();
        tx.commit().unwrap();
    }

    fn by_sqlite(conn: &Connection, cols: &str, first: i64, last: i64) -> Vec<(i64, Vec<Owned>)> {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT rowid, {cols} FROM t WHERE rowid >= ?1 AND rowid <= ?2 ORDER BY rowid"
            ))
            .unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query(params![first, last]).unwrap();
        let mut out = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            let values = (1..n).map(|i| Owned::from(r.get_ref(i).unwrap())).collect();
            out.push((r.get(0).unwrap(), values));
        }
        out
    }

    fn by_pages(table: &TableFile, first: i64, last: i64) -> Vec<(i64, Vec<Owned>)> {
        let mut out = Vec::new();
        let mut scratch = Scratch::default();
        table
            .scan(first, last, &mut scratch, &mut |rowid, values, _| {
                out.push((rowid, values.iter().map(|v| Owned::from(*v)).collect()));
                Ok(())
            })
            .unwrap();
        out
    }

    /// Rewrites the file of `db` (512-byte pages) through `damage`, given
    /// the bytes and where table t's root page starts.
    fn damage_root(db: &TempDb, damage: impl FnOnce(&mut Vec<u8>, usize)) {
        let conn = Connection::open(&db.0).unwrap();
        let root: u32 = conn
            .query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = 't'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        drop(conn);
        let mut bytes = std::fs::read(&db.0).unwrap();
        damage(&mut bytes, (root as usize - 1) * 512);
        std::fs::write(&db.0, &bytes).unwrap();
    }

    /// Asserts two readings are equal, naming the first row that differs.
    fn same(pages: &[(i64, Vec<Owned>)], sqlite: &[(i64, Vec<Owned>)], what: &str) {
        let short = |r: Option<&(i64, Vec<Owned>)>| {
            let mut s = format!("{r:?}");
            s.truncate(300);
            s
        };
        if let Some(i) = (0..pages.len().max(sqlite.len())).find(|&i| pages.get(i) != sqlite.get(i))
        {
            panic!(
                "{what}: {} rows against {}; row {i} differs:\n pages:  {}\n sqlite: {}",
                pages.len(),
                sqlite.len(),
                short(pages.get(i)),
                short(sqlite.get(i))
            );
        }
    }

    fn reader(conn: &Connection, path: &Path, table: &str, cols: &[&str]) -> Option<TableFile> {
        conn.execute_batch("BEGIN").unwrap();
        let t = TableFile::open(conn, path, table, cols).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        t
    }

    #[test]
    fn the_page_reader_gives_what_sqlite_gives_for_every_kind_of_value_and_page_size() {
        for (page_size, rows, long) in [
            (512, 1500, 3000),
            (4096, 4000, 20_000),
            (65536, 3000, 200_000),
        ] {
            let db = TempDb::new(&format!("kinds-{page_size}"));
            let conn = Connection::open(&db.0).unwrap();
            conn.execute_batch(&format!("PRAGMA page_size = {page_size}"))
                .unwrap();
            fill(&conn, rows, long);
            let cols = ["e", "a", "d", "c", "b"];
            let table = reader(&conn, &db.0, "t", &cols).expect("an ordinary table is read");
            let all = by_sqlite(&conn, "e, a, d, c, b", i64::MIN, i64::MAX);
            assert!(all.len() > rows * 9 / 10 - 1, "the table holds its rows");
            same(
                &by_pages(&table, i64::MIN, i64::MAX),
                &all,
                &format!("page size {page_size}"),
            );
            let mut seed = page_size as u64 + 1;
            for _ in 0..40 {
                let a = (rng(&mut seed) % (rows as u64 + 20)) as i64 - 10;
                let b = a + (rng(&mut seed) % 700) as i64;
                same(
                    &by_pages(&table, a, b),
                    &by_sqlite(&conn, "e, a, d, c, b", a, b),
                    &format!("rows {a}..={b}, page size {page_size}"),
                );
            }
            // Fewer columns, in another order.
            let some = reader(&conn, &db.0, "T", &["b", "a"]).unwrap();
            same(
                &by_pages(&some, 100, 900),
                &by_sqlite(&conn, "b, a", 100, 900),
                "two columns",
            );
        }
    }

    #[test]
    fn integer_primary_key_desc_is_an_ordinary_column_as_in_sqlite() {
        for (name, sql) in [
            (
                "desc",
                "CREATE TABLE t (id INTEGER PRIMARY KEY DESC, x TEXT)",
            ),
            ("asc", "CREATE TABLE t (id INTEGER PRIMARY KEY ASC, x TEXT)"),
            (
                "constraint",
                "CREATE TABLE t (id INTEGER, x TEXT, PRIMARY KEY (id DESC))",
            ),
            (
                "strict",
                "CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT, r REAL) STRICT",
            ),
        ] {
            let db = TempDb::new(name);
            let conn = Connection::open(&db.0).unwrap();
            conn.execute_batch(sql).unwrap();
            conn.execute_batch(
                "INSERT INTO t (x) VALUES ('a'), ('b'); INSERT INTO t (id, x) VALUES (40, 'c');",
            )
            .unwrap();
            let cols = if name == "strict" {
                vec!["id", "x", "r"]
            } else {
                vec!["id", "x"]
            };
            let table = reader(&conn, &db.0, "t", &cols).unwrap();
            same(
                &by_pages(&table, i64::MIN, i64::MAX),
                &by_sqlite(&conn, &cols.join(", "), i64::MIN, i64::MAX),
                name,
            );
        }
    }

    #[test]
    fn a_record_header_claiming_huge_values_is_an_error() {
        let db = TempDb::new("huge");
        let conn = Connection::open(&db.0).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 512; CREATE TABLE t (a TEXT, b TEXT, c TEXT); \
             INSERT INTO t VALUES ('abcdefghijklmnopqrstuvwxyz', 'b', 'c');",
        )
        .unwrap();
        drop(conn);
        damage_root(&db, |bytes, page| {
            let cell = page + u16::from_be_bytes([bytes[page + 8], bytes[page + 9]]) as usize;
            // Payload size and rowid (one byte each), then the record: a
            // header of 28 bytes whose serial types are 9-byte varints of
            // all ones.
            let record = cell + 2;
            bytes[record] = 28;
            for b in &mut bytes[record + 1..record + 28] {
                *b = 0xFF;
            }
        });
        let conn = Connection::open(&db.0).unwrap();
        let table = reader(&conn, &db.0, "t", &["a", "b", "c"]).unwrap();
        let mut scratch = Scratch::default();
        assert!(
            table
                .scan(i64::MIN, i64::MAX, &mut scratch, &mut |_, _, _| Ok(()))
                .is_err()
        );
    }

    #[test]
    fn real_affinity_follows_sqlites_rules() {
        for (t, real) in [
            ("REAL", true),
            ("double precision", true),
            ("FLOAT", true),
            ("floating point", false),
            ("INTEGER", false),
            ("TEXT", false),
            ("", false),
            ("NUMERIC", false),
            ("BLOBREAL", false),
        ] {
            assert_eq!(real_affinity(t), real, "{t:?}");
        }
    }

    #[test]
    fn an_integer_primary_key_reads_as_the_rowid_and_rows_older_than_a_column_as_null() {
        let db = TempDb::new("alias");
        let conn = Connection::open(&db.0).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT);
             INSERT INTO t (id, x) VALUES (3, 'a'), (10, 'b'), (-7, 'c'), (9223372036854775807, 'd');
             ALTER TABLE t ADD COLUMN y TEXT;
             INSERT INTO t (id, x, y) VALUES (11, 'e', 'new');",
        )
        .unwrap();
        let table = reader(&conn, &db.0, "t", &["id", "x", "y"]).unwrap();
        let got = by_pages(&table, i64::MIN, i64::MAX);
        assert_eq!(got, by_sqlite(&conn, "id, x, y", i64::MIN, i64::MAX));
        assert_eq!(got[0].1[0], Owned::Int(-7));
        assert_eq!(got[1].1[2], Owned::Null);
        assert_eq!(got[3].1[2], Owned::Text(b"new".to_vec()));
    }

    #[test]
    fn tables_and_files_it_cannot_read_exactly_are_left_to_sqlite() {
        let cases: [(&str, &str); 5] = [
            (
                "without-rowid",
                "CREATE TABLE t (a TEXT PRIMARY KEY, b TEXT) WITHOUT ROWID; INSERT INTO t VALUES ('k', 'v');",
            ),
            (
                "wal",
                "PRAGMA journal_mode = WAL; CREATE TABLE t (a TEXT, b TEXT); INSERT INTO t VALUES ('k', 'v');",
            ),
            (
                "default",
                "CREATE TABLE t (a TEXT); INSERT INTO t VALUES ('k'); ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'old';",
            ),
            (
                "generated",
                "CREATE TABLE t (a TEXT, b TEXT GENERATED ALWAYS AS (upper(a))); INSERT INTO t (a) VALUES ('k');",
            ),
            (
                "utf16",
                "PRAGMA encoding = 'UTF-16le'; CREATE TABLE t (a TEXT, b TEXT); INSERT INTO t VALUES ('k', 'v');",
            ),
        ];
        for (name, sql) in cases {
            let db = TempDb::new(name);
            let conn = Connection::open(&db.0).unwrap();
            conn.execute_batch(sql).unwrap();
            assert!(
                reader(&conn, &db.0, "t", &["a", "b"]).is_none(),
                "{name} is left to SQLite"
            );
            if name == "wal" || name == "utf16" {
                // Told by SQLite: the file is not even opened (a handle
                // kept for good on every WAL file would pile up).
                assert!(!holds(&db.0), "{name} got a handle");
            }
        }
        let db = TempDb::new("missing");
        let conn = Connection::open(&db.0).unwrap();
        conn.execute_batch("CREATE TABLE t (a TEXT, b TEXT)")
            .unwrap();
        assert!(reader(&conn, &db.0, "nope", &["a", "b"]).is_none());
        assert!(reader(&conn, &db.0, "t", &["a", "zzz"]).is_none());
    }

    #[test]
    fn reading_pages_keeps_the_lock_that_holds_other_processes_writers_off() {
        if std::process::Command::new("sqlite3")
            .arg("-version")
            .output()
            .is_err()
        {
            eprintln!("skipped: the sqlite3 command is not installed");
            return;
        }
        let db = TempDb::new("lock");
        let conn = Connection::open(&db.0).unwrap();
        fill(&conn, 50, 10);
        // A reader's transaction holds SQLite's shared lock ...
        let reader_conn = Connection::open(&db.0).unwrap();
        reader_conn.execute_batch("BEGIN").unwrap();
        let table = TableFile::open(&reader_conn, &db.0, "t", &["a"])
            .unwrap()
            .unwrap();
        let mut scratch = Scratch::default();
        table
            .scan(i64::MIN, i64::MAX, &mut scratch, &mut |_, _, _| Ok(()))
            .unwrap();
        // ... which outlives the reader, whose handle on the file must not
        // close (a close drops all of the process's locks on the file).
        drop(table);
        let write = std::process::Command::new("sqlite3")
            .arg(&db.0)
            .arg("INSERT INTO t (e) VALUES ('from another process')")
            .output()
            .unwrap();
        assert!(
            !write.status.success() && String::from_utf8_lossy(&write.stderr).contains("locked"),
            "another process committed under a reader: {}",
            String::from_utf8_lossy(&write.stderr)
        );
        reader_conn.execute_batch("COMMIT").unwrap();
        let again = std::process::Command::new("sqlite3")
            .arg(&db.0)
            .arg("INSERT INTO t (e) VALUES ('from another process')")
            .output()
            .unwrap();
        assert!(
            again.status.success(),
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
    }

    #[test]
    fn a_page_that_points_at_itself_is_an_error_not_a_loop() {
        let db = TempDb::new("loop");
        let conn = Connection::open(&db.0).unwrap();
        conn.execute_batch("PRAGMA page_size = 512").unwrap();
        fill(&conn, 600, 10);
        drop(conn);
        damage_root(&db, |bytes, page| {
            assert_eq!(bytes[page], 0x05, "the root is an interior page");
            let root = (page / 512 + 1) as u32;
            // Every child of the root, and its right child, is the root.
            let cells = u16::from_be_bytes([bytes[page + 3], bytes[page + 4]]) as usize;
            for i in 0..cells {
                let at = page
                    + u16::from_be_bytes([bytes[page + 12 + 2 * i], bytes[page + 13 + 2 * i]])
                        as usize;
                bytes[at..at + 4].copy_from_slice(&root.to_be_bytes());
            }
            bytes[page + 8..page + 12].copy_from_slice(&root.to_be_bytes());
        });
        let conn = Connection::open(&db.0).unwrap();
        let table = reader(&conn, &db.0, "t", &["a"]).unwrap();
        let mut scratch = Scratch::default();
        let err = table
            .scan(i64::MIN, i64::MAX, &mut scratch, &mut |_, _, _| Ok(()))
            .unwrap_err();
        assert_eq!(err.message, "the source database file is malformed");
    }

    #[test]
    fn a_damaged_file_gives_errors_never_a_panic() {
        let db = TempDb::new("damaged");
        let conn = Connection::open(&db.0).unwrap();
        conn.execute_batch("PRAGMA page_size = 512").unwrap();
        fill(&conn, 600, 2000);
        drop(conn);
        let good = std::fs::read(&db.0).unwrap();
        let copy = TempDb::new("damaged-copy");
        let mut seed = 77u64;
        let mut errors = 0;
        for _ in 0..300 {
            let mut bytes = good.clone();
            // Past the schema page: damage the table's own pages.
            for _ in 0..1 + rng(&mut seed) % 8 {
                let at = 1024 + (rng(&mut seed) as usize % (bytes.len() - 1024));
                bytes[at] = rng(&mut seed) as u8;
            }
            std::fs::write(&copy.0, &bytes).unwrap();
            let conn = Connection::open(&copy.0).unwrap();
            conn.execute_batch("BEGIN").unwrap();
            if let Ok(Some(table)) =
                TableFile::open(&conn, &copy.0, "t", &["a", "b", "c", "d", "e"])
            {
                let mut scratch = Scratch::default();
                let r = table.scan(i64::MIN, i64::MAX, &mut scratch, &mut |_, _, _| Ok(()));
                errors += usize::from(r.is_err());
            }
        }
        assert!(errors > 0, "some damage is found");
    }
}
