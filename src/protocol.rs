//! The only language between the UI and the worker thread: [`Command`]s in, [`Event`]s out, plain
//! data on bounded channels (never tensors), so the UI can be tested against canned events and the
//! worker against canned commands.

use std::path::PathBuf;
use std::sync::Arc;

use crate::infer::TextSpan;
use crate::metrics::ScoreReport;
use crate::train::RunConfig;
use crate::train::events::RunStart;
use crate::train::run_dir::RunState;
use crate::train::trainer::StepMetrics;

/// The UI's handle for a launched run.
pub type RunId = u64;

/// UI -> worker.
#[derive(Debug, Clone)]
pub enum Command {
    /// Start a new run or resume one (queued behind the current run).
    Train {
        id: RunId,
        request: TrainRequest,
    },
    Pause(RunId),
    Resume(RunId),
    /// Stop cooperatively: the run writes a checkpoint and can be resumed later.
    Stop(RunId),
    /// Tag text with a run's best model (or a saved model folder).
    Tag {
        request: u64,
        model: PathBuf,
        text: String,
    },
    /// Attention of every layer and head for a text.
    Attention {
        request: u64,
        model: PathBuf,
        text: String,
    },
    /// List the run folders under `dir`, so the UI never reads a directory itself; the answer is
    /// [`Event::RunsFound`], and the UI asks [`Command::LoadRun`] for the runs it has not read.
    ScanRuns {
        dir: PathBuf,
    },
    /// Read a run directory (config, metrics, report) for display.
    LoadRun {
        dir: PathBuf,
    },
    /// Read the state of runs that another process trains (`status.json`, and whether that
    /// process is still alive), so a run whose process has gone stops showing as running.
    CheckRuns {
        dirs: Vec<PathBuf>,
    },
    /// Open a model that is not a run here (a Hugging Face token-classification checkpoint, a
    /// saved model folder, another machine's run) and evaluate it on a corpus; the answer is an
    /// [`Event::RunLoaded`] whose `dir` is `model`, read-only beside the runs, so every panel and
    /// the tagger work on it.
    OpenModel {
        model: String,
        data: String,
        labels: crate::data::label_map::LabelMap,
        /// For a PyTorch state dict: its encoder, labels and layout.
        torch: crate::infer::TorchOptions,
    },
    /// Stop everything and end the thread.
    Shutdown,
    /// Testing aid: the worker panics with this message while answering, to exercise its recovery
    /// (a panic while loading or tagging becomes a `Failed` event and the worker goes on).
    #[doc(hidden)]
    InjectPanic(String),
}

/// What to train: a new run from its configuration, or the run in a directory, continued from its
/// checkpoint with its own saved configuration.
#[derive(Debug, Clone)]
pub enum TrainRequest {
    New(Box<RunConfig>),
    Resume(PathBuf),
}

/// What a run folder holds that the workbench offers actions on, read by the worker so the UI
/// never touches the file system while drawing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunFiles {
    /// A trained model in `best/` (tagging and attention work).
    pub has_model: bool,
    /// A published checkpoint (the run can be resumed).
    pub has_checkpoint: bool,
}

/// One point of a training curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
}

/// A finished or running run as read from disk.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    pub dir: PathBuf,
    pub config: Option<RunConfig>,
    pub state: RunState,
    /// The last step written to `status.json`, of `total_steps`.
    pub step: usize,
    pub total_steps: usize,
    pub curve: Vec<CurvePoint>,
    /// (step, micro F1, macro F1, per-type F1) of each evaluation.
    pub evals: Vec<EvalPoint>,
    /// The best model's dev report, recomputed from the saved dev predictions (with the saved
    /// calibration), when the run has them.
    pub report: Option<Box<ScoreReport>>,
    /// The dev corpus's sentences (tokens and gold tags) and the best model's predictions, for
    /// error browsing.
    pub dev: Option<DevView>,
    pub message: String,
    pub files: RunFiles,
}

/// One evaluation's headline numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalPoint {
    pub step: usize,
    pub micro_f1: f64,
    pub macro_f1: f64,
    pub per_type: Vec<(String, f64)>,
}

impl EvalPoint {
    /// The headline numbers of a report, at `step`.
    pub fn of(step: usize, report: &ScoreReport) -> Self {
        Self {
            step,
            micro_f1: report.micro.f1,
            macro_f1: report.macro_avg.f1,
            per_type: report
                .per_type
                .iter()
                .map(|(t, s)| (t.clone(), s.f1))
                .collect(),
        }
    }
}

/// Dev sentences for display: the corpus tokens, and gold and predicted tags in the scoring view
/// (where spans and error cases are), with the map between the two. Everything but the
/// predictions is the dev corpus's, shared by every run scored on it (a folder of 300 runs on
/// one dev set holds one copy of its sentences, not 300).
#[derive(Debug, Clone, Default)]
pub struct DevView {
    pub ids: Arc<Vec<String>>,
    /// Every token of each sentence, spaces included for KLUE and KMOU.
    pub tokens: Arc<Vec<Vec<String>>>,
    /// `positions[s][i]`: the token index of scoring-view position `i`.
    pub positions: Arc<Vec<Vec<usize>>>,
    pub gold: Arc<Vec<Vec<String>>>,
    pub pred: Vec<Vec<String>>,
    /// Space-token format (KLUE, KMOU): tokens are joined directly for display.
    pub space_tokens: bool,
}

/// Worker -> UI.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        id: RunId,
        start: RunStart,
    },
    /// The latest step's numbers and every curve point since the last progress event
    /// (a few progress events a second, however fast steps are). When the UI lags so far behind
    /// that the channel is full, the event is not sent and its points ride with the next one:
    /// no curve point is lost.
    Progress {
        id: RunId,
        last: StepMetrics,
        points: Vec<CurvePoint>,
    },
    Evaluated {
        id: RunId,
        step: usize,
        report: Box<ScoreReport>,
        best: bool,
        /// The run folder as it is after this evaluation (a best one has just saved `best/`).
        files: RunFiles,
    },
    Paused(RunId),
    Resumed(RunId),
    Message {
        id: RunId,
        text: String,
    },
    Finished {
        id: RunId,
        dir: PathBuf,
        state: RunState,
        best_f1: Option<f64>,
        message: String,
        files: RunFiles,
    },
    /// A run, or a request, failed; the worker carries on.
    Failed {
        id: Option<RunId>,
        message: String,
        /// The failed run's folder, when it had one.
        files: Option<RunFiles>,
    },
    Tagged {
        request: u64,
        text: String,
        spans: Vec<TextSpan>,
    },
    Attention {
        request: u64,
        /// Subword tokens, special tokens included.
        tokens: Vec<String>,
        /// The predicted tag of each token (empty for tokens that are not units).
        token_tags: Vec<String>,
        /// (layer, head, query, key).
        weights: Vec<Vec<Vec<Vec<f32>>>>,
    },
    RunLoaded(Box<LoadedRun>),
    /// The run folders under `dir`, newest first: the answer to [`Command::ScanRuns`].
    RunsFound {
        dir: PathBuf,
        runs: Vec<PathBuf>,
    },
    /// A run's state on disk, the answer to [`Command::CheckRuns`].
    RunStatus {
        dir: PathBuf,
        state: RunState,
        step: usize,
        total_steps: usize,
        message: String,
        files: RunFiles,
    },
    /// A run folder [`Command::CheckRuns`] asked about is gone (removed or moved while listed).
    RunGone {
        dir: PathBuf,
    },
    /// The worker thread ended (after `Shutdown`).
    Stopped,
}
