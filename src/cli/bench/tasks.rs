//! The train and tag tasks: a model over a corpus's sentences, timed batch by batch after a
//! warm-up, and the batches written out for `bench/reference.py`.

use std::time::Instant;

use anyhow::Context;
use candle_core::DType;

use super::{
    BENCH_LR, BENCH_WEIGHT_DECAY, BenchArgs, BenchResult, Latency, Phases, peak_rss_bytes,
};
use crate::data::Corpus;
use crate::data::hub::Hub;
use crate::metrics::percentile;
use crate::model::align::AlignMode;
use crate::model::backbone::{Backbone, CharModelSize};
use crate::model::batch::Example;
use crate::model::ner::{ModelSpec, NerModel, bio_labels};
use crate::model::tokenize::CharVocab;
use crate::train::sources::{load_corpus, resolve_model};
use crate::train::step::{StepPlan, TrainStep};
use crate::train::trainer::epoch_batches;

/// The model a bench measures: `a.model` (a pretrained encoder or the character model) with
/// `a.head`, over the corpus's labels; with `--no-dropout` every dropout at 0.
fn bench_model(a: &BenchArgs, corpus: &Corpus, mode: AlignMode) -> anyhow::Result<NerModel> {
    let labels = bio_labels(
        corpus
            .sentences
            .iter()
            .flat_map(|s| s.tags.iter().map(String::as_str)),
    );
    let (device, dtype) = (a.device.device()?, a.device.compute_dtype());
    let mut backbone = match resolve_model(&a.model, &Hub::from_env(true))? {
        Some(dir) => Backbone::pretrained(&dir, dtype, &device, 0)?,
        None => {
            let vocab = CharVocab::build(
                corpus
                    .sentences
                    .iter()
                    .flat_map(|s| s.tokens.iter().map(String::as_str)),
                1,
            );
            Backbone::char(vocab, CharModelSize::default(), dtype, &device, 0)?
        }
    };
    let mut spec = ModelSpec {
        head: a.head.parse().map_err(anyhow::Error::msg)?,
        char_units: a.char_units,
        ..ModelSpec::default()
    };
    if a.no_dropout {
        backbone.encoder.disable_dropout();
        spec.head_dropout = 0.0;
    }
    let mut model = NerModel::new(backbone, spec, labels, mode)?;
    model
        .backbone
        .encoder
        .set_sparse_embedding(a.sparse_embedding && device.is_cpu() && dtype == DType::F32);
    Ok(model)
}

/// What the timed batches (those after the warm-up) measured.
#[derive(Default)]
struct Timed {
    sentences: usize,
    tokens: usize,
    elapsed_secs: f64,
    /// Forward, backward and optimizer seconds (train task).
    phases: [f64; 3],
    losses: Vec<f64>,
    latency: Option<Latency>,
    /// Batches tagged at once (tag task).
    lanes: usize,
}

/// Training steps through the trainer's own [`TrainStep`] (AdamW, clipping at 1).
fn train_task(model: NerModel, batches: &[Vec<&Example>], warmup: usize) -> anyhow::Result<Timed> {
    let mut step = TrainStep::new(model, BENCH_WEIGHT_DECAY)?;
    let plan = StepPlan {
        lr: BENCH_LR,
        head_lr: BENCH_LR,
        clip_norm: 1.0,
        ..StepPlan::default()
    };
    let mut t = Timed::default();
    for (k, ex) in batches.iter().enumerate() {
        let out = step.step(std::slice::from_ref(ex), None, &plan, k + 1)?;
        t.losses.push(out.loss);
        if k >= warmup {
            let p = out.timing;
            t.phases[0] += p.forward_secs;
            t.phases[1] += p.backward_secs;
            t.phases[2] += p.optimizer_secs;
            t.elapsed_secs += p.forward_secs + p.backward_secs + p.optimizer_secs;
            t.sentences += out.sentences;
            t.tokens += out.tokens;
        }
    }
    Ok(t)
}

