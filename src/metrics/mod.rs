//! Scores, as pure functions over tags and spans (no candle, no egui): entity-level P/R/F1 in
//! seqeval's two modes, KLUE's character F1, confusion matrices, error categories, the SemEval-2013
//! schema as nervaluate computes it, calibration, bootstrap intervals and paired comparisons.
//!
//! Each function follows one reference implementation exactly, and `tests/reference_scores.rs`
//! checks them against numbers those implementations produced on perturbed real corpora.

pub mod aso;
pub mod bootstrap;
pub mod calibration;
pub mod char_f1;
pub mod confusion;
pub mod entity;
pub mod errors;
pub mod paired;
pub mod report;
pub mod semeval;

use serde::{Deserialize, Serialize};

pub use entity::{Counts, EntityScores, TypeScore, entity_scores};
pub use report::{ScoreOptions, ScoreReport, score};

/// Precision, recall and F1 as fractions in [0, 1].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Prf {
    /// seqeval's arithmetic: `p = tp / pred`, `r = tp / gold` (0 when the denominator is 0) and
    /// `f1 = 2pr / (p + r)` (0 when both are 0).
    pub fn from_counts(correct: usize, predicted: usize, gold: usize) -> Self {
        let precision = ratio(correct, predicted);
        let recall = ratio(correct, gold);
        Self {
            precision,
            recall,
            f1: harmonic(precision, recall),
        }
    }
}

/// `num / den`, or 0 when `den` is 0 (seqeval's and sklearn's `zero_division=0`).
pub fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// `2pr / (p + r)`, or 0 when `p + r` is 0.
pub fn harmonic(p: f64, r: f64) -> f64 {
    let denom = p + r;
    if denom == 0.0 {
        0.0
    } else {
        2.0 * p * r / denom
    }
}

/// The `q`th percentile (0 to 100) of ascending `sorted`, by linear interpolation between the
/// closest ranks (numpy's default `percentile`, method "linear"), or 0 when `sorted` is empty. The
/// one definition for bootstrap intervals and timing summaries alike, so their numbers compare.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates() {
        // numpy.percentile([0, 1, 2, 3, 4], 50) == 2.0; numpy.percentile([0, 10], 25) == 2.5
        assert_eq!(percentile(&[0.0, 1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(percentile(&[0.0, 10.0], 25.0), 2.5);
        // numpy.percentile([1, 2, 3, 4], 99) == 3.97
        assert!((percentile(&[1.0, 2.0, 3.0, 4.0], 99.0) - 3.97).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
