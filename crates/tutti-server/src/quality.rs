//! Re-aggregation: a job's submitted answers (workers' and stewards')
//! turned into labels by its chosen method, stored beside the labels its
//! agreement rule decided, with what the fit says of each worker.
//!
//! It runs on request (`POST /api/v1/jobs/{id}/aggregate`, `tutti job
//! aggregate`) and in the background for jobs whose policy names a method
//! other than `kofn`, once they have new answers. The fit itself runs on a
//! blocking thread, never on the request's executor.

use serde::Serialize;
use std::collections::HashMap;
use tutti_aggregate::{Answers, AnswersBuilder, LabelOrder, Method, MethodInputs};
use tutti_domain::ids::UserId;
use tutti_domain::policy::{AggregationMethod, Confusion};
use tutti_store::{AggregateRow, AggregationFit, Job, Store, WorkerQuality};

/// Answers read per page.
const PAGE: u32 = 10_000;

/// What a re-aggregation did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AggregationSummary {
    /// The method.
    pub method: String,
    /// Tasks with at least one answer.
    pub tasks: usize,
    /// Of those, tasks with a label.
    pub labeled: usize,
    /// Tasks the method left undecided (k-of-n only).
    pub undecided: usize,
    /// Tasks whose label was a tie broken by label order.
    pub ties: usize,
    /// Labeled tasks whose new label differs from the one agreement decided.
    pub changed: usize,
    /// Answers used.
    pub answers: usize,
    /// Workers who gave them.
    pub workers: usize,
    /// EM iterations run (0 for direct methods).
    pub iterations: usize,
    /// Agreement among the answers beyond chance, Fleiss' kappa (null when
    /// no task has two answers or every answer is the same).
    pub fleiss_kappa: Option<f64>,
    /// Krippendorff's alpha (nominal) over the same answers; null where
    /// it is undefined.
    pub krippendorff_alpha: Option<f64>,
}

/// Why a re-aggregation could not run.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] tutti_store::StoreError),
    /// The job has no answers yet.
    #[error("the job has no answers yet; aggregate once people have answered")]
    NoAnswers,
    /// The fit failed (a thread panicked or the method refused its input).
    #[error("aggregation failed: {0}")]
    Failed(String),
}

