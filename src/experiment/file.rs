//! The experiment file: a base run configuration (what `nerlab train --config` reads), the axes
//! that vary it (a grid of every combination, lists zipped together, named variants overriding
//! several keys at once; the seed is an axis like any other), and what to report.
//!
//! ```toml
//! name = "demo-heads"
//! out = "runs/demo-heads"
//! [base]
//! data.train = ["builtin:demo/train"]
//! model.source = "char"
//! [grid]
//! "model.head" = ["softmax", "crf"]
//! seed = [1, 2]
//! [report]
//! rows = ["model.head"]
//! metric = "dev.micro.f1"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// A parsed experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    pub name: String,
    /// Where the experiment's runs go (one folder per point of the plan).
    pub out: PathBuf,
    /// The run configuration every point starts from (keys as in `nerlab train --config`).
    #[serde(default)]
    pub base: toml::Table,
    /// Dotted key -> values: every combination of the lists.
    #[serde(default)]
    pub grid: toml::Table,
    /// Dotted key -> values: lists taken together (the i-th of each), crossed with the grid.
    #[serde(default)]
    pub zip: toml::Table,
    /// Variant name -> table of dotted keys it sets (the arms of an ablation), crossed with the
    /// grid; the variant's name is an axis (`variant`).
    #[serde(default)]
    pub variants: toml::Table,
    /// Earlier stages, by name: each a complete run configuration of its own and a grid, trained
    /// before the main stage. A main-stage point with `init_from = "stage:NAME"` is crossed with
    /// every point of stage NAME and starts from that run's best model; the stage's axes become
    /// axes of the main stage as `NAME.<axis>`. So each source trains once and is fine-tuned for
    /// every K and seed.
    #[serde(default)]
    pub stages: BTreeMap<String, Stage>,
    #[serde(default)]
    pub report: ReportSpec,
}

/// An earlier stage (see [`ExperimentFile::stages`]): every part optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Stage {
    /// The stage's run configuration (not merged with the main `[base]`).
    pub base: toml::Table,
    /// Dotted key -> values: every combination (the seed included, if it is a key).
    pub grid: toml::Table,
    /// Lists taken together, as the main `[zip]` (a naming key such as `language` included).
    pub zip: toml::Table,
}

/// How a main-stage `init_from` names a stage: `stage:NAME`.
pub const STAGE_PREFIX: &str = "stage:";

/// What `nerlab experiment report` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportSpec {
    /// Axes whose values make the rows of the pivot table.
    pub rows: Vec<String>,
    /// Axes whose values make its columns (none: one column).
    pub columns: Vec<String>,
    /// A dotted path into each run's `report.json` (`dev.micro.f1`, `eval.<corpus>.micro.f1`,
    /// `dev.macro.f1`).
    pub metric: String,
    /// The setting others are compared with (axis -> value, e.g. `{ variant = "plain" }`): each
    /// group is compared with the group that differs from it only on these axes.
    pub baseline: BTreeMap<String, String>,
    /// A last row in `report.md`: each column's mean over the rows' cell means (a paper's
    /// "average over languages"), with how many rows it covers.
    pub mean_row: bool,
    /// Axes that split the plots: one heatmap, bar chart and curve per value (e.g. one heatmap
    /// of source x K per method), all heatmaps on one colour scale. The table is not split.
    pub plots_by: Vec<String>,
}

impl Default for ReportSpec {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            columns: Vec::new(),
            metric: "dev.micro.f1".into(),
            baseline: BTreeMap::new(),
            mean_row: false,
            plots_by: Vec::new(),
        }
    }
}

impl ExperimentFile {
    /// Reads an experiment file; errors name the file (and the line, for TOML errors).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        // `out` is relative to the working directory, as a run's `out` is.
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

/// Where an experiment was run from, written to `<out>/experiment.json` by `run`, `submit` and
/// `report`, so the workbench finds experiments in its runs folder and reads them as the command
/// line did (relative paths in the file are relative to `cwd`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub name: String,
    /// The experiment file, absolute.
    pub file: PathBuf,
    /// The working directory its relative paths are read from.
    pub cwd: PathBuf,
    /// Its runs' folder, absolute.
    pub out: PathBuf,
}