/// Inference as the tagger runs it (weights in their inference layout), then single-sentence
/// latency over `examples`.
fn tag_task(
    mut model: NerModel,
    batches: &[Vec<&Example>],
    warmup: usize,
    examples: &[Example],
    latency_samples: usize,
    dump: Option<&std::path::Path>,
    int8: bool,
    lanes: Option<usize>,
) -> anyhow::Result<Timed> {
    model.freeze()?;
    if int8 {
        model.quantize_int8()?;
    }
    let mut t = Timed::default();
    let warmup = warmup.min(batches.len());
    for ex in &batches[..warmup] {
        std::hint::black_box(model.predict_batch(&model.batch(ex, None)?)?);
    }
    let timed = &batches[warmup..];
    let start = Instant::now();
    // As `nerlab eval` and `tag` run a corpus: `lanes` batches at once (see `in_lanes`).
    let threads = rayon::current_num_threads();
    let lanes = lanes.unwrap_or_else(|| model.lanes(timed.len()));
    t.lanes = lanes;
    std::hint::black_box(crate::model::device::in_lanes(
        timed,
        lanes,
        threads,
        |ex| Ok(model.predict_batch(&model.batch(ex, None)?)?),
    )?);
    t.elapsed_secs = start.elapsed().as_secs_f64();
    t.sentences = timed.iter().map(Vec::len).sum();
    t.tokens = timed.iter().flatten().map(|e| e.ids.len()).sum();
    let mut times = Vec::new();
    for e in examples.iter().take(latency_samples) {
        let start = Instant::now();
        let batch = model.batch(&[e], None)?;
        std::hint::black_box(model.predict_batch(&batch)?);
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    if let Some(path) = dump {
        dump_logits(path, &model, &batches[warmup.min(batches.len())..], t.lanes)?;
    }
    times.sort_by(f64::total_cmp);
    t.latency = Some(Latency {
        p50: percentile(&times, 50.0),
        p99: percentile(&times, 99.0),
    });
    Ok(t)
}

pub(super) fn bench(a: &BenchArgs, threads: usize) -> anyhow::Result<BenchResult> {
    let corpus = load_corpus(&a.data, None, &Hub::from_env(true))
        .with_context(|| format!("reading {}", a.data))?;
    let mode = AlignMode::for_format(corpus.format, a.char_units);
    let model = bench_model(a, &corpus, mode)?;
    let mut examples: Vec<Example> = Vec::new();
    for (i, s) in corpus.sentences.iter().enumerate() {
        examples.extend(model.encode_as(i, &s.tokens, Some(&s.tags), mode)?.1);
    }
    let lengths: Vec<usize> = examples.iter().map(|e| e.ids.len()).collect();
    let batches = epoch_batches(&lengths, a.batch_size, 0, 0, 0, a.bucket);
    let warmup = 2;
    let needed = (a.steps + warmup).min(batches.len());
    if let Some(path) = &a.dump_batches {
        dump_batches(path, &examples, &batches[..needed], warmup, a, &model)?;
    }
    let timed_batches: Vec<Vec<&Example>> = batches[..needed]
        .iter()
        .map(|idx| idx.iter().map(|&i| &examples[i]).collect())
        .collect();
    let t = match a.task.as_str() {
        "train" => train_task(model, &timed_batches, warmup)?,
        "tag" => tag_task(
            model,
            &timed_batches,
            warmup,
            &examples,
            a.latency_samples,
            a.dump_logits.as_deref(),
            a.int8,
            a.lanes.map(|l| l.max(1)),
        )?,
        other => anyhow::bail!("unknown task {other:?}: train, tag, ui or matmul"),
    };
    let steps = needed.saturating_sub(warmup);
    let per_step_ms = |secs: f64| secs * 1e3 / steps.max(1) as f64;
    Ok(BenchResult {
        model: a.model.clone(),
        task: a.task.clone(),
        threads,
        lanes: t.lanes.max(1),
        batch_size: a.batch_size,
        steps,
        sentences_per_sec: t.sentences as f64 / t.elapsed_secs.max(1e-9),
        tokens_per_sec: t.tokens as f64 / t.elapsed_secs.max(1e-9),
        latency_ms: t.latency,
        peak_rss_bytes: peak_rss_bytes(),
        phase_ms: (a.task == "train").then(|| Phases {
            forward: per_step_ms(t.phases[0]),
            backward: per_step_ms(t.phases[1]),
            optimizer: per_step_ms(t.phases[2]),
        }),
        losses: t.losses,
    })
}

/// Every unit's class scores and predicted class, batch by batch and sentence by sentence (see
/// `--dump-logits`), computed again after the timing so that writing them costs it nothing.
fn dump_logits(
    path: &std::path::Path,
    model: &NerModel,
    batches: &[Vec<&Example>],
    lanes: usize,
) -> anyhow::Result<()> {
    // In lanes as timed, so the comparison with the other engines covers that path.
    let scored =
        crate::model::device::in_lanes(batches, lanes, rayon::current_num_threads(), |ex| {
            Ok(model.predict_batch_scores(&model.batch(ex, None)?)?)
        })?;
    let mut out = Vec::with_capacity(batches.len());
    for (preds, scores) in scored {
        let sentences: Vec<serde_json::Value> = preds
            .iter()
            .zip(scores)
            .map(|(p, s)| {
                let n = p.len();
                serde_json::json!({
                    "pred": p.iter().map(|&(y, _)| y).collect::<Vec<_>>(),
                    "scores": s.into_iter().take(n).collect::<Vec<_>>(),
                })
            })
            .collect();
        out.push(sentences);
    }
    std::fs::write(
        path,
        serde_json::to_vec(&serde_json::json!({ "batches": out }))?,
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The work of a bench run as plain ids, for the PyTorch reference (see `--dump-batches`).
fn dump_batches(
    path: &std::path::Path,
    examples: &[Example],
    batches: &[Vec<usize>],
    warmup: usize,
    a: &BenchArgs,
    model: &NerModel,
) -> anyhow::Result<()> {
    let labels = |e: &Example| -> Vec<i64> {
        let mut l = vec![-100i64; e.ids.len()];
        for (&pos, t) in e.units.iter().zip(&e.targets) {
            if let Some(t) = t {
                l[pos] = i64::from(*t);
            }
        }
        l
    };
    let batch_json: Vec<serde_json::Value> = batches
        .iter()
        .map(|idx| {
            serde_json::json!({
                "ids": idx.iter().map(|&i| &examples[i].ids).collect::<Vec<_>>(),
                "labels": idx.iter().map(|&i| labels(&examples[i])).collect::<Vec<_>>(),
                "units": idx.iter().map(|&i| &examples[i].units).collect::<Vec<_>>(),
            })
        })
        .collect();
    let latency: Vec<&Vec<u32>> = examples
        .iter()
        .take(a.latency_samples)
        .map(|e| &e.ids)
        .collect();
    // The head's initial weights (it is the only part not loaded from the model folder), so the
    // reference can start from the same point.
    let mut head = serde_json::Map::new();
    for (name, var) in model.params().vars() {
        if let Some(rest) = name.strip_prefix("ner.") {
            let t = var.as_tensor();
            head.insert(
                rest.to_string(),
                serde_json::json!({
                    "shape": t.dims(),
                    "data": t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
                }),
            );
        }
    }
    let doc = serde_json::json!({
        "task": a.task,
        "warmup": warmup,
        "num_labels": model.labels.len(),
        "dropout": !a.no_dropout,
        "lr": BENCH_LR,
        "weight_decay": BENCH_WEIGHT_DECAY,
        "head": head,
        "batches": batch_json,
        "latency": latency,
    });
    std::fs::write(path, serde_json::to_vec(&doc)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
