//! Scores, as pure functions over tags and spans (no candle, no egui): entity-level P/R/F1 in
//! seqeval's two modes, KLUE's character F1, confusion matrices, error categories, the SemEval-2013
//! schema as nervaluate computes it, calibration and bootstrap intervals.
//!
//! Each function follows one reference implementation exactly, and `tests/reference_scores.rs`
//! checks them against numbers those implementations produced on perturbed real corpora.

pub mod bootstrap;
pub mod calibration;
pub mod char_f1;
pub mod confusion;
pub mod entity;
pub mod errors;
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
