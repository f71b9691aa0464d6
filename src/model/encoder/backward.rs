//! The encoder's training pass on the CPU with a hand-derived backward pass: what a recorded pass
//! keeps (the [`Tape`], written by `fused.rs`) and the backward pass over it.
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

use super::super::config::Activation;
use super::super::kernels::{
    AddInPlace, BiasGeluBwd, Dropout, LayerNormBwd, MergeHeads, Packing, SoftmaxBwd, SplitHeads,
};
use super::super::kernels::{matmul as product, matmul_pair};
use super::super::ops::{Linear, batched_matmul};
use super::embeddings::SplitIds;
use super::fused::bias_of;
use super::{Encoder, Layer, Norm, activate};

/// How the word rows of one pass were looked up, for their gradient.
pub(super) enum WordTape {
    /// Through a leaf variable of the rows the batch uses (row-sparse training).
    Sparse { var: Var, local: Tensor },
    /// From the whole matrix.
    Dense { ids: Tensor },
}

/// What one training forward pass keeps for its backward pass.
pub(super) struct Tape {
    pub(super) batch: usize,
    pub(super) seq: usize,
    /// Real-token rows, when the batch has padding (activations below are packed).
    pub(super) pack: Option<(Arc<Packing>, Tensor)>,
    pub(super) hidden: Var,
    pub(super) word: WordTape,
    /// Added-token rows (ids into the extra matrix and the 0/1 selector).
    pub(super) extra: Option<SplitIds>,
    pub(super) positions: Tensor,
    /// The embedding layer norm's input (n, e).
    pub(super) emb_in: Tensor,
    pub(super) emb_drop: Option<u64>,
    /// The projection's input (after dropout), when embeddings are narrower than the model.
    pub(super) proj_in: Option<Tensor>,
    pub(super) layers: Vec<LayerTape>,
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

pub(super) struct LayerTape {
    /// (n, h)
    pub(super) x: Tensor,
    /// (batch, heads, seq, head dim)
    pub(super) q: Tensor,
    pub(super) k: Tensor,
    pub(super) v: Tensor,
    /// (batch, heads, seq, seq), before dropout.
    pub(super) probs: Tensor,
    pub(super) probs_drop: Option<u64>,
    /// (n, h), heads merged.
    pub(super) ctx: Tensor,
    pub(super) attn_drop: Option<u64>,
    pub(super) attn_in: Tensor,
    pub(super) attn: Tensor,
    /// The intermediate projection before its bias (the GELU's input is this plus the bias).
    pub(super) inter_pre: Tensor,
    pub(super) inter: Tensor,
    pub(super) out_drop: Option<u64>,
    pub(super) out_in: Tensor,
}

/// (dx, dW, db) of `y = x W^T + b` given dy.
fn linear_bwd(g: &Tensor, x: &Tensor, l: &Linear) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let (dw, dx) = matmul_pair(&g.t()?, x, g, &l.weight.detach())?;
    let db = match &l.bias {
        // Column sums as a product with ones: one pass through gemm.
        Some(_) => {
            Some(product(&Tensor::ones((1, g.dim(0)?), g.dtype(), g.device())?, g)?.squeeze(0)?)
        }
        None => None,
    };
    Ok((dx, dw, db))
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

impl Encoder {
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
            Activation::Gelu => {
                t.inter_pre
                    .apply_op3_no_bwd(&inter_bias, &g_inter.contiguous()?, &BiasGeluBwd)?
            }
            act => {
                // Other activations: their derivative through candle's autograd, locally.
                let x = Var::from_tensor(&t.inter_pre.broadcast_add(&inter_bias)?)?;
                let y = activate(x.as_tensor(), act)?;
                let grads = (y * &g_inter)?.sum_all()?.backward()?;
                grads
                    .get(x.as_tensor())
                    .cloned()
                    .unwrap_or(t.inter_pre.zeros_like()?)
            }
        };
        let (g_attn_ff, dw, db) = linear_bwd(&g_inter_pre, &t.attn, &l.intermediate)?;
        accumulate_linear(store, &l.intermediate, dw, db)?;
        // The two paths' gradients summed in place (see `AddInPlace`).
        g_out_in.inplace_op2(&g_attn_ff, &AddInPlace)?;
        let g_attn = g_out_in;
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
        let g_v = batched_matmul(&dropped.t()?, &g_ctx)?;
        let g_dropped = batched_matmul(&g_ctx, &t.v.t()?)?;
        let scale = 1.0 / (hd as f64).sqrt();
        // The mask replayed inside the softmax backward (no pass of its own).
        let g_scores = t.probs.apply_op2_no_bwd(
            &g_dropped.contiguous()?,
            &SoftmaxBwd {
                scale,
                dropout: t.probs_drop.map(|state| (state, p_attn)),
            },
        )?;
        let g_q = batched_matmul(&g_scores, &t.k)?;
        let g_k = batched_matmul(&g_scores.t()?, &t.q)?;
        let merge = |x: Tensor| -> Result<Tensor> {
            x.contiguous()?.apply_op1_no_bwd(&MergeHeads {
                pack: pack.cloned(),
            })
        };
        let g_x = g_attn_in;
        for (grad, lin) in [(g_q, &l.query), (g_k, &l.key), (g_v, &l.value)] {
            let (dx, dw, db) = linear_bwd(&merge(grad)?, &t.x, lin)?;
            accumulate_linear(store, lin, dw, db)?;
            g_x.inplace_op2(&dx, &AddInPlace)?;
        }
        Ok(g_x)
    }
}
