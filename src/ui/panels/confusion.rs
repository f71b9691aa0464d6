//! Confusion matrices, token-level (gold tag x predicted tag) and span-level (gold type x predicted
//! type, a MISSED column and a SPURIOUS row), as counts or row-normalized. Clicking a cell lists
//! the sentences behind it with gold and predicted spans highlighted.

use egui::{RichText, Ui, Vec2};
use serde::{Deserialize, Serialize};

use super::super::context::{Action, PanelCtx};
use super::super::theme;
use super::super::widgets::{Heatmap, sentence_list};
use crate::data::Span;
use crate::metrics::ScoreReport;
use crate::metrics::confusion::{MISSED, Matrix, SPURIOUS};
use crate::protocol::DevView;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Level {
    Token,
    #[default]
    Span,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfusionState {
    pub level: Level,
    pub normalized: bool,
    /// The clicked cell: (row label, column label).
    pub selected: Option<(String, String)>,
}

/// One sentence behind a cell, with the spans to highlight (scoring-view positions).
#[derive(Debug, Clone, PartialEq)]
pub struct CellHit {
    pub sentence: usize,
    pub gold: Vec<Span>,
    pub pred: Vec<Span>,
}

/// The sentences behind a span-matrix cell.
pub fn span_cell_sentences(report: &ScoreReport, row: &str, col: &str) -> Vec<CellHit> {
    let mut out = Vec::new();
    for (s, (g, p)) in report.gold_spans.iter().zip(&report.pred_spans).enumerate() {
        let mut gold = Vec::new();
        let mut pred = Vec::new();
        if row == SPURIOUS {
            pred.extend(
                p.iter()
                    .filter(|ps| ps.ty == col && !g.iter().any(|gs| gs.same_bounds(ps)))
                    .cloned(),
            );
        } else if col == MISSED {
            gold.extend(
                g.iter()
                    .filter(|gs| gs.ty == row && !p.iter().any(|ps| ps.same_bounds(gs)))
                    .cloned(),
            );
        } else {
            for gs in g.iter().filter(|gs| gs.ty == row) {
                for ps in p.iter().filter(|ps| ps.ty == col && ps.same_bounds(gs)) {
                    gold.push(gs.clone());
                    pred.push(ps.clone());
                }
            }
        }
        if !gold.is_empty() || !pred.is_empty() {
            out.push(CellHit {
                sentence: s,
                gold,
                pred,
            });
        }
    }
    out
}

/// The sentences with a token tagged `row` in gold and `col` by the model (all spans shown).
pub fn token_cell_sentences(
    report: &ScoreReport,
    dev: &DevView,
    row: &str,
    col: &str,
) -> Vec<CellHit> {
    (0..dev.gold.len())
        .filter(|&s| {
            dev.gold[s]
                .iter()
                .zip(&dev.pred[s])
                .any(|(g, p)| g == row && p == col)
        })
        .map(|s| CellHit {
            sentence: s,
            gold: report.gold_spans.get(s).cloned().unwrap_or_default(),
            pred: report.pred_spans.get(s).cloned().unwrap_or_default(),
        })
        .collect()
}

/// Each cell's count and row-normalized share (`norm`), mapped by `f`.
fn map_cells<T>(m: &Matrix, norm: &[Vec<f64>], f: impl Fn(usize, f64) -> T) -> Vec<Vec<T>> {
    m.counts
        .iter()
        .zip(norm)
        .map(|(row, nrow)| row.iter().zip(nrow).map(|(&c, &n)| f(c, n)).collect())
        .collect()
}

fn cell_values(m: &Matrix, normalized: bool) -> (Vec<Vec<f32>>, Vec<Vec<String>>) {
    let norm = m.row_normalized();
    let max = m.counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f32;
    let values = map_cells(m, &norm, |c, n| {
        if normalized {
            n as f32
        } else {
            (c as f32 / max).sqrt()
        }
    });
    let texts = map_cells(m, &norm, |c, n| {
        if c == 0 {
            String::new()
        } else if normalized {
            format!("{n:.2}")
        } else {
            c.to_string()
        }
    });
    (values, texts)
}

/// The matrix as a grid of accessible buttons (small label sets) or a painted heatmap.
fn matrix_ui(ui: &mut Ui, m: &Matrix, s: &mut ConfusionState, cx: &PanelCtx<'_>) {
    let (values, texts) = cell_values(m, s.normalized);
    let selected = s.selected.as_ref().and_then(|(r, c)| {
        Some((
            m.rows.iter().position(|x| x == r)?,
            m.cols.iter().position(|x| x == c)?,
        ))
    });
    if m.rows.len() * m.cols.len() > 900 {
        let clicked = Heatmap {
            id: "confusion-heat",
            rows: &m.rows,
            cols: &m.cols,
            values: &values,
            texts: None,
            cell: 10.0,
            theme: cx.theme,
            selected,
            vertical_cols: true,
            tooltip: true,
        }
        .show(ui);
        if let Some((r, c)) = clicked {
            s.selected = Some((m.rows[r].clone(), m.cols[c].clone()));
        }
        return;
    }
    let cell = 44.0;
    egui::Grid::new("confusion-grid")
        .spacing(Vec2::splat(2.0))
        .show(ui, |ui| {
            ui.label(RichText::new("gold \\ predicted").weak());
            for c in &m.cols {
                ui.label(RichText::new(c).strong());
            }
            ui.end_row();
            for (r, row_name) in m.rows.iter().enumerate() {
                ui.label(RichText::new(row_name).strong());
                for (c, col_name) in m.cols.iter().enumerate() {
                    let v = values[r][c];
                    let fill = theme::heat(v, cx.theme);
                    let mut button = egui::Button::new(
                        RichText::new(&texts[r][c]).color(theme::heat_text(v, cx.theme)),
                    )
                    .fill(fill)
                    .min_size(Vec2::new(cell, 22.0));
                    if selected == Some((r, c)) {
                        button = button.stroke(egui::Stroke::new(2.0, theme::pred_outline()));
                    }
                    let count = m.counts[r][c];
                    let label = format!("gold {row_name}, predicted {col_name}: {count}");
                    let resp = ui.add(button).on_hover_text(&label);
                    resp.widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::Button, true, &label)
                    });
                    if resp.clicked() {
                        s.selected = Some((row_name.clone(), col_name.clone()));
                    }
                }
                ui.end_row();
            }
        });
}

