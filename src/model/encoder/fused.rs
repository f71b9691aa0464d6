//! The encoder's fast forward pass on the CPU: detached weights, padding packed away, and the
//! fused kernels of `model/kernels/`. All inference runs it; in training (dropout on) it also
//! records a [`Tape`] of what `backward.rs` needs and returns its output as a leaf variable.
//! Dropout draws as many values from the encoder's generator as a padded pass would, so packing
//! does not move it.

use std::sync::Arc;

use candle_core::{D, Result, Tensor, Var};

use super::super::config::Activation;
use super::super::kernels::{
    BiasDropoutAdd, BiasGelu, Dropout, LayerNorm, MergeHeads, Packing, Softmax, SplitHeads,
};
use super::super::ops::Linear;
use super::backward::{LayerTape, Tape, WordTape};
use super::embeddings::{SparseRows, SplitIds, distinct_rows};
use super::{Encoder, EncoderOutput, Layer, Norm, activate};

/// `x W^T`, the bias left to the op that follows.
fn project(x: &Tensor, l: &Linear) -> Result<Tensor> {
    match &l.weight_t {
        Some(wt) => x.matmul(wt),
        None => x.matmul(&l.weight.detach().t()?),
    }
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
        for l in &self.layers {
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
        let q = split(&project(x, &l.query)?, &l.query, false)?;
        let v = split(&project(x, &l.value)?, &l.value, false)?;
        let k_proj = project(x, &l.key)?;
        // Keys transposed for q k^T; the backward pass (training) also needs them as they are.
        let k_t = split(&k_proj, &l.key, true)?;
        let k = if record {
            split(&k_proj, &l.key, false)?
        } else {
            k_t.clone()
        };
        let scale = 1.0 / (hd as f64).sqrt();
        let probs = q.matmul(&k_t)?.apply_op2_no_bwd(bias, &Softmax { scale })?;
        let (dropped, probs_drop) = drop(self, &probs, p_attn, None, None)?;
        let ctx = dropped.matmul(&v)?.apply_op1_no_bwd(&MergeHeads {
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
