//! How much people agree, beyond chance: Fleiss' kappa and Krippendorff's
//! alpha (nominal), and each worker's agreement with a consensus.

use crate::Answers;

/// Fleiss' kappa from per-item category counts. Items may have different
/// numbers of ratings; items with fewer than two are skipped. `None` when
/// no item has two ratings or chance agreement is total.
pub fn fleiss_kappa_from_counts(counts: &[Vec<f64>]) -> Option<f64> {
    let k = counts.first()?.len();
    let mut per_item = Vec::new();
    let mut category = vec![0.0; k];
    let mut total = 0.0;
    for row in counts {
        let n: f64 = row.iter().sum();
        if n < 2.0 {
            continue;
        }
        let agree: f64 = row.iter().map(|c| c * (c - 1.0)).sum();
        per_item.push(agree / (n * (n - 1.0)));
        for (c, v) in category.iter_mut().zip(row) {
            *c += v;
        }
        total += n;
    }
    if per_item.is_empty() {
        return None;
    }
    let observed = per_item.iter().sum::<f64>() / per_item.len() as f64;
    let chance: f64 = category.iter().map(|c| (c / total).powi(2)).sum();
    (chance < 1.0).then(|| (observed - chance) / (1.0 - chance))
}

/// Fleiss' kappa of a set of answers.
pub fn fleiss_kappa(answers: &Answers) -> Option<f64> {
    fleiss_kappa_from_counts(&answers.counts())
}

/// Krippendorff's alpha for nominal data, from per-item category counts
/// (missing ratings simply absent). `None` when there is nothing to pair
/// or no disagreement is possible.
pub fn krippendorff_alpha_from_counts(counts: &[Vec<f64>]) -> Option<f64> {
    let k = counts.first()?.len();
    // Coincidences o[c][d]: pairs of values within an item, each item
    // weighted by 1 / (its ratings - 1).
    let mut o = vec![vec![0.0; k]; k];
    for row in counts {
        let m: f64 = row.iter().sum();
        if m < 2.0 {
            continue;
        }
        for c in 0..k {
            for d in 0..k {
                let pairs = if c == d {
                    row[c] * (row[c] - 1.0)
                } else {
                    row[c] * row[d]
                };
                o[c][d] += pairs / (m - 1.0);
            }
        }
    }
    let n_c: Vec<f64> = o.iter().map(|r| r.iter().sum()).collect();
    let n: f64 = n_c.iter().sum();
    if n <= 1.0 {
        return None;
    }
    let mut observed = 0.0;
    let mut expected = 0.0;
    for c in 0..k {
        for d in 0..k {
            if c != d {
                observed += o[c][d];
                expected += n_c[c] * n_c[d];
            }
        }
    }
    (expected > 0.0).then(|| 1.0 - (n - 1.0) * observed / expected)
}

/// Krippendorff's alpha (nominal) of a set of answers.
pub fn krippendorff_alpha(answers: &Answers) -> Option<f64> {
    krippendorff_alpha_from_counts(&answers.counts())
}

/// Each worker's share of answers equal to the given labels (by item),
/// and how many answers that share is of.
pub fn worker_agreement(answers: &Answers, labels: &[usize]) -> Vec<(f64, usize)> {
    let mut hit = vec![0usize; answers.workers.len()];
    let mut all = vec![0usize; answers.workers.len()];
    for &(i, w, l) in &answers.triples {
        all[w] += 1;
        if labels[i] == l {
            hit[w] += 1;
        }
    }
    hit.iter()
        .zip(&all)
        .map(|(h, a)| (*h as f64 / (*a).max(1) as f64, *a))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleiss_kappa_of_the_textbook_example_is_0_210() {
        // Fleiss (1971) style example: 10 items, 14 raters, 5 categories.
        let rows = [
            [0., 0., 0., 0., 14.],
            [0., 2., 6., 4., 2.],
            [0., 0., 3., 5., 6.],
            [0., 3., 9., 2., 0.],
            [2., 2., 8., 1., 1.],
            [7., 7., 0., 0., 0.],
            [3., 2., 6., 3., 0.],
            [2., 5., 3., 2., 2.],
            [6., 5., 2., 1., 0.],
            [0., 2., 2., 3., 7.],
        ];
        let counts: Vec<Vec<f64>> = rows.iter().map(|r| r.to_vec()).collect();
        let kappa = fleiss_kappa_from_counts(&counts).unwrap();
        assert!((kappa - 0.210).abs() < 0.001, "{kappa}");
    }

    #[test]
    fn krippendorffs_nominal_example_with_missing_values_is_0_743() {
        // Krippendorff's reliability data: 4 coders, 12 units, values 1-5,
        // some missing. Counts per unit and value.
        let units: [&[u8]; 12] = [
            &[1, 1, 1],
            &[2, 2, 3, 2],
            &[3, 3, 3, 3],
            &[3, 3, 3, 3],
            &[2, 2, 2, 2],
            &[1, 2, 3, 4],
            &[4, 4, 4, 4],
            &[1, 1, 2, 1],
            &[2, 2, 2, 2],
            &[5, 5, 5],
            &[1, 1],
            &[3],
        ];
        let counts: Vec<Vec<f64>> = units
            .iter()
            .map(|u| {
                let mut row = vec![0.0; 5];
                for v in *u {
                    row[usize::from(*v) - 1] += 1.0;
                }
                row
            })
            .collect();
        let alpha = krippendorff_alpha_from_counts(&counts).unwrap();
        assert!((alpha - 0.743).abs() < 0.001, "{alpha}");
    }

    #[test]
    fn perfect_agreement_is_one() {
        let a = Answers::from_rows([
            ("q1", "a", "x"),
            ("q1", "b", "x"),
            ("q2", "a", "y"),
            ("q2", "b", "y"),
        ]);
        assert!((fleiss_kappa(&a).unwrap() - 1.0).abs() < 1e-12);
        assert!((krippendorff_alpha(&a).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(worker_agreement(&a, &[0, 1]), [(1.0, 2), (1.0, 2)]);
    }
}
