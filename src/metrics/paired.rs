//! Paired bootstrap over sentences (Efron & Tibshirani 1993; for NLP Koehn 2004 and Berg-Kirkpatrick
//! et al. 2012): is a system's entity micro F1 above a baseline's on the same test sentences, beyond
//! what the choice of sentences explains? Each resample draws sentence indices with replacement,
//! the same indices for every run of both sides (that is the pairing), recomputes each run's micro
//! F1 from its resampled per-sentence counts, averages over each side's runs (seeds), and records
//! the difference. Seeded, so a p-value in a paper can be reproduced.

use serde::{Deserialize, Serialize};

use super::entity::{Counts, entity_scores};
use super::percentile;
use crate::data::Span;
use crate::rng::SplitMix64;

/// Resamples of the paired bootstrap (as `nerlab score`'s interval uses).
pub const RESAMPLES: usize = 1_000;

/// The fixed seed of the resampling, so reports are reproducible.
pub const SEED: u64 = 0x0000_9A12_ED00;

/// The paired comparison of a system with a baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedResult {
    /// Mean micro F1 of the system's runs minus the baseline's, on all the sentences.
    pub delta: f64,
    /// 95 % percentile interval of the resampled deltas.
    pub ci95: [f64; 2],
    /// One-sided p-value that the system is not better: `(k + 1) / (resamples + 1)`, where `k`
    /// counts resamples with delta <= 0.
    pub p: f64,
    pub sentences: usize,
    pub resamples: usize,
    pub seed: u64,
}

/// Each sentence's entity counts (correct, predicted, gold: tp = correct, fp = predicted - correct,
/// fn = gold - correct), matched exactly as the micro F1 of `dev.micro.f1` matches spans, so the
/// counts of all sentences give that F1 back.
pub fn sentence_counts(gold: &[Vec<Span>], pred: &[Vec<Span>]) -> Vec<Counts> {
    entity_scores(gold, pred).per_sentence
}

/// The paired bootstrap of `system` against `baseline`. Each outer item is one run (seed), each
/// inner item one sentence's counts; every run of both sides must hold the same sentences in the
/// same order (None otherwise, or with no runs, no sentences or no resamples).
///
/// The p-value is the simple one-sided bootstrap estimate (Koehn 2004): the share of resamples in
/// which the system is not better than the baseline (delta <= 0), as `(k + 1) / (resamples + 1)`
/// so it is never 0. It is not Berg-Kirkpatrick et al.'s (2012) shifted-null variant, which
/// counts resamples whose delta exceeds twice the observed one.
pub fn paired_bootstrap(
    system: &[Vec<Counts>],
    baseline: &[Vec<Counts>],
    resamples: usize,
    seed: u64,
) -> Option<PairedResult> {
    let n = system.first()?.len();
    if baseline.is_empty()
        || n == 0
        || resamples == 0
        || system.iter().chain(baseline).any(|run| run.len() != n)
    {
        return None;
    }
    let all: Vec<usize> = (0..n).collect();
    let delta = mean_f1(system, &all) - mean_f1(baseline, &all);
    let mut rng = SplitMix64::new(seed);
    let mut idx = vec![0; n];
    let mut deltas: Vec<f64> = (0..resamples)
        .map(|_| {
            for i in &mut idx {
                *i = rng.below(n);
            }
            mean_f1(system, &idx) - mean_f1(baseline, &idx)
        })
        .collect();
    let not_better = deltas.iter().filter(|&&d| d <= 0.0).count();
    deltas.sort_by(f64::total_cmp);
    Some(PairedResult {
        delta,
        ci95: [percentile(&deltas, 2.5), percentile(&deltas, 97.5)],
        p: (not_better + 1) as f64 / (resamples + 1) as f64,
        sentences: n,
        resamples,
        seed,
    })
}

