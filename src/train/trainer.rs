//! The training loop: batches, optimizer steps with the configured tricks, evaluations, early
//! stopping, checkpoints, and the final report. Deterministic for a seed on the CPU: the data order
//! of every epoch is derived from (seed, stage, epoch), and every random generator's state goes into
//! each checkpoint, so a run resumed after a crash ends exactly as an uninterrupted one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use candle_core::{D, DType, Tensor};
use serde::{Deserialize, Serialize};

use super::config::RunConfig;
use super::fused::{AddRows, SetRows};
use super::optim::{AdamW, Grads, clip_scale, lr_factor, warmup_steps};
use super::run_dir::{RunDir, RunState, Status, write_atomic};
use super::sources::{load_corpus, resolve_model};
use crate::data::hub::Hub;
use crate::data::sample::{k_shot, random_subset};
use crate::data::{Corpus, write};
use crate::infer::evaluate;
use crate::metrics::ScoreReport;
use crate::model::align::AlignMode;
use crate::model::backbone::Backbone;
use crate::model::batch::Example;
use crate::model::device::default_threads;
use crate::model::ner::{NerModel, bio_labels};
use crate::model::ops::log_softmax;
use crate::model::tokenize::CharVocab;
use crate::rng::SplitMix64;

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

/// What a run reports as it goes.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    Started {
        run: String,
        dir: PathBuf,
        total_steps: usize,
        train_sentences: usize,
        parameters: usize,
        resumed_from: Option<usize>,
    },
    Step(StepMetrics),
    Evaluated {
        step: usize,
        epoch: f64,
        report: Box<ScoreReport>,
        best: bool,
    },
    Checkpoint {
        step: usize,
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

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub state: RunState,
    pub best_f1: Option<f64>,
    pub best_step: Option<usize>,
    pub message: String,
}

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
    pub best_f1: Option<f64>,
    pub best_step: Option<usize>,
    pub evals_since_best: usize,
    pub dropout_rng: u64,
    pub mask_rng: u64,
    /// Early stopping ended the current stage.
    pub early_stopped: bool,
    /// Early stopping ended some stage (reported as the run's state).
    pub ended_early: bool,
    pub last_eval_step: Option<usize>,
}

/// One stage: its training examples and schedule.
struct Stage {
    examples: Vec<Example>,
    epochs: usize,
    lr: f64,
    total_steps: usize,
    warmup: usize,
}

/// Everything read before training starts.
struct Prepared {
    train: Vec<Corpus>,
    finetune: Vec<Corpus>,
    dev: Option<Corpus>,
    eval: Vec<(String, Corpus)>,
}

fn align_mode(c: &Corpus) -> AlignMode {
    if c.format.char_level() {
        AlignMode::Chars
    } else {
        AlignMode::Words
    }
}

