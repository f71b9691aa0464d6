//! Bootstrap confidence interval of micro F1: resample sentences with replacement, recompute micro
//! F1 from the resampled counts, take the 2.5th and 97.5th percentiles (Efron & Tibshirani's
//! percentile method). Seeded, so an interval in a paper can be reproduced.

use serde::{Deserialize, Serialize};

use super::entity::Counts;
use crate::rng::SplitMix64;

/// A 95% interval with how it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
    pub iterations: usize,
    pub seed: u64,
}

/// The percentile interval of micro F1 over `iterations` resamples of the sentences.
pub fn micro_f1_interval(per_sentence: &[Counts], iterations: usize, seed: u64) -> Interval {
    let n = per_sentence.len();
    if n == 0 || iterations == 0 {
        return Interval {
            iterations,
            seed,
            ..Interval::default()
        };
    }
    let mut rng = SplitMix64::new(seed);
    let mut f1s: Vec<f64> = (0..iterations)
        .map(|_| {
            let mut total = Counts::default();
            for _ in 0..n {
                total.add(per_sentence[rng.below(n)]);
            }
            total.prf().f1
        })
        .collect();
    f1s.sort_by(f64::total_cmp);
    Interval {
        low: percentile(&f1s, 2.5),
        high: percentile(&f1s, 97.5),
        iterations,
        seed,
    }
}

/// Linear interpolation between closest ranks (numpy's default `percentile`).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_brackets_the_estimate_and_is_seeded() {
        let per: Vec<Counts> = (0..200)
            .map(|i| Counts {
                correct: usize::from(i % 4 != 0),
                predicted: 1,
                gold: 1,
            })
            .collect();
        let a = micro_f1_interval(&per, 500, 42);
        assert!(a.low < 0.75 && 0.75 < a.high, "{a:?}");
        assert!(a.high - a.low < 0.2);
        assert_eq!(a, micro_f1_interval(&per, 500, 42));
        assert_ne!(a, micro_f1_interval(&per, 500, 43));
    }

    #[test]
    fn percentile_interpolates() {
        assert_eq!(percentile(&[0.0, 1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(percentile(&[0.0, 10.0], 25.0), 2.5);
    }
}
