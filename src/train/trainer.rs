//! The run loop: stages, epochs and optimizer steps, with what the flow policy decides after each
//! (log, evaluate, checkpoint, stop; `flow.rs`), the best model and early stopping, and the final
//! report. Deterministic for a seed on the CPU: the data order of every epoch is derived from
//! (seed, stage, epoch), and every random generator's state goes into each checkpoint, so a run
//! resumed after a crash ends exactly as an uninterrupted one.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::config::RunConfig;
use super::data::{Prepared, Stage, stages};
use super::events::{Control, Observer, RunStart, TrainEvent};
use super::flow::{self, Cadence, EarlyStopping};
use super::optim::lr_factor;
use super::run_dir::files::{CHECKPOINT_OPTIMIZER, CHECKPOINT_STATE};
use super::run_dir::{EvalLine, MetricsLine, RunDir, RunState, Status, TrainLine};
use super::step::{Fault, StepOutcome, StepPlan, TrainStep};
use super::tricks::Tricks;
use crate::infer::evaluate;
use crate::metrics::ScoreReport;
use crate::model::batch::Example;
use crate::model::ner::NerModel;
use crate::rng::SplitMix64;

pub use super::data::epoch_batches;
pub use super::events::StepMetrics;
pub use super::start::{default_name, train};

/// The trainer's position, saved in every checkpoint (`state.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub stage: usize,
    pub epoch: usize,
    /// Next batch of the epoch.
    pub batch: usize,
    /// Optimizer steps taken, all stages.
    pub step: usize,
    /// Optimizer steps taken in this stage (schedules restart per stage).
    pub stage_step: usize,
    /// The current stage's best dev F1 and early stopping (`best_f1`, `best_step`,
    /// `evals_since_best`); each stage starts afresh.
    #[serde(flatten)]
    pub best: EarlyStopping,
    pub dropout_rng: u64,
    pub mask_rng: u64,
    /// Early stopping ended the current stage.
    pub early_stopped: bool,
    /// Early stopping ended some stage (reported as the run's state).
    pub ended_early: bool,
    pub last_eval_step: Option<usize>,
}

/// Sentences and tokens trained on since a point in time (throughput between log lines).
struct Window {
    start: Instant,
    sentences: usize,
    tokens: usize,
}

pub(super) struct Trainer<'a> {
    pub(super) config: RunConfig,
    pub(super) run: RunDir,
    pub(super) step: TrainStep,
    pub(super) state: TrainState,
    pub(super) prepared: Prepared,
    pub(super) obs: &'a mut dyn Observer,
    pub(super) control: Control,
    pub(super) started: Instant,
    pub(super) seen_sentences: usize,
    pub(super) seen_tokens: usize,
    window: Window,
    pub(super) total_steps: usize,
    /// The best evaluation's dev report (the final report reuses it instead of evaluating the
    /// same model again; a resumed run, which lacks it, recomputes the same numbers).
    pub(super) best_report: Option<ScoreReport>,
    /// Whether the run has said that some dev sentences are longer than the model's positions.
    said_windowed: bool,
}

impl<'a> Trainer<'a> {
    pub(super) fn new(
        config: RunConfig,
        run: RunDir,
        step: TrainStep,
        state: TrainState,
        prepared: Prepared,
        obs: &'a mut dyn Observer,
        control: Control,
    ) -> Self {
        Self {
            config,
            run,
            step,
            state,
            prepared,
            obs,
            control,
            started: Instant::now(),
            seen_sentences: 0,
            seen_tokens: 0,
            window: Window {
                start: Instant::now(),
                sentences: 0,
                tokens: 0,
            },
            total_steps: 0,
            best_report: None,
            said_windowed: false,
        }
    }

    pub(super) fn eval_batch(&self) -> usize {
        (self.config.train.batch_size * 2).max(32)
    }

    fn cadence(&self) -> Cadence {
        Cadence::of(&self.config.train)
    }

    pub(super) fn status(&self, state: RunState, message: &str) -> Status {
        Status {
            state,
            step: self.state.step,
            total_steps: self.total_steps,
            best_f1: self.state.best.best_f1,
            best_step: self.state.best.best_step,
            message: message.to_string(),
            updated: 0,
            pid: 0,
        }
    }

