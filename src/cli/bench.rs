//! `nerlab bench`: training and tagging throughput, single-sentence latency and peak memory on real
//! sentences, for the character model or a pretrained encoder. Targets and comparisons with
//! PyTorch live in `bench/` and docs/PERFORMANCE.md.
//!
//! ```text
//! nerlab bench --model DIR|char --task train|tag --data CORPUS --batch-size 16 --threads 2 --steps 20 --json
//! ```

use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use clap::Args;
use serde::Serialize;

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

/// The optimizer settings of the train task (AdamW; no decay on biases and LayerNorm).
const BENCH_LR: f64 = 5e-5;
const BENCH_WEIGHT_DECAY: f64 = 0.01;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// char, a model folder, hf:<repo> or a preset.
    #[arg(long, default_value = "char")]
    pub model: String,
    /// train (forward + backward + AdamW step), tag (inference), ui (workbench frame time
    /// while the demo preset trains), or matmul (the machine's f32 matrix-product rate at the
    /// model's shapes).
    #[arg(long, default_value = "train")]
    pub task: String,
    /// Sentences to use (a corpus path or any data source).
    #[arg(long, default_value = "builtin:demo/all")]
    pub data: String,
    /// How long the ui task measures frames.
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed steps (batches), after two warm-up steps.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Length-bucketed batches (less padding).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub bucket: bool,
    #[arg(long, default_value = "softmax")]
    pub head: String,
    /// Row-sparse word-embedding updates (what training on the CPU uses); false measures the dense
    /// update.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub sparse_embedding: bool,
    /// Single-sentence latency measurements (tag task).
    #[arg(long, default_value_t = 100)]
    pub latency_samples: usize,
    #[arg(long)]
    pub json: bool,
    /// Write the timed batches (token ids and labels, -100 where untrained) and the latency
    /// sentences as JSON, so `bench/reference.py` can do exactly the same work in PyTorch.
    #[arg(long)]
    pub dump_batches: Option<std::path::PathBuf>,
    /// Train with every dropout probability at 0, so that a training run is deterministic and
    /// its per-step losses (`losses` in the JSON) can be compared with `bench/reference.py`'s on
    /// the same batches and initial weights (`bench/trajectory.sh`).
    #[arg(long)]
    pub no_dropout: bool,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub model: String,
    pub task: String,
    pub threads: usize,
    pub batch_size: usize,
    pub steps: usize,
    pub sentences_per_sec: f64,
    pub tokens_per_sec: f64,
    pub latency_ms: Option<Latency>,
    pub peak_rss_bytes: u64,
    /// Share of a training step spent in forward, backward and the optimizer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase_ms: Option<Phases>,
    /// The training loss of every step, warm-up steps included (train task).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub losses: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub struct Phases {
    pub forward: f64,
    pub backward: f64,
    pub optimizer: f64,
}

/// Peak resident set size of this process (Linux `VmHWM`), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

pub fn run(a: &BenchArgs) -> anyhow::Result<()> {
    if a.task == "ui" {
        let s = crate::ui::bench::frame_times(a.seconds, a.threads)?;
        if a.json {
            println!("{}", serde_json::to_string(&s)?);
        } else {
            println!(
                "UI frames while training ({} training threads, {} steps in {:.0} s): {} frames, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                s.training_threads,
                s.training_steps,
                s.seconds,
                s.frames,
                s.p50_ms,
                s.p99_ms,
                s.max_ms
            );
            for (panel, p99) in &s.per_panel_p99_ms {
                println!("  {panel:<12} p99 {p99:.2} ms");
            }
        }
        return Ok(());
    }
    let threads = crate::model::device::default_threads(a.threads);
    if a.task == "matmul" {
        let r = crate::model::device::with_threads(threads, || matmul_rate(a, threads))??;
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "f32 matmul, {} rows, {} threads: {}; one encoder layer's products {:.1} GFLOP/s",
                r.rows,
                r.threads,
                r.shapes
                    .iter()
                    .map(|s| format!("{}x{} {:.1} GFLOP/s", s.k, s.n, s.gflops_per_sec))
                    .collect::<Vec<_>>()
                    .join(", "),
                r.layer_gflops_per_sec
            );
        }
        return Ok(());
    }
    let r = crate::model::device::with_threads(threads, || bench(a, threads))??;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} {} x{} threads, batch {}: {:.1} sentences/s, {:.0} tokens/s{}, peak RSS {:.0} MiB",
            r.model,
            r.task,
            r.threads,
            r.batch_size,
            r.sentences_per_sec,
            r.tokens_per_sec,
            r.latency_ms.as_ref().map_or(String::new(), |l| format!(
                ", latency p50 {:.2} ms p99 {:.2} ms",
                l.p50, l.p99
            )) + &r.phase_ms.as_ref().map_or(String::new(), |p| format!(
                " (a step: forward {:.0} ms, backward {:.0} ms, optimizer {:.0} ms)",
                p.forward, p.backward, p.optimizer
            )),
            r.peak_rss_bytes as f64 / (1024.0 * 1024.0)
        );
    }
    Ok(())
}

