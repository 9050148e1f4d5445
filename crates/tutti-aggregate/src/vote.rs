//! Majority vote.

use crate::{Aggregation, Answers, Posteriors};

/// The most frequent answer per item; a tie goes to the first label in
/// order and the item is listed in [`Aggregation::ties`]. The posterior is
/// the share of votes; a worker's skill is their agreement with the result.
pub fn majority_vote(answers: &Answers) -> Aggregation {
    let k = answers.n_labels();
    let mut counts = vec![0u32; answers.items.len() * k];
    for &(i, _, l) in &answers.triples {
        counts[i * k + l] += 1;
    }
    let mut labels = Vec::with_capacity(answers.items.len());
    let mut ties = Vec::new();
    let mut posteriors = Vec::with_capacity(counts.len());
    for (item, c) in counts.chunks_exact(k.max(1)).enumerate() {
        let mut best = 0;
        let mut tied = false;
        for l in 1..c.len() {
            if c[l] > c[best] {
                best = l;
                tied = false;
            } else if c[l] == c[best] {
                tied = true;
            }
        }
        if tied {
            ties.push(item);
        }
        labels.push(best);
        let total = f64::from(c.iter().sum::<u32>().max(1));
        posteriors.extend(c.iter().map(|&v| f64::from(v) / total));
    }
    let skills = agreement(answers, &labels);
    Aggregation {
        labels,
        posteriors: Posteriors::from_flat(k, posteriors),
        skills,
        confusions: None,
        ties,
        iterations: 0,
        undecided: Vec::new(),
    }
}

/// Cymphony's k-of-n rule over the answers given: an item is decided when
/// at least `k` answers agree, on the label with the most votes; items
/// where no label has `k` votes are listed in [`Aggregation::undecided`]
/// (their label is majority vote's guess). `k` of 0 counts as 1.
pub fn k_of_n(answers: &Answers, k: usize) -> Aggregation {
    let mut r = majority_vote(answers);
    let counts = answers.counts();
    let need = k.max(1) as f64;
    r.undecided = counts
        .iter()
        .enumerate()
        .filter(|(i, c)| c[r.labels[*i]] < need)
        .map(|(i, _)| i)
        .collect();
    r
}

/// Each worker's share of answers equal to the given labels.
pub(crate) fn agreement(answers: &Answers, labels: &[usize]) -> Vec<f64> {
    let mut hit = vec![0.0; answers.workers.len()];
    let mut all = vec![0.0; answers.workers.len()];
    for &(i, w, l) in &answers.triples {
        all[w] += 1.0;
        if labels[i] == l {
            hit[w] += 1.0;
        }
    }
    hit.iter()
        .zip(&all)
        .map(|(h, a)| h / f64::max(*a, 1.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_frequent_answer_wins_and_ties_are_reported() {
        let a = Answers::from_rows([
            ("q1", "w1", "yes"),
            ("q1", "w2", "yes"),
            ("q1", "w3", "no"),
            ("q2", "w1", "yes"),
            ("q2", "w2", "no"),
        ]);
        let r = majority_vote(&a);
        // The tie on q2 goes to "no", first by name.
        let names: Vec<&str> = r.labels.iter().map(|&l| a.labels[l].as_str()).collect();
        assert_eq!(names, ["yes", "no"]);
        assert_eq!(r.ties, [1]);
        assert!((r.confidence(0) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.skills, [0.5, 1.0, 0.0]);
    }

    #[test]
    fn k_of_n_decides_only_items_where_k_answers_agree() {
        let a = Answers::from_rows([
            ("q1", "w1", "yes"),
            ("q1", "w2", "yes"),
            ("q1", "w3", "no"),
            ("q2", "w1", "yes"),
            ("q2", "w2", "no"),
            ("q3", "w1", "no"),
        ]);
        let r = k_of_n(&a, 2);
        assert_eq!(a.labels[r.labels[0]], "yes");
        assert_eq!(r.undecided, [1, 2]);
        assert!(k_of_n(&a, 1).undecided.is_empty());
    }
}
