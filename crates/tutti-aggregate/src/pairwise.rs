//! Scores from pairwise comparisons: which of two items won, or a tie.
//!
//! [`bradley_terry`] fits the Bradley-Terry model, P(i beats j) =
//! s_i / (s_i + s_j), by Newman's (2023) iteration, item by item in place
//! (as evalica does), which has the maximum-likelihood fixed point of
//! Zermelo's (1929) and Hunter's (2004) minorisation-maximisation but
//! converges in far fewer rounds; the scores are then scaled to sum to 1. A tie counts as half a win for each
//! side, and a graded judgment ([`Winner::Graded`]) as its share of a win. Items that never won score 0; an item compared with itself is
//! ignored.

use crate::answers::intern;
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
    /// A graded judgment, `grade` from `-scale` (the first item is much
    /// better) to `scale` (the second is), as Tournesol's -10..10: it
    /// counts as a share `(scale - grade) / (2 scale)` of a win for the
    /// first item and the rest for the second.
    Graded {
        /// The grade, negative when the first item is better.
        grade: i32,
        /// The largest grade (at least 1).
        scale: u32,
    },
}

impl Winner {
    /// The share of a win this outcome gives the first item, in [0, 1].
    pub fn left_share(self) -> f64 {
        match self {
            Winner::Left => 1.0,
            Winner::Right => 0.0,
            Winner::Tie => 0.5,
            Winner::Graded { grade, scale } => {
                let s = f64::from(scale.max(1));
                ((s - f64::from(grade)) / (2.0 * s)).clamp(0.0, 1.0)
            }
        }
    }
}

/// Comparisons with items and workers interned to dense indices, in order
/// of first appearance.
#[derive(Debug, Clone, Default)]
pub struct Comparisons {
    /// Item names.
    pub items: Vec<String>,
    /// Worker names (one unnamed worker when none were given).
    pub workers: Vec<String>,
    /// `(left, right, winner)`.
    pub pairs: Vec<(usize, usize, Winner)>,
    /// Per pair, the worker who judged it.
    pub judged_by: Vec<usize>,
}

impl Comparisons {
    /// Builds the index from `(left, right, winner)` rows, all judged by
    /// one unnamed worker.
    pub fn from_rows<I, S>(rows: I) -> Self
    where
        I: IntoIterator<Item = (S, S, Winner)>,
        S: AsRef<str>,
    {
        Self::from_worker_rows(rows.into_iter().map(|(l, r, w)| (String::new(), l, r, w)))
    }

    /// Builds the index from `(worker, left, right, winner)` rows.
    pub fn from_worker_rows<I, W, S>(rows: I) -> Self
    where
        I: IntoIterator<Item = (W, S, S, Winner)>,
        W: AsRef<str>,
        S: AsRef<str>,
    {
        let mut c = Self::default();
        let mut items = HashMap::new();
        let mut workers = HashMap::new();
        for (who, l, r, w) in rows {
            c.push(
                &mut items,
                &mut workers,
                who.as_ref(),
                l.as_ref(),
                r.as_ref(),
                w,
            );
        }
        c
    }

