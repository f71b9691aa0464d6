//! Running a plan: every point that is not done, `jobs` at a time. A point's run folder says where
//! it stands, so running again starts only what is missing, resumes what was interrupted (a
//! crash, `kill -9`, Ctrl-C) and never trains a point twice: a run another process is training is
//! held by its lock and skipped, and of two processes that find a point free at once only the one
//! that claims it first trains it (`train::start`). A failed run does not stop the others; `retry`
//! moves failed runs aside (their folders are kept, renamed) and trains them again.

use std::collections::VecDeque;
use std::sync::Mutex;

use anyhow::Context;
use serde::Serialize;

use super::plan::{Plan, Point};
use crate::model::device::DeviceSpec;
use crate::train::run_dir::{RunBusy, RunDir, RunState};
use crate::train::{Control, train};

/// Where a point stands, read from its run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PointState {
    /// No run yet.
    Planned,
    /// Trained to its end (finished or early-stopped): its `report.json` counts.
    Done,
    /// Being trained now (its lock is held).
    Running,
    /// Stopped, killed or crashed part-way: resumable.
    Interrupted,
    Failed,
}

impl PointState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Done => "done",
            Self::Running => "running",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
        }
    }
}

/// The state of `point` now.
pub fn state_of(point: &Point) -> PointState {
    let dir = point.dir();
    let Ok(run) = RunDir::open(&dir) else {
        return PointState::Planned;
    };
    match run.status().state {
        RunState::Finished | RunState::EarlyStopped => PointState::Done,
        RunState::Failed => PointState::Failed,
        // A live state is only reported while the run's lock is held.
        s if s.is_live() => PointState::Running,
        _ => PointState::Interrupted,
    }
}

/// How to run a plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunOptions {
    /// Runs trained at once (with `devices`: one per device).
    pub jobs: usize,
    /// CPU threads of each run (default: the cores shared out among the jobs).
    pub threads: Option<usize>,
    /// Train failed runs again (their folders are moved aside first).
    pub retry_failed: bool,
    /// One job per device, each training its runs there (none: every run on its configured
    /// device).
    pub devices: Vec<DeviceSpec>,
    /// Only these points (indices into the plan; none: all). A Slurm array task runs one.
    pub only: Option<Vec<usize>>,
    /// Start no point at or after this moment; the points already training finish (a session
    /// or an allocation that ends at a known time then ends with whole runs).
    pub start_before: Option<std::time::Instant>,
}

/// What running did with one point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "message")]
pub enum Outcome {
    Trained,
    Resumed,
    AlreadyDone,
    /// Another process trains it.
    Busy,
    /// Failed earlier and not retried.
    SkippedFailed,
    Failed(String),
    /// Stopped (Ctrl-C) before or while training: resumable.
    Stopped,
    /// Not asked for (`RunOptions::only`).
    Skipped,
}

/// Told as points start and end (a progress bar, the workbench).
pub trait Progress: Sync {
    fn started(&self, _point: &Point, _resuming: bool) {}
    fn ended(&self, _point: &Point, _outcome: &Outcome) {}
}

/// No progress shown.
pub struct Silent;
impl Progress for Silent {}

/// Runs every point of `plan` that is not done; one outcome per point, in plan order (points not
/// asked for are [`Outcome::Skipped`]). A point that starts from a stage's run waits for it.
pub fn run(
    plan: &Plan,
    opts: &RunOptions,
    control: &Control,
    progress: &dyn Progress,
) -> Vec<Outcome> {
    let wanted: Vec<usize> = match &opts.only {
        Some(only) => only.clone(),
        None => (0..plan.points.len()).collect(),
    };
    let jobs = if opts.devices.is_empty() {
        opts.jobs.max(1).min(wanted.len().max(1))
    } else {
        opts.devices.len()
    };
    let threads = opts.threads.unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / jobs).max(1)
    });
    let mut asked = vec![false; plan.points.len()];
    for &i in &wanted {
        asked[i] = true;
    }
    let queue: Mutex<VecDeque<usize>> = Mutex::new(wanted.into_iter().collect());
    let outcomes: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; plan.points.len()]);
    std::thread::scope(|scope| {
        for job in 0..jobs {
            let (queue, outcomes, wanted) = (&queue, &outcomes, &asked);
            let device = opts.devices.get(job).copied();
            scope.spawn(move || {
                while let Some(i) =
                    next_point(plan, wanted, queue, outcomes, control, opts.start_before)
                {
                    let point = &plan.points[i];
                    let outcome = match stage_blocks(plan, point) {
                        Some(why) => Outcome::Failed(why),
                        None => {
                            let mut config = point.config.clone();
                            config.threads = Some(threads);
                            if let Some(d) = &device {
                                config.device = *d;
                            }
                            guarded(|| {
                                run_point(point, config, opts.retry_failed, control, progress)
                            })
                        }
                    };
                    progress.ended(point, &outcome);
                    if let Ok(mut o) = outcomes.lock() {
                        o[i] = Some(outcome);
                    }
                }
            });
        }
    });
    outcomes
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            o.unwrap_or(match &opts.only {
                Some(only) if !only.contains(&i) => Outcome::Skipped,
                _ => Outcome::Stopped,
            })
        })
        .collect()
}

