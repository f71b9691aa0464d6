//! Calibration of a run's dev predictions: the reliability diagram (accuracy per confidence bin
//! against the diagonal), expected and maximum calibration error, and the confidence histogram.

use egui::{RichText, Ui};
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints};

use super::super::context::{Action, PanelCtx};
use super::super::theme;
use crate::metrics::calibration::{Bin, Calibration};

pub fn ui(ui: &mut Ui, cx: &PanelCtx<'_>) -> Vec<Action> {
    let Some(run) = cx.selected else {
        ui.label("Select a run with a dev evaluation.");
        return Vec::new();
    };
    let Some(cal) = run.report.as_ref().and_then(|r| r.calibration.as_ref()) else {
        ui.label(format!(
            "{} has no calibration data (it comes with each dev evaluation).",
            run.name
        ));
        return Vec::new();
    };
    ui.heading(format!("Calibration: {}", run.name));
    ui.label(
        RichText::new(format!(
            "ECE {:.4}   MCE {:.4}   over {} tokens ({} bins)",
            cal.ece,
            cal.mce,
            cal.tokens,
            cal.bins.len()
        ))
        .strong(),
    );
    let width = cal.bins.first().map_or(0.1, |b| b.hi - b.lo);
    let height = (ui.available_height() / 2.0 - 20.0).max(150.0);
    if !cal.ece_per_type.is_empty() {
        let per_type: Vec<String> = cal
            .ece_per_type
            .iter()
            .map(|(t, e)| format!("{t} {e:.4}"))
            .collect();
        ui.label(format!("ECE per predicted type: {}", per_type.join("   ")));
    }
    reliability_ui(ui, cal, width, confidence_plot("reliability", height));
    histogram_ui(
        ui,
        cal,
        width,
        confidence_plot("confidence-hist", height * 0.8),
    );
    Vec::new()
}

/// A plot over confidence 0..=1.
fn confidence_plot(id: &str, height: f32) -> Plot<'static> {
    Plot::new(id)
        .height(height)
        .include_x(0.0)
        .include_x(1.0)
        .x_axis_label("confidence")
}

/// The middle of a bin, where its bar stands.
fn centre(b: &Bin) -> f64 {
    (b.lo + b.hi) / 2.0
}

/// Accuracy and mean confidence of each non-empty bin against the diagonal.
fn reliability_ui(ui: &mut Ui, cal: &Calibration, width: f64, plot: Plot<'_>) {
    ui.label("reliability diagram: accuracy of the tokens in each confidence bin");
    plot.legend(Legend::default())
        .include_y(0.0)
        .include_y(1.0)
        .y_axis_label("accuracy")
        .show(ui, |plot| {
            let bars: Vec<Bar> = cal
                .bins
                .iter()
                .filter(|b| b.count > 0)
                .map(|b| {
                    Bar::new(centre(b), b.accuracy)
                        .width(width * 0.9)
                        .name(format!(
                            "{} tokens, mean confidence {:.3}",
                            b.count, b.mean_confidence
                        ))
                })
                .collect();
            plot.bar_chart(BarChart::new("accuracy", bars).color(theme::run(0)));
            let gaps: Vec<Bar> = cal
                .bins
                .iter()
                .filter(|b| b.count > 0)
                .map(|b| Bar::new(centre(b), b.mean_confidence).width(width * 0.3))
                .collect();
            plot.bar_chart(BarChart::new("mean confidence", gaps).color(theme::run(1)));
            plot.line(
                Line::new(
                    "perfect calibration",
                    PlotPoints::from(vec![[0.0, 0.0], [1.0, 1.0]]),
                )
                .color(theme::diagonal()),
            );
        });
}

/// Tokens per confidence bin, on a log scale.
fn histogram_ui(ui: &mut Ui, cal: &Calibration, width: f64, plot: Plot<'_>) {
    ui.label("confidence histogram (tokens per bin, log scale)");
    plot.y_axis_label("log10 tokens").show(ui, |plot| {
        let bars: Vec<Bar> = cal
            .bins
            .iter()
            .map(|b| {
                Bar::new(centre(b), (b.count as f64 + 1.0).log10())
                    .width(width * 0.9)
                    .name(format!("{} tokens", b.count))
            })
            .collect();
        plot.bar_chart(BarChart::new("tokens", bars).color(theme::run(2)));
    });
}
