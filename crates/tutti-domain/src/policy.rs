//! When answers make a label, and how many more people a task may go to.
//!
//! A job's [`Policy`] is Cymphony's: workers answer under k-of-n agreement
//! (a label wins as soon as `k` answers agree, and at most `n` answers are
//! collected; if none reaches `k` the task is `undecided`), and optionally
//! stewards answer under their own l-of-m agreement, counted apart from the
//! workers. Whichever side agrees first writes the label.
//!
//! [`Policy::evaluate`] turns a task's [`Tally`] (votes so far and leases
//! still out) into an [`Evaluation`]: the outcome, and for each side how many
//! further leases ("slots") the task may be handed out on. Slots are the
//! fewest answers that could still decide the task, less the leases already
//! out, so no person is ever asked for an answer that cannot matter: with
//! k=2, n=3 a fresh task goes to two people; a third is asked only if they
//! disagree.

use crate::FieldError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The largest `n` (or `m`) a policy may ask for.
pub const MAX_REDUNDANCY: u32 = 100;
/// Default lease length: Cymphony's `annotation_time_limit` default, one hour.
pub const DEFAULT_TIME_LIMIT_SECS: u32 = 3600;
/// Shortest lease a job may set.
pub const MIN_TIME_LIMIT_SECS: u32 = 5;
/// Longest lease a job may set: a week.
pub const MAX_TIME_LIMIT_SECS: u32 = 7 * 24 * 3600;

/// k-of-n agreement: a label wins when `k` answers agree; at most `n` are
/// collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Agreement {
    /// Answers that must agree.
    pub k: u32,
    /// Most answers collected.
    pub n: u32,
}

impl Agreement {
    /// Checks `1 <= k <= n <= 100`; `k_field`/`n_field` name the fields in errors.
    pub fn parse(k: u32, n: u32, k_field: &str, n_field: &str) -> Result<Self, FieldError> {
        if k == 0 {
            return Err(FieldError::new(k_field, "must be at least 1"));
        }
        if n > MAX_REDUNDANCY {
            return Err(FieldError::new(
                n_field,
                format!("must be at most {MAX_REDUNDANCY}"),
            ));
        }
        if k > n {
            return Err(FieldError::new(
                k_field,
                format!(
                    "{k_field} ({k}) must not be greater than {n_field} ({n}): k answers must agree among at most n"
                ),
            ));
        }
        Ok(Self { k, n })
    }

    fn assess(self, votes: &Votes) -> SideState {
        if let Some((label, count)) = votes.leader()
            && count >= self.k
        {
            return SideState::Won {
                label: label.to_owned(),
                confidence: f64::from(count) / f64::from(votes.total().max(1)),
            };
        }
        let answered = votes.total();
        let remaining = self.n.saturating_sub(answered);
        let best = votes.leader().map_or(0, |(_, c)| c);
        if best + remaining < self.k {
            SideState::Impossible
        } else {
            SideState::Needs((self.k - best).min(remaining))
        }
    }
}

enum SideState {
    Won { label: String, confidence: f64 },
    Impossible,
    Needs(u32),
}

/// Adaptive redundancy for workers ("dynamic overlap"): instead of k-of-n,
/// a task takes answers one at a time while its label's posterior
/// confidence is below `confidence`, with at least `min` and at most `max`
/// answers. Each answer counts by its worker's estimated accuracy (see
/// [`Evidence`]); at `max` answers the most probable label is taken, with
/// its confidence, however low.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Adaptive {
    /// Fewest answers per task.
    pub min: u32,
    /// Most answers per task.
    pub max: u32,
    /// Posterior probability at which a task's label is taken.
    pub confidence: f64,
    /// Accuracy assumed of a worker with no record.
    pub prior_accuracy: f64,
}

/// Probabilities from log-probabilities; uniform when none is finite.
fn softmax(log: &[f64]) -> Vec<f64> {
    let max = log.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return vec![1.0 / log.len().max(1) as f64; log.len()];
    }
    let e: Vec<f64> = log.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// Shannon entropy in nats.
