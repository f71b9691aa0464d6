//! What a run tells the world as it goes ([`TrainEvent`] to an [`Observer`]: progress bars, the
//! worker's channel, tests), how it is steered ([`Control`]), and how it ended ([`RunOutcome`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::run_dir::RunState;
use crate::metrics::ScoreReport;

/// Cooperative control of a running training: checked before every optimizer step.
#[derive(Debug, Clone, Default)]
pub struct Control {
    pub stop: Arc<AtomicBool>,
    pub pause: Arc<AtomicBool>,
}

impl Control {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn paused(&self) -> bool {
        self.pause.load(Ordering::Relaxed)
    }
}

/// Numbers of one optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: usize,
    pub total_steps: usize,
    /// Epochs done, fractional.
    pub epoch: f64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub sentences_per_sec: f64,
    pub tokens_per_sec: f64,
    pub elapsed_secs: f64,
}

/// A run as it starts (or resumes).
#[derive(Debug, Clone, PartialEq)]
pub struct RunStart {
    pub run: String,
    pub dir: PathBuf,
    pub total_steps: usize,
    pub train_sentences: usize,
    pub parameters: usize,
    /// The step a resumed run continues from.
    pub resumed_from: Option<usize>,
}

/// What a run reports as it goes.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    Started(RunStart),
    Step(StepMetrics),
    Evaluated {
        step: usize,
        epoch: f64,
        report: Box<ScoreReport>,
        best: bool,
    },
    Paused,
    Resumed,
    Message(String),
}

/// Receives a run's events (progress bars, the worker's channel, tests).
pub trait Observer: Send {
    fn on(&mut self, event: TrainEvent);

    /// Called regularly while a run is paused (a worker answers its UI here).
    fn idle(&mut self) {}
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {
    fn on(&mut self, _: TrainEvent) {}
}

/// What a caught panic said (its `String` or `&str` payload).
pub fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub state: RunState,
    pub best_f1: Option<f64>,
    pub best_step: Option<usize>,
    pub message: String,
}