/// Why `point` cannot start from its stage's run, if it cannot: the stage run is not done, or is
/// done without a model (unpacked from a pack, which keeps none, and the plan grew since). A point
/// that is already done needs nothing from its stage and is never blocked.
fn stage_blocks(plan: &Plan, point: &Point) -> Option<String> {
    let j = point.needs?;
    if state_of(point) == PointState::Done {
        return None;
    }
    let stage = &plan.points[j];
    match state_of(stage) {
        PointState::Done if crate::infer::has_model(&stage.dir()) => None,
        PointState::Done => Some(format!(
            "it starts from {}, which is done but holds no model (an unpacked run keeps only its \
             scores): move that folder aside and `run` trains it again",
            stage.dir().display()
        )),
        state => Some(format!(
            "it starts from {}, which is {}",
            stage.dir().display(),
            state.name()
        )),
    }
}

/// Runs one point, turning a panic inside it into a failed outcome: the run's folder already says
/// failed (the trainer marks it before the panic goes on), and the other jobs, some of which may
/// wait for this point, go on instead of waiting for an outcome that never comes.
fn guarded(f: impl FnOnce() -> Outcome) -> Outcome {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(outcome) => outcome,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Outcome::Failed(format!("panicked: {what}"))
        }
    }
}

/// How long a job waits before looking again for a point whose stage run is not finished.
const WAIT_FOR_STAGE: std::time::Duration = std::time::Duration::from_millis(200);

/// The next point to train: the first queued one that does not wait for a stage run still
/// training (here or in another process). None when the queue is empty, on a stop, or from
/// `start_before` on.
fn next_point(
    plan: &Plan,
    wanted: &[bool],
    queue: &Mutex<VecDeque<usize>>,
    outcomes: &Mutex<Vec<Option<Outcome>>>,
    control: &Control,
    start_before: Option<std::time::Instant>,
) -> Option<usize> {
    loop {
        if control.stopped() || start_before.is_some_and(|t| std::time::Instant::now() >= t) {
            return None;
        }
        {
            let mut q = queue.lock().ok()?;
            if q.is_empty() {
                return None;
            }
            // A source this runner still has to train, or trains now (taken from the queue, its
            // folder perhaps not yet written), is waited for before its folder is read.
            let ended = |j: usize| outcomes.lock().is_ok_and(|o| o[j].is_some());
            let here = |j: usize| q.contains(&j) || (wanted[j] && !ended(j));
            let ready = |i: usize| match plan.points[i].needs {
                None => true,
                Some(j) => !here(j) && state_of(&plan.points[j]) != PointState::Running,
            };
            if let Some(pos) = q.iter().position(|&i| ready(i)) {
                return q.remove(pos);
            }
        }
        std::thread::sleep(WAIT_FOR_STAGE);
    }
}

