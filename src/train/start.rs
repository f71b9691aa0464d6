//! Starting a run: claim its folder (or the one to resume), read its data, build or load its
//! model, hand both to the [`Trainer`](super::trainer::Trainer), and record how it ended however
//! it ends.

use std::path::Path;

use anyhow::{Context, bail};
use candle_core::DType;

use super::config::RunConfig;
use super::data::{Prepared, build_model, prepare};
use super::events::{Control, Observer, RunOutcome, TrainEvent, panic_message};
use super::run_dir::files::{self, CHECKPOINT_OPTIMIZER, CHECKPOINT_STATE};
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
    let data = data_prints(&prepared);
    if resume.is_some()
        && let Some(then) = run.data()
    {
        check_same_data(&then, &data, &run.path)?;
    }
    run.write_data(&data)?;
    if !prepared.samples.is_empty() {
        run.write_samples(&prepared.samples)?;
    }
    let (step, state, resumed) = model_and_state(&config, &hub, &prepared, run, resume, obs)?;
    let train_sentences = prepared.train.iter().map(Corpus::len).sum();
    let mut trainer = Trainer::new(config, run.clone(), step, state, prepared, obs, control);
    let outcome = trainer.run(train_sentences, resumed);
    trainer.finish(outcome)
}

/// Each corpus the run reads, as sampled (what it trains on) and in order: its role and path,
/// and its sentence count with a hash of its tokens and tags.
fn data_prints(p: &Prepared) -> Vec<(String, String)> {
    let print = |c: &Corpus| {
        let mut h = crate::hash::Fnv1a::default();
        for s in &c.sentences {
            for part in s.tokens.iter().chain(&s.tags) {
                h.write(part.as_bytes());
                h.write(&[0x1f]);
            }
            h.write(&[0x1e]);
        }
        format!("{} sentences, {:016x}", c.len(), h.finish())
    };
    let named = |role: &str, c: &Corpus| (format!("{role} {}", c.path.display()), print(c));
    let mut out: Vec<(String, String)> = p.train.iter().map(|c| named("train", c)).collect();
    out.extend(p.finetune.iter().map(|c| named("fine-tune", c)));
    out.extend(p.dev.iter().map(|c| named("dev", c)));
    out.extend(p.eval.iter().map(|(_, c)| named("eval", c)));
    out
}

/// A resumed run must go on with the data it started with: a corpus edited, replaced or sampled
/// differently in between would silently train the rest of the run on something else.
fn check_same_data(
    then: &[(String, String)],
    now: &[(String, String)],
    run: &Path,
) -> anyhow::Result<()> {
    let changed: Vec<String> = then
        .iter()
        .zip(now)
        .filter(|(a, b)| a != b)
        .map(|((what, was), (_, is))| format!("{what}: {was} then, {is} now"))
        .collect();
    if changed.is_empty() && then.len() == now.len() {
        return Ok(());
    }
    bail!(
        "{}: its data changed since it started, so resuming would train the rest of the run on \
         other sentences:\n  {}\n(put the corpora back as they were, or train a new run; {} \
         has what it read)",
        run.display(),
        if changed.is_empty() {
            format!("{} corpora then, {} now", then.len(), now.len())
        } else {
            changed.join("\n  ")
        },
        files::DATA
    )
}

/// The model and optimizer to train, and the trainer's position: from the latest checkpoint
/// that reads when resuming (then `true`), else new. A damaged checkpoint is passed over, said
/// so, for the one before it (`--keep-checkpoints` keeps them); when none reads, nothing starts.
fn model_and_state(
    config: &RunConfig,
    hub: &Hub,
    prepared: &Prepared,
    run: &RunDir,
    resume: Option<&Path>,
    obs: &mut dyn Observer,
) -> anyhow::Result<(TrainStep, TrainState, bool)> {
    let candidates = if resume.is_some() {
        run.resumable_checkpoints()
    } else {
        Vec::new()
    };
    let mut damaged = Vec::new();
    for ck in &candidates {
        match from_checkpoint(config, ck) {
            Ok((step, state)) => {
                for (name, why) in &damaged {
                    obs.on(TrainEvent::Message(format!(
                        "checkpoint {name} cannot be read ({why}); resuming from {} instead",
                        ck.display()
                    )));
                }
                run.truncate_metrics_after(state.step)?;
                return Ok((step, state, true));
            }
            Err(e) => damaged.push((ck.display().to_string(), format!("{e:#}"))),
        }
    }
    if !damaged.is_empty() {
        let list: Vec<String> = damaged
            .iter()
            .map(|(n, why)| format!("{n}: {why}"))
            .collect();
        bail!(
            "no checkpoint of {} can be read, so it cannot resume:\n  {}\n(train it again \
             from the start, or copy a good checkpoint back)",
            run.path.display(),
            list.join("\n  ")
        );
    }
    let model = build_model(config, hub, prepared, config.device.compute_dtype(), obs)?;
    let state = TrainState {
        dropout_rng: model.encoder().dropout_rng().state(),
        mask_rng: config.seed ^ 0x4D41_534B,
        ..TrainState::default()
    };
    if resume.is_some() {
        // Killed before the first checkpoint: start over in the same directory.
        run.truncate_metrics_after(0)?;
    }
    Ok((train_step(model, config)?, state, false))
}

