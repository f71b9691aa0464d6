//! What a run reads before it trains: its corpora (K-shot or random subsets, repaired tags), the
//! model its configuration describes, and each stage's examples and schedule; and the data order
//! of every epoch, derived from (seed, stage, epoch) only, so a resumed run repeats it exactly.

use anyhow::Context;
use candle_core::DType;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::{RunConfig, Shots};
use super::events::{Observer, TrainEvent};
use super::optim::warmup_steps;
use super::run_dir::read_model;
use super::sources::{load_corpus, resolve_model};
use super::step::TrainStep;
use crate::data::Corpus;
use crate::data::Scheme;
use crate::data::hub::Hub;
use crate::data::sample::{k_shot, random_subset};
use crate::data::scheme::{convert, tag_type};
use crate::model::align::AlignMode;
use crate::model::backbone::Backbone;
use crate::model::batch::Example;
use crate::model::ner::{NerModel, bio_labels};
use crate::model::tokenize::CharVocab;
use crate::rng::SplitMix64;

/// Everything read before training starts.
pub(super) struct Prepared {
    pub train: Vec<Corpus>,
    pub finetune: Vec<Corpus>,
    pub dev: Option<Corpus>,
    pub eval: Vec<(String, Corpus)>,
    /// The sentences each stage sampled from each corpus (written to `samples.json`).
    pub samples: Vec<CorpusSample>,
}

/// The sentences sampled from one training corpus for one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusSample {
    /// 1 for the first stage, 2 for fine-tuning.
    pub stage: usize,
    pub corpus: String,
    pub k_shot: Shots,
    pub max_sentences: usize,
    pub seed: u64,
    /// Sentences in the corpus before sampling.
    pub of: usize,
    /// Chosen sentences: their positions in the corpus (from 0) and their ids.
    pub indices: Vec<usize>,
    pub ids: Vec<String>,
    /// Entity mentions per type in the sample (K-shot only).
    pub mentions: BTreeMap<String, usize>,
}

/// One stage: its training examples and schedule.
pub(super) struct Stage {
    pub examples: Vec<Example>,
    pub epochs: usize,
    pub lr: f64,
    pub total_steps: usize,
    pub warmup: usize,
}

/// How one stage samples its corpora.
#[derive(Debug, Clone, Copy)]
struct Sampling {
    stage: usize,
    shots: Shots,
    max_sentences: usize,
    seed: u64,
}

/// A training corpus as its stage samples it (K-shot, then a random subset), repaired; with the
/// record of what was sampled when anything was.
fn training_corpus(
    src: &str,
    c: Corpus,
    how: Sampling,
    obs: &mut dyn Observer,
) -> (Corpus, Option<CorpusSample>) {
    let of = c.len();
    let mut indices: Vec<usize> = (0..of).collect();
    let mut mentions = BTreeMap::new();
    match how.shots {
        Shots::All => {}
        // Zero-shot: the stage trains on nothing.
        Shots::K(0) => indices.clear(),
        Shots::K(k) => {
            let s = k_shot(&c, k, how.seed);
            for (ty, got) in &s.short {
                obs.on(TrainEvent::Message(format!(
                    "{src}: only {got} {ty} mentions for {k}-shot"
                )));
            }
            indices = s.indices;
            mentions = s.mentions;
        }
    }
    if how.max_sentences > 0 && indices.len() > how.max_sentences {
        indices = random_subset(indices.len(), how.max_sentences, how.seed)
            .into_iter()
            .map(|i| indices[i])
            .collect();
    }
    let sampled = indices.len() < of || how.shots != Shots::All;
    let mut c = if sampled { c.subset(&indices) } else { c };
    let repairs = c.repair();
    if !repairs.is_empty() {
        obs.on(TrainEvent::Message(format!(
            "{src}: repaired {} invalid tags in {} sentences ({:?})",
            repairs.tags, repairs.sentences, repairs.by_kind
        )));
    }
    // The model's labels are IOB2 (`bio_labels`): a corpus in another scheme (BIOES, IOB1) is
    // trained on the same entities in IOB2, so corpora of different schemes mix.
    if c.scheme != Scheme::Iob2 {
        for s in &mut c.sentences {
            s.tags = convert(&s.tags, Scheme::Iob2);
        }
        obs.on(TrainEvent::Message(format!(
            "{src}: read as {}, trained as IOB2 (the same entities)",
            c.scheme.name()
        )));
        c.scheme = Scheme::Iob2;
    }
    let record = sampled.then(|| CorpusSample {
        stage: how.stage,
        corpus: src.to_string(),
        k_shot: how.shots,
        max_sentences: how.max_sentences,
        seed: how.seed,
        of,
        ids: c.sentences.iter().map(|s| s.id.clone()).collect(),
        indices,
        mentions,
    });
    (c, record)
}

