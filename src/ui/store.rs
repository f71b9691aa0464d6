//! The run store: everything the panels show, as plain data built only from worker
//! [`Event`]s. Tests build it from canned events without egui or a worker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::infer::TextSpan;
use crate::metrics::ScoreReport;
use crate::protocol::{CurvePoint, DevView, EvalPoint, Event, LoadedRun, RunFiles, RunId};
use crate::train::RunConfig;
use crate::train::run_dir::RunState;
use crate::train::trainer::StepMetrics;

/// Where a run stands, from the UI's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sent to the worker, waiting behind another run.
    Queued,
    Active(RunState),
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Active(s) => s.name(),
        }
    }

    pub fn is_live(self) -> bool {
        match self {
            Self::Queued => true,
            Self::Active(state) => state.is_live(),
        }
    }
}

/// Whether a run ended in a way whose message is an error to show (failed, or interrupted).
fn ended_badly(state: RunState) -> bool {
    matches!(state, RunState::Failed | RunState::Interrupted)
}

/// The name a model opened from elsewhere is listed under: its folder's (or file's) name, as runs
/// are listed by their folder's.
pub fn opened_name(model: &str) -> String {
    Path::new(model)
        .file_name()
        .map_or_else(|| model.to_string(), |n| n.to_string_lossy().into_owned())
}

/// One run: launched in this session, or found on disk.
#[derive(Debug, Clone)]
pub struct RunEntry {
    /// The session's id for runs launched here.
    pub id: Option<RunId>,
    pub name: String,
    pub dir: Option<PathBuf>,
    pub phase: Phase,
    pub config: Option<RunConfig>,
    /// The latest step reached (live) or recorded (on disk), of `total_steps`.
    pub step: usize,
    pub total_steps: usize,
    pub last: Option<StepMetrics>,
    /// Every training step logged (the full history; plots draw a decimated copy).
    pub curve: Vec<CurvePoint>,
    pub evals: Vec<EvalPoint>,
    pub best_f1: Option<f64>,
    /// The latest (live) or best (loaded) dev report.
    pub report: Option<Box<ScoreReport>>,
    pub dev: Option<DevView>,
    pub messages: Vec<String>,
    pub error: Option<String>,
    /// What its folder holds (a best model, a checkpoint), as the worker last reported it.
    pub files: RunFiles,
    /// Bumped whenever the curve changes, so cached decimations know to refresh.
    pub revision: u64,
}

impl RunEntry {
    fn new(id: Option<RunId>, name: String, dir: Option<PathBuf>, phase: Phase) -> Self {
        Self {
            id,
            name,
            dir,
            phase,
            config: None,
            step: 0,
            total_steps: 0,
            last: None,
            curve: Vec::new(),
            evals: Vec::new(),
            best_f1: None,
            report: None,
            dev: None,
            messages: Vec::new(),
            error: None,
            files: RunFiles::default(),
            revision: 0,
        }
    }

    /// Its best model, for tagging and attention (a run directory with `best/`).
    pub fn model_dir(&self) -> Option<&Path> {
        self.dir.as_deref().filter(|_| self.files.has_model)
    }
}

/// The result of the latest tagging request of a tagger slot.
#[derive(Debug, Clone, PartialEq)]
pub struct TagResult {
    pub request: u64,
    pub text: String,
    pub spans: Vec<TextSpan>,
}

/// The latest attention answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionResult {
    pub request: u64,
    pub tokens: Vec<String>,
    pub token_tags: Vec<String>,
    pub weights: Vec<Vec<Vec<Vec<f32>>>>,
}

/// All runs, and the answers to the UI's requests.
#[derive(Debug, Clone, Default)]
pub struct RunStore {
    pub runs: Vec<RunEntry>,
    /// Tagging answers by request id.
    pub tagged: BTreeMap<u64, TagResult>,
    pub attention: Option<AttentionResult>,
    /// Messages to show until dismissed (worker failures).
    pub banners: Vec<String>,
    /// The worker thread has ended.
    pub worker_stopped: bool,
}

impl RunStore {
    pub fn by_id(&self, id: RunId) -> Option<&RunEntry> {
        self.runs.iter().find(|r| r.id == Some(id))
    }