fn prepare(config: &RunConfig, hub: &Hub, obs: &mut dyn Observer) -> anyhow::Result<Prepared> {
    let load = |s: &String| {
        load_corpus(s, config.data.format, hub).with_context(|| format!("loading {s}"))
    };
    let mut train = Vec::new();
    for src in &config.data.train {
        let mut c = load(src)?;
        if config.data.k_shot > 0 {
            let s = k_shot(&c, config.data.k_shot, config.data.sample_seed);
            for (ty, got) in &s.short {
                obs.on(TrainEvent::Message(format!(
                    "{src}: only {got} {ty} mentions for {}-shot",
                    config.data.k_shot
                )));
            }
            c = c.subset(&s.indices);
        }
        if config.data.max_sentences > 0 {
            c = c.subset(&random_subset(
                c.len(),
                config.data.max_sentences,
                config.data.sample_seed,
            ));
        }
        let repairs = c.repair();
        if !repairs.is_empty() {
            obs.on(TrainEvent::Message(format!(
                "{src}: repaired {} invalid tags in {} sentences ({:?})",
                repairs.tags, repairs.sentences, repairs.by_kind
            )));
        }
        train.push(c);
    }
    let mut finetune = Vec::new();
    if let Some(f) = &config.finetune {
        for src in &f.train {
            let mut c = load(src)?;
            c.repair();
            finetune.push(c);
        }
    }
    let dev = config.data.dev.as_ref().map(load).transpose()?;
    let eval = config
        .data
        .eval
        .iter()
        .map(|s| Ok((s.clone(), load(s)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Prepared {
        train,
        finetune,
        dev,
        eval,
    })
}

/// The batches of one epoch, as example indices: a seeded shuffle, then (with `bucket`) groups of
/// similar length inside windows of 50 batches, in shuffled order.
pub fn epoch_batches(
    lengths: &[usize],
    batch_size: usize,
    seed: u64,
    stage: usize,
    epoch: usize,
    bucket: bool,
) -> Vec<Vec<usize>> {
    let mix = seed ^ ((stage as u64) << 32 | epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = SplitMix64::new(mix);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    rng.shuffle(&mut order);
    let bs = batch_size.max(1);
    if !bucket {
        return order.chunks(bs).map(<[usize]>::to_vec).collect();
    }
    let mut batches = Vec::new();
    for window in order.chunks(bs * 50) {
        let mut w = window.to_vec();
        w.sort_by_key(|&i| lengths[i]);
        batches.extend(w.chunks(bs).map(<[usize]>::to_vec));
    }
    rng.shuffle(&mut batches);
    batches
}

/// The model described by the config, over the labels of the training data.
fn build_model(
    config: &RunConfig,
    hub: &Hub,
    prepared: &Prepared,
    dtype: DType,
) -> anyhow::Result<NerModel> {
    let device = config.device.device()?;
    // Every training sentence, of both stages.
    let sentences = || {
        prepared
            .train
            .iter()
            .chain(&prepared.finetune)
            .flat_map(|c| &c.sentences)
    };
    let labels = bio_labels(sentences().flat_map(|s| s.tags.iter().map(String::as_str)));
    let align = prepared.train.first().map_or(AlignMode::Words, align_mode);
    let backbone = match resolve_model(&config.model.source, hub)? {
        Some(dir) => Backbone::pretrained(&dir, dtype, &device, config.seed)?,
        None => {
            let texts = sentences().flat_map(|s| s.tokens.iter().map(String::as_str));
            Backbone::char(
                CharVocab::build(texts, 1),
                config.model.char,
                dtype,
                &device,
                config.seed,
            )?
        }
    };
    NerModel::new(backbone, config.model.spec(), labels, align)
}

fn encode_stage(model: &NerModel, corpora: &[Corpus]) -> anyhow::Result<Vec<Example>> {
    let mut out = Vec::new();
    let mut n = 0;
    for c in corpora {
        let mode = align_mode(c);
        for s in &c.sentences {
            let (_, ex) = model
                .encode_as(n, &s.tokens, Some(&s.tags), mode)
                .with_context(|| format!("{}: sentence {}", c.path.display(), s.id))?;
            out.extend(ex);
            n += 1;
        }
    }
    Ok(out)
}

/// Symmetric KL divergence between two passes' class distributions, mean over real units.
fn symmetric_kl(a: &Tensor, b: &Tensor, unit_mask: &Tensor) -> candle_core::Result<Tensor> {
    let (la, lb) = (log_softmax(a)?, log_softmax(b)?);
    let (pa, pb) = (la.exp()?, lb.exp()?);
    let kl = ((pa.mul(&(&la - &lb)?)? + pb.mul(&(&lb - &la)?)?)?.sum(D::Minus1)? * 0.5)?;
    let count = unit_mask
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?
        .max(1.0);
    kl.mul(unit_mask)?.sum_all()? / count
}

struct Trainer<'a> {
    config: RunConfig,
    run: RunDir,
    model: NerModel,
    opt: AdamW,
    state: TrainState,
    prepared: Prepared,
    obs: &'a mut dyn Observer,
    control: Control,
    started: Instant,
    seen_sentences: usize,
    seen_tokens: usize,
    total_steps: usize,
    /// The best evaluation's dev report (the final report reuses it instead of evaluating the
    /// same model again; a resumed run, which lacks it, recomputes the same numbers).
    best_report: Option<ScoreReport>,
}

impl Trainer<'_> {
    fn eval_batch(&self) -> usize {
        (self.config.train.batch_size * 2).max(32)
    }

    fn status(&self, state: RunState, message: &str) -> Status {
        Status {
            state,
            step: self.state.step,
            total_steps: self.total_steps,
            best_f1: self.state.best_f1,
            best_step: self.state.best_step,
            message: message.to_string(),
            updated: 0,
            pid: 0,
        }
    }

    /// Saves model, optimizer and trainer state, then makes them the current checkpoint.
    fn checkpoint(&mut self) -> anyhow::Result<()> {
        let dir = self.run.checkpoint_dir(self.state.step);
        let tmp = self
            .run
            .path
            .join(format!(".tmp-checkpoint-{}", self.state.step));
        let _ = std::fs::remove_dir_all(&tmp);
        self.opt.flush()?;
        self.model.save(&tmp)?;
        candle_core::safetensors::save(&self.opt.state()?, tmp.join("optimizer.safetensors"))?;
        self.state.dropout_rng = self.model.encoder().dropout_rng().state();
        std::fs::write(
            tmp.join("state.json"),
            serde_json::to_string_pretty(&self.state)?,
        )?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir)?;
        self.run.publish_checkpoint(&dir)?;
        self.obs.on(TrainEvent::Checkpoint {
            step: self.state.step,
        });
        Ok(())
    }

    /// Evaluates on dev, keeps the best model, updates early stopping; then checkpoints.
    fn dev_eval(&mut self, epoch: f64) -> anyhow::Result<()> {
        self.state.last_eval_step = Some(self.state.step);
        self.opt.flush()?;
        if let Some(dev) = &self.prepared.dev {
            let (report, pred) = evaluate(&self.model, dev, self.eval_batch())?;
            let f1 = report.micro.f1;
            let best = self.state.best_f1.is_none_or(|b| f1 > b);
            if best {
                self.best_report = Some(report.clone());
                self.state.best_f1 = Some(f1);
                self.state.best_step = Some(self.state.step);
                self.state.evals_since_best = 0;
                self.model.save(&self.run.best_dir())?;
                write_predictions(&self.run.path, dev, pred)?;
                // Predicted tags alone cannot give calibration back; keep it beside them.
                if let Some(c) = &report.calibration {
                    write_atomic(
                        &self.run.path.join("dev-calibration.json"),
                        serde_json::to_string(c)?.as_bytes(),
                    )?;
                }
            } else {
                self.state.evals_since_best += 1;
            }
            let per_type: serde_json::Map<String, serde_json::Value> = report
                .per_type
                .iter()
                .map(|(t, s)| (t.clone(), serde_json::json!(s.f1)))
                .collect();
            self.run.append_metrics(&serde_json::json!({
                "kind": "eval", "step": self.state.step, "epoch": epoch,
                "micro_f1": f1, "macro_f1": report.macro_avg.f1,
                "precision": report.micro.precision, "recall": report.micro.recall,
                "per_type_f1": per_type, "best": best,
                "char_f1_with_o": report.char.as_ref().map(|c| c.macro_f1_with_o),
                "ece": report.calibration.as_ref().map(|c| c.ece),
            }))?;
            self.obs.on(TrainEvent::Evaluated {
                step: self.state.step,
                epoch,
                report: Box::new(report),
                best,
            });
            let p = self.config.train.patience;
            if p > 0 && self.state.evals_since_best >= p {
                self.state.early_stopped = true;
                self.state.ended_early = true;
                self.obs.on(TrainEvent::Message(format!(
                    "early stopping: no dev F1 improvement in {p} evaluations (best {:.4} at step {})",
                    self.state.best_f1.unwrap_or(0.0),
                    self.state.best_step.unwrap_or(0)
                )));
            }
        } else {
            // Without dev data the last model is the best one.
            self.model.save(&self.run.best_dir())?;
            self.state.best_step = Some(self.state.step);
        }
        self.checkpoint()
    }

    fn step(&mut self, stage: &Stage, batches: &[&[usize]]) -> anyhow::Result<(f64, f64)> {
        let t = self.config.train.clone();
        let accum = batches.len() as f64;
        let params = self.model.params().vars();
        let mut grads = Grads::default();
        let mut total_loss = 0.0;
        let mut mask_rng = SplitMix64::from_state(self.state.mask_rng);
        for idx in batches {
            let ex: Vec<&Example> = idx.iter().map(|&i| &stage.examples[i]).collect();
            let batch = self.model.batch(&ex, Some(&mut mask_rng))?;
            // Word-embedding rows left behind by row-sparse steps are brought up to date first.
            self.opt
                .catch_up(&batch.ids.flatten_all()?.to_vec1::<u32>()?)?;
            self.seen_sentences += ex.len();
            self.seen_tokens += ex.iter().map(|e| e.ids.len()).sum::<usize>();
            let (loss1, em1) = self.model.loss_and_emissions(&batch, true)?;
            let loss = if t.rdrop_alpha > 0.0 {
                let (loss2, em2) = self.model.loss_and_emissions(&batch, true)?;
                (((loss1 + loss2)? * 0.5)?
                    + (symmetric_kl(&em1, &em2, &batch.unit_mask)? * t.rdrop_alpha)?)?
            } else {
                loss1
            };
            let mut value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if t.inject_panic_at_step == Some(self.state.step + 1) {
                panic!("injected panic at step {}", self.state.step + 1);
            }
            if t.inject_nan_at_step == Some(self.state.step + 1) {
                value = f64::NAN;
            }
            if !value.is_finite() {
                self.model.encoder().discard_pending();
                bail!("the loss became {value} at step {}", self.state.step + 1);
            }
            total_loss += value / accum;
            let store = self.model.backward(&loss)?;
            let sparse = self.model.encoder().take_sparse();
            if t.fgm_epsilon > 0.0 {
                let mut own = Grads::default();
                own.add(&params, &store, sparse.clone(), 1.0)?;
                self.fgm(&batch, &own, &params, &mut grads, t.fgm_epsilon, accum)?;
            }
            grads.add(&params, &store, sparse, 1.0 / accum)?;
        }
        self.state.mask_rng = mask_rng.state();
        let grad_norm = grads.norm()?;
        if !grad_norm.is_finite() {
            bail!(
                "the gradient norm became {grad_norm} at step {}",
                self.state.step + 1
            );
        }
        let factor = lr_factor(
            t.schedule,
            self.state.stage_step,
            stage.warmup,
            stage.total_steps,
        );
        let lr = stage.lr * factor;
        let head_lr = t.head_lr.unwrap_or(stage.lr) * factor;
        self.opt
            .step(&grads, lr, head_lr, clip_scale(grad_norm, t.clip_norm))?;
        self.state.step += 1;
        self.state.stage_step += 1;
        Ok((total_loss, grad_norm))
    }

    /// FGM (Miyato et al. 2017): moves the word embeddings the batch used along their gradient
    /// (norm `epsilon`), adds the gradients of the loss there, and puts the embeddings back exactly.
    fn fgm(
        &self,
        batch: &crate::model::batch::Batch,
        own: &Grads,
        params: &[(String, candle_core::Var)],
        grads: &mut Grads,
        epsilon: f64,
        accum: f64,
    ) -> anyhow::Result<()> {
        let Some(emb) = self.model.word_embedding_var() else {
            return Ok(());
        };
        let norm = own.norm_of_embedding()?;
        if !(norm > 0.0 && norm.is_finite()) {
            return Ok(());
        }
        let scale = epsilon / norm;
        match own.row_tensor(emb.device())? {
            Some((rows, g)) => {
                let width = g.dim(1)?;
                let ids = Tensor::from_vec(rows.clone(), rows.len(), emb.device())?;
                let backup = emb.as_tensor().index_select(&ids, 0)?.contiguous()?;
                emb.as_tensor().inplace_op2(
                    &g,
                    &AddRows {
                        rows: &rows,
                        width,
                        scale: scale as f32,
                    },
                )?;
                let adv = self.model.loss(batch, true)?;
                let store = self.model.backward(&adv)?;
                grads.add(
                    params,
                    &store,
                    self.model.encoder().take_sparse(),
                    1.0 / accum,
                )?;
                emb.as_tensor()
                    .inplace_op2(&backup, &SetRows { rows: &rows, width })?;
            }
            None => {
                let Some(g) = own.dense.get(crate::model::params::WORD_EMBEDDING) else {
                    return Ok(());
                };
                let backup = emb.as_tensor().copy()?;
                emb.set(&(emb.as_tensor() + (g * scale)?)?)?;
                let adv = self.model.loss(batch, true)?;
                let store = self.model.backward(&adv)?;
                grads.add(
                    params,
                    &store,
                    self.model.encoder().take_sparse(),
                    1.0 / accum,
                )?;
                emb.set(&backup)?;
            }
        }
        Ok(())
    }

    fn stages(&self) -> anyhow::Result<Vec<Stage>> {
        let t = &self.config.train;
        let mut stages = Vec::new();
        let mut plan = vec![(self.prepared.train.as_slice(), t.epochs, t.lr)];
        if let Some(f) = &self.config.finetune {
            plan.push((self.prepared.finetune.as_slice(), f.epochs, f.lr));
        }
        for (corpora, epochs, lr) in plan {
            let examples = encode_stage(&self.model, corpora)?;
            let batches = examples.len().div_ceil(t.batch_size.max(1));
            let per_epoch = batches.div_ceil(t.grad_accum.max(1));
            let mut total = per_epoch * epochs;
            if t.max_steps > 0 {
                total = if epochs == 0 {
                    t.max_steps
                } else {
                    total.min(t.max_steps)
                };
            }
            stages.push(Stage {
                examples,
                epochs: if epochs == 0 { usize::MAX } else { epochs },
                lr,
                total_steps: total,
                warmup: warmup_steps(total, t.warmup_ratio),
            });
        }
        Ok(stages)
    }

    fn wait_while_paused(&mut self) {
        if !self.control.pause.load(Ordering::Relaxed) {
            return;
        }
        let _ = self
            .run
            .write_status(&self.status(RunState::Paused, "paused"));
        self.obs.on(TrainEvent::Paused);
        while self.control.pause.load(Ordering::Relaxed) && !self.control.stopped() {
            self.obs.idle();
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.obs.on(TrainEvent::Resumed);
    }

    fn run(&mut self, train_sentences: usize, resumed: bool) -> anyhow::Result<RunState> {
        let stages = self.stages()?;
        let total: usize = stages.iter().map(|s| s.total_steps).sum();
        self.total_steps = total;
        self.obs.on(TrainEvent::Started {
            run: self.run.name(),
            dir: self.run.path.clone(),
            total_steps: total,
            train_sentences,
            parameters: self.model.params().count(),
            resumed_from: resumed.then_some(self.state.step),
        });
        self.run
            .write_status(&self.status(RunState::Running, "training"))?;
        let accum = self.config.train.grad_accum.max(1);
        let log_every = self.config.train.log_every.max(1);
        let mut window_start = Instant::now();
        let (mut window_sentences, mut window_tokens) = (self.seen_sentences, self.seen_tokens);
        // Progress in epochs of the current stage, for the evaluation after the last stage (whose
        // counters are reset by then).
        let mut last_epoch = self.state.epoch as f64;
        while self.state.stage < stages.len() {
            let stage = &stages[self.state.stage];
            let lengths: Vec<usize> = stage.examples.iter().map(|e| e.ids.len()).collect();
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
                let steps_in_epoch = batches.len().div_ceil(accum);
                while self.state.batch < batches.len() && self.state.stage_step < stage.total_steps
                {
                    self.wait_while_paused();
                    if self.control.stopped() {
                        self.checkpoint()?;
                        return Ok(RunState::Stopped);
                    }
                    let end = (self.state.batch + accum).min(batches.len());
                    let group: Vec<&[usize]> = batches[self.state.batch..end]
                        .iter()
                        .map(Vec::as_slice)
                        .collect();
                    let (loss, grad_norm) = self.step(stage, &group)?;
                    self.state.batch = end;
                    let epoch = self.state.epoch as f64
                        + self.state.batch.div_ceil(accum) as f64 / steps_in_epoch.max(1) as f64;
                    last_epoch = epoch;
                    let t = &self.config.train;
                    let lr = stage.lr
                        * lr_factor(
                            t.schedule,
                            self.state.stage_step - 1,
                            stage.warmup,
                            stage.total_steps,
                        );
                    let secs = window_start.elapsed().as_secs_f64().max(1e-9);
                    let m = StepMetrics {
                        step: self.state.step,
                        total_steps: total,
                        epoch,
                        loss,
                        lr,
                        grad_norm,
                        sentences_per_sec: (self.seen_sentences - window_sentences) as f64 / secs,
                        tokens_per_sec: (self.seen_tokens - window_tokens) as f64 / secs,
                        elapsed_secs: self.started.elapsed().as_secs_f64(),
                    };
                    if self.state.step.is_multiple_of(log_every) {
                        self.run.append_metrics(&serde_json::json!({
                            "kind": "train", "step": m.step, "epoch": m.epoch, "loss": m.loss, "lr": m.lr, "grad_norm": m.grad_norm,
                        }))?;
                        window_start = Instant::now();
                        (window_sentences, window_tokens) = (self.seen_sentences, self.seen_tokens);
                    }
                    self.obs.on(TrainEvent::Step(m));
                    let t = &self.config.train;
                    if t.eval_every > 0 && self.state.step.is_multiple_of(t.eval_every) {
                        self.dev_eval(epoch)?;
                    } else if t.checkpoint_every > 0
                        && self.state.step.is_multiple_of(t.checkpoint_every)
                    {
                        self.checkpoint()?;
                    }
                    self.run
                        .write_status(&self.status(RunState::Running, "training"))?;
                    if self.state.early_stopped {
                        break;
                    }
                }
                self.state.epoch += 1;
                self.state.batch = 0;
                if self.config.train.eval_every == 0 && !self.state.early_stopped {
                    self.dev_eval(self.state.epoch as f64)?;
                }
            }
            self.state.stage += 1;
            self.state.epoch = 0;
            self.state.batch = 0;
            self.state.stage_step = 0;
            // Early stopping ends a stage, not the run: a fine-tuning stage still runs.
            self.state.early_stopped = false;
        }
        // Steps after the last evaluation (max_steps inside an eval interval) are evaluated too.
        if self.state.last_eval_step != Some(self.state.step) {
            self.dev_eval(last_epoch)?;
        }
        Ok(if self.state.ended_early {
            RunState::EarlyStopped
        } else {
            RunState::Finished
        })
    }

    /// `report.json`: the best model on dev (same shape as `nerlab score --json`) and on every
    /// further evaluation corpus. Nothing time-dependent, so a resumed run writes the same file.
    fn final_report(&mut self) -> anyhow::Result<()> {
        let device = self.config.device.device()?;
        let mut best = NerModel::load(&self.run.best_dir(), self.model.dtype(), &device)?;
        best.freeze()?;
        let mut report = serde_json::json!({
            "best_step": self.state.best_step,
            "steps": self.state.step,
            "labels": best.labels,
        });
        if let Some(dev) = &self.prepared.dev {
            let r = match self.best_report.take() {
                Some(r) => r,
                None => {
                    let (r, pred) = evaluate(&best, dev, self.eval_batch())?;
                    write_predictions(&self.run.path, dev, pred)?;
                    r
                }
            };
            report["dev"] = serde_json::to_value(&r)?;
        }
        let mut evals = serde_json::Map::new();
        for (name, corpus) in &self.prepared.eval {
            let (r, _) = evaluate(&best, corpus, self.eval_batch())?;
            self.obs.on(TrainEvent::Message(format!(
                "{name}: micro F1 {:.4}",
                r.micro.f1
            )));
            evals.insert(name.clone(), serde_json::to_value(&r)?);
        }
        report["eval"] = serde_json::Value::Object(evals);
        self.run.write_report(&report)
    }
}

