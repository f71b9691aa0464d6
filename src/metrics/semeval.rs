//! The SemEval-2013 Task 9.1 schema (Segura-Bedmar et al.) as nervaluate 1.2.1 computes it:
//! four scenarios (strict, exact, partial, ent_type), each counting correct, incorrect, partial,
//! missed and spurious entities, overall and per entity type. A line-for-line port of nervaluate's
//! `ListLoader` and its four `EvaluationStrategy` classes, including their order-dependent matching
//! (the first overlapping gold entity is taken as the partner of an incorrect prediction).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// nervaluate's `Entity`: `start..=end`, inclusive as in nervaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ent<'a> {
    label: &'a str,
    start: usize,
    end: usize,
}

/// nervaluate's `EvaluationResult` for one scenario.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SemEvalCounts {
    pub correct: usize,
    pub incorrect: usize,
    pub partial: usize,
    pub missed: usize,
    pub spurious: usize,
    pub actual: usize,
    pub possible: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl SemEvalCounts {
    fn add(&mut self, o: &SemEvalCounts) {
        self.correct += o.correct;
        self.incorrect += o.incorrect;
        self.partial += o.partial;
        self.missed += o.missed;
        self.spurious += o.spurious;
    }

    /// `EvaluationResult.compute_metrics`.
    fn compute(&mut self, partial_or_type: bool) {
        self.actual = self.correct + self.incorrect + self.partial + self.spurious;
        self.possible = self.correct + self.incorrect + self.partial + self.missed;
        let credit = if partial_or_type {
            self.correct as f64 + 0.5 * self.partial as f64
        } else {
            self.correct as f64
        };
        self.precision = if self.actual > 0 {
            credit / self.actual as f64
        } else {
            0.0
        };
        self.recall = if self.possible > 0 {
            credit / self.possible as f64
        } else {
            0.0
        };
        let denom = self.precision + self.recall;
        self.f1 = if denom > 0.0 {
            2.0 * (self.precision * self.recall) / denom
        } else {
            0.0
        };
    }
}

/// The four scenarios.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Scenarios {
    pub strict: SemEvalCounts,
    pub exact: SemEvalCounts,
    pub partial: SemEvalCounts,
    pub ent_type: SemEvalCounts,
}

/// Overall and per-type results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SemEval {
    #[serde(flatten)]
    pub overall: Scenarios,
    pub per_type: BTreeMap<String, Scenarios>,
}

/// nervaluate's `ListLoader.load` for one document: its own chunking, lenient about `I-` after
/// `O`. Fails on tags that start with neither `B-` nor `I-` (nervaluate raises `ValueError`).
fn load(doc: &[String]) -> Result<Vec<Ent<'_>>, String> {
    let mut ents = Vec::new();
    let mut start: Option<usize> = None;
    let mut ent_type: Option<&str> = None;
    let check = |tag: &str| {
        if tag.starts_with("B-") || tag.starts_with("I-") {
            Ok(())
        } else {
            Err(format!(
                "invalid tag format for the SemEval schema: {tag:?} (expected IOB2)"
            ))
        }
    };
    for (offset, tag) in doc.iter().enumerate() {
        let tag = tag.as_str();
        if tag == "O" {
            if let (Some(ty), Some(s)) = (ent_type, start) {
                ents.push(Ent {
                    label: ty,
                    start: s,
                    end: offset - 1,
                });
            }
            start = None;
            ent_type = None;
        } else if ent_type.is_none() {
            check(tag)?;
            ent_type = Some(&tag[2..]);
            start = Some(offset);
        } else if ent_type != Some(tag.get(2..).unwrap_or("")) || tag.starts_with('B') {
            if let (Some(ty), Some(s)) = (ent_type, start) {
                ents.push(Ent {
                    label: ty,
                    start: s,
                    end: offset - 1,
                });
            }
            check(tag)?;
            ent_type = Some(&tag[2..]);
            start = Some(offset);
        }
    }
    if let (Some(ty), Some(s)) = (ent_type, start) {
        ents.push(Ent {
            label: ty,
            start: s,
            end: doc.len() - 1,
        });
    }
    Ok(ents)
}

