//! A compact Aho-Corasick automaton for keyword sets of everyday size: a
//! full transition table over byte classes (only the bytes keywords use
//! get a class of their own) with at most 65,535 states, so a set of a
//! thousand keywords takes about 400 KB and stays in a core's L2 cache,
//! where the `aho-corasick` crate's DFA for the same set (1.19 MB, its rows
//! padded to a power of two) does not.
//!
//! It finds the same matches as a leftmost-longest, non-overlapping search:
//! the search reports every occurrence of every keyword (following the
//! automaton's output lists), and [`Table::find`] then keeps, from left to
//! right, the occurrence that starts first, the longest of those, and the
//! earliest keyword among equal ones, skipping what overlaps it. ASCII
//! letters match either case: an upper-case byte shares its lower-case
//! byte's class. Keywords must be given folded to lower case.

/// No keyword ends here (in `own`), or no further state holds one (in
/// `link`: the root, state 0, never ends a keyword).
const NONE: u32 = u32::MAX;

/// Most entries (states × (classes + 1)) a table may hold: 16 MB.
const MAX_ENTRIES: usize = 4 << 20;

/// A keyword occurrence: start, end, keyword index.
pub(crate) type Occurrence = (u32, u32, u32);

/// The automaton.
pub(crate) struct Table {
    classes: [u8; 256],
    /// Entries per state: one per class, then the state's outputs.
    width: usize,
    /// Per state, a row of `width` entries: the next state for each class
    /// (as the index of its row's first entry), then where the state's
    /// keywords start in `outs`. States where keywords end come last, from
    /// `out_start` on, so one comparison tells them apart.
    next: Vec<u32>,
    out_start: u32,
    /// Per state where keywords end: those keywords (at its own node and
    /// at its suffixes'), each list closed by NONE.
    outs: Vec<u32>,
    /// Per keyword: its length in bytes.
    lens: Vec<u32>,
}

