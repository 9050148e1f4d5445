//! `tutti bench answers|aggregate|comparisons|pairwise`: synthetic crowd
//! data and fit timings, for comparison with Crowd-Kit and evalica in
//! `bench/aggregate.sh`.
//!
//! The generators are seeded and deterministic. Timings cover the fit only
//! (the data already loaded); peak memory is the whole process's, read from
//! `/proc/self/status` where there is one.

use crate::aggregate::{
    LabelOrderArg, PairwiseMethod, pairwise_scores, read_answers, read_comparisons, run_method,
    write_labels, write_scores,
};
use anyhow::Context as _;
use clap::Args;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;
use tutti_aggregate::{BtOptions, EmOptions, Method};

/// Draws for synthetic data: SplitMix64, the same for the same seed.
struct Rng(tutti_aggregate::SplitMix64);

impl Rng {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0.unit()
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// `tutti bench answers`.
#[derive(Args)]
pub struct AnswersArgs {
    /// Items.
    #[arg(long, default_value_t = 100_000)]
    items: usize,
    /// Answers per item, each from a different worker.
    #[arg(long, default_value_t = 10)]
    per_item: usize,
    /// Workers.
    #[arg(long, default_value_t = 1_000)]
    workers: usize,
    /// Classes.
    #[arg(long, default_value_t = 3)]
    classes: usize,
    /// Seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Where to write question,worker,answer; the truth goes to
    /// `<out>.truth.csv`.
    #[arg(long)]
    out: PathBuf,
}

/// Writes synthetic answers: each worker has an accuracy drawn uniformly
/// from 0.5 to 0.95, and answers wrongly with a label drawn evenly from the
/// others.
pub fn answers(args: &AnswersArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.classes >= 2, "--classes must be at least 2");
    anyhow::ensure!(
        args.per_item >= 1 && args.per_item <= args.workers,
        "--per-item must be between 1 and --workers"
    );
    let mut rng = Rng(tutti_aggregate::SplitMix64::new(args.seed));
    let accuracy: Vec<f64> = (0..args.workers).map(|_| 0.5 + 0.45 * rng.unit()).collect();
    let mut out = csv::Writer::from_path(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let truth_path = args.out.with_extension("truth.csv");
    let mut truth = csv::Writer::from_path(&truth_path)
        .with_context(|| format!("creating {}", truth_path.display()))?;
    out.write_record(["question", "worker", "answer"])?;
    truth.write_record(["question", "truth"])?;
    let mut chosen = Vec::with_capacity(args.per_item);
    for item in 0..args.items {
        let t = rng.below(args.classes);
        truth.write_record([format!("q{item}"), format!("c{t}")])?;
        chosen.clear();
        while chosen.len() < args.per_item {
            let w = rng.below(args.workers);
            if !chosen.contains(&w) {
                chosen.push(w);
            }
        }
        for &w in &chosen {
            let given = if rng.unit() < accuracy[w] {
                t
            } else {
                (t + 1 + rng.below(args.classes - 1)) % args.classes
            };
            out.write_record([format!("q{item}"), format!("w{w}"), format!("c{given}")])?;
        }
    }
    out.flush()?;
    truth.flush()?;
    Ok(())
}

/// `tutti bench comparisons`.
#[derive(Args)]
pub struct ComparisonsArgs {
    /// Items.
    #[arg(long, default_value_t = 10_000)]
    items: usize,
    /// Comparisons.
    #[arg(long, default_value_t = 1_000_000)]
    comparisons: usize,
    /// Workers.
    #[arg(long, default_value_t = 1_000)]
    workers: usize,
    /// Seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Where to write worker,left,right,winner.
    #[arg(long)]
    out: PathBuf,
}

/// Writes synthetic comparisons under the Bradley-Terry model with
/// log-strengths drawn from a standard normal, pairs drawn uniformly.
pub fn comparisons(args: &ComparisonsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.items >= 2, "--items must be at least 2");
    anyhow::ensure!(args.workers >= 1, "--workers must be at least 1");
    let mut rng = Rng(tutti_aggregate::SplitMix64::new(args.seed));
    let strength: Vec<f64> = (0..args.items).map(|_| rng.normal()).collect();
    let mut out = csv::Writer::from_path(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    out.write_record(["worker", "left", "right", "winner"])?;
    for _ in 0..args.comparisons {
        let l = rng.below(args.items);
        let mut r = rng.below(args.items - 1);
        if r >= l {
            r += 1;
        }
        let p_left = 1.0 / (1.0 + (strength[r] - strength[l]).exp());
        let winner = if rng.unit() < p_left { "left" } else { "right" };
        let w = rng.below(args.workers);
        out.write_record([
            format!("w{w}"),
            format!("i{l}"),
            format!("i{r}"),
            winner.to_owned(),
        ])?;
    }
    out.flush()?;
    Ok(())
}

/// `tutti bench aggregate`.
#[derive(Args)]
pub struct FitArgs {
    /// The method.
    #[arg(long, default_value = "ds")]
    method: Method,
    /// EM iterations, all of them run (no early stop), as the reference
    /// is run.
    #[arg(long, default_value_t = 100)]
    iterations: usize,
    /// The order of labels, which breaks ties.
    #[arg(long, value_enum, default_value = "sorted")]
    label_order: LabelOrderArg,
    /// The answers (question,worker,answer).
    answers: PathBuf,
    /// Where to write question,label,confidence.
    #[arg(long)]
    out: PathBuf,
}

/// The process's peak resident memory in MB, where Linux tells it.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn report(tool_method: &str, fit: f64, iterations: usize, rows: usize) {
    let rss = peak_rss_mb().map_or("null".to_owned(), |m| format!("{m:.1}"));
    println!(
        "{{\"tool\":\"tutti\",\"method\":\"{tool_method}\",\"fit_seconds\":{fit:.4},\"peak_rss_mb\":{rss},\"iterations\":{iterations},\"rows\":{rows}}}"
    );
}

