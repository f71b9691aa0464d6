//! One optimizer step, with its rules kept in one place (burn's `TrainStep`): [`TrainStep`] owns
//! the model and the optimizer, so the order of their calls cannot be forgotten by a caller:
//!
//! 1. `AdamW::catch_up` on the word-embedding rows a micro-batch reads, before its forward pass
//!    (row-sparse updates leave other rows behind);
//! 2. `NerModel::backward`, never `loss.backward()` alone (the encoder's own backward runs there),
//!    then `Encoder::take_sparse` for the embedding rows' gradients;
//! 3. `Encoder::discard_pending` when the loss is not finite, and nothing applied;
//! 4. `AdamW::flush` before the model is evaluated or saved: the only way to reach the model for
//!    that, [`TrainStep::synced`], does it.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::bail;
use candle_core::{DType, Device, Tensor, Var};

use super::optim::{AdamW, Grads, clip_scale};
use super::tricks::{Tricks, fgm, symmetric_kl};
use crate::model::batch::Example;
use crate::model::ner::NerModel;
use crate::rng::SplitMix64;

/// A fault to inject into a step (testing aids of the failure paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The loss reads as NaN.
    Nan,
    Panic,
}

/// How to take one step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepPlan {
    /// Learning rates of the encoder and of the head, schedule applied.
    pub lr: f64,
    pub head_lr: f64,
    /// Global gradient-norm clipping (0 = off).
    pub clip_norm: f64,
    pub tricks: Tricks,
    pub fault: Option<Fault>,
}

/// Seconds a step spent in each phase (batching counts as forward).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepTiming {
    pub forward_secs: f64,
    pub backward_secs: f64,
    pub optimizer_secs: f64,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepOutcome {
    /// Training loss, the mean over micro-batches.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    pub sentences: usize,
    pub tokens: usize,
    pub timing: StepTiming,
}

/// The model and its optimizer, stepped together.
pub struct TrainStep {
    model: NerModel,
    opt: AdamW,
    params: Vec<(String, Var)>,
    /// No update since the last flush: the model's weights are all current.
    synced: bool,
}

impl TrainStep {
    /// AdamW over every parameter of `model` (no decay on biases and LayerNorm).
    pub fn new(model: NerModel, weight_decay: f64) -> anyhow::Result<Self> {
        let params = model.params().vars();
        let opt = AdamW::new(params.clone(), weight_decay)?;
        Ok(Self {
            model,
            opt,
            params,
            synced: true,
        })
    }

    /// Restores the optimizer from a checkpoint taken after `step` steps.
    pub fn load_optimizer_state(
        &mut self,
        state: &HashMap<String, Tensor>,
        step: usize,
    ) -> anyhow::Result<()> {
        self.opt.load_state(state, step)
    }

    /// The optimizer's state for a checkpoint (the model is synced first, as it must be saved
    /// beside it).
    pub fn optimizer_state(&mut self) -> anyhow::Result<HashMap<String, Tensor>> {
        self.synced()?;
        Ok(self.opt.state()?)
    }

    /// The model with every update applied: for evaluating or saving it.
    pub fn synced(&mut self) -> anyhow::Result<&NerModel> {
        if !self.synced {
            self.opt.flush()?;
            self.synced = true;
        }
        Ok(&self.model)
    }

    /// The trained model, every update applied.
    pub fn into_model(mut self) -> anyhow::Result<NerModel> {
        self.synced()?;
        Ok(self.model)
    }

    /// Turns a sentence into training examples (the tokenizer and labels do not depend on the
    /// weights, so this needs no sync).
    pub fn encode(
        &self,
        n: usize,
        tokens: &[String],
        tags: &[String],
        format: crate::data::Format,
    ) -> anyhow::Result<Vec<Example>> {
        let mode = self.model.align_for(format);
        Ok(self.model.encode_as(n, tokens, Some(tags), mode)?.1)
    }

    pub fn parameter_count(&self) -> usize {
        self.model.params().count()
    }

