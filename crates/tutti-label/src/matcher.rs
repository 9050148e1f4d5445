//! The matcher: every keyword in one Aho-Corasick automaton over folded
//! text (leftmost-longest, so `Mary Ann` wins over `Mary` where both
//! match), regular expressions beside it. The automaton is our own compact
//! table (see `table`) where the set fits 65,535 states, else the
//! `aho-corasick` crate's; both find the same matches. A text's labels are the distinct
//! labels of its matches, in the order they first match, each with the
//! pattern that matched first.
//!
//! Folding makes matching case- and width-insensitive: letters are
//! lower-cased and full-width ASCII forms (`Ｍａｒｙ`) and the ideographic
//! space become their ASCII forms, in patterns and texts alike. With
//! `whole_word`, a keyword matches only where it is not inside a longer
//! word (letters, digits and `_` around it do not continue it); CJK text,
//! written without spaces, is matched anywhere by its keywords either way.

use crate::patterns::{Kind, PatternSet};
use crate::table::{Occurrence, Table};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

/// How keywords match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatcherOptions {
    /// Keywords match whole words only.
    pub whole_word: bool,
}

/// One label found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Index into [`PatternSet::labels`].
    pub label: usize,
    /// Index into [`PatternSet::patterns`] of the pattern that matched
    /// first for this label.
    pub pattern: usize,
}

/// Folds a text for matching: lower case, full-width ASCII to ASCII.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    fold_into(text, &mut out);
    out
}

fn fold_into(text: &str, out: &mut String) {
    out.clear();
    if text.is_ascii() {
        out.push_str(text);
        out.make_ascii_lowercase();
        return;
    }
    for c in text.chars() {
        let c = match c {
            '\u{3000}' => ' ',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        };
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// CJK ideographs and kana: scripts written without spaces between words.
fn is_unspaced(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xAC00..=0xD7AF)
}

/// Whether `hay[start..end]` stands as a whole word: no letter, digit or
/// `_` continues it on either side, except in unspaced scripts (CJK).
fn whole_word(hay: &str, start: usize, end: usize) -> bool {
    let before = hay[..start].chars().next_back();
    let after = hay[end..].chars().next();
    let first = hay[start..].chars().next();
    let last = hay[..end].chars().next_back();
    let joined = |edge: Option<char>, inner: Option<char>| match (edge, inner) {
        (Some(e), Some(i)) => {
            is_word_char(e) && is_word_char(i) && !(is_unspaced(e) || is_unspaced(i))
        }
        _ => false,
    };
    !(joined(before, first) || joined(after, last))
}

/// A compiled pattern set.
pub struct Matcher {
    keywords: Option<Keywords>,
    /// Per automaton pattern: (pattern index, label index).
    keyword_ids: Vec<(usize, usize)>,
    regexes: Vec<(regex::Regex, usize, usize)>,
    options: MatcherOptions,
    labels: usize,
}

/// The keyword automaton.
enum Keywords {
    /// Ours, for sets that fit it.
    Table(Box<Table>),
    /// The `aho-corasick` crate's, for larger ones.
    Crate(AhoCorasick),
}

/// Scratch space for [`Matcher::labels_into`], reused across texts so
/// matching allocates nothing per row.
#[derive(Default)]
pub struct Scratch {
    folded: String,
    seen: Vec<u32>,
    stamp: u32,
    all: Vec<Occurrence>,
    found: Vec<Occurrence>,
    /// A second folded text, and occurrences of two texts at once.
    folded_b: String,
    pair: [Vec<Occurrence>; 4],
}

impl Scratch {
    /// A fresh stamp: labels seen under older stamps count as unseen.
    fn next_stamp(&mut self, labels: usize) -> u32 {
        if self.seen.len() != labels {
            self.seen = vec![0; labels];
            self.stamp = 0;
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.seen.iter_mut().for_each(|s| *s = 0);
            self.stamp = 1;
        }
        self.stamp
    }
}

impl Matcher {
    /// Compiles the patterns.
    pub fn new(set: &PatternSet, options: MatcherOptions) -> Self {
        let mut words = Vec::new();
        let mut keyword_ids = Vec::new();
        let mut regexes = Vec::new();
        for (i, p) in set.patterns.iter().enumerate() {
            let label = set
                .labels
                .iter()
                .position(|l| *l == p.label)
                .expect("a set lists every pattern's label");
            match p.kind {
                Kind::Keyword => {
                    words.push(fold(&p.pattern));
                    keyword_ids.push((i, label));
                }
                Kind::Regex => {
                    if let Ok(r) = regex::Regex::new(&p.pattern) {
                        regexes.push((r, i, label));
                    }
                }
            }
        }
        // Rules of higher priority are tried first; a stable sort keeps file
        // order among equals.
        regexes.sort_by_key(|&(_, i, _)| std::cmp::Reverse(set.patterns[i].priority));
        let keywords = (!words.is_empty()).then(|| match Table::new(&words) {
            Some(table) => Keywords::Table(Box::new(table)),
            None => Keywords::Crate(crate_automaton(&words)),
        });
        Self {
            keywords,
            keyword_ids,
            regexes,
            options,
            labels: set.labels.len(),
        }
    }

    /// Bytes the keyword automaton takes.
    pub fn automaton_memory(&self) -> usize {
        match &self.keywords {
            Some(Keywords::Table(t)) => t.memory(),
            Some(Keywords::Crate(ac)) => ac.memory_usage(),
            None => 0,
        }
    }

    /// As [`Matcher::new`], always on the `aho-corasick` crate's automaton.
    #[cfg(test)]
    fn with_crate_automaton(set: &PatternSet, options: MatcherOptions) -> Self {
        let mut m = Self::new(set, options);
        if let Some(Keywords::Table(_)) = &m.keywords {
            let words: Vec<String> = m
                .keyword_ids
                .iter()
                .map(|&(i, _)| fold(&set.patterns[i].pattern))
                .collect();
            m.keywords = Some(Keywords::Crate(crate_automaton(&words)));
        }
        m
    }
}

/// The `aho-corasick` crate's automaton for folded keywords.
fn crate_automaton(words: &[String]) -> AhoCorasick {
    AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostLongest)
        .ascii_case_insensitive(true)
        .kind(Some(AhoCorasickKind::DFA))
        .build(words)
        .or_else(|_| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .ascii_case_insensitive(true)
                .build(words)
        })
        .expect("folded keywords always build an automaton")
}

