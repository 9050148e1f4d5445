//! Numeric answers (a score, a count, a position): mean, median, and CATD,
//! a worker-weighted estimate that trusts workers by how close they stay
//! to the estimate, with a confidence interval that shrinks as they answer
//! more (Li et al., "A Confidence-Aware Approach for Truth Discovery on
//! Long-Tail Data", PVLDB 2014).

use std::collections::HashMap;

/// Numeric answers with items and workers interned in order of appearance.
#[derive(Debug, Clone, Default)]
pub struct NumericAnswers {
    /// Item names.
    pub items: Vec<String>,
    /// Worker names.
    pub workers: Vec<String>,
    /// `(item, worker, value)`.
    pub triples: Vec<(usize, usize, f64)>,
}

/// A numeric answer that is not a finite number (NaN or infinite), with
/// its position among the rows (0-based).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NotFinite {
    /// Index of the row.
    pub row: usize,
    /// The value.
    pub value: f64,
}

impl std::fmt::Display for NotFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "answer {} is {}, not a finite number",
            self.row + 1,
            self.value
        )
    }
}

impl std::error::Error for NotFinite {}

impl NumericAnswers {
    /// Builds the index from `(item, worker, value)` rows; a NaN or
    /// infinite value is refused, so no estimate can become NaN.
    pub fn from_rows<I, S>(rows: I) -> Result<Self, NotFinite>
    where
        I: IntoIterator<Item = (S, S, f64)>,
        S: AsRef<str>,
    {
        let mut out = Self::default();
        let mut items: HashMap<String, usize> = HashMap::new();
        let mut workers: HashMap<String, usize> = HashMap::new();
        for (i, w, v) in rows {
            let ii = *items.entry(i.as_ref().to_owned()).or_insert_with(|| {
                out.items.push(i.as_ref().to_owned());
                out.items.len() - 1
            });
            let wi = *workers.entry(w.as_ref().to_owned()).or_insert_with(|| {
                out.workers.push(w.as_ref().to_owned());
                out.workers.len() - 1
            });
            if !v.is_finite() {
                return Err(NotFinite {
                    row: out.triples.len(),
                    value: v,
                });
            }
            out.triples.push((ii, wi, v));
        }
        Ok(out)
    }

    fn per_item(&self) -> Vec<Vec<f64>> {
        let mut v = vec![Vec::new(); self.items.len()];
        for &(i, _, x) in &self.triples {
            v[i].push(x);
        }
        v
    }
}

/// The mean answer per item.
pub fn mean(answers: &NumericAnswers) -> Vec<f64> {
    answers
        .per_item()
        .iter()
        .map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64)
        .collect()
}

/// The median answer per item (the mean of the middle two for an even count).
pub fn median(answers: &NumericAnswers) -> Vec<f64> {
    answers
        .per_item()
        .into_iter()
        .map(|mut v| {
            if v.is_empty() {
                return f64::NAN;
            }
            v.sort_by(f64::total_cmp);
            let m = v.len() / 2;
            if v.len() % 2 == 1 {
                v[m]
            } else {
                (v[m - 1] + v[m]) / 2.0
            }
        })
        .collect()
}

/// Options of [`catd`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CatdOptions {
    /// Significance of the confidence interval on a worker's variance
    /// (default 0.05).
    pub alpha: f64,
    /// Most rounds (default 100).
    pub max_iterations: usize,
    /// Stop when no estimate moves by more (default 1e-6).
    pub tolerance: f64,
}

impl Default for CatdOptions {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            max_iterations: 100,
            tolerance: 1e-6,
        }
    }
}

/// The standard normal quantile (Acklam's rational approximation, error
/// below 1.2e-9).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

/// The `p` quantile of the chi-squared distribution with `k` degrees of
/// freedom (Wilson-Hilferty approximation).
fn chi2_quantile(p: f64, k: f64) -> f64 {
    let z = normal_quantile(p);
    let h = 2.0 / (9.0 * k);
    (k * (1.0 - h + z * h.sqrt()).powi(3)).max(1e-9)
}

