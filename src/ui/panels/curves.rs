//! Training curves: loss (raw and smoothed), learning rate, dev micro/macro F1 and per-type F1
//! against step, for several runs overlaid, with hover readouts. Plots draw a decimated copy of the
//! history (cached per run revision). Export as CSV and PNG.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use egui::{RichText, Ui};
use egui_plot::{Legend, Line, Plot, PlotPoints};
use serde::{Deserialize, Serialize};

use crate::protocol::EvalPoint;

use super::super::context::{Action, Export, PanelCtx};
use super::super::store::RunEntry;
use super::super::theme;
use super::super::widgets::labeled;

/// Decimated series by (run, series), with the run revision they were made from.
type SeriesCache = HashMap<(String, u8), (u64, Vec<[f64; 2]>)>;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CurvesState {
    /// Runs drawn (by name); empty means the selected run.
    pub overlay: BTreeSet<String>,
    /// Exponential smoothing of the loss, 0..1.
    pub smoothing: f64,
    pub show_raw: bool,
    /// Loss on a log10 axis (losses of different heads differ by orders of magnitude).
    pub log_loss: bool,
    pub per_type: bool,
    pub export_dir: String,
    #[serde(skip)]
    cache: SeriesCache,
}

impl Default for CurvesState {
    fn default() -> Self {
        Self {
            overlay: BTreeSet::new(),
            smoothing: 0.9,
            show_raw: true,
            log_loss: false,
            per_type: false,
            export_dir: "exports".into(),
            cache: HashMap::new(),
        }
    }
}

/// At most `max` points keeping each bucket's first, minimum and maximum, so spikes survive.
pub fn decimate(points: &[[f64; 2]], max: usize) -> Vec<[f64; 2]> {
    if points.len() <= max || max < 4 {
        return points.to_vec();
    }
    let buckets = max / 2;
    let per = points.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(max + 2);
    for chunk in points.chunks(per) {
        let (mut lo, mut hi) = (chunk[0], chunk[0]);
        for p in chunk {
            if p[1] < lo[1] {
                lo = *p;
            }
            if p[1] > hi[1] {
                hi = *p;
            }
        }
        if lo[0] <= hi[0] {
            out.push(lo);
            if hi != lo {
                out.push(hi);
            }
        } else {
            out.push(hi);
            out.push(lo);
        }
    }
    if let Some(last) = points.last()
        && out.last() != Some(last)
    {
        out.push(*last);
    }
    out
}

/// Exponential moving average with bias correction (TensorBoard's smoothing).
pub fn smooth(points: &[[f64; 2]], weight: f64) -> Vec<[f64; 2]> {
    let mut avg = 0.0;
    let mut norm = 0.0;
    points
        .iter()
        .map(|p| {
            if p[1].is_finite() {
                avg = avg * weight + (1.0 - weight) * p[1];
                norm = norm * weight + (1.0 - weight);
            }
            [p[0], if norm > 0.0 { avg / norm } else { p[1] }]
        })
        .collect()
}

const MAX_POINTS: usize = 1500;

impl CurvesState {
    /// A cached, decimated series of a run: 0 raw loss, 1 smoothed loss, 2 learning rate.
    fn series(&mut self, run: &RunEntry, which: u8) -> Vec<[f64; 2]> {
        let key = (run.name.clone(), which);
        let smoothing = self.smoothing;
        if let Some((rev, pts)) = self.cache.get(&key)
            && *rev == run.revision
        {
            return pts.clone();
        }
        let raw: Vec<[f64; 2]> = run
            .curve
            .iter()
            .map(|p| {
                let y = match which {
                    2 => p.lr,
                    _ if self.log_loss => p.loss.max(1e-12).log10(),
                    _ => p.loss,
                };
                [p.step as f64, y]
            })
            .collect();
        let pts = match which {
            1 => decimate(&smooth(&raw, smoothing), MAX_POINTS),
            _ => decimate(&raw, MAX_POINTS),
        };
        self.cache.insert(key, (run.revision, pts.clone()));
        pts
    }

    pub fn clear_cache(&mut self) {
        self.cache.clear();
    }
}

