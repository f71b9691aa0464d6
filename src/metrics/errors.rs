//! Per-span error categories, for the error analysis a researcher does by hand otherwise, in two
//! modes ([`ErrorMode`]).
//!
//! **nerlab** (the default, [`categorize`]): every predicted span gets exactly one category,
//! decided against the gold spans of its sentence: `correct` (same bounds and type), `type` (same
//! bounds, other type), `boundary` (overlaps a gold span of its type), `boundary_type` (overlaps
//! only gold spans of other types) or `spurious` (overlaps nothing). Every gold span that no
//! prediction overlaps is `missed`. So the first five categories add up to the number of
//! predictions, and `correct` equals strict entity true positives. The partner gold span of a
//! boundary error is the one with the largest overlap (the leftmost on ties).
//!
//! **gold-centred** ([`categorize_with`] with [`ErrorMode::GoldCentred`], the error analysis of
//! seed 003): boundary errors are counted regardless of type, a prediction strictly inside a gold
//! span counts as that entity being missed, and the categories are `correct`, `boundary`, `type`,
//! `missed` and `spurious` (`boundary_type` never occurs). Per sentence:
//!
//! 1. Each gold span `g`, in order, gets exactly one case:
//!    - a prediction with the bounds and type of `g` → `correct` (partner: that prediction);
//!    - else a prediction with the bounds of `g` and another type → `type` (partner: the first
//!      such prediction);
//!    - else, if some predictions overlap `g`: `missed` when every one of them lies strictly inside
//!      `g` (`p.start >= g.start && p.end <= g.end`, bounds not equal), otherwise `boundary`, the
//!      types of `g` and of the predictions ignored. The partner is the overlapping prediction with
//!      the largest overlap (the leftmost on ties, then the first listed);
//!    - else (nothing overlaps `g`) → `missed`, without a partner.
//! 2. Each prediction that overlaps no gold span, in order, is `spurious` (no gold partner).
//!
//! A prediction that overlaps a gold span is accounted for by that gold span and is never a case of
//! its own: a prediction straddling two gold spans makes each of them one `boundary` case (it is
//! the partner of both) rather than adding a third error, and an extra prediction overlapping a
//! gold span that is already matched exactly adds no error at all. So in this mode the categories
//! partition the cases, each gold span counted exactly once:
//!
//! `correct + boundary + type + missed = gold spans`, and
//! `spurious = predictions overlapping no gold span`,
//!
//! so `errors = boundary + type + missed + spurious = cases - correct`. `correct` again equals the
//! strict true positives (for distinct gold spans). Cases come sentence by sentence: in nerlab mode
//! the predictions then the missed gold spans, in gold-centred mode the gold spans then the
//! spurious predictions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::Span;

/// What went wrong with one span (or that nothing did).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCategory {
    Correct,
    Boundary,
    Type,
    BoundaryType,
    Spurious,
    Missed,
}

impl ErrorCategory {
    pub const ALL: [ErrorCategory; 6] = [
        Self::Correct,
        Self::Boundary,
        Self::Type,
        Self::BoundaryType,
        Self::Spurious,
        Self::Missed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Correct => "correct",
            Self::Boundary => "boundary",
            Self::Type => "type",
            Self::BoundaryType => "boundary+type",
            Self::Spurious => "spurious",
            Self::Missed => "missed",
        }
    }

    pub fn is_error(self) -> bool {
        self != Self::Correct
    }
}

/// One categorized span, with the sentence it is in and its partner on the other side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCase {
    pub sentence: usize,
    pub category: ErrorCategory,
    pub gold: Option<Span>,
    pub pred: Option<Span>,
}

impl ErrorCase {
    /// The type the case is counted under: the gold type where there is one.
    pub fn entity_type(&self) -> &str {
        self.gold
            .as_ref()
            .or(self.pred.as_ref())
            .map_or("", |s| s.ty.as_str())
    }
}

