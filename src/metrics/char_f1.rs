//! KLUE's character-level macro F1: per-label F1 over characters (spaces excluded by the scoring
//! view, as KLUE's baseline drops them), averaged with equal weight per label.
//!
//! KLUE's official scorer (`klue_baseline/metrics/functional.py`, `klue_ner_char_macro_f1`) calls
//! `sklearn.metrics.f1_score(trues, preds, labels=range(len(label_list)), average="macro",
//! zero_division=True)` with `O` in `label_list`, although its docstring says "except O tag".
//! That variant is the one comparable to published KLUE numbers; the one without `O` is what the
//! KLUE paper describes. Both are reported.
//!
//! The label list is KLUE's shape generalized: `O`, every tag seen, and `B-T`/`I-T` for every
//! entity type `T` seen. A label that occurs in neither gold nor predictions scores 1 (sklearn's
//! `zero_division=True`), exactly as KLUE's fixed 13-label list makes it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::data::scheme::tag_type;

/// One label's character-level scores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelScore {
    pub f1: f64,
    pub support: usize,
    pub predicted: usize,
    pub correct: usize,
}

/// Both macro variants and the per-label scores behind them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CharF1 {
    pub macro_f1_with_o: f64,
    pub macro_f1_without_o: f64,
    pub per_label: BTreeMap<String, LabelScore>,
}

/// The label list described in the module docs.
pub fn label_list(gold: &[Vec<String>], pred: &[Vec<String>]) -> BTreeSet<String> {
    let mut labels: BTreeSet<String> = BTreeSet::from(["O".to_string()]);
    for tag in gold.iter().chain(pred).flatten() {
        labels.insert(tag.clone());
        if let Some(ty) = tag_type(tag) {
            labels.insert(format!("B-{ty}"));
            labels.insert(format!("I-{ty}"));
        }
    }
    labels
}

/// Character F1 over aligned tag sequences.
pub fn char_f1(gold: &[Vec<String>], pred: &[Vec<String>]) -> CharF1 {
    let labels = label_list(gold, pred);
    let mut per_label: BTreeMap<String, LabelScore> = labels
        .iter()
        .map(|l| (l.clone(), LabelScore::default()))
        .collect();
    for (g, p) in gold.iter().zip(pred) {
        for (gt, pt) in g.iter().zip(p) {
            if let Some(s) = per_label.get_mut(gt) {
                s.support += 1;
            }
            if let Some(s) = per_label.get_mut(pt) {
                s.predicted += 1;
                if gt == pt {
                    s.correct += 1;
                }
            }
        }
    }
    for s in per_label.values_mut() {
        // sklearn >= 1.3: F = (1 + b^2) tp / (b^2 (tp + fn) + tp + fp), zero_division when the
        // denominator is 0.
        let denom = s.support + s.predicted;
        s.f1 = if denom == 0 {
            1.0
        } else {
            2.0 * s.correct as f64 / denom as f64
        };
    }
    let mean = |skip_o: bool| {
        let scores: Vec<f64> = per_label
            .iter()
            .filter(|(l, _)| !(skip_o && l.as_str() == "O"))
            .map(|(_, s)| s.f1)
            .collect();
        if scores.is_empty() {
            0.0
        } else {
            scores.iter().sum::<f64>() / scores.len() as f64
        }
    };
    CharF1 {
        macro_f1_with_o: mean(false),
        macro_f1_without_o: mean(true),
        per_label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::scheme::tags_of as tags;

    #[test]
    fn perfect_prediction_scores_one() {
        let g = vec![tags("B-PS I-PS O B-LC")];
        let c = char_f1(&g, &g);
        assert_eq!(c.macro_f1_with_o, 1.0);
        assert_eq!(c.macro_f1_without_o, 1.0);
        // I-LC never occurs: zero_division=True scores it 1, as KLUE's fixed label list does.
        assert_eq!(c.per_label["I-LC"].f1, 1.0);
    }

    #[test]
    fn hand_computed_example() {
        // sklearn.metrics.f1_score(['B-PS','I-PS','O','O'], ['B-PS','O','O','B-PS'],
        //   labels=['B-PS','I-PS','O'], average='macro', zero_division=True) == 0.3888888888888889
        // and with labels=['B-PS','I-PS'] == 0.3333333333333333
        let c = char_f1(&[tags("B-PS I-PS O O")], &[tags("B-PS O O B-PS")]);
        assert!((c.macro_f1_with_o - 0.3888888888888889).abs() < 1e-15);
        assert!((c.macro_f1_without_o - 0.3333333333333333).abs() < 1e-15);
    }
}
