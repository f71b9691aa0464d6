//! Self-attention over packed sentences for inference, in one op: the query, key and value rows
//! come from one `(tokens, 3 * hidden)` product, and each (sentence, head) pair multiplies only its
//! own real tokens, `q kᵀ` then `softmax · v`, writing its context rows straight into the packed
//! output. The training path (`SplitHeads`, a batched product over padded `(batch, heads, seq,
//! head_dim)` blocks, `Softmax`, `MergeHeads`) spends most of its attention time in candle's
//! batched product, which calls gemm once per (sentence, head), one after another, over padded
//! blocks (each call asking for the thread count), and in the passes that pad and unpad. Here
//! sentences run in parallel, each over its real tokens only, in loops compiled for the CPU's
//! vector instructions.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, bail};
use rayon::prelude::*;

use super::*;

/// `softmax(scale · q kᵀ) v` per sentence and head, over packed rows.
///
/// Input 1 is `(rows, 3 * hidden)`: each row's query, key and value projections side by side,
/// without their biases; input 2 is the `3 * hidden` biases in the same order. `spans` are the
/// sentences as (first packed row, real tokens); every row belongs to exactly one. The output is
/// `(rows, hidden)`, the heads' contexts side by side, as `MergeHeads` lays them out.
pub(crate) struct PackedAttention {
    pub heads: usize,
    pub scale: f64,
    pub spans: std::sync::Arc<Vec<(usize, usize)>>,
}

impl PackedAttention {
    /// Sentences as spans of packed rows: from a packing of `(batch, seq)` positions, or every
    /// sentence `seq` rows long when nothing is padding.
    pub fn spans(pack: Option<&Packing>, batch: usize, seq: usize) -> Vec<(usize, usize)> {
        let Some(p) = pack else {
            return (0..batch).map(|b| (b * seq, seq)).collect();
        };
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(batch);
        let mut last = usize::MAX;
        for (r, &flat) in p.rows.iter().enumerate() {
            let sentence = flat as usize / seq.max(1);
            if sentence == last {
                if let Some(s) = spans.last_mut() {
                    s.1 += 1;
                }
            } else {
                spans.push((r, 1));
                last = sentence;
            }
        }
        spans
    }

    fn run<T: Real>(&self, qkv: &[T], bias: &[T]) -> Result<Vec<T>> {
        let w = bias.len();
        let h = w / 3;
        let rows = qkv.len() / w.max(1);
        if self.spans.iter().map(|s| s.1).sum::<usize>() != rows
            || self
                .spans
                .iter()
                .scan(0, |next, &(start, len)| {
                    let ok = start == *next;
                    *next = start + len;
                    Some(ok)
                })
                .any(|ok| !ok)
        {
            bail!("packed attention: the sentences do not tile the {rows} rows in order");
        }
        // Each sentence's context rows are one contiguous block of the output.
        let mut out = vec![T::ZERO; rows * h];
        let mut blocks = Vec::with_capacity(self.spans.len());
        let mut rest = out.as_mut_slice();
        for &(_, len) in self.spans.iter() {
            let (block, tail) = rest.split_at_mut(len * h);
            blocks.push(block);
            rest = tail;
        }
        blocks
            .into_par_iter()
            .zip(self.spans.par_iter())
            .filter(|(_, span)| span.1 > 0)
            .for_each(|(block, &(start, len))| {
                self.sentence(&qkv[start * w..(start + len) * w], bias, len, block);
            });
        Ok(out)
    }

    /// One sentence's `len` rows of `qkv` (biases not yet added) -> its context rows in `out`.
    /// The loops are written as sums of scaled rows (no reductions across lanes) and run through
    /// `pulp`'s dispatch, which compiles them for the best vector instructions the CPU has.
    fn sentence<T: Real>(&self, qkv: &[T], bias: &[T], len: usize, out: &mut [T]) {
        pulp::Arch::new().dispatch(Sentence {
            qkv,
            bias,
            heads: self.heads,
            scale: T::of(self.scale),
            len,
            out,
        });
    }
}

/// [`sentence_heads`]'s arguments, as `pulp` dispatches them: its `with_simd` is inlined into a
/// function compiled for the detected instruction set, and so is everything it calls inline.
struct Sentence<'a, T> {
    qkv: &'a [T],
    bias: &'a [T],
    heads: usize,
    scale: T,
    len: usize,
    out: &'a mut [T],
}

impl<T: Real> pulp::WithSimd for Sentence<'_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        sentence_heads(
            self.qkv, self.bias, self.heads, self.scale, self.len, self.out,
        );
    }
}

