//! Per-span error categories, for the error analysis a researcher does by hand otherwise.
//!
//! Every predicted span gets exactly one category, decided against the gold spans of its sentence:
//! `correct` (same bounds and type), `type` (same bounds, other type), `boundary` (overlaps a gold
//! span of its type), `boundary_type` (overlaps only gold spans of other types) or `spurious`
//! (overlaps nothing). Every gold span that no prediction overlaps is `missed`. So the first five
//! categories add up to the number of predictions, and `correct` equals strict entity true
//! positives. The partner gold span of a boundary error is the one with the largest overlap (the
//! leftmost on ties).

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
}
