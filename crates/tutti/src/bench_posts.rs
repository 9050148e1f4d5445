//! `tutti bench posts`: the bulk-labeling benchmark's data, generated.
//!
//! A SQLite table `posts(id, source, author_name, content, create_time)`
//! shaped like the social-media posts the Audience seed labels, and a
//! pattern file of keywords over panels. Everything comes from a fixed
//! seed, so two machines generate the same bytes.
//!
//! - Names and words are pseudo-words built from syllables; an author has
//!   2-4 of them and posts many times (a few authors post a lot), and
//!   belongs to one of 60 sources.
//! - 1,000 keywords over 20 labels by default: 800 single words and 200
//!   two-word phrases (some phrases start with a single keyword, so the
//!   longest match matters). About a fifth of authors and of contents
//!   carry a keyword.
//! - `--mixed` writes about a third of the words in CJK ideographs and some
//!   Latin words upper-cased or in full-width forms, so matching must fold
//!   case and width and find keywords in text without spaces.

use anyhow::Context as _;
use clap::Args;
use std::io::Write as _;
use std::path::PathBuf;

/// Generate the posts table and pattern file.
#[derive(Args)]
pub struct PostsArgs {
    /// SQLite file to write (replaced if it exists).
    #[arg(long)]
    out: PathBuf,
    /// Pattern file to write (CSV).
    #[arg(long)]
    patterns: PathBuf,
    /// Rows in the posts table.
    #[arg(long, default_value_t = 2_376_186)]
    rows: u64,
    /// Distinct authors.
    #[arg(long, default_value_t = 400_000)]
    authors: u64,
    /// Keyword patterns (four fifths single words, one fifth phrases).
    #[arg(long, default_value_t = 1000)]
    keywords: usize,
    /// Labels the keywords are spread over.
    #[arg(long, default_value_t = 20)]
    labels: usize,
    /// Write a third of the words in CJK, some in upper case or full width.
    #[arg(long)]
    mixed: bool,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// Draws for the generated posts: the same sequence for the same seed.
type Rng = tutti_aggregate::SplitMix64;

const ONSETS: &[&str] = &[
    "b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh", "th",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea"];

/// The `i`-th pseudo-word: three syllables, all distinct for distinct `i`
/// below 18^3 * 7^3 = 2,000,376.
fn word(i: u64) -> String {
    let mut s = String::new();
    // Scatter the indices over all 2,000,376 words so that every
    // syllable position varies.
    let mut n = i.wrapping_mul(104_729) % 2_000_376;
    for _ in 0..3 {
        s.push_str(ONSETS[(n % ONSETS.len() as u64) as usize]);
        n /= ONSETS.len() as u64;
        s.push_str(VOWELS[(n % VOWELS.len() as u64) as usize]);
        n /= VOWELS.len() as u64;
    }
    s
}

/// The `i`-th word in CJK: two or three ideographs, distinct for distinct `i`.
fn cjk(i: u64) -> String {
    let mut s = String::new();
    let mut n = i;
    let len = 2 + (i % 2);
    for _ in 0..len {
        s.push(char::from_u32(0x4E00 + (n % 2000) as u32).unwrap_or('中'));
        n /= 2000;
    }
    s
}

struct Vocabulary {
    mixed: bool,
}

impl Vocabulary {
    /// How word `i` is written in patterns (and, lower-cased, in text).
    fn spelled(&self, i: u64) -> String {
        if self.mixed && i.is_multiple_of(3) {
            cjk(i)
        } else {
            word(i)
        }
    }

    /// How word `i` appears in a post: capitalised, and in the mixed
    /// variant sometimes upper-cased or full width.
    fn written(&self, i: u64, rng: &mut Rng) -> String {
        let w = self.spelled(i);
        if self.mixed && i.is_multiple_of(3) {
            return w;
        }
        let roll = if self.mixed { rng.below(10) } else { 9 };
        match roll {
            0 => w.to_uppercase(),
            1 => w
                .chars()
                .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap_or(c))
                .collect(),
            _ => {
                let mut c = w.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().chain(c).collect(),
                    None => w,
                }
            }
        }
    }
}

