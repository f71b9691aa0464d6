//! Attention: a dev sentence or typed text, a layer and a head (or their mean), as a heatmap over
//! the subword tokens with the tags predicted at them. Computed on the worker.

use egui::{RichText, Ui};
use serde::{Deserialize, Serialize};

use std::path::Path;

use super::super::context::{Action, PanelCtx};
use super::super::store::{AttentionResult, RunEntry};
use super::super::theme::Theme;
use super::super::widgets::{Heatmap, labeled, sentence_text};
use crate::protocol::Command;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AttentionState {
    pub text: String,
    pub dev_sentence: usize,
    pub layer: usize,
    /// `None`: the mean over heads.
    pub head: Option<usize>,
    #[serde(skip)]
    pub request: u64,
    /// The (text, model) of the last request, so a new sentence is sent once.
    #[serde(skip)]
    sent: Option<(String, std::path::PathBuf)>,
    /// The cell under the pointer (query, key), read out above the map instead of a tooltip
    /// that would cover the sentence controls.
    #[serde(skip)]
    hovered: Option<(usize, usize)>,
    /// When the typed text last changed: it is sent once typing pauses (every layer's and head's
    /// weights for every keystroke would pause training and fill memory).
    #[serde(skip)]
    edited: Option<std::time::Instant>,
}

/// How long typing must pause before the typed text is sent (as the tagger waits).
const DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(350);

/// The layer's attention for one head or the mean of all heads.
pub fn attention_matrix(
    weights: &[Vec<Vec<Vec<f32>>>],
    layer: usize,
    head: Option<usize>,
) -> Vec<Vec<f32>> {
    let Some(heads) = weights.get(layer) else {
        return Vec::new();
    };
    match head {
        Some(h) => heads.get(h).cloned().unwrap_or_default(),
        None => {
            let n = heads.len().max(1) as f32;
            let mut out = heads.first().cloned().unwrap_or_default();
            for row in &mut out {
                row.iter_mut().for_each(|x| *x = 0.0);
            }
            for h in heads {
                for (o, r) in out.iter_mut().zip(h) {
                    for (a, b) in o.iter_mut().zip(r) {
                        *a += b / n;
                    }
                }
            }
            out
        }
    }
}

pub fn ui(s: &mut AttentionState, ui: &mut Ui, cx: &PanelCtx<'_>) -> Vec<Action> {
    let mut actions = Vec::new();
    let Some(run) = cx.selected else {
        ui.label("Select a run with a trained model.");
        return actions;
    };
    let Some(model) = run.model_dir() else {
        cx.missing_ui(ui, run, "saved model");
        return actions;
    };
    ui.heading(format!("Attention: {}", run.name));
    text_ui(s, ui, run, model, &mut actions);
    let Some(a) = cx
        .store
        .attention
        .as_ref()
        .filter(|a| a.request == 2_000_000 + s.request)
    else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("computing attention on the worker…");
        });
        return actions;
    };
    let layers = a.weights.len();
    layer_head_ui(s, ui, a);
    let labels = token_labels(a);
    let m = attention_matrix(&a.weights, s.layer.min(layers.saturating_sub(1)), s.head);
    heatmap_ui(s, ui, &labels, &m, cx.theme);
    actions
}

/// The dev sentence or typed text, sent to the worker once each time it changes (or on Show).
fn text_ui(
    s: &mut AttentionState,
    ui: &mut Ui,
    run: &RunEntry,
    model: &Path,
    actions: &mut Vec<Action>,
) {
    ui.horizontal(|ui| {
        if let Some(dev) = run.dev.as_ref().filter(|d| !d.tokens.is_empty()) {
            let max = dev.tokens.len() - 1;
            if labeled(
                ui,
                "dev sentence",
                egui::DragValue::new(&mut s.dev_sentence).range(0..=max),
            )
            .changed()
                || s.text.is_empty()
            {
                s.text = sentence_text(&dev.tokens[s.dev_sentence.min(max)], dev.space_tokens);
            }
        }
        if labeled(
            ui,
            "or type",
            egui::TextEdit::singleline(&mut s.text)
                .desired_width(360.0)
                .id_salt("attention-text"),
        )
        .changed()
        {
            s.edited = Some(std::time::Instant::now());
        }
        let wanted = (s.text.clone(), model.to_path_buf());
        let changed = s.sent.as_ref() != Some(&wanted);
        let typing = s.edited.is_some_and(|t| t.elapsed() < DEBOUNCE);
        if typing {
            ui.ctx().request_repaint_after(DEBOUNCE);
        }
        let show = ui.button("Show").clicked();
        if (show || (changed && !typing)) && !s.text.trim().is_empty() {
            s.sent = Some(wanted);
            s.request += 1;
            actions.push(Action::Send(Command::Attention {
                request: 2_000_000 + s.request,
                model: model.to_path_buf(),
                text: s.text.clone(),
            }));
        }
    });
}

