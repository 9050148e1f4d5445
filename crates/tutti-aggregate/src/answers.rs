//! Answers as dense indices, built once from `(item, worker, label)` text.

use std::collections::HashMap;

/// A set of answers. Items, workers and labels are kept in order of first
/// appearance. Labels are sorted by name by default, so that every choice
/// made "by label order" (ties) is the same whatever the order of the
/// input; [`LabelOrder::FirstSeen`] keeps them in order of first appearance
/// instead, which is Crowd-Kit's convention; [`Answers::with_classes`] keeps
/// the declared order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    /// Item names.
    pub items: Vec<String>,
    /// Worker names.
    pub workers: Vec<String>,
    /// Label names, in [`LabelOrder`] or as declared.
    pub labels: Vec<String>,
    /// `(item, worker, label)` indices.
    pub triples: Vec<(usize, usize, usize)>,
}

/// An answer whose label is not one of the declared classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLabel {
    /// Position of the row in the input, from 0.
    pub row: usize,
    /// The label given.
    pub label: String,
}

impl std::fmt::Display for UnknownLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "row {}: label {:?} is not one of the declared classes",
            self.row, self.label
        )
    }
}

impl std::error::Error for UnknownLabel {}

impl Answers {
    /// Builds the index from `(item, worker, label)` rows where labels must
    /// be among `classes`, which become [`Answers::labels`] in the order
    /// given (classes nobody chose included, so that posteriors cover them).
    pub fn with_classes<I, S, C>(rows: I, classes: &[C]) -> Result<Self, UnknownLabel>
    where
        I: IntoIterator<Item = (S, S, S)>,
        S: AsRef<str>,
        C: AsRef<str>,
    {
        let mut labels: Vec<String> = Vec::with_capacity(classes.len());
        for c in classes {
            if !labels.iter().any(|l| l == c.as_ref()) {
                labels.push(c.as_ref().to_owned());
            }
        }
        let label_ix: HashMap<String, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i))
            .collect();
        let mut a = Self {
            labels,
            ..Self::default()
        };
        let mut item_ix: HashMap<String, usize> = HashMap::new();
        let mut worker_ix: HashMap<String, usize> = HashMap::new();
        for (row, (i, w, l)) in rows.into_iter().enumerate() {
            let Some(&li) = label_ix.get(l.as_ref()) else {
                return Err(UnknownLabel {
                    row,
                    label: l.as_ref().to_owned(),
                });
            };
            let ii = intern(&mut item_ix, &mut a.items, i.as_ref());
            let wi = intern(&mut worker_ix, &mut a.workers, w.as_ref());
            a.triples.push((ii, wi, li));
        }
        Ok(a)
    }

    /// Builds the index from `(item, worker, label)` rows.
    pub fn from_rows<I, S>(rows: I) -> Self
    where
        I: IntoIterator<Item = (S, S, S)>,
        S: AsRef<str>,
    {
        let mut b = AnswersBuilder::new(LabelOrder::Sorted);
        for (i, w, l) in rows {
            b.push(i.as_ref(), w.as_ref(), l.as_ref());
        }
        b.finish()
    }

    /// The first `n` answers of each item, in input order: the answers a
    /// fixed overlap of `n` would have collected.
    pub fn first_per_item(&self, n: usize) -> Answers {
        self.first_of_each(&vec![n; self.items.len()])
    }

    /// The first `keep[i]` answers of each item `i`, in input order.
    fn first_of_each(&self, keep: &[usize]) -> Answers {
        let mut seen = vec![0; self.items.len()];
        Answers {
            items: self.items.clone(),
            workers: self.workers.clone(),
            labels: self.labels.clone(),
            triples: self
                .triples
                .iter()
                .filter(|&&(i, _, _)| {
                    seen[i] += 1;
                    seen[i] <= keep[i]
                })
                .copied()
                .collect(),
        }
    }

    /// The same answers with each item's answers in another order, drawn
    /// from `seed` (the same seed gives the same order): an equally likely
    /// history of the same crowd. Items keep the places their answers held
    /// in the input; only which of the item's answers comes first changes.
    pub fn shuffled_within_items(&self, seed: u64) -> Answers {
        let mut random = crate::SplitMix64::new(seed);
        let mut slots: Vec<Vec<usize>> = vec![Vec::new(); self.items.len()];
        for (at, &(i, _, _)) in self.triples.iter().enumerate() {
            slots[i].push(at);
        }
        let mut triples = self.triples.clone();
        for places in &slots {
            let mut order = places.clone();
            // Fisher-Yates: every order equally likely.
            for j in (1..order.len()).rev() {
                let r = random.below(j as u64 + 1) as usize;
                order.swap(j, r);
            }
            for (&to, &from) in places.iter().zip(&order) {
                triples[to] = self.triples[from];
            }
        }
        Answers {
            items: self.items.clone(),
            workers: self.workers.clone(),
            labels: self.labels.clone(),
            triples,
        }
    }

    /// Every item's answers but its last one in input order (an item with
    /// a single answer keeps it): with [`Answers::shuffled_within_items`],
    /// all but one answer of each item drawn at random.
    pub fn without_last_per_item(&self) -> Answers {
        let mut keep = self.answers_per_item();
        for n in keep.iter_mut().filter(|n| **n > 1) {
            *n -= 1;
        }
        self.first_of_each(&keep)
    }

    /// Answers per item.
    pub fn answers_per_item(&self) -> Vec<usize> {
        let mut n = vec![0; self.items.len()];
        for &(i, _, _) in &self.triples {
            n[i] += 1;
        }
        n
    }

    /// Number of labels.
    pub fn n_labels(&self) -> usize {
        self.labels.len()
    }

    /// Votes per item and label.
    pub fn counts(&self) -> Vec<Vec<f64>> {
        let mut c = vec![vec![0.0; self.n_labels()]; self.items.len()];
        for &(i, _, l) in &self.triples {
            c[i][l] += 1.0;
        }
        c
    }
}

