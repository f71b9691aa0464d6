//! A run on disk, `runs/<name>/`:
//!
//! ```text
//! config.toml            the complete configuration (reload it to rerun)
//! status.json            state, step, best dev F1 (what `nerlab runs` and the workbench list)
//! metrics.jsonl          one JSON line per logged step and per evaluation
//! checkpoint.json        points at the latest resumable checkpoint directory
//! checkpoint-<step>/     model, optimizer state and trainer state at that step
//! best/                  the model with the best dev F1 (`NerModel::save` layout)
//! dev-predictions.*      the best model's dev predictions in the dev corpus's own format
//! dev-calibration.json   their calibration (reliability bins, ECE), which tags alone cannot give
//! report.json            {"dev": <nerlab score --json shape>, "eval": {...}, "best_step": ...}
//! ```
//!
//! Every file is written to a temporary name and renamed, and a checkpoint becomes current only
//! when `checkpoint.json` is replaced, so a crash at any moment leaves the last good one usable.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::config::RunConfig;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    #[default]
    Running,
    Paused,
    Finished,
    EarlyStopped,
    Stopped,
    Failed,
    /// The status says running or paused but the process that wrote it has gone (killed, crashed,
    /// machine restarted); never written, only observed by [`RunDir::status`].
    Interrupted,
}

impl RunState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Finished => "finished",
            Self::EarlyStopped => "early-stopped",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }

    /// Whether `--resume` can continue the run.
    pub fn resumable(self) -> bool {
        matches!(
            self,
            Self::Running | Self::Paused | Self::Stopped | Self::Failed | Self::Interrupted
        )
    }
}

/// `status.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Status {
    pub state: RunState,
    pub step: usize,
    pub total_steps: usize,
    pub best_f1: Option<f64>,
    pub best_step: Option<usize>,
    pub message: String,
    /// Seconds since the Unix epoch of the last update.
    pub updated: u64,
    /// The process that wrote it (0 in files from before this field).
    pub pid: u32,
}

