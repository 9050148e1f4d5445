//! Every categorical method behind one name, for jobs and the command line
//! to choose by configuration.

use crate::{
    Aggregation, Answers, EmOptions, ZbsOptions, dawid_skene, glad, k_of_n, mace, majority_vote,
    one_coin, wawa, weighted_majority_vote, zero_based_skill,
};
use std::fmt;
use std::str::FromStr;

/// A categorical aggregation method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Majority vote (`mv`).
    MajorityVote,
    /// Cymphony's k-of-n agreement (`kofn`).
    KOfN,
    /// Majority vote weighted by given worker weights (`wmv`).
    WeightedMajority,
    /// Dawid-Skene (`ds`).
    DawidSkene,
    /// One-coin Dawid-Skene (`onecoin`).
    OneCoin,
    /// GLAD (`glad`).
    Glad,
    /// MACE (`mace`).
    Mace,
    /// Wawa (`wawa`).
    Wawa,
    /// Zero-Based Skill (`zbs`).
    ZeroBasedSkill,
}

impl Method {
    /// Every method, in the order they are documented.
    pub const ALL: [Method; 9] = [
        Method::MajorityVote,
        Method::KOfN,
        Method::WeightedMajority,
        Method::DawidSkene,
        Method::OneCoin,
        Method::Glad,
        Method::Mace,
        Method::Wawa,
        Method::ZeroBasedSkill,
    ];

    /// The short name used in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::MajorityVote => "mv",
            Method::KOfN => "kofn",
            Method::WeightedMajority => "wmv",
            Method::DawidSkene => "ds",
            Method::OneCoin => "onecoin",
            Method::Glad => "glad",
            Method::Mace => "mace",
            Method::Wawa => "wawa",
            Method::ZeroBasedSkill => "zbs",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A method name that is not one of [`Method::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMethod(pub String);

impl fmt::Display for UnknownMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
        write!(
            f,
            "unknown method {:?}; expected one of {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownMethod {}

impl FromStr for Method {
    type Err = UnknownMethod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMethod(s.to_owned()))
    }
}

/// What some methods need besides the answers.
#[derive(Debug, Clone, Default)]
pub struct MethodInputs {
    /// Agreeing answers that decide an item under [`Method::KOfN`].
    pub k: usize,
    /// Per worker (in [`Answers::workers`] order) weight, for
    /// [`Method::WeightedMajority`].
    pub weights: Option<Vec<f64>>,
    /// Stopping rules of the iterative methods (EM methods and Zero-Based
    /// Skill).
    pub em: EmOptions,
}

/// Why [`aggregate`] could not run.
#[derive(Debug, Clone, PartialEq)]
pub enum MethodError {
    /// Weighted majority vote was asked for without weights.
    MissingWeights,
    /// Weights were given for a different number of workers.
    WrongWeightCount {
        /// Workers in the answers.
        expected: usize,
        /// Weights given.
        got: usize,
    },
    /// A weight was negative, NaN or infinite.
    BadWeight {
        /// The worker's index.
        worker: usize,
    },
}

impl fmt::Display for MethodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MethodError::MissingWeights => {
                f.write_str("weighted majority vote needs a weight per worker")
            }
            MethodError::WrongWeightCount { expected, got } => {
                write!(f, "{got} weights given for {expected} workers")
            }
            MethodError::BadWeight { worker } => write!(
                f,
                "the weight of worker {worker} is not a finite number of at least 0"
            ),
        }
    }
}

impl std::error::Error for MethodError {}

/// Runs `method` on `answers`.
pub fn aggregate(
    answers: &Answers,
    method: Method,
    inputs: &MethodInputs,
) -> Result<Aggregation, MethodError> {
    Ok(match method {
        Method::MajorityVote => majority_vote(answers),
        Method::KOfN => k_of_n(answers, inputs.k),
        Method::WeightedMajority => {
            let weights = inputs.weights.as_ref().ok_or(MethodError::MissingWeights)?;
            if weights.len() != answers.workers.len() {
                return Err(MethodError::WrongWeightCount {
                    expected: answers.workers.len(),
                    got: weights.len(),
                });
            }
            if let Some(worker) = weights.iter().position(|w| !w.is_finite() || *w < 0.0) {
                return Err(MethodError::BadWeight { worker });
            }
            weighted_majority_vote(answers, weights)
        }
        Method::DawidSkene => dawid_skene(answers, inputs.em),
        Method::OneCoin => one_coin(answers, inputs.em),
        Method::Glad => glad(answers, inputs.em),
        Method::Mace => mace(answers, inputs.em),
        Method::Wawa => wawa(answers),
        Method::ZeroBasedSkill => zero_based_skill(
            answers,
            ZbsOptions {
                max_iterations: inputs.em.max_iterations,
                tolerance: inputs.em.tolerance,
                ..ZbsOptions::default()
            },
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_name_parses_back_to_itself() {
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>().unwrap(), m);
        }
        let err = "em".parse::<Method>().unwrap_err().to_string();
        assert!(err.contains("\"em\"") && err.contains("glad"), "{err}");
    }

    #[test]
    fn weighted_majority_refuses_missing_or_bad_weights() {
        let a = Answers::from_rows([("q", "w1", "a"), ("q", "w2", "b")]);
        let mut inputs = MethodInputs::default();
        assert_eq!(
            aggregate(&a, Method::WeightedMajority, &inputs),
            Err(MethodError::MissingWeights)
        );
        inputs.weights = Some(vec![1.0]);
        assert!(matches!(
            aggregate(&a, Method::WeightedMajority, &inputs),
            Err(MethodError::WrongWeightCount {
                expected: 2,
                got: 1
            })
        ));
        inputs.weights = Some(vec![1.0, f64::NAN]);
        assert_eq!(
            aggregate(&a, Method::WeightedMajority, &inputs),
            Err(MethodError::BadWeight { worker: 1 })
        );
        inputs.weights = Some(vec![1.0, 3.0]);
        let r = aggregate(&a, Method::WeightedMajority, &inputs).unwrap();
        assert_eq!(a.labels[r.labels[0]], "b");
    }
}
