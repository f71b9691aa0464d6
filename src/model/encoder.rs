//! The BERT-family encoder (Devlin et al. 2019, "BERT"; Clark et al. 2020, "ELECTRA"; Liu et al.
//! 2019, "RoBERTa"; Conneau et al. 2020, "XLM-R"), written here rather than taken from
//! candle-transformers because that BERT has no working dropout and discards attention weights.
//!
//! One struct covers the three layouts: ELECTRA adds `embeddings_project` when its embeddings are
//! narrower than the hidden size; RoBERTa/XLM-R number positions from `pad_token_id + 1` and have a
//! single token type. Weight names are the checkpoints' own (see `params.rs`).

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result as CResult, Tensor, Var};

use super::config::{Activation, EncoderConfig, Family};
use super::ops::{DropoutRng, Linear, dropout, layer_norm, softmax};
use super::params::{Init, Params, Policy};

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
pub(crate) struct Embeddings {
    pub(crate) word: Tensor,
    /// Rows added to the vocabulary (prompt label words, MANER's fresh token).
    pub(crate) extra: Option<Tensor>,
    pub(crate) position: Tensor,
    pub(crate) token_type: Tensor,
    pub(crate) norm: Norm,
    pub(crate) project: Option<Linear>,
}

#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) query: Linear,
    pub(crate) key: Linear,
    pub(crate) value: Linear,
    pub(crate) attn_out: Linear,
    pub(crate) attn_norm: Norm,
    pub(crate) intermediate: Linear,
    pub(crate) output: Linear,
    pub(crate) out_norm: Norm,
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// (batch, seq, hidden)
    pub hidden: Tensor,
    /// Per layer, (batch, heads, seq, seq) attention probabilities (before dropout), when asked.
    pub attentions: Vec<Tensor>,
}

/// Flat token ids split between the pretrained vocabulary and the added tokens' own matrix. Split
/// on the host: subtracting on a u32 tensor saturates in candle.
pub(crate) struct SplitIds {
    /// Ids into the pretrained matrix (0 at added tokens), on the host.
    pub base: Vec<u32>,
    /// Ids into the added matrix (0 at pretrained tokens).
    pub added: Tensor,
    /// (n, 1): 1 at added tokens, 0 elsewhere, in the embeddings' dtype.
    pub sel: Tensor,
}

impl SplitIds {
    pub fn new(host: &[u32], vocab_size: usize, dtype: DType, dev: &Device) -> CResult<Self> {
        let v = vocab_size as u32;
        let n = host.len();
        let base: Vec<u32> = host.iter().map(|&i| if i < v { i } else { 0 }).collect();
        let added: Vec<u32> = host.iter().map(|&i| i.saturating_sub(v)).collect();
        let sel: Vec<f32> = host.iter().map(|&i| f32::from(u8::from(i >= v))).collect();
        Ok(Self {
            base,
            added: Tensor::from_vec(added, n, dev)?,
            sel: Tensor::from_vec(sel, (n, 1), dev)?.to_dtype(dtype)?,
        })
    }

    /// Each token's row: from `base_rows` or, at added tokens, from `added_rows`.
    pub fn mix(&self, base_rows: &Tensor, added_rows: &Tensor) -> CResult<Tensor> {
        base_rows.broadcast_mul(&self.sel.affine(-1.0, 1.0)?)?
            + added_rows.broadcast_mul(&self.sel)?
    }
}

/// The distinct ids, sorted, and each id's index among them: the rows a row-sparse pass gathers.
pub(crate) fn distinct_rows(ids: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut rows = ids.to_vec();
    rows.sort_unstable();
    rows.dedup();
    let local = ids
        .iter()
        .map(|id| rows.binary_search(id).unwrap_or(0) as u32)
        .collect();
    (rows, local)
}

/// Word-embedding rows gathered for one training forward pass: the rows (token ids) and a leaf
/// variable holding them, whose gradient is the embedding matrix's gradient on those rows.
#[derive(Debug, Clone)]
pub struct SparseRows {
    pub rows: Vec<u32>,
    pub var: Var,
}