/// The mean over `runs` of each run's micro F1 on the sentences `idx` (repeats counted).
fn mean_f1(runs: &[Vec<Counts>], idx: &[usize]) -> f64 {
    let sum: f64 = runs
        .iter()
        .map(|run| {
            let mut total = Counts::default();
            for &i in idx {
                total.add(run[i]);
            }
            total.prf().f1
        })
        .sum();
    sum / runs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::entity::spans_of as spans;

    fn c(correct: usize, predicted: usize, gold: usize) -> Counts {
        Counts {
            correct,
            predicted,
            gold,
        }
    }

    #[test]
    fn counts_add_up_to_the_micro_f1() {
        // The seqeval docstring example: micro F1 0.5.
        let gold = spans(&["O O O B-MISC I-MISC I-MISC O", "B-PER I-PER O"]);
        let pred = spans(&["O O B-MISC I-MISC I-MISC I-MISC O", "B-PER I-PER O"]);
        let per = sentence_counts(&gold, &pred);
        assert_eq!(per, vec![c(0, 1, 1), c(1, 1, 1)]);
        let mut total = Counts::default();
        per.iter().for_each(|x| total.add(*x));
        assert_eq!(total.prf().f1, entity_scores(&gold, &pred).micro.f1);
    }

    #[test]
    fn identical_systems_differ_by_nothing() {
        let run = vec![c(1, 2, 1), c(0, 1, 1), c(2, 2, 3), c(0, 0, 0)];
        let r = paired_bootstrap(
            std::slice::from_ref(&run),
            std::slice::from_ref(&run),
            200,
            1,
        )
        .unwrap();
        assert_eq!(r.delta, 0.0);
        assert_eq!(r.ci95, [0.0, 0.0]);
        // Every resample ties, so none is better: p = (200 + 1) / (200 + 1).
        assert_eq!(r.p, 1.0);
        assert_eq!((r.sentences, r.resamples), (4, 200));
    }

    #[test]
    fn better_on_every_sentence_gives_the_smallest_p() {
        let system = vec![c(1, 1, 1); 5];
        let baseline = vec![c(0, 1, 1); 5];
        let r = paired_bootstrap(&[system], &[baseline], 99, 7).unwrap();
        assert_eq!(r.delta, 1.0);
        assert_eq!(r.p, 1.0 / 100.0);
        assert_eq!(r.ci95, [1.0, 1.0]);
    }

    #[test]
    fn observed_delta_by_hand() {
        // System seed 1: tp 1, pred 2, gold 3 -> P 1/2, R 1/3, F1 2 * (1/6) / (5/6) = 0.4.
        // System seed 2: tp 3, pred 3, gold 3 -> F1 1.0. Mean 0.7.
        // Baseline: tp 1, pred 1, gold 3 -> P 1, R 1/3, F1 2 * (1/3) / (4/3) = 0.5.
        let system = [vec![c(1, 1, 1), c(0, 1, 2)], vec![c(1, 1, 1), c(2, 2, 2)]];
        let baseline = [vec![c(0, 0, 1), c(1, 1, 2)]];
        let r = paired_bootstrap(&system, &baseline, 500, 3).unwrap();
        assert!((r.delta - 0.2).abs() < 1e-12, "{r:?}");
        assert!(r.ci95[0] <= r.ci95[1]);
        assert!(r.p > 0.0 && r.p <= 1.0);
        assert_eq!(r, paired_bootstrap(&system, &baseline, 500, 3).unwrap());
    }

    #[test]
    fn different_sentences_or_nothing_give_none() {
        let a = vec![c(1, 1, 1), c(0, 1, 1)];
        let b = vec![c(1, 1, 1)];
        assert_eq!(
            paired_bootstrap(std::slice::from_ref(&a), &[b], 10, 0),
            None
        );
        assert_eq!(paired_bootstrap(std::slice::from_ref(&a), &[], 10, 0), None);
        assert_eq!(paired_bootstrap(&[], std::slice::from_ref(&a), 10, 0), None);
        assert_eq!(
            paired_bootstrap(std::slice::from_ref(&a), std::slice::from_ref(&a), 0, 0),
            None
        );
        assert_eq!(paired_bootstrap(&[vec![]], &[vec![]], 10, 0), None);
    }
}
