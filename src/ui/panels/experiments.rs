//! The experiment table: every run with its model, method, tricks and dev scores side by side,
//! sortable, exportable as CSV.

use std::collections::BTreeSet;
use std::path::PathBuf;

use egui::{RichText, Ui};
use serde::{Deserialize, Serialize};

use super::super::context::{Action, Export, PanelCtx};
use super::super::store::RunEntry;
use crate::train::config::Shots;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExperimentsState {
    /// Column to sort by ("" = as listed) and direction.
    pub sort_by: String,
    pub descending: bool,
}

/// One table row: fixed columns, then per-type F1 by type.
pub fn row(r: &RunEntry, types: &BTreeSet<String>) -> Vec<String> {
    let c = r.config.as_ref();
    let method = c.map_or(String::new(), |c| {
        let m = &c.model;
        let mut parts = vec![];
        if m.marker != crate::model::align::Marker::None {
            parts.push(format!("MANER {:?}", m.marker).to_lowercase());
        }
        if m.word_mask_prob > 0.0 {
            parts.push(format!("word mask {}", m.word_mask_prob));
        }
        if m.prompt {
            parts.push("prompt".into());
        }
        if c.finetune.is_some() {
            parts.push("polyglot+finetune".into());
        }
        if let Shots::K(k) = c.data.k_shot {
            parts.push(format!("{k}-shot"));
        }
        if let Some(Shots::K(k)) = c.finetune.as_ref().map(|f| f.k_shot) {
            parts.push(format!("target {k}-shot"));
        }
        if c.init_from.is_some() {
            parts.push("from a run".into());
        }
        if parts.is_empty() {
            "plain".into()
        } else {
            parts.join(", ")
        }
    });
    let tricks = c.map_or(String::new(), |c| {
        let mut t = vec![];
        if c.train.fgm_epsilon > 0.0 {
            t.push(format!("FGM {}", c.train.fgm_epsilon));
        }
        if c.train.rdrop_alpha > 0.0 {
            t.push(format!("R-Drop {}", c.train.rdrop_alpha));
        }
        if c.model.msd_samples > 1 {
            t.push(format!("MSD {}", c.model.msd_samples));
        }
        t.join(", ")
    });
    let report = r.report.as_deref();
    let mut cells = vec![
        r.name.clone(),
        r.phase.label().to_string(),
        c.map_or(String::new(), |c| c.model.source.clone()),
        c.and_then(|c| serde_json::to_value(c.model.head).ok())
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        method,
        tricks,
        r.best_f1.map_or("-".into(), |f| format!("{f:.4}")),
        report.map_or("-".into(), |x| format!("{:.4}", x.macro_avg.f1)),
        report
            .and_then(|x| x.char.as_ref())
            .map_or("-".into(), |ch| format!("{:.4}", ch.macro_f1_with_o)),
    ];
    for ty in types {
        cells.push(
            report
                .and_then(|x| x.per_type.get(ty))
                .map_or("-".into(), |s| format!("{:.4}", s.f1)),
        );
    }
    cells
}

const FIXED: [&str; 9] = [
    "run",
    "state",
    "model",
    "head",
    "method",
    "tricks",
    "best micro F1",
    "macro F1",
    "char F1 (with O)",
];

pub fn ui(s: &mut ExperimentsState, ui: &mut Ui, cx: &PanelCtx<'_>) -> Vec<Action> {
    let mut actions = Vec::new();
    let types: BTreeSet<String> = cx
        .store
        .runs
        .iter()
        .filter_map(|r| r.report.as_ref())
        .flat_map(|r| r.per_type.keys().cloned())
        .collect();
    let mut header: Vec<String> = FIXED.iter().map(|s| s.to_string()).collect();
    header.extend(types.iter().map(|t| format!("{t} F1")));
    let mut rows: Vec<Vec<String>> = cx.store.runs.iter().map(|r| row(r, &types)).collect();
    if let Some(col) = header.iter().position(|h| *h == s.sort_by) {
        rows.sort_by(|a, b| {
            let (x, y) = (&a[col], &b[col]);
            let o = match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(p), Ok(q)) => p.total_cmp(&q),
                _ => x.cmp(y),
            };
            if s.descending { o.reverse() } else { o }
        });
    }
    ui.horizontal(|ui| {
        ui.heading("Experiments");
        if ui.button("export CSV").clicked() {
            let mut csv = header.join(",") + "\n";
            for r in &rows {
                csv += &(r
                    .iter()
                    .map(|c| {
                        if c.contains(',') {
                            format!("\"{c}\"")
                        } else {
                            c.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",")
                    + "\n");
            }
            actions.push(Action::Export(Export::Csv {
                path: PathBuf::from("exports/experiments.csv"),
                content: csv,
            }));
        }
        ui.label(RichText::new("click a column to sort").weak());
    });
    egui::ScrollArea::both()
        .id_salt("experiments")
        .show(ui, |ui| {
            egui::Grid::new("experiments-grid")
                .striped(true)
                .show(ui, |ui| {
                    for h in &header {
                        let arrow = if *h == s.sort_by {
                            if s.descending { " ▼" } else { " ▲" }
                        } else {
                            ""
                        };
                        if ui
                            .button(RichText::new(format!("{h}{arrow}")).strong())
                            .clicked()
                        {
                            if s.sort_by == *h {
                                s.descending = !s.descending;
                            } else {
                                s.sort_by = h.clone();
                                s.descending = true;
                            }
                        }
                    }
                    ui.end_row();
                    for r in &rows {
                        for (i, c) in r.iter().enumerate() {
                            if i == 0 && ui.link(c).clicked() {
                                actions.push(Action::Select(c.clone()));
                            } else if i != 0 {
                                ui.label(c);
                            }
                        }
                        ui.end_row();
                    }
                });
        });
    actions
}