/// `EvaluationStrategy._has_sufficient_overlap` with the default `min_overlap_percentage=1.0`.
fn sufficient_overlap(pred: &Ent, gold: &Ent) -> bool {
    if pred.start > gold.end || pred.end < gold.start {
        return false;
    }
    let overlap = (pred.end.min(gold.end) - pred.start.max(gold.start) + 1) as f64;
    let span = (gold.end - gold.start + 1) as f64;
    (overlap / span) * 100.0 >= 1.0
}

fn same_bounds(a: &Ent, b: &Ent) -> bool {
    a.start == b.start && a.end == b.end
}

#[derive(Clone, Copy)]
enum Strategy {
    Strict,
    Exact,
    Partial,
    EntType,
}

/// What a predicted entity counts as, with the gold entity it takes.
#[derive(Clone, Copy)]
enum Outcome {
    Correct,
    Incorrect,
    Partial,
}

/// The first free gold entity that `hit`s, else the first free one that overlaps enough (`Err`).
fn first_hit(
    p: &Ent,
    gold: &[&Ent],
    matched: &[bool],
    hit: impl Fn(&Ent) -> bool,
) -> Option<Result<usize, usize>> {
    let mut overlapping: Option<usize> = None;
    for (ti, g) in gold.iter().enumerate() {
        if matched[ti] {
            continue;
        }
        if hit(g) {
            return Some(Ok(ti));
        }
        if overlapping.is_none() && sufficient_overlap(p, g) {
            overlapping = Some(ti);
        }
    }
    overlapping.map(Err)
}

/// nervaluate's `ent_type`: the nearest overlapping gold entity of the same type, else the first
/// overlapping one of another type.
fn nearest_same_type(p: &Ent, gold: &[&Ent], matched: &[bool]) -> Option<Result<usize, usize>> {
    let mut best: Option<(usize, usize)> = None; // (distance, gold index)
    let mut incorrect: Option<usize> = None;
    for (ti, g) in gold.iter().enumerate() {
        if matched[ti] || !sufficient_overlap(p, g) {
            continue;
        }
        let distance = p.start.abs_diff(g.start) + p.end.abs_diff(g.end);
        if p.label == g.label {
            if best.is_none_or(|(d, _)| distance < d) {
                best = Some((distance, ti));
            }
        } else if incorrect.is_none() {
            incorrect = Some(ti);
        }
    }
    best.map(|(_, ti)| Ok(ti)).or(incorrect.map(Err))
}

fn evaluate(strategy: Strategy, gold: &[&Ent], pred: &[&Ent]) -> SemEvalCounts {
    let mut r = SemEvalCounts::default();
    let mut matched = vec![false; gold.len()];
    for p in pred {
        // Same bounds imply enough overlap, so every strategy's hit is among the overlapping.
        let (found, miss) = match strategy {
            Strategy::Strict => (
                first_hit(p, gold, &matched, |g| {
                    same_bounds(p, g) && p.label == g.label
                }),
                Outcome::Incorrect,
            ),
            Strategy::Exact => (
                first_hit(p, gold, &matched, |g| same_bounds(p, g)),
                Outcome::Incorrect,
            ),
            Strategy::Partial => (
                first_hit(p, gold, &matched, |g| same_bounds(p, g)),
                Outcome::Partial,
            ),
            Strategy::EntType => (nearest_same_type(p, gold, &matched), Outcome::Incorrect),
        };
        let (outcome, ti) = match found {
            Some(Ok(ti)) => (Outcome::Correct, ti),
            Some(Err(ti)) => (miss, ti),
            None => {
                r.spurious += 1;
                continue;
            }
        };
        matched[ti] = true;
        match outcome {
            Outcome::Correct => r.correct += 1,
            Outcome::Incorrect => r.incorrect += 1,
            Outcome::Partial => r.partial += 1,
        }
    }
    r.missed = matched.iter().filter(|&&m| !m).count();
    r
}