    fn by_id_mut(&mut self, id: RunId) -> Option<&mut RunEntry> {
        self.runs.iter_mut().find(|r| r.id == Some(id))
    }

    /// Records a run the UI just sent to the worker.
    pub fn launched(&mut self, id: RunId, name: String, config: RunConfig) {
        let mut e = RunEntry::new(Some(id), name, None, Phase::Queued);
        e.config = Some(config);
        self.runs.push(e);
    }

    /// Applies one worker event.
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Started { id, start } => {
                if let Some(r) = self.by_id_mut(id) {
                    r.name = start
                        .dir
                        .file_name()
                        .map_or(r.name.clone(), |n| n.to_string_lossy().into_owned());
                    r.dir = Some(start.dir);
                    r.total_steps = start.total_steps;
                    r.phase = Phase::Active(RunState::Running);
                    if let Some(step) = start.resumed_from {
                        r.curve.retain(|p| p.step <= step);
                        r.messages.push(format!("resumed at step {step}"));
                    }
                }
            }
            Event::Progress { id, last, points } => {
                if let Some(r) = self.by_id_mut(id) {
                    r.curve.extend(points);
                    r.total_steps = last.total_steps;
                    r.step = last.step;
                    r.last = Some(last);
                    r.revision += 1;
                }
            }
            Event::Evaluated {
                id,
                step,
                report,
                best,
                files,
            } => self.evaluated(id, step, report, best, files),
            Event::Paused(id) => self.set_phase(id, RunState::Paused),
            Event::Resumed(id) => self.set_phase(id, RunState::Running),
            Event::Message { id, text } => {
                if let Some(r) = self.by_id_mut(id) {
                    r.messages.push(text);
                }
            }
            Event::Finished {
                id,
                dir,
                state,
                best_f1,
                message,
                files,
            } => {
                if let Some(r) = self.by_id_mut(id) {
                    r.files = files;
                    r.phase = Phase::Active(state);
                    r.dir = Some(dir);
                    r.best_f1 = best_f1.or(r.best_f1);
                    r.messages.push(message);
                }
            }
            Event::Failed { id, message, files } => self.failed(id, message, files),
            Event::Tagged {
                request,
                text,
                spans,
            } => self.tag_answer(TagResult {
                request,
                text,
                spans,
            }),
            Event::Attention {
                request,
                tokens,
                token_tags,
                weights,
            } => {
                self.attention = Some(AttentionResult {
                    request,
                    tokens,
                    token_tags,
                    weights,
                });
            }
            Event::RunLoaded(run) => self.loaded(*run),
            Event::RunStatus {
                dir,
                state,
                step,
                total_steps,
                message,
                files,
            } => {
                // Only runs another process trains: this session's runs speak for themselves.
                if let Some(r) = self.elsewhere_mut(&dir) {
                    r.phase = Phase::Active(state);
                    r.step = step;
                    r.total_steps = total_steps;
                    r.error = ended_badly(state).then_some(message);
                    r.files = files;
                }
            }
            Event::RunGone { dir } => {
                if let Some(r) = self.elsewhere_mut(&dir) {
                    r.phase = Phase::Active(RunState::Failed);
                    r.error = Some(format!(
                        "{}: the run folder is gone (removed or moved while listed)",
                        dir.display()
                    ));
                    r.files = RunFiles::default();
                }
            }
            Event::RunsFound { .. } => {} // the app asks for the runs it has not read
            Event::Stopped => self.worker_stopped = true,
        }
    }

    fn evaluated(
        &mut self,
        id: RunId,
        step: usize,
        report: Box<ScoreReport>,
        best: bool,
        files: RunFiles,
    ) {
        if let Some(r) = self.by_id_mut(id) {
            r.files = files;
            r.evals.push(EvalPoint::of(step, &report));
            if best {
                r.best_f1 = Some(report.micro.f1);
            }
            r.report = Some(report);
            r.revision += 1;
        }
    }

    fn tag_answer(&mut self, answer: TagResult) {
        self.tagged.insert(answer.request, answer);
        // Keep the map small: only the newest answers matter.
        while self.tagged.len() > 16 {
            let Some(&k) = self.tagged.keys().next() else {
                break;
            };
            self.tagged.remove(&k);
        }
    }

    fn set_phase(&mut self, id: RunId, state: RunState) {
        if let Some(r) = self.by_id_mut(id) {
            r.phase = Phase::Active(state);
        }
    }

    /// The listed run at `dir` that another process trains (not one of this session's).
    pub fn elsewhere(&self, dir: &Path) -> Option<&RunEntry> {
        self.runs
            .iter()
            .find(|r| r.id.is_none() && r.dir.as_deref() == Some(dir))
    }

    fn elsewhere_mut(&mut self, dir: &Path) -> Option<&mut RunEntry> {
        self.runs
            .iter_mut()
            .find(|r| r.id.is_none() && r.dir.as_deref() == Some(dir))
    }

    /// Runs shown as live that another process trains (to check that it still does).
    pub fn live_elsewhere(&self) -> Vec<PathBuf> {
        self.runs
            .iter()
            .filter(|r| r.id.is_none() && r.phase.is_live())
            .filter_map(|r| r.dir.clone())
            .collect()
    }

    /// A run that failed (its entry marked, a banner), or a worker failure outside any run (a
    /// banner; a model that could not be opened takes its placeholder with it).
    fn failed(&mut self, id: Option<RunId>, message: String, files: Option<RunFiles>) {
        if let Some(r) = id.and_then(|id| self.by_id_mut(id)) {
            r.files = files.unwrap_or(r.files);
            r.phase = Phase::Active(RunState::Failed);
            r.error = Some(message.clone());
            self.banners.push(format!("run failed: {message}"));
            return;
        }
        self.runs.retain(|r| {
            !(r.id.is_none()
                && r.phase == Phase::Queued
                && r.dir
                    .as_ref()
                    .is_some_and(|d| message.starts_with(&format!("opening {}:", d.display()))))
        });
        self.banners.push(message);
    }

    /// A model being opened from elsewhere (`Command::OpenModel`): listed at once as queued, so the
    /// user sees it is on its way; its `RunLoaded` answer fills the entry, a failure removes it.
    pub fn opening(&mut self, model: &str) {
        let dir = PathBuf::from(model);
        if self.runs.iter().any(|r| r.dir.as_ref() == Some(&dir)) {
            return;
        }
        let mut entry = RunEntry::new(None, opened_name(model), Some(dir), Phase::Queued);
        entry
            .messages
            .push("opening and evaluating on the worker…".into());
        self.runs.push(entry);
    }

    /// A run read from disk: added, or merged into the session's entry for the same directory.
    fn loaded(&mut self, run: LoadedRun) {
        let idx = match self
            .runs
            .iter()
            .position(|r| r.dir.as_deref() == Some(run.dir.as_path()))
        {
            Some(i) => i,
            None => {
                let name = run.dir.file_name().map_or_else(
                    || run.dir.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                self.runs.push(RunEntry::new(
                    None,
                    name,
                    Some(run.dir.clone()),
                    Phase::Active(run.state),
                ));
                self.runs.len() - 1
            }
        };
        let r = &mut self.runs[idx];
        if run.config.is_none() && r.config.is_some() {
            // A listed run opened again as a model (evaluated on another corpus): its history
            // stays; the panels show the new evaluation.
            r.report = run.report.or(r.report.take());
            r.dev = run.dev.or(r.dev.take());
            r.messages.push(run.message);
            r.revision += 1;
            return;
        }
        if r.id.is_none() && r.phase == Phase::Queued {
            // An opened model's placeholder: its "opening" note is done with.
            r.messages.clear();
        }
        r.files = run.files;
        if r.id.is_none() || !r.phase.is_live() {
            r.phase = Phase::Active(run.state);
            r.step = run.step;
            r.total_steps = run.total_steps;
            r.curve = run.curve;
            r.evals = run.evals;
            if ended_badly(run.state) && !run.message.is_empty() {
                r.error = Some(run.message.clone());
            }
        }
        r.best_f1 = r
            .evals
            .iter()
            .map(|e| e.micro_f1)
            .fold(r.best_f1, |a, f| Some(a.map_or(f, |a| a.max(f))));
        r.config = run.config.or(r.config.take());
        if run.report.is_some() {
            r.report = run.report;
        }
        r.dev = run.dev.or(r.dev.take());
        if !run.message.is_empty() {
            r.messages.push(run.message);
        }
        r.revision += 1;
    }
}