/// The best model's predictions on `corpus`, written in the corpus's own format.
fn write_predictions(dir: &Path, corpus: &Corpus, pred: Vec<Vec<String>>) -> anyhow::Result<()> {
    let ext = match corpus.format {
        crate::data::Format::Conll | crate::data::Format::Kmou => "txt",
        crate::data::Format::Multiconer => "conll",
        _ => "tsv",
    };
    write(
        &corpus.with_tags(pred),
        &dir.join(format!("dev-predictions.{ext}")),
    )?;
    Ok(())
}

/// A fresh run name: `<model>-<head>-<unix seconds>`.
pub fn default_name(config: &RunConfig) -> String {
    let model = config
        .model
        .source
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("model")
        .to_string();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{model}-{}-{secs}",
        serde_json::to_value(config.model.head)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    )
}

/// Starts a new run (or resumes one, with `resume`), trains it to the end and writes its report.
pub fn train(
    config: RunConfig,
    resume: Option<&Path>,
    obs: &mut dyn Observer,
    control: Control,
) -> anyhow::Result<RunOutcome> {
    let threads = default_threads(config.threads);
    crate::model::device::with_threads(threads, || train_inner(config, resume, obs, control))?
}

fn train_inner(
    config: RunConfig,
    resume: Option<&Path>,
    obs: &mut dyn Observer,
    control: Control,
) -> anyhow::Result<RunOutcome> {
    let (config, run) = claim_run(config, resume)?;
    // From here on the run folder exists and is ours: however training ends (an error while reading
    // the corpora, a NaN, a panic), `status.json` says so and keeps the reason.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train_claimed(config, &run, resume, obs, control)
    }));
    let failed = |message: String| {
        let mut s = run.status();
        s.state = RunState::Failed;
        s.message = message;
        let _ = run.write_status(&s);
    };
    match result {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => {
            if run.status().state != RunState::Failed {
                failed(format!("{e:#}"));
            }
            Err(e)
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            failed(format!("training panicked: {what}"));
            std::panic::resume_unwind(panic)
        }
    }
}

