//! Turning redundant crowd answers into labels, usable on its own like
//! Crowd-Kit is for Python: no I/O, no async, plain data in and out.
//!
//! - [`Answers`]: who answered what on which item, with labels and workers
//!   interned to dense indices.
//! - [`majority_vote`]: the most frequent answer per item, ties broken by
//!   label order and reported; [`k_of_n`]: decided once `k` answers agree
//!   (Cymphony's rule), undecided otherwise.
//! - [`weighted_majority_vote`], [`wawa`] and [`zero_based_skill`]: votes
//!   weighted by worker skill, given or estimated.
//! - [`dawid_skene`] and [`one_coin`]: expectation-maximisation with a full
//!   confusion matrix per worker (Dawid and Skene, 1979) or a single
//!   accuracy per worker (one-coin), started from majority vote.
//! - [`mace`]: each worker either knows the answer or spams (Hovy et al.,
//!   2013), with a competence per worker.
//! - [`glad`]: worker ability times item easiness (Whitehill et al., 2009).
//! - [`aggregate`] runs any of them by [`Method`] name (`mv`, `kofn`, `wmv`,
//!   `ds`, `onecoin`, `glad`, `mace`, `wawa`, `zbs`).
//!
//! - [`mean`], [`median`] and [`catd`]: numeric answers.
//! - [`bradley_terry`] and [`noisy_bradley_terry`]: scores from pairwise
//!   comparisons, the latter with a skill and a position bias per worker.
//! - [`Overlap`] and [`replay`]: adaptive redundancy, asking for another
//!   answer only while an item's label is uncertain;
//!   [`Answers::shuffled_within_items`] gives the other orders the same
//!   answers could have come in, drawn by [`SplitMix64`].
//! - [`fleiss_kappa`], [`krippendorff_alpha`] and [`worker_agreement`]:
//!   agreement beyond chance, and each worker's with a consensus.
//!
//! Every categorical method returns an [`Aggregation`]: per item the label, its
//! posterior distribution, and per worker a skill (or a confusion matrix).
//! Results are deterministic for the same input.
#![deny(missing_docs)]

mod adaptive;
mod agreement;
mod answers;
mod em;
mod glad;
mod mace;
mod method;
mod numeric;
mod pairwise;
mod random;
mod vote;
mod weighted;

pub use adaptive::{
    Overlap, PRIOR_WEIGHT, Replay, Settle, Weighing, WorkerPrior, confusion_posterior,
    prior_confusion, replay, smoothed_confusion,
};
pub use agreement::{
    fleiss_kappa, fleiss_kappa_from_counts, krippendorff_alpha, krippendorff_alpha_from_counts,
    worker_agreement,
};
pub use answers::{Answers, AnswersBuilder, LabelOrder, UnknownLabel};
pub use em::{EmOptions, dawid_skene, one_coin};
pub use glad::{GLAD_M_STEPS, glad};
pub use mace::mace;
pub use method::{Method, MethodError, MethodInputs, UnknownMethod, aggregate};
pub use numeric::{CatdOptions, NotFinite, NumericAnswers, catd, mean, median};
pub use pairwise::{BtOptions, Comparisons, NoisyBt, Winner, bradley_terry, noisy_bradley_terry};
pub use random::SplitMix64;
pub use vote::{k_of_n, majority_vote};
pub use weighted::{ZbsOptions, wawa, weighted_majority_vote, zero_based_skill};

/// Per item, a probability per label, kept in one flat array (items x
/// labels): `posteriors[item]` is the item's row, `posteriors[item][label]`
/// one probability.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Posteriors {
    labels: usize,
    values: Vec<f64>,
}

impl Posteriors {
    /// From a flat array of rows of `labels` values each.
    pub fn from_flat(labels: usize, values: Vec<f64>) -> Self {
        debug_assert!(labels == 0 && values.is_empty() || values.len().is_multiple_of(labels));
        Self { labels, values }
    }

    /// From one row per item, each of `labels` values.
    pub fn from_rows(labels: usize, rows: Vec<Vec<f64>>) -> Self {
        let mut values = Vec::with_capacity(rows.len() * labels);
        for r in rows {
            values.extend(r);
        }
        Self { labels, values }
    }

    /// Items.
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.labels).unwrap_or(0)
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows, in item order.
    pub fn iter(&self) -> std::slice::ChunksExact<'_, f64> {
        self.values.chunks_exact(self.labels.max(1))
    }

    /// The flat array, items x labels.
    pub fn into_flat(self) -> Vec<f64> {
        self.values
    }

    /// One row per item, as vectors.
    pub fn to_rows(&self) -> Vec<Vec<f64>> {
        self.iter().map(<[f64]>::to_vec).collect()
    }
}

impl std::ops::Index<usize> for Posteriors {
    type Output = [f64];

    fn index(&self, item: usize) -> &[f64] {
        &self.values[item * self.labels..(item + 1) * self.labels]
    }
}

impl<'a> IntoIterator for &'a Posteriors {
    type Item = &'a [f64];
    type IntoIter = std::slice::ChunksExact<'a, f64>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The result of an aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    /// Per item (in [`Answers::items`] order): the chosen label index.
    pub labels: Vec<usize>,
    /// Per item: probability of each label (sums to 1).
    pub posteriors: Posteriors,
    /// Per worker (in [`Answers::workers`] order): estimated accuracy.
    pub skills: Vec<f64>,
    /// Per worker: `confusion[w][true][given]`, where the method has one.
    pub confusions: Option<Vec<Vec<Vec<f64>>>>,
    /// Items whose label was a tie broken by label order (see
    /// [`LabelOrder`]).
    pub ties: Vec<usize>,
    /// EM iterations run (0 for non-iterative methods).
    pub iterations: usize,
    /// Items with no decided label: under [`k_of_n`], those where no label
    /// reached `k` votes (their `labels` entry is majority vote's guess).
    /// Empty for every other method.
    pub undecided: Vec<usize>,
}

impl Aggregation {
    /// The confidence of each item's label: its posterior probability.
    pub fn confidence(&self, item: usize) -> f64 {
        self.posteriors[item][self.labels[item]]
    }
}
