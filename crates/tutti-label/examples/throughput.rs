//! Matcher throughput: 1,000 keyword patterns (800 words, 200 two-word
//! phrases, 20 labels) over generated texts of 3-8 words, dense with
//! matches; prints MB/s of text per core, text by text and a batch of
//! 10,000 texts at a time (as the bulk labeler matches), with the
//! automaton's size, and then the `aho-corasick` crate's DFA over the same
//! texts in the same run, as the reference. Keywords match whole words unless `WHOLE_WORD=0`
//! (anywhere, `tutti label`'s default).
//!
//!     cargo run --release -p tutti-label --example throughput [MB]

use std::time::Instant;
use tutti_label::matcher::Scratch;
use tutti_label::{Matcher, MatcherOptions, PatternSet};

fn main() {
    let mb: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // A vocabulary of 20,000 made-up words; patterns drawn from it.
    let syll = [
        "ka", "lo", "mi", "sa", "ter", "van", "do", "ri", "nu", "pe", "shi", "an", "el", "or",
        "ba", "qui",
    ];
    let vocab: Vec<String> = (0..20_000)
        .map(|_| {
            let n = 2 + next() % 3;
            (0..n)
                .map(|_| syll[(next() % syll.len() as u64) as usize])
                .collect()
        })
        .collect();
    let mut file = String::from("label,pattern\n");
    let mut used = std::collections::HashSet::new();
    while used.len() < 800 {
        let w = &vocab[(next() % 20_000) as usize];
        if used.insert(w.clone()) {
            file.push_str(&format!("/l{},{w}\n", used.len() % 20));
        }
    }
    let mut phrases = 0;
    while phrases < 200 {
        let p = format!(
            "{} {}",
            vocab[(next() % 20_000) as usize],
            vocab[(next() % 20_000) as usize]
        );
        if used.insert(p.clone()) {
            file.push_str(&format!("/l{},{p}\n", phrases % 20));
            phrases += 1;
        }
    }
    let set = PatternSet::parse(file.as_bytes()).unwrap();
    assert_eq!(set.patterns.len(), 1000);
    let whole_word = std::env::var("WHOLE_WORD").map_or(true, |v| v != "0");
    let matcher = Matcher::new(&set, MatcherOptions { whole_word });
    eprintln!("automaton: {} bytes", matcher.automaton_memory());
    let texts: Vec<String> = (0..200_000)
        .map(|_| {
            let n = 3 + next() % 6;
            (0..n)
                .map(|_| vocab[(next() % 20_000) as usize].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let rounds = (mb * 1_000_000).div_ceil(bytes);
    let total = (bytes * rounds) as f64 / 1e6;
    let mut scratch = Scratch::default();

    // Text by text.
    let mut out = Vec::new();
    let mut hits = 0usize;
    let t = Instant::now();
    for _ in 0..rounds {
        for text in &texts {
            matcher.labels_into(text, &mut scratch, &mut out);
            hits += out.len();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "text by text:            {total:.0} MB of text, {} texts, {hits} labels, {secs:.3} s: {:.0} MB/s on one core",
        texts.len() * rounds,
        total / secs
    );

    // A batch at a time, as the bulk labeler matches them.
    let mut many = Vec::new();
    let mut batched = 0usize;
    let t = Instant::now();
    for _ in 0..rounds {
        for batch in texts.chunks(10_000) {
            matcher.labels_of_many(
                batch.len(),
                |i| Some(batch[i].as_str()),
                &mut scratch,
                &mut many,
            );
            batched += many.len();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "a batch at a time:       {total:.0} MB of text, {} texts, {batched} labels, {secs:.3} s: {:.0} MB/s on one core",
        texts.len() * rounds,
        total / secs
    );
    assert_eq!(hits, batched, "both ways find the same labels");

    // The reference, in the same run: the aho-corasick crate's DFA with the
    // same keywords, leftmost-longest and ignoring ASCII case, counting
    // matches (no labels, no whole-word check: less work than ours).
    let words: Vec<String> = set
        .patterns
        .iter()
        .map(|p| p.pattern.to_lowercase())
        .collect();
    let dfa = aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::LeftmostLongest)
        .ascii_case_insensitive(true)
        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
        .build(&words)
        .expect("the keywords build a DFA");
    let mut found = 0usize;
    let t = Instant::now();
    for _ in 0..rounds {
        for text in &texts {
            found += dfa.find_iter(text.as_str()).count();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "aho-corasick crate DFA:  {total:.0} MB of text, {} texts, {found} matches, {secs:.3} s: {:.0} MB/s on one core (reference)",
        texts.len() * rounds,
        total / secs
    );
}
