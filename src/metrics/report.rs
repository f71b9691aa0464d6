//! The full score report: what `nerlab score --json` prints and what a run's `report.json` holds
//! under `dev`. Its JSON shape is a contract other tools script against (see `docs/SCORING.md`):
//!
//! ```text
//! {"mode","scheme","sentences","tokens","micro":{precision,recall,f1},"macro":{..},"weighted":{..},
//!  "per_type":{TYPE:{precision,recall,f1,support,predicted,correct}},
//!  "char":{macro_f1_with_o,macro_f1_without_o,per_label} (character-level corpora only),
//!  "errors":{counts,per_type},"semeval":{strict,exact,partial,ent_type,per_type},
//!  "confusion":{token:{rows,cols,counts},span:{rows,cols,counts}},
//!  "bootstrap":{low,high,iterations,seed},"calibration":{..} (when confidences are given)}
//! ```
//! All scores are fractions in [0, 1].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Prf;
use super::bootstrap::{Interval, micro_f1_interval};
use super::calibration::{Calibration, calibration, ece_by_type};
use super::char_f1::{CharF1, char_f1};
use super::confusion::{Matrix, span_confusion, token_confusion};
use super::entity::{TypeScore, entity_scores};
use super::errors::{ErrorCase, ErrorMode, ErrorSummary, categorize, categorize_with, summarize};
use super::semeval::{SemEval, semeval};
use crate::data::scheme::{convert, tag_type};
use crate::data::spans::extract;
use crate::data::{Scheme, Span, SpanMode};

/// How to score.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub mode: SpanMode,
    pub scheme: Scheme,
    /// Add KLUE's character F1 (for character-level corpora).
    pub char_level: bool,
    pub bootstrap_iterations: usize,
    pub seed: u64,
    /// Bins of the reliability diagram, when confidences are given.
    pub calibration_bins: usize,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            mode: SpanMode::Strict,
            scheme: Scheme::Iob2,
            char_level: false,
            bootstrap_iterations: 1000,
            seed: 0,
            calibration_bins: 10,
        }
    }
}

/// Both confusion matrices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Confusions {
    pub token: Matrix,
    pub span: Matrix,
}

/// Everything the scorer computes (see the module docs for the JSON shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreReport {
    pub mode: SpanMode,
    pub scheme: Scheme,
    pub sentences: usize,
    pub tokens: usize,
    pub micro: Prf,
    #[serde(rename = "macro")]
    pub macro_avg: Prf,
    pub weighted: Prf,
    pub per_type: BTreeMap<String, TypeScore>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub char: Option<CharF1>,
    pub errors: ErrorSummary,
    /// The errors as the KLUE BiLSTM-CRF study (seed 003) counts them: gold-centred, boundary
    /// regardless of type, a prediction strictly inside a gold span a miss (see `errors.rs`).
    #[serde(default)]
    pub errors_gold_centred: ErrorSummary,
    pub semeval: SemEval,
    pub confusion: Confusions,
    pub bootstrap: Interval,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// Every categorized span, for error browsers (not serialized: recompute from predictions).
    #[serde(skip)]
    pub cases: Vec<ErrorCase>,
    /// The same spans categorized gold-centred.
    #[serde(skip)]
    pub cases_gold_centred: Vec<ErrorCase>,
    #[serde(skip)]
    pub gold_spans: Vec<Vec<Span>>,
    #[serde(skip)]
    pub pred_spans: Vec<Vec<Span>>,
}

/// Why a pair of tag sequences could not be scored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    #[error(
        "{side} sentence {sentence}, position {index}: tag {tag:?} is not valid in {scheme} (strict mode)"
    )]
    InvalidTag {
        side: &'static str,
        sentence: usize,
        index: usize,
        tag: String,
        scheme: Scheme,
    },
    #[error("gold has {gold} sentences but predictions have {pred}")]
    SentenceCount { gold: usize, pred: usize },
    #[error("sentence {sentence}: gold has {gold} tags but predictions have {pred}")]
    Length {
        sentence: usize,
        gold: usize,
        pred: usize,
    },
    #[error("SemEval schema: {0}")]
    SemEval(String),
}

fn spans_of(
    tags: &[Vec<String>],
    opts: &ScoreOptions,
    side: &'static str,
) -> Result<Vec<Vec<Span>>, ScoreError> {
    tags.iter()
        .enumerate()
        .map(|(sentence, t)| {
            extract(t, opts.mode, opts.scheme).map_err(|e| ScoreError::InvalidTag {
                side,
                sentence,
                index: e.index,
                tag: e.tag,
                scheme: opts.scheme,
            })
        })
        .collect()
}

