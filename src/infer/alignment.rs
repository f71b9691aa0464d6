//! What an alignment loses before any model is trained: a corpus's gold tags sent to the units a
//! tokenizer gives and expanded back (`nerlab stats --model`, `tests/alignment.rs`). The entity F1
//! of gold after the round trip is the ceiling of every model trained with that alignment.

use serde::Serialize;

use crate::data::{Corpus, SpanMode};
use crate::metrics::{ScoreOptions, score};
use crate::model::align::{AlignMode, Marker, Source, align, expand};
use crate::model::tokenize::TextTokenizer;

/// The round trip of a corpus's gold tags through one alignment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundTrip {
    pub mode: AlignMode,
    /// Units (labelled positions) over the corpus.
    pub units: usize,
    /// Tokens whose tag does not come back, and the sentences they are in.
    pub changed_tokens: usize,
    pub changed_sentences: usize,
    /// Changed tokens by where their tag comes from: their own unit (never, unless the
    /// alignment is broken), a later character of a unit, no unit, a space.
    pub changed_own: usize,
    pub changed_inside: usize,
    pub changed_uncovered: usize,
    pub changed_spaces: usize,
    /// Strict entity micro F1 of the gold tags after the round trip: the ceiling.
    pub f1: f64,
}

/// Sends every gold tag of `corpus` through `mode` with `tokenizer` and back.
pub fn round_trip(
    tokenizer: &TextTokenizer,
    corpus: &Corpus,
    mode: AlignMode,
) -> anyhow::Result<RoundTrip> {
    let mut r = RoundTrip {
        mode,
        units: 0,
        changed_tokens: 0,
        changed_sentences: 0,
        changed_own: 0,
        changed_inside: 0,
        changed_uncovered: 0,
        changed_spaces: 0,
        f1: 0.0,
    };
    let mut back = Vec::with_capacity(corpus.len());
    for s in &corpus.sentences {
        let a = align(
            tokenizer,
            &s.tokens,
            Some(&s.tags),
            mode,
            Marker::None,
            None,
        )?;
        let unit_tags: Vec<String> = a
            .unit_tags
            .iter()
            .map(|t| t.clone().unwrap_or_else(|| "O".into()))
            .collect();
        let tags = expand(&a.sources, &unit_tags);
        let mut changed = false;
        for ((got, want), src) in tags.iter().zip(&s.tags).zip(&a.sources) {
            if got == want {
                continue;
            }
            changed = true;
            r.changed_tokens += 1;
            match src {
                Source::First(_) => r.changed_own += 1,
                Source::Inside(_) => r.changed_inside += 1,
                Source::Uncovered => r.changed_uncovered += 1,
                Source::Space => r.changed_spaces += 1,
            }
        }
        r.changed_sentences += usize::from(changed);
        r.units += a.units.len();
        back.push(tags);
    }
    let gold = corpus.view();
    let pred = corpus.view_of(back.iter().map(Vec::as_slice));
    let opts = ScoreOptions {
        mode: SpanMode::Strict,
        bootstrap_iterations: 0,
        ..ScoreOptions::default()
    };
    r.f1 = score(&gold.tags, &pred.tags, None, &opts)?.micro.f1;
    Ok(r)
}

/// The alignments a corpus can be trained with: both character schemes for a character-level
/// corpus (KLUE), words otherwise.
pub fn alignments_for(corpus: &Corpus) -> Vec<AlignMode> {
    if corpus.format.char_level() {
        vec![AlignMode::Chars, AlignMode::CharTokens]
    } else {
        vec![AlignMode::Words]
    }
}
