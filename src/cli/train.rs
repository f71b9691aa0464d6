//! `nerlab train`: a run from a config file, a preset and/or flags (applied in that order), with a
//! progress bar; `--resume DIR` continues a run after a crash or a stop.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::table::frac;
use crate::data::Format;
use crate::model::align::{CharUnits, Marker};
use crate::model::device::DeviceSpec;
use crate::model::ner::{HeadKind, InitHead, MsdAverage};
use crate::train::config::{FinetuneConfig, Keep, RdropKl, RunConfig, Schedule, Shots};
use crate::train::sources::apply_preset;
use crate::train::{Amend, Control, Observer, TrainEvent, amend_for_resume, train};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A run configuration (TOML); see docs/TRAINING.md.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A named preset: demo, klue-koelectra, wikiann-ko-e5, klue-koelectra-bilstm-crf, maner,
    /// maner-cpu (`nerlab train --help` lists them; docs/METHODS.md explains each).
    #[arg(long)]
    pub preset: Option<String>,
    /// Continue the run in this directory from its last checkpoint, exactly as it was configured:
    /// flags that would change the run (its data, model or optimization) are refused with it
    /// rather than silently ignored. --epochs and --max-steps may lengthen it (the schedule then
    /// runs to the new end), --keep-checkpoints changes what is kept; --threads and --quiet go along.
    #[arg(long, conflicts_with_all = [
        "config", "preset", "train", "dev", "eval", "format", "model", "head", "batch_size",
        "grad_accum", "lr", "head_lr", "weight_decay", "warmup",
        "schedule", "clip", "fgm", "rdrop", "msd", "maner", "word_mask", "prompt", "k_shot",
        "max_sentences", "patience", "eval_every", "no_bucket", "dense_embedding", "finetune",
        "finetune_epochs", "finetune_lr", "finetune_k_shot", "init_from", "init_head",
        "label_word", "fresh_mlm_head", "msd_average", "rdrop_kl", "max_length",
        "unconstrained_crf", "char_units", "seed", "out", "name", "device", "offline", "keep",
    ])]
    pub resume: Option<PathBuf>,
    /// Training corpora (repeat for a polyglot mix): a path, builtin:demo/train, klue-ner/train,
    /// wikiann:ko/train or hf:<repo>:<config>/<split>.
    #[arg(long)]
    pub train: Vec<String>,
    #[arg(long)]
    pub dev: Option<String>,
    /// Further corpora evaluated at the end (zero-shot transfer).
    #[arg(long)]
    pub eval: Vec<String>,
    #[arg(long, value_parser = |s: &str| s.parse::<Format>())]
    pub format: Option<Format>,
    /// char, a model folder, hf:<repo>, or a preset (koelectra-base-v3, klue-roberta-base, xlmr-base, mbert, e5-small).
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, value_parser = |s: &str| s.parse::<HeadKind>())]
    pub head: Option<HeadKind>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub max_steps: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub grad_accum: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub head_lr: Option<f64>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long)]
    pub warmup: Option<f64>,
    #[arg(long, value_parser = parse_schedule)]
    pub schedule: Option<Schedule>,
    #[arg(long)]
    pub clip: Option<f64>,
    /// FGM adversarial training with this epsilon.
    #[arg(long)]
    pub fgm: Option<f64>,
    /// R-Drop with this KL weight.
    #[arg(long)]
    pub rdrop: Option<f64>,
    /// R-Drop's KL: mean (the paper's 1/2 of both directions) or sum (both directions, as the
    /// KLUE BiLSTM-CRF source adds them).
    #[arg(long, value_parser = |s: &str| s.parse::<RdropKl>())]
    pub rdrop_kl: Option<RdropKl>,
    /// Multi-sample dropout with K masks.
    #[arg(long)]
    pub msd: Option<usize>,
    /// What multi-sample dropout averages: logits (one loss on the mean scores) or loss.
    #[arg(long, value_parser = |s: &str| s.parse::<MsdAverage>())]
    pub msd_average: Option<MsdAverage>,
    /// Longest window in tokens, special tokens included (0: the encoder's limit).
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Character-level corpora (KLUE): subwords (KLUE's baseline, every subword a unit) or
    /// characters (every character its own word).
    #[arg(long, value_parser = |s: &str| s.parse::<CharUnits>())]
    pub char_units: Option<CharUnits>,
    /// A CRF that allows every transition (as the KLUE BiLSTM-CRF source's), not only IOB2's.
    #[arg(long)]
    pub unconstrained_crf: bool,
    /// MANER: a marker before every word (mask, or fresh for the untrained-token control).
    #[arg(long, value_parser = parse_marker)]
    pub maner: Option<Marker>,
    /// MANER's baseline 2: replace words by the mask with this probability.
    #[arg(long)]
    pub word_mask: Option<f64>,
    /// Prompt label words through the MLM head.
    #[arg(long)]
    pub prompt: bool,
    /// A prompt label word for a type, TYPE=WORDS (repeat; e.g. --label-word PER=person).
    #[arg(long, value_parser = parse_label_word)]
    pub label_word: Vec<(String, String)>,
    /// Prompt label words on a model without a pretrained MLM head: train a fresh one.
    #[arg(long)]
    pub fresh_mlm_head: bool,
    /// K-shot sampling of the (first stage's) training corpora: a number (0 = zero-shot: only
    /// evaluate) or "all".
    #[arg(long, value_parser = |s: &str| s.parse::<Shots>())]
    pub k_shot: Option<Shots>,
    #[arg(long)]
    pub max_sentences: Option<usize>,
    #[arg(long)]
    pub patience: Option<usize>,
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Plain random batches instead of length buckets.
    #[arg(long)]
    pub no_bucket: bool,
    /// Dense AdamW on the word embeddings (every row every step) instead of updating only the
    /// rows a batch used.
    #[arg(long)]
    pub dense_embedding: bool,
    /// A second stage on these corpora (polyglot, then monolingual fine-tuning).
    #[arg(long)]
    pub finetune: Vec<String>,
    #[arg(long)]
    pub finetune_epochs: Option<usize>,
    #[arg(long)]
    pub finetune_lr: Option<f64>,
    /// K-shot sampling of the fine-tuning (target) corpora: a number (0 = zero-shot) or "all".
    #[arg(long, value_parser = |s: &str| s.parse::<Shots>())]
    pub finetune_k_shot: Option<Shots>,
    /// Start from another run's best model (a run folder, or a model folder such as
    /// runs/x/stage1-best) instead of --model.
    #[arg(long)]
    pub init_from: Option<String>,
    /// What --init-from does with that model's head: remap (shared labels keep their weights),
    /// keep, or fresh.
    #[arg(long, value_parser = |s: &str| s.parse::<InitHead>())]
    pub init_head: Option<InitHead>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where run directories go.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub threads: Option<usize>,
    /// Checkpoints kept on disk, newest first (default 1; the best model is kept besides). More let
    /// a resume fall back past a damaged checkpoint; each e5-small one is about 1.4 GB.
    #[arg(long)]
    pub keep_checkpoints: Option<usize>,
    /// What the run keeps once it has ended: all (the best model and the last checkpoint, the
    /// default), best (the best model only) or scores (reports and dev predictions, no model).
    #[arg(long, value_parser = |s: &str| s.parse::<Keep>())]
    pub keep: Option<Keep>,
    #[arg(long, value_parser = |s: &str| s.parse::<DeviceSpec>())]
    pub device: Option<DeviceSpec>,
    /// Use only cached Hub models and datasets.
    #[arg(long)]
    pub offline: bool,
    /// No progress bar (for logs).
    #[arg(long)]
    pub quiet: bool,
}

