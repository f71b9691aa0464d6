//! Confusion matrices. Token level: gold tag x predicted tag. Span level: gold type x predicted type
//! for spans with identical bounds, plus a `MISSED` column (gold spans no prediction has the bounds
//! of) and a `SPURIOUS` row (predictions whose bounds match no gold span). With exact bounds the
//! diagonal is each type's correct count, row sums are gold counts and column sums predicted
//! counts, so the matrix agrees with strict entity F1 cell for cell.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::data::Span;

/// Name of the span matrix's extra column: gold spans that were missed.
pub const MISSED: &str = "MISSED";
/// Name of the span matrix's extra row: predictions that match no gold span.
pub const SPURIOUS: &str = "SPURIOUS";

/// A labelled count matrix; rows are gold, columns predictions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matrix {
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub counts: Vec<Vec<usize>>,
}

impl Matrix {
    fn new(rows: Vec<String>, cols: Vec<String>) -> Self {
        let counts = vec![vec![0; cols.len()]; rows.len()];
        Self { rows, cols, counts }
    }

    fn index(labels: &[String], label: &str) -> usize {
        labels.iter().position(|l| l == label).unwrap_or(0)
    }

    pub fn get(&self, row: &str, col: &str) -> usize {
        let (r, c) = (Self::index(&self.rows, row), Self::index(&self.cols, col));
        self.counts[r][c]
    }

    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    /// Each row divided by its sum (rows that sum to 0 stay 0).
    pub fn row_normalized(&self) -> Vec<Vec<f64>> {
        self.counts
            .iter()
            .map(|row| {
                let sum: usize = row.iter().sum();
                row.iter()
                    .map(|&c| if sum == 0 { 0.0 } else { c as f64 / sum as f64 })
                    .collect()
            })
            .collect()
    }
}

/// Gold tag x predicted tag over aligned sequences; labels sorted, the same on both axes.
pub fn token_confusion(gold: &[Vec<String>], pred: &[Vec<String>]) -> Matrix {
    let labels: Vec<String> = gold
        .iter()
        .chain(pred)
        .flatten()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut m = Matrix::new(labels.clone(), labels);
    for (g, p) in gold.iter().zip(pred) {
        for (gt, pt) in g.iter().zip(p) {
            let (r, c) = (Matrix::index(&m.rows, gt), Matrix::index(&m.cols, pt));
            m.counts[r][c] += 1;
        }
    }
    m
}

/// Span-level confusion (see the module docs).
pub fn span_confusion(gold: &[Vec<Span>], pred: &[Vec<Span>]) -> Matrix {
    let types: Vec<String> = gold
        .iter()
        .chain(pred)
        .flatten()
        .map(|s| s.ty.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut rows = types.clone();
    rows.push(SPURIOUS.into());
    let mut cols = types;
    cols.push(MISSED.into());
    let mut m = Matrix::new(rows, cols);
    let (spurious_row, missed_col) = (m.rows.len() - 1, m.cols.len() - 1);
    for (g, p) in gold.iter().zip(pred) {
        for gs in g {
            let r = Matrix::index(&m.rows, &gs.ty);
            let partners: Vec<&Span> = p.iter().filter(|ps| ps.same_bounds(gs)).collect();
            if partners.is_empty() {
                m.counts[r][missed_col] += 1;
            }
            for ps in partners {
                let c = Matrix::index(&m.cols, &ps.ty);
                m.counts[r][c] += 1;
            }
        }
        for ps in p.iter().filter(|ps| !g.iter().any(|gs| gs.same_bounds(ps))) {
            let c = Matrix::index(&m.cols, &ps.ty);
            m.counts[spurious_row][c] += 1;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_matrix_agrees_with_counts() {
        let gold = vec![vec![
            Span::new(0, 2, "PER"),
            Span::new(3, 4, "LOC"),
            Span::new(5, 6, "ORG"),
        ]];
        let pred = vec![vec![
            Span::new(0, 2, "PER"),
            Span::new(3, 4, "ORG"),
            Span::new(7, 8, "LOC"),
        ]];
        let m = span_confusion(&gold, &pred);
        assert_eq!(m.rows, ["LOC", "ORG", "PER", "SPURIOUS"]);
        assert_eq!(m.cols, ["LOC", "ORG", "PER", "MISSED"]);
        assert_eq!(m.get("PER", "PER"), 1);
        assert_eq!(m.get("LOC", "ORG"), 1);
        assert_eq!(m.get("ORG", "MISSED"), 1);
        assert_eq!(m.get("SPURIOUS", "LOC"), 1);
        assert_eq!(m.total(), 4);
    }

    #[test]
    fn token_matrix_counts_pairs() {
        let g = vec![vec!["O".to_string(), "B-PER".into()]];
        let p = vec![vec!["B-PER".to_string(), "B-PER".into()]];
        let m = token_confusion(&g, &p);
        assert_eq!(m.get("O", "B-PER"), 1);
        assert_eq!(m.get("B-PER", "B-PER"), 1);
        assert_eq!(m.row_normalized()[1], vec![1.0, 0.0]);
    }
}
