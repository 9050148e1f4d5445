//! Expectation-maximisation methods: Dawid-Skene with a full confusion
//! matrix per worker, and its one-coin variant with a single accuracy.
//!
//! Both start from majority vote's posteriors, alternate an M-step
//! (class priors and worker parameters from the current posteriors) and an
//! E-step (posteriors from the parameters), and stop when the
//! log-likelihood changes by less than [`EmOptions::tolerance`] or after
//! [`EmOptions::max_iterations`]. No randomness: the same input gives the
//! same result.

use crate::vote::{agreement, majority_vote};
use crate::{Aggregation, Answers, Posteriors};

/// Added inside logarithms so that a zero probability does not give -inf.
const EPS: f64 = 1e-10;

/// Stopping rules of the EM methods.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmOptions {
    /// Most iterations (default 100).
    pub max_iterations: usize,
    /// Stop when the log-likelihood changes by less (default 1e-5).
    pub tolerance: f64,
}

impl Default for EmOptions {
    fn default() -> Self {
        Self {
            max_iterations: 100,
            tolerance: 1e-5,
        }
    }
}

/// Posteriors from log-scores; returns the log-likelihood.
pub(crate) fn normalise(log_scores: &mut [Vec<f64>]) -> f64 {
    let mut ll = 0.0;
    for row in log_scores.iter_mut() {
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
        ll += max + sum.ln();
        for v in row.iter_mut() {
            *v = (*v - max).exp() / sum;
        }
    }
    ll
}

fn priors(posteriors: &[Vec<f64>], k: usize) -> Vec<f64> {
    let mut p = vec![0.0; k];
    for row in posteriors {
        for (c, v) in row.iter().enumerate() {
            p[c] += v;
        }
    }
    let n = posteriors.len().max(1) as f64;
    p.iter().map(|v| v / n).collect()
}

fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

pub(crate) fn finish_em(
    answers: &Answers,
    posteriors: Posteriors,
    confusions: Option<Vec<Vec<Vec<f64>>>>,
    skills: Option<Vec<f64>>,
    iterations: usize,
) -> Aggregation {
    let labels: Vec<usize> = posteriors.iter().map(argmax).collect();
    let ties = posteriors
        .iter()
        .enumerate()
        .filter(|(i, r)| r.iter().filter(|v| **v == r[labels[*i]]).count() > 1)
        .map(|(i, _)| i)
        .collect();
    let skills = skills.unwrap_or_else(|| agreement(answers, &labels));
    Aggregation {
        labels,
        posteriors,
        skills,
        confusions,
        ties,
        iterations,
        undecided: Vec::new(),
    }
}

/// Dawid-Skene: each worker has a confusion matrix `pi[true][given]`.
///
/// Works on flat arrays (items x labels, workers x labels x labels) and
/// takes the logarithms of the confusion matrices once per iteration, so an
/// iteration costs a few additions per answer and label.
pub fn dawid_skene(answers: &Answers, options: EmOptions) -> Aggregation {
    let k = answers.n_labels();
    let n = answers.items.len();
    let nw = answers.workers.len();
    if answers.triples.is_empty() {
        return finish_em(
            answers,
            Posteriors::from_flat(k, Vec::new()),
            Some(vec![Vec::new(); nw]),
            None,
            0,
        );
    }
    let mut post: Vec<f64> = majority_vote(answers).posteriors.into_flat();
    let mut conf = vec![0.0; nw * k * k];
    let mut log_conf = vec![0.0; nw * k * k];
    let mut scores = vec![0.0; n * k];
    let mut prior = vec![0.0; k];
    let mut previous = f64::NEG_INFINITY;
    let mut iterations = 0;
    for _ in 0..options.max_iterations {
        iterations += 1;
        // M-step: class priors and confusion matrices.
        prior.iter_mut().for_each(|p| *p = 0.0);
        for row in post.chunks_exact(k) {
            for (p, v) in prior.iter_mut().zip(row) {
                *p += v;
            }
        }
        let items = n.max(1) as f64;
        conf.iter_mut().for_each(|v| *v = 0.0);
        for &(i, w, l) in &answers.triples {
            let base = w * k * k + l;
            for (c, t) in post[i * k..i * k + k].iter().enumerate() {
                conf[base + c * k] += t;
            }
        }
        for (row, log_row) in conf.chunks_exact_mut(k).zip(log_conf.chunks_exact_mut(k)) {
            let s: f64 = row.iter().sum();
            if s > 0.0 {
                row.iter_mut().for_each(|v| *v /= s);
            }
            for (l, v) in log_row.iter_mut().zip(row.iter()) {
                *l = (v + EPS).ln();
            }
        }
        // E-step.
        let log_prior: Vec<f64> = prior.iter().map(|p| (p / items + EPS).ln()).collect();
        for row in scores.chunks_exact_mut(k) {
            row.copy_from_slice(&log_prior);
        }
        for &(i, w, l) in &answers.triples {
            let base = w * k * k + l;
            for (c, s) in scores[i * k..i * k + k].iter_mut().enumerate() {
                *s += log_conf[base + c * k];
            }
        }
        let ll = normalise_flat(&mut scores, k);
        std::mem::swap(&mut post, &mut scores);
        if (ll - previous).abs() < options.tolerance {
            break;
        }
        previous = ll;
    }
    let posteriors = Posteriors::from_flat(k, post);
    let confusions = conf
        .chunks_exact(k * k)
        .map(|m| m.chunks_exact(k).map(<[f64]>::to_vec).collect())
        .collect();
    finish_em(answers, posteriors, Some(confusions), None, iterations)
}