/// The order of labels, which decides ties.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LabelOrder {
    /// By name: results do not depend on the order of the input.
    #[default]
    Sorted,
    /// As they first appear in the input, as Crowd-Kit orders them.
    FirstSeen,
}

/// Builds [`Answers`] one row at a time, keeping only the interned names
/// and the index triples (so a large file can be read without holding its
/// rows as text).
#[derive(Debug, Default)]
pub struct AnswersBuilder {
    answers: Answers,
    item_ix: HashMap<String, usize>,
    worker_ix: HashMap<String, usize>,
    label_ix: HashMap<String, usize>,
    order: LabelOrder,
}

impl AnswersBuilder {
    /// An empty builder that will order labels by `order`.
    pub fn new(order: LabelOrder) -> Self {
        Self {
            order,
            ..Self::default()
        }
    }

    /// Adds one answer.
    pub fn push(&mut self, item: &str, worker: &str, label: &str) {
        let a = &mut self.answers;
        let i = intern(&mut self.item_ix, &mut a.items, item);
        let w = intern(&mut self.worker_ix, &mut a.workers, worker);
        let l = intern(&mut self.label_ix, &mut a.labels, label);
        a.triples.push((i, w, l));
    }

    /// The answers.
    pub fn finish(self) -> Answers {
        let mut a = self.answers;
        if self.order == LabelOrder::Sorted {
            let mut order: Vec<usize> = (0..a.labels.len()).collect();
            order.sort_by(|x, y| a.labels[*x].cmp(&a.labels[*y]));
            let mut rank = vec![0; order.len()];
            for (new, &old) in order.iter().enumerate() {
                rank[old] = new;
            }
            a.labels = order.iter().map(|&old| a.labels[old].clone()).collect();
            for t in &mut a.triples {
                t.2 = rank[t.2];
            }
        }
        a
    }
}