/// Opens the run to resume, or creates the new run's folder, and marks it as this process's
/// (`status.json` before `config.toml`, so a listed run always has a state).
fn claim_run(config: RunConfig, resume: Option<&Path>) -> anyhow::Result<(RunConfig, RunDir)> {
    let starting = |message: &str| Status {
        state: RunState::Running,
        message: message.to_string(),
        ..Status::default()
    };
    match resume {
        Some(dir) => {
            let run = RunDir::open(dir)?;
            let status = run.status();
            if let Some(pid) = run.owner_elsewhere() {
                bail!(
                    "{} is being trained by process {pid}; stop it first",
                    dir.display()
                );
            }
            if !status.state.resumable() {
                bail!(
                    "{} is {}: nothing to resume",
                    dir.display(),
                    status.state.name()
                );
            }
            let config = run.config()?;
            run.write_status(&Status {
                state: RunState::Running,
                message: "resuming".into(),
                ..status
            })?;
            Ok((config, run))
        }
        None => {
            let errors = config.validate();
            if let Some(e) = errors.first() {
                bail!("{}: {}", e.field, e.reason);
            }
            let name = config.name.clone().unwrap_or_else(|| default_name(&config));
            let run = RunDir::create(&config.out, &name)?;
            let mut c = config;
            c.name = Some(name);
            run.write_status(&starting("starting: reading the corpora and the model"))?;
            run.write_config(&c)?;
            Ok((c, run))
        }
    }
}

