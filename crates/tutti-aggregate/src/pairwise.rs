//! Scores from pairwise comparisons: which of two items won, or a tie.
//!
//! [`bradley_terry`] fits the Bradley-Terry model, P(i beats j) =
//! s_i / (s_i + s_j), by the classic minorisation-maximisation iteration
//! (Zermelo 1929; Hunter 2004): each score becomes the item's wins over the
//! sum, across its comparisons, of (comparisons with j) / (s_i + s_j); the
//! scores are then scaled to sum to 1. A tie counts as half a win for each
//! side. Items that never won score 0; an item compared with itself is
//! ignored.

use std::collections::HashMap;

/// The outcome of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winner {
    /// The first item won.
    Left,
    /// The second item won.
    Right,
    /// Neither.
    Tie,
}

/// Comparisons with items interned to dense indices, in order of first
/// appearance.
#[derive(Debug, Clone, Default)]
pub struct Comparisons {
    /// Item names.
    pub items: Vec<String>,
    /// `(left, right, winner)`.
    pub pairs: Vec<(usize, usize, Winner)>,
}

impl Comparisons {
    /// Builds the index from `(left, right, winner)` rows.
    pub fn from_rows<I, S>(rows: I) -> Self
    where
        I: IntoIterator<Item = (S, S, Winner)>,
        S: AsRef<str>,
    {
        let mut items = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut intern = |name: &str, items: &mut Vec<String>| {
            *index.entry(name.to_owned()).or_insert_with(|| {
                items.push(name.to_owned());
                items.len() - 1
            })
        };
        let mut pairs = Vec::new();
        for (l, r, w) in rows {
            let li = intern(l.as_ref(), &mut items);
            let ri = intern(r.as_ref(), &mut items);
            pairs.push((li, ri, w));
        }
        Self { items, pairs }
    }
}

/// Stopping rules of [`bradley_terry`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BtOptions {
    /// Stop when no score moves by more (default 1e-10).
    pub tolerance: f64,
    /// Most iterations (default 10,000).
    pub max_iterations: usize,
}

impl Default for BtOptions {
    fn default() -> Self {
        Self {
            tolerance: 1e-10,
            max_iterations: 10_000,
        }
    }
}

/// Bradley-Terry scores (summing to 1) per item, and the iterations run.
/// Works on the list of compared pairs, never an items-by-items matrix, so
/// memory grows with the comparisons, not with the square of the items.
pub fn bradley_terry(c: &Comparisons, options: BtOptions) -> (Vec<f64>, usize) {
    let n = c.items.len();
    // Per unordered pair: games played; per item: wins (ties as halves).
    let mut games: HashMap<(usize, usize), f64> = HashMap::new();
    let mut wins = vec![0.0; n];
    for &(l, r, w) in &c.pairs {
        if l == r {
            continue;
        }
        *games.entry((l.min(r), l.max(r))).or_default() += 1.0;
        match w {
            Winner::Left => wins[l] += 1.0,
            Winner::Right => wins[r] += 1.0,
            Winner::Tie => {
                wins[l] += 0.5;
                wins[r] += 0.5;
            }
        }
    }
    let mut edges: Vec<(usize, usize, f64)> =
        games.into_iter().map(|((i, j), g)| (i, j, g)).collect();
    edges.sort_by_key(|e| (e.0, e.1));
    let mut scores = vec![1.0; n];
    let mut denominator = vec![0.0; n];
    let mut iterations = 0;
    while iterations < options.max_iterations {
        iterations += 1;
        denominator.iter_mut().for_each(|d| *d = 0.0);
        for &(i, j, g) in &edges {
            let x = g / (scores[i] + scores[j]);
            denominator[i] += x;
            denominator[j] += x;
        }
        let mut next: Vec<f64> = (0..n)
            .map(|i| {
                if denominator[i] > 0.0 {
                    wins[i] / denominator[i]
                } else {
                    0.0
                }
            })
            .collect();
        let sum: f64 = next.iter().sum();
        if sum > 0.0 {
            next.iter_mut().for_each(|v| *v /= sum);
        }
        let moved = next
            .iter()
            .zip(&scores)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        scores = next;
        if moved < options.tolerance {
            break;
        }
    }
    (scores, iterations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stronger_item_scores_higher_and_scores_sum_to_one() {
        let c = Comparisons::from_rows([
            ("a", "b", Winner::Left),
            ("a", "b", Winner::Left),
            ("b", "a", Winner::Left),
            ("b", "c", Winner::Left),
            ("c", "a", Winner::Tie),
        ]);
        let (s, _) = bradley_terry(&c, BtOptions::default());
        assert!(s[0] > s[1] && s[1] > s[2], "{s:?}");
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn two_items_get_the_ratio_of_their_wins() {
        // 3 wins to 1: s_a / (s_a + s_b) = 3/4.
        let c = Comparisons::from_rows([
            ("a", "b", Winner::Left),
            ("a", "b", Winner::Left),
            ("a", "b", Winner::Left),
            ("a", "b", Winner::Right),
        ]);
        let (s, _) = bradley_terry(&c, BtOptions::default());
        assert!((s[0] - 0.75).abs() < 1e-9, "{s:?}");
    }
}