/// The registration's file name in an experiment's `out`.
pub const REGISTRATION: &str = "experiment.json";

impl Registration {
    /// The registration of `file` (read as `exp`), from the current directory.
    pub fn of(file: &Path, exp: &ExperimentFile) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir().context("the current directory")?;
        Ok(Self {
            name: exp.name.clone(),
            file: cwd.join(file),
            out: cwd.join(&exp.out),
            cwd,
        })
    }

    /// Writes `<out>/experiment.json`.
    pub fn write(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let path = self.out.join(REGISTRATION);
        let same = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Self>(&t).ok())
            .is_some_and(|r| &r == self);
        if same {
            return Ok(());
        }
        // Written aside and renamed: the array tasks of a Slurm job write it at once, from nodes
        // whose process ids may be equal.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let tmp = self.out.join(format!(
            "{REGISTRATION}.{}-{}-{nanos}.tmp",
            host.trim(),
            std::process::id()
        ));
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    /// The experiments registered in `dir` or its sub-folders, by name.
    pub fn find(dir: &Path) -> Vec<Self> {
        let read = |d: &Path| -> Option<Self> {
            serde_json::from_str(&std::fs::read_to_string(d.join(REGISTRATION)).ok()?).ok()
        };
        let mut found: Vec<Self> = std::iter::once(dir.to_path_buf())
            .chain(
                std::fs::read_dir(dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir()),
            )
            .filter_map(|d| read(&d))
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.out.cmp(&b.out)));
        found
    }
}

/// An experiment file that varies one run: `config` as the base, `axis` (a dotted key, or `seed`)
/// over `values` (comma-separated, each read as TOML, else as a string), reported by that axis.
pub fn from_run(
    config: &crate::train::RunConfig,
    name: &str,
    out: &Path,
    axis: &str,
    values: &str,
) -> anyhow::Result<String> {
    let mut base: toml::Table = toml::from_str(&config.to_toml()?)?;
    base.remove("out");
    base.remove("name");
    let values: Vec<toml::Value> = values
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            toml::from_str::<toml::Table>(&format!("v = {v}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(v.to_string()))
        })
        .collect();
    anyhow::ensure!(!values.is_empty(), "{axis}: no values to vary it over");
    let axis = axis.trim();
    anyhow::ensure!(!axis.is_empty(), "which key to vary?");
    let mut grid = toml::Table::new();
    grid.insert(axis.to_string(), toml::Value::Array(values));
    let file = ExperimentFile {
        name: name.to_string(),
        out: out.to_path_buf(),
        base,
        grid,
        zip: toml::Table::new(),
        variants: toml::Table::new(),
        stages: BTreeMap::new(),
        report: ReportSpec {
            rows: if axis == "seed" {
                Vec::new()
            } else {
                vec![axis.to_string()]
            },
            ..ReportSpec::default()
        },
    };
    // Planned once here, so a key that does not exist is refused now, not when it runs.
    super::plan::plan(&file)?;
    Ok(format!(
        "# Written by the workbench's launcher: its run, varied over {axis}.\n{}",
        toml::to_string_pretty(&file)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_becomes_an_experiment_over_one_axis() {
        let mut config = crate::train::RunConfig::default();
        config.data.train = vec!["builtin:demo/train".into()];
        config.data.dev = Some("builtin:demo/dev".into());
        config.model.source = "char".into();
        let text = from_run(
            &config,
            "lr",
            Path::new("runs/lr"),
            "train.lr",
            "1e-3, 3e-3",
        )
        .unwrap();
        let file: ExperimentFile = toml::from_str(&text).unwrap();
        let plan = super::super::plan::plan(&file).unwrap();
        assert_eq!(plan.points.len(), 2);
        assert_eq!(plan.points[1].config.train.lr, 3e-3);
        assert_eq!(file.report.rows, ["train.lr"]);
        let seeds = from_run(&config, "s", Path::new("runs/s"), "seed", "1,2,3").unwrap();
        let file: ExperimentFile = toml::from_str(&seeds).unwrap();
        assert!(file.report.rows.is_empty());
        let e = from_run(&config, "x", Path::new("runs/x"), "train.lrr", "1").unwrap_err();
        assert!(format!("{e:#}").contains("did you mean train.lr"), "{e:#}");
    }
}
