//! Attention heads split and merged, and bias additions fused into the ops that follow them.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, bail};
use rayon::prelude::*;

use super::gelu::{gelu, gelu_grad};
use super::*;

/// `(batch * seq, hidden) + bias` -> `(batch, heads, seq, head_dim)`, contiguous: the query, key
/// or value projection's bias added while splitting into heads.
pub(crate) struct SplitHeads {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    /// Write `(batch, heads, head_dim, seq)` instead: keys laid out so `q k^T` multiplies by a
    /// contiguous matrix (twice as fast in gemm as by a transposed view).
    pub transpose: bool,
    /// The input is packed (one row per real token, see [`Packing`]); padding comes out as zeros.
    pub pack: Option<std::sync::Arc<Packing>>,
}

impl SplitHeads {
    #[allow(unsafe_code)]
    fn run<T: Real>(&self, x: &[T], bias: &[T]) -> Vec<T> {
        let h = bias.len();
        let hd = h / self.heads;
        let (s, heads) = (self.seq, self.heads);
        let pack = self.pack.as_deref();
        let transpose = self.transpose;
        let fill = |out: &mut [MaybeUninit<T>]| {
            out.par_chunks_mut(s * hd).enumerate().for_each(|(blk, o)| {
                let (bi, hi) = (blk / heads, blk % heads);
                let b = &bias[hi * hd..(hi + 1) * hd];
                for si in 0..s {
                    let row = match pack {
                        Some(p) => match p.slot[bi * s + si] {
                            u32::MAX => None,
                            r => Some(r as usize),
                        },
                        None => Some(bi * s + si),
                    };
                    let Some(row) = row else {
                        // Padding: zeros.
                        if transpose {
                            for d in 0..hd {
                                o[d * s + si].write(T::ZERO);
                            }
                        } else {
                            for d in &mut o[si * hd..(si + 1) * hd] {
                                d.write(T::ZERO);
                            }
                        }
                        continue;
                    };
                    let src = &x[row * h + hi * hd..][..hd];
                    if transpose {
                        for (d, (&v, &bv)) in src.iter().zip(b).enumerate() {
                            o[d * s + si].write(v + bv);
                        }
                    } else {
                        let part = o[si * hd..(si + 1) * hd].iter_mut();
                        for ((d, &v), &bv) in part.zip(src).zip(b) {
                            d.write(v + bv);
                        }
                    }
                }
            })
        };
        // SAFETY: each block is one sentence and head, `s * hd` long; every position `si` writes
        // its `hd` elements (values from rows of `hd`, or zeros at padding), in either layout.
        unsafe { written(self.batch * s * h, fill) }
    }
}

impl CustomOp2 for SplitHeads {
    fn name(&self) -> &'static str {
        "nerlab-split-heads"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let h = l2.shape().elem_count();
        let rows = self
            .pack
            .as_ref()
            .map_or(self.batch * self.seq, |p| p.rows.len());
        if l1.shape().elem_count() != rows * h || !h.is_multiple_of(self.heads) {
            bail!("split heads: shapes do not match");
        }
        let out = by_real!(s1, "split heads", T => self.run::<T>(contiguous(s1, l1, "x")?, contiguous(s2, l2, "bias")?));
        let hd = h / self.heads;
        let shape = if self.transpose {
            (self.batch, self.heads, hd, self.seq)
        } else {
            (self.batch, self.heads, self.seq, hd)
        };
        Ok((out, Shape::from(shape)))
    }
}

/// `(batch, heads, seq, head_dim)` -> `(batch * seq, hidden)`, or with a packing only the rows of
/// real tokens.
#[derive(Default)]
pub(crate) struct MergeHeads {
    pub pack: Option<std::sync::Arc<Packing>>,
}

impl MergeHeads {
    #[allow(unsafe_code)]
    fn run<T: Real>(&self, x: &[T], b: usize, heads: usize, s: usize, hd: usize) -> Vec<T> {
        let h = heads * hd;
        let pack = self.pack.as_deref();
        let rows = pack.map_or(b * s, |p| p.rows.len());
        let fill = |out: &mut [MaybeUninit<T>]| {
            out.par_chunks_mut(h * ROW_BLOCK)
                .enumerate()
                .for_each(|(blk, o)| {
                    for (k, row) in o.chunks_mut(h).enumerate() {
                        let r = blk * ROW_BLOCK + k;
                        let r = pack.map_or(r, |p| p.rows[r] as usize);
                        let (bi, si) = (r / s, r % s);
                        for (hi, part) in row.chunks_mut(hd).enumerate() {
                            let src = &x[((bi * heads + hi) * s + si) * hd..][..hd];
                            for (o, &v) in part.iter_mut().zip(src) {
                                o.write(v);
                            }
                        }
                    }
                })
        };
        // SAFETY: every row is `heads` parts of `hd`, each written from a source of `hd`.
        unsafe { written(rows * h, fill) }
    }
}