/// [`PackedAttention::sentence`]'s body, head by head: keys transposed and values gathered with
/// their biases, then per query its scores (`q_i kᵀ` as a sum over `d` of `q_i[d]` times key row
/// `d`), their softmax, and its context (a sum over keys of `p_ij v_j`).
#[inline(always)]
fn sentence_heads<T: Real>(
    qkv: &[T],
    bias: &[T],
    heads: usize,
    scale: T,
    len: usize,
    out: &mut [T],
) {
    let w = bias.len();
    let h = w / 3;
    let hd = h / heads;
    // Keys padded to a multiple of 16 (zeros), so the score loops run whole vectors and no
    // scalar remainder; the padded scores are never read.
    let lp = len.next_multiple_of(16);
    let mut kt = vec![T::ZERO; hd * lp];
    let mut v = vec![T::ZERO; len * hd];
    let mut q = vec![T::ZERO; QUERIES * hd];
    let mut scores = vec![T::ZERO; QUERIES * lp];
    let mut ctx = vec![T::ZERO; hd];
    for hi in 0..heads {
        let (qc, kc, vc) = (hi * hd, h + hi * hd, 2 * h + hi * hd);
        for (j, row) in qkv.chunks_exact(w).enumerate() {
            for d in 0..hd {
                kt[d * lp + j] = row[kc + d] + bias[kc + d];
            }
            for ((o, &x), &b) in v[j * hd..(j + 1) * hd]
                .iter_mut()
                .zip(&row[vc..vc + hd])
                .zip(&bias[vc..vc + hd])
            {
                *o = x + b;
            }
        }
        // Queries four at a time: each key row loaded once feeds four rows of scores.
        let rows: Vec<&[T]> = qkv.chunks_exact(w).collect();
        for (block, chunk) in rows.chunks(QUERIES).enumerate() {
            let nb = chunk.len();
            for (qrow, row) in q.chunks_exact_mut(hd).zip(chunk) {
                for ((o, &x), &b) in qrow
                    .iter_mut()
                    .zip(&row[qc..qc + hd])
                    .zip(&bias[qc..qc + hd])
                {
                    *o = x + b;
                }
            }
            scores.fill(T::ZERO);
            if nb == QUERIES {
                let (s0, rest) = scores.split_at_mut(lp);
                let (s1, rest) = rest.split_at_mut(lp);
                let (s2, s3) = rest.split_at_mut(lp);
                for (d, krow) in kt.chunks_exact(lp).enumerate() {
                    let (a0, a1, a2, a3) = (q[d], q[hd + d], q[2 * hd + d], q[3 * hd + d]);
                    for ((((x0, x1), x2), x3), &k) in s0
                        .iter_mut()
                        .zip(s1.iter_mut())
                        .zip(s2.iter_mut())
                        .zip(s3.iter_mut())
                        .zip(krow)
                    {
                        *x0 += a0 * k;
                        *x1 += a1 * k;
                        *x2 += a2 * k;
                        *x3 += a3 * k;
                    }
                }
            } else {
                for (qrow, srow) in q.chunks_exact(hd).zip(scores.chunks_exact_mut(lp)).take(nb) {
                    for (&qd, krow) in qrow.iter().zip(kt.chunks_exact(lp)) {
                        for (s, &k) in srow.iter_mut().zip(krow) {
                            *s += qd * k;
                        }
                    }
                }
            }
            for (b, srow) in scores.chunks_exact_mut(lp).take(nb).enumerate() {
                let srow = &mut srow[..len];
                softmax_scaled(srow, scale);
                ctx.fill(T::ZERO);
                for (&p, vrow) in srow.iter().zip(v.chunks_exact(hd)) {
                    for (c, &x) in ctx.iter_mut().zip(vrow) {
                        *c += p * x;
                    }
                }
                let i = block * QUERIES + b;
                out[i * h + qc..i * h + qc + hd].copy_from_slice(&ctx);
            }
        }
    }
}

/// Queries whose scores are computed together (see [`sentence_heads`]).
const QUERIES: usize = 4;

/// `softmax(scale * x)` in place. The exponentials in one pass and their sum over eight lanes
/// (both vectorize), the lanes added in f64.
#[inline(always)]
fn softmax_scaled<T: Real>(x: &mut [T], scale: T) {
    let mut max = T::LOWEST;
    for v in x.iter_mut() {
        *v = scale * *v;
        if *v > max {
            max = *v;
        }
    }
    for v in x.iter_mut() {
        *v = (*v - max).exp();
    }
    let mut lanes = [T::ZERO; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    let sum = lanes
        .iter()
        .chain(chunks.remainder())
        .map(|v| v.wide())
        .sum::<f64>();
    let inv = T::of(1.0 / sum);
    for v in x.iter_mut() {
        *v *= inv;
    }
}

impl CustomOp2 for PackedAttention {
    fn name(&self) -> &'static str {
        "nerlab-packed-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let w = l2.shape().elem_count();
        if l1.dims().len() != 2 || l1.dims()[1] != w || !w.is_multiple_of(3 * self.heads) {
            bail!(
                "packed attention: expected (rows, {w}) with {w} divisible by 3 x {} heads, got {:?}",
                self.heads,
                l1.dims()
            );
        }
        let rows = l1.dims()[0];
        let out = by_real!(s1, "packed attention", T => self.run::<T>(
            contiguous(s1, l1, "qkv")?,
            contiguous(s2, l2, "bias")?,
        )?);
        Ok((out, Shape::from((rows, w / 3))))
    }
}