    /// Trains every stage to its end (or until stopped); the state the run ended in.
    pub(super) fn run(
        &mut self,
        train_sentences: usize,
        resumed: bool,
    ) -> anyhow::Result<RunState> {
        let stages = stages(&self.config, &self.prepared, &self.step)?;
        self.total_steps = stages.iter().map(|s| s.total_steps).sum();
        self.obs.on(TrainEvent::Started(RunStart {
            run: self.run.name(),
            dir: self.run.path.clone(),
            total_steps: self.total_steps,
            train_sentences,
            parameters: self.step.parameter_count(),
            resumed_from: resumed.then_some(self.state.step),
        }));
        self.run
            .write_status(&self.status(RunState::Running, "training"))?;
        // Progress in epochs of the current stage, for the evaluation after the last stage (whose
        // counters are reset by then).
        let mut last_epoch = self.state.epoch as f64;
        loop {
            if self.run_stage(&stages[self.state.stage], &mut last_epoch)? {
                self.checkpoint()?;
                return Ok(RunState::Stopped);
            }
            if flow::evaluate_at_end(self.state.last_eval_step, self.state.step) {
                self.dev_eval(last_epoch)?;
            }
            if self.state.stage + 1 == stages.len() {
                break;
            }
            self.next_stage()?;
            last_epoch = 0.0;
        }
        Ok(if self.state.ended_early {
            RunState::EarlyStopped
        } else {
            RunState::Finished
        })
    }

    /// Ends a stage that another follows: its report section (`report-stage<N>.json`) and its
    /// best model (`stage<N>-best/`) are kept, and the next stage fine-tunes that best model
    /// with a fresh optimizer, its own schedule, best and early stopping. A run killed in
    /// between repeats this from the stage's last checkpoint, with the same outcome.
    fn next_stage(&mut self) -> anyhow::Result<()> {
        let number = self.state.stage + 1;
        let section = self.stage_section()?;
        self.run.write_stage_report(number, &section)?;
        self.run.keep_stage_best(number)?;
        let device = self.config.device.device()?;
        let dtype = self.step.dtype();
        let best = self
            .run
            .read_best(|dir| crate::model::ner::NerModel::load(dir, dtype, &device))?;
        best.encoder()
            .dropout_rng()
            .set_state(self.step.dropout_rng_state());
        self.step = super::start::train_step(best, &self.config)?;
        self.obs.on(TrainEvent::Message(format!(
            "stage {number} done (best dev F1 {} at step {}); stage {} starts from that model",
            self.state
                .best
                .best_f1
                .map_or("-".to_string(), |f| format!("{f:.4}")),
            self.state.best.best_step.unwrap_or(0),
            number + 1
        )));
        self.state.stage += 1;
        self.state.epoch = 0;
        self.state.batch = 0;
        self.state.stage_step = 0;
        self.state.best = EarlyStopping::default();
        self.state.last_eval_step = None;
        self.best_report = None;
        // Early stopping ends a stage, not the run: a fine-tuning stage still runs.
        self.state.early_stopped = false;
        self.checkpoint()
    }

    /// The epochs of one stage; `true` when the run was stopped.
    fn run_stage(&mut self, stage: &Stage, last_epoch: &mut f64) -> anyhow::Result<bool> {
        let lengths: Vec<usize> = stage.examples.iter().map(|e| e.ids.len()).collect();
        // The largest batch the stage can form: its longest sentences together.
        let batch = self.config.train.batch_size.min(lengths.len());
        let longest = lengths.iter().copied().max().unwrap_or(0);
        let encoder = self.step.synced()?.encoder().config().clone();
        super::memory::check(
            batch,
            longest,
            super::memory::activation_bytes(&encoder, batch, longest),
            super::memory::available_bytes(),
        )?;
        while self.state.epoch < stage.epochs
            && self.state.stage_step < stage.total_steps
            && !self.state.early_stopped
        {
            let batches = epoch_batches(
                &lengths,
                self.config.train.batch_size,
                self.config.seed,
                self.state.stage,
                self.state.epoch,
                self.config.train.bucket,
            );
            if self.run_epoch(stage, &batches, last_epoch)? {
                return Ok(true);
            }
            self.state.epoch += 1;
            self.state.batch = 0;
            if flow::evaluate_after_epoch(self.cadence(), self.state.early_stopped) {
                self.dev_eval(self.state.epoch as f64)?;
            }
        }
        Ok(false)
    }

