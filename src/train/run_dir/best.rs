//! `best/`, the model with the best dev F1, replaced whenever dev F1 improves while the workbench
//! may be loading it. A new best model is written whole into its own folder `best-<step>/`, and
//! `best` is then switched to it in one step (on Unix a symbolic link replaced by `rename`), so
//! a reader sees the old model or the new one, never half of one. The previous version is kept
//! (a reader may still be reading it) and older ones are removed; [`RunDir::read_best`] reads
//! again from the newest if the version it started on disappears under it.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::RunDir;
use super::files::{self, BEST, BEST_VERSION_PREFIX, CHECKPOINT_POINTER};
use crate::model::ner::MODEL_FILE;
use crate::train::config::Keep;

/// Reads the trained model of `path` with `read`: `path` itself when it is a model folder, else
/// a run's best model, through [`RunDir::read_best`] when `path` is a run (never half old, half
/// new), or `path/best` of a bare folder.
pub fn read_model<T>(path: &Path, read: impl Fn(&Path) -> anyhow::Result<T>) -> anyhow::Result<T> {
    if path.join(MODEL_FILE).exists() {
        return read(path);
    }
    match RunDir::open(path) {
        Ok(run) => run.read_best(read),
        Err(_) => read(&path.join(BEST)),
    }
}

impl RunDir {
    /// The path readers open (`best/`, whichever version it points at).
    pub fn best_dir(&self) -> PathBuf {
        self.path.join(BEST)
    }

    /// Writes a new best model with `write` (into an empty folder it is given), then makes it
    /// `best` atomically.
    pub fn publish_best(
        &self,
        step: usize,
        write: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        // A step published again (a resumed run evaluating the same step) gets a new name, so
        // the folder `best` points at is never touched.
        let mut name = format!("{BEST_VERSION_PREFIX}{step:07}");
        let mut again = 1;
        while self.path.join(&name).exists() {
            name = format!("{BEST_VERSION_PREFIX}{step:07}.{again}");
            again += 1;
        }
        let version = self.path.join(&name);
        self.write_folder(&version, write)?;
        let previous = self.best_target();
        self.point_best_at(&version, &name)?;
        let mut kept = vec![name.as_str()];
        kept.extend(previous.as_deref());
        self.prune_best(&kept);
        Ok(())
    }

    /// Reads the best model with `read`, from the version `best` points at; when that version
    /// vanishes while it is read (two newer models published meanwhile), reads the newest.
    pub fn read_best<T>(&self, read: impl Fn(&Path) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut attempts = 0;
        loop {
            let dir = std::fs::canonicalize(self.best_dir()).with_context(|| {
                let kept_none = self.config().is_ok_and(|c| c.train.keep == Keep::Scores)
                    && !self.status().state.resumable();
                if kept_none {
                    format!(
                        "{}: the run kept only its scores (train.keep = \"scores\"), no model",
                        self.path.display()
                    )
                } else {
                    format!("{}: no best model yet", self.path.display())
                }
            })?;
            match read(&dir) {
                Ok(v) => return Ok(v),
                Err(e) if dir.exists() || attempts == 3 => return Err(e),
                Err(_) => attempts += 1,
            }
        }
    }