impl Matcher {
    /// The labels found in `text`, in the order they first match.
    pub fn labels(&self, text: &str) -> Vec<Hit> {
        let mut out = Vec::new();
        self.labels_into(text, &mut Scratch::default(), &mut out);
        out
    }

    /// As [`Matcher::labels`], into `out` (cleared first), reusing `scratch`.
    pub fn labels_into(&self, text: &str, scratch: &mut Scratch, out: &mut Vec<Hit>) {
        out.clear();
        let Some(keywords) = &self.keywords else {
            let stamp = scratch.next_stamp(self.labels);
            self.regex_hits(text, &mut scratch.seen, stamp, |h| out.push(h));
            return;
        };
        let stamp = scratch.next_stamp(self.labels);
        let hay = folded(text, &mut scratch.folded);
        match keywords {
            Keywords::Table(t) => {
                t.find(hay.as_bytes(), &mut scratch.all, &mut scratch.found);
                let hits = scratch
                    .found
                    .iter()
                    .map(|&(s, e, k)| (s as usize, e as usize, k as usize));
                self.text_hits(text, hay, hits, &mut scratch.seen, stamp, |h| out.push(h));
            }
            Keywords::Crate(ac) => {
                let hits = ac
                    .find_iter(hay)
                    .map(|m| (m.start(), m.end(), m.pattern().as_usize()));
                self.text_hits(text, hay, hits, &mut scratch.seen, stamp, |h| out.push(h));
            }
        }
    }