/// CATD: start from the median, then alternate worker weights
/// `chi2(alpha/2, n_w) / sum of squared distances to the estimate` and
/// weighted means, until the estimates settle. Returns the estimates and
/// the worker weights.
pub fn catd(answers: &NumericAnswers, options: CatdOptions) -> (Vec<f64>, Vec<f64>) {
    let mut truth = median(answers);
    let n = answers.workers.len();
    let mut count = vec![0.0; n];
    for &(_, w, _) in &answers.triples {
        count[w] += 1.0;
    }
    let mut weights = vec![1.0; n];
    for _ in 0..options.max_iterations {
        let mut squared = vec![0.0; n];
        for &(i, w, x) in &answers.triples {
            squared[w] += (x - truth[i]).powi(2);
        }
        for w in 0..n {
            weights[w] = chi2_quantile(options.alpha / 2.0, count[w]) / squared[w].max(1e-9);
        }
        let mut num = vec![0.0; truth.len()];
        let mut den = vec![0.0; truth.len()];
        for &(i, w, x) in &answers.triples {
            num[i] += weights[w] * x;
            den[i] += weights[w];
        }
        let mut moved: f64 = 0.0;
        for i in 0..truth.len() {
            if den[i] > 0.0 {
                let next = num[i] / den[i];
                moved = moved.max((next - truth[i]).abs());
                truth[i] = next;
            }
        }
        if moved < options.tolerance {
            break;
        }
    }
    (truth, weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_median_of_a_skewed_item_differ() {
        let a = NumericAnswers::from_rows([
            ("q", "a", 1.0),
            ("q", "b", 2.0),
            ("q", "c", 30.0),
            ("r", "a", 4.0),
            ("r", "b", 6.0),
        ])
        .unwrap();
        assert_eq!(mean(&a), [11.0, 5.0]);
        assert_eq!(median(&a), [2.0, 5.0]);
    }

    #[test]
    fn nan_and_infinite_answers_are_refused_with_their_row() {
        let err = NumericAnswers::from_rows([("q", "a", 1.0), ("q", "b", f64::NAN)]).unwrap_err();
        assert_eq!(err.row, 1);
        assert!(NumericAnswers::from_rows([("q", "a", f64::INFINITY)]).is_err());
    }

    #[test]
    fn a_single_answer_is_its_own_estimate() {
        let a = NumericAnswers::from_rows([("q", "a", 7.5)]).unwrap();
        assert_eq!(mean(&a), [7.5]);
        assert_eq!(median(&a), [7.5]);
        assert_eq!(catd(&a, CatdOptions::default()).0, [7.5]);
    }

    #[test]
    fn quantiles_match_tables() {
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        // chi-squared, 10 degrees of freedom, 2.5%: 3.247 (the approximation gives 3.224).
        assert!((chi2_quantile(0.025, 10.0) - 3.247).abs() < 0.05);
    }

    #[test]
    fn catd_trusts_the_consistent_workers() {
        let mut rows = Vec::new();
        for q in 0..20 {
            let t = q as f64;
            rows.push((format!("q{q}"), "good1".to_owned(), t + 0.1));
            rows.push((format!("q{q}"), "good2".to_owned(), t - 0.1));
            rows.push((
                format!("q{q}"),
                "noisy".to_owned(),
                t + if q % 2 == 0 { 15.0 } else { -15.0 },
            ));
        }
        let a = NumericAnswers::from_rows(rows).unwrap();
        let (truth, weights) = catd(&a, CatdOptions::default());
        for (i, v) in truth.iter().enumerate() {
            assert!((v - i as f64).abs() < 0.5, "q{i}: {v}");
        }
        assert!(weights[0] > 100.0 * weights[2]);
    }
}