pub fn ui(s: &mut ConfusionState, ui: &mut Ui, cx: &PanelCtx<'_>) -> Vec<Action> {
    let Some((run, report)) = cx.selected_report(ui) else {
        return Vec::new();
    };
    ui.horizontal(|ui| {
        ui.heading(format!("Confusion: {}", run.name));
        ui.separator();
        if ui
            .selectable_value(&mut s.level, Level::Span, "span-level")
            .clicked()
            || ui
                .selectable_value(&mut s.level, Level::Token, "token-level")
                .clicked()
        {
            s.selected = None;
        }
        ui.checkbox(&mut s.normalized, "row-normalized");
    });
    let m = match s.level {
        Level::Span => &report.confusion.span,
        Level::Token => &report.confusion.token,
    };
    egui::ScrollArea::both()
        .id_salt("confusion-matrix")
        .max_height(ui.available_height() * 0.55)
        .show(ui, |ui| {
            matrix_ui(ui, m, s, cx);
        });
    ui.separator();
    let Some((row, col)) = s.selected.clone() else {
        ui.label("Click a cell to list its sentences.");
        return Vec::new();
    };
    let Some(dev) = run.dev.as_ref() else {
        ui.label("The dev sentences of this run are not loaded.");
        return Vec::new();
    };
    let hits = match s.level {
        Level::Span => span_cell_sentences(report, &row, &col),
        Level::Token => token_cell_sentences(report, dev, &row, &col),
    };
    ui.label(
        RichText::new(format!(
            "{} sentences: gold {row}, predicted {col}",
            hits.len()
        ))
        .strong(),
    );
    ui.horizontal(|ui| {
        ui.colored_label(theme::gold_outline(), "upper line: gold");
        ui.colored_label(theme::pred_outline(), "lower line: predicted");
        ui.weak("(only the cell's spans are marked on span-level cells)");
    });
    sentence_list(
        ui,
        "confusion-sentences",
        dev,
        &hits
            .iter()
            .map(|h| (h.sentence, h.gold.clone(), h.pred.clone(), String::new()))
            .collect::<Vec<_>>(),
        cx.theme,
    );
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{ScoreOptions, score};

    fn tags(s: &[&str]) -> Vec<Vec<String>> {
        s.iter()
            .map(|d| d.split_whitespace().map(String::from).collect())
            .collect()
    }

    #[test]
    fn cells_list_their_sentences() {
        let gold = tags(&["B-PS O B-LC", "B-OG O", "O O"]);
        let pred = tags(&["B-PS O B-OG", "O O", "B-PS O"]);
        let r = score(&gold, &pred, None, &ScoreOptions::default()).unwrap();
        let hits = span_cell_sentences(&r, "LC", "OG");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].sentence, 0);
        assert_eq!(span_cell_sentences(&r, "OG", MISSED)[0].sentence, 1);
        assert_eq!(span_cell_sentences(&r, SPURIOUS, "PS")[0].sentence, 2);
        assert_eq!(span_cell_sentences(&r, "PS", "PS").len(), 1);
        let dev = DevView {
            gold: std::sync::Arc::new(gold.clone()),
            pred: pred.clone(),
            ..DevView::default()
        };
        let t = token_cell_sentences(&r, &dev, "O", "B-PS");
        assert_eq!(t.iter().map(|h| h.sentence).collect::<Vec<_>>(), vec![2]);
    }
}
