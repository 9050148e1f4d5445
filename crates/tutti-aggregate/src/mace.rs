//! MACE, Multi-Annotator Competence Estimation (Hovy et al., 2013): each
//! worker either knows the answer (with probability `competence`) or
//! spams, picking a label from their own spam distribution. EM from
//! majority vote; a Beta(0.5, 0.5) prior on competence and a light
//! symmetric smoothing of the spam distributions keep estimates off 0 and 1.

use crate::em::{EmOptions, finish_em};
use crate::{Aggregation, Answers};

/// Beta prior on competence: pseudo-counts of "knows" and "spams".
const PRIOR_KNOWS: f64 = 0.5;
const PRIOR_SPAMS: f64 = 0.5;
/// Pseudo-count per label in each spam distribution.
const SPAM_SMOOTHING: f64 = 0.01;

/// MACE: per item the label, per worker the competence (probability of
/// answering from knowledge rather than spamming).
pub fn mace(answers: &Answers, options: EmOptions) -> Aggregation {
    let k = answers.n_labels();
    let workers = answers.workers.len();
    let mut posteriors = crate::majority_vote(answers).posteriors.to_rows();
    let mut competence = vec![0.5; workers];
    let mut spam = vec![vec![1.0 / k as f64; k]; workers];
    let mut previous = f64::NEG_INFINITY;
    let mut iterations = 0;
    for round in 0..options.max_iterations {
        iterations += 1;
        // M-step from the posteriors (and, after the first round, the
        // current parameters for the spam/knowledge split).
        let mut knows = vec![0.0; workers];
        let mut total = vec![0.0; workers];
        let mut spam_counts = vec![vec![0.0; k]; workers];
        for &(i, w, l) in &answers.triples {
            let t = posteriors[i][l];
            let p_knows = if round == 0 {
                t
            } else {
                let c = competence[w];
                t * (c + (1.0 - c) * spam[w][l]).recip() * c
            };
            knows[w] += p_knows;
            total[w] += 1.0;
            spam_counts[w][l] += 1.0 - p_knows;
        }
        for w in 0..workers {
            competence[w] = (knows[w] + PRIOR_KNOWS) / (total[w] + PRIOR_KNOWS + PRIOR_SPAMS);
            let s: f64 = spam_counts[w].iter().sum::<f64>() + SPAM_SMOOTHING * k as f64;
            for l in 0..k {
                spam[w][l] = (spam_counts[w][l] + SPAM_SMOOTHING) / s;
            }
        }
        // E-step with a uniform prior over true labels.
        let mut scores = vec![vec![0.0; k]; answers.items.len()];
        for &(i, w, l) in &answers.triples {
            let c = competence[w];
            for (truth, s) in scores[i].iter_mut().enumerate() {
                let p = if truth == l { c } else { 0.0 } + (1.0 - c) * spam[w][l];
                *s += p.max(1e-300).ln();
            }
        }
        let ll = crate::em::normalise(&mut scores);
        posteriors = scores;
        if (ll - previous).abs() < options.tolerance {
            break;
        }
        previous = ll;
    }
    finish_em(
        answers,
        crate::Posteriors::from_rows(k, posteriors),
        None,
        Some(competence),
        iterations,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spammer_gets_low_competence_and_is_outvoted() {
        let mut rows = Vec::new();
        for q in 0..30 {
            let truth = if q % 2 == 0 { "x" } else { "y" };
            rows.push((format!("q{q}"), "k1".to_owned(), truth.to_owned()));
            rows.push((format!("q{q}"), "k2".to_owned(), truth.to_owned()));
            rows.push((format!("q{q}"), "spam1".to_owned(), "x".to_owned()));
            rows.push((format!("q{q}"), "spam2".to_owned(), "x".to_owned()));
        }
        let a = Answers::from_rows(rows);
        let r = mace(&a, EmOptions::default());
        let knower = a.workers.iter().position(|w| w == "k1").unwrap();
        let spammer = a.workers.iter().position(|w| w == "spam1").unwrap();
        assert!(r.skills[knower] > 0.9, "{:?}", r.skills);
        assert!(r.skills[spammer] < r.skills[knower]);
        for p in &r.posteriors {
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }
}
