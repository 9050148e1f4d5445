//! `tutti aggregate`: labels from a CSV of answers, like Crowd-Kit's
//! command line. Reads `question,worker,answer` (a header row first; the
//! shared truth-inference data sets' format) and writes
//! `question,label,confidence` to standard output; with `--pairwise bt`,
//! reads `left,right,winner` (winner `left`, `right` or `tie`) and writes
//! `item,score`, best first (with `--pairwise noisy-bt`, an optional
//! `worker` column gives each worker a skill and a position bias). A
//! `grade` column holds graded judgments, as Tournesol's -10..10 (`--scale`
//! sets the bound): a grade g counts as (scale - g) / 2 scale of a win for
//! the left item.

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tutti_aggregate::{
    Aggregation, Answers, BtOptions, CatdOptions, Comparisons, EmOptions, Method, MethodInputs,
    NumericAnswers, Winner, aggregate, bradley_terry, catd, mean, median, noisy_bradley_terry,
};

/// Pairwise methods.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PairwiseMethod {
    /// Bradley-Terry (ties count half a win for each side).
    Bt,
    /// Noisy Bradley-Terry: a skill and a position bias per worker (reads
    /// an optional `worker` column).
    NoisyBt,
}

/// How labels are ordered, which decides ties.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum LabelOrderArg {
    /// By name: results do not depend on the order of the rows.
    #[default]
    Sorted,
    /// As they first appear in the file (Crowd-Kit's convention).
    FirstSeen,
}

impl From<LabelOrderArg> for tutti_aggregate::LabelOrder {
    fn from(o: LabelOrderArg) -> Self {
        match o {
            LabelOrderArg::Sorted => Self::Sorted,
            LabelOrderArg::FirstSeen => Self::FirstSeen,
        }
    }
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
    /// Read numeric answers and write question,value: `--numeric` alone
    /// takes the mean, `--numeric=median` or `--numeric=catd` another
    /// method.
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "mean",
        conflicts_with = "pairwise"
    )]
    numeric: Option<NumericMethod>,
    /// Read pairwise comparisons (left,right,winner and optionally worker)
    /// instead of answers; writes item,score, best first. A `grade` column
    /// (from -scale, the left much better, to scale, the right much
    /// better) counts where it is filled, in place of the winner.
    #[arg(long, value_enum)]
    pairwise: Option<PairwiseMethod>,
    /// The largest grade of a graded comparison (Tournesol's is 10).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    scale: u32,
    /// The method: mv, kofn, wmv, ds, onecoin, glad, mace, wawa or zbs.
    #[arg(long, default_value = "ds")]
    method: Method,
    /// Agreeing answers that decide an item under kofn; undecided items get
    /// an empty label.
    #[arg(long, default_value_t = 2)]
    k: usize,
    /// CSV of worker,weight for wmv (workers not listed weigh 1).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The declared classes, comma-separated: an answer outside them is an
    /// error, and classes nobody chose still get a posterior.
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<String>>,
    /// The order of labels, which breaks ties (ignored with --classes,
    /// whose order is used).
    #[arg(long, value_enum, default_value = "sorted")]
    label_order: LabelOrderArg,
    /// Most EM iterations.
    #[arg(long, default_value_t = 100)]
    max_iterations: usize,
    /// EM stops when the log-likelihood changes by less.
    #[arg(long, default_value_t = 1e-5)]
    tolerance: f64,
    /// CSV with a header: question,worker,answer (or left,right,winner).
    answers: PathBuf,
}

