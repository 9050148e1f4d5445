//! Adaptive redundancy ("dynamic overlap"): ask for another answer on an
//! item only while its label is uncertain, between a minimum and a maximum
//! number of answers.
//!
//! The confidence of an item is its largest posterior probability, where
//! each answer counts by its worker's confusion matrix: the last
//! Dawid-Skene fit over the answers known so far, drawn towards a prior
//! ([`WorkerPrior`]: an accuracy with wrong answers spread evenly) by a
//! number of pseudo-answers, so that a worker with a short record cannot
//! make an item look certain.
//!
//! [`replay`] plays recorded answers back through the rule, one answer per
//! open item per round in their recorded order, refitting worker accuracies
//! after every round, and reports how many answers the rule used and how
//! accurate the final labels are. With [`Settle::Reopen`] an item that
//! stopped is judged again after every refit, and takes answers again if
//! the better-known workers make its label less certain. With
//! [`Weighing::AtAnswer`] it plays the rule the way a live job runs it:
//! each answer weighed once, when it is given, by its worker's confusion
//! matrix as then estimated.

use crate::{Answers, EmOptions, Method, MethodInputs, aggregate, dawid_skene};

/// Adaptive redundancy: at least `min` and at most `max` answers per item,
/// and no more once the label's confidence reaches `confidence`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overlap {
    /// Fewest answers per item.
    pub min: usize,
    /// Most answers per item.
    pub max: usize,
    /// Confidence at which an item stops.
    pub confidence: f64,
}

impl Overlap {
    /// Whether an item with `answered` answers and this confidence needs
    /// another answer.
    pub fn wants_more(&self, answered: usize, confidence: f64) -> bool {
        answered < self.min || (answered < self.max && confidence < self.confidence)
    }
}

/// Default pseudo-answers of the prior mixed into every worker's estimate.
pub const PRIOR_WEIGHT: f64 = 10.0;

/// What is assumed of a worker before their answers say otherwise: a
/// newcomer counts as `accuracy`, a veteran as their record, and `weight`
/// pseudo-answers of the prior are mixed into every fitted estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerPrior {
    /// Accuracy of a worker with no record.
    pub accuracy: f64,
    /// Pseudo-answers of that accuracy in every estimate.
    pub weight: f64,
}

impl Default for WorkerPrior {
    fn default() -> Self {
        Self {
            accuracy: 0.7,
            weight: PRIOR_WEIGHT,
        }
    }
}

/// The confusion matrix of a worker with no record: right with `accuracy`,
/// wrong answers spread evenly.
pub fn prior_confusion(k: usize, accuracy: f64) -> Vec<Vec<f64>> {
    let wrong = (1.0 - accuracy) / (k.max(2) - 1) as f64;
    (0..k)
        .map(|t| {
            (0..k)
                .map(|g| if g == t { accuracy } else { wrong })
                .collect()
        })
        .collect()
}

/// A fitted confusion matrix from `answers` answers, drawn towards `prior`
/// by `weight` pseudo-answers (see [`PRIOR_WEIGHT`]).
pub fn smoothed_confusion(
    fitted: &[Vec<f64>],
    answers: f64,
    prior: &[Vec<f64>],
    weight: f64,
) -> Vec<Vec<f64>> {
    prior
        .iter()
        .enumerate()
        .map(|(t, row)| {
            // A row the fit has no mass for (the worker never met that
            // class) says nothing: it stays the prior.
            let fit = fitted.get(t).filter(|r| r.iter().sum::<f64>() > 0.0);
            row.iter()
                .enumerate()
                .map(|(g, p)| match fit.and_then(|r| r.get(g)) {
                    Some(f) => (f * answers + p * weight) / (answers + weight),
                    None => *p,
                })
                .collect()
        })
        .collect()
}

/// The posterior over `k` labels of an item from its answers, each
/// `(label given, the worker's confusion matrix [true][given])`, under
/// uniform class priors.
pub fn confusion_posterior<M: AsRef<[Vec<f64>]>>(answers: &[(usize, M)], k: usize) -> Vec<f64> {
    let mut log = vec![0.0; k.max(1)];
    for (given, m) in answers {
        let (given, m) = (*given, m.as_ref());
        for (t, v) in log.iter_mut().enumerate() {
            let p = m.get(t).and_then(|r| r.get(given)).copied().unwrap_or(0.0);
            *v += p.max(1e-6).ln();
        }
    }
    let max = log.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = log.iter().map(|v| (v - max).exp()).sum();
    log.iter().map(|v| (v - max).exp() / sum).collect()
}