/// Categorizes every predicted and missed gold span (see the module docs).
pub fn categorize(gold: &[Vec<Span>], pred: &[Vec<Span>]) -> Vec<ErrorCase> {
    let mut cases = Vec::new();
    for (sentence, (g, p)) in gold.iter().zip(pred).enumerate() {
        for ps in p {
            let best = |same_type: bool| {
                g.iter()
                    .filter(|gs| gs.overlaps(ps) && (gs.ty == ps.ty) == same_type)
                    .max_by_key(|gs| (gs.overlap(ps), std::cmp::Reverse(gs.start)))
            };
            let (category, partner) = if g.contains(ps) {
                (ErrorCategory::Correct, Some(ps))
            } else if let Some(gs) = g.iter().find(|gs| gs.same_bounds(ps)) {
                (ErrorCategory::Type, Some(gs))
            } else if let Some(gs) = best(true) {
                (ErrorCategory::Boundary, Some(gs))
            } else if let Some(gs) = best(false) {
                (ErrorCategory::BoundaryType, Some(gs))
            } else {
                (ErrorCategory::Spurious, None)
            };
            cases.push(ErrorCase {
                sentence,
                category,
                gold: partner.cloned(),
                pred: Some(ps.clone()),
            });
        }
        for gs in g.iter().filter(|gs| !p.iter().any(|ps| ps.overlaps(gs))) {
            cases.push(ErrorCase {
                sentence,
                category: ErrorCategory::Missed,
                gold: Some(gs.clone()),
                pred: None,
            });
        }
    }
    cases
}

/// Which definitions the error categories follow (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorMode {
    /// One case per prediction plus one per gold span nothing overlaps ([`categorize`]).
    #[default]
    Nerlab,
    /// One case per gold span plus one per prediction that overlaps no gold span (seed 003).
    GoldCentred,
}

impl ErrorMode {
    pub const ALL: [ErrorMode; 2] = [Self::Nerlab, Self::GoldCentred];

    /// The categories this mode gives (gold-centred has no `boundary+type`).
    pub fn categories(self) -> Vec<ErrorCategory> {
        ErrorCategory::ALL
            .into_iter()
            .filter(|&c| self == Self::Nerlab || c != ErrorCategory::BoundaryType)
            .collect()
    }
}

crate::choices!(named ErrorMode, "error mode":
    Nerlab = "nerlab", GoldCentred = "gold_centred" | "gold-centred" | "gold",
);

/// Categorizes the spans of every sentence in `mode` (see the module docs); `Nerlab` is
/// [`categorize`].
pub fn categorize_with(mode: ErrorMode, gold: &[Vec<Span>], pred: &[Vec<Span>]) -> Vec<ErrorCase> {
    match mode {
        ErrorMode::Nerlab => categorize(gold, pred),
        ErrorMode::GoldCentred => categorize_gold_centred(gold, pred),
    }
}

/// `inner` lies inside `outer` without having its bounds.
fn strictly_inside(inner: &Span, outer: &Span) -> bool {
    inner.start >= outer.start && inner.end <= outer.end && !inner.same_bounds(outer)
}

/// The gold-centred mode: one case per gold span, then one per prediction overlapping no gold span.
fn categorize_gold_centred(gold: &[Vec<Span>], pred: &[Vec<Span>]) -> Vec<ErrorCase> {
    let mut cases = Vec::new();
    for (sentence, (g, p)) in gold.iter().zip(pred).enumerate() {
        for gs in g {
            let exact = |same_type: bool| {
                p.iter()
                    .find(|ps| ps.same_bounds(gs) && (ps.ty == gs.ty) == same_type)
            };
            let (category, partner) = if let Some(ps) = exact(true) {
                (ErrorCategory::Correct, Some(ps))
            } else if let Some(ps) = exact(false) {
                (ErrorCategory::Type, Some(ps))
            } else {
                let best = p
                    .iter()
                    .filter(|ps| ps.overlaps(gs))
                    .min_by_key(|ps| (std::cmp::Reverse(ps.overlap(gs)), ps.start));
                match best {
                    None => (ErrorCategory::Missed, None),
                    Some(ps) => {
                        let all_inside = p
                            .iter()
                            .filter(|ps| ps.overlaps(gs))
                            .all(|ps| strictly_inside(ps, gs));
                        let category = if all_inside {
                            ErrorCategory::Missed
                        } else {
                            ErrorCategory::Boundary
                        };
                        (category, Some(ps))
                    }
                }
            };
            cases.push(ErrorCase {
                sentence,
                category,
                gold: Some(gs.clone()),
                pred: partner.cloned(),
            });
        }
        for ps in p.iter().filter(|ps| !g.iter().any(|gs| gs.overlaps(ps))) {
            cases.push(ErrorCase {
                sentence,
                category: ErrorCategory::Spurious,
                gold: None,
                pred: Some(ps.clone()),
            });
        }
    }
    cases
}