/// A CSV file with a header row, each field trimmed of surrounding
/// spaces (so "yes" and " yes" are one answer).
fn open_csv(path: &Path) -> anyhow::Result<csv::Reader<std::fs::File>> {
    csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Reads `question,worker,answer` rows (a header row first).
pub fn read_answers(
    path: &Path,
    classes: Option<&[String]>,
    order: LabelOrderArg,
) -> anyhow::Result<Answers> {
    let mut reader = open_csv(path)?;
    let mut rec = csv::StringRecord::new();
    let mut builder = tutti_aggregate::AnswersBuilder::new(order.into());
    let mut rows = Vec::new();
    let mut line = 1;
    loop {
        line += 1;
        let more = reader
            .read_record(&mut rec)
            .with_context(|| format!("{}: line {line}", path.display()))?;
        if !more {
            break;
        }
        anyhow::ensure!(
            rec.len() >= 3,
            "{}: line {line}: expected question,worker,answer",
            path.display(),
        );
        match classes {
            // Declared classes are checked row by row below.
            Some(_) => rows.push((rec[0].to_owned(), rec[1].to_owned(), rec[2].to_owned())),
            None => builder.push(&rec[0], &rec[1], &rec[2]),
        }
    }
    anyhow::ensure!(line > 2, "{} has no answers", path.display());
    Ok(match classes {
        Some(classes) => Answers::with_classes(rows, classes).map_err(|e| {
            anyhow::anyhow!(
                "{}: line {}: answer {:?} is not one of the classes {}",
                path.display(),
                e.row + 2,
                e.label,
                classes.join(", ")
            )
        })?,
        None => builder.finish(),
    })
}

/// Reads `left,right,winner` rows, with a `worker` column if there is one
/// and a `grade` column (graded on `-scale..=scale`) if there is one; a
/// row with a grade needs no winner.
pub fn read_comparisons(path: &Path, scale: u32) -> anyhow::Result<Comparisons> {
    let mut reader = open_csv(path)?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let need = |name: &str| {
        column(name)
            .with_context(|| format!("{}: no column {name:?} in the header", path.display()))
    };
    let (left, right) = (need("left")?, need("right")?);
    let grade = column("grade");
    let winner = match grade {
        Some(_) => column("winner"),
        None => Some(need("winner")?),
    };
    let worker = column("worker");
    let mut c = Comparisons::default();
    let mut items = HashMap::new();
    let mut workers = HashMap::new();
    let mut rec = csv::StringRecord::new();
    let mut n = 0;
    loop {
        let more = reader
            .read_record(&mut rec)
            .with_context(|| format!("{}: line {}", path.display(), n + 2))?;
        if !more {
            break;
        }
        let line = || format!("{}: line {}", path.display(), n + 2);
        let graded = grade.map(|col| rec[col].trim()).filter(|g| !g.is_empty());
        let w = match (graded, winner.map(|col| &rec[col])) {
            (Some(g), _) => {
                let bound = f64::from(scale);
                let v: f64 = g
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{}: grade {g:?} is not a number", line()))?;
                anyhow::ensure!(
                    v.fract() == 0.0 && (-bound..=bound).contains(&v),
                    "{}: grade {g:?} is not a whole number from -{scale} to {scale} (set --scale)",
                    line()
                );
                Winner::Graded {
                    grade: v as i32,
                    scale,
                }
            }
            (None, Some("left")) => Winner::Left,
            (None, Some("right")) => Winner::Right,
            (None, Some("tie")) => Winner::Tie,
            (None, Some(other)) => {
                anyhow::bail!("{}: winner {other:?} is not left, right or tie", line())
            }
            (None, None) => anyhow::bail!("{}: neither a grade nor a winner", line()),
        };
        let who = worker.map_or("", |col| &rec[col]);
        c.push(&mut items, &mut workers, who, &rec[left], &rec[right], w);
        n += 1;
    }
    anyhow::ensure!(n > 0, "{} has no comparisons", path.display());
    Ok(c)
}

fn read_weights(path: &Path, answers: &Answers) -> anyhow::Result<Vec<f64>> {
    let mut reader = open_csv(path)?;
    let mut given = HashMap::new();
    for (n, rec) in reader.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: line {}", path.display(), n + 2))?;
        anyhow::ensure!(
            rec.len() >= 2,
            "{}: line {}: expected worker,weight",
            path.display(),
            n + 2
        );
        let w: f64 = rec[1]
            .trim()
            .parse()
            .ok()
            .filter(|w: &f64| w.is_finite() && *w >= 0.0)
            .with_context(|| {
                format!(
                    "{}: line {}: weight {:?} is not a number of at least 0",
                    path.display(),
                    n + 2,
                    &rec[1]
                )
            })?;
        given.insert(rec[0].to_owned(), w);
    }
    Ok(answers
        .workers
        .iter()
        .map(|w| given.get(w).copied().unwrap_or(1.0))
        .collect())
}

/// Runs `method` as the command line configures it.
pub fn run_method(
    answers: &Answers,
    method: Method,
    k: usize,
    weights: Option<Vec<f64>>,
    em: EmOptions,
) -> anyhow::Result<Aggregation> {
    aggregate(answers, method, &MethodInputs { k, weights, em }).map_err(|e| match e {
        tutti_aggregate::MethodError::MissingWeights => {
            anyhow::anyhow!("--method wmv needs --weights FILE (worker,weight)")
        }
        other => anyhow::anyhow!("{other}"),
    })
}

