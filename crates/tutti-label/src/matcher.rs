//! The matcher: every keyword in one Aho-Corasick automaton over folded
//! text (leftmost-longest, so `Mary Ann` wins over `Mary` where both
//! match), regular expressions beside it. A text's labels are the distinct
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

/// A compiled pattern set.
pub struct Matcher {
    keywords: Option<AhoCorasick>,
    /// Per automaton pattern: (pattern index, label index).
    keyword_ids: Vec<(usize, usize)>,
    regexes: Vec<(regex::Regex, usize, usize)>,
    options: MatcherOptions,
    labels: usize,
}

/// Scratch space for [`Matcher::labels_into`], reused across texts so
/// matching allocates nothing per row.
#[derive(Default)]
pub struct Scratch {
    folded: String,
    seen: Vec<u32>,
    stamp: u32,
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
        let keywords = (!words.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .ascii_case_insensitive(true)
                .kind(Some(AhoCorasickKind::DFA))
                .build(&words)
                .or_else(|_| {
                    AhoCorasickBuilder::new()
                        .match_kind(MatchKind::LeftmostLongest)
                        .ascii_case_insensitive(true)
                        .build(&words)
                })
                .expect("folded keywords always build an automaton")
        });
        Self {
            keywords,
            keyword_ids,
            regexes,
            options,
            labels: set.labels.len(),
        }
    }

    /// The labels found in `text`, in the order they first match.
    pub fn labels(&self, text: &str) -> Vec<Hit> {
        let mut out = Vec::new();
        self.labels_into(text, &mut Scratch::default(), &mut out);
        out
    }

    /// As [`Matcher::labels`], into `out` (cleared first), reusing `scratch`.
    pub fn labels_into(&self, text: &str, scratch: &mut Scratch, out: &mut Vec<Hit>) {
        out.clear();
        if scratch.seen.len() != self.labels {
            scratch.seen = vec![0; self.labels];
            scratch.stamp = 0;
        }
        scratch.stamp = scratch.stamp.wrapping_add(1);
        if scratch.stamp == 0 {
            scratch.seen.iter_mut().for_each(|s| *s = 0);
            scratch.stamp = 1;
        }
        let stamp = scratch.stamp;
        if let Some(ac) = &self.keywords {
            // ASCII needs no folding: the automaton ignores ASCII case.
            let hay = if text.is_ascii() {
                text
            } else {
                fold_into(text, &mut scratch.folded);
                scratch.folded.as_str()
            };
            for m in ac.find_iter(hay) {
                if self.options.whole_word {
                    let before = hay[..m.start()].chars().next_back();
                    let after = hay[m.end()..].chars().next();
                    let first = hay[m.start()..].chars().next();
                    let last = hay[..m.end()].chars().next_back();
                    let joined = |edge: Option<char>, inner: Option<char>| match (edge, inner) {
                        (Some(e), Some(i)) => {
                            is_word_char(e)
                                && is_word_char(i)
                                && !(is_unspaced(e) || is_unspaced(i))
                        }
                        _ => false,
                    };
                    if joined(before, first) || joined(after, last) {
                        continue;
                    }
                }
                let (pattern, label) = self.keyword_ids[m.pattern().as_usize()];
                if scratch.seen[label] != stamp {
                    scratch.seen[label] = stamp;
                    out.push(Hit { label, pattern });
                }
            }
        }
        for (r, pattern, label) in &self.regexes {
            if scratch.seen[*label] != stamp && r.is_match(text) {
                scratch.seen[*label] = stamp;
                out.push(Hit {
                    label: *label,
                    pattern: *pattern,
                });
            }
        }
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
}