fn parse_schedule(s: &str) -> Result<Schedule, String> {
    match s {
        "linear" => Ok(Schedule::Linear),
        "cosine" => Ok(Schedule::Cosine),
        "constant" => Ok(Schedule::Constant),
        _ => Err(format!(
            "unknown schedule {s:?}: linear, cosine or constant"
        )),
    }
}

fn parse_label_word(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((ty, word)) if !ty.trim().is_empty() && !word.trim().is_empty() => {
            Ok((ty.trim().to_string(), word.trim().to_string()))
        }
        _ => Err(format!("{s:?}: expected TYPE=WORDS, e.g. PER=person")),
    }
}

fn parse_marker(s: &str) -> Result<Marker, String> {
    match s {
        "mask" => Ok(Marker::Mask),
        "fresh" => Ok(Marker::Fresh),
        "none" => Ok(Marker::None),
        _ => Err(format!("unknown MANER marker {s:?}: mask or fresh")),
    }
}

/// The configuration the arguments describe.
pub fn config_from_args(a: &TrainArgs) -> anyhow::Result<RunConfig> {
    let mut c = match &a.config {
        Some(p) => RunConfig::load(p)?,
        None => RunConfig::default(),
    };
    if let Some(p) = &a.preset {
        apply_preset(p, &mut c)?;
    }
    if !a.train.is_empty() {
        c.data.train = a.train.clone();
    }
    if let Some(d) = &a.dev {
        c.data.dev = Some(d.clone());
    }
    if !a.eval.is_empty() {
        c.data.eval = a.eval.clone();
    }
    macro_rules! set {
        ($field:expr, $value:expr) => {
            if let Some(v) = $value {
                $field = v;
            }
        };
    }
    set!(c.data.format, a.format.map(Some));
    set!(c.model.source, a.model.clone());
    set!(c.model.head, a.head);
    set!(c.train.epochs, a.epochs);
    set!(c.train.max_steps, a.max_steps);
    set!(c.train.batch_size, a.batch_size);
    set!(c.train.grad_accum, a.grad_accum);
    set!(c.train.lr, a.lr);
    set!(c.train.head_lr, a.head_lr.map(Some));
    set!(c.train.weight_decay, a.weight_decay);
    set!(c.train.warmup_ratio, a.warmup);
    set!(c.train.schedule, a.schedule);
    set!(c.train.clip_norm, a.clip);
    set!(c.train.fgm_epsilon, a.fgm);
    set!(c.train.rdrop_alpha, a.rdrop);
    set!(c.model.msd_samples, a.msd);
    set!(c.model.msd_average, a.msd_average);
    set!(c.model.max_length, a.max_length);
    set!(c.model.char_units, a.char_units);
    set!(c.train.rdrop_kl, a.rdrop_kl);
    if a.unconstrained_crf {
        c.model.constrained = false;
    }
    set!(c.model.marker, a.maner);
    set!(c.model.word_mask_prob, a.word_mask);
    set!(c.data.k_shot, a.k_shot);
    set!(c.data.max_sentences, a.max_sentences);
    set!(c.train.patience, a.patience);
    set!(c.train.eval_every, a.eval_every);
    set!(c.seed, a.seed);
    set!(c.out, a.out.clone());
    set!(c.name, a.name.clone().map(Some));
    set!(c.threads, a.threads.map(Some));
    set!(c.train.keep_checkpoints, a.keep_checkpoints);
    set!(c.train.keep, a.keep);
    set!(c.device, a.device);
    if a.prompt {
        c.model.prompt = true;
    }
    c.model.label_words.extend(a.label_word.iter().cloned());
    if a.fresh_mlm_head {
        c.model.fresh_mlm_head = true;
    }
    set!(c.init_from, a.init_from.clone().map(Some));
    set!(c.init_head, a.init_head);
    if a.no_bucket {
        c.train.bucket = false;
    }
    if a.dense_embedding {
        c.train.sparse_embedding = false;
    }
    if a.offline {
        c.offline = true;
    }
    if !a.finetune.is_empty() {
        let mut f = c.finetune.clone().unwrap_or_default();
        f.train = a.finetune.clone();
        set!(f.epochs, a.finetune_epochs);
        set!(f.lr, a.finetune_lr);
        set!(f.k_shot, a.finetune_k_shot);
        c.finetune = Some(f);
    } else if let Some(f) = c.finetune.as_mut() {
        set!(f.epochs, a.finetune_epochs);
        set!(f.lr, a.finetune_lr);
        set!(f.k_shot, a.finetune_k_shot);
    }
    if c.finetune
        .as_ref()
        .is_some_and(|f: &FinetuneConfig| f.train.is_empty())
    {
        c.finetune = None;
    }
    Ok(c)
}

