//! Methods that weight each worker's vote by a skill: weighted majority
//! vote with given weights, Wawa (weights from agreement with majority
//! vote) and Zero-Based Skill (weights refined until they settle).

use crate::vote::agreement;
use crate::{Aggregation, Answers, Posteriors};

/// Majority vote where each worker's answer counts with their weight; the
/// posterior is the weighted share. Ties go to the first label in order.
/// A worker beyond the end of `weights` weighs 1, and a weight that is
/// negative or not finite counts as 0 ([`crate::aggregate`] refuses both
/// instead); the skills returned are the weights used.
pub fn weighted_majority_vote(answers: &Answers, weights: &[f64]) -> Aggregation {
    let k = answers.n_labels();
    let weights: Vec<f64> = (0..answers.workers.len())
        .map(|w| match weights.get(w) {
            Some(v) if v.is_finite() && *v >= 0.0 => *v,
            Some(_) => 0.0,
            None => 1.0,
        })
        .collect();
    let mut scores = vec![vec![0.0; k]; answers.items.len()];
    for &(i, w, l) in &answers.triples {
        scores[i][l] += weights[w];
    }
    let mut labels = Vec::with_capacity(scores.len());
    let mut ties = Vec::new();
    let mut posteriors = Vec::with_capacity(scores.len());
    for (item, row) in scores.iter().enumerate() {
        let mut best = 0;
        for l in 1..k {
            if row[l] > row[best] {
                best = l;
            }
        }
        if row.iter().filter(|v| **v == row[best]).count() > 1 {
            ties.push(item);
        }
        labels.push(best);
        let total: f64 = row.iter().sum();
        posteriors.push(if total > 0.0 {
            row.iter().map(|v| v / total).collect()
        } else {
            vec![1.0 / k as f64; k]
        });
    }
    Aggregation {
        labels,
        posteriors: Posteriors::from_rows(k, posteriors),
        skills: weights,
        confusions: None,
        ties,
        iterations: 0,
        undecided: Vec::new(),
    }
}

/// Wawa ("worker agreement with aggregate"): majority vote, then each
/// worker's agreement with it as their weight in a second, weighted vote.
pub fn wawa(answers: &Answers) -> Aggregation {
    let first = crate::majority_vote(answers);
    let skills = agreement(answers, &first.labels);
    weighted_majority_vote(answers, &skills)
}

/// Options of [`zero_based_skill`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZbsOptions {
    /// Most rounds (default 100).
    pub max_iterations: usize,
    /// First step size (default 1.0).
    pub learning_rate: f64,
    /// Rounds between halvings of the step size (default 20).
    pub halve_every: usize,
    /// Stop when no skill moves by more (default 1e-5).
    pub tolerance: f64,
}

impl Default for ZbsOptions {
    fn default() -> Self {
        Self {
            max_iterations: 100,
            learning_rate: 1.0,
            halve_every: 20,
            tolerance: 1e-5,
        }
    }
}

/// Zero-Based Skill: start every worker at skill 1, then repeatedly take a
/// weighted vote and move each skill a step towards the worker's agreement
/// with it, halving the step every `halve_every` rounds.
pub fn zero_based_skill(answers: &Answers, options: ZbsOptions) -> Aggregation {
    let mut skills = vec![1.0; answers.workers.len()];
    let mut rate = options.learning_rate;
    let mut iterations = 0;
    for round in 0..options.max_iterations {
        iterations += 1;
        if round > 0 && options.halve_every > 0 && round % options.halve_every == 0 {
            rate /= 2.0;
        }
        let vote = weighted_majority_vote(answers, &skills);
        let target = agreement(answers, &vote.labels);
        let mut moved: f64 = 0.0;
        for (s, t) in skills.iter_mut().zip(&target) {
            let next = *s + rate * (t - *s);
            moved = moved.max((next - *s).abs());
            *s = next;
        }
        if moved < options.tolerance {
            break;
        }
    }
    Aggregation {
        iterations,
        ..weighted_majority_vote(answers, &skills)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_without_a_weight_weigh_one_and_an_unusable_weight_counts_nothing() {
        let a = Answers::from_rows([("q1", "w1", "a"), ("q1", "w2", "b"), ("q1", "w3", "b")]);
        // w1 weighs 3, w2's NaN counts 0, w3 has no weight and weighs 1.
        let r = weighted_majority_vote(&a, &[3.0, f64::NAN]);
        assert_eq!(r.labels, [0]);
        assert_eq!(r.skills, [3.0, 0.0, 1.0]);
        assert!((r.posteriors.to_rows()[0][0] - 0.75).abs() < 1e-12);
        let r = weighted_majority_vote(&a, &[]);
        assert_eq!((r.labels, r.skills), (vec![1], vec![1.0; 3]));
    }

    fn answers() -> Answers {
        // Three careful workers and two who always answer "b".
        let mut rows = Vec::new();
        for q in 0..12 {
            let truth = if q % 2 == 0 { "a" } else { "b" };
            for w in ["c1", "c2", "c3"] {
                let wrong = (q == 3 && w == "c1") || (q == 5 && w == "c2");
                let given = if wrong {
                    if truth == "a" { "b" } else { "a" }
                } else {
                    truth
                };
                rows.push((format!("q{q}"), w.to_owned(), given.to_owned()));
            }
            for w in ["s1", "s2"] {
                rows.push((format!("q{q}"), w.to_owned(), "b".to_owned()));
            }
        }
        Answers::from_rows(rows)
    }

    #[test]
    fn weights_decide_the_vote() {
        let a = Answers::from_rows([("q", "x", "a"), ("q", "y", "b"), ("q", "z", "b")]);
        assert_eq!(weighted_majority_vote(&a, &[3.0, 1.0, 1.0]).labels, [0]);
        assert_eq!(weighted_majority_vote(&a, &[1.0, 1.0, 1.0]).labels, [1]);
    }

    #[test]
    fn wawa_and_zbs_trust_careful_workers_over_constant_ones() {
        let a = answers();
        for r in [wawa(&a), zero_based_skill(&a, ZbsOptions::default())] {
            for (i, name) in a.items.iter().enumerate() {
                let q: usize = name[1..].parse().unwrap();
                assert_eq!(
                    a.labels[r.labels[i]],
                    if q.is_multiple_of(2) { "a" } else { "b" },
                    "{name}"
                );
            }
            let careful = a.workers.iter().position(|w| w == "c3").unwrap();
            let constant = a.workers.iter().position(|w| w == "s1").unwrap();
            assert!(r.skills[careful] > r.skills[constant]);
        }
    }
}
