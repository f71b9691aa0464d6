//! Calibration of per-token confidences: a reliability diagram (equal-width bins of confidence with
//! the accuracy inside each) and the expected calibration error (Guo et al. 2017, "On Calibration
//! of Modern Neural Networks"): `ECE = sum_b (n_b / N) |acc_b - conf_b|`.

use serde::{Deserialize, Serialize};

/// One bin of the reliability diagram, covering confidences in `[lo, hi)` (the last bin includes 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
    pub mean_confidence: f64,
    pub accuracy: f64,
}

/// Reliability bins and ECE over a set of predictions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub ece: f64,
    /// Largest gap between accuracy and confidence in a non-empty bin.
    pub mce: f64,
    pub tokens: usize,
    pub bins: Vec<Bin>,
}

/// Bins `confidence` (each in [0, 1], of the predicted label) against whether that label was right.
pub fn calibration(confidence: &[f64], correct: &[bool], n_bins: usize) -> Calibration {
    let n_bins = n_bins.max(1);
    let mut sums = vec![(0usize, 0.0f64, 0usize); n_bins];
    for (&c, &ok) in confidence.iter().zip(correct) {
        let c = if c.is_finite() {
            c.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let b = ((c * n_bins as f64) as usize).min(n_bins - 1);
        sums[b].0 += 1;
        sums[b].1 += c;
        sums[b].2 += usize::from(ok);
    }
    let total: usize = sums.iter().map(|s| s.0).sum();
    let mut out = Calibration {
        tokens: total,
        ..Calibration::default()
    };
    for (b, &(count, conf_sum, right)) in sums.iter().enumerate() {
        let (mean_confidence, accuracy) = if count == 0 {
            (0.0, 0.0)
        } else {
            (conf_sum / count as f64, right as f64 / count as f64)
        };
        if count > 0 {
            let gap = (accuracy - mean_confidence).abs();
            out.ece += gap * count as f64 / total as f64;
            out.mce = out.mce.max(gap);
        }
        out.bins.push(Bin {
            lo: b as f64 / n_bins as f64,
            hi: (b + 1) as f64 / n_bins as f64,
            count,
            mean_confidence,
            accuracy,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfectly_calibrated_has_zero_ece() {
        // Ten tokens at 0.8 confidence, eight right.
        let conf = vec![0.8; 10];
        let ok: Vec<bool> = (0..10).map(|i| i < 8).collect();
        let c = calibration(&conf, &ok, 10);
        assert!(c.ece.abs() < 1e-12);
        assert_eq!(c.bins[8].count, 10);
    }

    #[test]
    fn overconfident_gap() {
        // All at 1.0 (last bin), half right: ECE 0.5.
        let c = calibration(&[1.0, 1.0, 1.0, 1.0], &[true, false, true, false], 10);
        assert!((c.ece - 0.5).abs() < 1e-12);
        assert_eq!(c.bins[9].count, 4);
        assert_eq!(c.mce, 0.5);
    }
}
