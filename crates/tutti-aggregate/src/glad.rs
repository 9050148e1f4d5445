//! GLAD, Generative model of Labels, Abilities and Difficulties (Whitehill
//! et al., 2009): worker `w` answers item `i` correctly with probability
//! `sigmoid(alpha_w * beta_i)`, where `alpha_w` is the worker's ability
//! (negative for an adversary) and `beta_i = exp(b_i) > 0` the item's
//! easiness; wrong answers spread evenly over the other labels.
//!
//! EM as in Crowd-Kit: every ability and log-easiness starts at 1, class
//! priors are uniform and stay so, and the first E-step computes posteriors
//! from those starting values. The M-step raises the expected
//! log-likelihood plus Gaussian priors (`alpha ~ N(1, 1)`, `b ~ N(1, 1)`)
//! by up to [`GLAD_M_STEPS`] rounds of diagonal Newton steps, alternately
//! on abilities and on easinesses, each step clipped to 1 in absolute value.
//! The outer loop stops by [`EmOptions`].

use crate::em::{EmOptions, finish_em, normalise};
use crate::{Aggregation, Answers};

/// Inner Newton rounds per M-step.
pub const GLAD_M_STEPS: usize = 25;
/// The inner rounds stop when no parameter moves by more.
const M_STEP_TOLERANCE: f64 = 1e-4;
const EPS: f64 = 1e-10;

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// GLAD: per item the label and posterior, per worker the ability
/// `alpha` in [`Aggregation::skills`] (1 is the prior; higher is better,
/// below 0 answers against the truth).
pub fn glad(answers: &Answers, options: EmOptions) -> Aggregation {
    let mut alpha: Vec<f64> = vec![1.0; answers.workers.len()];
    let mut b: Vec<f64> = vec![1.0; answers.items.len()];
    let mut posteriors = e_step(answers, &alpha, &b);
    let mut previous = f64::NEG_INFINITY;
    let mut iterations = 0;
    for _ in 0..options.max_iterations {
        iterations += 1;
        // The probability that each answer is right under the posteriors.
        let right: Vec<f64> = answers
            .triples
            .iter()
            .map(|&(i, _, l)| posteriors[i][l])
            .collect();
        for _ in 0..GLAD_M_STEPS {
            let mut moved: f64 = 0.0;
            // Abilities given easinesses.
            let mut grad: Vec<f64> = alpha.iter().map(|a| -(a - 1.0)).collect();
            let mut hess = vec![-1.0; alpha.len()];
            for (t, &(i, w, _)) in answers.triples.iter().enumerate() {
                let beta = b[i].exp();
                let s = sigmoid(alpha[w] * beta);
                grad[w] += (right[t] - s) * beta;
                hess[w] -= s * (1.0 - s) * beta * beta;
            }
            for ((a, g), h) in alpha.iter_mut().zip(&grad).zip(&hess) {
                let step = (-g / h).clamp(-1.0, 1.0);
                *a += step;
                moved = moved.max(step.abs());
            }
            // Easinesses given abilities (Gauss-Newton in log-easiness).
            let mut grad: Vec<f64> = b.iter().map(|v| -(v - 1.0)).collect();
            let mut hess = vec![-1.0; b.len()];
            for (t, &(i, w, _)) in answers.triples.iter().enumerate() {
                let x = alpha[w] * b[i].exp();
                let s = sigmoid(x);
                grad[i] += (right[t] - s) * x;
                hess[i] -= s * (1.0 - s) * x * x;
            }
            for ((v, g), h) in b.iter_mut().zip(&grad).zip(&hess) {
                let step = (-g / h).clamp(-1.0, 1.0);
                *v += step;
                moved = moved.max(step.abs());
            }
            if moved < M_STEP_TOLERANCE {
                break;
            }
        }
        let (next, ll) = e_step_ll(answers, &alpha, &b);
        posteriors = next;
        if (ll - previous).abs() < options.tolerance {
            break;
        }
        previous = ll;
    }
    finish_em(
        answers,
        crate::Posteriors::from_rows(answers.n_labels(), posteriors),
        None,
        Some(alpha),
        iterations,
    )
}

fn e_step(answers: &Answers, alpha: &[f64], b: &[f64]) -> Vec<Vec<f64>> {
    e_step_ll(answers, alpha, b).0
}

/// Posteriors under uniform class priors, and the log-likelihood.
fn e_step_ll(answers: &Answers, alpha: &[f64], b: &[f64]) -> (Vec<Vec<f64>>, f64) {
    let k = answers.n_labels();
    let wrong_share = ((k.max(2) - 1) as f64).ln();
    let mut scores = vec![vec![0.0; k]; answers.items.len()];
    for &(i, w, l) in &answers.triples {
        let s = sigmoid(alpha[w] * b[i].exp());
        let yes = (s + EPS).ln();
        let no = (1.0 - s + EPS).ln() - wrong_share;
        for (c, v) in scores[i].iter_mut().enumerate() {
            *v += if c == l { yes } else { no };
        }
    }
    let ll = normalise(&mut scores);
    (scores, ll)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glad_gives_an_adversary_a_negative_ability_and_recovers_the_truth() {
        let mut rows = Vec::new();
        for q in 0..30 {
            let truth = if q % 3 == 0 { "b" } else { "a" };
            let other = if truth == "a" { "b" } else { "a" };
            for w in ["w1", "w2", "w3"] {
                let slip = (q == 4 && w == "w1") || (q == 7 && w == "w2");
                rows.push((
                    format!("q{q}"),
                    w.to_owned(),
                    if slip { other } else { truth }.to_owned(),
                ));
            }
            rows.push((format!("q{q}"), "liar".to_owned(), other.to_owned()));
        }
        let a = Answers::from_rows(rows);
        let r = glad(&a, EmOptions::default());
        for (i, name) in a.items.iter().enumerate() {
            let q: usize = name[1..].parse().unwrap();
            assert_eq!(
                a.labels[r.labels[i]],
                if q.is_multiple_of(3) { "b" } else { "a" }
            );
        }
        let liar = a.workers.iter().position(|w| w == "liar").unwrap();
        assert!(r.skills[liar] < 0.0, "{:?}", r.skills);
        assert!(r.skills.iter().all(|s| s.is_finite()));
    }

    #[test]
    fn glad_on_empty_and_single_answers_is_defined() {
        let none = Answers::from_rows(Vec::<(String, String, String)>::new());
        assert!(glad(&none, EmOptions::default()).labels.is_empty());
        let one = Answers::from_rows([("q", "w", "yes")]);
        let r = glad(&one, EmOptions::default());
        assert_eq!(r.labels, [0]);
        assert!((r.confidence(0) - 1.0).abs() < 1e-9);
    }
}
