//! The encoder's fast forward pass on the CPU: detached weights, padding packed away, and the
//! fused kernels of `model/kernels/`. All inference runs it; in training (dropout on) it also
//! records a [`Tape`] of what `backward.rs` needs and returns its output as a leaf variable.
//! Dropout draws as many values from the encoder's generator as a padded pass would, so packing
//! does not move it.

use std::sync::Arc;

use candle_core::{D, Result, Tensor, Var};

use super::super::config::Activation;
use super::super::kernels::{
    AddNorm, BiasDropoutAdd, BiasGelu, BiasGeluInPlace, Dropout, LayerNorm, MergeHeads,
    PackedAttention, Packing, Softmax, SplitHeads,
};
use super::super::kernels::{QuantWeight, matmul as product, matmul_pair};
use super::super::ops::{Linear, batched_matmul, int8_product};
use super::backward::{LayerTape, Tape, WordTape};
use super::embeddings::{SparseRows, SplitIds, distinct_rows};
use super::{Encoder, EncoderOutput, Layer, Norm, activate};

/// `x W^T`, the bias left to the op that follows.
fn project(x: &Tensor, l: &Linear) -> Result<Tensor> {
    if let Some(q) = &l.int8 {
        return int8_product(x, q);
    }
    product(x, &weight_t(l)?)
}

/// `W^T` as the products take it: the frozen contiguous copy if there is one, else a view.
fn weight_t(l: &Linear) -> Result<Tensor> {
    match &l.weight_t {
        Some(wt) => Ok(wt.clone()),
        None => l.weight.detach().t(),
    }
}

/// [`project`] of `x` through two layers at once (see [`matmul_pair`]).
fn project_pair(x: &Tensor, a: &Linear, b: &Linear) -> Result<(Tensor, Tensor)> {
    if a.int8.is_some() || b.int8.is_some() {
        return Ok((project(x, a)?, project(x, b)?));
    }
    matmul_pair(x, &weight_t(a)?, x, &weight_t(b)?)
}

pub(super) fn bias_of(l: &Linear, width: usize, like: &Tensor) -> Result<Tensor> {
    match &l.bias {
        Some(b) => Ok(b.detach()),
        None => Tensor::zeros(width, like.dtype(), like.device()),
    }
}

/// `(x W^T + b) * mask + residual`, the mask drawn from the encoder's generator.
fn project_dropout_add(
    enc: &Encoder,
    x: &Tensor,
    l: &Linear,
    p: f64,
    residual: &Tensor,
    pack: Option<&Arc<Packing>>,
) -> Result<(Tensor, Option<u64>)> {
    let y = project(x, l)?;
    let state = (p > 0.0).then(|| enc.rng.reserve(unpacked_count(&y, pack)));
    let bias = bias_of(l, y.dim(D::Minus1)?, &y)?;
    let op = BiasDropoutAdd {
        state,
        p,
        pack: pack.cloned(),
    };
    let out = y.apply_op3_no_bwd(&bias, &residual.contiguous()?, &op)?;
    Ok((out, state))
}

fn linear(x: &Tensor, l: &Linear) -> Result<Tensor> {
    let y = project(x, l)?;
    match &l.bias {
        Some(b) => y.broadcast_add(&b.detach()),
        None => Ok(y),
    }
}

fn norm(x: &Tensor, n: &Norm) -> Result<Tensor> {
    x.apply_op3_no_bwd(
        &n.weight.detach(),
        &n.bias.detach(),
        &LayerNorm { eps: n.eps },
    )
}

/// Elements of `x` in the padded layout (dropout draws a mask value for each, so that a packed
/// pass leaves the generator where a padded one would).
fn unpacked_count(x: &Tensor, pack: Option<&Arc<Packing>>) -> usize {
    match pack {
        Some(p) => x.elem_count() / p.rows.len().max(1) * p.slot.len(),
        None => x.elem_count(),
    }
}

/// `x * mask` (+ `add`), the mask drawn from the encoder's generator; `None` state when off.
fn drop(
    enc: &Encoder,
    x: &Tensor,
    p: f64,
    add: Option<&Tensor>,
    pack: Option<&Arc<Packing>>,
) -> Result<(Tensor, Option<u64>)> {
    if p <= 0.0 {
        return Ok((
            match add {
                Some(a) => (x + a)?,
                None => x.clone(),
            },
            None,
        ));
    }
    let state = enc.rng.reserve(unpacked_count(x, pack));
    let op = Dropout {
        state,
        p,
        pack: pack.cloned(),
    };
    let y = match add {
        Some(a) => x.apply_op2_no_bwd(&a.contiguous()?, &op)?,
        None => x.apply_op1_no_bwd(&op)?,
    };
    Ok((y, Some(state)))
}