fn entropy(p: &[f64]) -> f64 {
    p.iter().filter(|v| **v > 0.0).map(|v| -v * v.ln()).sum()
}

/// A worker's confusion matrix as Dawid-Skene fits it: for each true
/// label, the chance of each answer they give.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Confusion(pub BTreeMap<String, BTreeMap<String, f64>>);

/// Per label, the log-likelihood of a task's worker answers if that label
/// were true: each answer adds its worker's log-probability of giving it
/// under each true label. The posterior (under uniform priors) is its
/// softmax.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Evidence(pub BTreeMap<String, f64>);

impl Evidence {
    /// The evidence of one answer `given` among `labels` by a worker right
    /// with probability `accuracy` (kept within 0.01 of 0 and 1), wrong
    /// answers spread evenly over the other labels.
    pub fn of_answer(labels: &[String], given: &str, accuracy: f64) -> Self {
        let a = accuracy.clamp(0.01, 0.99);
        let wrong = (1.0 - a) / (labels.len().max(2) - 1) as f64;
        Self(
            labels
                .iter()
                .map(|l| (l.clone(), if l == given { a.ln() } else { wrong.ln() }))
                .collect(),
        )
    }

    /// The evidence of one answer `given` among `labels` by a worker whose
    /// fitted confusion matrix, from `answers` of their answers, is
    /// `confusion`: each true label's chance that they give `given`, drawn
    /// towards the prior (right with `prior_accuracy`, wrong answers spread
    /// evenly) by [`tutti_aggregate::PRIOR_WEIGHT`] pseudo-answers, and
    /// kept at least 0.001. A worker who gives one answer whatever the
    /// truth adds next to nothing; one who confuses two labels adds little
    /// between them. A true label the fit has no row for keeps the prior.
    pub fn of_answer_by_confusion(
        labels: &[String],
        given: &str,
        confusion: &Confusion,
        answers: f64,
        prior_accuracy: f64,
    ) -> Self {
        let Some(g) = labels.iter().position(|l| l == given) else {
            return Self::of_answer(labels, given, prior_accuracy);
        };
        // The matrix in label order; a row the fit lacks stays empty,
        // which the smoothing reads as no record (the prior).
        let fitted: Vec<Vec<f64>> = labels
            .iter()
            .map(|t| match confusion.0.get(t) {
                Some(row) => labels
                    .iter()
                    .map(|a| row.get(a).copied().filter(|p| p.is_finite()).unwrap_or(0.0))
                    .collect(),
                None => Vec::new(),
            })
            .collect();
        let n = if answers.is_finite() {
            answers.max(0.0)
        } else {
            0.0
        };
        let prior =
            tutti_aggregate::prior_confusion(labels.len(), prior_accuracy.clamp(0.01, 0.99));
        let smoothed =
            tutti_aggregate::smoothed_confusion(&fitted, n, &prior, tutti_aggregate::PRIOR_WEIGHT);
        Self(
            labels
                .iter()
                .zip(&smoothed)
                .map(|(t, row)| (t.clone(), row[g].max(0.001).ln()))
                .collect(),
        )
    }

    /// Adds another answer's evidence.
    pub fn add(&mut self, other: &Evidence) {
        for (label, v) in &other.0 {
            *self.0.entry(label.clone()).or_default() += v;
        }
    }

    /// Takes an answer's evidence out again.
    pub fn subtract(&mut self, other: &Evidence) {
        for (label, v) in &other.0 {
            *self.0.entry(label.clone()).or_default() -= v;
        }
    }

    /// The posterior over `labels` under uniform priors (a label with no
    /// evidence counts 0); uniform where there is no finite evidence.
    pub fn posterior(&self, labels: &[String]) -> Vec<f64> {
        let log: Vec<f64> = labels
            .iter()
            .map(|l| self.0.get(l).copied().unwrap_or(0.0))
            .collect();
        softmax(&log)
    }