/// A BERT-family encoder.
#[derive(Debug, Clone)]
pub struct Encoder {
    pub config: EncoderConfig,
    pub(crate) embeddings: Embeddings,
    pub(crate) layers: Vec<Layer>,
    pub(crate) rng: DropoutRng,
    /// Row-sparse word-embedding gradients in training (see [`Encoder::set_sparse_embedding`]).
    sparse_embedding: bool,
    sparse: Arc<Mutex<Vec<SparseRows>>>,
    /// Training passes run with the hand-derived backward (`tape.rs`) where it applies.
    pub(crate) taped: bool,
    tapes: Arc<Mutex<Vec<super::tape::Tape>>>,
    /// Weights copied for inference (see [`Encoder::freeze`]).
    frozen: bool,
}

impl Encoder {
    /// Loads every encoder tensor (they must all be in the checkpoint unless `params` allows init).
    pub fn load(params: &Params, config: &EncoderConfig, rng: DropoutRng) -> anyhow::Result<Self> {
        let c = config;
        let std = c.initializer_range;
        let e = c.embedding_width();
        let h = c.hidden_size;
        let pe = params.pp("embeddings");
        let embeddings = Embeddings {
            word: pe.get(
                (c.vocab_size, e),
                "word_embeddings.weight",
                Init::Normal(std),
            )?,
            extra: None,
            position: pe.get(
                (c.max_position_embeddings, e),
                "position_embeddings.weight",
                Init::Normal(std),
            )?,
            token_type: pe.get(
                (c.type_vocab_size.max(1), e),
                "token_type_embeddings.weight",
                Init::Normal(std),
            )?,
            norm: Norm::load(&pe.pp("LayerNorm"), e, c.layer_norm_eps)?,
            project: if e != h {
                Some(linear(&params.pp("embeddings_project"), e, h, std)?)
            } else {
                None
            },
        };
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
    /// [`Linear::freeze`]). Training such an encoder is refused.
    pub fn freeze(&mut self) -> anyhow::Result<()> {
        if let Some(p) = self.embeddings.project.as_mut() {
            p.freeze()?;
        }
        for l in &mut self.layers {
            for lin in [
                &mut l.query,
                &mut l.key,
                &mut l.value,
                &mut l.attn_out,
                &mut l.intermediate,
                &mut l.output,
            ] {
                lin.freeze()?;
            }
        }
        self.frozen = true;
        Ok(())
    }

    /// Whether training on the CPU uses the hand-derived backward pass of `tape.rs` (the
    /// default) or candle's autograd (the reference it is tested against). Either way gradients
    /// come from [`crate::model::ner::NerModel::backward`].
    pub fn set_taped(&mut self, on: bool) {
        self.taped = on;
    }

    pub(crate) fn push_tape(&self, tape: super::tape::Tape) {
        if let Ok(mut v) = self.tapes.lock() {
            v.push(tape);
        }
    }

    pub(crate) fn take_tapes(&self) -> Vec<super::tape::Tape> {
        self.tapes
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    pub(crate) fn push_sparse(&self, rows: SparseRows) {
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

    /// Rows of the word-embedding matrix: the pretrained vocabulary plus added tokens.
    pub fn vocab_len(&self) -> usize {
        self.config.vocab_size + self.extra_len()
    }

    pub fn extra_len(&self) -> usize {
        self.embeddings.extra.as_ref().map_or(0, |t| t.dims()[0])
    }

    /// The pretrained word-embedding matrix (vocab, embedding width).
    pub fn word_embeddings(&self) -> &Tensor {
        &self.embeddings.word
    }

    /// The added rows, if any.
    pub fn extra_embeddings(&self) -> Option<&Tensor> {
        self.embeddings.extra.as_ref()
    }

    /// Adds vocabulary rows with ids `vocab_size..`, initialized to `init` (one row each) unless a
    /// saved nerlab checkpoint already holds them.
    pub fn add_tokens(&mut self, params: &Params, init: Vec<Vec<f32>>) -> anyhow::Result<()> {
        let n = init.len();
        if n == 0 {
            return Ok(());
        }
        let e = self.config.embedding_width();
        let rows = params
            .pp("embeddings")
            .with_policy(Policy::LoadOrInit)
            .get_or((n, e).into(), "extra_word_embeddings.weight", |_, _| {
                Ok(init.into_iter().flatten().collect())
            })?;
        self.embeddings.extra = Some(rows);
        Ok(())
    }

    /// Rows of the pretrained vocabulary for flat ids, through a leaf variable when training
    /// with sparse embeddings.
    fn word_rows(&self, flat: &Tensor, train: bool) -> CResult<Tensor> {
        if !(train && self.sparse_embedding) {
            return self.embeddings.word.index_select(flat, 0);
        }
        let host: Vec<u32> = flat.to_vec1()?;
        let (rows, local) = distinct_rows(&host);
        let dev = flat.device();
        let gathered = self
            .embeddings
            .word
            .index_select(&Tensor::from_vec(rows.clone(), rows.len(), dev)?, 0)?
            .detach();
        let var = Var::from_tensor(&gathered)?;
        let out = var
            .as_tensor()
            .index_select(&Tensor::from_vec(local, host.len(), dev)?, 0)?;
        self.push_sparse(SparseRows { rows, var });
        Ok(out)
    }

    /// Embedding rows for `ids` (batch, seq), with added tokens looked up in their own matrix.
    fn lookup(&self, ids: &Tensor, train: bool) -> CResult<Tensor> {
        let (b, s) = ids.dims2()?;
        let flat = ids.flatten_all()?;
        let Some(extra) = &self.embeddings.extra else {
            return self.word_rows(&flat, train)?.reshape((b, s, ()));
        };
        let host: Vec<u32> = flat.to_vec1()?;
        let split = SplitIds::new(
            &host,
            self.config.vocab_size,
            self.embeddings.word.dtype(),
            ids.device(),
        )?;
        let base_ids = Tensor::from_slice(&split.base, split.base.len(), ids.device())?;
        let base_rows = self.word_rows(&base_ids, train)?;
        split
            .mix(&base_rows, &extra.index_select(&split.added, 0)?)?
            .reshape((b, s, ()))
    }

    /// Position ids: `0..seq` (BERT, ELECTRA) or, for RoBERTa, `pad + 1 + i` over real tokens and
    /// `pad` over padding (HF's `create_position_ids_from_input_ids`, taken from the mask so a
    /// wrong `pad_token_id` in a config cannot shift them).
    pub(crate) fn positions(&self, mask: &Tensor) -> CResult<Tensor> {
        let (b, s) = mask.dims2()?;
        let ids: Vec<u32> = match self.config.family() {
            Family::Roberta => {
                let pad = self.config.pad_token_id.unwrap_or(1) as u32;
                let m: Vec<Vec<f32>> = mask.to_dtype(DType::F32)?.to_vec2()?;
                m.iter()
                    .flat_map(|row| {
                        let mut count = 0u32;
                        row.iter()
                            .map(|&x| {
                                if x > 0.5 {
                                    count += 1;
                                    pad + count
                                } else {
                                    pad
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect()
            }
            _ => (0..b).flat_map(|_| 0..s as u32).collect(),
        };
        Tensor::from_vec(ids, (b, s), mask.device())
    }

    /// Hidden states for `ids` (batch, seq) under `mask` (batch, seq; 1 = token, 0 = padding), with
    /// dropout when `train`.
    pub fn forward_t(&self, ids: &Tensor, mask: &Tensor, train: bool) -> CResult<Tensor> {
        Ok(self.forward_full(ids, mask, train, false)?.hidden)
    }

    /// Like [`forward_t`](Self::forward_t), optionally returning every layer's attention.
    pub fn forward_full(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        train: bool,
        attention: bool,
    ) -> CResult<EncoderOutput> {
        let c = &self.config;
        let (b, s) = ids.dims2()?;
        if s > c.max_tokens() {
            candle_core::bail!(
                "sequence of {s} tokens is longer than the model's {} positions; split it into windows",
                c.max_tokens()
            );
        }
        if train && self.frozen {
            candle_core::bail!("this model was frozen for inference; load it again to train it");
        }
        // The fast path: always outside training, and in training unless turned off (the
        // autograd reference) or attention is asked for.
        if super::kernels::applies(&self.embeddings.word) && (!train || (self.taped && !attention))
        {
            return self.forward_fast(ids, mask, train, attention);
        }
        let emb = &self.embeddings;
        let positions = emb
            .position
            .index_select(&self.positions(mask)?.flatten_all()?, 0)?
            .reshape((b, s, ()))?;
        let token_type = emb.token_type.narrow(0, 0, 1)?;
        let x = self
            .lookup(ids, train)?
            .add(&positions)?
            .broadcast_add(&token_type)?;
        let x = dropout(
            &emb.norm.forward(&x)?,
            c.hidden_dropout_prob,
            train,
            &self.rng,
        )?;
        let mut hidden = match &emb.project {
            Some(p) => p.forward(&x)?,
            None => x,
        };

        let bias = self.attention_bias(mask)?;
        let mut attentions = Vec::new();
        for layer in &self.layers {
            let (out, probs) = self.layer_forward(layer, &hidden, &bias, train)?;
            hidden = out;
            if attention {
                attentions.push(probs);
            }
        }
        Ok(EncoderOutput { hidden, attentions })
    }

    fn layer_forward(
        &self,
        l: &Layer,
        x: &Tensor,
        bias: &Tensor,
        train: bool,
    ) -> CResult<(Tensor, Tensor)> {
        let c = &self.config;
        let (b, s, h) = x.dims3()?;
        let (nh, hd) = (c.num_attention_heads, c.head_dim());
        let split = |t: Tensor| -> CResult<Tensor> {
            t.reshape((b, s, nh, hd))?.transpose(1, 2)?.contiguous()
        };
        let q = split(l.query.forward(x)?)?;
        let k = split(l.key.forward(x)?)?;
        let v = split(l.value.forward(x)?)?;
        // (batch, heads, seq, seq)
        let scale = 1.0 / (hd as f64).sqrt();
        let scores = q.matmul(&k.t()?)?;
        let probs = if super::kernels::applies(&scores) {
            super::kernels::masked_softmax(&scores, bias, scale)?
        } else {
            softmax(&(scores * scale)?.broadcast_add(bias)?)?
        };
        let ctx = dropout(&probs, c.attention_probs_dropout_prob, train, &self.rng)?.matmul(&v)?;
        let ctx = ctx.transpose(1, 2)?.reshape((b, s, h))?;
        let attn = dropout(
            &l.attn_out.forward(&ctx)?,
            c.hidden_dropout_prob,
            train,
            &self.rng,
        )?;
        let attn = l.attn_norm.forward(&(attn + x)?)?;
        let inter = activate(&l.intermediate.forward(&attn)?, c.hidden_act)?;
        let out = dropout(
            &l.output.forward(&inter)?,
            c.hidden_dropout_prob,
            train,
            &self.rng,
        )?;
        let out = l.out_norm.forward(&(out + &attn)?)?;
        Ok((out, probs))
    }

    /// (batch, 1, 1, seq): 0 for tokens, the dtype's lowest value for padding (as HF does).
    pub(crate) fn attention_bias(&self, mask: &Tensor) -> CResult<Tensor> {
        let (b, s) = mask.dims2()?;
        let dtype = self.embeddings.word.dtype();
        let lowest = match dtype {
            DType::F64 => f64::MIN,
            DType::F16 => -65504.0,
            DType::BF16 => -3.38e38,
            _ => f64::from(f32::MIN),
        };
        ((mask.to_dtype(dtype)?.neg()? + 1.0)? * lowest)?.reshape((b, 1, 1, s))
    }

    /// The hidden size of the output.
    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// Mean of the word-embedding rows `ids`, to initialize an added token from words it stands
    /// for (prompt label words).
    pub fn mean_embedding(&self, ids: &[u32]) -> CResult<Vec<f32>> {
        let dev = self.embeddings.word.device();
        let idx = Tensor::from_vec(ids.to_vec(), ids.len(), dev)?;
        self.embeddings
            .word
            .index_select(&idx, 0)?
            .mean(0)?
            .to_dtype(DType::F32)?
            .to_vec1()
    }
}