/// Progress on the terminal.
struct Terminal {
    bar: Option<ProgressBar>,
}

impl Terminal {
    fn println(&self, line: String) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }
}

impl Observer for Terminal {
    fn on(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Started(s) => {
                let from = s
                    .resumed_from
                    .map(|step| format!(", resumed at step {step}"))
                    .unwrap_or_default();
                self.println(format!(
                    "run {} in {}: {} training sentences, {} parameters, {} steps{from}",
                    s.run,
                    s.dir.display(),
                    s.train_sentences,
                    s.parameters,
                    s.total_steps
                ));
                if let Some(b) = &self.bar {
                    b.set_length(s.total_steps as u64);
                    b.set_position(s.resumed_from.unwrap_or(0) as u64);
                }
            }
            TrainEvent::Step(m) => {
                if let Some(b) = &self.bar {
                    b.set_position(m.step as u64);
                    b.set_message(format!(
                        "epoch {:.2} loss {:.4} lr {:.2e} {:.1} sent/s {:.0} tok/s",
                        m.epoch, m.loss, m.lr, m.sentences_per_sec, m.tokens_per_sec
                    ));
                } else if m.step % 50 == 0 {
                    eprintln!(
                        "step {}/{} epoch {:.2} loss {:.4} lr {:.2e}",
                        m.step, m.total_steps, m.epoch, m.loss, m.lr
                    );
                }
            }
            TrainEvent::Evaluated {
                step,
                epoch,
                report,
                best,
            } => self.println(format!(
                "step {step} (epoch {epoch:.2}): dev micro F1 {} (P {} R {}){}",
                frac(report.micro.f1),
                frac(report.micro.precision),
                frac(report.micro.recall),
                if best { "  best so far" } else { "" }
            )),
            TrainEvent::Message(m) => self.println(m),
            TrainEvent::Paused | TrainEvent::Resumed => {}
        }
    }
}