    /// What one more answer on a task with this evidence is expected to
    /// tell of its label, in nats: the entropy of its posterior less the
    /// expected entropy after the answer. `answers[g]` is the evidence the
    /// worker's answer `labels[g]` would add (see [`Evidence::of_answer`]
    /// and [`Evidence::of_answer_by_confusion`]), from which the chance of
    /// each answer follows. Zero for a worker whose answers say nothing or
    /// a task already certain; largest where the task is torn between
    /// labels this worker tells apart.
    pub fn expected_information(&self, labels: &[String], answers: &[Evidence]) -> f64 {
        let p = self.posterior(labels);
        // chance[g][t]: the worker answers labels[g] when labels[t] is true.
        let chance: Vec<Vec<f64>> = answers
            .iter()
            .map(|e| {
                labels
                    .iter()
                    .map(|t| e.0.get(t).map_or(0.0, |v| v.exp()))
                    .collect()
            })
            .collect();
        let given: Vec<f64> = chance
            .iter()
            .map(|c| c.iter().zip(&p).map(|(m, pt)| m * pt).sum())
            .collect();
        let total: f64 = given.iter().sum();
        if total.is_nan() || total <= 0.0 {
            return 0.0;
        }
        let after: f64 = chance
            .iter()
            .zip(&given)
            .filter(|(_, g)| **g > 0.0)
            .map(|(c, g)| {
                let q: Vec<f64> = c.iter().zip(&p).map(|(m, pt)| m * pt / g).collect();
                g / total * entropy(&q)
            })
            .sum();
        (entropy(&p) - after).max(0.0)
    }

    /// The most probable label and its posterior probability; ties go to
    /// the first label in order.
    pub fn best(&self) -> Option<(&str, f64)> {
        let max = self.0.values().cloned().fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return None;
        }
        let sum: f64 = self.0.values().map(|v| (v - max).exp()).sum();
        let (label, v) = self.0.iter().find(|(_, v)| **v == max)?;
        Some((label.as_str(), (v - max).exp() / sum))
    }
}

impl Adaptive {
    fn assess(self, votes: &Votes, evidence: &Evidence) -> SideState {
        let answered = votes.total();
        if answered < self.min {
            return SideState::Needs(self.min - answered);
        }
        let best = evidence.best();
        if let Some((label, confidence)) = best
            && (confidence >= self.confidence || answered >= self.max)
        {
            return SideState::Won {
                label: label.to_owned(),
                confidence,
            };
        }
        if answered >= self.max {
            SideState::Impossible
        } else {
            SideState::Needs(1)
        }
    }
}

/// Which count an answer goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Counted under k-of-n.
    Worker,
    /// Counted under the steward l-of-m.
    Steward,
}

impl Side {
    /// Lowercase name for the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Worker => "worker",
            Side::Steward => "steward",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "worker" => Some(Side::Worker),
            "steward" => Some(Side::Steward),
            _ => None,
        }
    }
}

/// Answers per label, in label order (so every derived choice is deterministic).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Votes(pub BTreeMap<String, u32>);

impl Votes {
    /// Counts one more answer.
    pub fn add(&mut self, answer: &str) {
        *self.0.entry(answer.to_owned()).or_default() += 1;
    }

    /// Takes one answer back out; a label left with none is dropped.
    pub fn remove(&mut self, answer: &str) {
        if let Some(n) = self.0.get_mut(answer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.0.remove(answer);
            }
        }
    }

    /// Number of answers.
    pub fn total(&self) -> u32 {
        self.0.values().sum()
    }

    /// The label with most votes; ties go to the label first in order.
    pub fn leader(&self) -> Option<(&str, u32)> {
        let mut best: Option<(&str, u32)> = None;
        for (label, &count) in &self.0 {
            if best.is_none_or(|(_, c)| count > c) {
                best = Some((label, count));
            }
        }
        best
    }

    /// Adds the other side's votes (for reporting all votes of a task).
    pub fn merged(&self, other: &Votes) -> Votes {
        let mut all = self.clone();
        for (label, count) in &other.0 {
            *all.0.entry(label.clone()).or_default() += count;
        }
        all
    }
}

