//! `tutti aggregate`: labels from a CSV of answers, like Crowd-Kit's
//! command line. Reads `question,worker,answer` (a header row first; the
//! shared truth-inference data sets' format) and writes
//! `question,label,confidence` to standard output; with `--pairwise bt`,
//! reads `left,right,winner` (winner `left`, `right` or `tie`) and writes
//! `item,score`, best first.

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tutti_aggregate::{
    Answers, BtOptions, CatdOptions, Comparisons, EmOptions, NumericAnswers, Winner, ZbsOptions,
    bradley_terry, catd, dawid_skene, mace, majority_vote, mean, median, one_coin, wawa,
    zero_based_skill,
};

/// Aggregation methods.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Method {
    /// Majority vote; ties go to the first label in order.
    Mv,
    /// Dawid-Skene with a confusion matrix per worker.
    Ds,
    /// One-coin Dawid-Skene: one accuracy per worker.
    Onecoin,
    /// Majority vote weighted by each worker's agreement with majority vote.
    Wawa,
    /// Zero-Based Skill: weighted vote with skills refined until they settle.
    Zbs,
    /// MACE: each worker knows the answer or spams, with a competence.
    Mace,
}

/// Pairwise methods.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PairwiseMethod {
    /// Bradley-Terry (ties count half a win for each side).
    Bt,
}

/// Methods for numeric answers.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NumericMethod {
    /// The mean answer.
    Mean,
    /// The median answer.
    Median,
    /// CATD: a mean weighted by how close each worker stays to it.
    Catd,
}

/// `tutti aggregate`.
#[derive(Args)]
pub struct AggregateArgs {
    /// Read numeric answers and aggregate them with this method; writes
    /// question,value.
    #[arg(long, value_enum, conflicts_with = "pairwise")]
    numeric: Option<NumericMethod>,
    /// Read pairwise comparisons (left,right,winner) instead of answers.
    #[arg(long, value_enum)]
    pairwise: Option<PairwiseMethod>,
    /// The method.
    #[arg(long, value_enum, default_value = "ds")]
    method: Method,
    /// Most EM iterations.
    #[arg(long, default_value_t = 100)]
    max_iterations: usize,
    /// EM stops when the log-likelihood changes by less.
    #[arg(long, default_value_t = 1e-5)]
    tolerance: f64,
    /// CSV with a header: question,worker,answer (or left,right,winner).
    answers: PathBuf,
}

/// Reads, aggregates, writes.
pub fn run(args: &AggregateArgs) -> anyhow::Result<()> {
    if let Some(PairwiseMethod::Bt) = args.pairwise {
        return run_pairwise(args);
    }
    if let Some(method) = args.numeric {
        return run_numeric(args, method);
    }
    let mut reader = csv::Reader::from_path(&args.answers)
        .with_context(|| format!("opening {}", args.answers.display()))?;
    let mut rows = Vec::new();
    for (n, rec) in reader.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: line {}", args.answers.display(), n + 2))?;
        anyhow::ensure!(
            rec.len() >= 3,
            "{}: line {}: expected question,worker,answer",
            args.answers.display(),
            n + 2
        );
        rows.push((rec[0].to_owned(), rec[1].to_owned(), rec[2].to_owned()));
    }
    anyhow::ensure!(
        !rows.is_empty(),
        "{} has no answers",
        args.answers.display()
    );
    let answers = Answers::from_rows(rows);
    let options = EmOptions {
        max_iterations: args.max_iterations,
        tolerance: args.tolerance,
    };
    let result = match args.method {
        Method::Mv => majority_vote(&answers),
        Method::Ds => dawid_skene(&answers, options),
        Method::Onecoin => one_coin(&answers, options),
        Method::Wawa => wawa(&answers),
        Method::Mace => mace(&answers, options),
        Method::Zbs => zero_based_skill(
            &answers,
            ZbsOptions {
                max_iterations: args.max_iterations,
                tolerance: args.tolerance,
                ..ZbsOptions::default()
            },
        ),
    };
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record(["question", "label", "confidence"])?;
    for (i, item) in answers.items.iter().enumerate() {
        out.write_record([
            item.as_str(),
            answers.labels[result.labels[i]].as_str(),
            &format!("{:.6}", result.confidence(i)),
        ])?;
    }
    out.flush()?;
    if !result.ties.is_empty() {
        eprintln!(
            "{} items were ties, broken by label order",
            result.ties.len()
        );
    }
    Ok(())
}

fn run_pairwise(args: &AggregateArgs) -> anyhow::Result<()> {
    let mut reader = csv::Reader::from_path(&args.answers)
        .with_context(|| format!("opening {}", args.answers.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).with_context(|| {
            format!(
                "{}: no column {name:?} in the header",
                args.answers.display()
            )
        })
    };
    let (left, right, winner) = (column("left")?, column("right")?, column("winner")?);
    let mut rows = Vec::new();
    for (n, rec) in reader.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: line {}", args.answers.display(), n + 2))?;
        let w = match &rec[winner] {
            "left" => Winner::Left,
            "right" => Winner::Right,
            "tie" => Winner::Tie,
            other => anyhow::bail!(
                "{}: line {}: winner {other:?} is not left, right or tie",
                args.answers.display(),
                n + 2
            ),
        };
        rows.push((rec[left].to_owned(), rec[right].to_owned(), w));
    }
    anyhow::ensure!(
        !rows.is_empty(),
        "{} has no comparisons",
        args.answers.display()
    );
    let comparisons = Comparisons::from_rows(rows);
    let (scores, _) = bradley_terry(
        &comparisons,
        BtOptions {
            tolerance: args.tolerance.min(1e-10),
            max_iterations: args.max_iterations.max(10_000),
        },
    );
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record(["item", "score"])?;
    for i in order {
        out.write_record([comparisons.items[i].as_str(), &format!("{:.12}", scores[i])])?;
    }
    out.flush()?;
    Ok(())
}

fn run_numeric(args: &AggregateArgs, method: NumericMethod) -> anyhow::Result<()> {
    let mut reader = csv::Reader::from_path(&args.answers)
        .with_context(|| format!("opening {}", args.answers.display()))?;
    let mut rows = Vec::new();
    for (n, rec) in reader.records().enumerate() {
        let line = n + 2;
        let rec = rec.with_context(|| format!("{}: line {line}", args.answers.display()))?;
        anyhow::ensure!(
            rec.len() >= 3,
            "{}: line {line}: expected question,worker,answer",
            args.answers.display()
        );
        let value: f64 = rec[2].trim().parse().with_context(|| {
            format!(
                "{}: line {line}: {:?} is not a number",
                args.answers.display(),
                &rec[2]
            )
        })?;
        rows.push((rec[0].to_owned(), rec[1].to_owned(), value));
    }
    anyhow::ensure!(
        !rows.is_empty(),
        "{} has no answers",
        args.answers.display()
    );
    let answers = NumericAnswers::from_rows(rows)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.answers.display()))?;
    let values = match method {
        NumericMethod::Mean => mean(&answers),
        NumericMethod::Median => median(&answers),
        NumericMethod::Catd => {
            catd(
                &answers,
                CatdOptions {
                    max_iterations: args.max_iterations,
                    ..CatdOptions::default()
                },
            )
            .0
        }
    };
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record(["question", "value"])?;
    for (item, v) in answers.items.iter().zip(values) {
        out.write_record([item.as_str(), &format!("{v}")])?;
    }
    out.flush()?;
    Ok(())
}