/// [`normalise`] on a flat array of rows of `k`.
fn normalise_flat(log_scores: &mut [f64], k: usize) -> f64 {
    let mut ll = 0.0;
    for row in log_scores.chunks_exact_mut(k.max(1)) {
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        ll += max + sum.ln();
        row.iter_mut().for_each(|v| *v /= sum);
    }
    ll
}

/// One-coin Dawid-Skene: each worker answers right with one probability,
/// and wrong answers spread evenly over the other labels.
pub fn one_coin(answers: &Answers, options: EmOptions) -> Aggregation {
    let k = answers.n_labels();
    let mut posteriors = majority_vote(answers).posteriors.to_rows();
    let mut skills = vec![0.0; answers.workers.len()];
    let mut previous = f64::NEG_INFINITY;
    let mut iterations = 0;
    for _ in 0..options.max_iterations {
        iterations += 1;
        let p = priors(&posteriors, k);
        let mut hit = vec![0.0; skills.len()];
        let mut all = vec![0.0; skills.len()];
        for &(i, w, l) in &answers.triples {
            hit[w] += posteriors[i][l];
            all[w] += 1.0;
        }
        for (s, (h, a)) in skills.iter_mut().zip(hit.iter().zip(&all)) {
            *s = h / f64::max(*a, 1.0);
        }
        let wrong = (k.max(2) - 1) as f64;
        let mut scores: Vec<Vec<f64>> =
            vec![p.iter().map(|v| (v + EPS).ln()).collect(); answers.items.len()];
        for &(i, w, l) in &answers.triples {
            for (c, s) in scores[i].iter_mut().enumerate() {
                let prob = if c == l {
                    skills[w]
                } else {
                    (1.0 - skills[w]) / wrong
                };
                *s += (prob + EPS).ln();
            }
        }
        let ll = normalise(&mut scores);
        posteriors = scores;
        if (ll - previous).abs() < options.tolerance {
            break;
        }
        previous = ll;
    }
    finish_em(
        answers,
        Posteriors::from_rows(k, posteriors),
        None,
        Some(skills),
        iterations,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two reliable workers and one who always says the opposite.
    fn adversarial() -> Answers {
        let mut rows = Vec::new();
        for q in 0..20 {
            let truth = if q % 3 == 0 { "b" } else { "a" };
            let other = if truth == "a" { "b" } else { "a" };
            rows.push((format!("q{q}"), "good1".to_owned(), truth.to_owned()));
            rows.push((
                format!("q{q}"),
                "good2".to_owned(),
                if q == 4 { other } else { truth }.to_owned(),
            ));
            rows.push((format!("q{q}"), "liar".to_owned(), other.to_owned()));
        }
        Answers::from_rows(rows)
    }

    #[test]
    fn dawid_skene_learns_that_a_consistent_liar_is_informative() {
        let a = adversarial();
        let r = dawid_skene(&a, EmOptions::default());
        for (i, name) in a.items.iter().enumerate() {
            let q: usize = name[1..].parse().unwrap();
            let truth = if q.is_multiple_of(3) { "b" } else { "a" };
            assert_eq!(a.labels[r.labels[i]], truth, "{name}");
        }
        let liar = a.workers.iter().position(|w| w == "liar").unwrap();
        let m = &r.confusions.as_ref().unwrap()[liar];
        assert!(m[0][1] > 0.9 && m[1][0] > 0.9, "{m:?}");
        for p in &r.posteriors {
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn empty_and_single_answer_inputs_give_defined_results() {
        let none = Answers::from_rows(Vec::<(String, String, String)>::new());
        for r in [
            dawid_skene(&none, EmOptions::default()),
            one_coin(&none, EmOptions::default()),
        ] {
            assert!(r.labels.is_empty() && r.posteriors.is_empty());
        }
        let one = Answers::from_rows([("q", "w", "yes")]);
        for r in [
            dawid_skene(&one, EmOptions::default()),
            one_coin(&one, EmOptions::default()),
        ] {
            assert_eq!(r.labels, [0]);
            assert!(r.posteriors[0].iter().all(|p| p.is_finite()));
            assert!((r.confidence(0) - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn em_results_are_deterministic() {
        let a = adversarial();
        assert_eq!(
            dawid_skene(&a, EmOptions::default()),
            dawid_skene(&a, EmOptions::default())
        );
        assert_eq!(
            one_coin(&a, EmOptions::default()),
            one_coin(&a, EmOptions::default())
        );
    }

    #[test]
    fn one_coin_ranks_the_liar_below_the_good_workers() {
        let a = adversarial();
        let r = one_coin(&a, EmOptions::default());
        let liar = a.workers.iter().position(|w| w == "liar").unwrap();
        let good = a.workers.iter().position(|w| w == "good1").unwrap();
        assert!(r.skills[liar] < r.skills[good]);
    }
}
