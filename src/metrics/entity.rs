//! Entity-level precision, recall and F1 (seqeval's `classification_report` numbers): an entity is
//! correct when a predicted span has exactly the gold span's bounds and type. Micro averages pool
//! the counts; macro averages the per-type scores over every type seen in gold or predictions;
//! weighted averages them by gold support.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Prf;
use crate::data::Span;

/// Correct, predicted and gold entity counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub correct: usize,
    pub predicted: usize,
    pub gold: usize,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.correct += other.correct;
        self.predicted += other.predicted;
        self.gold += other.gold;
    }

    pub fn prf(self) -> Prf {
        Prf::from_counts(self.correct, self.predicted, self.gold)
    }
}

/// One entity type's scores. `support` is the number of gold entities of the type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeScore {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
    pub predicted: usize,
    pub correct: usize,
}

/// Everything entity-level, plus per-sentence counts for bootstrap intervals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntityScores {
    pub micro: Prf,
    #[serde(rename = "macro")]
    pub macro_avg: Prf,
    pub weighted: Prf,
    pub per_type: BTreeMap<String, TypeScore>,
    pub totals: Counts,
    #[serde(skip)]
    pub per_sentence: Vec<Counts>,
}

/// Scores predicted spans against gold spans, sentence by sentence.
pub fn entity_scores(gold: &[Vec<Span>], pred: &[Vec<Span>]) -> EntityScores {
    let mut by_type: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut per_sentence = Vec::with_capacity(gold.len());
    for (g, p) in gold.iter().zip(pred) {
        let mut sentence = Counts::default();
        for span in g {
            by_type.entry(&span.ty).or_default().gold += 1;
            sentence.gold += 1;
        }
        for span in p {
            let c = by_type.entry(&span.ty).or_default();
            c.predicted += 1;
            sentence.predicted += 1;
            if g.contains(span) {
                c.correct += 1;
                sentence.correct += 1;
            }
        }
        per_sentence.push(sentence);
    }

    let mut totals = Counts::default();
    let mut per_type = BTreeMap::new();
    for (ty, c) in &by_type {
        totals.add(*c);
        let prf = c.prf();
        per_type.insert(
            ty.to_string(),
            TypeScore {
                precision: prf.precision,
                recall: prf.recall,
                f1: prf.f1,
                support: c.gold,
                predicted: c.predicted,
                correct: c.correct,
            },
        );
    }
    EntityScores {
        micro: totals.prf(),
        macro_avg: average(per_type.values(), |_| 1.0),
        weighted: weighted(&per_type, totals),
        per_type,
        totals,
        per_sentence,
    }
}

/// `np.average` of the per-type scores with the given weights (0 for no types, where seqeval
/// would return NaN).
fn average<'a>(
    scores: impl Iterator<Item = &'a TypeScore> + Clone,
    weight: impl Fn(&TypeScore) -> f64,
) -> Prf {
    let total: f64 = scores.clone().map(&weight).sum();
    if total == 0.0 {
        return Prf::default();
    }
    let mean =
        |f: fn(&TypeScore) -> f64| scores.clone().map(|s| f(s) * weight(s)).sum::<f64>() / total;
    Prf {
        precision: mean(|s| s.precision),
        recall: mean(|s| s.recall),
        f1: mean(|s| s.f1),
    }
}

/// seqeval's `average="weighted"`, including its special case when there is no gold entity.
fn weighted(per_type: &BTreeMap<String, TypeScore>, totals: Counts) -> Prf {
    if totals.gold == 0 {
        // seqeval returns `zero_division` (0 by default) for every field here.
        return Prf::default();
    }
    average(per_type.values(), |s| s.support as f64)
}

/// The spans of whitespace-separated tag sequences, for tests (`"B-PER I-PER O"`).
#[cfg(test)]
pub(crate) fn spans_of(sents: &[&str]) -> Vec<Vec<Span>> {
    sents
        .iter()
        .map(|s| crate::data::spans::lenient_spans(&s.split_whitespace().collect::<Vec<_>>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(sents: &[&str]) -> Vec<Vec<Span>> {
        spans_of(sents)
    }

    #[test]
    fn matches_seqeval_docstring_example() {
        // seqeval docstring: y_true = [['O','O','O','B-MISC','I-MISC','I-MISC','O'],['B-PER','I-PER','O']]
        // y_pred = [['O','O','B-MISC','I-MISC','I-MISC','I-MISC','O'],['B-PER','I-PER','O']]
        // precision_recall_fscore_support(..., average='macro') == (0.5, 0.5, 0.5, 2); micro the same.
        let gold = spans(&["O O O B-MISC I-MISC I-MISC O", "B-PER I-PER O"]);
        let pred = spans(&["O O B-MISC I-MISC I-MISC I-MISC O", "B-PER I-PER O"]);
        let s = entity_scores(&gold, &pred);
        assert_eq!(
            s.micro,
            Prf {
                precision: 0.5,
                recall: 0.5,
                f1: 0.5
            }
        );
        assert_eq!(
            s.macro_avg,
            Prf {
                precision: 0.5,
                recall: 0.5,
                f1: 0.5
            }
        );
        assert_eq!(
            s.weighted,
            Prf {
                precision: 0.5,
                recall: 0.5,
                f1: 0.5
            }
        );
        assert_eq!(s.per_type["MISC"].f1, 0.0);
        assert_eq!(s.per_type["PER"].support, 1);
    }

    #[test]
    fn macro_counts_types_seen_only_in_predictions() {
        let gold = spans(&["B-PER O"]);
        let pred = spans(&["B-PER B-LOC"]);
        let s = entity_scores(&gold, &pred);
        assert_eq!(s.per_type.len(), 2);
        assert_eq!(s.macro_avg.f1, 0.5);
        assert_eq!(s.weighted.f1, 1.0);
    }
}