/// The curves of the shown runs as CSV (`run,step,loss,lr` then `run,step,eval,value`).
pub fn csv(runs: &[&RunEntry]) -> String {
    let mut out = String::from("run,step,series,value\n");
    for r in runs {
        for p in &r.curve {
            out += &format!(
                "{},{},loss,{}\n{},{},lr,{}\n",
                r.name, p.step, p.loss, r.name, p.step, p.lr
            );
        }
        for e in &r.evals {
            out += &format!(
                "{},{},dev_micro_f1,{}\n{},{},dev_macro_f1,{}\n",
                r.name, e.step, e.micro_f1, r.name, e.step, e.macro_f1
            );
            for (ty, f) in &e.per_type {
                out += &format!("{},{},dev_f1_{ty},{f}\n", r.name, e.step);
            }
        }
    }
    out
}

pub fn ui(s: &mut CurvesState, ui: &mut Ui, cx: &PanelCtx<'_>) -> Vec<Action> {
    let mut actions = Vec::new();
    let runs: Vec<(usize, &RunEntry)> = cx
        .store
        .runs
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            cx.selected.is_some_and(|sel| sel.name == r.name) || s.overlay.contains(&r.name)
        })
        .collect();
    overlay_ui(s, ui, cx);
    controls_ui(s, ui, &runs, &mut actions);
    if runs.is_empty() {
        ui.label("Select a run on the left, or tick runs to overlay.");
        return actions;
    }
    let height = (ui.available_height() / 3.0 - 10.0).max(120.0);
    // The same step range on every plot, so they line up vertically.
    let x_max = runs
        .iter()
        .map(|(_, r)| r.total_steps.max(r.step))
        .max()
        .unwrap_or(1) as f64;
    loss_plot_ui(s, ui, &runs, step_plot("curve-loss", x_max, height));
    f1_plot_ui(s, ui, &runs, step_plot("curve-f1", x_max, height));
    lr_plot_ui(s, ui, &runs, step_plot("curve-lr", x_max, height * 0.7));
    actions
}

/// One checkbox per run: the selected run is always drawn, others are added by ticking them.
fn overlay_ui(s: &mut CurvesState, ui: &mut Ui, cx: &PanelCtx<'_>) {
    ui.horizontal_wrapped(|ui| {
        ui.label("Overlay:");
        for (i, r) in cx.store.runs.iter().enumerate() {
            let selected = cx.selected.is_some_and(|sel| sel.name == r.name);
            let mut on = selected || s.overlay.contains(&r.name);
            if ui
                .add_enabled(
                    !selected,
                    egui::Checkbox::new(&mut on, RichText::new(&r.name).color(theme::run(i))),
                )
                .changed()
            {
                if on {
                    s.overlay.insert(r.name.clone());
                } else {
                    s.overlay.remove(&r.name);
                }
            }
        }
    });
}

/// Raw loss, log scale, smoothing, per-type F1 and the CSV / PNG export of the shown runs.
fn controls_ui(
    s: &mut CurvesState,
    ui: &mut Ui,
    runs: &[(usize, &RunEntry)],
    actions: &mut Vec<Action>,
) {
    ui.horizontal(|ui| {
        ui.checkbox(&mut s.show_raw, "raw loss");
        if ui.checkbox(&mut s.log_loss, "log scale").changed() {
            s.clear_cache();
        }
        if labeled(
            ui,
            "smoothing",
            egui::Slider::new(&mut s.smoothing, 0.0..=0.99),
        )
        .changed()
        {
            s.clear_cache();
        }
        ui.checkbox(&mut s.per_type, "per-type F1");
        ui.separator();
        labeled(
            ui,
            "export to",
            egui::TextEdit::singleline(&mut s.export_dir).desired_width(160.0),
        );
        if ui.button("CSV").clicked() {
            let shown: Vec<&RunEntry> = runs.iter().map(|(_, r)| *r).collect();
            actions.push(Action::Export(Export::Csv {
                path: PathBuf::from(&s.export_dir).join("curves.csv"),
                content: csv(&shown),
            }));
        }
        if ui.button("PNG").clicked() {
            actions.push(Action::Export(Export::Png {
                rect: ui.ctx().content_rect(),
                path: PathBuf::from(&s.export_dir).join("curves.png"),
            }));
        }
    });
}

/// A plot against step over `0..=x_max`, its cursor linked with the other curves so they line up.
fn step_plot(id: &str, x_max: f64, height: f32) -> Plot<'static> {
    Plot::new(id)
        .y_axis_min_width(44.0)
        .include_x(0.0)
        .include_x(x_max)
        .link_cursor(egui::Id::unique("curves-x"), [true, false])
        .legend(Legend::default())
        .height(height)
        .x_axis_label("step")
}