    /// The labels of `n` texts, as `(text index, hit)` in text order and,
    /// within a text, in [`Matcher::labels_into`]'s order (into `out`,
    /// cleared first). `text(i)` is the `i`th text, `None` for one with no
    /// value. Texts are walked through the keyword table two at a time,
    /// which overlaps their memory reads.
    pub fn labels_of_many<'a>(
        &self,
        n: usize,
        text: impl Fn(usize) -> Option<&'a str>,
        scratch: &mut Scratch,
        out: &mut Vec<(u32, Hit)>,
    ) {
        out.clear();
        let Some(Keywords::Table(table)) = &self.keywords else {
            let mut hits = Vec::new();
            for i in 0..n {
                if let Some(t) = text(i) {
                    self.labels_into(t, scratch, &mut hits);
                    out.extend(hits.drain(..).map(|h| (i as u32, h)));
                }
            }
            return;
        };
        let mut waiting: Option<(usize, &str)> = None;
        for i in 0..n {
            let Some(b) = text(i) else { continue };
            let Some((j, a)) = waiting.take() else {
                waiting = Some((i, b));
                continue;
            };
            let mut stamps = [
                scratch.next_stamp(self.labels),
                scratch.next_stamp(self.labels),
            ];
            if stamps[1] < stamps[0] {
                // The second wrapped and cleared `seen`: the first must come
                // after the clearing too.
                stamps[0] = scratch.next_stamp(self.labels);
            }
            let hay_a = folded(a, &mut scratch.folded);
            let hay_b = folded(b, &mut scratch.folded_b);
            table.find_two(hay_a.as_bytes(), hay_b.as_bytes(), &mut scratch.pair);
            for (idx, t, hay, found, stamp) in
                [(j, a, hay_a, 2, stamps[0]), (i, b, hay_b, 3, stamps[1])]
            {
                let hits = scratch.pair[found]
                    .iter()
                    .map(|&(s, e, k)| (s as usize, e as usize, k as usize));
                self.text_hits(t, hay, hits, &mut scratch.seen, stamp, |h| {
                    out.push((idx as u32, h))
                });
            }
        }
        if let Some((j, a)) = waiting {
            let mut hits = Vec::new();
            self.labels_into(a, scratch, &mut hits);
            out.extend(hits.into_iter().map(|h| (j as u32, h)));
        }
    }

    /// One text's labels from its keyword matches (start, end, keyword) in
    /// `hay`, its folded form, then from the rules.
    fn text_hits(
        &self,
        text: &str,
        hay: &str,
        matches: impl Iterator<Item = (usize, usize, usize)>,
        seen: &mut [u32],
        stamp: u32,
        mut push: impl FnMut(Hit),
    ) {
        for (start, end, k) in matches {
            if self.options.whole_word && !whole_word(hay, start, end) {
                continue;
            }
            let (pattern, label) = self.keyword_ids[k];
            if seen[label] != stamp {
                seen[label] = stamp;
                push(Hit { label, pattern });
            }
        }
        self.regex_hits(text, seen, stamp, push);
    }

    /// Rules, highest priority first, for labels no keyword gave.
    fn regex_hits(&self, text: &str, seen: &mut [u32], stamp: u32, mut push: impl FnMut(Hit)) {
        for (r, pattern, label) in &self.regexes {
            if seen[*label] != stamp && r.is_match(text) {
                seen[*label] = stamp;
                push(Hit {
                    label: *label,
                    pattern: *pattern,
                });
            }
        }
    }
}

