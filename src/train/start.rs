//! Starting a run: claim its folder (or the one to resume), read its data, build or load its
//! model, hand both to the [`Trainer`](super::trainer::Trainer), and record how it ended however
//! it ends.

use std::path::Path;

use anyhow::bail;
use candle_core::DType;

use super::config::RunConfig;
use super::data::{Prepared, build_model, prepare};
use super::events::{Control, Observer, RunOutcome, panic_message};
use super::run_dir::files::{CHECKPOINT_OPTIMIZER, CHECKPOINT_STATE};
use super::run_dir::{RunDir, RunLock, RunState, Status};
use super::step::TrainStep;
use super::trainer::{TrainState, Trainer};
use crate::data::Corpus;
use crate::data::hub::Hub;
use crate::model::device::default_threads;
use crate::model::ner::NerModel;

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
    let (config, run, _claim) = claim_run(config, resume)?;
    // From here on the run folder exists and is ours: however training ends (an error while reading
    // the corpora, a NaN, a panic), `status.json` says so and keeps the reason.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train_claimed(config, &run, resume, obs, control)
    }));
    // Records the failure unless the trainer already did (with its last good checkpoint).
    let failed = |message: String| {
        let mut s = run.status();
        if s.state != RunState::Failed {
            s.state = RunState::Failed;
            s.message = message;
            let _ = run.write_status(&s);
        }
    };
    match result {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => {
            failed(format!("{e:#}"));
            Err(e)
        }
        Err(panic) => {
            failed(format!("training panicked: {}", panic_message(&panic)));
            std::panic::resume_unwind(panic)
        }
    }
}

/// Opens the run to resume, or creates the new run's folder, and claims it for this training
/// (the single-writer lock, held until the returned [`RunLock`] drops); a new run's `status.json`
/// is written before its `config.toml`, so a listed run always has a state.
fn claim_run(
    config: RunConfig,
    resume: Option<&Path>,
) -> anyhow::Result<(RunConfig, RunDir, RunLock)> {
    let starting = |message: &str| Status {
        state: RunState::Running,
        message: message.to_string(),
        ..Status::default()
    };
    match resume {
        Some(dir) => {
            let run = RunDir::open(dir)?;
            let claim = run.claim()?;
            let status = run.status();
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
            Ok((config, run, claim))
        }
        None => {
            let errors = config.validate();
            if let Some(e) = errors.first() {
                bail!("{}: {}", e.field, e.reason);
            }
            let name = config.name.clone().unwrap_or_else(|| default_name(&config));
            let run = RunDir::create(&config.out, &name)?;
            let claim = run.claim()?;
            // Two processes may both have found the folder free; the one that claims it second
            // finds the first one's configuration and leaves the run alone.
            if RunDir::is_run(&run.path) {
                return Err(super::run_dir::RunBusy {
                    path: run.path.clone(),
                    who: "another process (it started first)".into(),
                }
                .into());
            }
            let mut c = config;
            c.name = Some(name);
            run.write_status(&starting("starting: reading the corpora and the model"))?;
            run.write_config(&c)?;
            Ok((c, run, claim))
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
    let hub = Hub::from_env(config.offline);
    let prepared = prepare(&config, &hub, obs)?;
    if !prepared.samples.is_empty() {
        run.write_samples(&prepared.samples)?;
    }
    let (step, state, resumed) = model_and_state(&config, &hub, &prepared, run, resume, obs)?;
    let train_sentences = prepared.train.iter().map(Corpus::len).sum();
    let mut trainer = Trainer::new(config, run.clone(), step, state, prepared, obs, control);
    let outcome = trainer.run(train_sentences, resumed);
    trainer.finish(outcome)
}

/// The model and optimizer to train, and the trainer's position: from the latest checkpoint
/// when resuming (then `true`), else new.
fn model_and_state(
    config: &RunConfig,
    hub: &Hub,
    prepared: &Prepared,
    run: &RunDir,
    resume: Option<&Path>,
    obs: &mut dyn Observer,
) -> anyhow::Result<(TrainStep, TrainState, bool)> {
    let dtype = config.device.compute_dtype();
    let checkpoint = resume.and_then(|_| run.latest_checkpoint());
    let (model, state) = match &checkpoint {
        Some(ck) => {
            let device = config.device.device()?;
            let model = NerModel::load(ck, dtype, &device)?;
            let state: TrainState =
                serde_json::from_str(&std::fs::read_to_string(ck.join(CHECKPOINT_STATE))?)?;
            model.encoder().dropout_rng().set_state(state.dropout_rng);
            run.truncate_metrics_after(state.step)?;
            (model, state)
        }
        None => {
            let model = build_model(config, hub, prepared, dtype, obs)?;
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
    let mut step = train_step(model, config)?;
    if let Some(ck) = &checkpoint {
        let st = candle_core::safetensors::load(ck.join(CHECKPOINT_OPTIMIZER), &step.device())?;
        // Each stage starts a fresh optimizer: it has taken the stage's steps.
        step.load_optimizer_state(&st, state.stage_step)?;
    }
    Ok((step, state, checkpoint.is_some()))
}

/// The training step over `model`, with a fresh optimizer (a new run, or a new stage).
pub(super) fn train_step(mut model: NerModel, config: &RunConfig) -> anyhow::Result<TrainStep> {
    // Row-sparse embedding updates on the CPU (see `Encoder::set_sparse_embedding`).
    let sparse =
        config.train.sparse_embedding && model.device().is_cpu() && model.dtype() == DType::F32;
    model.backbone.encoder.set_sparse_embedding(sparse);
    TrainStep::new(model, config.train.weight_decay)
}