/// Training loss of each run: the smoothed line, and the raw one faint behind it.
fn loss_plot_ui(s: &mut CurvesState, ui: &mut Ui, runs: &[(usize, &RunEntry)], plot: Plot<'_>) {
    ui.label(
        RichText::new(if s.log_loss {
            "training loss (log10)"
        } else {
            "training loss"
        })
        .strong(),
    );
    plot.show(ui, |plot| {
        for &(i, r) in runs {
            let color = theme::run(i);
            if s.show_raw {
                plot.line(
                    Line::new(format!("{} loss", r.name), PlotPoints::from(s.series(r, 0)))
                        .color(color.gamma_multiply(0.35))
                        .width(1.0),
                );
            }
            plot.line(
                Line::new(
                    format!("{} loss (smoothed)", r.name),
                    PlotPoints::from(s.series(r, 1)),
                )
                .color(color)
                .width(2.0),
            );
        }
    });
}

/// The points `(step, f)` of each evaluation of a run.
fn eval_points(r: &RunEntry, f: impl Fn(&EvalPoint) -> Option<f64>) -> Vec<[f64; 2]> {
    r.evals
        .iter()
        .filter_map(|e| f(e).map(|y| [e.step as f64, y]))
        .collect()
}

/// Dev micro F1 (solid), macro F1 (dashed) and, if asked, per-type F1 of each run.
fn f1_plot_ui(s: &CurvesState, ui: &mut Ui, runs: &[(usize, &RunEntry)], plot: Plot<'_>) {
    ui.label(RichText::new("dev F1").strong());
    plot.include_y(0.0).include_y(1.0).show(ui, |plot| {
        for &(i, r) in runs {
            let color = theme::run(i);
            let micro = eval_points(r, |e| Some(e.micro_f1));
            let macro_ = eval_points(r, |e| Some(e.macro_f1));
            plot.line(
                Line::new(format!("{} micro F1", r.name), PlotPoints::from(micro))
                    .color(color)
                    .width(2.0),
            );
            plot.line(
                Line::new(format!("{} macro F1", r.name), PlotPoints::from(macro_))
                    .color(color)
                    .style(egui_plot::LineStyle::dashed_loose()),
            );
            if s.per_type {
                let types: BTreeSet<&String> = r
                    .evals
                    .iter()
                    .flat_map(|e| e.per_type.iter().map(|(t, _)| t))
                    .collect();
                for ty in types {
                    let pts = eval_points(r, |e| {
                        e.per_type.iter().find(|(t, _)| t == ty).map(|(_, f)| *f)
                    });
                    plot.line(
                        Line::new(format!("{} {ty}", r.name), PlotPoints::from(pts))
                            .color(theme::entity(ty))
                            .width(1.0),
                    );
                }
            }
        }
    });
}

/// The learning rate of each run.
fn lr_plot_ui(s: &mut CurvesState, ui: &mut Ui, runs: &[(usize, &RunEntry)], plot: Plot<'_>) {
    ui.label(RichText::new("learning rate").strong());
    plot.show(ui, |plot| {
        for &(i, r) in runs {
            plot.line(
                Line::new(format!("{} lr", r.name), PlotPoints::from(s.series(r, 2)))
                    .color(theme::run(i)),
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimation_keeps_extremes_and_ends() {
        let pts: Vec<[f64; 2]> = (0..10_000)
            .map(|i| [i as f64, if i == 5_000 { 100.0 } else { (i % 7) as f64 }])
            .collect();
        let d = decimate(&pts, 500);
        assert!(d.len() <= 502, "{}", d.len());
        assert!(d.iter().any(|p| p[1] == 100.0), "the spike survives");
        assert_eq!(d.first(), pts.first());
        assert_eq!(d.last(), pts.last());
        assert!(d.windows(2).all(|w| w[0][0] <= w[1][0]), "x stays ordered");
    }

    #[test]
    fn smoothing_is_bias_corrected() {
        let s = smooth(&[[0.0, 1.0], [1.0, 1.0]], 0.9);
        assert!((s[0][1] - 1.0).abs() < 1e-12 && (s[1][1] - 1.0).abs() < 1e-12);
    }
}