    /// The optimizer steps of one epoch (from the batch the state points at); `true` when the
    /// run was stopped.
    fn run_epoch(
        &mut self,
        stage: &Stage,
        batches: &[Vec<usize>],
        last_epoch: &mut f64,
    ) -> anyhow::Result<bool> {
        let accum = self.config.train.grad_accum.max(1);
        let steps_in_epoch = batches.len().div_ceil(accum);
        while self.state.batch < batches.len() && self.state.stage_step < stage.total_steps {
            self.wait_while_paused();
            if self.control.stopped() {
                return Ok(true);
            }
            let end = (self.state.batch + accum).min(batches.len());
            let micro: Vec<Vec<&Example>> = batches[self.state.batch..end]
                .iter()
                .map(|idx| idx.iter().map(|&i| &stage.examples[i]).collect())
                .collect();
            let (out, lr) = self.take_step(stage, &micro)?;
            self.state.batch = end;
            let epoch = self.state.epoch as f64
                + self.state.batch.div_ceil(accum) as f64 / steps_in_epoch.max(1) as f64;
            *last_epoch = epoch;
            self.after_step(&out, lr, epoch)?;
            if self.state.early_stopped {
                break;
            }
        }
        Ok(false)
    }

    /// One optimizer step at the stage's scheduled learning rate; returns it with the outcome.
    fn take_step(
        &mut self,
        stage: &Stage,
        micro: &[Vec<&Example>],
    ) -> anyhow::Result<(StepOutcome, f64)> {
        let t = &self.config.train;
        let factor = lr_factor(
            t.schedule,
            self.state.stage_step,
            stage.warmup,
            stage.total_steps,
        );
        let number = self.state.step + 1;
        let plan = StepPlan {
            lr: stage.lr * factor,
            head_lr: t.head_lr.unwrap_or(stage.lr) * factor,
            clip_norm: t.clip_norm,
            tricks: Tricks {
                fgm_epsilon: t.fgm_epsilon,
                rdrop_alpha: t.rdrop_alpha,
                rdrop_kl: t.rdrop_kl,
            },
            fault: if t.inject_panic_at_step == Some(number) {
                Some(Fault::Panic)
            } else if t.inject_nan_at_step == Some(number) {
                Some(Fault::Nan)
            } else {
                None
            },
        };
        let mut mask_rng = SplitMix64::from_state(self.state.mask_rng);
        let out = self.step.step(micro, Some(&mut mask_rng), &plan, number)?;
        self.state.mask_rng = mask_rng.state();
        self.state.step += 1;
        self.state.stage_step += 1;
        self.seen_sentences += out.sentences;
        self.seen_tokens += out.tokens;
        Ok((out, plan.lr))
    }

    /// Reports the step, then logs, evaluates and checkpoints as the flow policy says.
    fn after_step(&mut self, out: &StepOutcome, lr: f64, epoch: f64) -> anyhow::Result<()> {
        let secs = self.window.start.elapsed().as_secs_f64().max(1e-9);
        let m = StepMetrics {
            step: self.state.step,
            total_steps: self.total_steps,
            epoch,
            loss: out.loss,
            lr,
            grad_norm: out.grad_norm,
            sentences_per_sec: (self.seen_sentences - self.window.sentences) as f64 / secs,
            tokens_per_sec: (self.seen_tokens - self.window.tokens) as f64 / secs,
            elapsed_secs: self.started.elapsed().as_secs_f64(),
        };
        let next = flow::after_step(self.state.step, self.cadence());
        if next.log {
            self.run.append_metrics(&MetricsLine::Train(TrainLine {
                step: m.step,
                epoch: m.epoch,
                loss: m.loss,
                lr: m.lr,
                grad_norm: m.grad_norm,
            }))?;
            self.window = Window {
                start: Instant::now(),
                sentences: self.seen_sentences,
                tokens: self.seen_tokens,
            };
        }
        self.obs.on(TrainEvent::Step(m));
        if next.evaluate {
            self.dev_eval(epoch)?;
        }
        if next.checkpoint {
            self.checkpoint()?;
        }
        self.run
            .write_progress(&self.status(RunState::Running, "training"))
    }

