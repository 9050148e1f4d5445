//! A human labeling job: what people are asked, what they may answer, the
//! instructions they read and the [`Policy`] that turns answers into labels.
//!
//! [`JobSpec`] is what a requester sends; [`JobConfig::parse`] checks it once
//! and everything inside Tutti works with the checked [`JobConfig`].

use crate::FieldError;
use crate::policy::{
    Adaptive, AggregationMethod, Agreement, DEFAULT_TIME_LIMIT_SECS, GoldPolicy, MAX_REDUNDANCY,
    MAX_TIME_LIMIT_SECS, MIN_TIME_LIMIT_SECS, OnGoldFail, Policy,
};
use serde::{Deserialize, Serialize};

/// Longest job name.
pub const MAX_NAME_CHARS: usize = 200;
/// Most answer options.
pub const MAX_OPTIONS: usize = 100;
/// Longest answer option or free-text answer.
pub const MAX_ANSWER_CHARS: usize = 10_000;
/// Longest question, instructions or layout text.
pub const MAX_TEXT_CHARS: usize = 1_000_000;
/// Largest grade of a graded pairwise job (Tournesol asks -10..10).
pub const MAX_SCALE: u32 = 100;

/// The policy as sent: Cymphony's `k`, `n`, optional steward `l`, `m`, and
/// the lease length.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Worker answers that must agree for a label to win.
    pub k: u32,
    /// Most worker answers collected for one task.
    pub n: u32,
    /// Steward answers that must agree (with `m`, makes the job 3a_knlm).
    pub l: Option<u32>,
    /// Most steward answers collected for one task.
    pub m: Option<u32>,
    /// Seconds a worker has to answer a leased task (default 3600).
    pub time_limit_secs: Option<u32>,
    /// How answers become final labels: `kofn` (the default: the labels
    /// agreement decided), `mv`, `wmv`, `ds`, `onecoin`, `glad`, `mace`,
    /// `wawa` or `zbs`.
    #[serde(default)]
    pub aggregation: Option<String>,
    /// Control questions: rows imported with a `_gold` column are served to
    /// each worker at this rate, and workers who fail them are stopped.
    #[serde(default)]
    pub gold: Option<GoldSpec>,
    /// Adaptive redundancy: workers' answers are collected one at a time
    /// while the label is uncertain, in place of k-of-n.
    #[serde(default)]
    pub adaptive: Option<AdaptiveSpec>,
}

/// Adaptive redundancy as a requester sends it.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AdaptiveSpec {
    /// Posterior probability at which a task's label is taken, in (0.5, 1).
    pub confidence: f64,
    /// Fewest answers per task (default 2).
    pub min: Option<u32>,
    /// Most answers per task (default: the policy's `n`).
    pub max: Option<u32>,
    /// Accuracy assumed of a worker with no record, above chance and below
    /// 1 (default 0.7).
    pub prior_accuracy: Option<f64>,
}

impl AdaptiveSpec {
    fn parse(self, n: u32, options: usize) -> Result<Adaptive, FieldError> {
        if options < 2 {
            return Err(FieldError::new(
                "policy.adaptive",
                "needs a job with at least two answer options",
            ));
        }
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Err(FieldError::new(
                "policy.adaptive.confidence",
                "must be more than 0.5 and less than 1",
            ));
        }
        let max = self.max.unwrap_or(n);
        if !(1..=MAX_REDUNDANCY).contains(&max) {
            return Err(FieldError::new(
                "policy.adaptive.max",
                format!("must be between 1 and {MAX_REDUNDANCY}"),
            ));
        }
        let min = self.min.unwrap_or(2.min(max));
        if min == 0 || min > max {
            return Err(FieldError::new(
                "policy.adaptive.min",
                format!("must be at least 1 and at most max ({max})"),
            ));
        }
        let prior_accuracy = self.prior_accuracy.unwrap_or(0.7);
        let chance = 1.0 / options as f64;
        if !(prior_accuracy > chance && prior_accuracy < 1.0) {
            return Err(FieldError::new(
                "policy.adaptive.prior_accuracy",
                format!("must be above chance ({chance:.3}) and below 1"),
            ));
        }
        Ok(Adaptive {
            min,
            max,
            confidence: self.confidence,
            prior_accuracy,
        })
    }
}