    /// What an ended run keeps (`train.keep`): [`Keep::Best`] removes the checkpoints and the
    /// previous best version (a reader still on it goes on to the newest, see
    /// [`RunDir::read_best`]); [`Keep::Scores`] removes every model besides. Errors are ignored:
    /// a file left behind costs space, not results.
    pub fn tidy(&self, keep: Keep) {
        if keep == Keep::All {
            return;
        }
        for dir in self.checkpoint_folders() {
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = std::fs::remove_file(self.path.join(CHECKPOINT_POINTER));
        if keep == Keep::Best {
            if let Some(current) = self.best_target() {
                self.prune_best(&[current.as_str()]);
            }
            return;
        }
        let best = self.best_dir();
        let _ = std::fs::remove_file(&best).or_else(|_| std::fs::remove_dir_all(&best));
        self.prune_best(&[]);
        for entry in std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
        {
            if files::is_stage_best(&entry.file_name().to_string_lossy()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// The folder name `best` points at (Unix), if it is a link.
    fn best_target(&self) -> Option<String> {
        let target = std::fs::read_link(self.best_dir()).ok()?;
        Some(target.to_string_lossy().into_owned())
    }

    #[cfg(unix)]
    fn point_best_at(&self, _version: &Path, name: &str) -> anyhow::Result<()> {
        let link = self.best_dir();
        let is_folder = std::fs::symlink_metadata(&link).is_ok_and(|m| m.is_dir());
        if is_folder {
            // A `best/` folder from an older nerlab becomes a version of its own.
            let legacy = self.path.join(format!("{BEST_VERSION_PREFIX}legacy"));
            let _ = std::fs::remove_dir_all(&legacy);
            std::fs::rename(&link, &legacy)?;
            std::os::unix::fs::symlink(format!("{BEST_VERSION_PREFIX}legacy"), &link)?;
        }
        let tmp_link = self.path.join(".tmp-best-link");
        let _ = std::fs::remove_file(&tmp_link);
        std::os::unix::fs::symlink(name, &tmp_link)
            .with_context(|| format!("linking {}", tmp_link.display()))?;
        std::fs::rename(&tmp_link, &link).with_context(|| format!("replacing {}", link.display()))
    }

    /// Without symbolic links the switch takes two steps: a reader may briefly find no `best/`
    /// (and [`RunDir::read_best`] says so), never half of one.
    #[cfg(not(unix))]
    fn point_best_at(&self, version: &Path, _name: &str) -> anyhow::Result<()> {
        let link = self.best_dir();
        let _ = std::fs::remove_dir_all(&link);
        std::fs::rename(version, &link)
            .with_context(|| format!("renaming {} to {}", version.display(), link.display()))
    }

    /// Removes the best-model versions not named in `kept`.
    fn prune_best(&self, kept: &[&str]) {
        for entry in std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = entry.file_name().to_string_lossy().into_owned();
            if n.starts_with(BEST_VERSION_PREFIX) && !kept.contains(&n.as_str()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_run_keeps_what_train_keep_says() {
        let names = |run: &RunDir| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(&run.path)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("best") || n.starts_with("checkpoint"))
                .collect();
            v.sort();
            v
        };
        for keep in [Keep::All, Keep::Best, Keep::Scores] {
            let tmp = super::super::TempRun::new("tidy");
            let run = &tmp.run;
            for step in [10, 20] {
                run.publish_best(step, |dir| Ok(std::fs::write(dir.join("model"), "m")?))
                    .unwrap();
                run.write_checkpoint(step, 2, |dir| Ok(std::fs::write(dir.join("s"), "s")?))
                    .unwrap();
            }
            std::fs::create_dir_all(run.path.join("stage1-best")).unwrap();
            run.tidy(keep);
            let expected: &[&str] = match keep {
                Keep::All => &[
                    "best",
                    "best-0000010",
                    "best-0000020",
                    "checkpoint-0000010",
                    "checkpoint-0000020",
                    "checkpoint.json",
                    "stage1-best",
                ],
                Keep::Best => &["best", "best-0000020", "stage1-best"],
                Keep::Scores => &[],
            };
            if cfg!(unix) {
                assert_eq!(names(run), expected, "{keep:?}");
            }
            if keep == Keep::Best {
                let text = run
                    .read_best(|d| Ok(std::fs::read_to_string(d.join("model"))?))
                    .unwrap();
                assert_eq!(text, "m");
            }
        }
    }

    /// The same step saved twice (a step's checkpoint, then its evaluation's): the second goes
    /// into a folder of its own, which becomes current, and only then is the first removed; a
    /// resume reads the second.
    #[test]
    fn a_step_saved_again_never_removes_the_current_checkpoint_first() {
        let tmp = super::super::TempRun::new("same-step");
        let run = &tmp.run;
        run.write_checkpoint(10, 1, |dir| {
            Ok(std::fs::write(dir.join("state.json"), "first")?)
        })
        .unwrap();
        let first = run.latest_checkpoint().unwrap();
        run.write_checkpoint(10, 1, |dir| {
            // While the second is written, the first is whole and current.
            assert_eq!(run.latest_checkpoint().as_ref(), Some(&first));
            assert_eq!(std::fs::read_to_string(first.join("state.json"))?, "first");
            Ok(std::fs::write(dir.join("state.json"), "second")?)
        })
        .unwrap();
        let second = run.latest_checkpoint().unwrap();
        assert_ne!(second, first);
        assert!(!first.exists(), "one checkpoint kept");
        assert_eq!(run.resumable_checkpoints(), vec![second.clone()]);
        assert_eq!(
            std::fs::read_to_string(second.join("state.json")).unwrap(),
            "second"
        );
        // The next step sorts after both.
        run.write_checkpoint(12, 2, |dir| {
            Ok(std::fs::write(dir.join("state.json"), "12")?)
        })
        .unwrap();
        assert_eq!(
            run.resumable_checkpoints(),
            vec![run.checkpoint_dir(12), second]
        );
    }

    #[test]
    fn best_switches_whole_and_keeps_one_previous_version() {
        let tmp = super::super::TempRun::new("best");
        let run = &tmp.run;
        // A `best/` folder as older nerlab wrote it.
        std::fs::create_dir_all(run.best_dir()).unwrap();
        std::fs::write(run.best_dir().join("model"), "old").unwrap();
        for step in [10, 20, 30] {
            run.publish_best(step, |dir| {
                std::fs::create_dir_all(dir)?;
                std::fs::write(dir.join("model"), format!("step {step}"))?;
                Ok(())
            })
            .unwrap();
            let text = run
                .read_best(|d| Ok(std::fs::read_to_string(d.join("model"))?))
                .unwrap();
            assert_eq!(text, format!("step {step}"));
        }
        let mut versions: Vec<String> = std::fs::read_dir(&run.path)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(BEST_VERSION_PREFIX))
            .collect();
        versions.sort();
        if cfg!(unix) {
            assert_eq!(versions, ["best-0000020", "best-0000030"]);
        }
        // The same step again: a new version beside the one `best` pointed at.
        run.publish_best(30, |dir| {
            std::fs::create_dir_all(dir)?;
            Ok(std::fs::write(dir.join("model"), "again")?)
        })
        .unwrap();
        let text = run
            .read_best(|d| Ok(std::fs::read_to_string(d.join("model"))?))
            .unwrap();
        assert_eq!(text, "again");
        if cfg!(unix) {
            assert!(
                run.path.join("best-0000030").exists() && run.path.join("best-0000030.1").exists()
            );
        }
    }
}
