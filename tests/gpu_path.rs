//! The path CUDA takes, tested on the CPU (`NERLAB_GPU_PATH`, docs/RELIABILITY.md): candle's ops
//! and autograd instead of the fused kernels and their taped backward, tensor AdamW instead of
//! the host loops, dense embedding updates; in f32, and in bf16 with f32 master weights. The same
//! recipe trained on each path reaches the same dev F1 as the fast path, within a stated
//! tolerance: f32 differs only in the order of floating-point sums, bf16 in every rounding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device};

/// The recipe: the character model on the built-in corpus, 12 epochs.
fn config() -> String {
    common::demo_char_run(5, 64, 12, 0.005, 0)
}

/// Trains the recipe as run `name` with `NERLAB_GPU_PATH` set to `path` (or unset) and `extra`
/// flags; its dev F1.
fn best_f1(dir: &common::TempDir, name: &str, path: Option<&str>, extra: &[&str]) -> f64 {
    let config = dir.write("run.toml", config().as_bytes());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nerlab"));
    cmd.args(["train", "--quiet", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(dir.path("runs"))
        .args(["--name", name])
        .args(extra);
    match path {
        Some(p) => cmd.env("NERLAB_GPU_PATH", p),
        None => cmd.env_remove("NERLAB_GPU_PATH"),
    };
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path("runs").join(name).join("report.json")).unwrap(),
    )
    .unwrap();
    report["dev"]["micro"]["f1"].as_f64().expect("a dev F1")
}

fn weight_dtype(run: &Path) -> candle_core::DType {
    let st =
        candle_core::safetensors::load(run.join("best/model.safetensors"), &Device::Cpu).unwrap();
    let dtypes: std::collections::BTreeSet<String> =
        st.values().map(|t| format!("{:?}", t.dtype())).collect();
    assert_eq!(dtypes.len(), 1, "{dtypes:?}");
    st.values().next().unwrap().dtype()
}

#[test]
fn the_gpu_path_trains_to_the_fast_paths_dev_f1_in_f32_and_bf16() {
    let dir = common::TempDir::new("gpu-path");
    let fast = best_f1(&dir, "fast", None, &[]);
    let f32_path = best_f1(&dir, "f32", Some("f32"), &[]);
    let bf16_path = best_f1(&dir, "bf16", Some("bf16"), &[]);
    eprintln!("dev F1: fast {fast:.4}, GPU path f32 {f32_path:.4}, bf16 {bf16_path:.4}");
    assert!(
        fast > 0.1,
        "the recipe must learn something to compare: {fast}"
    );
    assert!(
        (f32_path - fast).abs() <= F32_TOLERANCE,
        "f32: {f32_path} vs {fast}"
    );
    assert!(
        (bf16_path - fast).abs() <= BF16_TOLERANCE,
        "bf16: {bf16_path} vs {fast}"
    );
    assert_eq!(weight_dtype(&dir.path("runs/fast")), DType::F32);
    assert_eq!(weight_dtype(&dir.path("runs/f32")), DType::F32);
    assert_eq!(weight_dtype(&dir.path("runs/bf16")), DType::BF16);
}

/// Dev F1 tolerances against the fast path (absolute): f32 changes only the order of sums; bf16
/// rounds every product to 8 bits of mantissa.
const F32_TOLERANCE: f64 = 0.02;
const BF16_TOLERANCE: f64 = 0.06;

/// On a CUDA build, the same recipe on the GPU itself (`NERLAB_TEST_DEVICE`, default cuda:0):
/// what `scripts/gpu_check.sh` runs on a machine with an NVIDIA GPU. Compiled only with
/// `--features cuda`, so CPU builds have nothing to skip.
#[cfg(feature = "cuda")]
#[test]
fn the_recipe_trains_on_the_gpu_to_the_cpu_dev_f1() {
    let device = std::env::var("NERLAB_TEST_DEVICE").unwrap_or_else(|_| "cuda:0".into());
    let dir = common::TempDir::new("gpu-device");
    let cpu = best_f1(&dir, "cpu", None, &[]);
    let gpu = best_f1(&dir, "gpu", None, &["--device", &device]);
    eprintln!("dev F1: CPU {cpu:.4}, {device} {gpu:.4}");
    assert!(
        (gpu - cpu).abs() <= BF16_TOLERANCE,
        "{device}: {gpu} vs CPU {cpu}"
    );
    assert_eq!(weight_dtype(&dir.path("runs/gpu")), DType::BF16);
}