/// Loads the answers, times the fit, writes the labels, prints a JSON line.
pub fn fit(args: &FitArgs) -> anyhow::Result<()> {
    let answers = read_answers(&args.answers, None, args.label_order)?;
    let em = EmOptions {
        max_iterations: args.iterations,
        tolerance: -1.0,
    };
    let start = Instant::now();
    let result = run_method(&answers, args.method, 2, None, em)?;
    let seconds = start.elapsed().as_secs_f64();
    let mut out = csv::Writer::from_path(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    write_labels(&mut out, &answers, &result)?;
    out.flush()?;
    report(
        args.method.as_str(),
        seconds,
        result.iterations,
        answers.triples.len(),
    );
    std::io::stdout().flush()?;
    Ok(())
}

/// `tutti bench pairwise`.
#[derive(Args)]
pub struct PairwiseFitArgs {
    /// The method.
    #[arg(long, value_enum, default_value = "bt")]
    method: PairwiseMethod,
    /// The comparisons (left,right,winner and optionally worker).
    comparisons: PathBuf,
    /// Where to write item,score.
    #[arg(long)]
    out: PathBuf,
}

/// Loads the comparisons, times the fit, writes the scores, prints a JSON
/// line.
pub fn pairwise(args: &PairwiseFitArgs) -> anyhow::Result<()> {
    // Generated comparisons have winners, not grades: any scale will do.
    let c = read_comparisons(&args.comparisons, 10)?;
    let start = Instant::now();
    let scores = pairwise_scores(&c, args.method, BtOptions::default());
    let seconds = start.elapsed().as_secs_f64();
    let mut out = csv::Writer::from_path(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    write_scores(&mut out, &c, &scores)?;
    out.flush()?;
    let name = match args.method {
        PairwiseMethod::Bt => "bt",
        PairwiseMethod::NoisyBt => "noisy-bt",
    };
    report(name, seconds, 0, c.pairs.len());
    Ok(())
}