/// Whether an item that reached its confidence stays stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Settle {
    /// Once stopped, an item takes no more answers (as a live job does).
    #[default]
    Once,
    /// After every refit every item with answers left is judged again, so
    /// one stopped on the word of workers who later prove poor reopens.
    Reopen,
}

/// How answers are weighed when an item's confidence is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weighing {
    /// Every answer is weighed again after each refit, by its worker's
    /// current Dawid-Skene confusion matrix (drawn towards the prior).
    #[default]
    Refit,
    /// Each answer is weighed once, when it is given, by its worker's
    /// confusion matrix from the refit before it (drawn towards the
    /// prior), and keeps that weight: what a live job does, where an
    /// answer's evidence is fixed at submit time from the matrix of the
    /// job's last re-aggregation.
    AtAnswer,
}

/// What [`replay`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// Per item, the answers revealed.
    pub used: Vec<usize>,
    /// Answers revealed in all.
    pub answers_used: usize,
    /// Answers recorded in all.
    pub answers_recorded: usize,
    /// Rounds played.
    pub rounds: usize,
    /// The final labels: `method` over the revealed answers.
    pub labels: Vec<usize>,
}

/// Plays `answers` back in their recorded order under `overlap`: each
/// round reveals the next answer of every item that wants more, then
/// refits workers' confusion matrices by Dawid-Skene (each drawn towards
/// the prior by [`smoothed_confusion`]) and recomputes each open item's
/// confidence. Items stop when the rule is met or their answers run out;
/// with [`Settle::Reopen`], every item with answers left is judged after
/// every refit. With [`Weighing::AtAnswer`] each answer keeps the weight
/// it was given (see [`Weighing`]). The final labels come from `method`
/// over the revealed answers.
pub fn replay(
    answers: &Answers,
    overlap: Overlap,
    prior: WorkerPrior,
    settle: Settle,
    weighing: Weighing,
    method: Method,
    inputs: &MethodInputs,
) -> Replay {
    let k = answers.n_labels();
    let mut queue: Vec<Vec<(usize, usize)>> = vec![Vec::new(); answers.items.len()];
    for &(i, w, l) in &answers.triples {
        queue[i].push((w, l));
    }
    let mut used = vec![0usize; answers.items.len()];
    let mut open: Vec<usize> = (0..answers.items.len())
        .filter(|&i| !queue[i].is_empty())
        .collect();
    let mut revealed = Answers {
        items: answers.items.clone(),
        workers: answers.workers.clone(),
        labels: answers.labels.clone(),
        triples: Vec::new(),
    };
    // Each worker's confusion matrix as the last refit left it (the prior
    // before the first), drawn towards the prior.
    let prior_matrix = prior_confusion(k, prior.accuracy);
    let mut confusions = vec![prior_matrix.clone(); answers.workers.len()];
    // Weighing at answer: per item, each label's log-likelihood from the
    // weights its answers were given.
    let mut evidence = vec![vec![0.0; k]; answers.items.len()];
    let mut rounds = 0;
    while !open.is_empty() {
        rounds += 1;
        for &i in &open {
            let (w, l) = queue[i][used[i]];
            if weighing == Weighing::AtAnswer {
                for (t, e) in evidence[i].iter_mut().enumerate() {
                    *e += confusions[w][t][l].max(1e-3).ln();
                }
            }
            revealed.triples.push((i, w, l));
            used[i] += 1;
        }
        let fit = dawid_skene(&revealed, EmOptions::default());
        let mut seen = vec![0.0; answers.workers.len()];
        for &(_, w, _) in &revealed.triples {
            seen[w] += 1.0;
        }
        if let Some(fitted) = fit.confusions {
            for ((c, m), &n) in confusions.iter_mut().zip(&fitted).zip(&seen) {
                *c = smoothed_confusion(m, n, &prior_matrix, prior.weight);
            }
        }
        if settle == Settle::Reopen {
            open = (0..answers.items.len()).collect();
        }
        open.retain(|&i| {
            if used[i] >= queue[i].len() {
                return false;
            }
            let confidence = match weighing {
                Weighing::Refit => {
                    let votes: Vec<(usize, &[Vec<f64>])> = queue[i][..used[i]]
                        .iter()
                        .map(|&(w, l)| (l, confusions[w].as_slice()))
                        .collect();
                    let p = confusion_posterior(&votes, k);
                    p.iter().cloned().fold(0.0, f64::max)
                }
                Weighing::AtAnswer => {
                    let max = evidence[i]
                        .iter()
                        .cloned()
                        .fold(f64::NEG_INFINITY, f64::max);
                    1.0 / evidence[i].iter().map(|v| (v - max).exp()).sum::<f64>()
                }
            };
            overlap.wants_more(used[i], confidence)
        });
    }
    let labels = aggregate(&revealed, method, inputs)
        .map(|r| r.labels)
        .unwrap_or_default();
    Replay {
        answers_used: revealed.triples.len(),
        answers_recorded: answers.triples.len(),
        used,
        rounds,
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreeing_skilled_answers_raise_confidence_and_disagreement_lowers_it() {
        let m = prior_confusion(2, 0.8);
        let one = confusion_posterior(&[(0, &m)], 2);
        let two = confusion_posterior(&[(0, &m), (0, &m)], 2);
        let split = confusion_posterior(&[(0, &m), (1, &m)], 2);
        assert!((one[0] - 0.8).abs() < 1e-12);
        assert!(two[0] > one[0]);
        assert!((split[0] - 0.5).abs() < 1e-12);
        assert!(
            (confusion_posterior::<&[Vec<f64>]>(&[], 3)
                .iter()
                .sum::<f64>()
                - 1.0)
                .abs()
                < 1e-12
        );
        // A fitted matrix drawn towards the prior by its weight.
        let fitted = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let s = smoothed_confusion(&fitted, 10.0, &m, 10.0);
        assert!((s[0][0] - 0.9).abs() < 1e-12 && (s[0][1] - 0.1).abs() < 1e-12);
    }

    #[test]
    fn the_rule_respects_its_minimum_and_maximum() {
        let o = Overlap {
            min: 2,
            max: 4,
            confidence: 0.9,
        };
        assert!(o.wants_more(1, 0.99));
        assert!(!o.wants_more(2, 0.95));
        assert!(o.wants_more(3, 0.5));
        assert!(!o.wants_more(4, 0.5));
    }

    /// 300 items with a true label of three, each answered by 10 of 30
    /// workers whose accuracy is 0.6 to 0.95; wrong answers spread evenly.
    fn simulated() -> (Answers, Vec<String>) {
        let mut x: u64 = 42;
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let accuracy: Vec<f64> = (0..30).map(|w| 0.6 + 0.35 * f64::from(w) / 29.0).collect();
        let mut rows = Vec::new();
        let mut truth = Vec::new();
        for q in 0..300 {
            let t = (next() * 3.0) as usize;
            truth.push(format!("l{t}"));
            for j in 0..10 {
                let w = (q * 7 + j * 3) % 30;
                let given = if next() < accuracy[w] {
                    t
                } else {
                    (t + 1 + (next() * 2.0) as usize) % 3
                };
                rows.push((format!("q{q}"), format!("w{w}"), format!("l{given}")));
            }
        }
        (Answers::from_rows(rows), truth)
    }

    #[test]
    fn replay_uses_every_answer_when_the_target_is_unreachable_and_the_minimum_when_it_is_the_maximum()
     {
        let (a, _) = simulated();
        let inputs = MethodInputs::default();
        let all = replay(
            &a,
            Overlap {
                min: 1,
                max: 10,
                confidence: 1.0,
            },
            WorkerPrior::default(),
            Settle::Once,
            Weighing::Refit,
            Method::MajorityVote,
            &inputs,
        );
        assert_eq!(all.answers_used, a.triples.len());
        let two = replay(
            &a,
            Overlap {
                min: 2,
                max: 2,
                confidence: 0.5,
            },
            WorkerPrior::default(),
            Settle::Once,
            Weighing::Refit,
            Method::MajorityVote,
            &inputs,
        );
        assert!(two.used.iter().all(|&u| u == 2));
        assert_eq!(two.rounds, 2);
    }

    #[test]
    fn reopening_gives_more_answers_to_items_that_stopped_on_the_word_of_poor_workers() {
        let (a, truth) = simulated();
        let inputs = MethodInputs::default();
        let overlap = Overlap {
            min: 2,
            max: 10,
            confidence: 0.95,
        };
        let run = |settle| {
            replay(
                &a,
                overlap,
                WorkerPrior::default(),
                settle,
                Weighing::Refit,
                Method::DawidSkene,
                &inputs,
            )
        };
        let (once, again) = (run(Settle::Once), run(Settle::Reopen));
        let right = |r: &Replay| {
            r.labels
                .iter()
                .zip(&truth)
                .filter(|(l, t)| &a.labels[**l] == *t)
                .count()
        };
        assert!(again.answers_used > once.answers_used);
        assert!(
            right(&again) > right(&once),
            "{} against {} right",
            right(&again),
            right(&once)
        );
        // The workers who settled an item under the first rule (its
        // answers up to where it stopped) were poorer where it reopened.
        let skill = |w: usize| 0.6 + 0.35 * w as f64 / 29.0;
        let first_skill = |i: usize| {
            let n = once.used[i];
            (0..n).map(|j| skill((i * 7 + j * 3) % 30)).sum::<f64>() / n as f64
        };
        let mean = |items: &[usize]| {
            items.iter().map(|&i| first_skill(i)).sum::<f64>() / items.len().max(1) as f64
        };
        let (reopened, kept): (Vec<usize>, Vec<usize>) = (0..a.items.len())
            .filter(|&i| once.used[i] < 10)
            .partition(|&i| again.used[i] > once.used[i]);
        assert!(!reopened.is_empty() && !kept.is_empty());
        assert!(
            mean(&reopened) < mean(&kept),
            "reopened {} kept {}",
            mean(&reopened),
            mean(&kept)
        );
    }

    #[test]
    fn weighing_answers_when_given_as_a_live_job_does_still_beats_an_even_spread() {
        let (a, truth) = simulated();
        let right = |answers: &Answers, labels: &[usize]| {
            labels
                .iter()
                .zip(&truth)
                .filter(|(l, t)| &answers.labels[**l] == *t)
                .count()
        };
        let overlap = Overlap {
            min: 2,
            max: 10,
            confidence: 0.99,
        };
        let inputs = MethodInputs::default();
        let live = replay(
            &a,
            overlap,
            WorkerPrior::default(),
            Settle::Once,
            Weighing::AtAnswer,
            Method::DawidSkene,
            &inputs,
        );
        assert!(live.answers_used < a.triples.len() * 3 / 4);
        let fixed = a.first_per_item(live.answers_used.div_ceil(a.items.len()));
        let even = crate::dawid_skene(&fixed, EmOptions::default()).labels;
        assert!(
            right(&a, &live.labels) > right(&fixed, &even),
            "{} against {} right",
            right(&a, &live.labels),
            right(&fixed, &even)
        );
        // Weights kept from when answers were given cannot change later,
        // so judging stopped items again reopens none of them.
        let again = replay(
            &a,
            overlap,
            WorkerPrior::default(),
            Settle::Reopen,
            Weighing::AtAnswer,
            Method::DawidSkene,
            &inputs,
        );
        assert_eq!(again.used, live.used);
    }

    #[test]
    fn replay_spends_answers_better_than_a_fixed_overlap_of_the_same_budget() {
        let (a, truth) = simulated();
        let accuracy = |labels: &[usize]| {
            let hits = labels
                .iter()
                .zip(&truth)
                .filter(|(l, t)| &a.labels[**l] == *t)
                .count();
            hits as f64 / truth.len() as f64
        };
        let inputs = MethodInputs::default();
        let r = replay(
            &a,
            Overlap {
                min: 2,
                max: 10,
                confidence: 0.99,
            },
            WorkerPrior::default(),
            Settle::Once,
            Weighing::Refit,
            Method::DawidSkene,
            &inputs,
        );
        let adaptive = accuracy(&r.labels);
        assert!(
            r.answers_used < a.triples.len() * 3 / 4,
            "{} answers",
            r.answers_used
        );
        // The same number of answers, spread evenly: the first `per_item`
        // answers of every item, labelled by the same method.
        let per_item = r.answers_used.div_ceil(a.items.len());
        let fixed = a.first_per_item(per_item);
        let baseline = accuracy(&crate::dawid_skene(&fixed, EmOptions::default()).labels);
        assert!(
            adaptive > baseline,
            "adaptive {adaptive} with {} answers, fixed {per_item} per item {baseline}",
            r.answers_used
        );
        // Items that stopped early agreed more than items that went on.
        assert!(r.used.contains(&2) && r.used.iter().any(|&u| u > 4));
    }
}
