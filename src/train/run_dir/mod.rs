//! A run on disk, `runs/<name>/`, and the one type that reads and writes it ([`RunDir`]):
//!
//! ```text
//! config.toml            the complete configuration (reload it to rerun)
//! status.json            state, step, best dev F1, message (what `nerlab runs` and the workbench list)
//! train.lock             the single writer's claim (an OS lock, see lock.rs)
//! metrics.jsonl          one typed JSON line per logged step and per evaluation (metrics.rs)
//! checkpoint.json        points at the latest resumable checkpoint directory
//! checkpoint-<step>/     model, optimizer state and trainer state at that step (`.<n>` added
//!                        when a step is saved again)
//! best -> best-<step>/   the model with the best dev F1, switched whole (best.rs)
//! dev-predictions.*      the best model's dev predictions in the dev corpus's own format
//! dev-calibration.json   their calibration (reliability bins, ECE), which tags alone cannot give
//! report.json            {"dev": <nerlab score --json shape>, "eval": {...}, "best_step": ...}
//! data.json              each corpus as read at the start (sentences, a hash): resume checks it
//! ```
//!
//! Every file name lives in [`files`]. Whole files are written to a temporary name and renamed
//! (`metrics.jsonl` is appended to, one line at a time); a checkpoint becomes current only when
//! `checkpoint.json` is replaced, so a crash at any moment leaves the last good one usable.

mod best;
pub mod files;
mod lock;
mod metrics;
pub mod space;
mod status;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;

use super::config::RunConfig;
use crate::data::{Corpus, Format};
pub use best::read_model;
pub use lock::{Claim, RunBusy, RunLock};
pub use metrics::{EvalLine, MetricsLine, TrainLine};
pub use status::{PROGRESS_EVERY, RunState, Status};

/// Why a run folder cannot be made in `out`, in words a researcher acts on.
fn not_writable(out: &Path, path: &Path, e: &std::io::Error) -> anyhow::Error {
    use std::io::ErrorKind as K;
    let why = match e.kind() {
        K::PermissionDenied | K::ReadOnlyFilesystem => {
            "it is read-only for this user (or on a read-only file system)".to_string()
        }
        K::NotADirectory => "a part of that path is a file, not a folder".to_string(),
        K::StorageFull => "the disk is full".to_string(),
        _ => e.to_string(),
    };
    anyhow::anyhow!(
        "cannot write the run folder {}: {why}; choose another output folder (--out, or `out` in \
         the configuration) than {}",
        path.display(),
        out.display()
    )
}

/// Writes `bytes` to `path` through a temporary file and a rename. The temporary file's name is
/// this writer's own (process and call), so two processes writing the same file at once (two
/// `run --pack` packing one done run) each rename a whole file, never one the other is writing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!(
        "{}.{}-{call}.tmp",
        path.extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("renaming {} to {}", tmp.display(), path.display())
    })
}

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
    /// The state last written to `status.json` and when (progress writes are rate-limited).
    last_status: Arc<Mutex<Option<(RunState, Instant)>>>,
}

impl RunDir {
    fn at(path: PathBuf) -> Self {
        Self {
            path,
            last_status: Arc::default(),
        }
    }