/// Re-aggregates `job` with `method` and stores the result.
pub async fn reaggregate(
    store: &dyn Store,
    job: &Job,
    method: AggregationMethod,
) -> Result<AggregationSummary, AggregateError> {
    let through = store.last_answer_id(job.id).await?;
    let mut answers = Vec::new();
    let mut after = 0;
    loop {
        let page = store.answers_page(job.id, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.assignment_id.0;
        let full = page.len() == PAGE as usize;
        // Control questions have known answers: they measure workers (see
        // the worker report) but are no items to label.
        answers.extend(
            page.into_iter()
                .filter(|a| a.assignment_id.0 <= through && !a.control)
                .map(|a| (a.seq, a.worker_id, a.annotation)),
        );
        if !full {
            break;
        }
    }
    if answers.is_empty() {
        return Err(AggregateError::NoAnswers);
    }
    let live: HashMap<i64, String> = live_labels(store, job).await?;
    // Weights for weighted majority vote: accuracy on control questions
    // where a worker has answered some (one right and one wrong answer of
    // prior, so a short record weighs little either way), else agreement
    // with the labels, else 1.
    let weights_by_worker: HashMap<UserId, f64> = store
        .worker_quality(job.id)
        .await?
        .into_iter()
        .map(|w| {
            let weight = if w.gold_seen > 0 {
                (w.gold_correct as f64 + 1.0) / (w.gold_seen as f64 + 2.0)
            } else {
                w.agreement.unwrap_or(1.0)
            };
            (w.worker_id, weight)
        })
        .collect();
    let options = job.config.answers.clone();
    let k = job.config.policy.workers.k as usize;
    let used = answers.len();
    let fitted = tokio::task::spawn_blocking(move || {
        fit(answers, &options, method.0, k, &weights_by_worker)
    })
    .await
    .map_err(|e| AggregateError::Failed(e.to_string()))??;
    let (fit_rows, skills, confusions, summary_base) = fitted;
    let changed = fit_rows
        .iter()
        .filter(|r| match (live.get(&r.seq), &r.label) {
            (Some(old), Some(new)) => old != new,
            _ => false,
        })
        .count();
    let summary = AggregationSummary {
        changed,
        answers: used,
        ..summary_base
    };
    store
        .save_aggregation(
            job.id,
            &AggregationFit {
                method: method.as_str().to_owned(),
                through_id: through,
                answers: used as i64,
                iterations: summary.iterations as i64,
                at: tutti_store::now(),
                rows: fit_rows,
                skills,
                confusions,
            },
        )
        .await?;
    Ok(summary)
}

/// The labels agreement decided, by `_id`.
async fn live_labels(
    store: &dyn Store,
    job: &Job,
) -> Result<HashMap<i64, String>, tutti_store::StoreError> {
    let mut out = HashMap::new();
    let mut after = 0;
    loop {
        let page = store.results_page(job.id, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        let full = page.len() == PAGE as usize;
        for r in page {
            if let Some(label) = r.label {
                out.insert(r.seq, label);
            }
        }
        if !full {
            break;
        }
    }
    Ok(out)
}

type Fitted = (
    Vec<AggregateRow>,
    Vec<(UserId, f64)>,
    Vec<(UserId, Confusion)>,
    AggregationSummary,
);

/// Runs the method over `(seq, worker, answer)` rows.
fn fit(
    rows: Vec<(i64, UserId, String)>,
    options: &[String],
    method: Method,
    k: usize,
    weights_by_worker: &HashMap<UserId, f64>,
) -> Result<Fitted, AggregateError> {
    let answers: Answers = if options.is_empty() {
        let mut b = AnswersBuilder::new(LabelOrder::Sorted);
        for (seq, worker, answer) in &rows {
            b.push(&seq.to_string(), &worker.0.to_string(), answer);
        }
        b.finish()
    } else {
        Answers::with_classes(
            rows.iter()
                .map(|(s, w, a)| (s.to_string(), w.0.to_string(), a.clone())),
            options,
        )
        .map_err(|e| AggregateError::Failed(e.to_string()))?
    };
    let workers: Vec<UserId> = answers
        .workers
        .iter()
        .map(|w| UserId(w.parse().unwrap_or_default()))
        .collect();
    let weights = (method == Method::WeightedMajority).then(|| {
        workers
            .iter()
            .map(|w| weights_by_worker.get(w).copied().unwrap_or(1.0))
            .collect()
    });
    let result = tutti_aggregate::aggregate(
        &answers,
        method,
        &MethodInputs {
            k,
            weights,
            ..MethodInputs::default()
        },
    )
    .map_err(|e| AggregateError::Failed(e.to_string()))?;
    let undecided: std::collections::HashSet<usize> = result.undecided.iter().copied().collect();
    let mut out = Vec::with_capacity(answers.items.len());
    for (i, seq) in answers.items.iter().enumerate() {
        let posterior: serde_json::Map<String, serde_json::Value> = answers
            .labels
            .iter()
            .zip(&result.posteriors[i])
            .map(|(l, p)| (l.clone(), serde_json::json!(p)))
            .collect();
        let decided = !undecided.contains(&i);
        out.push(AggregateRow {
            seq: seq.parse().unwrap_or_default(),
            label: decided.then(|| answers.labels[result.labels[i]].clone()),
            confidence: decided.then(|| result.confidence(i)),
            posterior: serde_json::Value::Object(posterior).to_string(),
        });
    }
    let skills = workers
        .iter()
        .copied()
        .zip(result.skills.iter().copied())
        .filter(|(_, s)| s.is_finite())
        .collect();
    let summary = AggregationSummary {
        method: method.as_str().to_owned(),
        tasks: answers.items.len(),
        labeled: answers.items.len() - undecided.len(),
        undecided: undecided.len(),
        ties: result.ties.len(),
        changed: 0,
        answers: 0,
        workers: workers.len(),
        iterations: result.iterations,
        fleiss_kappa: tutti_aggregate::fleiss_kappa(&answers),
        krippendorff_alpha: tutti_aggregate::krippendorff_alpha(&answers),
    };
    // Confusion matrices by label name: true label -> answer -> chance.
    let confusions = result
        .confusions
        .iter()
        .flatten()
        .zip(&workers)
        .map(|(matrix, worker)| {
            let rows = answers
                .labels
                .iter()
                .zip(matrix)
                .map(|(truth, row)| {
                    let given = answers.labels.iter().cloned().zip(row.iter().copied());
                    (truth.clone(), given.collect())
                })
                .collect();
            (*worker, Confusion(rows))
        })
        .collect();
    Ok((out, skills, confusions, summary))
}

/// Re-aggregates every job whose policy names a method other than `kofn`
/// and that has answers newer than its last re-aggregation, if that is at
/// least `min_age_ms` old. Returns how many jobs it re-aggregated.
pub async fn refresh(store: &dyn Store, min_age_ms: i64) -> Result<usize, AggregateError> {
    let now = tutti_store::now();
    let mut done = 0;
    for id in store.jobs_with_new_answers().await? {
        let Some(job) = store.get_job(id).await? else {
            continue;
        };
        let method = job.config.policy.aggregation;
        if method.0 == Method::KOfN {
            continue;
        }
        if let Some(info) = store.aggregation_info(id).await?
            && info.method == method.as_str()
            && now.0 - info.aggregated_at.0 < min_age_ms
        {
            continue;
        }
        match reaggregate(store, &job, method).await {
            Ok(s) => {
                tracing::info!(job = id.0, method = %s.method, tasks = s.tasks, changed = s.changed, "re-aggregated");
                done += 1;
            }
            Err(AggregateError::NoAnswers) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The worker quality report as CSV, one row per worker.
pub fn workers_csv(rows: &[WorkerQuality]) -> csv::Result<Vec<u8>> {
    let num = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "worker_id",
        "worker_name",
        "answers",
        "skipped",
        "abandoned",
        "agreement",
        "agreement_answers",
        "skill",
        "skill_method",
        "mean_seconds",
        "gold_seen",
        "gold_correct",
        "gold_accuracy",
        "stopped_at",
    ])?;
    for r in rows {
        w.write_record([
            r.worker_id.0.to_string(),
            r.worker_name.clone(),
            r.answers.to_string(),
            r.skipped.to_string(),
            r.abandoned.to_string(),
            num(r.agreement),
            r.agreement_answers.to_string(),
            num(r.skill),
            r.skill_method.clone().unwrap_or_default(),
            num(r.mean_seconds),
            r.gold_seen.to_string(),
            r.gold_correct.to_string(),
            num(r.gold_accuracy),
            r.stopped_at.map(|t| t.to_string()).unwrap_or_default(),
        ])?;
    }
    w.flush()?;
    w.into_inner().map_err(|e| e.into_error().into())
}