fn bench(a: &BenchArgs, threads: usize) -> anyhow::Result<BenchResult> {
    let corpus = load_corpus(&a.data, None, &Hub::from_env(true))
        .with_context(|| format!("reading {}", a.data))?;
    let labels = bio_labels(
        corpus
            .sentences
            .iter()
            .flat_map(|s| s.tags.iter().map(String::as_str)),
    );
    let mode = if corpus.format.char_level() {
        AlignMode::Chars
    } else {
        AlignMode::Words
    };
    let mut backbone = match resolve_model(&a.model, &Hub::from_env(true))? {
        Some(dir) => Backbone::pretrained(&dir, DType::F32, &Device::Cpu, 0)?,
        None => {
            let vocab = CharVocab::build(
                corpus
                    .sentences
                    .iter()
                    .flat_map(|s| s.tokens.iter().map(String::as_str)),
                1,
            );
            Backbone::char(vocab, CharModelSize::default(), DType::F32, &Device::Cpu, 0)?
        }
    };
    let mut spec = ModelSpec {
        head: a.head.parse().map_err(anyhow::Error::msg)?,
        ..ModelSpec::default()
    };
    if a.no_dropout {
        let c = &mut backbone.encoder.config;
        (c.hidden_dropout_prob, c.attention_probs_dropout_prob) = (0.0, 0.0);
        spec.head_dropout = 0.0;
    }
    let mut model = NerModel::new(backbone, spec, labels, mode)?;
    model
        .backbone
        .encoder
        .set_sparse_embedding(a.sparse_embedding);
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
    let mut sentences = 0;
    let mut tokens = 0;
    let mut elapsed = 0.0;
    let mut latency = None;
    // forward, backward, optimizer seconds (train task)
    let mut phases = [0.0f64; 3];
    let mut losses = Vec::new();
    match a.task.as_str() {
        "train" => {
            let mut step = TrainStep::new(model, BENCH_WEIGHT_DECAY)?;
            let plan = StepPlan {
                lr: BENCH_LR,
                head_lr: BENCH_LR,
                clip_norm: 1.0,
                ..StepPlan::default()
            };
            for (k, idx) in batches[..needed].iter().enumerate() {
                let ex: Vec<&Example> = idx.iter().map(|&i| &examples[i]).collect();
                let out = step.step(std::slice::from_ref(&ex), None, &plan, k + 1)?;
                losses.push(out.loss);
                if k >= warmup {
                    let t = out.timing;
                    phases[0] += t.forward_secs;
                    phases[1] += t.backward_secs;
                    phases[2] += t.optimizer_secs;
                    elapsed += t.forward_secs + t.backward_secs + t.optimizer_secs;
                    sentences += out.sentences;
                    tokens += out.tokens;
                }
            }
        }
        "tag" => {
            // Inference as the tagger runs it (weights in their inference layout).
            model.freeze()?;
            for (k, idx) in batches[..needed].iter().enumerate() {
                let ex: Vec<&Example> = idx.iter().map(|&i| &examples[i]).collect();
                let start = Instant::now();
                let batch = model.batch(&ex, None)?;
                std::hint::black_box(model.predict_batch(&batch)?);
                if k >= warmup {
                    elapsed += start.elapsed().as_secs_f64();
                    sentences += ex.len();
                    tokens += ex.iter().map(|e| e.ids.len()).sum::<usize>();
                }
            }
            let mut times = Vec::new();
            for e in examples.iter().take(a.latency_samples) {
                let start = Instant::now();
                let batch = model.batch(&[e], None)?;
                std::hint::black_box(model.predict_batch(&batch)?);
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            latency = Some(Latency {
                p50: percentile(&times, 50.0),
                p99: percentile(&times, 99.0),
            });
        }
        other => anyhow::bail!("unknown task {other:?}: train, tag, ui or matmul"),
    }
    Ok(BenchResult {
        model: a.model.clone(),
        task: a.task.clone(),
        threads,
        batch_size: a.batch_size,
        steps: needed.saturating_sub(warmup),
        sentences_per_sec: sentences as f64 / elapsed.max(1e-9),
        tokens_per_sec: tokens as f64 / elapsed.max(1e-9),
        latency_ms: latency,
        peak_rss_bytes: peak_rss_bytes(),
        phase_ms: (a.task == "train").then(|| {
            let n = needed.saturating_sub(warmup).max(1) as f64;
            Phases {
                forward: phases[0] * 1e3 / n,
                backward: phases[1] * 1e3 / n,
                optimizer: phases[2] * 1e3 / n,
            }
        }),
        losses,
    })
}

#[derive(Debug, Serialize)]
pub struct MatmulShape {
    pub k: usize,
    pub n: usize,
    pub gflops_per_sec: f64,
}

#[derive(Debug, Serialize)]
pub struct MatmulResult {
    pub rows: usize,
    pub threads: usize,
    pub shapes: Vec<MatmulShape>,
    /// The rate of one encoder layer's products (four hidden x hidden, hidden x intermediate,
    /// intermediate x hidden): what bounds the encoder's speed.
    pub layer_gflops_per_sec: f64,
}

/// The machine's f32 matrix-product rate at the encoder's shapes (`--model`'s hidden and
/// intermediate sizes, multilingual-e5-small's 384 and 1536 by default) with
/// `--batch-size * 32` rows: the "floor" of docs/PERFORMANCE.md.
fn matmul_rate(a: &BenchArgs, threads: usize) -> anyhow::Result<MatmulResult> {
    let (h, i) = match resolve_model(&a.model, &Hub::from_env(true))? {
        Some(dir) => {
            let c: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
            let get = |k: &str, d: u64| c.get(k).and_then(serde_json::Value::as_u64).unwrap_or(d);
            (
                get("hidden_size", 384) as usize,
                get("intermediate_size", 1536) as usize,
            )
        }
        None => (384, 1536),
    };
    let m = a.batch_size * 32;
    let dev = Device::Cpu;
    let mut shapes = Vec::new();
    let mut layer_time = 0.0;
    for (k, n, per_layer) in [(h, h, 4.0), (h, i, 1.0), (i, h, 1.0)] {
        let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (k, n), &dev)?;
        std::hint::black_box(x.matmul(&w)?);
        let start = Instant::now();
        let mut reps = 0usize;
        while start.elapsed().as_secs_f64() < 0.5 {
            std::hint::black_box(x.matmul(&w)?);
            reps += 1;
        }
        let per = start.elapsed().as_secs_f64() / reps as f64;
        layer_time += per_layer * per;
        shapes.push(MatmulShape {
            k,
            n,
            gflops_per_sec: 2.0 * (m * k * n) as f64 / per / 1e9,
        });
    }
    let layer_flops = 2.0 * m as f64 * (4 * h * h + 2 * h * i) as f64;
    Ok(MatmulResult {
        rows: m,
        threads,
        shapes,
        layer_gflops_per_sec: layer_flops / layer_time / 1e9,
    })
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
