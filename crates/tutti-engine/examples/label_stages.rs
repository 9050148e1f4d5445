//! Times the stages of bulk labeling one by one on a posts table, to see
//! which bounds the whole: scanning, matching, counting pairs, writing.
//!
//!     cargo run --release -p tutti-engine --example label_stages -- POSTS.sqlite PATTERNS.csv [COLUMN]

use rusqlite::{Connection, OpenFlags};
use std::time::Instant;
use tutti_engine::bulk::{Batch, pair_hash};
use tutti_label::matcher::Scratch;
use tutti_label::{Matcher, MatcherOptions, PatternSet};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (db, patterns) = (&args[1], &args[2]);
    let column = args.get(3).map_or("author_name", String::as_str);
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let sql =
        format!("SELECT id, source, author_name, {column}, create_time FROM posts ORDER BY rowid");
    let t = Instant::now();
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    let mut n = 0u64;
    let mut bytes = 0usize;
    while let Some(r) = rows.next()? {
        for i in 0..5 {
            if let rusqlite::types::ValueRef::Text(b) = r.get_ref(i)? {
                bytes += b.len();
            }
        }
        n += 1;
    }
    drop(rows);
    println!(
        "scan: {n} rows {bytes} bytes in {:.3}s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let mut rows = stmt.query([])?;
    let mut batches = Vec::new();
    let mut b = Batch::with_capacity(20_000);
    while let Some(r) = rows.next()? {
        for i in 0..5 {
            match r.get_ref(i)? {
                rusqlite::types::ValueRef::Text(t) => b.push(std::str::from_utf8(t)?),
                _ => b.push(""),
            }
        }
        b.end_row(false);
        if b.len() == 20_000 {
            batches.push(std::mem::replace(&mut b, Batch::with_capacity(20_000)));
        }
    }
    batches.push(b);
    println!("scan into batches: {:.3}s", t.elapsed().as_secs_f64());

    let set = PatternSet::parse(&std::fs::read(patterns)?)?;
    let m = Matcher::new(&set, MatcherOptions::default());
    let mut scratch = Scratch::default();
    let mut hits = Vec::new();
    let t = Instant::now();
    let mut labeled = 0;
    for b in &batches {
        for r in 0..b.len() {
            m.labels_into(b.get(r, 3), &mut scratch, &mut hits);
            labeled += usize::from(!hits.is_empty());
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "match: {labeled} labeled in {secs:.3}s ({:.0} ns/row)",
        secs * 1e9 / n as f64
    );

    let t = Instant::now();
    let mut set = std::collections::HashSet::<u64>::new();
    for b in &batches {
        for r in 0..b.len() {
            set.insert(pair_hash(b.get(r, 1), b.get(r, 2)));
        }
    }
    println!("pairs: {} in {:.3}s", set.len(), t.elapsed().as_secs_f64());
    Ok(())
}