pub(crate) fn intern(
    index: &mut HashMap<String, usize>,
    names: &mut Vec<String>,
    name: &str,
) -> usize {
    if let Some(&i) = index.get(name) {
        return i;
    }
    names.push(name.to_owned());
    index.insert(name.to_owned(), names.len() - 1);
    names.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_and_items_keep_their_order() {
        let rows = [("q2", "w1", "b"), ("q1", "w1", "a"), ("q2", "w2", "a")];
        let a = Answers::from_rows(rows);
        assert_eq!(a.items, ["q2", "q1"]);
        assert_eq!(a.labels, ["a", "b"]);
        assert_eq!(a.triples, [(0, 0, 1), (1, 0, 0), (0, 1, 0)]);
        assert_eq!(a.counts(), vec![vec![1.0, 1.0], vec![1.0, 0.0]]);
        let mut b = AnswersBuilder::new(LabelOrder::FirstSeen);
        for (i, w, l) in rows {
            b.push(i, w, l);
        }
        let b = b.finish();
        assert_eq!(b.labels, ["b", "a"]);
        assert_eq!(b.triples, [(0, 0, 0), (1, 0, 1), (0, 1, 1)]);
    }

    #[test]
    fn shuffling_within_items_keeps_each_items_answers_and_places_and_draws_every_order_alike() {
        let rows: Vec<(String, String, String)> = (0..3)
            .flat_map(|w| {
                [
                    ("q1".to_owned(), format!("w{w}"), format!("l{w}")),
                    ("q2".to_owned(), format!("w{w}"), "x".to_owned()),
                ]
            })
            .collect();
        let a = Answers::from_rows(rows);
        let mut orders = std::collections::HashMap::new();
        for seed in 0..1200 {
            let b = a.shuffled_within_items(seed);
            assert_eq!(
                b,
                a.shuffled_within_items(seed),
                "the same seed, the same order"
            );
            let items: Vec<usize> = b.triples.iter().map(|t| t.0).collect();
            assert_eq!(items, [0, 1, 0, 1, 0, 1], "items keep their places");
            let mut sorted = b.triples.clone();
            sorted.sort_unstable();
            let mut before = a.triples.clone();
            before.sort_unstable();
            assert_eq!(sorted, before, "the same answers");
            let q1: Vec<usize> = b.triples.iter().filter(|t| t.0 == 0).map(|t| t.1).collect();
            *orders.entry(q1).or_insert(0) += 1;
        }
        // Six orders of three answers, about 200 draws each.
        assert_eq!(orders.len(), 6);
        assert!(
            orders.values().all(|&n| (150..250).contains(&n)),
            "{orders:?}"
        );
    }

    #[test]
    fn without_the_last_answer_every_item_loses_one_but_a_single_answer_stays() {
        let a = Answers::from_rows([
            ("q1", "w1", "a"),
            ("q2", "w1", "b"),
            ("q1", "w2", "b"),
            ("q1", "w3", "a"),
        ]);
        let b = a.without_last_per_item();
        assert_eq!(b.triples, [(0, 0, 0), (1, 0, 1), (0, 1, 1)]);
        assert_eq!(b.items, a.items);
    }

    #[test]
    fn the_first_answers_of_each_item_are_what_a_fixed_overlap_collects() {
        let a = Answers::from_rows([
            ("q1", "w1", "a"),
            ("q2", "w1", "b"),
            ("q1", "w2", "b"),
            ("q1", "w3", "a"),
            ("q2", "w2", "b"),
        ]);
        let two = a.first_per_item(2);
        assert_eq!(two.triples.len(), 4);
        assert!(
            !two.triples.contains(&(0, 2, 0)),
            "w3's answer on q1 was third"
        );
        assert_eq!(a.first_per_item(0).triples.len(), 0);
    }

    #[test]
    fn declared_classes_keep_their_order_and_refuse_other_labels() {
        let a = Answers::with_classes(
            [("q1", "w1", "no"), ("q1", "w2", "no")],
            &["yes", "no", "maybe"],
        )
        .unwrap();
        assert_eq!(a.labels, ["yes", "no", "maybe"]);
        assert_eq!(a.triples, [(0, 0, 1), (0, 1, 1)]);
        let err = Answers::with_classes(
            [("q1", "w1", "no"), ("q1", "w2", "perhaps")],
            &["yes", "no"],
        )
        .unwrap_err();
        assert_eq!(err.row, 1);
        assert_eq!(err.label, "perhaps");
    }
}