/// Shape and dropout settings of one forward pass, shared by every layer.
struct Pass {
    batch: usize,
    seq: usize,
    /// Hidden-state dropout probability (0 outside training).
    p_hidden: f64,
    /// Attention-probability dropout probability (0 outside training).
    p_attn: f64,
    /// Keep what the backward pass needs.
    record: bool,
    /// Real-token rows when the batch has padding.
    pack: Option<Arc<Packing>>,
}

/// A layer's weights as inference multiplies them (see [`Encoder::layer_packed`]).
#[derive(Debug, Clone)]
pub(super) struct InferenceWeights {
    /// `[W_q; W_k; W_v]ᵀ`, `(hidden, 3 * hidden)`, contiguous: the three projections as one product.
    qkv_t: Tensor,
    /// Their biases side by side (zeros where a projection has none).
    qkv_bias: Tensor,
    /// `[bias; gamma; beta]` of the attention output's projection and norm, for [`AddNorm`].
    attn_norm: Tensor,
    /// The same for the layer's output projection and norm.
    out_norm: Tensor,
    /// `[W_q; W_k; W_v]` quantized, for opt-in int8 inference ([`Encoder::quantize_int8`]).
    pub(super) qkv_int8: Option<Arc<QuantWeight>>,
}

impl Layer {
    /// `[W_q; W_k; W_v]` quantized to int8 per output channel.
    pub(super) fn qkv_int8(&self) -> anyhow::Result<Arc<QuantWeight>> {
        let w = Tensor::cat(
            &[&self.query, &self.key, &self.value].map(|l| l.weight.clone()),
            0,
        )?;
        Ok(Arc::new(QuantWeight::from_tensor(&w)?))
    }

    /// This layer's [`InferenceWeights`] from its current weights.
    pub(super) fn inference_weights(&self, hidden: usize) -> Result<InferenceWeights> {
        let parts = [&self.query, &self.key, &self.value];
        let w: Vec<Tensor> = parts.iter().map(|l| l.weight.detach()).collect();
        let qkv_t = Tensor::cat(&w, 0)?.t()?.contiguous()?;
        let b = parts
            .iter()
            .map(|l| bias_of(l, hidden, &qkv_t))
            .collect::<Result<Vec<_>>>()?;
        let norm_params = |l: &Linear, n: &Norm| -> Result<Tensor> {
            Tensor::cat(
                &[
                    bias_of(l, hidden, &qkv_t)?,
                    n.weight.detach(),
                    n.bias.detach(),
                ],
                0,
            )
        };
        Ok(InferenceWeights {
            qkv_bias: Tensor::cat(&b, 0)?,
            attn_norm: norm_params(&self.attn_out, &self.attn_norm)?,
            out_norm: norm_params(&self.output, &self.out_norm)?,
            qkv_t,
            qkv_int8: None,
        })
    }
}