/// A job's policy, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Policy {
    /// Workers' agreement.
    pub workers: Agreement,
    /// Stewards' agreement, counted apart; `None` counts stewards as workers.
    pub stewards: Option<Agreement>,
    /// Seconds a lease lasts before the monitor marks it abandoned.
    pub time_limit_secs: u32,
    /// How the job's answers become its final labels: `kofn` (the default)
    /// keeps the labels the agreement rule decided as answers came in; any
    /// other method re-aggregates all answers (see [`AggregationMethod`]).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "ds"))]
    pub aggregation: AggregationMethod,
    /// Control questions mixed into each worker's stream, if any.
    #[serde(default)]
    pub gold: Option<GoldPolicy>,
    /// Adaptive redundancy for workers in place of k-of-n, if set.
    #[serde(default)]
    pub adaptive: Option<Adaptive>,
}

/// Control questions ("gold", "honeypots"): tasks with a known answer,
/// served to each worker at `rate` of their tasks (the first task
/// included). A worker whose accuracy on them is below `min_accuracy` after
/// at least `min_answers` of them is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GoldPolicy {
    /// Share of a worker's tasks that are control questions, in (0, 1].
    pub rate: f64,
    /// Control answers before a worker can be stopped.
    pub min_answers: u32,
    /// Accuracy on control questions below which a worker is stopped.
    pub min_accuracy: f64,
    /// What happens to a stopped worker's answers.
    pub on_fail: OnGoldFail,
    /// Whether workers are told, on submitting a control answer, whether it
    /// was right and what the answer was.
    pub feedback: bool,
}

/// What happens to the answers of a worker stopped by control questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OnGoldFail {
    /// Their answers are taken out of every count, and the tasks they
    /// helped decide are reopened.
    Exclude,
    /// Their answers stay, and weigh by their control accuracy in weighted
    /// majority vote.
    Downweight,
}

impl GoldPolicy {
    /// Whether a worker who has given `answers` answers in the job, of
    /// which `gold_seen` on control questions, gets a control question
    /// next: the control share stays at least `rate`, counting the next.
    pub fn gold_next(&self, answers: u64, gold_seen: u64) -> bool {
        (gold_seen as f64) < ((answers + 1) as f64 * self.rate).ceil()
    }

    /// Whether `correct` of `seen` control answers stop a worker.
    pub fn fails(&self, seen: u64, correct: u64) -> bool {
        seen >= u64::from(self.min_answers) && (correct as f64) < self.min_accuracy * seen as f64
    }
}

/// A job's aggregation method: one of `tutti_aggregate::Method`'s names
/// (`mv`, `kofn`, `wmv`, `ds`, `onecoin`, `glad`, `mace`, `wawa`, `zbs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AggregationMethod(pub tutti_aggregate::Method);

impl Default for AggregationMethod {
    fn default() -> Self {
        Self(tutti_aggregate::Method::KOfN)
    }
}

impl AggregationMethod {
    /// Parses a method name; `field` names the field in the error.
    pub fn parse(name: &str, field: &str) -> Result<Self, FieldError> {
        name.parse()
            .map(Self)
            .map_err(|e: tutti_aggregate::UnknownMethod| FieldError::new(field, e.to_string()))
    }

    /// The method's short name.
    pub fn as_str(self) -> &'static str {
        self.0.as_str()
    }
}

impl Serialize for AggregationMethod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AggregationMethod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse()
            .map(Self)
            .map_err(|e: tutti_aggregate::UnknownMethod| serde::de::Error::custom(e))
    }
}

/// A task's answers so far and the leases still out, per side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Workers' answers.
    pub worker_votes: Votes,
    /// Stewards' answers.
    pub steward_votes: Votes,
    /// Workers' unexpired leases.
    pub worker_pending: u32,
    /// Stewards' unexpired leases.
    pub steward_pending: u32,
    /// Workers' answers weighed by their accuracy (adaptive redundancy).
    pub worker_evidence: Evidence,
}

/// Where a task stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Outcome {
    /// Still collecting answers.
    Open,
    /// A label won.
    Labeled {
        /// The winning answer.
        label: String,
        /// The side whose agreement decided it.
        side: Side,
        /// Agreeing answers over all answers of that side.
        confidence: f64,
    },
    /// No label can reach agreement.
    Undecided,
}

