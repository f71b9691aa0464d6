//! The encoder's training pass on the CPU with a hand-derived backward pass.
//!
//! candle's autograd is general but costly for a transformer: every gradient is accumulated into
//! a freshly zeroed tensor (an allocation, a memset and an add per graph node), gradients are
//! computed for operands that need none (dropout masks, the attention mask), and each primitive
//! op is a node of its own. Profiling e5-small fine-tuning showed the backward pass spending more
//! time on that than on its matrix products. Here the encoder's forward pass runs on detached
//! weights, saving what the backward pass needs (as PyTorch's autograd would: layer inputs, the
//! attention probabilities, the pre-activation of the GELU; dropout masks are rebuilt from the
//! generator state instead of kept), and returns its output as a leaf variable. The heads stay on
//! candle's autograd; `loss.backward()` stops at that leaf, and [`Encoder::finish_backward`] takes
//! the leaf's gradient through the encoder by hand, writing each parameter's gradient into the
//! same `GradStore` (added to anything already there, e.g. the tied MLM decoder's share of the
//! word embeddings).
//!
//! `tests/gradcheck.rs` checks the result against candle's autograd on the same model (the
//! reference path, [`Encoder::set_taped`]`(false)`) and against finite differences.

use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{D, Result, Tensor, Var};

use super::encoder::{Encoder, Layer, Norm, SparseRows, SplitIds, distinct_rows};
use super::kernels::{
    BiasDropoutAdd, BiasGelu, BiasGeluBwd, Dropout, LayerNorm, LayerNormBwd, MergeHeads, Packing,
    Softmax, SoftmaxBwd, SplitHeads,
};
use super::ops::Linear;

/// How the word rows of one pass were looked up, for their gradient.
enum WordTape {
    /// Through a leaf variable of the rows the batch uses (row-sparse training).
    Sparse { var: Var, local: Tensor },
    /// From the whole matrix.
    Dense { ids: Tensor },
}

/// What one training forward pass keeps for its backward pass.
pub struct Tape {
    batch: usize,
    seq: usize,
    /// Real-token rows, when the batch has padding (activations below are packed).
    pack: Option<(Arc<Packing>, Tensor)>,
    hidden: Var,
    word: WordTape,
    /// Added-token rows (ids into the extra matrix and the 0/1 selector).
    extra: Option<SplitIds>,
    positions: Tensor,
    /// The embedding layer norm's input (n, e).
    emb_in: Tensor,
    emb_drop: Option<u64>,
    /// The projection's input (after dropout), when embeddings are narrower than the model.
    proj_in: Option<Tensor>,
    layers: Vec<LayerTape>,
}

impl std::fmt::Debug for Tape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tape({} x {}, {} layers)",
            self.batch,
            self.seq,
            self.layers.len()
        )
    }
}

struct LayerTape {
    /// (n, h)
    x: Tensor,
    /// (batch, heads, seq, head dim)
    q: Tensor,
    k: Tensor,
    v: Tensor,
    /// (batch, heads, seq, seq), before dropout.
    probs: Tensor,
    probs_drop: Option<u64>,
    /// (n, h), heads merged.
    ctx: Tensor,
    attn_drop: Option<u64>,
    attn_in: Tensor,
    attn: Tensor,
    /// The intermediate projection before its bias (the GELU's input is this plus the bias).
    inter_pre: Tensor,
    inter: Tensor,
    out_drop: Option<u64>,
    out_in: Tensor,
}

/// `x W^T`, the bias left to the op that follows.
fn project(x: &Tensor, l: &Linear) -> Result<Tensor> {
    match &l.weight_t {
        Some(wt) => x.matmul(wt),
        None => x.matmul(&l.weight.detach().t()?),
    }
}

fn bias_of(l: &Linear, width: usize, like: &Tensor) -> Result<Tensor> {
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

/// (dx, dW, db) of `y = x W^T + b` given dy.
fn linear_bwd(g: &Tensor, x: &Tensor, l: &Linear) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let dw = g.t()?.matmul(x)?;
    let db = match &l.bias {
        // Column sums as a product with ones: one pass through gemm.
        Some(_) => Some(
            Tensor::ones((1, g.dim(0)?), g.dtype(), g.device())?
                .matmul(g)?
                .squeeze(0)?,
        ),
        None => None,
    };
    let dx = g.matmul(&l.weight.detach())?;
    Ok((dx, dw, db))
}

fn norm(x: &Tensor, n: &Norm) -> Result<Tensor> {
    x.apply_op3_no_bwd(
        &n.weight.detach(),
        &n.bias.detach(),
        &LayerNorm { eps: n.eps },
    )
}

