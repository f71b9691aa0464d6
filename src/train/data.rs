//! What a run reads before it trains: its corpora (K-shot or random subsets, repaired tags), the
//! model its configuration describes, and each stage's examples and schedule; and the data order
//! of every epoch, derived from (seed, stage, epoch) only, so a resumed run repeats it exactly.

use anyhow::Context;
use candle_core::DType;

use super::config::RunConfig;
use super::events::{Observer, TrainEvent};
use super::optim::warmup_steps;
use super::sources::{load_corpus, resolve_model};
use super::step::TrainStep;
use crate::data::Corpus;
use crate::data::hub::Hub;
use crate::data::sample::{k_shot, random_subset};
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
}

/// One stage: its training examples and schedule.
pub(super) struct Stage {
    pub examples: Vec<Example>,
    pub epochs: usize,
    pub lr: f64,
    pub total_steps: usize,
    pub warmup: usize,
}

pub(super) fn align_mode(c: &Corpus) -> AlignMode {
    if c.format.char_level() {
        AlignMode::Chars
    } else {
        AlignMode::Words
    }
}

/// A training corpus as the configuration samples it (K-shot, then a random subset), repaired.
fn training_corpus(src: &str, mut c: Corpus, config: &RunConfig, obs: &mut dyn Observer) -> Corpus {
    let d = &config.data;
    if d.k_shot > 0 {
        let s = k_shot(&c, d.k_shot, d.sample_seed);
        for (ty, got) in &s.short {
            obs.on(TrainEvent::Message(format!(
                "{src}: only {got} {ty} mentions for {}-shot",
                d.k_shot
            )));
        }
        c = c.subset(&s.indices);
    }
    if d.max_sentences > 0 {
        c = c.subset(&random_subset(c.len(), d.max_sentences, d.sample_seed));
    }
    let repairs = c.repair();
    if !repairs.is_empty() {
        obs.on(TrainEvent::Message(format!(
            "{src}: repaired {} invalid tags in {} sentences ({:?})",
            repairs.tags, repairs.sentences, repairs.by_kind
        )));
    }
    c
}

pub(super) fn prepare(
    config: &RunConfig,
    hub: &Hub,
    obs: &mut dyn Observer,
) -> anyhow::Result<Prepared> {
    let load = |s: &String| {
        load_corpus(s, config.data.format, hub).with_context(|| format!("loading {s}"))
    };
    let mut train = Vec::new();
    for src in &config.data.train {
        train.push(training_corpus(src, load(src)?, config, obs));
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
pub(super) fn build_model(
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

fn encode_stage(step: &TrainStep, corpora: &[Corpus]) -> anyhow::Result<Vec<Example>> {
    let mut out = Vec::new();
    let mut n = 0;
    for c in corpora {
        let mode = align_mode(c);
        for s in &c.sentences {
            let ex = step
                .encode(n, &s.tokens, &s.tags, mode)
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