/// Everything after the run folder is claimed: read the data, build or load the model, train.
fn train_claimed(
    config: RunConfig,
    run: &RunDir,
    resume: Option<&Path>,
    obs: &mut dyn Observer,
    control: Control,
) -> anyhow::Result<RunOutcome> {
    let run = run.clone();
    let hub = Hub::from_env(config.offline);
    let dtype = config.device.compute_dtype();
    let prepared = prepare(&config, &hub, obs)?;
    let checkpoint = resume.and_then(|_| run.latest_checkpoint());
    let (model, state) = match &checkpoint {
        Some(ck) => {
            let device = config.device.device()?;
            let model = NerModel::load(ck, dtype, &device)?;
            let state: TrainState =
                serde_json::from_str(&std::fs::read_to_string(ck.join("state.json"))?)?;
            model.encoder().dropout_rng().set_state(state.dropout_rng);
            run.truncate_metrics_after(state.step)?;
            (model, state)
        }
        None => {
            let model = build_model(&config, &hub, &prepared, dtype)?;
            let state = TrainState {
                dropout_rng: model.encoder().dropout_rng().state(),
                mask_rng: config.seed ^ 0x4D41_534B,
                ..TrainState::default()
            };
            if resume.is_some() {
                // Killed before the first checkpoint: start over in the same directory.
                run.truncate_metrics_after(0)?;
            }
            (model, state)
        }
    };
    let mut model = model;
    // Row-sparse embedding updates on the CPU (see `Encoder::set_sparse_embedding`).
    let sparse =
        config.train.sparse_embedding && model.device().is_cpu() && model.dtype() == DType::F32;
    model.backbone.encoder.set_sparse_embedding(sparse);
    let mut opt = AdamW::new(model.params().vars(), config.train.weight_decay)?;
    if let Some(ck) = &checkpoint {
        let st = candle_core::safetensors::load(ck.join("optimizer.safetensors"), &model.device())?;
        opt.load_state(&st, state.step)?;
    }
    let train_sentences = prepared.train.iter().map(Corpus::len).sum();
    let mut trainer = Trainer {
        config,
        run,
        model,
        opt,
        state,
        prepared,
        obs,
        control,
        started: Instant::now(),
        seen_sentences: 0,
        seen_tokens: 0,
        total_steps: 0,
        best_report: None,
    };
    let outcome = trainer.run(train_sentences, checkpoint.is_some());
    let (state, message) = match outcome {
        Ok(RunState::Stopped) => (
            RunState::Stopped,
            "stopped; resume with --resume".to_string(),
        ),
        Ok(s) => {
            trainer.final_report()?;
            (s, "done".to_string())
        }
        Err(e) => {
            let last = trainer
                .run
                .latest_checkpoint()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none".into());
            let msg = format!("{e:#}; the last good checkpoint is {last}");
            let _ = trainer
                .run
                .write_status(&trainer.status(RunState::Failed, &msg));
            return Err(anyhow::anyhow!(msg));
        }
    };
    trainer.run.write_status(&trainer.status(state, &message))?;
    Ok(RunOutcome {
        dir: trainer.run.path.clone(),
        state,
        best_f1: trainer.state.best_f1,
        best_step: trainer.state.best_step,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_batches_are_seeded_and_cover_everything() {
        let lengths: Vec<usize> = (0..103).map(|i| 5 + (i * 7) % 31).collect();
        let a = epoch_batches(&lengths, 8, 1, 0, 0, true);
        assert_eq!(a, epoch_batches(&lengths, 8, 1, 0, 0, true));
        assert_ne!(a, epoch_batches(&lengths, 8, 1, 0, 1, true));
        let mut all: Vec<usize> = a.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        let plain = epoch_batches(&lengths, 8, 1, 0, 0, false);
        assert_eq!(plain.len(), 13);
    }
}
