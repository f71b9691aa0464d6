//! Self-attention over packed sentences for inference, in one op: the query, key and value rows
//! come from one `(tokens, 3 * hidden)` product, and each (sentence, head) pair multiplies only its
//! own real tokens, `q kᵀ` then `softmax · v`, writing its context rows straight into the packed
//! output. The training path (`SplitHeads`, a batched product over padded `(batch, heads, seq,
//! head_dim)` blocks, `Softmax`, `MergeHeads`) spends most of its attention time in candle's
//! batched product, which calls gemm once per (sentence, head), one after another, over padded
//! blocks (each call asking for the thread count), and in the passes that pad and unpad. Here
//! sentences run in parallel, each over its real tokens only, in loops compiled for the CPU's
//! vector instructions. For the common head widths (32: e5-small, MiniLM; 64: BERT-base,
//! KoELECTRA) four queries' scores and contexts are summed in registers (`scores_block`,
//! `context_block`), in the same order as the general loops, so with the same bits.

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

    /// `fixed`: the register-blocked loops for head widths 32 and 64 (same bits; off only in
    /// the test that shows it).
    fn run<T: Real>(&self, qkv: &[T], bias: &[T], fixed: bool) -> Result<Vec<T>> {
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
                self.sentence(&qkv[start * w..(start + len) * w], bias, len, block, fixed);
            });
        Ok(out)
    }

    /// One sentence's `len` rows of `qkv` (biases not yet added) -> its context rows in `out`.
    /// The loops are written as sums of scaled rows (no reductions across lanes) and run through
    /// `pulp`'s dispatch, which compiles them for the best vector instructions the CPU has.
    fn sentence<T: Real>(&self, qkv: &[T], bias: &[T], len: usize, out: &mut [T], fixed: bool) {
        pulp::Arch::new().dispatch(Sentence {
            qkv,
            bias,
            heads: self.heads,
            scale: T::of(self.scale),
            len,
            out,
            fixed,
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
    fixed: bool,
}

impl<T: Real> pulp::WithSimd for Sentence<'_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        sentence_heads(
            self.qkv, self.bias, self.heads, self.scale, self.len, self.out, self.fixed,
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
    fixed: bool,
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
    let mut ctx = vec![T::ZERO; QUERIES * hd];
    // Head widths with register-blocked loops (e5-small and MiniLM 32, BERT-base 64).
    let fixed = fixed && matches!(hd, 32 | 64);
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
            if nb == QUERIES && fixed {
                match hd {
                    32 => scores_block::<T, 32>(&q, &kt, &mut scores, lp),
                    _ => scores_block::<T, 64>(&q, &kt, &mut scores, lp),
                }
            } else if nb == QUERIES {
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
            for srow in scores.chunks_exact_mut(lp).take(nb) {
                softmax_scaled(&mut srow[..len], scale);
            }
            let first = block * QUERIES;
            if nb == QUERIES && fixed {
                let ctx4 = &mut ctx[..QUERIES * hd];
                match hd {
                    32 => context_block::<T, 32>(&scores, lp, &v, len, ctx4),
                    _ => context_block::<T, 64>(&scores, lp, &v, len, ctx4),
                }
                for (b, c) in ctx4.chunks_exact(hd).enumerate() {
                    let i = first + b;
                    out[i * h + qc..i * h + qc + hd].copy_from_slice(c);
                }
                continue;
            }
            for (b, srow) in scores.chunks_exact(lp).take(nb).enumerate() {
                let c = &mut ctx[..hd];
                c.fill(T::ZERO);
                for (&p, vrow) in srow[..len].iter().zip(v.chunks_exact(hd)) {
                    for (c, &x) in c.iter_mut().zip(vrow) {
                        *c += p * x;
                    }
                }
                let i = first + b;
                out[i * h + qc..i * h + qc + hd].copy_from_slice(c);
            }
        }
    }
}