/// Reads, aggregates, writes.
pub fn run(args: &AggregateArgs) -> anyhow::Result<()> {
    if let Some(method) = args.pairwise {
        return run_pairwise(args, method);
    }
    if let Some(method) = args.numeric {
        return run_numeric(args, method);
    }
    let answers = read_answers(&args.answers, args.classes.as_deref(), args.label_order)?;
    let weights = args
        .weights
        .as_deref()
        .map(|p| read_weights(p, &answers))
        .transpose()?;
    let em = EmOptions {
        max_iterations: args.max_iterations,
        tolerance: args.tolerance,
    };
    let result = run_method(&answers, args.method, args.k, weights, em)?;
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    write_labels(&mut out, &answers, &result)?;
    out.flush()?;
    if !result.ties.is_empty() {
        eprintln!(
            "{} items were ties, broken by label order",
            result.ties.len()
        );
    }
    if !result.undecided.is_empty() {
        eprintln!(
            "{} items had fewer than {} agreeing answers and are undecided",
            result.undecided.len(),
            args.k
        );
    }
    let shown = |v: Option<f64>| v.map_or_else(|| "undefined".to_owned(), |v| format!("{v:.4}"));
    eprintln!(
        "agreement beyond chance: Fleiss' kappa {}, Krippendorff's alpha {}",
        shown(tutti_aggregate::fleiss_kappa(&answers)),
        shown(tutti_aggregate::krippendorff_alpha(&answers))
    );
    Ok(())
}

/// Writes `question,label,confidence`; undecided items get an empty label
/// and confidence.
pub fn write_labels<W: std::io::Write>(
    out: &mut csv::Writer<W>,
    answers: &Answers,
    result: &Aggregation,
) -> anyhow::Result<()> {
    out.write_record(["question", "label", "confidence"])?;
    let mut undecided = result.undecided.iter().peekable();
    for (i, item) in answers.items.iter().enumerate() {
        if undecided.peek() == Some(&&i) {
            undecided.next();
            out.write_record([item.as_str(), "", ""])?;
            continue;
        }
        out.write_record([
            item.as_str(),
            answers.labels[result.labels[i]].as_str(),
            &format!("{:.6}", result.confidence(i)),
        ])?;
    }
    Ok(())
}

/// Scores per item by `method`.
pub fn pairwise_scores(c: &Comparisons, method: PairwiseMethod, options: BtOptions) -> Vec<f64> {
    match method {
        PairwiseMethod::Bt => bradley_terry(c, options).0,
        PairwiseMethod::NoisyBt => noisy_bradley_terry(c, options).scores,
    }
}

fn run_pairwise(args: &AggregateArgs, method: PairwiseMethod) -> anyhow::Result<()> {
    let comparisons = read_comparisons(&args.answers, args.scale)?;
    let scores = pairwise_scores(
        &comparisons,
        method,
        BtOptions {
            tolerance: args.tolerance.min(1e-10),
            max_iterations: args.max_iterations.max(10_000),
        },
    );
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    write_scores(&mut out, &comparisons, &scores)?;
    out.flush()?;
    Ok(())
}

/// Writes `item,score`, best first.
pub fn write_scores<W: std::io::Write>(
    out: &mut csv::Writer<W>,
    c: &Comparisons,
    scores: &[f64],
) -> anyhow::Result<()> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
    out.write_record(["item", "score"])?;
    for i in order {
        out.write_record([c.items[i].as_str(), &format!("{:.12}", scores[i])])?;
    }
    Ok(())
}

