//! Dropout whose mask is rebuilt from the generator state instead of stored.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::*;

/// The (threshold, kept value) of a mask with drop probability `p`: an element is dropped when its
/// 16 bits are below the threshold (`p` resolved to 1/65536), else scaled by `1 / (1 - p)`. The
/// host generator (`DropoutRng::mask`) and every fused kernel take them from here.
#[inline]
pub fn mask_params(p: f64) -> (u64, f32) {
    ((p * 65536.0).round() as u64, (1.0 / (1.0 - p)) as f32)
}

/// The mask value of element `i` for a mask built from `state` (`DropoutRng::reserve`): the same
/// value `DropoutRng::mask` gives it, 0 with probability `p`, else `1 / (1 - p)` (as f32).
#[inline]
pub fn dropout_mask_value(state: u64, i: usize, threshold: u64, keep: f32) -> f32 {
    let bits = crate::rng::SplitMix64::nth_from(state, (i / 4) as u64) >> (16 * (i % 4));
    if (bits & 0xFFFF) < threshold {
        0.0
    } else {
        keep
    }
}

/// Writes into `out` the mask values of the unpacked positions `start..start + out.len()`, the
/// values [`dropout_mask_value`] gives them, but one generator draw per four positions (that
/// function computes the draw again for each of the four). Whole draws go through
/// `chunks_exact` so that the loop compiles to vector code (64-bit multiplies included, under
/// [`wide`]).
#[inline(always)]
pub(crate) fn mask_into(state: u64, start: usize, threshold: u64, keep: f32, out: &mut [f32]) {
    let head = ((4 - start % 4) % 4).min(out.len());
    let (first, body) = out.split_at_mut(head);
    for (j, o) in first.iter_mut().enumerate() {
        *o = dropout_mask_value(state, start + j, threshold, keep);
    }
    let draw0 = (start + head) / 4;
    let at = start + head + (body.len() / 4) * 4;
    let mut quads = body.chunks_exact_mut(4);
    for (g, quad) in (&mut quads).enumerate() {
        let bits = crate::rng::SplitMix64::nth_from(state, (draw0 + g) as u64);
        for (l, o) in quad.iter_mut().enumerate() {
            *o = if (bits >> (16 * l)) & 0xFFFF < threshold {
                0.0
            } else {
                keep
            };
        }
    }
    let rest = quads.into_remainder();
    for (j, o) in rest.iter_mut().enumerate() {
        *o = dropout_mask_value(state, at + j, threshold, keep);
    }
}

/// Positions whose mask values the kernels build at a time, on the stack.
pub(crate) const MASK_PIECE: usize = 256;

/// `x * mask` (and, with a second input, `x * mask + r`).
#[derive(Clone)]
pub(crate) struct Dropout {
    pub state: u64,
    pub p: f64,
    /// The input is packed (see [`Packing`]): masks are indexed by the unpacked position.
    pub pack: Option<std::sync::Arc<Packing>>,
}

impl Dropout {
    #[allow(unsafe_code)]
    pub(super) fn run<T: Real>(&self, x: &[T], add: Option<&[T]>) -> Vec<T> {
        let (threshold, keep) = mask_params(self.p);
        let pack = self.pack.as_deref();
        // Segments whose unpacked positions run on without a gap: a packed row, or a block (a
        // multiple of 4 elements). Chunks of whole segments go to the threads.
        const BLOCK: usize = 1 << 12;
        let width = pack.map_or(BLOCK, |p| (x.len() / p.rows.len().max(1)).max(1));
        let chunk = width * (BLOCK / width).max(1);
        let fill = |y: &mut [MaybeUninit<T>]| {
            y.par_chunks_mut(chunk).enumerate().for_each(|(c, out)| {
                wide(
                    #[inline(always)]
                    || {
                        let mut mask = [0.0f32; MASK_PIECE];
                        for (s, seg) in out.chunks_mut(width).enumerate() {
                            let first = c * chunk + s * width;
                            let start = Packing::unpacked(pack, first, width);
                            let xs = &x[first..first + seg.len()];
                            let pieces = seg.chunks_mut(MASK_PIECE).zip(xs.chunks(MASK_PIECE));
                            for (p, (o, xp)) in pieces.enumerate() {
                                let m = &mut mask[..o.len()];
                                mask_into(self.state, start + p * MASK_PIECE, threshold, keep, m);
                                match add {
                                    Some(a) => {
                                        let ap = &a[first + p * MASK_PIECE..][..o.len()];
                                        for (((o, &x), &m), &a) in
                                            o.iter_mut().zip(xp).zip(&*m).zip(ap)
                                        {
                                            o.write(x * T::of(f64::from(m)) + a);
                                        }
                                    }
                                    // `+ 0` as before: a dropped -0.0 becomes +0.0.
                                    None => {
                                        for ((o, &x), &m) in o.iter_mut().zip(xp).zip(&*m) {
                                            o.write(x * T::of(f64::from(m)) + T::ZERO);
                                        }
                                    }
                                }
                            }
                        }
                    },
                )
            });
        };
        // SAFETY: the segments cover the output, and each piece is written in full (zipped with
        // its input piece, of the same length).
        unsafe { written(x.len(), fill) }
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "nerlab-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = by_real!(s, "dropout", T => self.run::<T>(contiguous(s, l, "x")?, None));
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(gy.contiguous()?.apply_op1_no_bwd(self)?))
    }
}

impl CustomOp2 for Dropout {
    fn name(&self) -> &'static str {
        "nerlab-dropout-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = by_real!(s1, "dropout", T => self.run::<T>(
            contiguous(s1, l1, "x")?,
            Some(contiguous(s2, l2, "residual")?),
        ));
        Ok((out, l1.shape().clone()))
    }
}

/// `x * mask` with the mask of `state` (fused; the backward pass rebuilds the mask).
pub fn dropout(x: &Tensor, p: f64, state: u64) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Dropout {
        state,
        p,
        pack: None,
    })
}