/// Scores predicted tags against gold tags (both already in the scoring view). `confidence`,
/// when given, holds the model's probability of each predicted tag, for calibration.
pub fn score(
    gold: &[Vec<String>],
    pred: &[Vec<String>],
    confidence: Option<&[Vec<f64>]>,
    opts: &ScoreOptions,
) -> Result<ScoreReport, ScoreError> {
    if gold.len() != pred.len() {
        return Err(ScoreError::SentenceCount {
            gold: gold.len(),
            pred: pred.len(),
        });
    }
    if let Some((sentence, (g, p))) = gold
        .iter()
        .zip(pred)
        .enumerate()
        .find(|(_, (g, p))| g.len() != p.len())
    {
        return Err(ScoreError::Length {
            sentence,
            gold: g.len(),
            pred: p.len(),
        });
    }
    let gold_spans = spans_of(gold, opts, "gold")?;
    let pred_spans = spans_of(pred, opts, "prediction")?;
    let entity = entity_scores(&gold_spans, &pred_spans);
    let cases = categorize(&gold_spans, &pred_spans);
    let cases_gold_centred = categorize_with(ErrorMode::GoldCentred, &gold_spans, &pred_spans);

    let semeval = if opts.scheme == Scheme::Iob2 {
        semeval(gold, pred)
    } else {
        let to_iob2 = |x: &[Vec<String>]| {
            x.iter()
                .map(|t| convert(t, Scheme::Iob2))
                .collect::<Vec<_>>()
        };
        semeval(&to_iob2(gold), &to_iob2(pred))
    }
    .map_err(ScoreError::SemEval)?;

    let calibration = confidence.map(|conf| {
        let mut c = Vec::new();
        let mut ok = Vec::new();
        let mut types = Vec::new();
        for ((g, p), cs) in gold.iter().zip(pred).zip(conf) {
            for ((gt, pt), &x) in g.iter().zip(p).zip(cs) {
                c.push(x);
                ok.push(gt == pt);
                types.push(tag_type(pt).unwrap_or("O").to_string());
            }
        }
        Calibration {
            ece_per_type: ece_by_type(&c, &ok, &types, opts.calibration_bins),
            ..calibration(&c, &ok, opts.calibration_bins)
        }
    });

    Ok(ScoreReport {
        mode: opts.mode,
        scheme: opts.scheme,
        sentences: gold.len(),
        tokens: gold.iter().map(Vec::len).sum(),
        micro: entity.micro,
        macro_avg: entity.macro_avg,
        weighted: entity.weighted,
        per_type: entity.per_type,
        char: opts.char_level.then(|| char_f1(gold, pred)),
        errors: summarize(&cases),
        errors_gold_centred: summarize(&cases_gold_centred),
        semeval,
        confusion: Confusions {
            token: token_confusion(gold, pred),
            span: span_confusion(&gold_spans, &pred_spans),
        },
        bootstrap: micro_f1_interval(&entity.per_sentence, opts.bootstrap_iterations, opts.seed),
        calibration,
        cases,
        cases_gold_centred,
        gold_spans,
        pred_spans,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::scheme::tag_docs as tags;

    #[test]
    fn report_has_the_contract_fields() {
        let gold = tags(&["B-PS I-PS O B-LC", "O B-DT"]);
        let pred = tags(&["B-PS I-PS O B-OG", "O O"]);
        let opts = ScoreOptions {
            char_level: true,
            ..ScoreOptions::default()
        };
        let r = score(&gold, &pred, None, &opts).unwrap();
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "mode",
            "sentences",
            "micro",
            "macro",
            "per_type",
            "char",
            "errors",
            "semeval",
            "confusion",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["mode"], "strict");
        assert_eq!(json["per_type"]["PS"]["support"], 1);
        assert!(json["char"]["macro_f1_with_o"].is_number());
        assert_eq!(json["semeval"]["strict"]["correct"], 1);
        assert_eq!(json["errors"]["counts"]["type"], 1);
        assert_eq!(json["errors"]["counts"]["missed"], 1);
        assert!((r.micro.precision - 0.5).abs() < 1e-15);
        assert!((r.micro.recall - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn strict_mode_rejects_bioes_tags_in_iob2() {
        let err = score(
            &tags(&["S-PER"]),
            &tags(&["O"]),
            None,
            &ScoreOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ScoreError::InvalidTag { index: 0, .. }));
    }

    #[test]
    fn calibration_when_confidences_are_given() {
        let gold = tags(&["B-PS O"]);
        let pred = tags(&["B-PS B-PS"]);
        let conf = vec![vec![0.9, 0.6]];
        let r = score(&gold, &pred, Some(&conf), &ScoreOptions::default()).unwrap();
        let c = r.calibration.unwrap();
        assert_eq!(c.tokens, 2);
        assert!((c.ece - (0.1 * 0.5 + 0.6 * 0.5)).abs() < 1e-12);
    }
}