    /// Creates `out/name` for a new run; an existing run of that name is never overwritten.
    pub fn create(out: &Path, name: &str) -> anyhow::Result<Self> {
        let path = out.join(name);
        if path.join(files::CONFIG).exists() {
            anyhow::bail!(
                "{} already holds a run; resume it with --resume {0}, or choose another --name",
                path.display()
            );
        }
        std::fs::create_dir_all(&path).map_err(|e| not_writable(out, &path, &e))?;
        // A folder that exists but cannot be written (read-only, or another user's) fails here,
        // before any work, rather than at the first save.
        let probe = path.join(".nerlab-write-test");
        std::fs::write(&probe, b"").map_err(|e| not_writable(out, &path, &e))?;
        let _ = std::fs::remove_file(&probe);
        Ok(Self::at(path))
    }

    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if !path.join(files::CONFIG).exists() {
            anyhow::bail!(
                "{} is not a nerlab run directory (no {})",
                path.display(),
                files::CONFIG
            );
        }
        Ok(Self::at(path.to_path_buf()))
    }

    /// Whether `path` holds a run (its configuration).
    pub fn is_run(path: &Path) -> bool {
        path.join(files::CONFIG).exists()
    }

    /// Removes a folder at `path` that holds no run (no configuration: a start killed before it
    /// wrote one) and that no process has claimed; true when it did. A folder that holds a run,
    /// or that a starting process holds, stays.
    pub fn remove_if_no_run(path: &Path) -> anyhow::Result<bool> {
        if !path.is_dir() || Self::is_run(path) {
            return Ok(false);
        }
        let Ok(_claim) = Self::at(path.to_path_buf()).claim() else {
            return Ok(false);
        };
        if Self::is_run(path) {
            return Ok(false);
        }
        std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
        Ok(true)
    }

    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn write_config(&self, c: &RunConfig) -> anyhow::Result<()> {
        write_atomic(&self.path.join(files::CONFIG), c.to_toml()?.as_bytes())
    }

    /// The run's configuration as it was trained. A run written by nerlab before K-shot had two
    /// spellings stored `k_shot = 0` for "every sentence"; zero-shot needs `init_from`, which
    /// such a run never has, so that 0 is read as "all".
    pub fn config(&self) -> anyhow::Result<RunConfig> {
        let mut c = RunConfig::load(&self.path.join(files::CONFIG))?;
        if c.data.k_shot.is_zero() && c.init_from.is_none() {
            c.data.k_shot = super::config::Shots::All;
        }
        Ok(c)
    }

    pub fn checkpoint_dir(&self, step: usize) -> PathBuf {
        self.path
            .join(format!("{}{step:07}", files::CHECKPOINT_PREFIX))
    }

    /// Writes a checkpoint for `step` with `write` (into an empty folder it is given), then
    /// makes it the current one: a crash while writing leaves the previous checkpoint current.
    /// The `keep` newest checkpoints stay (at least one).
    pub fn write_checkpoint(
        &self,
        step: usize,
        keep: usize,
        write: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let dir = self.unused_checkpoint_dir(step);
        self.write_folder(&dir, write)?;
        self.publish_checkpoint(&dir, keep)
    }

    /// Where a checkpoint of `step` goes: `checkpoint-<step>/`, or, when that folder exists (the
    /// same step saved again: a step's checkpoint and then its evaluation's at an epoch's end, a
    /// stop right after a save), `checkpoint-<step>.<n>/`, which sorts after it. The folder the
    /// pointer names is then never removed before the new one is published: a kill at any
    /// moment leaves one to resume from.
    fn unused_checkpoint_dir(&self, step: usize) -> PathBuf {
        let dir = self.checkpoint_dir(step);
        if !dir.exists() {
            return dir;
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (1..)
            .map(|n| dir.with_file_name(format!("{name}.{n:03}")))
            .find(|d| !d.exists())
            .unwrap_or(dir)
    }

    /// Fails before a save of about `needed` bytes that would not fit (see `space.rs`).
    pub fn ensure_space(&self, what: &str, needed: u64) -> anyhow::Result<()> {
        space::check(&self.path, what, needed, space::free_bytes(&self.path))
    }

    /// Writes the folder `dest` whole: `write` fills an empty `.tmp-<name>` beside it, which is
    /// then renamed to `dest` (replacing one of that name), so `dest` is never seen half written.
    fn write_folder(
        &self,
        dest: &Path,
        write: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = self.path.join(format!(".tmp-{name}"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        if let Err(e) = write(&tmp) {
            // A half-written folder (a full disk: an encoder's is over a gigabyte) is not left
            // to make things worse.
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e.context(format!("writing {}", dest.display())));
        }
        let _ = std::fs::remove_dir_all(dest);
        std::fs::rename(&tmp, dest)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))
    }

    /// Makes `dir` the current checkpoint and removes all but the `keep` newest (the current one
    /// always stays; folders of later steps, left by a run that went back, go).
    pub fn publish_checkpoint(&self, dir: &Path, keep: usize) -> anyhow::Result<()> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        write_atomic(
            &self.path.join(files::CHECKPOINT_POINTER),
            serde_json::json!({ "dir": name }).to_string().as_bytes(),
        )?;
        // Newest first: the current one, then `keep - 1` older ones stay.
        let mut kept = 1;
        for p in self.checkpoint_folders() {
            let n = p.file_name().map(|n| n.to_string_lossy().into_owned());
            match n.as_deref() {
                Some(n) if n == name => continue,
                Some(n) if n < name.as_str() && kept < keep => kept += 1,
                _ => {
                    let _ = std::fs::remove_dir_all(&p);
                }
            }
        }
        Ok(())
    }

    /// Checkpoint folders (`checkpoint-<step>/`), newest step first.
    fn checkpoint_folders(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(&self.path)
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(files::CHECKPOINT_PREFIX)
                            && e.path().is_dir()
                    })
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        // Step numbers are zero-padded: names sort as steps do.
        out.sort_by(|a, b| b.file_name().cmp(&a.file_name()));
        out
    }

    /// The current checkpoint, if one was published.
    pub fn latest_checkpoint(&self) -> Option<PathBuf> {
        self.current_checkpoint()
            .filter(|dir| dir.join(files::CHECKPOINT_STATE).exists())
    }

    fn current_checkpoint(&self) -> Option<PathBuf> {
        let text = std::fs::read_to_string(self.path.join(files::CHECKPOINT_POINTER)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(self.path.join(v["dir"].as_str()?))
    }

    /// The checkpoints a resume may start from, in the order to try them: the current one, then
    /// the older ones kept (`--keep-checkpoints`), newest first. Folders newer than the current
    /// one were never made current (a save cut off) and are not offered. Without a readable
    /// `checkpoint.json` (deleted, or emptied by a power cut) every checkpoint folder is offered,
    /// newest first: each was renamed into place whole, and starting over would throw away the
    /// run's progress.
    pub fn resumable_checkpoints(&self) -> Vec<PathBuf> {
        let Some(current) = self.current_checkpoint() else {
            return self.checkpoint_folders();
        };
        let mut out = vec![current.clone()];
        out.extend(
            self.checkpoint_folders()
                .into_iter()
                .filter(|p| p.file_name() < current.file_name()),
        );
        out
    }

    /// The best model's dev predictions, written in the dev corpus's own format.
    pub fn write_dev_predictions(
        &self,
        dev: &Corpus,
        pred: Vec<Vec<String>>,
    ) -> anyhow::Result<()> {
        let ext = match dev.format {
            Format::Conll | Format::Kmou => "txt",
            Format::Multiconer => "conll",
            _ => "tsv",
        };
        let path = self
            .path
            .join(format!("{}.{ext}", files::DEV_PREDICTIONS_STEM));
        crate::data::write(&dev.with_tags(pred), &path)?;
        Ok(())
    }

    /// Where the dev predictions are, if they were written.
    pub fn dev_predictions(&self) -> Option<PathBuf> {
        files::DEV_PREDICTIONS_EXTENSIONS
            .iter()
            .map(|e| {
                self.path
                    .join(format!("{}.{e}", files::DEV_PREDICTIONS_STEM))
            })
            .find(|p| p.exists())
    }

    pub fn write_dev_calibration(
        &self,
        c: &crate::metrics::calibration::Calibration,
    ) -> anyhow::Result<()> {
        write_atomic(
            &self.path.join(files::DEV_CALIBRATION),
            serde_json::to_string(c)?.as_bytes(),
        )
    }

    pub fn dev_calibration(&self) -> Option<crate::metrics::calibration::Calibration> {
        serde_json::from_str(&std::fs::read_to_string(self.path.join(files::DEV_CALIBRATION)).ok()?)
            .ok()
    }

    pub fn write_report(&self, report: &serde_json::Value) -> anyhow::Result<()> {
        write_atomic(
            &self.path.join(files::REPORT),
            serde_json::to_string_pretty(report)?.as_bytes(),
        )
    }

    /// Keeps the section of stage `stage` of the report (see [`files::stage_report`]).
    pub fn write_stage_report(
        &self,
        stage: usize,
        section: &serde_json::Value,
    ) -> anyhow::Result<()> {
        write_atomic(
            &self.path.join(files::stage_report(stage)),
            serde_json::to_string_pretty(section)?.as_bytes(),
        )
    }

    pub fn read_stage_report(&self, stage: usize) -> anyhow::Result<serde_json::Value> {
        let path = self.path.join(files::stage_report(stage));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
    }

    /// Copies the current best model to `stage<N>-best/` (whole, or not at all).
    pub fn keep_stage_best(&self, stage: usize) -> anyhow::Result<()> {
        let dest = self.path.join(files::stage_best(stage));
        self.read_best(|from| {
            self.write_folder(&dest, |dir| {
                for entry in std::fs::read_dir(from)? {
                    let entry = entry?;
                    std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
                }
                Ok(())
            })
        })
    }

    /// Records what each stage sampled (see [`files::SAMPLES`]).
    pub fn write_samples<T: serde::Serialize>(&self, samples: &T) -> anyhow::Result<()> {
        write_atomic(
            &self.path.join(files::SAMPLES),
            serde_json::to_string_pretty(samples)?.as_bytes(),
        )
    }

    /// Records what the run trains and is scored on (see [`files::DATA`]).
    pub fn write_data(&self, data: &[(String, String)]) -> anyhow::Result<()> {
        write_atomic(
            &self.path.join(files::DATA),
            serde_json::to_string_pretty(data)?.as_bytes(),
        )
    }

    /// What [`write_data`](Self::write_data) recorded; none for a run from before it existed.
    pub fn data(&self) -> Option<Vec<(String, String)>> {
        serde_json::from_str(&std::fs::read_to_string(self.path.join(files::DATA)).ok()?).ok()
    }

    pub fn report(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(self.path.join(files::REPORT)).ok()?).ok()
    }
}