/// Writes the data set.
pub fn posts(args: &PostsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.labels > 0 && args.keywords >= 5,
        "--labels and --keywords must be positive"
    );
    let mut rng = Rng::new(args.seed);
    let vocab = Vocabulary { mixed: args.mixed };
    // Words 0..names are names; keywords are the first `singles` of a
    // shuffled order, the rest are plain names.
    let names: u64 = 20_000;
    let mut order: Vec<u64> = (0..names).collect();
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let singles = args.keywords * 4 / 5;
    let phrases = args.keywords - singles;
    let keyword_words = &order[..singles];
    let plain_words = &order[singles..];
    let mut patterns = std::io::BufWriter::new(
        std::fs::File::create(&args.patterns)
            .with_context(|| format!("cannot write {}", args.patterns.display()))?,
    );
    writeln!(patterns, "label,pattern")?;
    let label = |k: usize| format!("/panel_{:02}", k % args.labels);
    for (k, &w) in keyword_words.iter().enumerate() {
        writeln!(patterns, "{},{}", label(k), vocab.spelled(w))?;
    }
    // Phrases: a plain word then another; every fourth starts with a
    // single keyword, whose label the phrase's (longer) match overrides.
    let mut phrase_words = Vec::with_capacity(phrases);
    for k in 0..phrases {
        let first = if k % 4 == 0 {
            keyword_words[k % singles]
        } else {
            plain_words[(k * 7) % plain_words.len()]
        };
        let second = plain_words[(k * 13 + 5) % plain_words.len()];
        phrase_words.push((first, second));
        writeln!(
            patterns,
            "{},{} {}",
            label(singles + k + 3),
            vocab.spelled(first),
            vocab.spelled(second)
        )?;
    }
    patterns.flush()?;

    // Authors: 2-4 words; each word is a keyword with probability 0.07,
    // and one author in fifty carries a phrase.
    let mut authors = Vec::with_capacity(args.authors as usize);
    for a in 0..args.authors {
        let n = 2 + rng.below(3);
        let mut parts: Vec<String> = Vec::with_capacity(n as usize + 1);
        for _ in 0..n {
            let w = if rng.unit() < 0.07 {
                keyword_words[rng.below(singles as u64) as usize]
            } else {
                plain_words[rng.below(plain_words.len() as u64) as usize]
            };
            parts.push(vocab.written(w, &mut rng));
        }
        if rng.below(50) == 0 {
            let (f, s) = phrase_words[rng.below(phrases as u64) as usize];
            parts.insert(0, vocab.written(f, &mut rng));
            parts.insert(1, vocab.written(s, &mut rng));
        }
        authors.push((a % 60, parts.join(" ")));
    }

    let _ = std::fs::remove_file(&args.out);
    let mut db = rusqlite::Connection::open(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    db.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
         CREATE TABLE posts (id TEXT NOT NULL, source TEXT NOT NULL, author_name TEXT,
                             content TEXT, create_time TEXT NOT NULL);",
    )?;
    let tx = db.transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO posts VALUES (?1, ?2, ?3, ?4, ?5)")?;
        // 2020-01-01 00:00:00 UTC, posts spread evenly over 2020.
        let start_ms: u64 = 1_577_836_800_000;
        let span_ms: u64 = 366 * 86_400_000;
        let mut content = String::new();
        for i in 0..args.rows {
            let ms = start_ms + span_ms * i / args.rows.max(1);
            // A few authors post a lot: the square of a uniform draw.
            let u = rng.unit();
            let a = ((u * u) * args.authors as f64) as usize;
            let (source, author) = &authors[a.min(authors.len() - 1)];
            content.clear();
            let words = 3 + rng.below(6);
            for k in 0..words {
                if k > 0 {
                    content.push(' ');
                }
                let w = if rng.unit() < 0.04 {
                    keyword_words[rng.below(singles as u64) as usize]
                } else {
                    names + rng.below(5_000)
                };
                content.push_str(&vocab.written(w, &mut rng));
            }
            let secs = ms / 1000;
            let time = time::OffsetDateTime::from_unix_timestamp(secs as i64)?;
            let stamp = format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                time.year(),
                time.month() as u8,
                time.day(),
                time.hour(),
                time.minute(),
                time.second()
            );
            insert.execute(rusqlite::params![
                format!("{ms}_{i:07}"),
                format!("WH_F{:04}", source + 1),
                author,
                content,
                stamp
            ])?;
        }
    }
    tx.commit()?;
    db.execute_batch("CREATE INDEX posts_create_time ON posts (create_time);")?;
    eprintln!(
        "wrote {} posts by {} authors to {}, {} patterns over {} labels to {}",
        args.rows,
        args.authors,
        args.out.display(),
        args.keywords,
        args.labels,
        args.patterns.display()
    );
    Ok(())
}