    /// The state of the encoder's dropout generator (saved in checkpoints).
    pub fn dropout_rng_state(&self) -> u64 {
        self.model.encoder().dropout_rng().state()
    }

    pub fn dtype(&self) -> DType {
        self.model.dtype()
    }

    pub fn device(&self) -> Device {
        self.model.device()
    }

    /// One optimizer step over `micro` batches (gradient accumulation), drawing word masks from
    /// `mask_rng` (MANER's baseline 2). A non-finite loss or gradient norm applies nothing and
    /// is an error naming `step_number`.
    pub fn step(
        &mut self,
        micro: &[Vec<&Example>],
        mut mask_rng: Option<&mut SplitMix64>,
        plan: &StepPlan,
        step_number: usize,
    ) -> anyhow::Result<StepOutcome> {
        let start = Instant::now();
        let accum = micro.len() as f64;
        let mut out = StepOutcome::default();
        let mut grads = Grads::default();
        let mut backward_secs = 0.0;
        for ex in micro {
            let batch = self.model.batch(ex, mask_rng.as_deref_mut())?;
            // Word-embedding rows left behind by row-sparse steps are brought up to date first.
            self.opt
                .catch_up(&batch.ids.flatten_all()?.to_vec1::<u32>()?)?;
            self.synced = false;
            out.sentences += ex.len();
            out.tokens += ex.iter().map(|e| e.ids.len()).sum::<usize>();
            let loss = self.loss(&batch, &plan.tricks)?;
            let mut value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            match plan.fault {
                Some(Fault::Panic) => panic!("injected panic at step {step_number}"),
                Some(Fault::Nan) => value = f64::NAN,
                None => {}
            }
            if !value.is_finite() {
                self.model.encoder().discard_pending();
                bail!("the loss became {value} at step {step_number}");
            }
            out.loss += value / accum;
            let backward_start = Instant::now();
            let store = self.model.backward(&loss)?;
            let sparse = self.model.encoder().take_sparse();
            if plan.tricks.fgm_epsilon > 0.0 {
                let mut own = Grads::default();
                own.add(&self.params, &store, sparse.clone(), 1.0)?;
                fgm(
                    &self.model,
                    &batch,
                    &own,
                    &self.params,
                    &mut grads,
                    plan.tricks.fgm_epsilon,
                    accum,
                )?;
            }
            grads.add(&self.params, &store, sparse, 1.0 / accum)?;
            backward_secs += backward_start.elapsed().as_secs_f64();
        }
        let optimizer_start = Instant::now();
        out.grad_norm = grads.norm()?;
        if !out.grad_norm.is_finite() {
            bail!(
                "the gradient norm became {} at step {step_number}",
                out.grad_norm
            );
        }
        let scale = clip_scale(out.grad_norm, plan.clip_norm);
        self.opt.step(&grads, plan.lr, plan.head_lr, scale)?;
        let optimizer_secs = optimizer_start.elapsed().as_secs_f64();
        let total = start.elapsed().as_secs_f64();
        out.timing = StepTiming {
            forward_secs: total - backward_secs - optimizer_secs,
            backward_secs,
            optimizer_secs,
        };
        Ok(out)
    }

    /// The training loss of one micro-batch; with R-Drop, the mean of two dropout passes plus
    /// `alpha` times their symmetric KL.
    fn loss(&self, batch: &crate::model::batch::Batch, tricks: &Tricks) -> anyhow::Result<Tensor> {
        let (loss1, em1) = self.model.loss_and_emissions(batch, true)?;
        if tricks.rdrop_alpha <= 0.0 {
            return Ok(loss1);
        }
        let (loss2, em2) = self.model.loss_and_emissions(batch, true)?;
        let kl = symmetric_kl(&em1, &em2, &batch.unit_mask, tricks.rdrop_kl)?;
        Ok((((loss1 + loss2)? * 0.5)? + (kl * tricks.rdrop_alpha)?)?)
    }
}