/// (dx, dweight, dbias) of a layer norm with input `x`.
fn norm_bwd(x: &Tensor, n: &Norm, g: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let d = x.dim(D::Minus1)?;
    let rows = x.elem_count() / d;
    let packed = x.apply_op3_no_bwd(
        &n.weight.detach(),
        &g.contiguous()?,
        &LayerNormBwd { eps: n.eps },
    )?;
    Ok((
        packed.narrow(0, 0, rows)?,
        packed.narrow(0, rows, 1)?.squeeze(0)?,
        packed.narrow(0, rows + 1, 1)?.squeeze(0)?,
    ))
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

/// The mask of `state` applied again (the backward of dropout is the same product).
fn drop_again(
    g: &Tensor,
    p: f64,
    state: Option<u64>,
    pack: Option<&Arc<Packing>>,
) -> Result<Tensor> {
    match state {
        Some(state) => g.contiguous()?.apply_op1_no_bwd(&Dropout {
            state,
            p,
            pack: pack.cloned(),
        }),
        None => Ok(g.clone()),
    }
}

/// Adds `g` to the gradient of `t` in `store`.
fn accumulate(store: &mut GradStore, t: &Tensor, g: Tensor) -> Result<()> {
    let g = match store.remove(t) {
        Some(prev) => (prev + g)?,
        None => g,
    };
    store.insert(t, g);
    Ok(())
}

fn accumulate_linear(
    store: &mut GradStore,
    l: &Linear,
    dw: Tensor,
    db: Option<Tensor>,
) -> Result<()> {
    accumulate(store, &l.weight, dw)?;
    if let (Some(b), Some(db)) = (&l.bias, db) {
        accumulate(store, b, db)?;
    }
    Ok(())
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
    pub(crate) fn forward_fast(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        train: bool,
        attention: bool,
    ) -> Result<super::encoder::EncoderOutput> {
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
        let n = flat.dim(0)?;
        let packing = pack.as_ref().map(|(p, _)| p);
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
            return Ok(super::encoder::EncoderOutput { hidden, attentions });
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
        Ok(super::encoder::EncoderOutput {
            hidden: out,
            attentions,
        })
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
            super::config::Activation::Gelu => {
                inter_pre.apply_op2_no_bwd(&inter_bias, &BiasGelu)?
            }
            act => super::encoder::activate(&inter_pre.broadcast_add(&inter_bias)?, act)?,
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

    /// Takes the gradient of every taped pass's output (from `store`, where `loss.backward()` put
    /// it) back through the encoder, adding each parameter's gradient to `store`. Passes whose
    /// output got no gradient contribute nothing.
    pub fn finish_backward(&self, store: &mut GradStore) -> Result<()> {
        for tape in self.take_tapes() {
            let Some(g) = store.remove(tape.hidden.as_tensor()) else {
                continue;
            };
            self.backward_tape(&tape, &g, store)?;
        }
        Ok(())
    }

    fn backward_tape(&self, t: &Tape, g: &Tensor, store: &mut GradStore) -> Result<()> {
        let c = &self.config;
        let emb = &self.embeddings;
        let n = t.batch * t.seq;
        let mut g = g.reshape((n, c.hidden_size))?;
        if let Some((_, keep)) = &t.pack {
            g = g.index_select(keep, 0)?;
        }
        let pack = t.pack.as_ref().map(|(p, _)| p);
        for (l, lt) in self.layers.iter().zip(&t.layers).rev() {
            g = self.layer_backward(l, lt, &g, (t.batch, t.seq, pack), store)?;
        }
        if let (Some(p), Some(x)) = (&emb.project, &t.proj_in) {
            let (dx, dw, db) = linear_bwd(&g, x, p)?;
            accumulate_linear(store, p, dw, db)?;
            g = dx;
        }
        let g = drop_again(&g, c.hidden_dropout_prob, t.emb_drop, pack)?;
        let (g, dw, db) = norm_bwd(&t.emb_in, &emb.norm, &g)?;
        accumulate(store, &emb.norm.weight, dw)?;
        accumulate(store, &emb.norm.bias, db)?;
        // Position and token-type rows.
        accumulate(
            store,
            &emb.position,
            emb.position.zeros_like()?.index_add(&t.positions, &g, 0)?,
        )?;
        let type_grad = g.sum_keepdim(0)?;
        let types = emb.token_type.dim(0)?;
        let type_grad = if types > 1 {
            Tensor::cat(
                &[
                    type_grad,
                    Tensor::zeros((types - 1, g.dim(1)?), g.dtype(), g.device())?,
                ],
                0,
            )?
        } else {
            type_grad
        };
        accumulate(store, &emb.token_type, type_grad)?;
        // Word rows, and added-token rows.
        let g_base = match &t.extra {
            Some(SplitIds { added, sel, .. }) => {
                if let Some(matrix) = &emb.extra {
                    let g_added = g.broadcast_mul(sel)?;
                    accumulate(
                        store,
                        matrix,
                        matrix.zeros_like()?.index_add(added, &g_added, 0)?,
                    )?;
                }
                g.broadcast_mul(&sel.affine(-1.0, 1.0)?)?
            }
            None => g,
        };
        match &t.word {
            WordTape::Sparse { var, local } => {
                let rows = var.as_tensor();
                accumulate(
                    store,
                    rows,
                    rows.zeros_like()?.index_add(local, &g_base, 0)?,
                )?;
            }
            WordTape::Dense { ids } => {
                accumulate(
                    store,
                    &emb.word,
                    emb.word.zeros_like()?.index_add(ids, &g_base, 0)?,
                )?;
            }
        }
        Ok(())
    }

    /// One layer's backward pass: parameter gradients into `store`, the input's gradient out.
    fn layer_backward(
        &self,
        l: &Layer,
        t: &LayerTape,
        g: &Tensor,
        (b, s, pack): (usize, usize, Option<&Arc<Packing>>),
        store: &mut GradStore,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (nh, hd, h) = (c.num_attention_heads, c.head_dim(), c.hidden_size);
        let p_hidden = c.hidden_dropout_prob;
        // Feed-forward block.
        let (g_out_in, dw, db) = norm_bwd(&t.out_in, &l.out_norm, g)?;
        accumulate(store, &l.out_norm.weight, dw)?;
        accumulate(store, &l.out_norm.bias, db)?;
        let g_o = drop_again(&g_out_in, p_hidden, t.out_drop, pack)?;
        let (g_inter, dw, db) = linear_bwd(&g_o, &t.inter, &l.output)?;
        accumulate_linear(store, &l.output, dw, db)?;
        let inter_bias = bias_of(&l.intermediate, c.intermediate_size, &t.inter_pre)?;
        let g_inter_pre = match c.hidden_act {
            super::config::Activation::Gelu => {
                t.inter_pre
                    .apply_op3_no_bwd(&inter_bias, &g_inter.contiguous()?, &BiasGeluBwd)?
            }
            act => {
                // Other activations: their derivative through candle's autograd, locally.
                let x = Var::from_tensor(&t.inter_pre.broadcast_add(&inter_bias)?)?;
                let y = super::encoder::activate(x.as_tensor(), act)?;
                let grads = (y * &g_inter)?.sum_all()?.backward()?;
                grads
                    .get(x.as_tensor())
                    .cloned()
                    .unwrap_or(t.inter_pre.zeros_like()?)
            }
        };
        let (g_attn_ff, dw, db) = linear_bwd(&g_inter_pre, &t.attn, &l.intermediate)?;
        accumulate_linear(store, &l.intermediate, dw, db)?;
        let g_attn = (g_out_in + g_attn_ff)?;
        // Attention block.
        let (g_attn_in, dw, db) = norm_bwd(&t.attn_in, &l.attn_norm, &g_attn)?;
        accumulate(store, &l.attn_norm.weight, dw)?;
        accumulate(store, &l.attn_norm.bias, db)?;
        let g_a = drop_again(&g_attn_in, p_hidden, t.attn_drop, pack)?;
        let (g_ctx, dw, db) = linear_bwd(&g_a, &t.ctx, &l.attn_out)?;
        accumulate_linear(store, &l.attn_out, dw, db)?;
        let g_ctx = g_ctx.apply_op2_no_bwd(
            &Tensor::zeros(h, g_ctx.dtype(), g_ctx.device())?,
            &SplitHeads {
                batch: b,
                seq: s,
                heads: nh,
                transpose: false,
                pack: pack.cloned(),
            },
        )?;
        let p_attn = c.attention_probs_dropout_prob;
        let dropped = drop_again(&t.probs, p_attn, t.probs_drop, None)?;
        let g_v = dropped.t()?.matmul(&g_ctx)?;
        let g_dropped = g_ctx.matmul(&t.v.t()?)?;
        let g_probs = drop_again(&g_dropped, p_attn, t.probs_drop, None)?;
        let scale = 1.0 / (hd as f64).sqrt();
        let g_scores = t
            .probs
            .apply_op2_no_bwd(&g_probs.contiguous()?, &SoftmaxBwd { scale })?;
        let g_q = g_scores.matmul(&t.k)?;
        let g_k = g_scores.t()?.matmul(&t.q)?;
        let merge = |x: Tensor| -> Result<Tensor> {
            x.contiguous()?.apply_op1_no_bwd(&MergeHeads {
                pack: pack.cloned(),
            })
        };
        let mut g_x = g_attn_in;
        for (grad, lin) in [(g_q, &l.query), (g_k, &l.key), (g_v, &l.value)] {
            let (dx, dw, db) = linear_bwd(&merge(grad)?, &t.x, lin)?;
            accumulate_linear(store, lin, dw, db)?;
            g_x = (g_x + dx)?;
        }
        Ok(g_x)
    }
}
