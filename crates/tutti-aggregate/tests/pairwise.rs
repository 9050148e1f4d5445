//! Bradley-Terry on 8,931 real crowd judgments of LLM outputs, against the
//! reference scores evalica computed (`shared/datasets/pairwise/`), to 1e-6;
//! and noisy Bradley-Terry on the same judgments with their workers.
//! Skips where the data set is absent.

use std::collections::HashMap;
use std::path::PathBuf;
use tutti_aggregate::{BtOptions, Comparisons, Winner, bradley_terry, noisy_bradley_terry};

fn llmfao() -> Option<(Comparisons, PathBuf)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/pairwise");
    if !dir.exists() {
        eprintln!("skipped: {} is not here", dir.display());
        return None;
    }
    let mut rows = Vec::new();
    let mut r = csv::Reader::from_path(dir.join("llmfao.csv")).unwrap();
    let headers = r.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (worker, winner, left, right) = (col("worker"), col("winner"), col("left"), col("right"));
    for rec in r.records() {
        let rec = rec.unwrap();
        let w = match &rec[winner] {
            "left" => Winner::Left,
            "right" => Winner::Right,
            "tie" => Winner::Tie,
            other => panic!("unknown winner {other}"),
        };
        rows.push((
            rec[worker].to_owned(),
            rec[left].to_owned(),
            rec[right].to_owned(),
            w,
        ));
    }
    Some((Comparisons::from_worker_rows(rows), dir))
}

/// Spearman's rank correlation (no ties expected in real-valued scores).
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let rank = |v: &[f64]| {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|x, y| v[*x].total_cmp(&v[*y]));
        let mut r = vec![0.0; v.len()];
        for (pos, i) in order.into_iter().enumerate() {
            r[i] = pos as f64;
        }
        r
    };
    let (ra, rb) = (rank(a), rank(b));
    let n = a.len() as f64;
    let d2: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - y) * (x - y)).sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

#[test]
fn bradley_terry_reproduces_evalicas_scores() {
    let Some((c, dir)) = llmfao() else {
        return;
    };
    let (scores, iterations) = bradley_terry(&c, BtOptions::default());
    let mut golden = HashMap::new();
    let mut r = csv::Reader::from_path(dir.join("llmfao-golden.csv")).unwrap();
    for rec in r.records() {
        let rec = rec.unwrap();
        if &rec[0] == "bradley_terry" {
            golden.insert(rec[1].to_owned(), rec[2].parse::<f64>().unwrap());
        }
    }
    assert_eq!(golden.len(), c.items.len());
    let mut worst: f64 = 0.0;
    for (i, item) in c.items.iter().enumerate() {
        worst = worst.max((scores[i] - golden[item]).abs());
    }
    eprintln!(
        "{} items, {iterations} iterations, largest difference {worst:e}",
        c.items.len()
    );
    assert!(worst < 1e-6, "largest difference {worst}");
}

#[test]
fn noisy_bradley_terry_on_real_judgments_ranks_like_bradley_terry_and_rates_workers() {
    let Some((c, _)) = llmfao() else {
        return;
    };
    let (plain, _) = bradley_terry(&c, BtOptions::default());
    let noisy = noisy_bradley_terry(&c, BtOptions::default());
    let rho = spearman(&plain, &noisy.scores);
    let mean_skill = noisy.skills.iter().sum::<f64>() / noisy.skills.len() as f64;
    eprintln!(
        "{} workers, {} iterations, Spearman with Bradley-Terry {rho:.4}, mean skill {mean_skill:.3}",
        c.workers.len(),
        noisy.iterations
    );
    assert_eq!(c.workers.len(), 124);
    assert!(rho > 0.95, "Spearman {rho}");
    assert!((noisy.scores.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    for (s, b) in noisy.skills.iter().zip(&noisy.biases) {
        assert!(*s > 0.0 && *s < 1.0 && *b > 0.0 && *b < 1.0);
    }
}