/// Counts per category, overall and per entity type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSummary {
    pub counts: BTreeMap<ErrorCategory, usize>,
    pub per_type: BTreeMap<String, BTreeMap<ErrorCategory, usize>>,
}

pub fn summarize(cases: &[ErrorCase]) -> ErrorSummary {
    let zero = || {
        ErrorCategory::ALL
            .iter()
            .map(|&c| (c, 0))
            .collect::<BTreeMap<_, _>>()
    };
    let mut summary = ErrorSummary {
        counts: zero(),
        per_type: BTreeMap::new(),
    };
    for case in cases {
        *summary.counts.entry(case.category).or_default() += 1;
        *summary
            .per_type
            .entry(case.entity_type().to_string())
            .or_insert_with(zero)
            .entry(case.category)
            .or_default() += 1;
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use ErrorCategory::*;

    #[test]
    fn every_category() {
        let gold = vec![vec![
            Span::new(0, 2, "PER"),
            Span::new(3, 5, "LOC"),
            Span::new(6, 8, "ORG"),
            Span::new(9, 11, "PER"),
            Span::new(12, 13, "LOC"),
        ]];
        let pred = vec![vec![
            Span::new(0, 2, "PER"),   // correct
            Span::new(3, 5, "ORG"),   // type
            Span::new(6, 7, "ORG"),   // boundary
            Span::new(9, 12, "LOC"),  // boundary+type
            Span::new(14, 15, "PER"), // spurious
        ]];
        let cats: Vec<ErrorCategory> = categorize(&gold, &pred)
            .iter()
            .map(|c| c.category)
            .collect();
        assert_eq!(
            cats,
            [Correct, Type, Boundary, BoundaryType, Spurious, Missed]
        );
        let summary = summarize(&categorize(&gold, &pred));
        assert_eq!(summary.counts[&Missed], 1);
        assert_eq!(summary.per_type["LOC"][&Missed], 1);
        assert_eq!(summary.per_type["LOC"][&Type], 1);
    }

    fn cats(cases: &[ErrorCase]) -> Vec<ErrorCategory> {
        cases.iter().map(|c| c.category).collect()
    }

    #[test]
    fn gold_centred_every_category() {
        let gold = vec![vec![
            Span::new(0, 2, "PER"),
            Span::new(3, 5, "LOC"),
            Span::new(6, 8, "ORG"),
            Span::new(10, 13, "PER"),
            Span::new(14, 15, "LOC"),
        ]];
        let pred = vec![vec![
            Span::new(0, 2, "PER"),   // correct
            Span::new(3, 5, "ORG"),   // type
            Span::new(6, 9, "PER"),   // boundary, whatever the type
            Span::new(11, 12, "PER"), // strictly inside 10..13: missed
            Span::new(16, 17, "PER"), // spurious
        ]];
        // 14..15 has no prediction: missed
        let cases = categorize_with(ErrorMode::GoldCentred, &gold, &pred);
        assert_eq!(
            cats(&cases),
            [Correct, Type, Boundary, Missed, Missed, Spurious]
        );
        assert_eq!(cases[2].gold, Some(Span::new(6, 8, "ORG")));
        assert_eq!(cases[2].pred, Some(Span::new(6, 9, "PER")));
        assert_eq!(cases[3].pred, Some(Span::new(11, 12, "PER")));
        assert_eq!(cases[4].gold, Some(Span::new(14, 15, "LOC")));
        assert_eq!(cases[4].pred, None);
        assert_eq!(cases[5].gold, None);
        assert_eq!(cases[5].pred, Some(Span::new(16, 17, "PER")));
        // The same spans in nerlab mode: the boundary error with another type is boundary+type,
        // and the prediction inside 10..13 a boundary error.
        assert_eq!(
            cats(&categorize(&gold, &pred)),
            [Correct, Type, BoundaryType, Boundary, Spurious, Missed]
        );
        let summary = summarize(&cases);
        assert_eq!(summary.counts[&Missed], 2);
        assert_eq!(summary.counts[&BoundaryType], 0);
        assert_eq!(summary.per_type["ORG"][&Boundary], 1);
        assert_eq!(summary.per_type["PER"][&Missed], 1);
        assert_eq!(summary.per_type["PER"][&Spurious], 1);
    }

    #[test]
    fn gold_centred_inside_only_is_missed_sticking_out_is_boundary() {
        // Two predictions strictly inside, of any type: still missed.
        let gold = vec![vec![Span::new(0, 5, "PER")]];
        let inside = vec![vec![Span::new(0, 2, "LOC"), Span::new(3, 5, "PER")]];
        let cases = categorize_with(ErrorMode::GoldCentred, &gold, &inside);
        assert_eq!(cats(&cases), [Missed]);
        assert_eq!(cases[0].pred, Some(Span::new(0, 2, "LOC")));
        // One inside, one sticking out with the same overlap (2): boundary, partner the leftmost.
        let gold = vec![vec![Span::new(0, 4, "PER")]];
        let out = vec![vec![Span::new(2, 6, "PER"), Span::new(0, 2, "PER")]];
        let cases = categorize_with(ErrorMode::GoldCentred, &gold, &out);
        assert_eq!(cats(&cases), [Boundary]);
        assert_eq!(cases[0].pred, Some(Span::new(0, 2, "PER")));
        // A larger overlap wins over the leftmost.
        let out = vec![vec![Span::new(0, 1, "PER"), Span::new(1, 6, "PER")]];
        let cases = categorize_with(ErrorMode::GoldCentred, &gold, &out);
        assert_eq!(cats(&cases), [Boundary]);
        assert_eq!(cases[0].pred, Some(Span::new(1, 6, "PER")));
    }

    #[test]
    fn gold_centred_accounts_overlapping_predictions_to_gold() {
        // A prediction straddling two gold spans: one boundary case for each gold span, not a
        // third error for the prediction.
        let gold = vec![vec![Span::new(0, 2, "PER"), Span::new(3, 5, "LOC")]];
        let pred = vec![vec![Span::new(1, 4, "PER")]];
        let cases = categorize_with(ErrorMode::GoldCentred, &gold, &pred);
        assert_eq!(cats(&cases), [Boundary, Boundary]);
        assert!(cases.iter().all(|c| c.pred == Some(Span::new(1, 4, "PER"))));
        // An extra prediction overlapping a gold span matched exactly adds no case.
        let gold = vec![vec![Span::new(0, 3, "PER")]];
        let pred = vec![vec![Span::new(0, 3, "PER"), Span::new(2, 5, "LOC")]];
        let cases = categorize_with(ErrorMode::GoldCentred, &gold, &pred);
        assert_eq!(cats(&cases), [Correct]);
        // Exact bounds with the right type win over exact bounds with another.
        let pred = vec![vec![Span::new(0, 3, "LOC"), Span::new(0, 3, "PER")]];
        let cases = categorize_with(ErrorMode::GoldCentred, &gold, &pred);
        assert_eq!(cats(&cases), [Correct]);
        assert_eq!(cases[0].pred, Some(Span::new(0, 3, "PER")));
    }

    /// Deterministic random-ish sentences: flat gold spans, and predictions made by perturbing
    /// them (kept, retyped, widened, shifted, shrunk inside, dropped) plus a few anywhere.
    fn random_sentences(seed: u64, n: usize) -> (Vec<Vec<Span>>, Vec<Vec<Span>>) {
        const TYPES: [&str; 3] = ["PER", "LOC", "ORG"];
        let mut rng = SplitMix64::new(seed);
        let mut gold = Vec::with_capacity(n);
        let mut pred = Vec::with_capacity(n);
        for _ in 0..n {
            let len = 4 + rng.below(12);
            let mut g = Vec::new();
            let mut i = rng.below(2);
            while i < len {
                let width = 1 + rng.below(4);
                if i + width > len {
                    break;
                }
                g.push(Span::new(i, i + width, TYPES[rng.below(3)]));
                i += width + rng.below(3);
            }
            let mut p = Vec::new();
            for gs in &g {
                let own = TYPES.iter().position(|t| *t == gs.ty).unwrap_or(0);
                let other = TYPES[(own + 1 + rng.below(2)) % 3];
                match rng.below(7) {
                    0 | 1 => p.push(gs.clone()),
                    2 => p.push(Span::new(gs.start, gs.end, other)),
                    3 => p.push(Span::new(gs.start, gs.end + 1, gs.ty.clone())),
                    4 => p.push(Span::new(gs.start.saturating_sub(1), gs.end, other)),
                    5 if gs.len() > 1 => p.push(Span::new(gs.start + 1, gs.end, other)),
                    _ => {}
                }
            }
            for _ in 0..rng.below(3) {
                let start = rng.below(len + 2);
                p.push(Span::new(
                    start,
                    start + 1 + rng.below(3),
                    TYPES[rng.below(3)],
                ));
            }
            p.sort();
            gold.push(g);
            pred.push(p);
        }
        (gold, pred)
    }

    #[test]
    fn gold_centred_categories_partition_the_errors() {
        let (gold, pred) = random_sentences(13, 300);
        let cases = categorize_with(ErrorMode::GoldCentred, &gold, &pred);
        let summary = summarize(&cases);
        let count = |cat: ErrorCategory| summary.counts[&cat];
        let n_gold: usize = gold.iter().map(Vec::len).sum();
        let lonely: usize = gold
            .iter()
            .zip(&pred)
            .map(|(g, p)| {
                p.iter()
                    .filter(|ps| !g.iter().any(|gs| gs.overlaps(ps)))
                    .count()
            })
            .sum();
        let strict_tp: usize = gold
            .iter()
            .zip(&pred)
            .map(|(g, p)| g.iter().filter(|gs| p.contains(gs)).count())
            .sum();
        assert_eq!(
            count(Correct) + count(Boundary) + count(Type) + count(Missed),
            n_gold
        );
        assert_eq!(count(Spurious), lonely);
        assert_eq!(count(BoundaryType), 0);
        assert_eq!(cases.len(), n_gold + lonely);
        let errors = cases.iter().filter(|c| c.category.is_error()).count();
        assert_eq!(
            errors,
            count(Boundary) + count(Type) + count(Missed) + count(Spurious)
        );
        assert_eq!(count(Correct), strict_tp);
        // Each gold span is accounted for exactly once, in order.
        for (s, g) in gold.iter().enumerate() {
            let accounted: Vec<&Span> = cases
                .iter()
                .filter(|c| c.sentence == s && c.category != Spurious)
                .filter_map(|c| c.gold.as_ref())
                .collect();
            assert_eq!(accounted, g.iter().collect::<Vec<_>>());
        }
        for cat in [Correct, Boundary, Type, Spurious, Missed] {
            assert!(count(cat) > 0, "{} never occurs", cat.name());
        }
    }

    #[test]
    fn nerlab_mode_is_unchanged() {
        let (gold, pred) = random_sentences(7, 200);
        let cases = categorize_with(ErrorMode::Nerlab, &gold, &pred);
        assert_eq!(cases, categorize(&gold, &pred));
        assert_eq!(ErrorMode::default(), ErrorMode::Nerlab);
        // One case per prediction, plus the gold spans nothing overlaps.
        let n_pred: usize = pred.iter().map(Vec::len).sum();
        let not_missed = cases.iter().filter(|c| c.category != Missed).count();
        assert_eq!(not_missed, n_pred);
    }

    #[test]
    fn error_mode_names() {
        for mode in ErrorMode::ALL {
            assert_eq!(mode.name().parse::<ErrorMode>(), Ok(mode));
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{}\"", mode.name()));
            assert_eq!(serde_json::from_str::<ErrorMode>(&json).unwrap(), mode);
        }
        for s in ["gold-centred", "gold_centred", "gold", "Gold-Centred"] {
            assert_eq!(s.parse::<ErrorMode>(), Ok(ErrorMode::GoldCentred));
        }
        assert_eq!("nerlab".parse::<ErrorMode>(), Ok(ErrorMode::Nerlab));
        assert!("seqeval".parse::<ErrorMode>().is_err());
    }
}
