//! Bootstrap confidence interval of micro F1: resample sentences with replacement, recompute micro
//! F1 from the resampled counts, take the 2.5th and 97.5th percentiles (Efron & Tibshirani's
//! percentile method). Seeded, so an interval in a paper can be reproduced.

use serde::{Deserialize, Serialize};

use super::entity::Counts;
use super::percentile;
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
}