pub(super) fn prepare(
    config: &RunConfig,
    hub: &Hub,
    obs: &mut dyn Observer,
) -> anyhow::Result<Prepared> {
    let load = |s: &String| {
        load_corpus(s, config.data.format, hub).map_err(|e| {
            // A path the configuration names that is not here: most often a run folder copied
            // from another machine, whose corpora live elsewhere.
            let missing = e.downcast_ref::<crate::data::DataError>().is_some_and(|d| {
                matches!(d, crate::data::DataError::Io { error, .. }
                    if error.kind() == std::io::ErrorKind::NotFound)
            });
            let hint = if missing {
                " (a run copied from another machine needs its corpora at the same paths, or \
                 its config.toml changed to where they are)"
            } else {
                ""
            };
            e.context(format!("loading {s}{hint}"))
        })
    };
    let d = &config.data;
    let mut samples = Vec::new();
    let mut stage = |n: usize,
                     sources: &[String],
                     shots: Shots,
                     max_sentences: usize,
                     obs: &mut dyn Observer| {
        let how = Sampling {
            stage: n,
            shots,
            max_sentences,
            seed: d.sample_seed,
        };
        let mut out = Vec::new();
        for src in sources {
            let (c, record) = training_corpus(src, load(src)?, how, obs);
            out.push(c);
            samples.extend(record);
        }
        anyhow::Ok(out)
    };
    let train = stage(1, &d.train, d.k_shot, d.max_sentences, obs)?;
    let finetune = match &config.finetune {
        Some(f) => stage(2, &f.train, f.k_shot, 0, obs)?,
        None => Vec::new(),
    };
    for stage in [&train, &finetune] {
        check_has_entities(stage)?;
    }
    let dev = d.dev.as_ref().map(load).transpose()?;
    if let Some(dev) = &dev {
        let unseen = types_not_trained(dev, train.iter().chain(&finetune));
        if !unseen.is_empty() && !train.is_empty() {
            obs.on(TrainEvent::Message(format!(
                "{}: the dev corpus has types the training data lacks ({}); the model cannot \
                 predict them, so each of their entities counts as missed",
                dev.path.display(),
                unseen.join(", ")
            )));
        }
    }
    let eval = d
        .eval
        .iter()
        .map(|s| Ok((s.clone(), load(s)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Prepared {
        train,
        finetune,
        dev,
        eval,
        samples,
    })
}

/// Refuses a stage's training data without a single entity (every tag `O`): a model trained on
/// it learns to say `O`, and its F1 of 0 would look like a result.
fn check_has_entities(stage: &[Corpus]) -> anyhow::Result<()> {
    let mut sentences = stage.iter().flat_map(|c| &c.sentences).peekable();
    if sentences.peek().is_none() {
        return Ok(());
    }
    if sentences.any(|s| s.tags.iter().any(|t| t != "O")) {
        return Ok(());
    }
    let names: Vec<String> = stage.iter().map(|c| c.path.display().to_string()).collect();
    anyhow::bail!(
        "{}: no entity in the training data (every tag is O); a model trained on it learns to \
         say O and scores an F1 of 0 (the wrong file, or a wrong column?)",
        names.join(", ")
    )
}

/// The entity types of `dev` that no training corpus has, sorted.
fn types_not_trained<'a>(dev: &Corpus, train: impl Iterator<Item = &'a Corpus>) -> Vec<String> {
    let types = |c: &Corpus| -> std::collections::BTreeSet<String> {
        c.sentences
            .iter()
            .flat_map(|s| s.tags.iter().filter_map(|t| tag_type(t)))
            .map(str::to_string)
            .collect()
    };
    let known: std::collections::BTreeSet<String> = train.flat_map(types).collect();
    types(dev)
        .into_iter()
        .filter(|t| !known.contains(t))
        .collect()
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
pub(super) fn build_model(
    config: &RunConfig,
    hub: &Hub,
    prepared: &Prepared,
    dtype: DType,
    obs: &mut dyn Observer,
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
    let align = prepared
        .train
        .iter()
        .chain(&prepared.finetune)
        .next()
        .map_or(AlignMode::Words, |c| {
            AlignMode::for_format(c.format, config.model.char_units)
        });
    if let Some(src) = &config.init_from {
        let init = |dir: &Path| {
            NerModel::init_from(
                dir,
                config.model.spec(),
                labels.clone(),
                align,
                config.init_head,
                dtype,
                &device,
                config.seed,
            )
        };
        return read_model(Path::new(src), init).with_context(|| format!("init_from = {src:?}"));
    }
    let source_dir = resolve_model(&config.model.source, hub)?;
    let backbone = match &source_dir {
        Some(dir) => Backbone::pretrained(dir, dtype, &device, config.seed)?,
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
    let model = NerModel::new(backbone, config.model.spec(), labels, align)?;
    if let Some(dir) = source_dir.filter(|d| crate::model::hf::is_token_classifier(d)) {
        let note = keep_token_classifier_head(&model, &dir, config)?;
        obs.on(TrainEvent::Message(note));
    }
    Ok(model)
}

/// A run whose encoder is a token-classification checkpoint keeps that checkpoint's classifier
/// rows for the labels it shares with the training data (matched as `nerlab eval` matches them,
/// with `model.label_map`); the rest of the head starts fresh. Returns the note for the log.
fn keep_token_classifier_head(
    model: &NerModel,
    dir: &Path,
    config: &RunConfig,
) -> anyhow::Result<String> {
    let map = crate::data::label_map::LabelMap::from_args(
        None,
        &config
            .model
            .label_map
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>(),
    )?;
    let head = crate::model::hf::read_token_classifier(dir)?;
    let (w, b, theirs) = match crate::model::hf::classifier_for_training(dir, &map, &model.labels) {
        Ok(x) => x,
        Err(e) => {
            return Ok(format!(
                "{}: its classifier is replaced by a fresh one ({})",
                dir.display(),
                e.to_string().lines().next().unwrap_or_default()
            ));
        }
    };
    let kept = model.keep_classifier_rows(&w, &b, &theirs)?;
    let fresh: Vec<&String> = model.classes.iter().filter(|c| !kept.contains(c)).collect();
    Ok(if kept.is_empty() {
        format!(
            "{}: its classifier ({}) cannot serve this head (a BiLSTM or prompt head reads other \
             features) and is replaced by a fresh one",
            dir.display(),
            head.labels.join(" ")
        )
    } else if fresh.is_empty() {
        format!(
            "{}: its classifier is kept for all {} labels",
            dir.display(),
            kept.len()
        )
    } else {
        format!(
            "{}: its classifier is kept for {} of {} labels; new: {}",
            dir.display(),
            kept.len(),
            model.classes.len(),
            fresh
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        )
    })
}

/// A stage's examples, each corpus aligned as the model's description says (a resumed run's
/// saved model, not a configuration nerlab may since have given other defaults).
fn encode_stage(step: &TrainStep, corpora: &[Corpus]) -> anyhow::Result<Vec<Example>> {
    let mut out = Vec::new();
    let mut n = 0;
    for c in corpora {
        for s in &c.sentences {
            let ex = step
                .encode(n, &s.tokens, &s.tags, c.format)
                .with_context(|| format!("{}: sentence {}", c.path.display(), s.id))?;
            out.extend(ex);
            n += 1;
        }
    }
    Ok(out)
}

/// The stages of a run (training, then fine-tuning when configured) with their schedules.
pub(super) fn stages(
    config: &RunConfig,
    prepared: &Prepared,
    step: &TrainStep,
) -> anyhow::Result<Vec<Stage>> {
    let t = &config.train;
    let mut stages = Vec::new();
    let mut plan = vec![(prepared.train.as_slice(), t.epochs, t.lr)];
    if let Some(f) = &config.finetune {
        plan.push((prepared.finetune.as_slice(), f.epochs, f.lr));
    }
    for (corpora, epochs, lr) in plan {
        let examples = encode_stage(step, corpora)?;
        let batches = examples.len().div_ceil(t.batch_size.max(1));
        let per_epoch = batches.div_ceil(t.grad_accum.max(1));
        let mut total = per_epoch * epochs;
        // A zero-shot stage trains nothing, whatever max_steps says.
        if t.max_steps > 0 && !examples.is_empty() {
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
