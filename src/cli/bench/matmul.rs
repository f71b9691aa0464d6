//! The machine's f32 matrix-product rate at a model's shapes: the floor every speed figure in
//! docs/PERFORMANCE.md is measured against.

use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::Serialize;

use super::BenchArgs;
use crate::data::hub::Hub;
use crate::train::sources::resolve_model;

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
pub(super) fn matmul_rate(a: &BenchArgs, threads: usize) -> anyhow::Result<MatmulResult> {
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
