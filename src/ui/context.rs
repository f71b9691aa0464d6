//! What panels and the app share: the context a panel draws from ([`PanelCtx`]) and the
//! [`Action`]s it returns, applied by the app after layout. It sits below `app.rs` so that panels
//! never import the app (as rerun's `re_viewer_context` sits below both the viewer and its views).

use std::path::PathBuf;

use egui::Ui;

use super::store::{RunEntry, RunStore};
use super::theme::Theme;
use crate::protocol::Command;
use crate::train::RunConfig;

/// Which launcher field a file dialog fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathTarget {
    Train,
    Dev,
    Model,
}

/// A file to write.
#[derive(Debug, Clone)]
pub enum Export {
    Csv {
        path: PathBuf,
        content: String,
    },
    /// A screenshot of `rect` (points) saved as PNG.
    Png {
        rect: egui::Rect,
        path: PathBuf,
    },
}

/// What a panel asks the app to do (applied after layout).
#[derive(Debug, Clone)]
pub enum Action {
    Launch(Box<RunConfig>),
    Send(Command),
    Select(String),
    ResumeRun(PathBuf),
    PickPath(PathTarget),
    Export(Export),
    /// Load the runs in a folder into the run list.
    ScanRuns(PathBuf),
    /// Load these runs, overlay their curves and show the curves panel.
    ShowRuns(Vec<PathBuf>),
    /// Write an experiment varying `config` over one key, and open its page.
    MakeExperiment {
        config: Box<RunConfig>,
        name: String,
        axis: String,
        values: String,
    },
}

/// What panels get besides their own state.
pub struct PanelCtx<'a> {
    pub store: &'a RunStore,
    pub theme: Theme,
    pub selected: Option<&'a RunEntry>,
}

impl<'a> PanelCtx<'a> {
    /// The selected run and its dev report, for the panels that inspect one; without them, says
    /// what is missing in `ui` and gives `None`.
    pub fn selected_report(
        &self,
        ui: &mut Ui,
    ) -> Option<(&'a RunEntry, &'a crate::metrics::ScoreReport)> {
        let Some(run) = self.selected else {
            ui.label("Select a run with a dev evaluation.");
            return None;
        };
        let Some(report) = run.report.as_deref() else {
            self.missing_ui(ui, run, "dev evaluation");
            return None;
        };
        Some((run, report))
    }

    /// Says why `run` has no `what` to show: the error it ended with, that it ended without
    /// one, or that it is still to come.
    pub fn missing_ui(&self, ui: &mut Ui, run: &RunEntry, what: &str) {
        match &run.error {
            Some(e) => {
                ui.label(format!(
                    "{} {} before its first {what}:",
                    run.name,
                    run.phase.label()
                ));
                super::widgets::error_text_ui(ui, e, self.theme);
            }
            None if run.phase.is_live() => {
                ui.label(format!("{} has no {what} yet.", run.name));
            }
            None => {
                ui.label(format!(
                    "{} ended ({}) without a {what}.",
                    run.name,
                    run.phase.label()
                ));
            }
        }
    }
}