/// The model, optimizer and position saved in checkpoint `ck`.
fn from_checkpoint(config: &RunConfig, ck: &Path) -> anyhow::Result<(TrainStep, TrainState)> {
    let device = config.device.device()?;
    let model = NerModel::load(ck, config.device.compute_dtype(), &device)?;
    let state_file = ck.join(CHECKPOINT_STATE);
    let text = std::fs::read_to_string(&state_file)
        .with_context(|| format!("reading {}", state_file.display()))?;
    let state: TrainState =
        serde_json::from_str(&text).with_context(|| format!("reading {}", state_file.display()))?;
    model.encoder().dropout_rng().set_state(state.dropout_rng);
    let mut step = train_step(model, config)?;
    let optimizer = ck.join(CHECKPOINT_OPTIMIZER);
    let st = candle_core::safetensors::load(&optimizer, &step.device())
        .with_context(|| format!("reading {}", optimizer.display()))?;
    // Each stage starts a fresh optimizer: it has taken the stage's steps.
    step.load_optimizer_state(&st, state.stage_step)?;
    Ok((step, state))
}

/// The training step over `model`, with a fresh optimizer (a new run, or a new stage).
pub(super) fn train_step(mut model: NerModel, config: &RunConfig) -> anyhow::Result<TrainStep> {
    // Row-sparse embedding updates on the CPU (see `Encoder::set_sparse_embedding`).
    let sparse = config.train.sparse_embedding
        && model.device().is_cpu()
        && model.dtype() == DType::F32
        && crate::model::device::gpu_path().is_none();
    model.backbone.encoder.set_sparse_embedding(sparse);
    TrainStep::new(model, config.train.weight_decay)
}

/// What a resume may change: how long the run goes and what it keeps, never what it learns on
/// the way (the command line refuses every other flag with `--resume`).
#[derive(Debug, Clone, Default)]
pub struct Amend {
    pub epochs: Option<usize>,
    pub max_steps: Option<usize>,
    pub keep_checkpoints: Option<usize>,
}

/// Writes `a` into the configuration of the run in `dir` before it resumes, and returns what
/// changed, in words; a change that would shorten the run is refused. A finished run made longer
/// becomes resumable (it goes on from its last checkpoint).
pub fn amend_for_resume(dir: &Path, a: &Amend) -> anyhow::Result<Vec<String>> {
    if a.epochs.is_none() && a.max_steps.is_none() && a.keep_checkpoints.is_none() {
        return Ok(Vec::new());
    }
    let run = RunDir::open(dir)?;
    let state = run.status().state;
    if !state.resumable() && state != RunState::Finished {
        // Early-stopped: its end is in its state, not its length; leave its configuration be.
        bail!("{} is {}: nothing to resume", dir.display(), state.name());
    }
    let _claim = run.claim()?;
    let mut c = run.config()?;
    let mut notes = Vec::new();
    if let Some(e) = a.epochs {
        anyhow::ensure!(
            e >= c.train.epochs,
            "--epochs {e} with --resume: the run was set to {} epochs; a resume may lengthen a run, \
             never shorten it",
            c.train.epochs
        );
        if e != c.train.epochs {
            notes.push(format!(
                "--epochs {e}: the run goes on to {e} epochs (it was set to {}); the learning-rate \
                 schedule now ends there",
                c.train.epochs
            ));
            c.train.epochs = e;
        }
    }
    if let Some(m) = a.max_steps {
        let old = c.train.max_steps;
        anyhow::ensure!(
            m == old || (old != 0 && (m == 0 || m >= old)),
            "--max-steps {m} with --resume: the run {}; a resume may lengthen a run, never shorten it",
            if old == 0 {
                "has no step limit".to_string()
            } else {
                format!("stops at step {old}")
            }
        );
        if m != old {
            notes.push(format!(
                "--max-steps {m}: the run goes on to step {m} (it stopped at {old})"
            ));
            c.train.max_steps = m;
        }
    }
    if let Some(k) = a.keep_checkpoints {
        anyhow::ensure!(
            k >= 1,
            "--keep-checkpoints {k}: at least one checkpoint is kept"
        );
        c.train.keep_checkpoints = k;
    }
    let status = run.status();
    anyhow::ensure!(
        notes.is_empty() || status.state != RunState::Finished || run.latest_checkpoint().is_some(),
        "{} kept no checkpoint once it ended (train.keep = \"{}\"), so it cannot be \
         lengthened; train a new run instead",
        dir.display(),
        c.train.keep
    );
    // A finished run made longer goes on from its last checkpoint. The status is written before
    // the longer configuration: a crash between the two leaves a stopped run of the old length
    // (resuming re-finishes it, and the same command lengthens it again), never a finished run
    // whose configuration already says longer, which no command would resume.
    if !notes.is_empty() && status.state == RunState::Finished {
        run.write_status(&Status {
            state: RunState::Stopped,
            message: "lengthened; resuming".into(),
            ..status
        })?;
    }
    run.write_config(&c)?;
    Ok(notes)
}
