//! Calibration of per-token confidences: a reliability diagram (equal-width bins of confidence with
//! the accuracy inside each) and the expected calibration error (Guo et al. 2017, "On Calibration
//! of Modern Neural Networks"): `ECE = sum_b (n_b / N) |acc_b - conf_b|`, over all tokens or per
//! entity type ([`calibration_by_type`], [`ece_by_type`]: the same bins, over the tokens of one type).

use std::collections::BTreeMap;

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
    /// ECE of the tokens of each predicted type (`O` included), where the types are known.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ece_per_type: BTreeMap<String, f64>,
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

/// [`calibration`] per entity type: the tokens are grouped by `types` (the type each token is
/// counted under, e.g. the entity type of its predicted label, `O` outside entities, as the caller
/// chooses) and each group is binned on its own, with the same `n_bins` equal-width bins, so each
/// type's ECE weighs its bins by that type's token count. Tokens past the end of the shortest of
/// the three slices are ignored, as `calibration` ignores those past the shorter of its two.
pub fn calibration_by_type(
    confidence: &[f64],
    correct: &[bool],
    types: &[String],
    n_bins: usize,
) -> BTreeMap<String, Calibration> {
    let mut groups: BTreeMap<&str, (Vec<f64>, Vec<bool>)> = BTreeMap::new();
    for ((&c, &ok), ty) in confidence.iter().zip(correct).zip(types) {
        let group = groups.entry(ty.as_str()).or_default();
        group.0.push(c);
        group.1.push(ok);
    }
    groups
        .into_iter()
        .map(|(ty, (conf, ok))| (ty.to_string(), calibration(&conf, &ok, n_bins)))
        .collect()
}

/// The expected calibration error of each entity type (see [`calibration_by_type`]).
pub fn ece_by_type(
    confidence: &[f64],
    correct: &[bool],
    types: &[String],
    n_bins: usize,
) -> BTreeMap<String, f64> {
    calibration_by_type(confidence, correct, types, n_bins)
        .into_iter()
        .map(|(ty, c)| (ty, c.ece))
        .collect()
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

    #[test]
    fn ece_per_type_by_hand() {
        // PER: 0.9 right, 0.9 wrong, 0.3 wrong -> bin 9 (n 2, conf 0.9, acc 0.5, gap 0.4) and
        //      bin 3 (n 1, conf 0.3, acc 0, gap 0.3): ECE = 2/3 * 0.4 + 1/3 * 0.3 = 11/30.
        // LOC: 0.6 right, 0.7 right -> bins 6 and 7, gaps 0.4 and 0.3: ECE = 0.35.
        // O:   0.95 right -> bin 9, gap 0.05.
        let conf = [0.9, 0.6, 0.9, 0.95, 0.3, 0.7];
        let ok = [true, true, false, true, false, true];
        let types: Vec<String> = ["PER", "LOC", "PER", "O", "PER", "LOC"]
            .iter()
            .map(|t| t.to_string())
            .collect();
        let ece = ece_by_type(&conf, &ok, &types, 10);
        assert_eq!(ece.keys().collect::<Vec<_>>(), ["LOC", "O", "PER"]);
        assert!((ece["PER"] - 11.0 / 30.0).abs() < 1e-12);
        assert!((ece["LOC"] - 0.35).abs() < 1e-12);
        assert!((ece["O"] - 0.05).abs() < 1e-12);
        let by_type = calibration_by_type(&conf, &ok, &types, 10);
        assert_eq!(by_type["PER"].tokens, 3);
        assert_eq!(by_type["PER"].bins[9].count, 2);
        assert_eq!(by_type["PER"].bins.len(), 10);
        // One type over every token is the overall ECE.
        let all = vec!["X".to_string(); conf.len()];
        assert_eq!(
            ece_by_type(&conf, &ok, &all, 10)["X"],
            calibration(&conf, &ok, 10).ece
        );
        assert!(ece_by_type(&[], &[], &[], 10).is_empty());
    }
}