fn evaluate_all(gold: &[&Ent], pred: &[&Ent]) -> Scenarios {
    Scenarios {
        strict: evaluate(Strategy::Strict, gold, pred),
        exact: evaluate(Strategy::Exact, gold, pred),
        partial: evaluate(Strategy::Partial, gold, pred),
        ent_type: evaluate(Strategy::EntType, gold, pred),
    }
}

fn accumulate(total: &mut Scenarios, doc: &Scenarios) {
    total.strict.add(&doc.strict);
    total.exact.add(&doc.exact);
    total.partial.add(&doc.partial);
    total.ent_type.add(&doc.ent_type);
}

fn finish(s: &mut Scenarios) {
    s.strict.compute(false);
    s.exact.compute(false);
    s.partial.compute(true);
    s.ent_type.compute(true);
}

/// `Evaluator(gold, pred, tags=<every type used>, loader="list").evaluate()`. Tags must be IOB2.
pub fn semeval(gold: &[Vec<String>], pred: &[Vec<String>]) -> Result<SemEval, String> {
    let gold_docs: Vec<Vec<Ent>> = gold.iter().map(|d| load(d)).collect::<Result<_, _>>()?;
    let pred_docs: Vec<Vec<Ent>> = pred.iter().map(|d| load(d)).collect::<Result<_, _>>()?;
    let used: BTreeSet<&str> = gold_docs
        .iter()
        .chain(&pred_docs)
        .flatten()
        .map(|e| e.label)
        .collect();
    let mut out = SemEval::default();
    let mut per_type: BTreeMap<&str, Scenarios> =
        used.iter().map(|&t| (t, Scenarios::default())).collect();
    for (g, p) in gold_docs.iter().zip(&pred_docs) {
        let g_all: Vec<&Ent> = g.iter().collect();
        let p_all: Vec<&Ent> = p.iter().collect();
        accumulate(&mut out.overall, &evaluate_all(&g_all, &p_all));
        for (&ty, total) in per_type.iter_mut() {
            let gt: Vec<&Ent> = g.iter().filter(|e| e.label == ty).collect();
            let pt: Vec<&Ent> = p.iter().filter(|e| e.label == ty).collect();
            accumulate(total, &evaluate_all(&gt, &pt));
        }
    }
    finish(&mut out.overall);
    for (ty, mut s) in per_type {
        finish(&mut s);
        out.per_type.insert(ty.to_string(), s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::scheme::tag_docs as docs;

    #[test]
    fn nervaluate_readme_example() {
        // nervaluate README: true = [['O','O','B-PER','I-PER','O'], ['O','B-LOC','I-LOC','B-LOC','I-LOC','O']]
        // pred = [['O','O','B-PER','I-PER','O'], ['O','B-LOC','I-LOC','O','B-LOC','I-LOC']]
        // Evaluator(true, pred, tags=['LOC','PER'], loader='list').evaluate()['overall']['strict']:
        // correct=2, incorrect=1, missed=0, spurious=0 (the shifted LOC overlaps the second gold LOC).
        let gold = docs(&["O O B-PER I-PER O", "O B-LOC I-LOC B-LOC I-LOC O"]);
        let pred = docs(&["O O B-PER I-PER O", "O B-LOC I-LOC O B-LOC I-LOC"]);
        let r = semeval(&gold, &pred).unwrap();
        assert_eq!(
            (
                r.overall.strict.correct,
                r.overall.strict.incorrect,
                r.overall.strict.missed,
                r.overall.strict.spurious
            ),
            (2, 1, 0, 0)
        );
        assert_eq!(r.overall.partial.partial, 1);
        assert!((r.overall.partial.precision - 2.5 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn rejects_bioes_tags() {
        assert!(semeval(&docs(&["S-PER"]), &docs(&["O"])).is_err());
    }
}
