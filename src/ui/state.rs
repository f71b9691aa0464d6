//! The UI state eframe persists between launches: the panel, the selected run, the runs folder
//! and each panel's view state. Field names are the stored format: renaming one forgets what users
//! saved.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::panels::{
    attention, confusion, curves, errors, experiment, experiments, launcher, tagger,
};
use super::theme::Theme;

/// The panels, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PanelKind {
    #[default]
    Launcher,
    Curves,
    Confusion,
    Errors,
    Attention,
    Calibration,
    Tagger,
    /// The table of runs side by side.
    #[serde(alias = "Experiments")]
    Table,
    /// An experiment's page.
    Experiment,
}

impl PanelKind {
    pub const ALL: [(PanelKind, &'static str); 9] = [
        (Self::Launcher, "Launch"),
        (Self::Curves, "Curves"),
        (Self::Confusion, "Confusion"),
        (Self::Errors, "Errors"),
        (Self::Attention, "Attention"),
        (Self::Calibration, "Calibration"),
        (Self::Tagger, "Tagger"),
        (Self::Table, "Table"),
        (Self::Experiment, "Experiments"),
    ];
}

/// The tab name ("Curves"), also what `--panel` takes (in any case).
impl fmt::Display for PanelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::ALL
            .iter()
            .find(|(k, _)| k == self)
            .map_or("?", |(_, n)| *n);
        f.write_str(name)
    }
}

impl FromStr for PanelKind {
    type Err = String;

    /// A panel by its tab name, in any case (`curves`, `Curves`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(s))
            .map(|(k, _)| *k)
            .ok_or_else(|| format!("unknown panel {s:?}"))
    }
}

/// Persisted between launches (eframe storage).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UiState {
    pub theme: Theme,
    pub panel: PanelKind,
    /// The run the inspection panels show (by name).
    pub selected: Option<String>,
    /// Where run directories are listed from and created.
    pub runs_dir: Option<PathBuf>,
    pub launcher: launcher::LauncherState,
    pub curves: curves::CurvesState,
    pub confusion: confusion::ConfusionState,
    pub errors: errors::ErrorsState,
    pub attention: attention::AttentionState,
    pub tagger: tagger::TaggerState,
    pub experiments: experiments::ExperimentsState,
    pub experiment: experiment::ExperimentPageState,
}

impl UiState {
    pub fn runs_dir(&self) -> PathBuf {
        self.runs_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_names_parse_back() {
        for (kind, name) in PanelKind::ALL {
            assert_eq!(kind.to_string(), name);
            assert_eq!(name.to_lowercase().parse::<PanelKind>(), Ok(kind));
        }
        assert!("nowhere".parse::<PanelKind>().is_err());
    }
}