/// The layer, and one head or the mean of heads, of the answer's weights.
fn layer_head_ui(s: &mut AttentionState, ui: &mut Ui, a: &AttentionResult) {
    let layers = a.weights.len();
    let heads = a.weights.first().map_or(0, Vec::len);
    ui.horizontal(|ui| {
        labeled(
            ui,
            "layer",
            egui::DragValue::new(&mut s.layer).range(0..=layers.saturating_sub(1)),
        );
        ui.label("head");
        let mut mean = s.head.is_none();
        ui.checkbox(&mut mean, "mean of heads");
        if mean {
            s.head = None;
        } else {
            let mut h = s.head.unwrap_or(0);
            ui.add(egui::DragValue::new(&mut h).range(0..=heads.saturating_sub(1)))
                .on_hover_text("head");
            s.head = Some(h);
        }
        ui.label(
            RichText::new(format!(
                "{layers} layers x {heads} heads, {} tokens",
                a.tokens.len()
            ))
            .weak(),
        );
    });
}

/// Each subword token with the tag predicted at it, as the heatmap's row and column labels.
fn token_labels(a: &AttentionResult) -> Vec<String> {
    a.tokens
        .iter()
        .zip(&a.token_tags)
        .map(|(t, tag)| {
            // Space tokens (KLUE's character model) would be blank labels.
            let t = if t.trim().is_empty() {
                "▁"
            } else {
                t.as_str()
            };
            if tag.is_empty() {
                t.to_string()
            } else {
                format!("{t} [{tag}]")
            }
        })
        .collect()
}

/// The map scaled to its largest weight, with the hovered cell's weight read out above it.
fn heatmap_ui(
    s: &mut AttentionState,
    ui: &mut Ui,
    labels: &[String],
    m: &[Vec<f32>],
    theme: Theme,
) {
    let max = m.iter().flatten().copied().fold(0.0f32, f32::max).max(1e-9);
    let values: Vec<Vec<f32>> = m
        .iter()
        .map(|r| r.iter().map(|v| v / max).collect())
        .collect();
    let readout = match s.hovered {
        Some((q, k)) if q < labels.len() && k < labels.len() => format!(
            "query {} → key {}: weight {:.4} ({:.0}% of the map's largest)",
            labels[q],
            labels[k],
            m[q][k],
            100.0 * values[q][k]
        ),
        _ => "hover a cell for its weight".to_string(),
    };
    ui.label(RichText::new(readout).monospace());
    let cell = (ui.available_width() / (labels.len() as f32 + 8.0)).clamp(8.0, 28.0);
    let hovered = egui::ScrollArea::both()
        .id_salt("attention-heat")
        .show(ui, |ui| {
            Heatmap {
                id: "attention",
                rows: labels,
                cols: labels,
                values: &values,
                texts: None,
                cell,
                theme,
                selected: None,
                vertical_cols: true,
                tooltip: false,
            }
            .show_full(ui)
            .hovered
        })
        .inner;
    if hovered != s.hovered {
        // The readout above was drawn with the old cell: draw again with the new one.
        s.hovered = hovered;
        ui.ctx().request_repaint();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_of_heads() {
        let w = vec![vec![vec![vec![1.0, 0.0]], vec![vec![0.0, 1.0]]]];
        assert_eq!(attention_matrix(&w, 0, None), vec![vec![0.5, 0.5]]);
        assert_eq!(attention_matrix(&w, 0, Some(1)), vec![vec![0.0, 1.0]]);
        assert!(attention_matrix(&w, 3, None).is_empty());
    }
}