    /// Adds one comparison, interning names through the given maps (which
    /// must be the same across calls on one value).
    pub fn push(
        &mut self,
        items: &mut HashMap<String, usize>,
        workers: &mut HashMap<String, usize>,
        worker: &str,
        left: &str,
        right: &str,
        winner: Winner,
    ) {
        let li = intern(items, &mut self.items, left);
        let ri = intern(items, &mut self.items, right);
        self.pairs.push((li, ri, winner));
        self.judged_by
            .push(intern(workers, &mut self.workers, worker));
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
    // Per unordered pair (i < j): wins of i over j and of j over i, ties
    // counting half to each. Sorting packed keys groups the pairs without
    // a hash map.
    let mut keyed: Vec<(u64, f64, f64)> = Vec::with_capacity(c.pairs.len());
    for &(l, r, w) in &c.pairs {
        if l == r {
            continue;
        }
        let share = w.left_share();
        let (i, j, i_won, j_won) = (l, r, share, 1.0 - share);
        let (i, j, wi, wj) = if i < j {
            (i, j, i_won, j_won)
        } else {
            (j, i, j_won, i_won)
        };
        keyed.push((((i as u64) << 32) | j as u64, wi, wj));
    }
    keyed.sort_unstable_by_key(|e| e.0);
    let mut edges: Vec<(usize, usize, f64, f64)> = Vec::new();
    for (key, wi, wj) in keyed {
        let (i, j) = ((key >> 32) as usize, (key & 0xFFFF_FFFF) as usize);
        match edges.last_mut() {
            Some(e) if e.0 == i && e.1 == j => {
                e.2 += wi;
                e.3 += wj;
            }
            _ => edges.push((i, j, wi, wj)),
        }
    }
    // Each item's neighbours, with its wins over them and theirs over it.
    let mut start = vec![0usize; n + 1];
    for &(i, j, _, _) in &edges {
        start[i + 1] += 1;
        start[j + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut adj = vec![(0usize, 0.0f64, 0.0f64); start[n]];
    let mut wins = vec![0.0; n];
    for &(i, j, wi, wj) in &edges {
        adj[fill[i]] = (j, wi, wj);
        fill[i] += 1;
        adj[fill[j]] = (i, wj, wi);
        fill[j] += 1;
        wins[i] += wi;
        wins[j] += wj;
    }
    let mut scores: Vec<f64> = wins
        .iter()
        .map(|&w| if w > 0.0 { 1.0 } else { 0.0 })
        .collect();
    let mut iterations = 0;
    while iterations < options.max_iterations {
        iterations += 1;
        let before = normalised(&scores);
        // Newman's (2023) update, item by item in place: s_i = sum_j w_ij
        // s_j / (s_i + s_j) over sum_j w_ji / (s_i + s_j). Same fixed point
        // as Zermelo's iteration, reached in far fewer rounds.
        for i in 0..n {
            if wins[i] <= 0.0 {
                continue;
            }
            let (mut num, mut den) = (0.0, 0.0);
            for &(j, won, lost) in &adj[start[i]..start[i + 1]] {
                let total = scores[i] + scores[j];
                num += won * scores[j] / total;
                den += lost / total;
            }
            if den > 0.0 {
                scores[i] = num / den;
            } else {
                // Never lost: only its rank above the others is known.
                scores[i] *= 2.0;
            }
        }
        let after = normalised(&scores);
        let moved = after
            .iter()
            .zip(&before)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        scores = after;
        if moved < options.tolerance {
            break;
        }
    }
    (scores, iterations)
}

fn normalised(scores: &[f64]) -> Vec<f64> {
    let sum: f64 = scores.iter().sum();
    if sum > 0.0 {
        scores.iter().map(|v| v / sum).collect()
    } else {
        scores.to_vec()
    }
}

/// The result of [`noisy_bradley_terry`].
#[derive(Debug, Clone, PartialEq)]
pub struct NoisyBt {
    /// Per item: strength, scaled to sum to 1.
    pub scores: Vec<f64>,
    /// Per worker: the probability that a judgment follows the items'
    /// strengths rather than the worker's noise.
    pub skills: Vec<f64>,
    /// Per worker: when judging at random, the probability of saying
    /// "left" (a position bias; 0.5 is none).
    pub biases: Vec<f64>,
    /// EM iterations run.
    pub iterations: usize,
}

/// Noisy Bradley-Terry: each judgment by worker `w` follows the
/// Bradley-Terry model with probability `skill_w`, and is otherwise a coin
/// that says "left" with probability `bias_w`. Fitted by EM: the E-step
/// gives each judgment its probability of being a considered one; the
/// M-step sets skills and biases to weighted shares (with one pseudo-count
/// each way, so that they stay inside (0, 1)) and takes one
/// minorisation-maximisation step of the strengths on the weighted
/// judgments. Starts from equal strengths, skill 0.9 and no bias; stops
/// when the log-likelihood changes by less than `tolerance` or after
/// `max_iterations`. A tie counts as half a judgment each way.
pub fn noisy_bradley_terry(c: &Comparisons, options: BtOptions) -> NoisyBt {
    let n = c.items.len();
    let nw = c.workers.len();
    // (winner, loser, worker, weight, winner was on the left)
    let mut obs: Vec<(usize, usize, usize, f64, bool)> = Vec::with_capacity(c.pairs.len());
    for (&(l, r, w), &by) in c.pairs.iter().zip(&c.judged_by) {
        if l == r {
            continue;
        }
        let share = w.left_share();
        if share > 0.0 {
            obs.push((l, r, by, share, true));
        }
        if share < 1.0 {
            obs.push((r, l, by, 1.0 - share, false));
        }
    }
    let mut scores: Vec<f64> = vec![1.0; n];
    let mut skills: Vec<f64> = vec![0.9; nw];
    let mut biases: Vec<f64> = vec![0.5; nw];
    let mut resp = vec![0.0; obs.len()];
    let mut previous = f64::NEG_INFINITY;
    let mut iterations = 0;
    while iterations < options.max_iterations {
        iterations += 1;
        // E-step, and the log-likelihood of the current parameters.
        let mut ll: f64 = 0.0;
        for (r, &(win, lose, w, weight, left)) in resp.iter_mut().zip(&obs) {
            let total = scores[win] + scores[lose];
            let bt = if total > 0.0 {
                scores[win] / total
            } else {
                0.5
            };
            let coin = if left { biases[w] } else { 1.0 - biases[w] };
            let considered = skills[w] * bt;
            let p = considered + (1.0 - skills[w]) * coin;
            *r = if p > 0.0 { considered / p } else { 0.0 };
            ll += weight * p.max(1e-300).ln();
        }
        if (ll - previous).abs() < options.tolerance * ll.abs().max(1.0) {
            break;
        }
        previous = ll;
        // M-step: skills and biases.
        let mut considered = vec![1.0; nw];
        let mut all = vec![2.0; nw];
        let mut said_left = vec![1.0; nw];
        let mut noise = vec![2.0; nw];
        for (&r, &(_, _, w, weight, left)) in resp.iter().zip(&obs) {
            considered[w] += weight * r;
            all[w] += weight;
            noise[w] += weight * (1.0 - r);
            if left {
                said_left[w] += weight * (1.0 - r);
            }
        }
        for w in 0..nw {
            skills[w] = considered[w] / all[w];
            biases[w] = said_left[w] / noise[w];
        }
        // One MM step of the strengths on the weighted judgments.
        let mut wins = vec![0.0; n];
        let mut denominator = vec![0.0; n];
        for (&r, &(win, lose, _, weight, _)) in resp.iter().zip(&obs) {
            let x = weight * r;
            wins[win] += x;
            let total = scores[win] + scores[lose];
            if total > 0.0 {
                denominator[win] += x / total;
                denominator[lose] += x / total;
            }
        }
        for i in 0..n {
            scores[i] = if denominator[i] > 0.0 {
                wins[i] / denominator[i]
            } else {
                0.0
            };
        }
        // Keep the mean strength at 1 so that sums stay well scaled.
        let sum: f64 = scores.iter().sum();
        if sum > 0.0 {
            scores.iter_mut().for_each(|v| *v *= n as f64 / sum);
        }
    }
    let sum: f64 = scores.iter().sum();
    if sum > 0.0 {
        scores.iter_mut().for_each(|v| *v /= sum);
    }
    NoisyBt {
        scores,
        skills,
        biases,
        iterations,
    }
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

    #[test]
    fn a_graded_judgment_counts_as_its_share_of_a_win() {
        // -5 on a scale of 10 gives the left item 3/4 of a win: the same
        // fit as three wins to one.
        let graded = Comparisons::from_rows([(
            "a",
            "b",
            Winner::Graded {
                grade: -5,
                scale: 10,
            },
        )]);
        let (s, _) = bradley_terry(&graded, BtOptions::default());
        assert!((s[0] - 0.75).abs() < 1e-9, "{s:?}");
        assert_eq!(
            Winner::Graded {
                grade: 0,
                scale: 10
            }
            .left_share(),
            0.5
        );
        assert_eq!(
            Winner::Graded {
                grade: -10,
                scale: 10
            }
            .left_share(),
            1.0
        );
        assert_eq!(
            Winner::Graded {
                grade: 10,
                scale: 10
            }
            .left_share(),
            0.0
        );
        // Out-of-range grades are held to the scale, a zero scale to 1.
        assert_eq!(
            Winner::Graded {
                grade: 99,
                scale: 10
            }
            .left_share(),
            0.0
        );
        assert_eq!(
            Winner::Graded {
                grade: -1,
                scale: 0
            }
            .left_share(),
            1.0
        );
    }

    #[test]
    fn noisy_bradley_terry_discounts_a_worker_who_always_says_left() {
        // Truth: a > b > c > d. Two careful workers; one who says "left"
        // whatever the pair, and sees the weaker item on the left.
        let order = ["a", "b", "c", "d"];
        let mut rows = Vec::new();
        for round in 0..5 {
            for i in 0..4 {
                for j in i + 1..4 {
                    let (strong, weak) = (order[i], order[j]);
                    let slip = round == 0 && i == 0 && j == 1;
                    for careful in ["c1", "c2"] {
                        let winner = if slip && careful == "c1" {
                            Winner::Right
                        } else {
                            Winner::Left
                        };
                        rows.push((careful, strong, weak, winner));
                    }
                    rows.push(("lefty", weak, strong, Winner::Left));
                }
            }
        }
        let c = Comparisons::from_worker_rows(rows);
        let r = noisy_bradley_terry(&c, BtOptions::default());
        let ix = |name: &str| c.items.iter().position(|i| i == name).unwrap();
        assert!(r.scores[ix("a")] > r.scores[ix("b")], "{r:?}");
        assert!(r.scores[ix("b")] > r.scores[ix("c")], "{r:?}");
        assert!(r.scores[ix("c")] > r.scores[ix("d")], "{r:?}");
        assert!((r.scores.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let lefty = c.workers.iter().position(|w| w == "lefty").unwrap();
        let careful = c.workers.iter().position(|w| w == "c2").unwrap();
        assert!(r.skills[lefty] < 0.5 && r.skills[careful] > 0.8, "{r:?}");
        assert!(r.biases[lefty] > 0.8, "{r:?}");
        // Plain Bradley-Terry is pulled towards the lefty's answers.
        let (plain, _) = bradley_terry(&c, BtOptions::default());
        let gap = |s: &[f64]| s[ix("a")] / s[ix("d")];
        assert!(gap(&r.scores) > gap(&plain), "{r:?} {plain:?}");
    }
}
