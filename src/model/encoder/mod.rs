//! The BERT-family encoder (Devlin et al. 2019, "BERT"; Clark et al. 2020, "ELECTRA"; Liu et al.
//! 2019, "RoBERTa"; Conneau et al. 2020, "XLM-R"), written here rather than taken from
//! candle-transformers because that BERT has no working dropout and discards attention weights.
//!
//! One struct covers the three layouts: ELECTRA adds `embeddings_project` when its embeddings are
//! narrower than the hidden size; RoBERTa/XLM-R number positions from `pad_token_id + 1` and have a
//! single token type. Weight names are the checkpoints' own (see `params.rs`).
//!
//! One file per job, all on the one [`Encoder`] whose fields only this folder sees: here the
//! struct, loading and the training switches; `embeddings.rs` the input rows (word, added,
//! position and token-type embeddings) and the attention mask's bias; `reference.rs` the forward
//! pass in candle ops (the entry points, and the autograd reference); `fused.rs` the fast forward
//! pass with the CPU kernels that all inference uses, which records a tape in training; and
//! `backward.rs` the hand-derived backward pass over that tape.

mod backward;
mod embeddings;
mod fused;
mod reference;

use std::sync::{Arc, Mutex};

use candle_core::{Result as CResult, Tensor};

use super::config::{Activation, EncoderConfig};
use super::ops::{DropoutRng, Linear, layer_norm};
use super::params::{Init, Params};
use backward::Tape;
use embeddings::Embeddings;
pub use embeddings::SparseRows;