pub fn run(a: &TrainArgs) -> anyhow::Result<()> {
    let config = match &a.resume {
        Some(dir) => {
            let amend = Amend {
                epochs: a.epochs,
                max_steps: a.max_steps,
                keep_checkpoints: a.keep_checkpoints,
            };
            for note in amend_for_resume(dir, &amend)? {
                eprintln!("{note}");
            }
            RunConfig::default()
        }
        None => config_from_args(a)?,
    };
    let bar = (!a.quiet).then(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} steps [{elapsed_precise} < {eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    // Where standard error is no terminal the bar is drawn nowhere and would swallow every
    // line printed through it: plain lines instead (a step line every 50 steps).
    let bar = bar.filter(|b| !b.is_hidden());
    let mut term = Terminal { bar };
    // Ctrl-C stops cooperatively: a checkpoint is written and the run can be resumed.
    let control = Control::default();
    let stop = control.stop.clone();
    let _ = ctrlc::set_handler(move || {
        eprintln!("\nstopping after this step (a checkpoint will be written; --resume continues)");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let outcome =
        train(config, a.resume.as_deref(), &mut term, control).context("training failed")?;
    if let Some(b) = &term.bar {
        b.finish_and_clear();
    }
    println!(
        "{}: {} (best dev micro F1 {} at step {})",
        outcome.dir.display(),
        outcome.state.name(),
        outcome.best_f1.map_or("-".into(), frac),
        outcome.best_step.map_or("-".into(), |s| s.to_string())
    );
    Ok(())
}