/// `text` as the automata read it: ASCII as it is (they ignore ASCII
/// case), anything else folded into `buf`.
fn folded<'a>(text: &'a str, buf: &'a mut String) -> &'a str {
    if text.is_ascii() {
        text
    } else {
        fold_into(text, buf);
        buf.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> PatternSet {
        PatternSet::parse(text.as_bytes()).unwrap()
    }

    fn found(m: &Matcher, s: &PatternSet, text: &str) -> Vec<(String, String)> {
        m.labels(text)
            .into_iter()
            .map(|h| {
                (
                    s.labels[h.label].clone(),
                    s.patterns[h.pattern].pattern.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn keywords_match_across_case_and_width_and_the_longest_wins() {
        let s = set("label,pattern\n/female,Mary\n/male,Mary Ann Jr\n/female,ann\n/male,林超\n");
        let m = Matcher::new(&s, MatcherOptions::default());
        assert_eq!(
            found(&m, &s, "MARY smith"),
            [("/female".into(), "Mary".into())]
        );
        assert_eq!(
            found(&m, &s, "Ｍａｒｙ　Ｗ"),
            [("/female".into(), "Mary".into())]
        );
        assert_eq!(
            found(&m, &s, "mary ann jr and ann"),
            [
                ("/male".into(), "Mary Ann Jr".into()),
                ("/female".into(), "ann".into())
            ]
        );
        assert_eq!(
            found(&m, &s, "WH_F0045_林超哥"),
            [("/male".into(), "林超".into())]
        );
        assert!(m.labels("nobody").is_empty());
    }

    #[test]
    fn whole_words_skip_keywords_inside_longer_words_but_not_in_cjk() {
        let s = set("label,pattern\n/female,ann\n/male,林超\n");
        let words = Matcher::new(&s, MatcherOptions { whole_word: true });
        assert!(words.labels("Joanna").is_empty());
        assert!(words.labels("ann_x").is_empty());
        assert_eq!(
            found(&words, &s, "Ann, hi"),
            [("/female".into(), "ann".into())]
        );
        assert_eq!(
            found(&words, &s, "林超哥"),
            [("/male".into(), "林超".into())]
        );
        let anywhere = Matcher::new(&s, MatcherOptions::default());
        assert_eq!(found(&anywhere, &s, "Joanna").len(), 1);
    }

    #[test]
    fn regexes_add_labels_a_keyword_did_not_give() {
        let s = set(
            "label,pattern,kind\n/female,mary,keyword\n/male,(?i)^mr\\.? ,regex\n/female,(?i)\\bmrs\\b,regex\n",
        );
        let m = Matcher::new(&s, MatcherOptions::default());
        assert_eq!(
            found(&m, &s, "Mr. Bean"),
            [("/male".into(), "(?i)^mr\\.? ".into())]
        );
        assert_eq!(
            found(&m, &s, "Mrs Mary"),
            [("/female".into(), "mary".into())],
            "one hit per label"
        );
    }

    #[test]
    fn scratch_space_is_reused_without_leaking_labels_between_texts() {
        let s = set("label,pattern\n/a,x\n/b,y\n");
        let m = Matcher::new(&s, MatcherOptions::default());
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        m.labels_into("x y", &mut scratch, &mut out);
        assert_eq!(out.len(), 2);
        m.labels_into("y", &mut scratch, &mut out);
        assert_eq!(
            out,
            [Hit {
                label: 1,
                pattern: 1
            }]
        );
        m.labels_into("", &mut scratch, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn the_compact_table_serves_everyday_sets_and_the_crate_large_ones() {
        let small = set("label,pattern\n/a,mary\n/b,ann\n");
        assert!(matches!(
            Matcher::new(&small, MatcherOptions::default()).keywords,
            Some(Keywords::Table(_))
        ));
        let mut file = String::from("label,pattern\n");
        for i in 0..70_000 {
            file.push_str(&format!("/a,w{i:05}x\n"));
        }
        let large = set(&file);
        let m = Matcher::new(&large, MatcherOptions::default());
        assert!(matches!(m.keywords, Some(Keywords::Crate(_))));
        assert_eq!(m.labels("a W12345X b").len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn both_automata_give_the_same_labels(
            words in proptest::collection::vec("[abÄä林 _]{1,4}", 1..10),
            texts in proptest::collection::vec("[abAÄä林 _.Ｂ]{0,24}", 1..8),
            whole_word: bool,
        ) {
            let mut file = String::from("label,pattern\n");
            let mut seen = std::collections::HashSet::new();
            for (i, w) in words.iter().enumerate() {
                if !w.trim().is_empty() && seen.insert(fold(w.trim())) {
                    file.push_str(&format!("/l{},\"{}\"\n", i % 3, w));
                }
            }
            proptest::prop_assume!(file.lines().count() > 1);
            let s = set(&file);
            let options = MatcherOptions { whole_word };
            let ours = Matcher::new(&s, options);
            let theirs = Matcher::with_crate_automaton(&s, options);
            for t in &texts {
                proptest::prop_assert_eq!(ours.labels(t), theirs.labels(t), "{:?}", t);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn many_texts_at_once_get_the_labels_each_gets_alone(
            texts in proptest::collection::vec(
                proptest::option::weighted(0.85, "[abAÄä林 _.Ｂ]{0,16}"),
                0..12,
            ),
            whole_word: bool,
            on_crate: bool,
        ) {
            let s = set("label,pattern,kind\n/a,ab,keyword\n/b,b a,keyword\n/c,林,keyword\n\
                         /a,ä,keyword\n/d,ｂ,keyword\n/e,(?i)^a,regex\n/c,b$,regex\n");
            let options = MatcherOptions { whole_word };
            let m = if on_crate {
                Matcher::with_crate_automaton(&s, options)
            } else {
                Matcher::new(&s, options)
            };
            let alone: Vec<(u32, Hit)> = texts
                .iter()
                .enumerate()
                .flat_map(|(i, t)| {
                    t.as_deref()
                        .map(|t| m.labels(t))
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |h| (i as u32, h))
                })
                .collect();
            let mut together = Vec::new();
            let mut scratch = Scratch::default();
            // Twice with the same scratch: nothing carries over.
            for _ in 0..2 {
                m.labels_of_many(texts.len(), |i| texts[i].as_deref(), &mut scratch, &mut together);
                proptest::prop_assert_eq!(&together, &alone);
            }
        }
    }

    #[test]
    fn labels_survive_the_stamp_wrapping_around_in_a_pair() {
        let s = set("label,pattern\n/a,ab\n");
        let m = Matcher::new(&s, MatcherOptions::default());
        let texts = ["ab", "x"];
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        m.labels_into("x", &mut scratch, &mut out);
        // The pair's second stamp wraps: the first text's mark must not
        // outlive the clearing.
        scratch.stamp = u32::MAX - 1;
        let mut many = Vec::new();
        m.labels_of_many(2, |i| Some(texts[i]), &mut scratch, &mut many);
        assert_eq!(many.len(), 1);
        for start in [u32::MAX - 1, u32::MAX - 2, 0, 1] {
            scratch.stamp = start;
            for _ in 0..3 {
                m.labels_into("ab", &mut scratch, &mut out);
                assert_eq!(out.len(), 1, "stamp {}", scratch.stamp);
                m.labels_of_many(2, |i| Some(texts[i]), &mut scratch, &mut many);
                assert_eq!(many.len(), 1, "stamp {}", scratch.stamp);
            }
        }
    }
}