fn run_numeric(args: &AggregateArgs, method: NumericMethod) -> anyhow::Result<()> {
    let mut reader = open_csv(&args.answers)?;
    let mut rows = Vec::new();
    for (n, rec) in reader.records().enumerate() {
        let line = n + 2;
        let rec = rec.with_context(|| format!("{}: line {line}", args.answers.display()))?;
        anyhow::ensure!(
            rec.len() >= 3,
            "{}: line {line}: expected question,worker,answer",
            args.answers.display()
        );
        let value: f64 = rec[2].parse().with_context(|| {
            format!(
                "{}: line {line}: {:?} is not a number",
                args.answers.display(),
                &rec[2]
            )
        })?;
        anyhow::ensure!(
            value.is_finite(),
            "{}: line {line}: {:?} is not a finite number",
            args.answers.display(),
            &rec[2]
        );
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

/// `tutti replay`.
#[derive(Args)]
pub struct ReplayArgs {
    /// CSV of question,truth: accuracy is measured on the questions listed.
    #[arg(long)]
    truth: PathBuf,
    /// Fewest answers per item.
    #[arg(long, default_value_t = 2)]
    min: usize,
    /// Most answers per item (default: all recorded).
    #[arg(long)]
    max: Option<usize>,
    /// Confidence targets to try, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.8,0.9,0.95,0.99")]
    confidence: Vec<f64>,
    /// Accuracy assumed of a worker with no record.
    #[arg(long, default_value_t = 0.7)]
    prior_accuracy: f64,
    /// Pseudo-answers of the prior accuracy in every worker's estimate.
    #[arg(long, default_value_t = tutti_aggregate::PRIOR_WEIGHT)]
    prior_weight: f64,
    /// The method that makes the final labels from the answers used.
    #[arg(long, default_value = "ds")]
    method: Method,
    /// Judge stopped items again after every refit, reopening those whose
    /// label became less certain (a live job keeps them stopped).
    #[arg(long)]
    reopen: bool,
    /// Weigh each answer once, when it is given, by its worker's one-coin
    /// accuracy then, as a live job does (rather than re-weighing every
    /// answer by Dawid-Skene confusion matrices after each refit).
    #[arg(long)]
    live: bool,
    /// Also replay this many random orders of each item's answers (seeds 1
    /// to N) and print the mean and spread: how much of a result is the
    /// luck of the recorded order.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    orders: u64,
    /// CSV with a header: question,worker,answer, in the order answered.
    answers: PathBuf,
}

fn read_truth(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let mut reader = open_csv(path)?;
    let mut truth = HashMap::new();
    for (n, rec) in reader.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: line {}", path.display(), n + 2))?;
        anyhow::ensure!(
            rec.len() >= 2,
            "{}: line {}: expected question,truth",
            path.display(),
            n + 2
        );
        truth.insert(rec[0].to_owned(), rec[1].to_owned());
    }
    Ok(truth)
}

/// The mean and (population) standard deviation of some numbers.
fn mean_sd(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let values: Vec<f64> = values.collect();
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

fn accuracy(answers: &Answers, labels: &[usize], truth: &HashMap<String, String>) -> f64 {
    let (mut hit, mut all) = (0usize, 0usize);
    for (i, item) in answers.items.iter().enumerate() {
        if let Some(t) = truth.get(item) {
            all += 1;
            hit += usize::from(labels.get(i).is_some_and(|&l| &answers.labels[l] == t));
        }
    }
    hit as f64 / all.max(1) as f64
}

/// Replays recorded answers through the adaptive-redundancy rule and prints
/// a Markdown table: answers used and accuracy per confidence target, next
/// to majority vote and the chosen method over all answers.
pub fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.confidence.iter().all(|c| *c > 0.0 && *c < 1.0),
        "--confidence: each target must be between 0 and 1"
    );
    anyhow::ensure!(
        args.prior_accuracy > 0.0 && args.prior_accuracy < 1.0,
        "--prior-accuracy must be between 0 and 1"
    );
    anyhow::ensure!(
        args.prior_weight.is_finite() && args.prior_weight >= 0.0,
        "--prior-weight must be a number of at least 0"
    );
    let answers = read_answers(&args.answers, None, LabelOrderArg::Sorted)?;
    let truth = read_truth(&args.truth)?;
    let inputs = MethodInputs::default();
    let total = answers.triples.len();
    let most = answers.answers_per_item().into_iter().max().unwrap_or(0);
    let max = args.max.unwrap_or(most);
    anyhow::ensure!(
        args.min >= 1 && args.min <= max,
        "--min must be at least 1 and at most --max"
    );
    println!(
        "| policy | answers used | share of answers | accuracy ({}) |",
        args.method
    );
    println!("| --- | ---: | ---: | ---: |");
    let mv = run_method(&answers, Method::MajorityVote, 2, None, inputs.em)?;
    println!(
        "| majority vote, all answers | {total} | 100.0% | {:.4} |",
        accuracy(&answers, &mv.labels, &truth)
    );
    let full = run_method(&answers, args.method, 2, None, inputs.em)?;
    let full_accuracy = accuracy(&answers, &full.labels, &truth);
    println!(
        "| {}, all answers | {total} | 100.0% | {full_accuracy:.4} |",
        args.method
    );
    let policy = |answers: &Answers, confidence: f64| {
        tutti_aggregate::replay(
            answers,
            tutti_aggregate::Overlap {
                min: args.min,
                max,
                confidence,
            },
            tutti_aggregate::WorkerPrior {
                accuracy: args.prior_accuracy,
                weight: args.prior_weight,
            },
            if args.reopen {
                tutti_aggregate::Settle::Reopen
            } else {
                tutti_aggregate::Settle::Once
            },
            if args.live {
                tutti_aggregate::Weighing::AtAnswer
            } else {
                tutti_aggregate::Weighing::Refit
            },
            args.method,
            &inputs,
        )
    };
    let share = |n: f64| 100.0 * n / total.max(1) as f64;
    let name = |c: f64| {
        format!(
            "adaptive{}{}: min {}, max {max}, confidence {c}, prior {} x {}",
            if args.live {
                ", weighed when given"
            } else {
                ""
            },
            if args.reopen { ", reopening" } else { "" },
            args.min,
            args.prior_accuracy,
            args.prior_weight,
        )
    };
    for &c in &args.confidence {
        let r = policy(&answers, c);
        println!(
            "| {} | {} | {:.1}% | {:.4} |",
            name(c),
            r.answers_used,
            share(r.answers_used as f64),
            accuracy(&answers, &r.labels, &truth)
        );
        // The same budget spent as a fixed overlap, for comparison.
        let per_item = r.answers_used.div_ceil(answers.items.len().max(1));
        let fixed = answers.first_per_item(per_item);
        let labels = run_method(&fixed, args.method, 2, None, inputs.em)?.labels;
        println!(
            "| fixed overlap: first {per_item} answers of each item | {} | {:.1}% | {:.4} |",
            fixed.triples.len(),
            share(fixed.triples.len() as f64),
            accuracy(&fixed, &labels, &truth)
        );
    }
    if args.orders == 0 {
        return Ok(());
    }
    // The same crowd in other orders: each item's answers shuffled, every
    // policy replayed on each order, means and standard deviations. An
    // order is drawn again from its seed where it is needed, so that many
    // orders of many answers are never all held at once.
    let orders = || (1..=args.orders).map(|seed| answers.shuffled_within_items(seed));
    println!();
    println!(
        "Over {} random orders of each item's answers (seeds 1 to {}):",
        args.orders, args.orders
    );
    println!();
    println!(
        "| policy | mean answers used | share of answers | mean accuracy | sd | orders reaching {}, all answers |",
        args.method
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let row = |policy: &str, runs: &[(usize, f64)]| {
        let used = runs.iter().map(|r| r.0 as f64).sum::<f64>() / runs.len() as f64;
        let (mean, sd) = mean_sd(runs.iter().map(|r| r.1));
        let reaching = runs.iter().filter(|r| r.1 >= full_accuracy - 1e-12).count();
        println!(
            "| {policy} | {used:.0} | {:.1}% | {mean:.4} | {sd:.4} | {:.1}% |",
            share(used),
            100.0 * reaching as f64 / runs.len().max(1) as f64
        );
        used
    };
    let mut runs = Vec::new();
    for order in orders() {
        let fewer = order.without_last_per_item();
        let labels = run_method(&fewer, args.method, 2, None, inputs.em)?.labels;
        runs.push((fewer.triples.len(), accuracy(&fewer, &labels, &truth)));
    }
    row(
        &format!(
            "{}, all answers but one random answer of each item",
            args.method
        ),
        &runs,
    );
    for &c in &args.confidence {
        let runs: Vec<(usize, f64)> = orders()
            .map(|order| {
                let r = policy(&order, c);
                (r.answers_used, accuracy(&order, &r.labels, &truth))
            })
            .collect();
        let used = row(&name(c), &runs);
        let per_item = (used / answers.items.len().max(1) as f64).ceil() as usize;
        let mut runs = Vec::new();
        for order in orders() {
            let fixed = order.first_per_item(per_item);
            let labels = run_method(&fixed, args.method, 2, None, inputs.em)?.labels;
            runs.push((fixed.triples.len(), accuracy(&fixed, &labels, &truth)));
        }
        row(
            &format!("fixed overlap: {per_item} random answers of each item"),
            &runs,
        );
    }
    Ok(())
}