/// A LayerNorm's parameters.
#[derive(Debug, Clone)]
pub struct Norm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl Norm {
    pub fn load(p: &Params, width: usize, eps: f64) -> anyhow::Result<Self> {
        Ok(Self {
            weight: p.get(width, "weight", Init::Ones)?,
            bias: p.get(width, "bias", Init::Zeros)?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// `Linear` from `<prefix>.weight` (out, in) and `<prefix>.bias`, HF-initialized when new.
pub fn linear(p: &Params, in_dim: usize, out_dim: usize, std: f64) -> anyhow::Result<Linear> {
    Ok(Linear::new(
        p.get((out_dim, in_dim), "weight", Init::Normal(std))?,
        Some(p.get(out_dim, "bias", Init::Zeros)?),
    ))
}

pub fn activate(x: &Tensor, act: Activation) -> CResult<Tensor> {
    match act {
        Activation::Gelu if super::kernels::applies(x) => super::kernels::gelu_erf(x),
        Activation::Gelu => x.gelu_erf(),
        Activation::GeluTanh => x.gelu(),
        Activation::Relu => x.relu(),
    }
}

#[derive(Debug, Clone)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    intermediate: Linear,
    output: Linear,
    out_norm: Norm,
    /// Its weights in the layout inference uses, made by [`Encoder::freeze`]; unfrozen models
    /// build them per pass (see `fused.rs`).
    inference: Option<fused::InferenceWeights>,
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// (batch, seq, hidden)
    pub hidden: Tensor,
    /// Per layer, (batch, heads, seq, seq) attention probabilities (before dropout), when asked.
    pub attentions: Vec<Tensor>,
}

/// A BERT-family encoder.
#[derive(Debug, Clone)]
pub struct Encoder {
    config: EncoderConfig,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    rng: DropoutRng,
    /// Row-sparse word-embedding gradients in training (see [`Encoder::set_sparse_embedding`]).
    sparse_embedding: bool,
    sparse: Arc<Mutex<Vec<SparseRows>>>,
    /// Training passes run with the hand-derived backward (`backward.rs`) where it applies.
    taped: bool,
    tapes: Arc<Mutex<Vec<Tape>>>,
    /// Weights copied for inference (see [`Encoder::freeze`]).
    frozen: bool,
}

impl Encoder {
    /// Its architecture (`config.json`).
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Sets every dropout probability of the encoder to 0 (deterministic training passes, for
    /// comparing a trajectory step by step with PyTorch).
    pub fn disable_dropout(&mut self) {
        self.config.hidden_dropout_prob = 0.0;
        self.config.attention_probs_dropout_prob = 0.0;
    }

    /// Loads every encoder tensor (they must all be in the checkpoint unless `params` allows init).
    pub fn load(params: &Params, config: &EncoderConfig, rng: DropoutRng) -> anyhow::Result<Self> {
        let c = config;
        let std = c.initializer_range;
        let h = c.hidden_size;
        let embeddings = Embeddings::load(params, c)?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = params.pp(format!("encoder.layer.{i}"));
            let a = p.pp("attention");
            layers.push(Layer {
                query: linear(&a.pp("self.query"), h, h, std)?,
                key: linear(&a.pp("self.key"), h, h, std)?,
                value: linear(&a.pp("self.value"), h, h, std)?,
                attn_out: linear(&a.pp("output.dense"), h, h, std)?,
                attn_norm: Norm::load(&a.pp("output.LayerNorm"), h, c.layer_norm_eps)?,
                intermediate: linear(&p.pp("intermediate.dense"), h, c.intermediate_size, std)?,
                output: linear(&p.pp("output.dense"), c.intermediate_size, h, std)?,
                out_norm: Norm::load(&p.pp("output.LayerNorm"), h, c.layer_norm_eps)?,
                inference: None,
            });
        }
        Ok(Self {
            config: c.clone(),
            embeddings,
            layers,
            rng,
            sparse_embedding: false,
            sparse: Arc::new(Mutex::new(Vec::new())),
            taped: true,
            tapes: Arc::new(Mutex::new(Vec::new())),
            frozen: false,
        })
    }

    /// In training, look word embeddings up through a small leaf variable holding only the rows
    /// a batch uses, so the (vocabulary x width) matrix never enters the autograd graph: no dense
    /// gradient is built for it, and the optimizer updates just those rows (see `train::optim`).
    /// The gathered rows are collected with [`take_sparse`](Self::take_sparse) after backward.
    pub fn set_sparse_embedding(&mut self, on: bool) {
        self.sparse_embedding = on;
    }

    pub fn sparse_embedding(&self) -> bool {
        self.sparse_embedding
    }

    /// Prepares for inference only: stores transposed copies of the weights (see
    /// [`Linear::freeze`]), the query, key and value projections as one (see `fused.rs`).
    /// Training such an encoder is refused.
    pub fn freeze(&mut self) -> anyhow::Result<()> {
        if let Some(p) = self.embeddings.project.as_mut() {
            p.freeze()?;
        }
        for l in &mut self.layers {
            // Query, key and value are multiplied together through `inference`; only the path
            // that keeps attention (the workbench's attention view) reads them one by one.
            for lin in [&mut l.attn_out, &mut l.intermediate, &mut l.output] {
                lin.freeze()?;
            }
            l.inference = Some(l.inference_weights(self.config.hidden_size)?);
        }
        self.frozen = true;
        Ok(())
    }

    /// Opt-in int8 inference (`--int8`): the four products of every layer (query, key and value
    /// as one, and one by one for the path that returns attention; attention output;
    /// intermediate; output) take int8 weights, quantized here per
    /// output channel, and activations quantized per row as they arrive (`kernels/int8.rs`). The
    /// embeddings, norms, attention itself and the heads stay f32. Only a frozen f32 model on
    /// the CPU can be quantized.
    pub fn quantize_int8(&mut self) -> anyhow::Result<()> {
        if !self.frozen {
            anyhow::bail!("int8: only a model frozen for inference can be quantized");
        }
        let w = &self.embeddings.word;
        if !crate::model::kernels::applies(w) || w.dtype() != candle_core::DType::F32 {
            anyhow::bail!(
                "int8: quantized inference runs on the CPU's fast path in f32 only (not on a GPU, \
                 not with NERLAB_GPU_PATH)"
            );
        }
        for l in &mut self.layers {
            // Query, key and value also one by one, for the path that returns attention.
            for lin in [
                &mut l.query,
                &mut l.key,
                &mut l.value,
                &mut l.attn_out,
                &mut l.intermediate,
                &mut l.output,
            ] {
                lin.quantize()?;
            }
            let qkv = l.qkv_int8()?;
            if let Some(w) = l.inference.as_mut() {
                w.qkv_int8 = Some(qkv);
            }
        }
        Ok(())
    }

    /// Whether training on the CPU uses the hand-derived backward pass of `backward.rs` (the
    /// default) or candle's autograd (the reference it is tested against). Either way gradients
    /// come from [`crate::model::ner::NerModel::backward`].
    pub fn set_taped(&mut self, on: bool) {
        self.taped = on;
    }

    fn push_tape(&self, tape: Tape) {
        if let Ok(mut v) = self.tapes.lock() {
            v.push(tape);
        }
    }

    fn take_tapes(&self) -> Vec<Tape> {
        self.tapes
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    fn push_sparse(&self, rows: SparseRows) {
        if let Ok(mut list) = self.sparse.lock() {
            list.push(rows);
        }
    }

    /// Forgets recorded training passes (a step abandoned before its backward pass).
    pub fn discard_pending(&self) {
        self.take_tapes();
        self.take_sparse();
    }

    /// The rows gathered by training forward passes since the last call.
    pub fn take_sparse(&self) -> Vec<SparseRows> {
        self.sparse
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    pub fn dropout_rng(&self) -> &DropoutRng {
        &self.rng
    }

    /// The hidden size of the output.
    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }
}