impl Encoder {
    /// The forward pass on detached weights with the fused kernels. In training (dropout on) the
    /// output is a leaf variable and the pass is recorded for
    /// [`finish_backward`](Self::finish_backward); otherwise nothing is kept (no autograd graph
    /// holds the layers' activations), and each layer's attention is returned when asked for.
    pub(super) fn forward_fast(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        train: bool,
        attention: bool,
    ) -> Result<EncoderOutput> {
        let c = &self.config;
        let (b, s) = ids.dims2()?;
        let emb = &self.embeddings;
        let dev = ids.device();
        // Padding takes no part: from here on there is one row per real token.
        let pack = Packing::from_mask(
            &mask
                .flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1()?,
        )
        .map(|p| -> Result<_> {
            let keep = Tensor::from_slice(&p.rows, p.rows.len(), dev)?;
            Ok((p, keep))
        })
        .transpose()?;
        let packed = |x: Tensor| -> Result<Tensor> {
            match &pack {
                Some((_, keep)) => x.index_select(keep, 0),
                None => Ok(x),
            }
        };
        let flat = packed(ids.flatten_all()?)?;
        let packing = pack.as_ref().map(|(p, _)| p);
        let (rows, word, extra) = self.fused_word_rows(&flat, train)?;
        let positions = packed(self.positions(mask)?.flatten_all()?)?;
        let emb_in = (rows + emb.position.detach().index_select(&positions, 0)?)?
            .broadcast_add(&emb.token_type.detach().narrow(0, 0, 1)?)?;
        let normed = norm(&emb_in, &emb.norm)?;
        // Dropout probabilities: zero outside training.
        let (p_hidden, p_attn) = if train {
            (c.hidden_dropout_prob, c.attention_probs_dropout_prob)
        } else {
            (0.0, 0.0)
        };
        let (dropped, emb_drop) = drop(self, &normed, p_hidden, None, packing)?;
        let (mut hidden, proj_in) = match &emb.project {
            Some(p) => (linear(&dropped, p)?, Some(dropped)),
            None => (dropped, None),
        };
        let bias = self.attention_bias(mask)?;
        let mut layers = Vec::with_capacity(self.layers.len());
        let mut attentions = Vec::new();
        // Inference that keeps no attention: each sentence's heads multiply only its own tokens.
        let spans = (!train && !attention)
            .then(|| Arc::new(PackedAttention::spans(packing.map(|p| &**p), b, s)));
        for l in &self.layers {
            if let Some(spans) = &spans {
                hidden = self.layer_packed(l, &hidden, spans)?;
                continue;
            }
            let pass = Pass {
                batch: b,
                seq: s,
                p_hidden,
                p_attn,
                record: train,
                pack: packing.cloned(),
            };
            let (out, tape) = self.layer_taped(l, &hidden, &bias, &pass)?;
            hidden = out;
            if attention {
                attentions.push(tape.probs.clone());
            }
            if train {
                layers.push(tape);
            }
        }
        let hidden = match &pack {
            Some((_, keep)) => Tensor::zeros((b * s, c.hidden_size), hidden.dtype(), dev)?
                .index_add(keep, &hidden, 0)?,
            None => hidden,
        }
        .reshape((b, s, c.hidden_size))?;
        if !train {
            return Ok(EncoderOutput { hidden, attentions });
        }
        let var = Var::from_tensor(&hidden)?;
        let out = var.as_tensor().clone();
        self.push_tape(Tape {
            batch: b,
            seq: s,
            pack,
            hidden: var,
            word,
            extra,
            positions,
            emb_in,
            emb_drop,
            proj_in,
            layers,
        });
        Ok(EncoderOutput {
            hidden: out,
            attentions,
        })
    }

    /// The word rows of the packed ids `flat`, split between the pretrained matrix and added tokens
    /// (through a leaf variable of the rows used, in row-sparse training), with how they were
    /// looked up and the added tokens' split, for the backward pass.
    fn fused_word_rows(
        &self,
        flat: &Tensor,
        train: bool,
    ) -> Result<(Tensor, WordTape, Option<SplitIds>)> {
        let c = &self.config;
        let emb = &self.embeddings;
        let dev = flat.device();
        let n = flat.dim(0)?;
        // Word rows, split between the pretrained matrix and added tokens.
        let host: Vec<u32> = flat.to_vec1()?;
        let (base_ids, extra) = match &emb.extra {
            Some(_) => {
                let split = SplitIds::new(&host, c.vocab_size, emb.word.dtype(), dev)?;
                (split.base.clone(), Some(split))
            }
            None => (host, None),
        };
        let (base_rows, word) = if train && self.sparse_embedding() {
            let (rows, local) = distinct_rows(&base_ids);
            let gathered = emb
                .word
                .detach()
                .index_select(&Tensor::from_vec(rows.clone(), rows.len(), dev)?, 0)?;
            let var = Var::from_tensor(&gathered)?;
            let local = Tensor::from_vec(local, n, dev)?;
            let out = gathered.index_select(&local, 0)?;
            self.push_sparse(SparseRows {
                rows,
                var: var.clone(),
            });
            (out, WordTape::Sparse { var, local })
        } else {
            let ids = Tensor::from_vec(base_ids, n, dev)?;
            (
                emb.word.detach().index_select(&ids, 0)?,
                WordTape::Dense { ids },
            )
        };
        let rows = match (&extra, &emb.extra) {
            (Some(split), Some(matrix)) => {
                split.mix(&base_rows, &matrix.detach().index_select(&split.added, 0)?)?
            }
            _ => base_rows,
        };
        Ok((rows, word, extra))
    }

