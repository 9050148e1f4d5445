//! Answers as dense indices, built once from `(item, worker, label)` text.

use std::collections::HashMap;

/// A set of answers. Items, workers and labels are kept in order of first
/// appearance, except labels, which are sorted so that every choice made
/// "by label order" is the same whatever the order of the input.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    /// Item names.
    pub items: Vec<String>,
    /// Worker names.
    pub workers: Vec<String>,
    /// Label names, sorted.
    pub labels: Vec<String>,
    /// `(item, worker, label)` indices.
    pub triples: Vec<(usize, usize, usize)>,
}

impl Answers {
    /// Builds the index from `(item, worker, label)` rows.
    pub fn from_rows<I, S>(rows: I) -> Self
    where
        I: IntoIterator<Item = (S, S, S)>,
        S: AsRef<str>,
    {
        let mut items = Vec::new();
        let mut workers = Vec::new();
        let mut item_ix: HashMap<String, usize> = HashMap::new();
        let mut worker_ix: HashMap<String, usize> = HashMap::new();
        let mut raw = Vec::new();
        for (i, w, l) in rows {
            let ii = *item_ix.entry(i.as_ref().to_owned()).or_insert_with(|| {
                items.push(i.as_ref().to_owned());
                items.len() - 1
            });
            let wi = *worker_ix.entry(w.as_ref().to_owned()).or_insert_with(|| {
                workers.push(w.as_ref().to_owned());
                workers.len() - 1
            });
            raw.push((ii, wi, l.as_ref().to_owned()));
        }
        let mut labels: Vec<String> = raw.iter().map(|(_, _, l)| l.clone()).collect();
        labels.sort();
        labels.dedup();
        let label_ix: HashMap<&str, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let triples = raw
            .iter()
            .map(|(i, w, l)| (*i, *w, label_ix[l.as_str()]))
            .collect();
        Self {
            items,
            workers,
            labels,
            triples,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_and_items_keep_their_order() {
        let a = Answers::from_rows([("q2", "w1", "b"), ("q1", "w1", "a"), ("q2", "w2", "a")]);
        assert_eq!(a.items, ["q2", "q1"]);
        assert_eq!(a.labels, ["a", "b"]);
        assert_eq!(a.triples, [(0, 0, 1), (1, 0, 0), (0, 1, 0)]);
        assert_eq!(a.counts(), vec![vec![1.0, 1.0], vec![1.0, 0.0]]);
    }
}
