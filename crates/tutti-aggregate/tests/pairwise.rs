//! Bradley-Terry on 8,931 real crowd judgments of LLM outputs, against the
//! reference scores evalica computed (`shared/datasets/pairwise/`), to 1e-6.
//! Skips where the data set is absent.

use std::collections::HashMap;
use std::path::PathBuf;
use tutti_aggregate::{BtOptions, Comparisons, Winner, bradley_terry};

#[test]
fn bradley_terry_reproduces_evalicas_scores() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/pairwise");
    if !dir.exists() {
        eprintln!("skipped: {} is not here", dir.display());
        return;
    }
    let mut rows = Vec::new();
    let mut r = csv::Reader::from_path(dir.join("llmfao.csv")).unwrap();
    let headers = r.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (winner, left, right) = (col("winner"), col("left"), col("right"));
    for rec in r.records() {
        let rec = rec.unwrap();
        let w = match &rec[winner] {
            "left" => Winner::Left,
            "right" => Winner::Right,
            "tie" => Winner::Tie,
            other => panic!("unknown winner {other}"),
        };
        rows.push((rec[left].to_owned(), rec[right].to_owned(), w));
    }
    let c = Comparisons::from_rows(rows);
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