impl Table {
    /// Builds the table, or `None` when the set needs more than 65,535
    /// states or passes the size cap (or holds an empty keyword).
    pub(crate) fn new(words: &[String]) -> Option<Self> {
        if words.iter().any(String::is_empty) || words.len() >= NONE as usize {
            return None;
        }
        debug_assert!(
            words
                .iter()
                .all(|w| !w.bytes().any(|b| b.is_ascii_uppercase())),
            "keywords come folded to lower case"
        );
        let mut classes = [0u8; 256];
        let mut used = [false; 256];
        for w in words {
            for &b in w.as_bytes() {
                used[b as usize] = true;
            }
        }
        let mut stride = 1usize;
        for b in 0..256 {
            if used[b] {
                if stride > u8::MAX as usize {
                    return None;
                }
                classes[b] = stride as u8;
                stride += 1;
            }
        }
        for b in b'A'..=b'Z' {
            classes[b as usize] = classes[b.to_ascii_lowercase() as usize];
        }
        let most_states = 1 + words.iter().map(String::len).sum::<usize>();
        if most_states.min(u16::MAX as usize) * (stride + 1) > MAX_ENTRIES {
            return None;
        }

        // The trie, as a table with NONE where there is no child yet.
        let mut goto: Vec<u32> = vec![NONE; stride];
        let mut own: Vec<u32> = vec![NONE];
        for (k, w) in words.iter().enumerate() {
            let mut s = 0usize;
            for &b in w.as_bytes() {
                let c = classes[b as usize] as usize;
                let child = goto[s * stride + c];
                s = if child == NONE {
                    let new = own.len();
                    if new >= u16::MAX as usize {
                        return None;
                    }
                    goto[s * stride + c] = new as u32;
                    goto.extend(std::iter::repeat_n(NONE, stride));
                    own.push(NONE);
                    new
                } else {
                    child as usize
                };
            }
            if own[s] == NONE {
                own[s] = k as u32;
            }
        }
        let states = own.len();

        // Breadth first, so each state's failure state is complete before
        // it: a missing child goes where the failure state's would.
        let mut next = vec![0u16; states * stride];
        let mut fail = vec![0u16; states];
        let mut link = vec![0u16; states];
        let mut queue = std::collections::VecDeque::new();
        for c in 0..stride {
            let child = goto[c];
            if child != NONE {
                next[c] = child as u16;
                queue.push_back(child as usize);
            }
        }
        while let Some(s) = queue.pop_front() {
            let f = fail[s] as usize;
            link[s] = if own[f] != NONE { f as u16 } else { link[f] };
            for c in 0..stride {
                let child = goto[s * stride + c];
                if child == NONE {
                    next[s * stride + c] = next[f * stride + c];
                } else {
                    next[s * stride + c] = child as u16;
                    fail[child as usize] = next[f * stride + c];
                    queue.push_back(child as usize);
                }
            }
        }
        // Rows again, states with keywords last, next states as row
        // offsets.
        let has_out: Vec<bool> = (0..states)
            .map(|s| own[s] != NONE || link[s] != 0)
            .collect();
        let mut order: Vec<usize> = (0..states).filter(|&s| !has_out[s]).collect();
        let quiet = order.len();
        order.extend((0..states).filter(|&s| has_out[s]));
        let width = stride + 1;
        let mut row = vec![0u32; states];
        for (new, &old) in order.iter().enumerate() {
            row[old] = (new * width) as u32;
        }
        let mut table = vec![0u32; states * width];
        let mut outs = Vec::new();
        for (new, &old) in order.iter().enumerate() {
            let at = new * width;
            for c in 0..stride {
                table[at + c] = row[next[old * stride + c] as usize];
            }
            if has_out[old] {
                table[at + stride] = outs.len() as u32;
                let mut q = if own[old] != NONE {
                    old
                } else {
                    link[old] as usize
                };
                while q != 0 {
                    outs.push(own[q]);
                    q = link[q] as usize;
                }
                outs.push(NONE);
            }
        }
        Some(Self {
            classes,
            width,
            next: table,
            out_start: (quiet * width) as u32,
            outs,
            lens: words.iter().map(|w| w.len() as u32).collect(),
        })
    }

    /// Bytes the table takes.
    pub(crate) fn memory(&self) -> usize {
        (self.next.len() + self.outs.len() + self.lens.len()) * 4
    }

    /// The leftmost-longest, non-overlapping matches in `hay`, in order,
    /// into `found` (cleared first); `all` is scratch space.
    pub(crate) fn find(&self, hay: &[u8], all: &mut Vec<Occurrence>, found: &mut Vec<Occurrence>) {
        all.clear();
        self.walk(hay, 0, 0, all);
        select(all, found);
    }

    /// As [`Table::find`] for two texts at once: the two walks through the
    /// table are independent, so the processor overlaps their memory
    /// reads, which is where a walk spends its time.
    pub(crate) fn find_two(&self, a: &[u8], b: &[u8], scratch: &mut [Vec<Occurrence>; 4]) {
        let [all_a, all_b, found_a, found_b] = scratch;
        all_a.clear();
        all_b.clear();
        let next = self.next.as_slice();
        let n = a.len().min(b.len());
        let (mut s, mut t) = (0u32, 0u32);
        for i in 0..n {
            s = next[s as usize + self.classes[a[i] as usize] as usize];
            t = next[t as usize + self.classes[b[i] as usize] as usize];
            if s >= self.out_start {
                self.emit(s, i, all_a);
            }
            if t >= self.out_start {
                self.emit(t, i, all_b);
            }
        }
        if a.len() > n {
            self.walk(a, n, s, all_a);
        } else {
            self.walk(b, n, t, all_b);
        }
        select(all_a, found_a);
        select(all_b, found_b);
    }

