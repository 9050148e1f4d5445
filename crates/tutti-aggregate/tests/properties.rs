//! Invariants every method keeps on any input: posteriors are
//! distributions, results do not depend on the order of the input, and a
//! unanimous crowd is believed.

use proptest::prelude::*;
use std::collections::HashMap;
use tutti_aggregate::{
    Answers, BtOptions, CatdOptions, Comparisons, Method, MethodInputs, NumericAnswers, Winner,
    aggregate, bradley_terry, catd, median, noisy_bradley_terry,
};

/// Up to 12 items, 6 workers and 4 labels; each worker answers an item at
/// most once.
fn answer_rows() -> impl Strategy<Value = Vec<(String, String, String)>> {
    proptest::collection::btree_map((0u8..12, 0u8..6), 0u8..4, 1..60).prop_map(|m| {
        m.into_iter()
            .map(|((i, w), l)| (format!("q{i}"), format!("w{w}"), format!("l{l}")))
            .collect()
    })
}

fn inputs(a: &Answers) -> MethodInputs {
    MethodInputs {
        k: 2,
        weights: Some((0..a.workers.len()).map(|w| 0.5 + w as f64 / 4.0).collect()),
        ..MethodInputs::default()
    }
}

/// Per item name: label name and the posterior per label name (sorted by
/// name, since label indices follow the order of the input).
type ByName = HashMap<String, (String, Vec<(String, f64)>)>;

fn by_name(a: &Answers, method: Method) -> ByName {
    let r = aggregate(a, method, &inputs(a)).unwrap();
    a.items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut p: Vec<(String, f64)> = a
                .labels
                .iter()
                .cloned()
                .zip(r.posteriors[i].iter().copied())
                .collect();
            p.sort_by(|x, y| x.0.cmp(&y.0));
            (item.clone(), (a.labels[r.labels[i]].clone(), p))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn posteriors_are_distributions_and_labels_their_mode(rows in answer_rows()) {
        let a = Answers::from_rows(rows);
        for method in Method::ALL {
            let r = aggregate(&a, method, &inputs(&a)).unwrap();
            prop_assert_eq!(r.labels.len(), a.items.len());
            for (i, p) in r.posteriors.iter().enumerate() {
                prop_assert_eq!(p.len(), a.n_labels());
                prop_assert!(p.iter().all(|v| v.is_finite() && *v >= 0.0), "{method}: {p:?}");
                prop_assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{method}: {p:?}");
                let best = p.iter().cloned().fold(0.0, f64::max);
                prop_assert!(p[r.labels[i]] >= best - 1e-9, "{method}: {p:?} label {}", r.labels[i]);
            }
            prop_assert!(r.skills.iter().all(|s| s.is_finite()), "{method}: {:?}", r.skills);
        }
    }

    #[test]
    fn permuting_the_input_does_not_change_any_result(
        rows in answer_rows(),
        seed in any::<u64>(),
    ) {
        let mut shuffled = rows.clone();
        // A deterministic shuffle from the seed (Fisher-Yates with an LCG).
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (x >> 33) as usize % (i + 1));
        }
        let (a, b) = (Answers::from_rows(rows), Answers::from_rows(shuffled));
        for method in Method::ALL {
            if method == Method::WeightedMajority {
                // Weights are given per worker index, which depends on order.
                continue;
            }
            let (ra, rb) = (by_name(&a, method), by_name(&b, method));
            for (item, (label, p)) in &ra {
                let (other, q) = &rb[item];
                for (x, y) in p.iter().zip(q) {
                    prop_assert!(x.0 == y.0 && (x.1 - y.1).abs() < 1e-6, "{method} {item}: {p:?} vs {q:?}");
                }
                if label != other {
                    // Only a tie may be broken differently: ties go to the
                    // label seen first, which depends on the order.
                    let prob = |name: &str| p.iter().find(|x| x.0 == name).unwrap().1;
                    prop_assert!((prob(label) - prob(other)).abs() < 1e-6, "{method} {item}: {label} vs {other}");
                }
            }
        }
    }

    #[test]
    fn a_unanimous_crowd_is_believed(
        items in proptest::collection::vec((0u8..3, 1usize..5), 1..10),
    ) {
        let mut rows = Vec::new();
        for (i, (label, n)) in items.iter().enumerate() {
            for w in 0..*n {
                rows.push((format!("q{i}"), format!("w{w}"), format!("l{label}")));
            }
        }
        let a = Answers::from_rows(rows);
        for method in Method::ALL {
            let r = aggregate(&a, method, &inputs(&a)).unwrap();
            for (i, (label, _)) in items.iter().enumerate() {
                prop_assert_eq!(&a.labels[r.labels[i]], &format!("l{label}"), "{}", method);
            }
        }
    }

    #[test]
    fn pairwise_scores_are_finite_and_sum_to_one(
        rows in proptest::collection::vec((0u8..4, 0u8..8, 0u8..8, 0u8..3), 1..80),
    ) {
        let c = Comparisons::from_worker_rows(rows.into_iter().map(|(w, l, r, x)| {
            let winner = [Winner::Left, Winner::Right, Winner::Tie][x as usize];
            (format!("w{w}"), format!("i{l}"), format!("i{r}"), winner)
        }));
        let (plain, _) = bradley_terry(&c, BtOptions::default());
        let noisy = noisy_bradley_terry(&c, BtOptions { max_iterations: 500, ..BtOptions::default() });
        for s in [&plain, &noisy.scores] {
            prop_assert!(s.iter().all(|v| v.is_finite() && *v >= 0.0), "{s:?}");
            let sum: f64 = s.iter().sum();
            prop_assert!(sum == 0.0 || (sum - 1.0).abs() < 1e-9, "{s:?}");
        }
    }

    #[test]
    fn numeric_estimates_stay_within_the_answers_range(
        rows in proptest::collection::vec((0u8..6, 0u8..5, -100.0f64..100.0), 1..50),
    ) {
        let n = NumericAnswers::from_rows(
            rows.iter().map(|(i, w, v)| (format!("q{i}"), format!("w{w}"), *v)),
        ).unwrap();
        let (estimates, weights) = catd(&n, CatdOptions::default());
        prop_assert!(weights.iter().all(|w| w.is_finite() && *w >= 0.0), "{weights:?}");
        for (i, item) in n.items.iter().enumerate() {
            let values: Vec<f64> = rows
                .iter()
                .filter(|(q, _, _)| &format!("q{q}") == item)
                .map(|r| r.2)
                .collect();
            let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            for v in [estimates[i], median(&n)[i]] {
                prop_assert!(v >= lo - 1e-9 && v <= hi + 1e-9, "{item}: {v} outside {lo}..{hi}");
            }
        }
    }
}