/// Control questions as a requester sends them.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GoldSpec {
    /// Share of each worker's tasks that are control questions, in (0, 1].
    pub rate: f64,
    /// Control answers before a worker can be stopped (default 3).
    pub min_answers: Option<u32>,
    /// Accuracy below which a worker is stopped, in [0, 1] (default 0.7).
    pub min_accuracy: Option<f64>,
    /// `exclude` (default: their answers leave every count, and tasks they
    /// helped decide reopen) or `downweight`.
    pub on_fail: Option<OnGoldFail>,
    /// Whether workers see if their control answers were right (default
    /// true).
    pub feedback: Option<bool>,
}

impl GoldSpec {
    fn parse(self) -> Result<GoldPolicy, FieldError> {
        if !(self.rate > 0.0 && self.rate <= 1.0) {
            return Err(FieldError::new(
                "policy.gold.rate",
                "must be more than 0 and at most 1",
            ));
        }
        let min_answers = self.min_answers.unwrap_or(3);
        if !(1..=1000).contains(&min_answers) {
            return Err(FieldError::new(
                "policy.gold.min_answers",
                "must be between 1 and 1000",
            ));
        }
        let min_accuracy = self.min_accuracy.unwrap_or(0.7);
        if !(0.0..=1.0).contains(&min_accuracy) {
            return Err(FieldError::new(
                "policy.gold.min_accuracy",
                "must be between 0 and 1",
            ));
        }
        Ok(GoldPolicy {
            rate: self.rate,
            min_answers,
            min_accuracy,
            on_fail: self.on_fail.unwrap_or(OnGoldFail::Exclude),
            feedback: self.feedback.unwrap_or(true),
        })
    }
}

/// A job as a requester sends it.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// A name people recognise the job by.
    pub name: String,
    /// The question, with `${column}` placeholders filled from each row.
    pub question: String,
    /// The answer options; omit (and set `free_text`) for typed answers.
    #[serde(default)]
    pub answers: Option<Vec<String>>,
    /// Whether workers type their answer instead of choosing one.
    #[serde(default)]
    pub free_text: bool,
    /// Short instructions (HTML), shown above every task.
    #[serde(default)]
    pub short_instructions: String,
    /// Long instructions (HTML), shown on demand.
    #[serde(default)]
    pub long_instructions: String,
    /// Optional HTML layout of a task with `${column}` placeholders; values
    /// are escaped when filled in.
    #[serde(default)]
    pub layout: Option<String>,
    /// The agreement policy.
    pub policy: PolicySpec,
    /// Makes the job pairwise: two columns of each row shown side by side,
    /// answered `left`, `right` (or `tie`), or with a graded score.
    #[serde(default)]
    pub compare: Option<CompareSpec>,
}

/// A pairwise job as sent.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompareSpec {
    /// The column shown as the left item.
    pub left: String,
    /// The column shown as the right item.
    pub right: String,
    /// Whether `tie` is an answer (default: yes for graded jobs, no
    /// otherwise).
    #[serde(default)]
    pub tie: Option<bool>,
    /// Asks for a graded score from `-scale` (the left item is much better)
    /// to `scale` (the right one is), like Tournesol's -10..10; 0 is a tie.
    #[serde(default)]
    pub scale: Option<u32>,
}

/// A checked pairwise job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Compare {
    /// The column shown on the left.
    pub left: String,
    /// The column shown on the right.
    pub right: String,
    /// Whether `tie` is an answer.
    pub tie: bool,
    /// The largest grade, for graded jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
}

impl Compare {
    /// The answers counted towards agreement: the side that won.
    pub fn answers(&self) -> Vec<String> {
        let mut a = vec!["left".to_owned(), "right".to_owned()];
        if self.tie {
            a.push("tie".to_owned());
        }
        a
    }
}

impl CompareSpec {
    fn parse(self) -> Result<Compare, FieldError> {
        let column = |field: &str, v: String| -> Result<String, FieldError> {
            let v = v.trim().to_owned();
            if v.is_empty() {
                return Err(FieldError::new(field, "must name a column"));
            }
            Ok(v)
        };
        let left = column("compare.left", self.left)?;
        let right = column("compare.right", self.right)?;
        if left == right {
            return Err(FieldError::new(
                "compare.right",
                "must be another column than compare.left",
            ));
        }
        if let Some(s) = self.scale
            && !(1..=MAX_SCALE).contains(&s)
        {
            return Err(FieldError::new(
                "compare.scale",
                format!("must be between 1 and {MAX_SCALE}"),
            ));
        }
        Ok(Compare {
            left,
            right,
            tie: self.tie.unwrap_or(self.scale.is_some()),
            scale: self.scale,
        })
    }
}