    /// Walks `hay` from byte `from` in state `s`, recording occurrences.
    fn walk(&self, hay: &[u8], from: usize, mut s: u32, all: &mut Vec<Occurrence>) {
        let next = self.next.as_slice();
        for (i, &b) in hay.iter().enumerate().skip(from) {
            s = next[s as usize + self.classes[b as usize] as usize];
            if s >= self.out_start {
                self.emit(s, i, all);
            }
        }
    }

    /// Records the keywords ending in state `s` at byte `i`.
    #[inline]
    fn emit(&self, s: u32, i: usize, all: &mut Vec<Occurrence>) {
        let end = i as u32 + 1;
        let mut j = self.next[s as usize + self.width - 1] as usize;
        while let Some(&k) = self.outs.get(j).filter(|&&k| k != NONE) {
            all.push((end - self.lens[k as usize], end, k));
            j += 1;
        }
    }
}

/// Keeps, from left to right, the occurrence that starts first, the
/// longest of those, and the earliest keyword among equal ones, skipping
/// what overlaps it.
fn select(all: &mut [Occurrence], found: &mut Vec<Occurrence>) {
    found.clear();
    if all.is_empty() {
        return;
    }
    all.sort_unstable_by_key(|&(start, end, k)| (start, std::cmp::Reverse(end), k));
    let mut from = 0u32;
    for &o in all.iter() {
        if o.0 >= from {
            found.push(o);
            from = o.1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::{AhoCorasickBuilder, MatchKind};

    fn crate_matches(words: &[String], hay: &str) -> Vec<Occurrence> {
        AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(true)
            .build(words)
            .unwrap()
            .find_iter(hay)
            .map(|m| (m.start() as u32, m.end() as u32, m.pattern().as_u32()))
            .collect()
    }

    fn table_matches(words: &[String], hay: &str) -> Vec<Occurrence> {
        let t = Table::new(words).unwrap();
        let (mut all, mut found) = (Vec::new(), Vec::new());
        t.find(hay.as_bytes(), &mut all, &mut found);
        found
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_longest_match_at_the_leftmost_start_wins_and_the_search_resumes_after_it() {
        let w = words(&["mary", "mary ann jr", "ann", "ry a", "nn", "林超"]);
        for hay in [
            "mary ann jr and ann",
            "MARY ANN",
            "xx mary ann j",
            "annn",
            "WH_林超哥",
            "",
        ] {
            assert_eq!(table_matches(&w, hay), crate_matches(&w, hay), "{hay:?}");
        }
        assert_eq!(table_matches(&w, "mary ann jr"), [(0, 11, 1)]);
    }

    #[test]
    fn a_repeated_keyword_reports_its_first_copy() {
        let w = words(&["ab", "b", "ab"]);
        assert_eq!(table_matches(&w, "xab"), [(1, 3, 0)]);
    }

    #[test]
    fn sets_too_large_for_the_table_are_refused() {
        assert!(Table::new(&words(&["a", ""])).is_none());
        let many: Vec<String> = (0..70_000).map(|i| format!("w{i:05}x")).collect();
        assert!(Table::new(&many).is_none(), "more than 65,535 states");
    }

    proptest::proptest! {
        #[test]
        fn two_texts_walked_together_give_what_each_gives_alone(
            w in proptest::collection::vec("[abc ]{1,4}", 1..12),
            a in "[abcABC d]{0,30}",
            b in "[abcABC d]{0,30}",
        ) {
            let t = Table::new(&w).unwrap();
            let mut scratch: [Vec<Occurrence>; 4] = Default::default();
            t.find_two(a.as_bytes(), b.as_bytes(), &mut scratch);
            proptest::prop_assert_eq!(&scratch[2], &table_matches(&w, &a));
            proptest::prop_assert_eq!(&scratch[3], &table_matches(&w, &b));
        }

        #[test]
        fn the_table_finds_what_the_aho_corasick_crate_finds(
            w in proptest::collection::vec("[abc ]{1,4}", 1..12),
            hay in "[abcABC d]{0,40}",
        ) {
            proptest::prop_assert_eq!(table_matches(&w, &hay), crate_matches(&w, &hay));
        }
    }
}