    /// Saves model, optimizer and trainer state, then makes them the current checkpoint.
    fn checkpoint(&mut self) -> anyhow::Result<()> {
        self.state.dropout_rng = self.step.dropout_rng_state();
        let optimizer = self.step.optimizer_state()?;
        let model = self.step.synced()?;
        let state = serde_json::to_string_pretty(&self.state)?;
        // Weights, the two moments (and f32 masters of half-precision weights), plus the
        // tokenizer: about three times the weights.
        self.run
            .ensure_space("a checkpoint", 3 * model.weight_bytes() + (16 << 20))?;
        let keep = self.config.train.keep_checkpoints;
        self.run.write_checkpoint(self.state.step, keep, |dir| {
            model.save(dir)?;
            candle_core::safetensors::save(&optimizer, dir.join(CHECKPOINT_OPTIMIZER))?;
            std::fs::write(dir.join(CHECKPOINT_STATE), state)?;
            Ok(())
        })
    }

    /// Evaluates on dev, keeps the best model, updates early stopping; then checkpoints (unless
    /// `train.checkpoint_at_eval` is off).
    fn dev_eval(&mut self, epoch: f64) -> anyhow::Result<()> {
        let step = self.state.step;
        self.state.last_eval_step = Some(step);
        let eval_batch = self.eval_batch();
        let model = self.step.synced()?;
        let Some(dev) = &self.prepared.dev else {
            // Without dev data the last model is the best one.
            save_best(&self.run, step, model)?;
            self.state.best.best_step = Some(step);
            return self.checkpoint();
        };
        let started = std::time::Instant::now();
        // A frozen copy (weights shared, transposed copies made once) tags dev through the
        // inference layout instead of rebuilding it for every batch.
        let mut frozen = model.clone();
        frozen.freeze()?;
        let (report, pred) = evaluate(&frozen, dev, eval_batch)?;
        drop(frozen);
        let eval_secs = started.elapsed().as_secs_f64();
        if let Some(note) = model.windowed_note()
            && !self.said_windowed
        {
            self.said_windowed = true;
            self.obs.on(TrainEvent::Message(format!("dev: {note}")));
        }
        let patience = self.config.train.patience;
        let verdict = self.state.best.observe(report.micro.f1, step, patience);
        if verdict.best {
            save_best(&self.run, step, model)?;
            self.run.write_dev_predictions(dev, pred)?;
            // Predicted tags alone cannot give calibration back; keep it beside them.
            if let Some(c) = &report.calibration {
                self.run.write_dev_calibration(c)?;
            }
            self.best_report = Some(report.clone());
        }
        let mut line = eval_line(&report, step, epoch, verdict.best, self.state.stage + 1);
        line.eval_secs = Some(eval_secs);
        self.run.append_metrics(&MetricsLine::Eval(line))?;
        self.obs.on(TrainEvent::Evaluated {
            step,
            epoch,
            report: Box::new(report),
            best: verdict.best,
        });
        if verdict.stop {
            self.state.early_stopped = true;
            self.state.ended_early = true;
            self.obs.on(TrainEvent::Message(format!(
                "early stopping: no dev F1 improvement in {patience} evaluations (best {:.4} at step {})",
                self.state.best.best_f1.unwrap_or(0.0),
                self.state.best.best_step.unwrap_or(0)
            )));
        }
        if self.config.train.checkpoint_at_eval {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn wait_while_paused(&mut self) {
        if !self.control.paused() {
            return;
        }
        let _ = self
            .run
            .write_status(&self.status(RunState::Paused, "paused"));
        self.obs.on(TrainEvent::Paused);
        while self.control.paused() && !self.control.stopped() {
            self.obs.idle();
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.obs.on(TrainEvent::Resumed);
    }
}

/// The `metrics.jsonl` line of an evaluation.
fn eval_line(report: &ScoreReport, step: usize, epoch: f64, best: bool, stage: usize) -> EvalLine {
    EvalLine {
        step,
        stage,
        epoch,
        micro_f1: report.micro.f1,
        macro_f1: report.macro_avg.f1,
        precision: report.micro.precision,
        recall: report.micro.recall,
        per_type_f1: report
            .per_type
            .iter()
            .map(|(t, s)| (t.clone(), s.f1))
            .collect(),
        best,
        char_f1_with_o: report.char.as_ref().map(|c| c.macro_f1_with_o),
        ece: report.calibration.as_ref().map(|c| c.ece),
        eval_secs: None,
    }
}

/// Publishes `model` as the run's best, after checking it fits on the disk.
fn save_best(run: &RunDir, step: usize, model: &NerModel) -> anyhow::Result<()> {
    run.ensure_space("the best model", model.weight_bytes() + (16 << 20))?;
    run.publish_best(step, |dir| model.save(dir))
}