/// Whether process `pid` still exists (Linux: `/proc`; elsewhere assumed alive).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates `out/name` for a new run; an existing run of that name is never overwritten.
    pub fn create(out: &Path, name: &str) -> anyhow::Result<Self> {
        let path = out.join(name);
        if path.join("config.toml").exists() {
            anyhow::bail!(
                "{} already holds a run; resume it with --resume {0}, or choose another --name",
                path.display()
            );
        }
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if !path.join("config.toml").exists() {
            anyhow::bail!(
                "{} is not a nerlab run directory (no config.toml)",
                path.display()
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn write_config(&self, c: &RunConfig) -> anyhow::Result<()> {
        write_atomic(&self.path.join("config.toml"), c.to_toml()?.as_bytes())
    }

    pub fn config(&self) -> anyhow::Result<RunConfig> {
        RunConfig::load(&self.path.join("config.toml"))
    }

    pub fn write_status(&self, s: &Status) -> anyhow::Result<()> {
        let mut s = s.clone();
        s.pid = std::process::id();
        s.updated = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        write_atomic(
            &self.path.join("status.json"),
            serde_json::to_string_pretty(&s)?.as_bytes(),
        )
    }

    /// `status.json` as things stand now: a running or paused run whose process has gone (or
    /// that never recorded one: a folder from an older nerlab, or with no `status.json` at all)
    /// reads as [`RunState::Interrupted`], never as running.
    pub fn status(&self) -> Status {
        let Some(mut s) = std::fs::read_to_string(self.path.join("status.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Status>(&t).ok())
        else {
            return Status {
                state: RunState::Interrupted,
                message: "the run ended before it recorded its state (no readable status.json)"
                    .into(),
                ..Status::default()
            };
        };
        if matches!(s.state, RunState::Running | RunState::Paused)
            && s.pid != std::process::id()
            && (s.pid == 0 || !process_alive(s.pid))
        {
            s.state = RunState::Interrupted;
            // A live state's message ("training", "paused") no longer holds.
            s.message = "its process ended without recording why (killed, or the machine \
                         restarted); resume it to continue"
                .into();
        }
        s
    }

    /// The other live process training this run, if any (two writers would corrupt it).
    pub fn owner_elsewhere(&self) -> Option<u32> {
        let s = self.status();
        (matches!(s.state, RunState::Running | RunState::Paused) && s.pid != std::process::id())
            .then_some(s.pid)
    }

    /// Appends one line to `metrics.jsonl`.
    pub fn append_metrics(&self, line: &serde_json::Value) -> anyhow::Result<()> {
        let path = self.path.join("metrics.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{line}")?;
        Ok(())
    }

    /// Every line of `metrics.jsonl` (unparsable lines, say a half-written last one, skipped).
    pub fn metrics(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path.join("metrics.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Drops metric lines logged after `step` (a resumed run logs them again).
    pub fn truncate_metrics_after(&self, step: usize) -> anyhow::Result<()> {
        let kept: Vec<String> = self
            .metrics()
            .into_iter()
            .filter(|v| v["step"].as_u64().is_none_or(|s| s as usize <= step))
            .map(|v| v.to_string())
            .collect();
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        write_atomic(&self.path.join("metrics.jsonl"), text.as_bytes())
    }

    pub fn checkpoint_dir(&self, step: usize) -> PathBuf {
        self.path.join(format!("checkpoint-{step:07}"))
    }

    /// Makes `dir` the current checkpoint and removes older ones.
    pub fn publish_checkpoint(&self, dir: &Path) -> anyhow::Result<()> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        write_atomic(
            &self.path.join("checkpoint.json"),
            serde_json::json!({ "dir": name }).to_string().as_bytes(),
        )?;
        for entry in std::fs::read_dir(&self.path)?.flatten() {
            let n = entry.file_name().to_string_lossy().into_owned();
            if n.starts_with("checkpoint-") && n != name {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }

    /// The current checkpoint, if one was published.
    pub fn latest_checkpoint(&self) -> Option<PathBuf> {
        let text = std::fs::read_to_string(self.path.join("checkpoint.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let dir = self.path.join(v["dir"].as_str()?);
        dir.join("state.json").exists().then_some(dir)
    }

    pub fn best_dir(&self) -> PathBuf {
        self.path.join("best")
    }

    pub fn write_report(&self, report: &serde_json::Value) -> anyhow::Result<()> {
        write_atomic(
            &self.path.join("report.json"),
            serde_json::to_string_pretty(report)?.as_bytes(),
        )
    }

    pub fn report(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(self.path.join("report.json")).ok()?).ok()
    }
}

/// Run directories under `out`, newest first.
pub fn list_runs(out: &Path) -> Vec<RunDir> {
    let mut runs: Vec<(std::time::SystemTime, RunDir)> = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("config.toml").exists())
        .map(|e| {
            let t = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, RunDir { path: e.path() })
        })
        .collect();
    runs.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.path.cmp(&b.1.path)));
    runs.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_truncate_and_checkpoints_publish() {
        let out = std::env::temp_dir().join(format!("nerlab-rundir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let run = RunDir::create(&out, "r").unwrap();
        run.write_config(&RunConfig::default()).unwrap();
        assert!(RunDir::create(&out, "r").is_err(), "never overwrites a run");
        for step in 1..=5 {
            run.append_metrics(&serde_json::json!({ "step": step, "loss": 1.0 }))
                .unwrap();
        }
        run.truncate_metrics_after(3).unwrap();
        assert_eq!(run.metrics().len(), 3);
        for step in [10, 20] {
            let d = run.checkpoint_dir(step);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("state.json"), "{}").unwrap();
            run.publish_checkpoint(&d).unwrap();
        }
        assert_eq!(run.latest_checkpoint(), Some(run.checkpoint_dir(20)));
        assert!(!run.checkpoint_dir(10).exists());
        assert_eq!(list_runs(&out).len(), 1);
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn a_run_whose_process_died_reads_as_interrupted() {
        let out = std::env::temp_dir().join(format!("nerlab-rundir-pid-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let run = RunDir::create(&out, "r").unwrap();
        let write = |pid: u32| {
            let s = Status {
                state: RunState::Running,
                pid,
                ..Status::default()
            };
            std::fs::write(
                run.path.join("status.json"),
                serde_json::to_string(&s).unwrap(),
            )
            .unwrap();
        };
        // Written by this process: running.
        run.write_status(&Status::default()).unwrap();
        assert_eq!(run.status().state, RunState::Running);
        assert_eq!(run.owner_elsewhere(), None);
        // Written by a live other process: running, and owned elsewhere.
        let mut live = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        write(live.id());
        assert_eq!(run.status().state, RunState::Running);
        assert_eq!(run.owner_elsewhere(), Some(live.id()));
        // No status.json at all (a folder whose run ended before writing one): interrupted.
        std::fs::remove_file(run.path.join("status.json")).unwrap();
        assert_eq!(run.status().state, RunState::Interrupted);
        assert!(run.status().message.contains("no readable status.json"));
        write(0);
        assert_eq!(
            run.status().state,
            RunState::Interrupted,
            "pid 0: nobody owns it"
        );
        write(live.id());
        // That process gone: interrupted, resumable, owned by nobody.
        live.kill().unwrap();
        live.wait().unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(run.status().state, RunState::Interrupted);
            assert!(run.status().state.resumable());
            assert_eq!(run.owner_elsewhere(), None);
        }
        std::fs::remove_dir_all(&out).unwrap();
    }
}