    /// One layer for inference over packed rows: the query, key and value projections as one
    /// product, [`PackedAttention`] over `spans` (see `kernels/attention.rs`), and the bias,
    /// residual, norm and GELU written over each product's own buffer (`kernels/inplace.rs`); no
    /// tape, no dropout. Equal to [`layer_taped`](Self::layer_taped) up to rounding.
    fn layer_packed(
        &self,
        l: &Layer,
        x: &Tensor,
        spans: &Arc<Vec<(usize, usize)>>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let fresh;
        let w = match &l.inference {
            Some(frozen) => frozen,
            None => {
                fresh = l.inference_weights(c.hidden_size)?;
                &fresh
            }
        };
        let qkv = match &w.qkv_int8 {
            Some(q) => int8_product(x, q)?,
            None => product(x, &w.qkv_t)?,
        };
        let ctx = qkv.apply_op2_no_bwd(
            &w.qkv_bias,
            &PackedAttention {
                heads: c.num_attention_heads,
                scale: 1.0 / (c.head_dim() as f64).sqrt(),
                spans: spans.clone(),
            },
        )?;
        let attn = project(&ctx, &l.attn_out)?;
        attn.inplace_op3(
            x,
            &w.attn_norm,
            &AddNorm {
                eps: l.attn_norm.eps,
            },
        )?;
        let inter = project(&attn, &l.intermediate)?;
        let b = bias_of(&l.intermediate, c.intermediate_size, &inter)?;
        let inter = match c.hidden_act {
            Activation::Gelu => {
                inter.inplace_op2(&b, &BiasGeluInPlace)?;
                inter
            }
            act => activate(&inter.broadcast_add(&b)?, act)?,
        };
        let out = project(&inter, &l.output)?;
        out.inplace_op3(
            &attn,
            &w.out_norm,
            &AddNorm {
                eps: l.out_norm.eps,
            },
        )?;
        Ok(out)
    }

    fn layer_taped(
        &self,
        l: &Layer,
        x: &Tensor,
        bias: &Tensor,
        pass: &Pass,
    ) -> Result<(Tensor, LayerTape)> {
        let &Pass {
            batch: b,
            seq: s,
            p_hidden,
            p_attn,
            record,
            ..
        } = pass;
        let pack = pass.pack.as_ref();
        let c = &self.config;
        let (nh, hd) = (c.num_attention_heads, c.head_dim());
        let heads = |transpose: bool| SplitHeads {
            batch: b,
            seq: s,
            heads: nh,
            transpose,
            pack: pack.cloned(),
        };
        let split = |y: &Tensor, lin: &Linear, transpose: bool| -> Result<Tensor> {
            y.apply_op2_no_bwd(&bias_of(lin, c.hidden_size, y)?, &heads(transpose))
        };
        let (q_proj, v_proj) = project_pair(x, &l.query, &l.value)?;
        let q = split(&q_proj, &l.query, false)?;
        let v = split(&v_proj, &l.value, false)?;
        let k_proj = project(x, &l.key)?;
        // Keys transposed for q k^T; the backward pass (training) also needs them as they are.
        let k_t = split(&k_proj, &l.key, true)?;
        let k = if record {
            split(&k_proj, &l.key, false)?
        } else {
            k_t.clone()
        };
        let scale = 1.0 / (hd as f64).sqrt();
        let probs = batched_matmul(&q, &k_t)?.apply_op2_no_bwd(bias, &Softmax { scale })?;
        let (dropped, probs_drop) = drop(self, &probs, p_attn, None, None)?;
        let ctx = batched_matmul(&dropped, &v)?.apply_op1_no_bwd(&MergeHeads {
            pack: pack.cloned(),
        })?;
        let (attn_in, attn_drop) = project_dropout_add(self, &ctx, &l.attn_out, p_hidden, x, pack)?;
        let attn = norm(&attn_in, &l.attn_norm)?;
        let inter_pre = project(&attn, &l.intermediate)?;
        let inter_bias = bias_of(&l.intermediate, c.intermediate_size, &inter_pre)?;
        let inter = match c.hidden_act {
            Activation::Gelu => inter_pre.apply_op2_no_bwd(&inter_bias, &BiasGelu)?,
            act => activate(&inter_pre.broadcast_add(&inter_bias)?, act)?,
        };
        let (out_in, out_drop) =
            project_dropout_add(self, &inter, &l.output, p_hidden, &attn, pack)?;
        let out = norm(&out_in, &l.out_norm)?;
        Ok((
            out,
            LayerTape {
                x: x.clone(),
                q,
                k,
                v,
                probs,
                probs_drop,
                ctx,
                attn_drop,
                attn_in,
                attn,
                inter_pre,
                inter,
                out_drop,
                out_in,
            },
        ))
    }
}