impl Outcome {
    /// The stored state name: `open`, `labeled` or `undecided`.
    pub fn state(&self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::Labeled { .. } => "labeled",
            Outcome::Undecided => "undecided",
        }
    }
}

/// The result of [`Policy::evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Where the task stands.
    pub outcome: Outcome,
    /// Further leases the task may go out on to workers.
    pub worker_slots: u32,
    /// Further leases the task may go out on to stewards.
    pub steward_slots: u32,
}

impl Policy {
    /// The side an answer of a person with a steward role counts on.
    pub fn side_for(&self, is_steward: bool) -> Side {
        if is_steward && self.stewards.is_some() {
            Side::Steward
        } else {
            Side::Worker
        }
    }

    /// Slots of a task nobody has answered yet.
    pub fn fresh(&self) -> Evaluation {
        self.evaluate(&Tally::default())
    }

    /// Decides a task from its tally.
    pub fn evaluate(&self, tally: &Tally) -> Evaluation {
        let workers = match self.adaptive {
            Some(a) => a.assess(&tally.worker_votes, &tally.worker_evidence),
            None => self.workers.assess(&tally.worker_votes),
        };
        let stewards = self.stewards.map(|a| a.assess(&tally.steward_votes));
        let won = |state: &SideState, side: Side| match state {
            SideState::Won { label, confidence } => Some(Outcome::Labeled {
                label: label.clone(),
                side,
                confidence: *confidence,
            }),
            _ => None,
        };
        let decided = won(&workers, Side::Worker)
            .or_else(|| stewards.as_ref().and_then(|s| won(s, Side::Steward)));
        if let Some(outcome) = decided {
            return Evaluation {
                outcome,
                worker_slots: 0,
                steward_slots: 0,
            };
        }
        let slots = |state: &SideState, pending: u32| match state {
            SideState::Needs(n) => n.saturating_sub(pending),
            _ => 0,
        };
        let worker_impossible = matches!(workers, SideState::Impossible);
        let steward_impossible = stewards
            .as_ref()
            .is_none_or(|s| matches!(s, SideState::Impossible));
        if worker_impossible && steward_impossible {
            return Evaluation {
                outcome: Outcome::Undecided,
                worker_slots: 0,
                steward_slots: 0,
            };
        }
        Evaluation {
            outcome: Outcome::Open,
            worker_slots: slots(&workers, tally.worker_pending),
            steward_slots: stewards
                .as_ref()
                .map_or(0, |s| slots(s, tally.steward_pending)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_questions_come_first_and_then_at_their_rate() {
        let g = GoldPolicy {
            rate: 0.25,
            min_answers: 3,
            min_accuracy: 0.7,
            on_fail: OnGoldFail::Exclude,
            feedback: true,
        };
        // Answers 0..: gold at the 1st, 5th, 9th task.
        let mut seen = 0;
        let mut served = Vec::new();
        for answers in 0..12 {
            if g.gold_next(answers, seen) {
                served.push(answers + 1);
                seen += 1;
            }
        }
        assert_eq!(served, [1, 5, 9]);
        assert!(!g.fails(2, 0), "too few control answers to judge");
        assert!(g.fails(3, 2), "2 of 3 is below 0.7");
        assert!(!g.fails(10, 7));
    }

    fn adaptive() -> Policy {
        Policy {
            adaptive: Some(Adaptive {
                min: 2,
                max: 4,
                confidence: 0.9,
                prior_accuracy: 0.7,
            }),
            ..kn(2, 4)
        }
    }

    fn weighed(answers: &[(&str, f64)]) -> Tally {
        let labels = ["No".to_owned(), "Yes".to_owned()];
        let mut t = Tally::default();
        for (a, accuracy) in answers {
            t.worker_votes.add(a);
            t.worker_evidence
                .add(&Evidence::of_answer(&labels, a, *accuracy));
        }
        t
    }

    fn confusion(rows: &[(&str, &[(&str, f64)])]) -> Confusion {
        Confusion(
            rows.iter()
                .map(|(t, r)| {
                    (
                        t.to_string(),
                        r.iter().map(|(g, p)| (g.to_string(), *p)).collect(),
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn a_confusion_matrix_weighs_an_answer_by_what_it_says_of_the_truth() {
        let labels = ["No".to_owned(), "Yes".to_owned()];
        let posterior = |e: &Evidence| {
            let (label, p) = e.best().unwrap();
            (label.to_owned(), p)
        };
        // A worker who says "Yes" whatever the truth, on 1,000 answers:
        // their "Yes" says next to nothing.
        let yes_man = confusion(&[("No", &[("Yes", 1.0)]), ("Yes", &[("Yes", 1.0)])]);
        let e = Evidence::of_answer_by_confusion(&labels, "Yes", &yes_man, 1000.0, 0.7);
        assert!((posterior(&e).1 - 0.5).abs() < 0.01, "{e:?}");
        // A careful worker's "Yes" counts as their accuracy, 0.9.
        let careful = confusion(&[
            ("No", &[("No", 0.9), ("Yes", 0.1)]),
            ("Yes", &[("No", 0.1), ("Yes", 0.9)]),
        ]);
        let e = Evidence::of_answer_by_confusion(&labels, "Yes", &careful, 1000.0, 0.7);
        let (label, p) = posterior(&e);
        assert_eq!(label, "Yes");
        assert!((p - 0.9).abs() < 0.01, "{p}");
        // With no answers behind the fit, the prior accuracy alone, as
        // the one-coin evidence of a newcomer.
        let e = Evidence::of_answer_by_confusion(&labels, "No", &yes_man, 0.0, 0.7);
        assert_eq!(e, Evidence::of_answer(&labels, "No", 0.7));
        // A row the fit never saw, or a probability of 0, stays finite.
        let e = Evidence::of_answer_by_confusion(&labels, "No", &Confusion::default(), 50.0, 0.7);
        assert_eq!(e, Evidence::of_answer(&labels, "No", 0.7));
        let e = Evidence::of_answer_by_confusion(&labels, "No", &yes_man, 1e9, 0.7);
        assert!(e.0.values().all(|v| v.is_finite()), "{e:?}");
    }

    #[test]
    fn an_answer_tells_most_where_the_task_is_torn_between_labels_the_worker_tells_apart() {
        let labels: Vec<String> = ["A", "B", "C"].iter().map(|s| s.to_string()).collect();
        let task = |given: &[&str]| {
            let mut e = Evidence::default();
            for g in given {
                e.add(&Evidence::of_answer(&labels, g, 0.8));
            }
            e
        };
        let careful: Vec<Evidence> = labels
            .iter()
            .map(|g| Evidence::of_answer(&labels, g, 0.8))
            .collect();
        let (split, agreed) = (task(&["A", "B"]), task(&["A", "A"]));
        let (torn, sure) = (
            split.expected_information(&labels, &careful),
            agreed.expected_information(&labels, &careful),
        );
        assert!(torn > sure && sure > 0.0, "{torn} {sure}");
        // Nobody has answered: as much as an answer can tell.
        let fresh = Evidence::default().expected_information(&labels, &careful);
        assert!(fresh > torn, "{fresh} {torn}");
        // A worker who mixes up A and B tells little on the A-or-B task,
        // more on one torn between A and C.
        let mixes_ab = Confusion(
            [
                ("A", [("A", 0.5), ("B", 0.5)]),
                ("B", [("A", 0.5), ("B", 0.5)]),
                ("C", [("C", 1.0), ("A", 0.0)]),
            ]
            .iter()
            .map(|(t, row)| {
                (
                    t.to_string(),
                    row.iter().map(|(g, p)| (g.to_string(), *p)).collect(),
                )
            })
            .collect(),
        );
        let mixer: Vec<Evidence> = labels
            .iter()
            .map(|g| Evidence::of_answer_by_confusion(&labels, g, &mixes_ab, 1e6, 0.7))
            .collect();
        let a_or_c = task(&["A", "C"]);
        let (ac, ab) = (
            a_or_c.expected_information(&labels, &mixer),
            split.expected_information(&labels, &mixer),
        );
        // On A-or-B it can only tell whether the task is C (6%).
        assert!(ac > 2.0 * ab, "{ac} {ab}");
        // A worker who always says A tells nothing anywhere.
        let says_a = Confusion(
            labels
                .iter()
                .map(|t| (t.clone(), [("A".to_owned(), 1.0)].into()))
                .collect(),
        );
        let parrot: Vec<Evidence> = labels
            .iter()
            .map(|g| Evidence::of_answer_by_confusion(&labels, g, &says_a, 1e6, 0.7))
            .collect();
        assert!(split.expected_information(&labels, &parrot) < 1e-3);
        let p = split.posterior(&labels);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12 && p[0] == p[1] && p[2] < p[0]);
    }

    #[test]
    fn adaptive_redundancy_asks_for_the_minimum_then_one_answer_at_a_time() {
        let p = adaptive();
        assert_eq!(p.fresh().worker_slots, 2);
        // Two agreeing answers of 0.7 workers: 0.845, not yet 0.9.
        let e = p.evaluate(&weighed(&[("Yes", 0.7), ("Yes", 0.7)]));
        assert_eq!((e.outcome.clone(), e.worker_slots), (Outcome::Open, 1));
        // Two agreeing answers of 0.9 workers: 0.988.
        let e = p.evaluate(&weighed(&[("Yes", 0.9), ("Yes", 0.9)]));
        match e.outcome {
            Outcome::Labeled {
                label, confidence, ..
            } => {
                assert_eq!(label, "Yes");
                assert!((confidence - 0.81 / 0.82).abs() < 1e-9);
            }
            other => panic!("{other:?}"),
        }
        // A split stays open until the maximum, then the likelier label
        // (the more accurate worker's) is taken with its low confidence.
        let e = p.evaluate(&weighed(&[("Yes", 0.8), ("No", 0.7), ("Yes", 0.6)]));
        assert_eq!(e.outcome, Outcome::Open);
        let e = p.evaluate(&weighed(&[
            ("Yes", 0.8),
            ("No", 0.7),
            ("Yes", 0.6),
            ("No", 0.9),
        ]));
        match e.outcome {
            Outcome::Labeled {
                label, confidence, ..
            } => {
                assert_eq!(label, "No");
                assert!(confidence < 0.9);
            }
            other => panic!("{other:?}"),
        }
    }

    fn kn(k: u32, n: u32) -> Policy {
        Policy {
            workers: Agreement::parse(k, n, "k", "n").unwrap(),
            stewards: None,
            time_limit_secs: 60,
            aggregation: AggregationMethod::default(),
            gold: None,
            adaptive: None,
        }
    }

    fn tally(worker: &[&str], pending: u32) -> Tally {
        let mut t = Tally::default();
        for a in worker {
            t.worker_votes.add(a);
        }
        t.worker_pending = pending;
        t
    }

    #[test]
    fn a_fresh_two_of_three_task_goes_to_two_people() {
        let e = kn(2, 3).fresh();
        assert_eq!(e.outcome, Outcome::Open);
        assert_eq!(e.worker_slots, 2);
        assert_eq!(e.steward_slots, 0);
    }

    #[test]
    fn two_agreeing_answers_win_under_two_of_three() {
        let e = kn(2, 3).evaluate(&tally(&["Yes", "Yes"], 0));
        assert_eq!(
            e.outcome,
            Outcome::Labeled {
                label: "Yes".into(),
                side: Side::Worker,
                confidence: 1.0
            }
        );
        assert_eq!(e.worker_slots, 0);
    }

    #[test]
    fn a_disagreement_asks_for_exactly_one_more_answer() {
        let e = kn(2, 3).evaluate(&tally(&["Yes", "No"], 0));
        assert_eq!(e.outcome, Outcome::Open);
        assert_eq!(e.worker_slots, 1);
    }

    #[test]
    fn pending_leases_use_up_slots() {
        assert_eq!(kn(2, 3).evaluate(&tally(&[], 2)).worker_slots, 0);
        assert_eq!(kn(2, 3).evaluate(&tally(&["Yes"], 1)).worker_slots, 0);
        assert_eq!(kn(2, 3).evaluate(&tally(&["Yes"], 0)).worker_slots, 1);
    }

    #[test]
    fn three_different_answers_leave_a_two_of_three_task_undecided() {
        let e = kn(2, 3).evaluate(&tally(&["A", "B", "C"], 0));
        assert_eq!(e.outcome, Outcome::Undecided);
    }

    #[test]
    fn a_task_is_undecided_as_soon_as_agreement_became_impossible() {
        // 3-of-3 with one disagreement can never reach three equal answers.
        let e = kn(3, 3).evaluate(&tally(&["A", "B"], 0));
        assert_eq!(e.outcome, Outcome::Undecided);
    }

    #[test]
    fn the_late_winner_under_two_of_three_has_two_thirds_confidence() {
        let e = kn(2, 3).evaluate(&tally(&["A", "B", "A"], 0));
        match e.outcome {
            Outcome::Labeled {
                label, confidence, ..
            } => {
                assert_eq!(label, "A");
                assert!((confidence - 2.0 / 3.0).abs() < 1e-12);
            }
            other => panic!("expected a label, got {other:?}"),
        }
    }

    #[test]
    fn k_greater_than_n_is_refused_naming_k() {
        let err = Agreement::parse(3, 2, "policy.k", "policy.n").unwrap_err();
        assert_eq!(err.field, "policy.k");
        assert!(err.message.contains("must not be greater"));
    }

    #[test]
    fn k_of_zero_is_refused() {
        assert_eq!(Agreement::parse(0, 2, "k", "n").unwrap_err().field, "k");
    }

    fn knlm() -> Policy {
        Policy {
            workers: Agreement::parse(2, 3, "k", "n").unwrap(),
            stewards: Some(Agreement::parse(1, 1, "l", "m").unwrap()),
            time_limit_secs: 60,
            aggregation: AggregationMethod::default(),
            gold: None,
            adaptive: None,
        }
    }

    #[test]
    fn a_steward_policy_gives_stewards_their_own_slots() {
        let e = knlm().fresh();
        assert_eq!((e.worker_slots, e.steward_slots), (2, 1));
    }

    #[test]
    fn one_steward_answer_decides_under_one_of_one_even_against_workers() {
        let mut t = tally(&["No"], 1);
        t.steward_votes.add("Yes");
        let e = knlm().evaluate(&t);
        assert_eq!(
            e.outcome,
            Outcome::Labeled {
                label: "Yes".into(),
                side: Side::Steward,
                confidence: 1.0
            }
        );
    }

    #[test]
    fn workers_exhausted_still_leave_the_stewards_to_decide() {
        let e = knlm().evaluate(&tally(&["A", "B", "C"], 0));
        assert_eq!(e.outcome, Outcome::Open);
        assert_eq!((e.worker_slots, e.steward_slots), (0, 1));
    }

    #[test]
    fn both_sides_exhausted_is_undecided() {
        let policy = Policy {
            stewards: Some(Agreement::parse(2, 2, "l", "m").unwrap()),
            ..knlm()
        };
        let mut t = tally(&["A", "B", "C"], 0);
        t.steward_votes.add("A");
        t.steward_votes.add("B");
        assert_eq!(policy.evaluate(&t).outcome, Outcome::Undecided);
    }

    #[test]
    fn stewards_count_as_workers_without_a_steward_policy() {
        assert_eq!(kn(2, 3).side_for(true), Side::Worker);
        assert_eq!(knlm().side_for(true), Side::Steward);
        assert_eq!(knlm().side_for(false), Side::Worker);
    }

    #[test]
    fn vote_ties_go_to_the_first_label_in_order() {
        let mut v = Votes::default();
        v.add("b");
        v.add("a");
        assert_eq!(v.leader(), Some(("a", 1)));
    }
}