/// An answer as it will be counted: the option (for a graded pairwise job,
/// the side its grade favours) and the grade, if one was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedAnswer {
    /// The option counted towards agreement.
    pub answer: String,
    /// A graded pairwise job's score, negative when the left item is better.
    pub grade: Option<i64>,
}

/// Who answers a job's tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Crowd {
    /// The workspace's own workers (and stewards), through Tutti's pages
    /// and API.
    #[default]
    InHouse,
    /// Amazon Mechanical Turk: the crowd connector posts each task as a HIT
    /// and brings the answers back; in-house workers are not offered it.
    MechanicalTurk,
}

impl Crowd {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Crowd::InHouse => "in_house",
            Crowd::MechanicalTurk => "mechanical_turk",
        }
    }
}

/// A checked job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobConfig {
    /// The job's name.
    pub name: String,
    /// The question template.
    pub question: String,
    /// The answer options (empty for free text).
    pub answers: Vec<String>,
    /// Whether answers are typed.
    pub free_text: bool,
    /// Short instructions (HTML).
    pub short_instructions: String,
    /// Long instructions (HTML).
    pub long_instructions: String,
    /// Layout template (HTML), if any.
    pub layout: Option<String>,
    /// The agreement policy.
    pub policy: Policy,
    /// Who answers (in-house unless a workflow sends the job to a crowd).
    #[serde(default, skip_serializing_if = "is_in_house")]
    pub crowd: Crowd,
    /// For a pairwise job, what is compared and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Compare>,
    /// For a job on Mechanical Turk: what its HITs say and who may take
    /// them (a `3a_amt` call's parameters); unset fields come from the
    /// server's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hit: Option<HitSettings>,
}

/// A Mechanical Turk job's HIT settings, as Cymphony's `3a_amt` names them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HitSettings {
    /// `title`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `keywords`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<String>,
    /// `reward_per_hit`, in US dollars (`"0.05"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<String>,
    /// `lifetime`: seconds the HIT stays listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_secs: Option<u64>,
    /// `auto_approve_and_pay_workers_in`: seconds after which an answer is
    /// approved and paid if not reviewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_approval_secs: Option<u64>,
    /// `workers_are_masters`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub masters: bool,
    /// `workers_from_location`: ISO 3166 country codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<String>,
    /// `workers_with_min_hits_approved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_hits_approved: Option<u64>,
    /// `workers_with_max_hits_approved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hits_approved: Option<u64>,
    /// `workers_with_min_approval_rate` (percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_approval_rate: Option<u64>,
    /// `workers_with_max_approval_rate` (percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_approval_rate: Option<u64>,
}

fn is_in_house(c: &Crowd) -> bool {
    *c == Crowd::InHouse
}

/// Changes to a job after it was created. The answers and agreement cannot
/// change once people have answered under them; everything a person reads can.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobPatch {
    /// New name.
    pub name: Option<String>,
    /// New question template.
    pub question: Option<String>,
    /// New short instructions.
    pub short_instructions: Option<String>,
    /// New long instructions.
    pub long_instructions: Option<String>,
    /// New layout (an empty string removes it).
    pub layout: Option<String>,
    /// New lease length for leases handed out from now on.
    pub time_limit_secs: Option<u32>,
    /// A new aggregation method for the job's final labels.
    pub aggregation: Option<String>,
}