/// Run directories under `out`, newest first.
pub fn list_runs(out: &Path) -> Vec<RunDir> {
    let mut runs: Vec<(std::time::SystemTime, RunDir)> = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        // Hidden folders are work in progress (an unpack's, `experiment::archive`), not runs.
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.') && RunDir::is_run(&e.path()))
        .map(|e| {
            let t = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, RunDir::at(e.path()))
        })
        .collect();
    runs.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.path.cmp(&b.1.path)));
    runs.into_iter().map(|(_, r)| r).collect()
}

/// A fresh run folder under the temporary directory for unit tests, removed when dropped.
#[cfg(test)]
pub(crate) struct TempRun {
    pub out: PathBuf,
    pub run: RunDir,
}

#[cfg(test)]
impl TempRun {
    pub fn new(tag: &str) -> Self {
        let out = std::env::temp_dir().join(format!("nerlab-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let run = RunDir::create(&out, "r").expect("a temporary run folder");
        Self { out, run }
    }
}

#[cfg(test)]
impl Drop for TempRun {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_truncate_and_checkpoints_publish() {
        let tmp = TempRun::new("rundir");
        let (out, run) = (&tmp.out, &tmp.run);
        run.write_config(&RunConfig::default()).unwrap();
        assert!(RunDir::create(out, "r").is_err(), "never overwrites a run");
        for step in 1..=5 {
            run.append_metrics(&MetricsLine::Train(TrainLine {
                step,
                epoch: 0.0,
                loss: 1.0,
                lr: 0.1,
                grad_norm: 1.0,
            }))
            .unwrap();
        }
        run.truncate_metrics_after(3).unwrap();
        assert_eq!(run.metrics().len(), 3);
        for step in [10, 20] {
            let d = run.checkpoint_dir(step);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(files::CHECKPOINT_STATE), "{}").unwrap();
            run.publish_checkpoint(&d, 1).unwrap();
        }
        assert_eq!(run.latest_checkpoint(), Some(run.checkpoint_dir(20)));
        assert!(!run.checkpoint_dir(10).exists());
        assert_eq!(list_runs(out).len(), 1);
    }

    /// `--keep-checkpoints 3`: the three newest stay, and a resume is offered them newest first
    /// (never a folder newer than the current one, which was never made current).
    #[test]
    fn an_output_folder_that_cannot_be_written_is_named_with_the_reason() {
        let tmp = TempRun::new("ro");
        let file = tmp.out.join("a-file");
        std::fs::write(&file, "x").unwrap();
        let e = RunDir::create(&file, "r").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "cannot write the run folder {}/r: a part of that path is a file, not a folder; \
                 choose another output folder",
                file.display()
            )),
            "{e}"
        );
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = not_writable(Path::new("/data"), Path::new("/data/r"), &denied).to_string();
        assert!(
            e.starts_with(
                "cannot write the run folder /data/r: it is read-only for this user (or on a \
                 read-only file system)"
            ),
            "{e}"
        );
    }

    #[test]
    fn the_newest_checkpoints_are_kept_and_offered_newest_first() {
        let tmp = TempRun::new("keep");
        let run = &tmp.run;
        for step in [10, 20, 30, 40, 50] {
            let d = run.checkpoint_dir(step);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(files::CHECKPOINT_STATE), "{}").unwrap();
            run.publish_checkpoint(&d, 3).unwrap();
        }
        let left = |run: &RunDir| -> Vec<usize> {
            run.checkpoint_folders()
                .iter()
                .map(|p| {
                    p.to_string_lossy()
                        .rsplit('-')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap()
                })
                .collect()
        };
        assert_eq!(left(run), [50, 40, 30]);
        std::fs::create_dir_all(run.checkpoint_dir(60)).unwrap();
        let offered = run.resumable_checkpoints();
        assert_eq!(
            offered,
            [50, 40, 30].map(|s| run.checkpoint_dir(s)).to_vec()
        );
        // Publishing an older step (a resume from a fallback) drops the newer folders.
        run.publish_checkpoint(&run.checkpoint_dir(40), 3).unwrap();
        assert_eq!(left(run), [40, 30]);
        // Without a readable pointer, every folder, newest first: not a start from zero.
        for pointer in ["", "{\"di"] {
            std::fs::write(run.path.join(files::CHECKPOINT_POINTER), pointer).unwrap();
            let offered = run.resumable_checkpoints();
            assert_eq!(offered, [40, 30].map(|s| run.checkpoint_dir(s)).to_vec());
        }
        std::fs::remove_file(run.path.join(files::CHECKPOINT_POINTER)).unwrap();
        assert_eq!(run.resumable_checkpoints().len(), 2);
    }

    #[test]
    fn an_older_runs_k_shot_zero_reads_as_every_sentence() {
        let tmp = TempRun::new("legacy-k");
        let text = RunConfig::default()
            .to_toml()
            .unwrap()
            .replace("k_shot = \"all\"", "k_shot = 0");
        std::fs::write(tmp.run.path.join(files::CONFIG), text).unwrap();
        assert_eq!(
            tmp.run.config().unwrap().data.k_shot,
            super::super::config::Shots::All
        );
    }
}