impl CustomOp1 for MergeHeads {
    fn name(&self) -> &'static str {
        "nerlab-merge-heads"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, heads, s, hd) = l.shape().dims4()?;
        let out = by_real!(st, "merge heads", T => self.run::<T>(contiguous(st, l, "x")?, b, heads, s, hd));
        let rows = self.pack.as_ref().map_or(b * s, |p| p.rows.len());
        Ok((out, Shape::from((rows, heads * hd))))
    }
}

/// `gelu(x + bias)` over rows of `bias.len()`.
pub(crate) struct BiasGelu;

impl CustomOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        "nerlab-bias-gelu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        #[allow(unsafe_code)]
        fn run<T: Real>(x: &[T], b: &[T]) -> Vec<T> {
            let w = b.len();
            // SAFETY: each row's loop zips over the whole row (rows of `x` and `b` are `w` long).
            unsafe {
                rows_map(
                    x.len(),
                    w,
                    #[inline(always)]
                    |r, out| {
                        for ((o, &v), &bv) in out.iter_mut().zip(&x[r * w..(r + 1) * w]).zip(b) {
                            o.write(gelu(v + bv));
                        }
                    },
                )
            }
        }
        let out = by_real!(s1, "bias gelu", T => run::<T>(
            contiguous(s1, l1, "x")?,
            contiguous(s2, l2, "bias")?,
        ));
        Ok((out, l1.shape().clone()))
    }
}

/// `g * gelu'(x + bias)`.
pub(crate) struct BiasGeluBwd;

impl CustomOp3 for BiasGeluBwd {
    fn name(&self) -> &'static str {
        "nerlab-bias-gelu-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        #[allow(unsafe_code)]
        fn run<T: Real>(x: &[T], b: &[T], g: &[T]) -> Vec<T> {
            let w = b.len();
            // SAFETY: each row's loop zips over the whole row (rows of `x`, `g`, `b` are `w` long).
            unsafe {
                rows_map(
                    x.len(),
                    w,
                    #[inline(always)]
                    |r, out| {
                        let xs = &x[r * w..(r + 1) * w];
                        let gs = &g[r * w..(r + 1) * w];
                        // Zipped, not indexed: no bounds checks, so the loop vectorizes.
                        for (((o, &x), &g), &bv) in out.iter_mut().zip(xs).zip(gs).zip(b) {
                            o.write(g * gelu_grad(x + bv));
                        }
                    },
                )
            }
        }
        let out = by_real!(s1, "bias gelu backward", T => run::<T>(
            contiguous(s1, l1, "x")?,
            contiguous(s2, l2, "bias")?,
            contiguous(s3, l3, "grad")?,
        ));
        Ok((out, l1.shape().clone()))
    }
}

/// `(x + bias) * mask + residual`, the mask of `state` (none: no dropout).
pub(crate) struct BiasDropoutAdd {
    pub state: Option<u64>,
    pub p: f64,
    /// The input is packed (see [`Packing`]): masks are indexed by the unpacked position.
    pub pack: Option<std::sync::Arc<Packing>>,
}

impl CustomOp3 for BiasDropoutAdd {
    fn name(&self) -> &'static str {
        "nerlab-bias-dropout-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        #[allow(unsafe_code)]
        fn run<T: Real>(
            x: &[T],
            b: &[T],
            r: &[T],
            state: Option<u64>,
            p: f64,
            pack: Option<&Packing>,
        ) -> Vec<T> {
            let w = b.len();
            let (threshold, keep) = mask_params(p);
            // SAFETY: both branches write every column of the row.
            unsafe {
                rows_map(
                    x.len(),
                    w,
                    #[inline(always)]
                    |row, out| {
                        let base = row * w;
                        let unpacked = pack.map_or(row, |p| p.rows[row] as usize) * w;
                        let (xs, rs) = (&x[base..base + w], &r[base..base + w]);
                        match state {
                            Some(st) => {
                                let mut mask = [0.0f32; MASK_PIECE];
                                for at in (0..w).step_by(MASK_PIECE) {
                                    let n = MASK_PIECE.min(w - at);
                                    let m = &mut mask[..n];
                                    mask_into(st, unpacked + at, threshold, keep, m);
                                    let cols = (out[at..at + n].iter_mut())
                                        .zip(&xs[at..at + n])
                                        .zip(&b[at..at + n])
                                        .zip(&rs[at..at + n])
                                        .zip(&*m);
                                    for ((((o, &x), &bv), &r), &m) in cols {
                                        o.write((x + bv) * T::of(f64::from(m)) + r);
                                    }
                                }
                            }
                            None => {
                                for (((o, &x), &bv), &r) in out.iter_mut().zip(xs).zip(b).zip(rs) {
                                    o.write(x + bv + r);
                                }
                            }
                        }
                    },
                )
            }
        }
        let out = by_real!(s1, "bias dropout add", T => run::<T>(
            contiguous(s1, l1, "x")?,
            contiguous(s2, l2, "bias")?,
            contiguous(s3, l3, "residual")?,
            self.state,
            self.p,
            self.pack.as_deref(),
        ));
        Ok((out, l1.shape().clone()))
    }
}