fn text(field: &str, value: String, required: bool) -> Result<String, FieldError> {
    if required && value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(FieldError::new(
            field,
            format!("is longer than {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(value)
}

fn name(value: String) -> Result<String, FieldError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(FieldError::new(
            "name",
            format!("is longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

fn time_limit(value: Option<u32>) -> Result<u32, FieldError> {
    let secs = value.unwrap_or(DEFAULT_TIME_LIMIT_SECS);
    if !(MIN_TIME_LIMIT_SECS..=MAX_TIME_LIMIT_SECS).contains(&secs) {
        return Err(FieldError::new(
            "policy.time_limit_secs",
            format!("must be between {MIN_TIME_LIMIT_SECS} and {MAX_TIME_LIMIT_SECS} seconds"),
        ));
    }
    Ok(secs)
}

impl JobConfig {
    /// Checks a requester's spec.
    pub fn parse(spec: JobSpec) -> Result<Self, FieldError> {
        let name = name(spec.name)?;
        let question = text("question", spec.question, true)?;
        let compare = spec.compare.map(CompareSpec::parse).transpose()?;
        if compare.is_some() && (spec.answers.is_some() || spec.free_text) {
            return Err(FieldError::new(
                "answers",
                "a pairwise job is answered left, right or tie; leave answers and free_text out",
            ));
        }
        let answers = match (
            spec.answers.or(compare.as_ref().map(Compare::answers)),
            spec.free_text,
        ) {
            (Some(_), true) => {
                return Err(FieldError::new(
                    "answers",
                    "give either answer options or free_text: true, not both",
                ));
            }
            (None, false) => {
                return Err(FieldError::new(
                    "answers",
                    "give the answer options (or set free_text: true for typed answers)",
                ));
            }
            (None, true) => Vec::new(),
            (Some(options), false) => parse_options(options)?,
        };
        let workers = Agreement::parse(spec.policy.k, spec.policy.n, "policy.k", "policy.n")?;
        let adaptive = spec
            .policy
            .adaptive
            .map(|a| a.parse(spec.policy.n, answers.len()))
            .transpose()?;
        let stewards = match (spec.policy.l, spec.policy.m) {
            (None, None) => None,
            (Some(l), Some(m)) => Some(Agreement::parse(l, m, "policy.l", "policy.m")?),
            (Some(_), None) => {
                return Err(FieldError::new("policy.m", "is required with policy.l"));
            }
            (None, Some(_)) => {
                return Err(FieldError::new("policy.l", "is required with policy.m"));
            }
        };
        Ok(Self {
            name,
            question,
            answers,
            free_text: spec.free_text,
            short_instructions: text("short_instructions", spec.short_instructions, false)?,
            long_instructions: text("long_instructions", spec.long_instructions, false)?,
            layout: spec
                .layout
                .map(|l| text("layout", l, false))
                .transpose()?
                .filter(|l| !l.trim().is_empty()),
            policy: Policy {
                workers,
                stewards,
                time_limit_secs: time_limit(spec.policy.time_limit_secs)?,
                aggregation: match spec.policy.aggregation.as_deref() {
                    Some(m) => AggregationMethod::parse(m, "policy.aggregation")?,
                    // Adaptive redundancy weighs answers by workers'
                    // confusion matrices, which Dawid-Skene estimates.
                    None if adaptive.is_some() => {
                        AggregationMethod(tutti_aggregate::Method::DawidSkene)
                    }
                    None => AggregationMethod::default(),
                },
                gold: spec.policy.gold.map(GoldSpec::parse).transpose()?,
                adaptive,
            },
            crowd: Crowd::InHouse,
            compare,
            hit: None,
        })
    }

    /// Applies a patch, checking each changed field as [`JobConfig::parse`] would.
    pub fn apply(&mut self, patch: JobPatch) -> Result<(), FieldError> {
        if let Some(v) = patch.name {
            self.name = name(v)?;
        }
        if let Some(v) = patch.question {
            self.question = text("question", v, true)?;
        }
        if let Some(v) = patch.short_instructions {
            self.short_instructions = text("short_instructions", v, false)?;
        }
        if let Some(v) = patch.long_instructions {
            self.long_instructions = text("long_instructions", v, false)?;
        }
        if let Some(v) = patch.layout {
            self.layout = Some(text("layout", v, false)?).filter(|l| !l.trim().is_empty());
        }
        if let Some(v) = patch.time_limit_secs {
            self.policy.time_limit_secs = time_limit(Some(v))?;
        }
        if let Some(v) = patch.aggregation {
            self.policy.aggregation = AggregationMethod::parse(&v, "aggregation")?;
        }
        Ok(())
    }

    /// Checks an answer against the options (or the free-text limits, or a
    /// graded job's scale) and returns it as it will be counted.
    pub fn check_answer(&self, answer: &str) -> Result<CheckedAnswer, FieldError> {
        if let Some(scale) = self.compare.as_ref().and_then(|c| c.scale) {
            let trimmed = answer.trim();
            if let Ok(grade) = trimmed.parse::<i64>() {
                let s = i64::from(scale);
                if !(-s..=s).contains(&grade) {
                    return Err(FieldError::new(
                        "answer",
                        format!("a grade must be between -{scale} and {scale}"),
                    ));
                }
                let side = match grade.signum() {
                    -1 => "left",
                    1 => "right",
                    _ => "tie",
                };
                if !self.answers.iter().any(|o| o == side) {
                    return Err(FieldError::new(
                        "answer",
                        "0 says neither side is better, and this job asks which one is",
                    ));
                }
                return Ok(CheckedAnswer {
                    answer: side.to_owned(),
                    grade: Some(grade),
                });
            }
        }
        match self.check_option(answer) {
            Ok(answer) => Ok(CheckedAnswer {
                answer,
                grade: None,
            }),
            Err(_) if self.compare.as_ref().is_some_and(|c| c.scale.is_some()) => {
                let scale = self.compare.as_ref().and_then(|c| c.scale).unwrap_or(0);
                Err(FieldError::new(
                    "answer",
                    format!(
                        "give a grade from -{scale} (left is better) to {scale} (right is better), \
                         or one of {}",
                        self.answers.join(", ")
                    ),
                ))
            }
            Err(e) => Err(e),
        }
    }

    fn check_option(&self, answer: &str) -> Result<String, FieldError> {
        if self.free_text {
            let trimmed = answer.trim();
            if trimmed.is_empty() {
                return Err(FieldError::new("answer", "must not be empty"));
            }
            if trimmed.chars().count() > MAX_ANSWER_CHARS {
                return Err(FieldError::new(
                    "answer",
                    format!("is longer than {MAX_ANSWER_CHARS} characters"),
                ));
            }
            return Ok(trimmed.to_owned());
        }
        if self.answers.iter().any(|o| o == answer) {
            Ok(answer.to_owned())
        } else {
            Err(FieldError::new(
                "answer",
                format!(
                    "{answer:?} is not one of the job's answers: {}",
                    self.answers
                        .iter()
                        .map(|o| format!("{o:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
    }
}

fn parse_options(options: Vec<String>) -> Result<Vec<String>, FieldError> {
    if options.is_empty() {
        return Err(FieldError::new("answers", "must list at least one option"));
    }
    if options.len() > MAX_OPTIONS {
        return Err(FieldError::new(
            "answers",
            format!("may list at most {MAX_OPTIONS} options"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(options.len());
    for (i, o) in options.into_iter().enumerate() {
        let field = format!("answers[{i}]");
        let o = o.trim().to_owned();
        if o.is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
        }
        if o.chars().count() > MAX_ANSWER_CHARS {
            return Err(FieldError::new(field, "is too long"));
        }
        if out.contains(&o) {
            return Err(FieldError::new(field, format!("{o:?} is listed twice")));
        }
        out.push(o);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        serde_json::from_value(serde_json::json!({
            "name": " Persons ",
            "question": "Is ${name} a person?",
            "answers": ["Yes", "No"],
            "policy": {"k": 2, "n": 3}
        }))
        .unwrap()
    }

    #[test]
    fn a_plain_spec_parses_with_the_default_time_limit() {
        let job = JobConfig::parse(spec()).unwrap();
        assert_eq!(job.name, "Persons");
        assert_eq!(job.policy.time_limit_secs, DEFAULT_TIME_LIMIT_SECS);
        assert_eq!(job.policy.stewards, None);
    }

    #[test]
    fn an_answer_outside_the_options_is_refused_with_the_options_listed() {
        let job = JobConfig::parse(spec()).unwrap();
        let err = job.check_answer("Maybe").unwrap_err();
        assert_eq!(err.field, "answer");
        assert!(err.message.contains("\"Yes\", \"No\""));
        assert_eq!(job.check_answer("Yes").unwrap().answer, "Yes");
    }

    fn pairwise(compare: serde_json::Value) -> Result<JobConfig, FieldError> {
        JobConfig::parse(
            serde_json::from_value(serde_json::json!({
                "name": "Helpfulness",
                "question": "Which answer is more helpful?",
                "compare": compare,
                "policy": {"k": 2, "n": 3}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn a_pairwise_job_is_answered_by_side_and_ties_only_when_asked() {
        let job = pairwise(serde_json::json!({"left": "a", "right": "b"})).unwrap();
        assert_eq!(job.answers, ["left", "right"]);
        assert_eq!(job.check_answer("right").unwrap().grade, None);
        assert!(job.check_answer("tie").is_err());
        // A number is not an answer of an ungraded job.
        assert!(job.check_answer("3").is_err());
        let job = pairwise(serde_json::json!({"left": "a", "right": "b", "tie": true})).unwrap();
        assert_eq!(job.answers, ["left", "right", "tie"]);
    }

    #[test]
    fn a_graded_pairwise_answer_counts_for_the_side_its_sign_favours() {
        let job = pairwise(serde_json::json!({"left": "a", "right": "b", "scale": 10})).unwrap();
        assert_eq!(job.answers, ["left", "right", "tie"]);
        let checked = |a: &str| job.check_answer(a).map(|c| (c.answer, c.grade));
        assert_eq!(checked("-7").unwrap(), ("left".into(), Some(-7)));
        assert_eq!(checked(" 10 ").unwrap(), ("right".into(), Some(10)));
        assert_eq!(checked("0").unwrap(), ("tie".into(), Some(0)));
        assert_eq!(checked("left").unwrap(), ("left".into(), None));
        let err = job.check_answer("11").unwrap_err();
        assert_eq!(err.field, "answer");
        assert!(err.message.contains("-10 and 10"), "{}", err.message);
        let err = job.check_answer("much better").unwrap_err();
        assert!(err.message.contains("grade from -10"), "{}", err.message);
        // Without ties, 0 takes no side and is refused.
        let job =
            pairwise(serde_json::json!({"left": "a", "right": "b", "scale": 3, "tie": false}))
                .unwrap();
        assert!(job.check_answer("0").is_err());
        assert_eq!(job.check_answer("-3").unwrap().answer, "left");
    }

    #[test]
    fn a_bad_pairwise_spec_names_the_field() {
        let field = |c| pairwise(c).unwrap_err().field;
        assert_eq!(
            field(serde_json::json!({"left": "a", "right": "a"})),
            "compare.right"
        );
        assert_eq!(
            field(serde_json::json!({"left": " ", "right": "a"})),
            "compare.left"
        );
        assert_eq!(
            field(serde_json::json!({"left": "a", "right": "b", "scale": 0})),
            "compare.scale"
        );
        let mut s = spec();
        s.compare = serde_json::from_value(serde_json::json!({"left": "a", "right": "b"})).unwrap();
        assert_eq!(JobConfig::parse(s).unwrap_err().field, "answers");
    }

    #[test]
    fn options_and_free_text_together_are_refused() {
        let mut s = spec();
        s.free_text = true;
        assert_eq!(JobConfig::parse(s).unwrap_err().field, "answers");
    }

    #[test]
    fn a_repeated_option_is_named_by_its_index() {
        let mut s = spec();
        s.answers = Some(vec!["Yes".into(), "No".into(), "Yes".into()]);
        assert_eq!(JobConfig::parse(s).unwrap_err().field, "answers[2]");
    }

    #[test]
    fn l_without_m_is_refused() {
        let mut s = spec();
        s.policy.l = Some(1);
        assert_eq!(JobConfig::parse(s).unwrap_err().field, "policy.m");
    }

    #[test]
    fn free_text_answers_are_trimmed_and_must_not_be_empty() {
        let mut s = spec();
        s.answers = None;
        s.free_text = true;
        let job = JobConfig::parse(s).unwrap();
        assert_eq!(job.check_answer("  Ada  ").unwrap().answer, "Ada");
        assert!(job.check_answer("   ").is_err());
    }

    #[test]
    fn the_aggregation_method_defaults_to_k_of_n_and_an_unknown_one_is_refused() {
        let job = JobConfig::parse(spec()).unwrap();
        assert_eq!(job.policy.aggregation.as_str(), "kofn");
        let mut s = spec();
        s.policy.aggregation = Some("ds".into());
        assert_eq!(
            JobConfig::parse(s).unwrap().policy.aggregation.as_str(),
            "ds"
        );
        let mut s = spec();
        s.policy.aggregation = Some("best".into());
        let err = JobConfig::parse(s).unwrap_err();
        assert_eq!(err.field, "policy.aggregation");
        assert!(err.message.contains("glad"), "{}", err.message);
        // Configurations stored before the method existed read as k-of-n.
        let mut stored = serde_json::to_value(&job).unwrap();
        stored["policy"]
            .as_object_mut()
            .unwrap()
            .remove("aggregation");
        let old: JobConfig = serde_json::from_value(stored).unwrap();
        assert_eq!(old.policy.aggregation.as_str(), "kofn");
    }

    #[test]
    fn control_question_settings_are_checked_and_defaulted() {
        let mut s = spec();
        s.policy.gold = serde_json::from_value(serde_json::json!({"rate": 0.1})).unwrap();
        let g = JobConfig::parse(s).unwrap().policy.gold.unwrap();
        assert_eq!(
            (g.min_answers, g.min_accuracy, g.on_fail, g.feedback),
            (3, 0.7, OnGoldFail::Exclude, true)
        );
        for (gold, field) in [
            (serde_json::json!({"rate": 0.0}), "policy.gold.rate"),
            (serde_json::json!({"rate": 1.5}), "policy.gold.rate"),
            (
                serde_json::json!({"rate": 0.2, "min_accuracy": 2.0}),
                "policy.gold.min_accuracy",
            ),
            (
                serde_json::json!({"rate": 0.2, "min_answers": 0}),
                "policy.gold.min_answers",
            ),
        ] {
            let mut s = spec();
            s.policy.gold = serde_json::from_value(gold).unwrap();
            assert_eq!(JobConfig::parse(s).unwrap_err().field, field);
        }
    }

    #[test]
    fn adaptive_settings_are_checked_and_default_to_n_and_dawid_skene() {
        let mut s = spec();
        s.policy.adaptive =
            serde_json::from_value(serde_json::json!({"confidence": 0.95})).unwrap();
        let p = JobConfig::parse(s).unwrap().policy;
        let a = p.adaptive.unwrap();
        assert_eq!((a.min, a.max, a.prior_accuracy), (2, 3, 0.7));
        assert_eq!(p.aggregation.as_str(), "ds");
        for (adaptive, field) in [
            (
                serde_json::json!({"confidence": 0.5}),
                "policy.adaptive.confidence",
            ),
            (
                serde_json::json!({"confidence": 0.9, "min": 5, "max": 4}),
                "policy.adaptive.min",
            ),
            (
                serde_json::json!({"confidence": 0.9, "max": 101}),
                "policy.adaptive.max",
            ),
            (
                serde_json::json!({"confidence": 0.9, "prior_accuracy": 0.5}),
                "policy.adaptive.prior_accuracy",
            ),
        ] {
            let mut s = spec();
            s.policy.adaptive = serde_json::from_value(adaptive).unwrap();
            assert_eq!(JobConfig::parse(s).unwrap_err().field, field);
        }
        let mut s = spec();
        s.answers = None;
        s.free_text = true;
        s.policy.adaptive = serde_json::from_value(serde_json::json!({"confidence": 0.9})).unwrap();
        assert_eq!(JobConfig::parse(s).unwrap_err().field, "policy.adaptive");
    }

    #[test]
    fn a_time_limit_out_of_range_is_refused() {
        let mut s = spec();
        s.policy.time_limit_secs = Some(1);
        assert_eq!(
            JobConfig::parse(s).unwrap_err().field,
            "policy.time_limit_secs"
        );
    }

    #[test]
    fn a_patch_changes_what_people_read_and_checks_it() {
        let mut job = JobConfig::parse(spec()).unwrap();
        job.apply(JobPatch {
            short_instructions: Some("<b>Read me</b>".into()),
            layout: Some("   ".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(job.short_instructions, "<b>Read me</b>");
        job.apply(JobPatch {
            aggregation: Some("glad".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(job.policy.aggregation.as_str(), "glad");
        let err = job
            .apply(JobPatch {
                aggregation: Some("vote".into()),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(err.field, "aggregation");
        assert_eq!(job.layout, None);
        assert!(
            job.apply(JobPatch {
                name: Some(" ".into()),
                ..Default::default()
            })
            .is_err()
        );
    }
}
