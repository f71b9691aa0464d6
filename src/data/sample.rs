//! Few-shot and subsampled training sets, deterministic for a seed.
//!
//! K-shot follows the greedy sampling of Yang & Katiyar (2020, "Simple and Effective Few-Shot
//! Named Entity Recognition with Structured Nearest Neighbor Learning", Algorithm 1): entity types
//! are visited from the rarest to the most frequent, and sentences containing the current type are
//! added (in a seeded random order) until it has at least K mentions. Mentions of other types in
//! those sentences count too, so frequent types usually end with more than K.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Corpus;
use super::spans::{SpanMode, extract, lenient_spans};
use crate::rng::SplitMix64;

/// The outcome of sampling: which sentences, and how many mentions each type got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Chosen sentence indices, in corpus order.
    pub indices: Vec<usize>,
    /// Entity mentions per type in the sample.
    pub mentions: BTreeMap<String, usize>,
    /// Types that could not reach K mentions, with how many they got.
    pub short: BTreeMap<String, usize>,
}

/// Entity mentions per type in each sentence (strict spans of the corpus's scheme).
fn mentions_per_sentence(corpus: &Corpus) -> Vec<BTreeMap<String, usize>> {
    corpus
        .sentences
        .iter()
        .map(|s| {
            let spans = extract(&s.tags, SpanMode::Strict, corpus.scheme)
                .unwrap_or_else(|_| lenient_spans(&s.tags));
            let mut m = BTreeMap::new();
            for span in spans {
                *m.entry(span.ty).or_default() += 1;
            }
            m
        })
        .collect()
}

/// Greedy K-shot sampling (see the module docs).
pub fn k_shot(corpus: &Corpus, k: usize, seed: u64) -> Sample {
    let per_sentence = mentions_per_sentence(corpus);
    let mut frequency: BTreeMap<String, usize> = BTreeMap::new();
    for m in &per_sentence {
        for (ty, n) in m {
            *frequency.entry(ty.clone()).or_default() += n;
        }
    }
    let mut types: Vec<(usize, String)> = frequency.iter().map(|(t, &n)| (n, t.clone())).collect();
    types.sort();

    let mut order: Vec<usize> = (0..corpus.len()).collect();
    SplitMix64::new(seed).shuffle(&mut order);

    let mut chosen = vec![false; corpus.len()];
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut short = BTreeMap::new();
    for (_, ty) in &types {
        let mut candidates = order.iter().filter(|&&i| per_sentence[i].contains_key(ty));
        while counts.get(ty).copied().unwrap_or(0) < k {
            let Some(&i) = candidates.next() else {
                short.insert(ty.clone(), counts.get(ty).copied().unwrap_or(0));
                break;
            };
            if chosen[i] {
                continue;
            }
            chosen[i] = true;
            for (t, n) in &per_sentence[i] {
                *counts.entry(t.clone()).or_default() += n;
            }
        }
    }
    Sample {
        indices: (0..corpus.len()).filter(|&i| chosen[i]).collect(),
        mentions: counts,
        short,
    }
}

/// `n` sentence indices drawn without replacement, in corpus order (all of them if `n >= total`).
pub fn random_subset(total: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..total).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    order.truncate(n.min(total));
    order.sort_unstable();
    order
}

impl Corpus {
    /// The corpus restricted to these sentences (indices into `self.sentences`).
    pub fn subset(&self, indices: &[usize]) -> Corpus {
        let mut out = self.clone();
        out.sentences = indices.iter().map(|&i| self.sentences[i].clone()).collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Format, ReadOptions, parse};
    use std::path::Path;

    fn corpus() -> Corpus {
        let mut text = String::new();
        for i in 0..40 {
            let tag = match i % 8 {
                0 => "B-RARE",
                1..=4 => "B-PER",
                _ => "O",
            };
            text.push_str(&format!("w{i}\t{tag}\nx\tO\n\n"));
        }
        parse(
            text.as_bytes(),
            Path::new("t.tsv"),
            &ReadOptions::with_format(Format::Wikiann),
        )
        .unwrap()
    }

    #[test]
    fn k_shot_reaches_k_for_every_type_and_is_deterministic() {
        let c = corpus();
        let a = k_shot(&c, 3, 11);
        assert!(a.mentions["RARE"] >= 3 && a.mentions["PER"] >= 3);
        assert!(a.short.is_empty());
        assert_eq!(a, k_shot(&c, 3, 11));
        assert_ne!(a.indices, k_shot(&c, 3, 12).indices);
        // The rare type is served first, so exactly K sentences carry it.
        assert_eq!(a.mentions["RARE"], 3);
    }

    #[test]
    fn k_shot_reports_types_that_fall_short() {
        let s = k_shot(&corpus(), 6, 1);
        assert_eq!(s.short.get("RARE"), Some(&5));
    }

    #[test]
    fn random_subset_is_sorted_and_bounded() {
        let s = random_subset(100, 10, 3);
        assert_eq!(s.len(), 10);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(random_subset(5, 10, 3), vec![0, 1, 2, 3, 4]);
    }
}
