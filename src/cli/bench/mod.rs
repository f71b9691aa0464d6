//! `nerlab bench`: training and tagging throughput, single-sentence latency and peak memory on real
//! sentences, for the character model or a pretrained encoder. Targets and comparisons with
//! PyTorch live in `bench/` and docs/PERFORMANCE.md.
//!
//! ```text
//! nerlab bench --model DIR|char --task train|tag --data CORPUS --batch-size 16 --threads 2 --steps 20 --json
//! ```

mod matmul;
mod tasks;

use clap::Args;
use serde::Serialize;

use matmul::matmul_rate;
use tasks::bench;

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
    /// Where the train and tag tasks run: cpu, or cuda:N with a `--features cuda` build (bf16
    /// compute, as training there does).
    #[arg(long, default_value = "cpu", value_parser = |s: &str| s.parse::<crate::model::device::DeviceSpec>())]
    pub device: crate::model::device::DeviceSpec,
    /// Timed steps (batches), after two warm-up steps.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Length-bucketed batches (less padding).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub bucket: bool,
    #[arg(long, default_value = "softmax")]
    pub head: String,
    /// Character-level corpora (KLUE): subwords (every subword a unit) or characters (every
    /// character its own word).
    #[arg(long, default_value = "subwords", value_parser = |s: &str| s.parse::<crate::model::align::CharUnits>())]
    pub char_units: crate::model::align::CharUnits,
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
    /// Tag task: after timing, write every timed unit's class scores and predicted class as JSON
    /// (`{"batches": [[{"scores": [[f32]], "pred": [u32]}]]}`, one entry per sentence), so
    /// `bench/compare.py` can check that the engines it times give the same answers.
    #[arg(long)]
    pub dump_logits: Option<std::path::PathBuf>,
    /// Train with every dropout probability at 0, so that a training run is deterministic and
    /// its per-step losses (`losses` in the JSON) can be compared with `bench/reference.py`'s on
    /// the same batches and initial weights (`bench/trajectory.sh`).
    #[arg(long)]
    pub no_dropout: bool,
    /// Tag with int8 weights (`--task tag`; see `nerlab tag --int8`).
    #[arg(long)]
    pub int8: bool,
    /// Batches tagged at once, the threads shared among them (`--task tag`; default: as
    /// `nerlab eval`, `tag` and a run's dev evaluation do, `NerModel::lanes`); 1: one batch
    /// after another on every thread.
    #[arg(long)]
    pub lanes: Option<usize>,
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
    /// Batches tagged at once (tag task; 1 otherwise).
    pub lanes: usize,
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

/// Prints `r` as one JSON line, or as the line `human` writes.
fn report<T: Serialize>(r: &T, json: bool, human: impl FnOnce(&T) -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!("{}", human(r));
    }
    Ok(())
}

pub fn run(a: &BenchArgs) -> anyhow::Result<()> {
    if a.int8 && a.task != "tag" {
        anyhow::bail!(
            "--int8 applies to --task tag only (training and the other tasks run in f32)"
        );
    }
    if a.task == "ui" {
        let s = crate::ui::bench::frame_times(a.seconds, a.threads)?;
        return report(&s, a.json, |s| {
            let mut text = format!(
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
                text += &format!("\n  {panel:<12} p99 {p99:.2} ms");
            }
            text
        });
    }
    let threads = crate::model::device::default_threads(a.threads);
    if a.task == "matmul" {
        let r = crate::model::device::with_threads(threads, || matmul_rate(a, threads))??;
        return report(&r, a.json, |r| {
            let shapes: Vec<String> = r
                .shapes
                .iter()
                .map(|s| format!("{}x{} {:.1} GFLOP/s", s.k, s.n, s.gflops_per_sec))
                .collect();
            format!(
                "f32 matmul, {} rows, {} threads: {}; one encoder layer's products {:.1} GFLOP/s",
                r.rows,
                r.threads,
                shapes.join(", "),
                r.layer_gflops_per_sec
            )
        });
    }
    let r = crate::model::device::with_threads(threads, || bench(a, threads))??;
    report(&r, a.json, |r| {
        let latency = r.latency_ms.as_ref().map_or(String::new(), |l| {
            format!(", latency p50 {:.2} ms p99 {:.2} ms", l.p50, l.p99)
        });
        let phases = r.phase_ms.as_ref().map_or(String::new(), |p| {
            format!(
                " (a step: forward {:.0} ms, backward {:.0} ms, optimizer {:.0} ms)",
                p.forward, p.backward, p.optimizer
            )
        });
        format!(
            "{} {} x{} threads, batch {}: {:.1} sentences/s, {:.0} tokens/s{latency}{phases}, peak RSS {:.0} MiB",
            r.model,
            r.task,
            r.threads,
            r.batch_size,
            r.sentences_per_sec,
            r.tokens_per_sec,
            r.peak_rss_bytes as f64 / (1024.0 * 1024.0)
        )
    })
}