/// Four queries' scores against every key (`q kᵀ`, keys in blocks of 16) for a head width
/// known at compile time: each block's 4 x 16 sums stay in registers across the `HD` steps, where
/// the general loop loads and stores its score rows at every step. Each score is still summed
/// over `d` in order from 0, with a separate multiply and add, so the result is the same to the
/// bit.
#[inline(always)]
fn scores_block<T: Real, const HD: usize>(q: &[T], kt: &[T], scores: &mut [T], lp: usize) {
    const KEYS: usize = 16;
    let q: &[T] = &q[..QUERIES * HD];
    let kt: &[T] = &kt[..HD * lp];
    for start in (0..lp).step_by(KEYS) {
        let mut acc = [[T::ZERO; KEYS]; QUERIES];
        for d in 0..HD {
            let k: &[T] = &kt[d * lp + start..d * lp + start + KEYS];
            for (b, row) in acc.iter_mut().enumerate() {
                let a = q[b * HD + d];
                for (x, &kk) in row.iter_mut().zip(k) {
                    *x += a * kk;
                }
            }
        }
        for (b, row) in acc.iter().enumerate() {
            scores[b * lp + start..b * lp + start + KEYS].copy_from_slice(row);
        }
    }
}

/// Four queries' contexts (`p v`, a sum over keys of `p_ij v_j`) for a head width known at compile
/// time, the 4 x `HD` sums in registers; each in key order from 0 as in the general loop, so the
/// result is the same to the bit.
#[inline(always)]
fn context_block<T: Real, const HD: usize>(
    scores: &[T],
    lp: usize,
    v: &[T],
    len: usize,
    ctx: &mut [T],
) {
    let mut acc = [[T::ZERO; HD]; QUERIES];
    for (j, vrow) in v.chunks_exact(HD).take(len).enumerate() {
        for (b, row) in acc.iter_mut().enumerate() {
            let p = scores[b * lp + j];
            for (c, &x) in row.iter_mut().zip(vrow) {
                *c += p * x;
            }
        }
    }
    for (c, row) in ctx.chunks_exact_mut(HD).zip(&acc) {
        c.copy_from_slice(row);
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
            true,
        )?);
        Ok((out, Shape::from((rows, w / 3))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The register-blocked loops for head widths 32 and 64 give the general loops' bits, for
    /// sentences shorter and longer than a key block, a ragged last query block, f32 and f64.
    #[test]
    fn fixed_width_loops_equal_the_general_ones_to_the_bit() {
        for (heads, hd) in [(3, 32), (2, 64)] {
            let h = heads * hd;
            let lens = [1usize, 4, 7, 16, 17, 38, 53];
            let rows: usize = lens.iter().sum();
            let vals = |n: usize, k: usize| -> Vec<f64> {
                (0..n)
                    .map(|i| ((i * 7919 + k * 104_729) % 2003) as f64 / 1001.0 - 1.0)
                    .collect()
            };
            let mut spans = Vec::new();
            let mut start = 0;
            for &len in &lens {
                spans.push((start, len));
                start += len;
            }
            let op = PackedAttention {
                heads,
                scale: 1.0 / (hd as f64).sqrt(),
                spans: std::sync::Arc::new(spans),
            };
            let (qkv, bias) = (vals(rows * 3 * h, 1), vals(3 * h, 2));
            let general = op.run::<f64>(&qkv, &bias, false).unwrap();
            let fixed = op.run::<f64>(&qkv, &bias, true).unwrap();
            assert!(
                general
                    .iter()
                    .zip(&fixed)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
            let (qkv, bias): (Vec<f32>, Vec<f32>) = (
                qkv.iter().map(|&x| x as f32).collect(),
                bias.iter().map(|&x| x as f32).collect(),
            );
            let general = op.run::<f32>(&qkv, &bias, false).unwrap();
            let fixed = op.run::<f32>(&qkv, &bias, true).unwrap();
            assert_eq!(general.len(), rows * h);
            assert!(
                general
                    .iter()
                    .zip(&fixed)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
        }
    }
}
