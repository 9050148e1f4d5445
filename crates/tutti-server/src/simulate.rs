//! Simulated workers: synthetic people who work through the public API
//! exactly as a person's browser does (list my jobs, lease the next task,
//! submit), so a workflow can be tried end to end before anyone is asked.
//!
//! As in Cymphony's simulated runs, a worker answers a row that has a
//! `gold_label` column correctly with its accuracy and otherwise picks
//! another option at random; rows without one get a random option. Each
//! worker takes a while per answer, and works in bursts with gaps between
//! them. The report gives each worker's precision against `gold_label`.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How simulated workers behave.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Probability of answering a `gold_label` row correctly, in [0, 1].
    pub accuracy: f64,
    /// Mean milliseconds per answer (0 answers at once).
    #[serde(default)]
    pub answer_ms: u64,
    /// Answers per burst (0: no gaps).
    #[serde(default)]
    pub burst: u32,
    /// Milliseconds of the gap after each burst.
    #[serde(default)]
    pub gap_ms: u64,
    /// Seed of the workers' random choices.
    #[serde(default)]
    pub seed: u64,
}

impl Behaviour {
    /// Checks the numbers; the error names the field.
    pub fn check(&self) -> Result<(), tutti_domain::FieldError> {
        if !(0.0..=1.0).contains(&self.accuracy) || self.accuracy.is_nan() {
            return Err(tutti_domain::FieldError::new(
                "accuracy",
                "must be between 0 and 1",
            ));
        }
        if self.answer_ms > 600_000 || self.gap_ms > 3_600_000 {
            return Err(tutti_domain::FieldError::new(
                "answer_ms",
                "answer_ms must be at most 600000 and gap_ms at most 3600000",
            ));
        }
        Ok(())
    }
}

/// One simulated worker: their name and API token.
#[derive(Debug, Clone)]
pub struct SimWorker {
    /// Login name.
    pub name: String,
    /// Bearer token.
    pub token: String,
}

/// What one worker did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WorkerReport {
    /// Login name.
    pub name: String,
    /// Answers submitted.
    pub answers: u64,
    /// Answers to rows with a `gold_label`.
    pub with_gold: u64,
    /// Of those, how many matched it.
    pub correct: u64,
    /// `correct / with_gold`, when there were any.
    pub precision: Option<f64>,
}

/// Works `workers` against the server at `base` until `stop` is set, then
/// reports each worker.
pub async fn work(
    base: &str,
    workers: Vec<SimWorker>,
    behaviour: Behaviour,
    stop: Arc<AtomicBool>,
) -> Vec<WorkerReport> {
    let client = reqwest::Client::new();
    let mut handles = Vec::new();
    for (i, w) in workers.into_iter().enumerate() {
        let client = client.clone();
        let base = base.to_owned();
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let rng = StdRng::seed_from_u64(behaviour.seed.wrapping_add(i as u64 * 7919));
            one_worker(&client, &base, w, behaviour, rng, &stop).await
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        if let Ok(r) = h.await {
            out.push(r);
        }
    }
    out
}

async fn one_worker(
    client: &reqwest::Client,
    base: &str,
    w: SimWorker,
    b: Behaviour,
    mut rng: StdRng,
    stop: &AtomicBool,
) -> WorkerReport {
    let mut report = WorkerReport {
        name: w.name.clone(),
        ..WorkerReport::default()
    };
    let mut in_burst = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let jobs: Vec<i64> = match client
            .get(format!("{base}/api/v1/me/jobs"))
            .bearer_auth(&w.token)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| {
                    v["items"].as_array().map(|a| {
                        a.iter()
                            .filter(|j| j["open_tasks"].as_i64().unwrap_or(0) > 0)
                            .filter_map(|j| j["job_id"].as_i64())
                            .collect()
                    })
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut answered = false;
        for job in jobs {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(r) = client
                .post(format!("{base}/api/v1/jobs/{job}/next"))
                .bearer_auth(&w.token)
                .send()
                .await
            else {
                continue;
            };
            if r.status() != reqwest::StatusCode::OK {
                continue;
            }
            let Ok(task) = r.json::<Value>().await else {
                continue;
            };
            let options: Vec<String> = task["answers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let Some(id) = task["assignment"]["id"].as_i64() else {
                continue;
            };
            if options.is_empty() {
                continue;
            }
            let gold = match &task["assignment"]["data"]["gold_label"] {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            let answer = choose(&mut rng, &options, gold.as_deref(), b.accuracy);
            if b.answer_ms > 0 {
                // Exponentially distributed time per answer around the mean.
                let u: f64 = rng.random_range(1e-9..1.0);
                let ms = (-u.ln() * b.answer_ms as f64).min(b.answer_ms as f64 * 10.0);
                tokio::time::sleep(Duration::from_millis(ms as u64)).await;
            }
            let sent = client
                .post(format!("{base}/api/v1/assignments/{id}/submit"))
                .bearer_auth(&w.token)
                .json(&serde_json::json!({"answer": answer}))
                .send()
                .await;
            if matches!(&sent, Ok(r) if r.status().is_success()) {
                answered = true;
                report.answers += 1;
                if let Some(g) = &gold {
                    report.with_gold += 1;
                    if *g == answer {
                        report.correct += 1;
                    }
                }
                in_burst += 1;
                if b.burst > 0 && in_burst >= b.burst {
                    in_burst = 0;
                    tokio::time::sleep(Duration::from_millis(b.gap_ms)).await;
                }
            }
        }
        if !answered {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    report.precision =
        (report.with_gold > 0).then(|| report.correct as f64 / report.with_gold as f64);
    report
}

/// The answer a simulated worker gives: the gold label with probability
/// `accuracy` (when the row has one among the options), else one of the
/// other options at random.
pub fn choose(rng: &mut StdRng, options: &[String], gold: Option<&str>, accuracy: f64) -> String {
    match gold.filter(|g| options.iter().any(|o| o == g)) {
        Some(g) => {
            if rng.random_bool(accuracy.clamp(0.0, 1.0)) || options.len() == 1 {
                g.to_owned()
            } else {
                let others: Vec<&String> = options.iter().filter(|o| *o != g).collect();
                others[rng.random_range(0..others.len())].clone()
            }
        }
        None => options[rng.random_range(0..options.len())].clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_answer_is_right_about_as_often_as_its_accuracy() {
        let mut rng = StdRng::seed_from_u64(1);
        let options: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let n = 20_000;
        let right = (0..n)
            .filter(|_| choose(&mut rng, &options, Some("b"), 0.8) == "b")
            .count();
        let rate = right as f64 / n as f64;
        assert!((rate - 0.8).abs() < 0.01, "{rate}");
        assert!((0..100).all(|_| choose(&mut rng, &options, Some("b"), 1.0) == "b"));
        assert!((0..100).all(|_| choose(&mut rng, &options, Some("b"), 0.0) != "b"));
        // No gold among the options: any option.
        let seen: std::collections::HashSet<String> = (0..200)
            .map(|_| choose(&mut rng, &options, Some("zzz"), 1.0))
            .collect();
        assert_eq!(seen.len(), 3);
    }
}
