//! Errors: counts per category (boundary, type, boundary+type, spurious, missed) per entity type,
//! the SemEval-2013 schema, and a filterable, virtualized list of the sentences with gold and
//! predicted spans coloured by type.

use egui::{RichText, Ui};
use serde::{Deserialize, Serialize};

use super::super::context::{Action, PanelCtx};
use super::super::theme;
use super::super::widgets::{SentenceItem, labeled, sentence_list, sentence_text};
use crate::metrics::ScoreReport;
use crate::metrics::errors::{ErrorCase, ErrorCategory, ErrorMode};
use crate::protocol::DevView;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorsState {
    /// Categories shown in the list.
    pub categories: Vec<ErrorCategory>,
    /// Entity type filter ("" = all).
    pub entity_type: String,
    /// Text the sentence must contain.
    pub search: String,
    /// nerlab's categories, or seed 003's gold-centred ones.
    pub mode: ErrorMode,
}

impl Default for ErrorsState {
    fn default() -> Self {
        Self {
            categories: ErrorCategory::ALL
                .iter()
                .copied()
                .filter(|c| c.is_error())
                .collect(),
            entity_type: String::new(),
            search: String::new(),
            mode: ErrorMode::Nerlab,
        }
    }
}

/// The cases the filters keep, as list items (sentence, gold, predicted, note).
pub fn filtered(s: &ErrorsState, report: &ScoreReport, dev: &DevView) -> Vec<SentenceItem> {
    let search = s.search.trim();
    cases_of(report, s.mode)
        .iter()
        .filter(|c| s.categories.contains(&c.category))
        .filter(|c| s.entity_type.is_empty() || c.entity_type() == s.entity_type)
        .filter(|c| {
            search.is_empty()
                || dev
                    .tokens
                    .get(c.sentence)
                    .is_some_and(|t| sentence_text(t, dev.space_tokens).contains(search))
        })
        .map(|c: &ErrorCase| {
            let note = match (&c.gold, &c.pred) {
                (Some(g), Some(p)) if g != p => {
                    format!("{}: gold {}, predicted {}", c.category.name(), g.ty, p.ty)
                }
                (Some(g), _) => format!("{}: {}", c.category.name(), g.ty),
                (None, Some(p)) => format!("{}: {}", c.category.name(), p.ty),
                (None, None) => c.category.name().to_string(),
            };
            (
                c.sentence,
                c.gold.iter().cloned().collect(),
                c.pred.iter().cloned().collect(),
                note,
            )
        })
        .collect()
}

/// The categorized spans of a report in `mode`.
fn cases_of(report: &ScoreReport, mode: ErrorMode) -> &[ErrorCase] {
    match mode {
        ErrorMode::Nerlab => &report.cases,
        ErrorMode::GoldCentred => &report.cases_gold_centred,
    }
}

/// Counts per category and entity type, in `mode`.
fn counts_ui(ui: &mut Ui, report: &ScoreReport, mode: ErrorMode) {
    let summary = match mode {
        ErrorMode::Nerlab => &report.errors,
        ErrorMode::GoldCentred => &report.errors_gold_centred,
    };
    let categories = mode.categories();
    ui.label(RichText::new("per entity type").strong());
    egui::Grid::new("error-counts")
        .striped(true)
        .show(ui, |ui| {
            ui.label("type");
            for &c in &categories {
                ui.colored_label(theme::error_category(c), c.name());
            }
            ui.end_row();
            let mut rows: Vec<(&String, _)> = summary.per_type.iter().collect();
            rows.sort_by(|a, b| a.0.cmp(b.0));
            for (ty, m) in rows {
                ui.colored_label(theme::entity(ty), ty);
                for &c in &categories {
                    ui.label(m.get(&c).copied().unwrap_or(0).to_string());
                }
                ui.end_row();
            }
            ui.label(RichText::new("all").strong());
            for &c in &categories {
                ui.label(
                    RichText::new(summary.counts.get(&c).copied().unwrap_or(0).to_string())
                        .strong(),
                );
            }
            ui.end_row();
        });
}

pub fn ui(s: &mut ErrorsState, ui: &mut Ui, cx: &PanelCtx<'_>) -> Vec<Action> {
    let Some((run, report)) = cx.selected_report(ui) else {
        return Vec::new();
    };
    ui.heading(format!("Errors: {}", run.name));
    ui.horizontal(|ui| {
        ui.label("categories:");
        ui.radio_value(&mut s.mode, ErrorMode::Nerlab, "per prediction (nerlab)")
            .on_hover_text(
                "every predicted span gets one category against the gold spans; unmatched gold spans are missed",
            );
        ui.radio_value(&mut s.mode, ErrorMode::GoldCentred, "gold-centred (seed 003)")
            .on_hover_text(
                "every gold span gets one category (boundary regardless of type; a prediction strictly inside is a miss); predictions touching no gold span are spurious",
            );
    });
    ui.columns(2, |cols| {
        counts_ui(&mut cols[0], report, s.mode);
        let ui = &mut cols[1];
        ui.label(RichText::new("SemEval-2013 (nervaluate)").strong());
        egui::Grid::new("semeval").striped(true).show(ui, |ui| {
            for h in [
                "scenario", "COR", "INC", "PAR", "MIS", "SPU", "P", "R", "F1",
            ] {
                ui.label(h);
            }
            ui.end_row();
            let o = &report.semeval.overall;
            for (name, c) in [
                ("strict", &o.strict),
                ("exact", &o.exact),
                ("partial", &o.partial),
                ("ent_type", &o.ent_type),
            ] {
                ui.label(name);
                for v in [c.correct, c.incorrect, c.partial, c.missed, c.spurious] {
                    ui.label(v.to_string());
                }
                for v in [c.precision, c.recall, c.f1] {
                    ui.label(format!("{v:.3}"));
                }
                ui.end_row();
            }
        });
    });
    ui.separator();
    ui.horizontal_wrapped(|ui| {
        ui.label("show");
        for c in s.mode.categories() {
            let mut on = s.categories.contains(&c);
            if ui
                .checkbox(
                    &mut on,
                    RichText::new(c.name()).color(theme::error_category(c)),
                )
                .changed()
            {
                if on {
                    s.categories.push(c);
                } else {
                    s.categories.retain(|x| *x != c);
                }
            }
        }
        ui.separator();
        egui::ComboBox::from_id_salt("error-type")
            .selected_text(if s.entity_type.is_empty() {
                "all types".to_string()
            } else {
                s.entity_type.clone()
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut s.entity_type, String::new(), "all types");
                for ty in report.per_type.keys() {
                    ui.selectable_value(&mut s.entity_type, ty.clone(), ty);
                }
            })
            .response
            .on_hover_text("entity type");
        labeled(
            ui,
            "containing",
            egui::TextEdit::singleline(&mut s.search)
                .desired_width(160.0)
                .hint_text("text"),
        );
    });
    let Some(dev) = run.dev.as_ref() else {
        ui.label("The dev sentences of this run are not loaded.");
        return Vec::new();
    };
    let items = filtered(s, report, dev);
    ui.label(format!("{} cases", items.len()));
    sentence_list(ui, "error-sentences", dev, &items, cx.theme);
    Vec::new()
}