fn run_point(
    point: &Point,
    config: crate::train::RunConfig,
    retry_failed: bool,
    control: &Control,
    progress: &dyn Progress,
) -> Outcome {
    if control.stopped() {
        return Outcome::Stopped;
    }
    let resume = match state_of(point) {
        PointState::Done => return Outcome::AlreadyDone,
        PointState::Running => return Outcome::Busy,
        PointState::Failed if !retry_failed => return Outcome::SkippedFailed,
        PointState::Failed => match move_aside(point) {
            Ok(true) => false,
            // Another `retry` moved it first (and may be training it again now).
            Ok(false) => return Outcome::Busy,
            Err(e) => return Outcome::Failed(format!("{e:#}")),
        },
        PointState::Interrupted => true,
        PointState::Planned => false,
    };
    progress.started(point, resume);
    let dir = point.dir();
    let result = train(
        config,
        resume.then_some(dir.as_path()),
        &mut crate::train::events::Quiet,
        control.clone(),
    );
    match result {
        Ok(o) if o.state == RunState::Stopped => Outcome::Stopped,
        Ok(_) if resume => Outcome::Resumed,
        Ok(_) => Outcome::Trained,
        Err(e) if e.downcast_ref::<RunBusy>().is_some() => Outcome::Busy,
        // Found free, then taken by another process before this one could create it.
        Err(_) if !resume && matches!(state_of(point), PointState::Running | PointState::Done) => {
            Outcome::Busy
        }
        Err(e) => Outcome::Failed(format!("{e:#}")),
    }
}

/// Renames a failed run's folder to `<name>.failed-<n>`, keeping it for a post-mortem; false
/// when it is no longer there to move. The rename happens under the run's claim and only while
/// the run is still failed: two `retry`s that both found it failed move it once, and the second
/// never moves aside the run the first has started in its place.
fn move_aside(point: &Point) -> anyhow::Result<bool> {
    let dir = point.dir();
    let Ok(run) = RunDir::open(&dir) else {
        return Ok(false);
    };
    let claim = match run.claim() {
        Ok(c) => c,
        Err(e) if e.downcast_ref::<RunBusy>().is_some() => return Ok(false),
        // Moved (or removed) between the look and the claim.
        Err(_) if !dir.exists() => return Ok(false),
        Err(e) => return Err(e),
    };
    // The claim must be of the folder now at `dir` (another retry may have moved the one this
    // process opened, and started a run in its place), and that run still failed.
    if !claim.is_of(&dir) || state_of(point) != PointState::Failed {
        return Ok(false);
    }
    let mut n = 1;
    loop {
        let aside = point.config.out.join(format!("{}.failed-{n}", point.name));
        if !aside.exists() {
            std::fs::rename(&dir, &aside).with_context(|| {
                format!("moving {} aside to {}", dir.display(), aside.display())
            })?;
            return Ok(true);
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_point_becomes_a_failed_outcome_with_its_message() {
        let text = guarded(|| panic!("a {} went wrong", "kernel"));
        let literal = guarded(|| panic!("plain"));
        assert_eq!(
            text,
            Outcome::Failed("panicked: a kernel went wrong".into())
        );
        assert_eq!(literal, Outcome::Failed("panicked: plain".into()));
        assert_eq!(guarded(|| Outcome::Trained), Outcome::Trained);
    }

    #[test]
    fn a_failed_run_is_moved_aside_once_and_never_while_claimed() {
        let out = std::env::temp_dir().join(format!("nerlab-aside-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let text = format!(
            "name = \"t\"\nout = {out:?}\n[base]\nmodel.source = \"char\"\n\
             data.train = [\"builtin:demo/train\"]\n[grid]\nseed = [1]\n"
        );
        let plan = super::super::plan::plan(&toml::from_str(&text).unwrap()).unwrap();
        let point = &plan.points[0];
        let failed = |state| {
            let run = RunDir::create(&out, &point.name).unwrap();
            run.write_config(&point.config).unwrap();
            run.write_status(&crate::train::run_dir::Status {
                state,
                ..Default::default()
            })
            .unwrap();
            run
        };
        let run = failed(RunState::Failed);
        assert_eq!(state_of(point), PointState::Failed);
        // Claimed (another `retry` about to move it, or training in its place): left alone.
        let claim = run.claim().unwrap();
        assert!(!move_aside(point).unwrap());
        assert!(point.dir().exists());
        drop(claim);
        // Free and failed: moved once; the second finds nothing to move.
        assert!(move_aside(point).unwrap());
        assert!(out.join(format!("{}.failed-1", point.name)).is_dir());
        assert!(!point.dir().exists());
        assert!(!move_aside(point).unwrap());
        // A run that is no longer failed (the first retry's, finished) stays where it is.
        failed(RunState::Finished);
        assert!(!move_aside(point).unwrap());
        assert!(point.dir().exists());
        assert!(!out.join(format!("{}.failed-2", point.name)).exists());
        let _ = std::fs::remove_dir_all(&out);
    }
}
